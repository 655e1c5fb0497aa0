//! Per-core counters. Each worker owns one [`CoreCounters`] and is its only writer:
//! it adds with a plain load + store (no locked read-modify-write), once per burst.
//! Anyone may read them at any time with relaxed loads; a reader may see a burst's
//! packets and not yet its bytes, never a torn value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Ports a dataplane can have (counters are sized for it).
pub const MAX_PORTS: usize = 16;

/// A loop gap counted as a stall: 100 µs is a 1024-slot RX ring filled at ~10 Mpps,
/// while a busy loop over a full burst takes a few microseconds.
pub const STALL_NS: u64 = 100_000;

/// Why a packet was dropped. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Neither native W3IP nor W3IP in UDP/5733.
    NotW3ip,
    /// Unicast to another Ethernet address (ports run promiscuous).
    OtherHost,
    /// Shorter than a header or a length field says.
    Truncated,
    /// A version nibble that is not W3IP 1 / IPv4 / IPv6.
    BadVersion,
    /// A length field inconsistent with the headers.
    BadLength,
    /// An outer IPv4 header or UDP checksum that does not verify.
    BadChecksum,
    /// An outer fragment.
    Fragmented,
    /// An undefined, duplicated or non-zero-reserved extension header.
    BadExtension,
    /// Hop limit 0 or 1 on arrival: it would leave with 0.
    HopLimitExpired,
    /// No route covers the destination.
    NoRoute,
    /// The route says blackhole.
    Blackhole,
    /// The buffer has no headroom for the outer headers of a tunnel.
    NoHeadroom,
    /// The egress port is not up or does not exist.
    BadEgress,
    /// The TX queue was full.
    TxFull,
    /// The source is not proven: no binding on this ingress, no peer license covering it.
    SpoofedSource,
    /// An AUTH or BIND signature that does not verify, or a weak/malformed key.
    BadSignature,
    /// The signing key is not authorised (or no longer) for the wallet.
    Unauthorised,
    /// A BIND that is stale, replayed, expired, unauthorised or outside our prefixes.
    BindRejected,
    /// Shed before verification: the source's signature budget for this burst was spent.
    SignatureShed,
    /// An anycast destination whose wallet has no live binding.
    UnknownWallet,
}

impl DropReason {
    pub const ALL: [DropReason; 20] = [
        DropReason::NotW3ip,
        DropReason::OtherHost,
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadLength,
        DropReason::BadChecksum,
        DropReason::Fragmented,
        DropReason::BadExtension,
        DropReason::HopLimitExpired,
        DropReason::NoRoute,
        DropReason::Blackhole,
        DropReason::NoHeadroom,
        DropReason::BadEgress,
        DropReason::TxFull,
        DropReason::SpoofedSource,
        DropReason::BadSignature,
        DropReason::Unauthorised,
        DropReason::BindRejected,
        DropReason::SignatureShed,
        DropReason::UnknownWallet,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The label used in logs, metrics and the API.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NotW3ip => "not_w3ip",
            DropReason::OtherHost => "other_host",
            DropReason::Truncated => "truncated",
            DropReason::BadVersion => "bad_version",
            DropReason::BadLength => "bad_length",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Fragmented => "fragmented",
            DropReason::BadExtension => "bad_extension",
            DropReason::HopLimitExpired => "hop_limit_expired",
            DropReason::NoRoute => "no_route",
            DropReason::Blackhole => "blackhole",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::BadEgress => "bad_egress",
            DropReason::TxFull => "tx_full",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::BadSignature => "bad_signature",
            DropReason::Unauthorised => "unauthorised_key",
            DropReason::BindRejected => "bind_rejected",
            DropReason::SignatureShed => "signature_shed",
            DropReason::UnknownWallet => "unknown_wallet",
        }
    }

    /// The reason a wire parse error is counted under.
    pub fn from_wire(e: chainroute_wire::Error) -> DropReason {
        use chainroute_wire::Error as E;
        match e {
            E::Truncated | E::BufferTooSmall => DropReason::Truncated,
            E::BadVersion(_) => DropReason::BadVersion,
            E::BadLength => DropReason::BadLength,
            E::UnknownExtension(_) | E::DuplicateExtension(_) | E::ReservedNotZero => DropReason::BadExtension,
            E::BadChecksum => DropReason::BadChecksum,
            E::Fragmented => DropReason::Fragmented,
            E::NotW3ip => DropReason::NotW3ip,
        }
    }
}

/// One port's packet and byte counts on one core.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
}

/// A worker's counters, on their own cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub struct CoreCounters {
    pub ports: [PortCounters; MAX_PORTS],
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Loop iterations, and those that received at least one packet.
    pub loops: AtomicU64,
    pub busy_loops: AtomicU64,
    /// Loops that began at least [`STALL_NS`] after the one before: the worker was
    /// away (preempted, faulting, a slow burst) long enough for a ring to overflow.
    pub stalls: AtomicU64,
    /// The longest gap between two loops, in nanoseconds (a maximum, not a sum).
    pub longest_loop_ns: AtomicU64,
    /// Signatures verified (single or in batches) and batches run.
    pub verified: AtomicU64,
    pub batches: AtomicU64,
    /// BINDs verified and handed to the binding table.
    pub binds_accepted: AtomicU64,
}

impl Default for CoreCounters {
    fn default() -> Self {
        CoreCounters {
            ports: Default::default(),
            drops: Default::default(),
            loops: AtomicU64::new(0),
            busy_loops: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            longest_loop_ns: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            binds_accepted: AtomicU64::new(0),
        }
    }
}

