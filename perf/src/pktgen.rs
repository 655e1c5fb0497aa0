//! chainroute-pktgen's traffic, independent of DPDK: W3IP frames (native or in
//! UDP/IPv4), destinations drawn from a prefix table (uniform or Zipf), a mix of
//! traffic classes (plain data, AUTH-signed, BIND, invalid, spoofed, bad
//! signature), the in-payload stamp the receiver reads back (stream, class,
//! sequence, TSC), and the latency histogram. The DPDK side is [`crate::traffic`].
//!
//! A frame's last [`STAMP_LEN`] bytes of W3IP payload are its stamp:
//!
//! ```text
//! "CRPG" | class u8 | flags u8 | template u16 | sequence u64 | tx tsc u64   (big-endian)
//! ```
//!
//! Only plain data frames are stamped per packet (sequence and TSC are patched at
//! TX time, the UDP checksum is fixed up incrementally). Signed frames keep the
//! stamp they were signed with (flag [`FLAG_FIXED`]): the signature covers it.

use crate::rng::Rng;
use crate::table::address_inside;
use chainroute_crypto::signed::{build_signed_packet, emit_signed_bind};
use chainroute_crypto::DeviceKey;
use chainroute_dataplane::pcap::PcapWriter;
use chainroute_wire::ext::{next_header, BindRepr, BIND_LEN};
use chainroute_wire::tunnel::{emit_native, UdpTunnel};
use chainroute_wire::{ethernet, w3ip, Address, MacAddr, Prefix, Wallet};
use std::net::SocketAddr;

/// Bytes of the stamp at the end of every generated W3IP packet.
pub const STAMP_LEN: usize = 24;
pub const STAMP_MAGIC: &[u8; 4] = b"CRPG";
/// The stamp's TSC and sequence were fixed when the frame was built (signed frames).
pub const FLAG_FIXED: u8 = 1;
/// Ethernet (14) + IPv4 (20) + UDP (8).
pub const TUNNEL4_OVERHEAD: usize = 42;
/// The smallest frame that carries a stamp: Ethernet + W3IP header + stamp.
pub const MIN_FRAME: usize = ethernet::HEADER_LEN + w3ip::HEADER_LEN + STAMP_LEN;

/// Traffic classes. The first three are meant to be forwarded; the others are
/// meant to be dropped (or consumed) by a router with security on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Class {
    /// Plain data, native W3IP over Ethernet (EtherType 0x88B5).
    Native = 0,
    /// Plain data in UDP/IPv4 to port 5733.
    Tunnel = 1,
    /// Data with an AUTH header signed by the identity's device key (native).
    Signed = 2,
    /// Signed BINDs with growing sequences, cycled (replays once the cycle wraps).
    Bind = 3,
    /// Malformed: bad version, truncated, hop limit 1, bad UDP checksum, unknown extension.
    Invalid = 4,
    /// Data from an address inside our locator with a wallet nobody bound.
    Spoofed = 5,
    /// AUTH with one signature bit flipped.
    BadSig = 6,
}

pub const CLASSES: usize = 7;

impl Class {
    pub const ALL: [Class; CLASSES] = [
        Class::Native,
        Class::Tunnel,
        Class::Signed,
        Class::Bind,
        Class::Invalid,
        Class::Spoofed,
        Class::BadSig,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Native => "native",
            Class::Tunnel => "tunnel",
            Class::Signed => "signed",
            Class::Bind => "bind",
            Class::Invalid => "invalid",
            Class::Spoofed => "spoofed",
            Class::BadSig => "badsig",
        }
    }

    pub fn from_name(s: &str) -> Option<Class> {
        Class::ALL.iter().copied().find(|c| c.name() == s)
    }

    /// Meant to come back through a router (counted for loss).
    pub fn deliverable(self) -> bool {
        matches!(self, Class::Native | Class::Tunnel | Class::Signed)
    }

    fn from_u8(v: u8) -> Option<Class> {
        Class::ALL.get(v as usize).copied()
    }
}

/// How destinations are drawn from the prefix table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Uniform,
    /// Zipf with exponent s over the table's order (rank 1 = first prefix).
    Zipf(f64),
}

