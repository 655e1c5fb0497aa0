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
use crate::security::{Binding, Ingress, SecurityReader};
use chainroute_crypto::Outcome;
use chainroute_wire::ext::{next_header, AuthHeader, BindHeader, Extensions};
use chainroute_wire::tunnel::{emit_native, Decap, UdpTunnel};
use chainroute_wire::{ethernet, w3ip, Address, MacAddr};

/// Most frames one call handles (the RX burst size).
pub const MAX_BURST: usize = 64;
/// The RX burst a worker asks for unless configured: one full LPM batch, so the
/// bulk walk has a whole burst's misses to overlap (measured by fwd-bench
/// `--burst`: 64 forwards 20-30 % more than 32 on the realistic table).
pub const DEFAULT_BURST: usize = MAX_BURST;

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
        Self::with_headroom(frame, Self::HEADROOM)
    }

    pub fn with_headroom(frame: &[u8], headroom: usize) -> VecFrame {
        let mut buf = vec![0u8; headroom];
        buf.extend_from_slice(frame);
        VecFrame { buf, start: headroom }
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
    /// A control packet (an accepted BIND) the router took for itself.
    Consumed,
}

/// What the pipeline knows of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    pub mac: MacAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    /// Carries AUTH at this offset in the W3IP packet.
    Auth(u16),
    /// Carries BIND at this offset.
    Bind(u16),
}

/// A frame that passed the header checks, waiting for lookup and verification.
#[derive(Debug, Clone, Copy)]
struct Pending {
    frame: u16,
    start: u16,
    len: u16,
    kind: Kind,
    /// Index into the verifier's outcomes, when a signature was pushed.
    check: Option<u16>,
    /// Set when a check already decided to drop it.
    drop: Option<DropReason>,
}

/// A worker's pipeline: its FIB and security readers and scratch space for one burst.
pub struct Pipeline {
    fib: FibReader,
    security: Option<SecurityReader>,
    ports: Vec<PortInfo>,
    /// The destination of each pending frame (written in place: a key built on the
    /// stack and then pushed cost a store-forwarding stall per packet).
    keys: Vec<Address>,
    hops: Vec<u32>,
    pending: Vec<Pending>,
    /// Where each pending frame came from, kept beside it only with security on
    /// (the plain path writes no more per frame than it needs).
    ingress: Vec<Ingress>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn monotonic_ns() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

impl Pipeline {
    pub fn new(fib: FibReader, ports: Vec<PortInfo>) -> Pipeline {
        assert!(ports.len() <= MAX_PORTS, "at most {MAX_PORTS} ports");
        Pipeline {
            fib,
            security: None,
            ports,
            keys: vec![Address::UNSPECIFIED; MAX_BURST],
            hops: vec![NO_ROUTE; MAX_BURST],
            pending: Vec::with_capacity(MAX_BURST),
            ingress: Vec::with_capacity(MAX_BURST),
        }
    }

    /// Turns on BIND/AUTH verification, anycast delivery and (per its config)
    /// source validation.
    pub fn with_security(mut self, security: SecurityReader) -> Pipeline {
        self.security = Some(security);
        self
    }

    /// The FIB reader (its owner reports quiescent states through it).
    pub fn fib(&mut self) -> &mut FibReader {
        &mut self.fib
    }

    /// Reports a quiescent state for every lock-free table this worker reads.
    pub fn quiescent(&mut self) {
        self.fib.quiescent();
        if let Some(s) = &self.security {
            s.quiescent();
        }
    }

    /// This worker stops reading (its thread exits).
    pub fn offline(&mut self) {
        self.fib.offline();
        if let Some(s) = &self.security {
            s.offline();
        }
    }

