//! The forwarding pipeline, independent of DPDK: it works on a burst of frames
//! behind the [`FrameBuf`] trait, so it runs the same on mbufs, on plain vectors in
//! unit tests, and under the fuzzer.
//!
//! Per burst: classify and decapsulate every frame, check the W3IP header and
//! decrement the hop limit, look every destination up in one bulk LPM call, then
//! rewrite each frame for its next hop (a native Ethernet frame, or a prebuilt
//! Ethernet + IPv4/IPv6 + UDP tunnel header with lengths and checksums filled in).
//! Every packet ends with a [`Verdict`]; every drop is counted under one reason.

use crate::counters::{bump, CoreCounters, DropReason, MAX_PORTS};
use crate::fib::{FibReader, NextHop, NO_ROUTE};
use chainroute_wire::tunnel::{emit_native, Decap, UdpTunnel};
use chainroute_wire::{ethernet, w3ip, Address, MacAddr};

/// Most frames one call handles (the RX burst size).
pub const MAX_BURST: usize = 64;

/// A frame buffer with headroom, as an mbuf is.
pub trait FrameBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Removes `n` bytes from the front (`n <= data().len()`).
    fn strip_front(&mut self, n: usize);
    /// Grows the frame by `n` bytes at the front; false when the headroom is short.
    fn push_front(&mut self, n: usize) -> bool;
    /// Cuts the frame to `len` bytes (`len <= data().len()`).
    fn truncate(&mut self, len: usize);
}

/// A heap frame with headroom, for tests, tools and the fuzzer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
}

impl VecFrame {
    /// The DPDK default headroom.
    pub const HEADROOM: usize = 128;

    pub fn new(frame: &[u8]) -> VecFrame {
        let mut buf = vec![0u8; Self::HEADROOM];
        buf.extend_from_slice(frame);
        VecFrame { buf, start: Self::HEADROOM }
    }
}

impl FrameBuf for VecFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    fn strip_front(&mut self, n: usize) {
        self.start += n.min(self.buf.len() - self.start);
    }
    fn push_front(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }
}

/// What becomes of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send on this port.
    Tx(u16),
    Drop(DropReason),
}

/// What the pipeline knows of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    pub mac: MacAddr,
}

/// A worker's pipeline: its FIB reader and scratch space for one burst.
pub struct Pipeline {
    fib: FibReader,
    ports: Vec<PortInfo>,
    keys: Vec<Address>,
    hops: Vec<u32>,
    /// Per looked-up key: the frame index and where its W3IP packet lies.
    pending: Vec<(u16, u16, u16)>,
}

impl Pipeline {
    pub fn new(fib: FibReader, ports: Vec<PortInfo>) -> Pipeline {
        assert!(ports.len() <= MAX_PORTS, "at most {MAX_PORTS} ports");
        Pipeline {
            fib,
            ports,
            keys: Vec::with_capacity(MAX_BURST),
            hops: vec![NO_ROUTE; MAX_BURST],
            pending: Vec::with_capacity(MAX_BURST),
        }
    }

    /// The FIB reader (its owner reports quiescent states through it).
    pub fn fib(&mut self) -> &mut FibReader {
        &mut self.fib
    }

    /// Forwards one burst received on `ingress`. `verdicts[i]` says what to do with
    /// `frames[i]`; frames to send have been rewritten in place.
    pub fn process<F: FrameBuf>(&mut self, ingress: u16, frames: &mut [F], verdicts: &mut [Verdict], counters: &CoreCounters) {
        assert!(frames.len() <= MAX_BURST && verdicts.len() >= frames.len());
        let mut rx_bytes = 0u64;
        self.keys.clear();
        self.pending.clear();

        // 1-3: classify, decapsulate, check the header, decrement the hop limit.
        let my_mac = self.ports.get(ingress as usize).map(|p| p.mac);
        for (i, frame) in frames.iter_mut().enumerate() {
            rx_bytes += frame.data().len() as u64;
            // Ports are promiscuous: take only frames for us, broadcast or multicast.
            let dst = frame.data().get(..6);
            if let (Some(dst), Some(mine)) = (dst, my_mac) {
                if dst[0] & 1 == 0 && dst != mine.0 {
                    verdicts[i] = Verdict::Drop(DropReason::OtherHost);
                    continue;
                }
            }
            let decap = match Decap::parse(frame.data()) {
                Ok(d) => d,
                Err(e) => {
                    verdicts[i] = Verdict::Drop(DropReason::from_wire(e));
                    continue;
                }
            };
            let start = decap.inner.start;
            let data = frame.data_mut();
            let hop_limit = data[start + w3ip::HOP_LIMIT_OFFSET];
            if hop_limit <= 1 {
                verdicts[i] = Verdict::Drop(DropReason::HopLimitExpired);
                continue;
            }
            data[start + w3ip::HOP_LIMIT_OFFSET] = hop_limit - 1;
            let dst = Address::from_slice(&data[start + w3ip::DST_OFFSET..]).expect("checked W3IP header");
            self.keys.push(dst);
            // Frames are at most 64 KiB (mbuf data_len is 16 bits), so offsets fit u16.
            self.pending.push((i as u16, start as u16, decap.inner.len() as u16));
        }
        if let Some(p) = counters.ports.get(ingress as usize) {
            bump(&p.rx_packets, frames.len() as u64);
            bump(&p.rx_bytes, rx_bytes);
        }

        // 7: one bulk longest-prefix match for the whole burst.
        let n = self.keys.len();
        self.fib.lookup_bulk(&self.keys, &mut self.hops[..n]);

        // 8: rewrite for the next hop.
        for k in 0..n {
            let (i, start, len) = self.pending[k];
            let (i, start, len) = (i as usize, start as usize, len as usize);
            let verdict = match self.fib.next_hop(self.hops[k]) {
                None => Verdict::Drop(DropReason::NoRoute),
                Some(NextHop::Blackhole) => Verdict::Drop(DropReason::Blackhole),
                Some(NextHop::Local { port, mac }) => match self.ports.get(port as usize) {
                    None => Verdict::Drop(DropReason::BadEgress),
                    Some(info) => {
                        let f = &mut frames[i];
                        reframe(f, start, len, ethernet::HEADER_LEN);
                        emit_native(f.data_mut(), info.mac, mac).expect("room for the Ethernet header");
                        Verdict::Tx(port)
                    }
                },
                Some(NextHop::Tunnel { port, tunnel }) => match self.ports.get(port as usize) {
                    None => Verdict::Drop(DropReason::BadEgress),
                    Some(info) => {
                        let f = &mut frames[i];
                        if !reframe(f, start, len, tunnel.header_len()) {
                            Verdict::Drop(DropReason::NoHeadroom)
                        } else {
                            // The frame leaves with the egress port's own MAC as source.
                            let outer = UdpTunnel { eth_src: info.mac, ..tunnel };
                            outer.emit(f.data_mut(), len).expect("outer headers fit the reframed buffer");
                            Verdict::Tx(port)
                        }
                    }
                },
            };
            verdicts[i] = verdict;
        }
        for v in verdicts[..frames.len()].iter() {
            if let Verdict::Drop(r) = v {
                counters.count_drop(*r, 1);
            }
        }
    }
}

/// Moves the frame's start so exactly `outer` bytes precede the W3IP packet at
/// `start..start + len`, and cuts any trailing padding. False without headroom.
fn reframe<F: FrameBuf>(f: &mut F, start: usize, len: usize, outer: usize) -> bool {
    if start >= outer {
        f.strip_front(start - outer);
    } else if !f.push_front(outer - start) {
        return false;
    }
    f.truncate(outer + len);
    true
}