/// A host identity for BIND/AUTH: wallets and the device key they authorised.
#[derive(Clone)]
pub struct Identity {
    /// Bound natively (native and signed classes come from it).
    pub native_wallet: Wallet,
    /// Bound through UDP (the tunnel class comes from it); may equal native_wallet
    /// when the tunnel class is unused.
    pub tunnel_wallet: Wallet,
    pub key: DeviceKey,
    /// Top 96 bits: the locator the router serves locally.
    pub locator: Address,
    /// BIND sequence base (the generator's first BINDs use it; the mix uses base+1..).
    pub sequence: u64,
    /// Unix seconds the BINDs are valid until.
    pub expiry: u64,
}

impl Identity {
    pub fn native_unicast(&self) -> Address {
        Address::unicast(&self.locator, self.native_wallet)
    }
    pub fn tunnel_unicast(&self) -> Address {
        Address::unicast(&self.locator, self.tunnel_wallet)
    }
}

/// Everything the frames depend on.
#[derive(Clone)]
pub struct MixConfig {
    /// Ethernet frame size without FCS (at least [`MIN_FRAME`]; tunnel frames too).
    pub size: usize,
    pub prefixes: Vec<Prefix>,
    pub dist: Dist,
    /// Flow labels (and UDP source ports) cycle over this many values: RSS spreads them.
    pub flows: u32,
    /// Integer weights per class.
    pub weights: [u32; CLASSES],
    /// Frames in the pool the generator cycles through.
    pub pool: usize,
    pub src_mac: MacAddr,
    /// The router's MAC.
    pub dst_mac: MacAddr,
    /// Outer IPv4 source of tunnel frames (the port varies with the flow).
    pub tunnel_src: SocketAddr,
    /// The router's tunnel endpoint.
    pub tunnel_dst: SocketAddr,
    /// Source of data frames when there is no identity.
    pub src: Address,
    pub identity: Option<Identity>,
    pub hop_limit: u8,
    pub seed: u64,
}

impl MixConfig {
    pub fn new(prefixes: Vec<Prefix>) -> MixConfig {
        let mut weights = [0; CLASSES];
        weights[Class::Native as usize] = 1;
        MixConfig {
            size: 128,
            prefixes,
            dist: Dist::Uniform,
            flows: 1024,
            weights,
            pool: 4096,
            src_mac: MacAddr([2, 0, 0, 0, 0x6e, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            tunnel_src: "10.3.0.2:40000".parse().unwrap(),
            tunnel_dst: "10.3.0.1:5733".parse().unwrap(),
            src: "2001:db8::1".parse().unwrap(),
            identity: None,
            hop_limit: 64,
            seed: 1,
        }
    }

    /// Parses `native=70,tunnel=20,signed=5` into weights (classes not named get 0).
    pub fn parse_mix(text: &str) -> Result<[u32; CLASSES], String> {
        let mut w = [0u32; CLASSES];
        for part in text.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, "1"));
            let c = Class::from_name(k.trim()).ok_or_else(|| format!("--mix: unknown class {k:?} (native, tunnel, signed, bind, invalid, spoofed, badsig)"))?;
            w[c as usize] = v
                .trim()
                .parse()
                .map_err(|_| format!("--mix: {v:?} is not a whole number"))?;
        }
        if w.iter().all(|&x| x == 0) {
            return Err("--mix: every weight is zero".into());
        }
        Ok(w)
    }
}

/// One frame of the pool.
#[derive(Debug, Clone)]
pub struct Template {
    pub frame: Vec<u8>,
    pub class: Class,
    /// Offset of the stamp's sequence field when the sequence and TSC are patched per packet.
    pub stamp_seq_at: Option<usize>,
    /// Offset of the UDP checksum to fix up after patching (tunnel frames).
    pub udp_csum_at: Option<usize>,
    /// Flow number (the worker/queue it belongs to is flow % queues).
    pub flow: u32,
}

/// Draws destinations (uniform or Zipf over the table order).
pub struct DstPicker {
    prefixes: Vec<Prefix>,
    cdf: Vec<f64>,
}

impl DstPicker {
    pub fn new(prefixes: &[Prefix], dist: Dist) -> DstPicker {
        let cdf = match dist {
            Dist::Uniform => Vec::new(),
            Dist::Zipf(s) => {
                let mut acc = 0.0;
                let mut v: Vec<f64> = (1..=prefixes.len())
                    .map(|k| {
                        acc += 1.0 / (k as f64).powf(s);
                        acc
                    })
                    .collect();
                let total = acc.max(f64::MIN_POSITIVE);
                v.iter_mut().for_each(|x| *x /= total);
                v
            }
        };
        DstPicker {
            prefixes: prefixes.to_vec(),
            cdf,
        }
    }