    /// Forwards one burst received on `ingress`. `verdicts[i]` says what to do with
    /// `frames[i]`; frames to send have been rewritten in place.
    pub fn process<F: FrameBuf>(&mut self, ingress: u16, frames: &mut [F], verdicts: &mut [Verdict], counters: &CoreCounters) {
        assert!(frames.len() <= MAX_BURST && verdicts.len() >= frames.len());
        let mut rx_bytes = 0u64;
        self.pending.clear();
        self.ingress.clear();
        let secure = self.security.is_some();
        let now = if secure { unix_now() } else { 0 };
        if let Some(sec) = &mut self.security {
            sec.refresh();
            sec.verifier.begin(monotonic_ns());
        }

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
            let len = decap.inner.len();
            let data = frame.data_mut();
            let hop_limit = data[start + w3ip::HOP_LIMIT_OFFSET];
            if hop_limit <= 1 {
                verdicts[i] = Verdict::Drop(DropReason::HopLimitExpired);
                continue;
            }
            data[start + w3ip::HOP_LIMIT_OFFSET] = hop_limit - 1;
            let packet = &data[start..start + len];
            let nh = packet[6];
            let mut kind = Kind::Data;
            let slot = self.pending.len();
            self.keys[slot].0.copy_from_slice(&packet[w3ip::DST_OFFSET..w3ip::HEADER_LEN]);
            // The extension chain is walked only when it starts with one.
            if secure && (nh == next_header::AUTH || nh == next_header::BIND || next_header::is_undefined_extension(nh)) {
                match Extensions::parse(&w3ip::Packet::new_unchecked(packet)) {
                    Err(e) => {
                        verdicts[i] = Verdict::Drop(DropReason::from_wire(e));
                        continue;
                    }
                    Ok(ext) => {
                        if let Some(off) = ext.bind {
                            kind = Kind::Bind(off as u16);
                            // A BIND is looked up by the unicast it claims.
                            self.keys[slot] = BindHeader::new_unchecked(&packet[off..]).unicast();
                        } else if let Some(off) = ext.auth {
                            kind = Kind::Auth(off as u16);
                        }
                    }
                }
            }
            if secure {
                self.ingress.push(Ingress::of(ingress, decap.eth_src, &decap.carrier));
            }
            // Frames are at most 64 KiB (mbuf data_len is 16 bits), so offsets fit u16.
            self.pending.push(Pending { frame: i as u16, start: start as u16, len: len as u16, kind, check: None, drop: None });
        }
        if let Some(p) = counters.ports.get(ingress as usize) {
            bump(&p.rx_packets, frames.len() as u64);
            bump(&p.rx_bytes, rx_bytes);
        }

        // 7: one bulk longest-prefix match for the whole burst.
        let n = self.pending.len();
        self.fib.lookup_bulk(&self.keys[..n], &mut self.hops[..n]);

        // 4-5: source validation, and every signature of the burst in one batch.
        if let Some(sec) = &mut self.security {
            let mut pushed = 0u64;
            for k in 0..n {
                let p = &mut self.pending[k];
                let from = &self.ingress[k];
                let (start, len) = (p.start as usize, p.len as usize);
                let packet = &frames[p.frame as usize].data()[start..start + len];
                let src = Address::from_slice(&packet[8..]).expect("checked W3IP header");
                match p.kind {
                    Kind::Data => {
                        if sec.config.source_validation && !sec.source_ok(&src, from, now) {
                            p.drop = Some(DropReason::SpoofedSource);
                        }
                    }
                    Kind::Auth(off) => {
                        let off = off as usize;
                        if sec.config.source_validation && !sec.source_ok(&src, from, now) {
                            p.drop = Some(DropReason::SpoofedSource);
                            continue;
                        }
                        let signer = AuthHeader::new_unchecked(&packet[off..]).signer_key().to_owned();
                        match sec.devices.authorised(&src.interface_id(), &signer, now) {
                            Err(_) => p.drop = Some(DropReason::Unauthorised),
                            Ok(key) => {
                                p.check = Some(sec.verifier.push_auth(from.source_id(), &key, packet, off) as u16);
                                pushed += 1;
                            }
                        }
                    }
                    Kind::Bind(off) => {
                        let h = BindHeader::new_unchecked(&packet[off as usize..]);
                        let wallet = h.wallet();
                        let served_here = matches!(self.fib.next_hop(self.hops[k]), Some(NextHop::Local { .. }));
                        if h.unicast().interface_id() != wallet || h.expiry() <= now || !served_here || sec.sequence(&wallet).is_some_and(|s| h.sequence() <= s) {
                            p.drop = Some(DropReason::BindRejected);
                            continue;
                        }
                        match sec.devices.authorised(&wallet, h.device_key(), now) {
                            Err(_) => p.drop = Some(DropReason::Unauthorised),
                            Ok(key) => {
                                p.check = Some(sec.verifier.push_bind(from.source_id(), &key, &h) as u16);
                                pushed += 1;
                            }
                        }
                    }
                }
            }
            if pushed > 0 {
                let outcomes = sec.verifier.finish();
                for p in self.pending[..n].iter_mut() {
                    if let Some(c) = p.check {
                        p.drop = match outcomes[c as usize] {
                            Outcome::Valid => None,
                            Outcome::Invalid(_) => Some(DropReason::BadSignature),
                            Outcome::Shed(_) => Some(DropReason::SignatureShed),
                        };
                    }
                }
                bump(&counters.verified, pushed);
                bump(&counters.batches, 1);
            }
        }