/// A worker's clock between loops: feeds `stalls` and `longest_loop_ns` from the
/// TSC read at the top of each loop (one subtraction and compare per loop).
#[derive(Debug, Clone, Copy)]
pub struct LoopClock {
    tsc_hz: u64,
    stall_ticks: u64,
    last: u64,
    longest: u64,
}

impl LoopClock {
    pub fn new(tsc_hz: u64, now: u64) -> LoopClock {
        let tsc_hz = tsc_hz.max(1);
        let stall_ticks = (tsc_hz as u128 * STALL_NS as u128 / 1_000_000_000).max(1) as u64;
        LoopClock { tsc_hz, stall_ticks, last: now, longest: 0 }
    }

    /// A loop begins at `now` (TSC ticks, never behind the last call).
    #[inline]
    pub fn tick(&mut self, now: u64, c: &CoreCounters) {
        let gap = now.saturating_sub(self.last);
        self.last = now;
        if gap > self.longest {
            self.longest = gap;
            let ns = (gap as u128 * 1_000_000_000 / self.tsc_hz as u128) as u64;
            c.longest_loop_ns.store(ns, Relaxed);
        }
        if gap >= self.stall_ticks {
            bump(&c.stalls, 1);
        }
    }
}

/// Adds `n` to a counter this thread alone writes.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

impl CoreCounters {
    #[inline]
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        bump(&self.drops[reason as usize], n);
    }

    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|d| d.load(Relaxed)).sum()
    }

    /// A plain copy of every figure, for reports.
    pub fn snapshot(&self) -> CounterSnapshot {
        let mut s = CounterSnapshot::default();
        s.add(self);
        s
    }
}

/// Counters read at one moment (summed over cores where needed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub rx_packets: [u64; MAX_PORTS],
    pub rx_bytes: [u64; MAX_PORTS],
    pub tx_packets: [u64; MAX_PORTS],
    pub tx_bytes: [u64; MAX_PORTS],
    pub drops: [u64; DropReason::COUNT],
    pub loops: u64,
    pub busy_loops: u64,
    pub stalls: u64,
    /// Over several cores: the longest of any.
    pub longest_loop_ns: u64,
    pub verified: u64,
    pub batches: u64,
    pub binds_accepted: u64,
}

impl CounterSnapshot {
    pub fn add(&mut self, c: &CoreCounters) {
        for (i, p) in c.ports.iter().enumerate() {
            self.rx_packets[i] += p.rx_packets.load(Relaxed);
            self.rx_bytes[i] += p.rx_bytes.load(Relaxed);
            self.tx_packets[i] += p.tx_packets.load(Relaxed);
            self.tx_bytes[i] += p.tx_bytes.load(Relaxed);
        }
        for (d, s) in c.drops.iter().zip(self.drops.iter_mut()) {
            *s += d.load(Relaxed);
        }
        self.loops += c.loops.load(Relaxed);
        self.busy_loops += c.busy_loops.load(Relaxed);
        self.stalls += c.stalls.load(Relaxed);
        self.longest_loop_ns = self.longest_loop_ns.max(c.longest_loop_ns.load(Relaxed));
        self.verified += c.verified.load(Relaxed);
        self.batches += c.batches.load(Relaxed);
        self.binds_accepted += c.binds_accepted.load(Relaxed);
    }

    pub fn drops_of(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    pub fn total_rx(&self) -> u64 {
        self.rx_packets.iter().sum()
    }

    pub fn total_tx(&self) -> u64 {
        self.tx_packets.iter().sum()
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// `reason=count` for every nonzero drop reason, for log lines.
    pub fn drops_line(&self) -> String {
        let parts: Vec<String> = DropReason::ALL.iter().filter(|r| self.drops_of(**r) > 0).map(|r| format!("{}={}", r.name(), self.drops_of(*r))).collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_gaps_count_stalls_and_keep_the_longest() {
        // A 1 GHz clock: one tick per nanosecond.
        let c = CoreCounters::default();
        let mut clock = LoopClock::new(1_000_000_000, 1_000);
        for now in [3_000, 5_000, 5_000 + STALL_NS - 1] {
            clock.tick(now, &c);
        }
        assert_eq!(c.stalls.load(Relaxed), 0);
        assert_eq!(c.longest_loop_ns.load(Relaxed), STALL_NS - 1);
        clock.tick(5_000 + 2 * STALL_NS, &c);
        clock.tick(5_000 + 2 * STALL_NS + 10, &c);
        clock.tick(5_000 + 5 * STALL_NS, &c);
        assert_eq!(c.stalls.load(Relaxed), 2);
        assert_eq!(c.longest_loop_ns.load(Relaxed), 3 * STALL_NS - 10);
        // The snapshot sums stalls over cores and keeps the longest loop of any.
        let d = CoreCounters::default();
        LoopClock::new(1_000_000_000, 0).tick(7 * STALL_NS, &d);
        let mut s = c.snapshot();
        s.add(&d);
        assert_eq!((s.stalls, s.longest_loop_ns), (3, 7 * STALL_NS));
    }

    #[test]
    fn reasons_are_indexed_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let c = CoreCounters::default();
        c.count_drop(DropReason::NoRoute, 3);
        bump(&c.ports[1].rx_packets, 5);
        let s = c.snapshot();
        assert_eq!((s.drops_of(DropReason::NoRoute), s.total_rx(), s.total_drops()), (3, 5, 3));
        assert_eq!(s.drops_line(), "no_route=3");
    }
}