    pub fn pick(&self, rng: &mut Rng) -> Address {
        let i = if self.cdf.is_empty() {
            rng.below(self.prefixes.len() as u64) as usize
        } else {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            self.cdf
                .partition_point(|&c| c < u)
                .min(self.prefixes.len() - 1)
        };
        address_inside(rng, &self.prefixes[i])
    }
}

fn stamp(buf: &mut [u8], class: Class, flags: u8, template: u16, seq: u64, tsc: u64) {
    let n = buf.len();
    let s = &mut buf[n - STAMP_LEN..];
    s[0..4].copy_from_slice(STAMP_MAGIC);
    s[4] = class as u8;
    s[5] = flags;
    s[6..8].copy_from_slice(&template.to_be_bytes());
    s[8..16].copy_from_slice(&seq.to_be_bytes());
    s[16..24].copy_from_slice(&tsc.to_be_bytes());
}

/// A stamp read back from a received W3IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub class: Class,
    pub flags: u8,
    pub template: u16,
    pub seq: u64,
    pub tsc: u64,
}

/// Reads the stamp at the end of a W3IP packet (exactly the packet's bytes).
pub fn read_stamp(packet: &[u8]) -> Option<Stamp> {
    let n = packet.len();
    if n < w3ip::HEADER_LEN + STAMP_LEN {
        return None;
    }
    let s = &packet[n - STAMP_LEN..];
    if &s[0..4] != STAMP_MAGIC {
        return None;
    }
    Some(Stamp {
        class: Class::from_u8(s[4])?,
        flags: s[5],
        template: u16::from_be_bytes([s[6], s[7]]),
        seq: u64::from_be_bytes(s[8..16].try_into().unwrap()),
        tsc: u64::from_be_bytes(s[16..24].try_into().unwrap()),
    })
}

/// A W3IP packet of `len` bytes (header + `ext` + zero payload + stamp).
fn w3ip_packet(
    len: usize,
    src: Address,
    dst: Address,
    flow: u32,
    hop: u8,
    nh: u8,
    ext: &[u8],
) -> Vec<u8> {
    let repr = w3ip::Repr {
        traffic_class: 0,
        flow_label: flow & 0xfffff,
        payload_len: (len - w3ip::HEADER_LEN) as u16,
        next_header: nh,
        hop_limit: hop,
        src_addr: src,
        dst_addr: dst,
    };
    let mut p = vec![0u8; len];
    repr.emit(&mut w3ip::Packet::new_unchecked(&mut p[..]))
        .expect("sized buffer");
    p[w3ip::HEADER_LEN..w3ip::HEADER_LEN + ext.len()].copy_from_slice(ext);
    p
}

fn native_frame(packet: &[u8], src: MacAddr, dst: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + packet.len()];
    f[ethernet::HEADER_LEN..].copy_from_slice(packet);
    emit_native(&mut f, src, dst).expect("room for Ethernet");
    f
}

fn tunnel_frame(packet: &[u8], t: &UdpTunnel) -> Vec<u8> {
    let mut f = vec![0u8; t.header_len() + packet.len()];
    f[t.header_len()..].copy_from_slice(packet);
    t.emit(&mut f, packet.len())
        .expect("room for the outer headers");
    f
}

/// A signed BIND packet (W3IP, no Ethernet): `wallet` at `unicast`.
pub fn bind_packet(
    key: &DeviceKey,
    wallet: Wallet,
    unicast: Address,
    seq: u64,
    expiry: u64,
    hop: u8,
) -> Vec<u8> {
    let mut hdr = [0u8; BIND_LEN];
    let bind = BindRepr {
        next_header: next_header::NO_NEXT,
        wallet,
        unicast,
        expiry,
        sequence: seq,
        device_key: [0; 32],
        signature: [0; 64],
    };
    emit_signed_bind(key, bind, &mut hdr).expect("fixed-size header");
    w3ip_packet(
        w3ip::HEADER_LEN + BIND_LEN,
        unicast,
        Address::UNSPECIFIED,
        0,
        hop,
        next_header::BIND,
        &hdr,
    )
}