        // 6, 8: anycast and bound hosts, then rewrite for the next hop.
        for k in 0..n {
            let p = self.pending[k];
            let i = p.frame as usize;
            let (start, len) = (p.start as usize, p.len as usize);
            if let Some(reason) = p.drop {
                verdicts[i] = Verdict::Drop(reason);
                continue;
            }
            let mut hop = self.fib.next_hop(self.hops[k]);
            // The reverse path of a binding, when one decides the next hop.
            let bound: NextHop;
            if let Some(sec) = &mut self.security {
                if let Kind::Bind(off) = p.kind {
                    let h = BindHeader::new_unchecked(&frames[i].data()[start + off as usize..]);
                    let b = Binding { wallet: h.wallet(), unicast: h.unicast(), ingress: self.ingress[k], expiry: h.expiry(), sequence: h.sequence(), device_key: *h.device_key() };
                    verdicts[i] = if sec.accept(b) {
                        bump(&counters.binds_accepted, 1);
                        Verdict::Consumed
                    } else {
                        Verdict::Drop(DropReason::BindRejected)
                    };
                    continue;
                }
                let dst = self.keys[k];
                if let Some(wallet) = dst.anycast_wallet() {
                    // Anycast: the wallet's binding picks the unicast; rewrite the locator.
                    match sec.binding(&wallet, now) {
                        Some(b) => {
                            let unicast = b.unicast;
                            bound = b.ingress.reverse();
                            hop = Some(&bound);
                            frames[i].data_mut()[start + w3ip::DST_OFFSET..start + w3ip::DST_OFFSET + 12].copy_from_slice(&unicast.as_bytes()[..12]);
                        }
                        None if hop.is_none() => {
                            verdicts[i] = Verdict::Drop(DropReason::UnknownWallet);
                            continue;
                        }
                        None => {}
                    }
                } else if let Some(NextHop::Local { .. }) = hop {
                    // A host of ours that bound itself: deliver through its ingress.
                    if let Some(b) = sec.binding(&dst.interface_id(), now).filter(|b| b.unicast == dst) {
                        bound = b.ingress.reverse();
                        hop = Some(&bound);
                    }
                }
            }
            verdicts[i] = deliver(&self.ports, &mut frames[i], start, len, hop);
        }
        for v in verdicts[..frames.len()].iter() {
            if let Verdict::Drop(r) = v {
                counters.count_drop(*r, 1);
            }
        }
    }
}