impl MixConfig {
    fn tunnel(&self, flow: u32) -> UdpTunnel {
        let mut src = self.tunnel_src;
        // Without an identity the UDP source port follows the flow (RSS spreads it).
        // A bound host has one endpoint: its binding names that port, so it stays.
        if self.identity.is_none() {
            src.set_port(
                self.tunnel_src
                    .port()
                    .wrapping_add((flow % 16384) as u16)
                    .max(1),
            );
        }
        UdpTunnel {
            eth_src: self.src_mac,
            eth_dst: self.dst_mac,
            src,
            dst: self.tunnel_dst,
            outer_hop_limit: 64,
            ipv4_udp_checksum: true,
        }
    }

    /// W3IP length of a native frame / of a tunnelled one of `size` bytes.
    fn native_len(&self) -> usize {
        self.size.max(MIN_FRAME) - ethernet::HEADER_LEN
    }
    fn tunnel_len(&self) -> usize {
        self.size
            .max(TUNNEL4_OVERHEAD + w3ip::HEADER_LEN + STAMP_LEN)
            - TUNNEL4_OVERHEAD
    }

    /// The BINDs that make the identity's sources valid: the native wallet's (native
    /// frame) and the tunnel wallet's (UDP frame from `tunnel_src`), sequence `seq`.
    pub fn bind_frames(&self, seq: u64) -> Vec<Vec<u8>> {
        let Some(id) = &self.identity else {
            return Vec::new();
        };
        let mut out = vec![native_frame(
            &bind_packet(
                &id.key,
                id.native_wallet,
                id.native_unicast(),
                seq,
                id.expiry,
                self.hop_limit,
            ),
            self.src_mac,
            self.dst_mac,
        )];
        if id.tunnel_wallet != id.native_wallet {
            // Flow 0: the same UDP source port the tunnel class uses for its flow 0.
            out.push(tunnel_frame(
                &bind_packet(
                    &id.key,
                    id.tunnel_wallet,
                    id.tunnel_unicast(),
                    seq,
                    id.expiry,
                    self.hop_limit,
                ),
                &self.tunnel(0),
            ));
        }
        out
    }

    /// Builds the pool: each class gets a share of `pool` frames proportional to its
    /// weight (at least one when its weight is not zero), shuffled.
    pub fn templates(&self) -> Result<Vec<Template>, String> {
        if self.prefixes.is_empty() {
            return Err("no destination prefixes".into());
        }
        if self.size > 1514 {
            return Err(format!("frame size {} is above 1514", self.size));
        }
        let total: u64 = self.weights.iter().map(|&w| w as u64).sum();
        if total == 0 {
            return Err("every class weight is zero".into());
        }
        let needs_id = [Class::Signed, Class::Bind, Class::BadSig]
            .iter()
            .any(|c| self.weights[*c as usize] > 0);
        if needs_id && self.identity.is_none() {
            return Err("signed, bind and badsig frames need an identity (--wallet, --device-seed, --locator)".into());
        }
        let mut rng = Rng::new(self.seed);
        let picker = DstPicker::new(&self.prefixes, self.dist);
        let flows = self.flows.max(1);
        let mut classes = Vec::with_capacity(self.pool);
        for c in Class::ALL {
            let w = self.weights[c as usize] as u64;
            if w == 0 {
                continue;
            }
            let n = ((self.pool as u64 * w) / total).max(1);
            classes.extend(std::iter::repeat_n(c, n as usize));
        }
        // Fisher-Yates with our seeded generator.
        for i in (1..classes.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            classes.swap(i, j);
        }
        let (nsrc, tsrc) = match &self.identity {
            Some(id) => (id.native_unicast(), id.tunnel_unicast()),
            None => (self.src, self.src),
        };
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(classes.len());
        let mut counts = [0u32; CLASSES];
        for (i, &class) in classes.iter().enumerate() {
            let flow = i as u32 % flows;
            let dst = picker.pick(&mut rng);
            let k = counts[class as usize];
            counts[class as usize] += 1;
            let tid = i as u16;
            let t = match class {
                Class::Native | Class::Spoofed => {
                    let src = if class == Class::Spoofed {
                        let id_loc = self
                            .identity
                            .as_ref()
                            .map(|id| id.locator)
                            .unwrap_or(self.src);
                        let mut w = [0u8; 20];
                        w.copy_from_slice(&rng.bytes32()[..20]);
                        Address::unicast(&id_loc, Wallet(w))
                    } else {
                        nsrc
                    };
                    let mut p = w3ip_packet(
                        self.native_len(),
                        src,
                        dst,
                        flow,
                        self.hop_limit,
                        next_header::NO_NEXT,
                        &[],
                    );
                    stamp(&mut p, class, 0, tid, 0, 0);
                    let f = native_frame(&p, self.src_mac, self.dst_mac);
                    let at = f.len() - STAMP_LEN + 8;
                    Template {
                        frame: f,
                        class,
                        stamp_seq_at: Some(at),
                        udp_csum_at: None,
                        flow,
                    }
                }
                Class::Tunnel => {
                    let mut p = w3ip_packet(
                        self.tunnel_len(),
                        tsrc,
                        dst,
                        flow,
                        self.hop_limit,
                        next_header::NO_NEXT,
                        &[],
                    );
                    stamp(&mut p, class, 0, tid, 0, 0);
                    let f = tunnel_frame(&p, &self.tunnel(flow));
                    let at = f.len() - STAMP_LEN + 8;
                    Template {
                        frame: f,
                        class,
                        stamp_seq_at: Some(at),
                        udp_csum_at: Some(ethernet::HEADER_LEN + 20 + 6),
                        flow,
                    }
                }
                Class::Signed | Class::BadSig => {
                    let id = self.identity.as_ref().expect("checked above");
                    let len = self
                        .native_len()
                        .max(w3ip::HEADER_LEN + chainroute_wire::ext::AUTH_LEN + STAMP_LEN);
                    let payload_len = len - w3ip::HEADER_LEN - chainroute_wire::ext::AUTH_LEN;
                    let mut payload = vec![0u8; payload_len];
                    stamp(&mut payload, class, FLAG_FIXED, tid, k as u64, 0);
                    let repr = w3ip::Repr {
                        traffic_class: 0,
                        flow_label: flow & 0xfffff,
                        payload_len: 0,
                        next_header: 0,
                        hop_limit: self.hop_limit,
                        src_addr: nsrc,
                        dst_addr: dst,
                    };
                    let mut p = vec![0u8; len];
                    build_signed_packet(
                        &id.key,
                        &repr,
                        next_header::NO_NEXT,
                        &payload,
                        &mut p,
                        &mut scratch,
                    )
                    .map_err(|e| format!("signing: {e:?}"))?;
                    if class == Class::BadSig {
                        // A bit of S (the signature's second half) flipped.
                        p[w3ip::HEADER_LEN + 40 + 40] ^= 0x01;
                    }
                    Template {
                        frame: native_frame(&p, self.src_mac, self.dst_mac),
                        class,
                        stamp_seq_at: None,
                        udp_csum_at: None,
                        flow,
                    }
                }
                Class::Bind => {
                    let id = self.identity.as_ref().expect("checked above");
                    let p = bind_packet(
                        &id.key,
                        id.native_wallet,
                        id.native_unicast(),
                        id.sequence + 1 + k as u64,
                        id.expiry,
                        self.hop_limit,
                    );
                    Template {
                        frame: native_frame(&p, self.src_mac, self.dst_mac),
                        class,
                        stamp_seq_at: None,
                        udp_csum_at: None,
                        flow,
                    }
                }
                Class::Invalid => self.invalid(k, nsrc, dst, flow, tid),
            };
            out.push(t);
        }
        Ok(out)
    }

    /// Malformed frames, cycling over five ways to be wrong.
    fn invalid(&self, k: u32, src: Address, dst: Address, flow: u32, tid: u16) -> Template {
        let class = Class::Invalid;
        let mut p = w3ip_packet(
            self.native_len(),
            src,
            dst,
            flow,
            self.hop_limit,
            next_header::NO_NEXT,
            &[],
        );
        stamp(&mut p, class, FLAG_FIXED, tid, k as u64, 0);
        let frame = match k % 5 {
            0 => {
                p[0] = (p[0] & 0x0f) | 0x20; // version 2
                native_frame(&p, self.src_mac, self.dst_mac)
            }
            1 => {
                let n = p.len() as u16 - w3ip::HEADER_LEN as u16 + 200; // payload length beyond the frame
                p[4..6].copy_from_slice(&n.to_be_bytes());
                native_frame(&p, self.src_mac, self.dst_mac)
            }
            2 => {
                p[7] = 1; // would leave with hop limit 0
                native_frame(&p, self.src_mac, self.dst_mac)
            }
            3 => {
                let mut p = w3ip_packet(
                    self.tunnel_len(),
                    src,
                    dst,
                    flow,
                    self.hop_limit,
                    next_header::NO_NEXT,
                    &[],
                );
                stamp(&mut p, class, FLAG_FIXED, tid, k as u64, 0);
                let mut f = tunnel_frame(&p, &self.tunnel(flow));
                let c = ethernet::HEADER_LEN + 20 + 6;
                f[c] ^= 0x5a; // UDP checksum wrong
                f
            }
            _ => {
                p[6] = 0; // IPv6 hop-by-hop: an extension W3IP does not define
                native_frame(&p, self.src_mac, self.dst_mac)
            }
        };
        Template {
            frame,
            class,
            stamp_seq_at: None,
            udp_csum_at: None,
            flow,
        }
    }
}