/// Rewrites a frame for its next hop.
fn deliver<F: FrameBuf>(ports: &[PortInfo], f: &mut F, start: usize, len: usize, hop: Option<&NextHop>) -> Verdict {
    match hop {
        None => Verdict::Drop(DropReason::NoRoute),
        Some(NextHop::Blackhole) => Verdict::Drop(DropReason::Blackhole),
        Some(&NextHop::Local { port, mac }) => match ports.get(port as usize) {
            None => Verdict::Drop(DropReason::BadEgress),
            Some(info) => {
                reframe(f, start, len, ethernet::HEADER_LEN);
                emit_native(f.data_mut(), info.mac, mac).expect("room for the Ethernet header");
                Verdict::Tx(port)
            }
        },
        Some(&NextHop::Tunnel { port, ref tunnel }) => match ports.get(port as usize) {
            None => Verdict::Drop(DropReason::BadEgress),
            Some(info) => {
                if !reframe(f, start, len, tunnel.header_len()) {
                    Verdict::Drop(DropReason::NoHeadroom)
                } else {
                    // The frame leaves with the egress port's own MAC as source.
                    let outer = UdpTunnel { eth_src: info.mac, ..*tunnel };
                    outer.emit(f.data_mut(), len).expect("outer headers fit the reframed buffer");
                    Verdict::Tx(port)
                }
            }
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::Fib;
    use crate::security::{Security, SecurityConfig};
    use chainroute_crypto::signed::emit_signed_bind;
    use chainroute_crypto::DeviceKey;
    use chainroute_wire::ext::{BindRepr, BIND_LEN};
    use chainroute_wire::Wallet;

    const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const HOST: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x10]);

    fn frame(src: Address, dst: Address, nh: u8, body: &[u8]) -> Vec<u8> {
        let repr = w3ip::Repr { traffic_class: 0, flow_label: 0, payload_len: body.len() as u16, next_header: nh, hop_limit: 9, src_addr: src, dst_addr: dst };
        let mut f = vec![0u8; 14 + repr.buffer_len()];
        repr.emit(&mut w3ip::Packet::new_unchecked(&mut f[14..])).unwrap();
        f[14 + w3ip::HEADER_LEN..].copy_from_slice(body);
        emit_native(&mut f, HOST, ME).unwrap();
        f
    }

    fn run(p: &mut Pipeline, frames: &mut [VecFrame]) -> (Vec<Verdict>, CoreCounters) {
        let mut v = vec![Verdict::Consumed; frames.len()];
        let c = CoreCounters::default();
        p.process(0, frames, &mut v, &c);
        (v, c)
    }

    #[test]
    fn forwards_tunnels_and_counts() {
        let mut fib = Fib::new();
        let t = UdpTunnel { eth_src: MacAddr::default(), eth_dst: MacAddr([2, 0, 0, 0, 0, 9]), src: "[2001:db8::1]:5733".parse().unwrap(), dst: "[2001:db8::2]:5733".parse().unwrap(), outer_hop_limit: 64, ipv4_udp_checksum: true };
        fib.insert("2001:db8:1::/48".parse().unwrap(), NextHop::Local { port: 1, mac: MacAddr([2, 0, 0, 0, 0, 7]) });
        fib.insert("2001:db8:2::/48".parse().unwrap(), NextHop::Tunnel { port: 1, tunnel: t });
        let mut p = Pipeline::new(fib.reader().unwrap(), vec![PortInfo { mac: ME }, PortInfo { mac: MacAddr([2, 0, 0, 0, 0, 2]) }]);
        let src: Address = "2001:db8:9::1".parse().unwrap();
        let local = frame(src, "2001:db8:1::5".parse().unwrap(), 59, b"x");
        let far = frame(src, "2001:db8:2::5".parse().unwrap(), 59, b"y");
        let mut frames = vec![VecFrame::new(&local), VecFrame::new(&far), VecFrame::with_headroom(&far, 8), VecFrame::new(&frame(src, "2001:db8:3::1".parse().unwrap(), 59, b""))];
        let (v, c) = run(&mut p, &mut frames);
        assert_eq!(v, vec![Verdict::Tx(1), Verdict::Tx(1), Verdict::Drop(DropReason::NoHeadroom), Verdict::Drop(DropReason::NoRoute)]);
        assert_eq!(&frames[0].data()[..12], &[2, 0, 0, 0, 0, 7, 2, 0, 0, 0, 0, 2]);
        assert_eq!(frames[0].data()[14 + 7], 8, "hop limit decremented");
        let d = Decap::parse(frames[1].data()).unwrap();
        assert_eq!(d.carrier, chainroute_wire::tunnel::Carrier::Udp { src: t.src, dst: t.dst });
        assert_eq!(c.snapshot().total_drops(), 2);
    }

    #[test]
    fn bind_then_anycast_delivery() {
        let mut fib = Fib::new();
        fib.insert("2001:db8:1::/48".parse().unwrap(), NextHop::Local { port: 0, mac: MacAddr::BROADCAST });
        let mut sec = Security::new(SecurityConfig::default());
        let mut p = Pipeline::new(fib.reader().unwrap(), vec![PortInfo { mac: ME }]).with_security(sec.reader().unwrap());
        let w = Wallet([0x42; 20]);
        let key = DeviceKey::from_seed(&[7; 32]);
        let now = unix_now();
        sec.devices().upsert_bytes(w, key.public().as_bytes(), now + 60).unwrap();
        sec.publish();
        let u = Address::unicast(&"2001:db8:1:5::".parse().unwrap(), w);
        let mut hdr = [0u8; BIND_LEN];
        emit_signed_bind(&key, BindRepr { next_header: 59, wallet: w, unicast: u, expiry: now + 60, sequence: 1, device_key: [0; 32], signature: [0; 64] }, &mut hdr).unwrap();
        let bind = frame(u, Address::UNSPECIFIED, next_header::BIND, &hdr);
        let to_anycast = frame(u, Address::anycast(w), 59, b"hi");
        let mut frames = vec![VecFrame::new(&bind), VecFrame::new(&to_anycast)];
        let (v, c) = run(&mut p, &mut frames);
        // Same burst: the binding is not published yet, so the data is unproven.
        assert_eq!(v, vec![Verdict::Consumed, Verdict::Drop(DropReason::SpoofedSource)]);
        assert_eq!(c.snapshot().binds_accepted, 1);
        sec.poll(now);
        assert_eq!(sec.binding(&w).unwrap().unicast, u);
        let mut frames = vec![VecFrame::new(&to_anycast), VecFrame::new(&bind)];
        let (v, _) = run(&mut p, &mut frames);
        assert_eq!(v, vec![Verdict::Tx(0), Verdict::Drop(DropReason::BindRejected)], "delivered; the replayed BIND refused");
        let out = frames[0].data();
        assert_eq!(&out[..6], &HOST.0, "back through the binding's ingress");
        assert_eq!(Address::from_slice(&out[14 + w3ip::DST_OFFSET..]).unwrap(), u, "locator rewritten");
    }
}