/// Writes sequence and TSC into a frame built from `t` (a copy of `t.frame`) and
/// fixes the UDP checksum incrementally (RFC 1624). `frame` must be that copy.
#[inline]
pub fn patch(t: &Template, frame: &mut [u8], seq: u64, tsc: u64) {
    let Some(at) = t.stamp_seq_at else { return };
    let mut new = [0u8; 16];
    new[..8].copy_from_slice(&seq.to_be_bytes());
    new[8..].copy_from_slice(&tsc.to_be_bytes());
    if let Some(c) = t.udp_csum_at {
        // The template's stamp holds zeros there, so the old words add nothing:
        // HC' = ~(~HC + sum(new words)). The UDP payload offset parity: `at` is even
        // relative to the UDP header when (at - udp_start) is even.
        let udp_start = c - 6;
        let mut sum: u32 = !u16::from_be_bytes([frame[c], frame[c + 1]]) as u32 & 0xffff;
        let odd = (at - udp_start) % 2 == 1;
        for (i, &b) in new.iter().enumerate() {
            let b = b as u32;
            sum += if (i % 2 == 0) != odd { b << 8 } else { b };
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let mut hc = !(sum as u16);
        if hc == 0 {
            hc = 0xffff;
        }
        frame[c..c + 2].copy_from_slice(&hc.to_be_bytes());
    }
    frame[at..at + 16].copy_from_slice(&new);
}

/// Writes `count` frames cycled from the pool to a pcap file (sequence = index, TSC 0).
pub fn write_pcap(
    path: &std::path::Path,
    templates: &[Template],
    count: usize,
) -> std::io::Result<()> {
    let mut w = PcapWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?))?;
    for i in 0..count {
        let t = &templates[i % templates.len()];
        let mut f = t.frame.clone();
        patch(t, &mut f, i as u64, 0);
        w.write(i as u64 * 10, &f)?;
    }
    use std::io::Write;
    w.into_inner().flush()
}

/// A log-linear latency histogram in nanoseconds (8 sub-buckets per power of two).
#[derive(Debug, Clone)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: u128,
    pub min: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; 8 + 61 * 8],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Histogram {
    #[inline]
    fn index(ns: u64) -> usize {
        if ns < 8 {
            return ns as usize;
        }
        let p = 63 - ns.leading_zeros() as usize; // >= 3
        8 + (p - 3) * 8 + ((ns >> (p - 3)) & 7) as usize
    }

    fn lower(i: usize) -> u64 {
        if i < 8 {
            return i as u64;
        }
        let p = (i - 8) / 8 + 3;
        let sub = ((i - 8) % 8) as u64;
        (8 + sub) << (p - 3)
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        let i = Self::index(ns).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += ns as u128;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The value below which `q` (0..1) of the samples lie (a bucket's lower bound).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if q >= 1.0 {
            return self.max;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, &b) in self.buckets.iter().enumerate() {
            acc += b;
            if acc >= want {
                return Self::lower(i).max(self.min).min(self.max);
            }
        }
        self.max
    }

    pub fn to_json(&self) -> serde_json::Value {
        if self.count == 0 {
            return serde_json::Value::Null;
        }
        let us = |ns: u64| (ns as f64 / 10.0).round() / 100.0;
        serde_json::json!({
            "samples": self.count,
            "min_us": us(self.min),
            "avg_us": us((self.sum / self.count as u128) as u64),
            "p50_us": us(self.quantile(0.5)),
            "p99_us": us(self.quantile(0.99)),
            "p999_us": us(self.quantile(0.999)),
            "max_us": us(self.max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainroute_wire::tunnel::Decap;

    fn cfg() -> MixConfig {
        let mut c = MixConfig::new(vec![
            "2002::/16".parse().unwrap(),
            "2002:1::/32".parse().unwrap(),
        ]);
        c.pool = 200;
        c.identity = Some(Identity {
            native_wallet: Wallet([0x11; 20]),
            tunnel_wallet: Wallet([0x22; 20]),
            key: DeviceKey::from_seed(&[7; 32]),
            locator: "2001:0:0:6e::".parse().unwrap(),
            sequence: 1000,
            expiry: 4_000_000_000,
        });
        c.weights =
            MixConfig::parse_mix("native=5,tunnel=3,signed=1,bind=1,invalid=1,spoofed=1,badsig=1")
                .unwrap();
        c
    }

    #[test]
    fn every_class_parses_as_intended_and_stamps_survive_patching() {
        let c = cfg();
        let ts = c.templates().unwrap();
        let mut seen = [0; CLASSES];
        let mut scratch = Vec::new();
        for (i, t) in ts.iter().enumerate() {
            seen[t.class as usize] += 1;
            let mut f = t.frame.clone();
            patch(t, &mut f, 0x0102030405060708 + i as u64, 0xa0b0c0d0e0f00010);
            let d = Decap::parse(&f);
            match t.class {
                Class::Invalid => continue,
                _ => {
                    let d = d.unwrap_or_else(|e| panic!("{:?}: {e:?}", t.class));
                    let p = &f[d.inner.clone()];
                    if t.class != Class::Bind {
                        let s = read_stamp(p).expect("stamp");
                        assert_eq!(s.class, t.class);
                        assert_eq!(s.template, i as u16);
                        if t.stamp_seq_at.is_some() {
                            assert_eq!(
                                (s.seq, s.tsc),
                                (0x0102030405060708 + i as u64, 0xa0b0c0d0e0f00010)
                            );
                        }
                    }
                    if t.class == Class::Signed {
                        chainroute_crypto::signed::verify_packet_self(p, &mut scratch)
                            .expect("valid AUTH");
                    }
                    if t.class == Class::BadSig {
                        assert!(
                            chainroute_crypto::signed::verify_packet_self(p, &mut scratch).is_err()
                        );
                    }
                    if t.class == Class::Bind {
                        let w = w3ip::Packet::new_checked(p).unwrap();
                        chainroute_crypto::signed::verify_bind_bytes(&w.payload()[..BIND_LEN])
                            .expect("valid BIND");
                    }
                }
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        // Data frames have the asked size (tunnelled ones at least 138 B: outer headers +
        // W3IP header + stamp); AUTH (214 B) and BIND (254 B) frames cannot be smaller.
        for t in &ts {
            let want = match t.class {
                Class::Native | Class::Spoofed => Some(128),
                Class::Tunnel => Some(138),
                _ => None,
            };
            assert!(
                want.is_none_or(|w| w == t.frame.len()),
                "{:?} {}",
                t.class,
                t.frame.len()
            );
        }
        // Binds for both wallets parse.
        for f in c.bind_frames(5) {
            Decap::parse(&f).unwrap();
        }
    }

    #[test]
    fn invalid_frames_are_rejected_by_the_parser_or_the_router_rules() {
        let c = cfg();
        for t in c
            .templates()
            .unwrap()
            .iter()
            .filter(|t| t.class == Class::Invalid)
        {
            let bad = match Decap::parse(&t.frame) {
                Err(_) => true,
                Ok(d) => {
                    let p = &t.frame[d.inner];
                    p[7] <= 1
                        || chainroute_wire::ext::Extensions::parse(&w3ip::Packet::new_unchecked(p))
                            .is_err()
                }
            };
            assert!(bad, "{:02x?}", &t.frame[..40]);
        }
    }

    #[test]
    fn zipf_prefers_the_first_prefixes_and_histogram_quantiles() {
        let ps: Vec<Prefix> = (0..100u16)
            .map(|i| format!("2002:{i:x}::/32").parse().unwrap())
            .collect();
        let z = DstPicker::new(&ps, Dist::Zipf(1.2));
        let mut rng = Rng::new(3);
        let first = (0..10000)
            .filter(|_| ps[0].contains(&z.pick(&mut rng)))
            .count();
        assert!(first > 2000, "{first}");
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((440_000..=500_000).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
    }
}
