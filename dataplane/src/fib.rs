//! The forwarding table the management plane drives while the workers run.
//!
//! Routes map a prefix to a [`NextHop`]. Next hops are interned: each distinct one
//! gets a small id, and the LPM maps prefixes to ids. The single writer ([`Fib`])
//! publishes a new next-hop table through `arc_swap` before any route refers to a
//! new id, and withdraws an id only after no route refers to it; workers
//! ([`FibReader`]) read both without locks and report a quiescent state once per
//! loop, which lets the LPM reclaim old nodes.
//!
//! A freed id is reused only after a grace period (every reader has passed a
//! quiescent state since the free: [`lpm::Lpm::synchronize`]), so a burst that
//! looked an old route up never finds another route's next hop under its id.
//!
//! Routes change in bursts (a sync with the chain, an operator's edits) and stay
//! put in between: once they have settled ([`Fib::settle`]), the LPM publishes its
//! interval snapshot, which the workers search two to three times faster than the
//! editable trie. Changes after it mark the regions they touch, whose keys the
//! workers look up in the trie, until a change too wide to mark (or too many)
//! withdraws it; the next quiet spell, or a change older than [`MAX_UNSETTLED`]
//! under continuous churn, publishes a new one (see [`lpm::Lpm::publish_snapshot`]).

use crate::pipeline::MAX_BURST;
use arc_swap::ArcSwap;
use chainroute_lpm as lpm;
use chainroute_wire::tunnel::UdpTunnel;
use chainroute_wire::{Address, MacAddr, Prefix};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The id the bulk lookup gives when no route matches.
pub const NO_ROUTE: u32 = u32::MAX;

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// A host or router on a local port, as a native W3IP frame to `mac`.
    Local { port: u16, mac: MacAddr },
    /// A peer router (or a host behind NAT) through the UDP tunnel.
    Tunnel { port: u16, tunnel: UdpTunnel },
    /// Drop and count.
    Blackhole,
}

/// The writer: owned by the management plane (one at a time).
pub struct Fib {
    table: lpm::Lpm,
    hops: Arc<ArcSwap<Vec<Option<NextHop>>>>,
    /// Bumped after each next-hop table store, so readers refresh their snapshot
    /// only when it changed (an Arc clone per burst would bounce its count
    /// between cores).
    version: Arc<AtomicU64>,
    ids: HashMap<NextHop, (u32, u32)>, // next hop -> (id, routes using it)
    routes: HashMap<Prefix, NextHop>,
    free: Vec<u32>,
    /// Ids freed since the last grace period; reusable after the next one.
    quarantine: Vec<u32>,
    /// When the routes last changed, and first changed, since the last snapshot.
    unsettled_since: Option<Instant>,
    unsettled_first: Option<Instant>,
}

/// Routes that change without a quiet spell get a new snapshot when their first
/// change not in one is this old: the marks of the changes cost lookups, and the
/// trie alone (once they withdraw it) costs two thirds of them.
pub const MAX_UNSETTLED: Duration = Duration::from_secs(10);

/// Freed ids wait for this many before one grace period recycles them all.
const QUARANTINE_BATCH: usize = 64;

/// A worker's read handle.
pub struct FibReader {
    reader: lpm::Reader,
    found: [Option<u32>; MAX_BURST],
    hops: Arc<ArcSwap<Vec<Option<NextHop>>>>,
    version: Arc<AtomicU64>,
    seen: u64,
    snapshot: Arc<Vec<Option<NextHop>>>,
}

impl Default for Fib {
    fn default() -> Self {
        Self::new()
    }
}

impl Fib {
    pub fn new() -> Fib {
        Fib {
            table: lpm::Lpm::new(),
            hops: Arc::new(ArcSwap::from_pointee(Vec::new())),
            version: Arc::new(AtomicU64::new(0)),
            ids: HashMap::new(),
            routes: HashMap::new(),
            free: Vec::new(),
            quarantine: Vec::new(),
            unsettled_since: None,
            unsettled_first: None,
        }
    }

    /// A read handle for one worker thread (at most 64 exist at once).
    pub fn reader(&self) -> Result<FibReader, lpm::Error> {
        let hops = self.hops.clone();
        let version = self.version.clone();
        let seen = version.load(Ordering::Acquire);
        let snapshot = hops.load_full();
        Ok(FibReader { reader: self.table.reader()?, found: [None; MAX_BURST], hops, version, seen, snapshot })
    }

    /// Adds or replaces the route for `prefix`; returns the next hop it replaced.
    pub fn insert(&mut self, prefix: Prefix, hop: NextHop) -> Option<NextHop> {
        if self.routes.get(&prefix) == Some(&hop) {
            return Some(hop);
        }
        let id = self.intern(hop);
        self.table.insert(prefix, id);
        self.changed();
        let old = self.routes.insert(prefix, hop);
        if let Some(old) = old {
            self.release(&[old]);
        }
        old
    }

    /// Applies route changes in order (`Some`: add or replace, `None`: remove) as
    /// one batch: new next hops are published with one copy of the next-hop table,
    /// the LPM takes every change within one grace period, then unused next hops
    /// are withdrawn. Returns how many routes changed. What a full sync uses.
    pub fn apply(&mut self, changes: &[(Prefix, Option<NextHop>)]) -> usize {
        let mut staged = None;
        let mut updates = Vec::with_capacity(changes.len());
        let mut released = Vec::new();
        for (prefix, hop) in changes {
            match hop {
                Some(hop) => {
                    if self.routes.get(prefix) == Some(hop) {
                        continue;
                    }
                    let id = self.intern_into(*hop, &mut staged);
                    updates.push(lpm::Update::Insert(*prefix, id));
                    released.extend(self.routes.insert(*prefix, *hop));
                }
                None => {
                    if let Some(old) = self.routes.remove(prefix) {
                        updates.push(lpm::Update::Remove(*prefix));
                        released.push(old);
                    }
                }
            }
        }
        if let Some(table) = staged {
            // Published before any route refers to the new ids.
            self.publish(table);
        }
        if !updates.is_empty() {
            self.table.apply(&updates);
            self.changed();
        }
        self.release(&released);
        updates.len()
    }

    /// Removes the route for exactly `prefix`.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<NextHop> {
        let old = self.routes.remove(prefix)?;
        self.table.remove(prefix);
        self.changed();
        self.release(&[old]);
        Some(old)
    }

    fn changed(&mut self) {
        let now = Instant::now();
        self.unsettled_since = Some(now);
        self.unsettled_first.get_or_insert(now);
    }

    /// Publishes the LPM's snapshot when the routes have not changed for `quiet`
    /// since a change the last snapshot does not hold, or when that change is
    /// older than [`MAX_UNSETTLED`] (the management plane calls this from its
    /// loop). Returns the snapshot's size in bytes when it published one.
    pub fn settle(&mut self, quiet: Duration) -> Option<usize> {
        let (last, first) = (self.unsettled_since?, self.unsettled_first?);
        if last.elapsed() < quiet && first.elapsed() < MAX_UNSETTLED {
            return None;
        }
        Some(self.publish_snapshot())
    }

    /// Publishes the LPM's snapshot of the current routes now; returns its size.
    pub fn publish_snapshot(&mut self) -> usize {
        (self.unsettled_since, self.unsettled_first) = (None, None);
        self.table.publish_snapshot()
    }

    /// Withdraws the snapshot: the workers walk the trie until the next one.
    pub fn withdraw_snapshot(&mut self) {
        self.table.withdraw_snapshot();
    }

    /// Whether the workers search a snapshot (published, and not withdrawn by a
    /// change it could not mark).
    pub fn has_snapshot(&self) -> bool {
        self.table.has_snapshot()
    }

    /// Regions marked in the snapshot by changes since it was published (their
    /// keys go to the trie); 0 without one.
    pub fn snapshot_marks(&self) -> usize {
        self.table.snapshot_marks()
    }

    /// The route for exactly `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<NextHop> {
        self.routes.get(prefix).copied()
    }

    /// Every route (in no particular order).
    pub fn routes(&self) -> impl Iterator<Item = (&Prefix, &NextHop)> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Longest-prefix match from the writer's side (for the API's LookupRoute).
    pub fn lookup(&self, addr: &Address) -> Option<(Prefix, NextHop)> {
        self.table.lookup(addr)?;
        // The LPM gives the id; the matching prefix is the longest route containing addr.
        (0..=256u16).rev().find_map(|len| {
            let p = Prefix::truncating(*addr, len);
            self.routes.get(&p).map(|h| (p, *h))
        })
    }

    fn intern(&mut self, hop: NextHop) -> u32 {
        let mut staged = None;
        let id = self.intern_into(hop, &mut staged);
        if let Some(table) = staged {
            // Published before any route refers to the id.
            self.publish(table);
        }
        id
    }

    /// Interns `hop`; a new one goes into `staged`, a copy of the published table
    /// taken once per batch (copying it per new next hop would make loading N
    /// routes with N distinct tunnels quadratic).
    fn intern_into(&mut self, hop: NextHop, staged: &mut Option<Vec<Option<NextHop>>>) -> u32 {
        if let Some((id, users)) = self.ids.get_mut(&hop) {
            *users += 1;
            return *id;
        }
        if staged.is_none() {
            self.reclaim();
        }
        let table = staged.get_or_insert_with(|| self.hops.load().as_ref().clone());
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                table.push(None);
                (table.len() - 1) as u32
            }
        };
        table[id as usize] = Some(hop);
        self.ids.insert(hop, (id, 1));
        id
    }

    /// Drops one use of each hop; ids no route uses any more are withdrawn with
    /// one table copy and wait in quarantine for a grace period.
    fn release(&mut self, hops: &[NextHop]) {
        let mut staged: Option<Vec<Option<NextHop>>> = None;
        for hop in hops {
            let Some((id, users)) = self.ids.get_mut(hop) else { continue };
            *users -= 1;
            if *users > 0 {
                continue;
            }
            let id = *id;
            self.ids.remove(hop);
            staged.get_or_insert_with(|| self.hops.load().as_ref().clone())[id as usize] = None;
            self.quarantine.push(id);
        }
        if let Some(table) = staged {
            self.publish(table);
        }
    }

    fn publish(&mut self, table: Vec<Option<NextHop>>) {
        self.hops.store(Arc::new(table));
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Once enough ids wait, waits one grace period (workers pass a quiescent state
    /// every loop: microseconds) and makes them reusable. Until then the table grows.
    fn reclaim(&mut self) {
        if self.free.is_empty() && self.quarantine.len() >= QUARANTINE_BATCH {
            self.table.synchronize();
            self.free.append(&mut self.quarantine);
        }
    }
}

impl FibReader {
    /// Looks every key up; `out[i]` is a next-hop id or [`NO_ROUTE`]. Also takes the
    /// newest next-hop table for this burst.
    #[inline]
    pub fn lookup_bulk(&mut self, keys: &[Address], out: &mut [u32]) {
        let v = self.version.load(Ordering::Acquire);
        if v != self.seen {
            self.refresh(v);
        }
        let n = keys.len();
        self.reader.lookup_bulk(keys, &mut self.found[..n]);
        for (o, f) in out[..n].iter_mut().zip(&self.found[..n]) {
            *o = f.unwrap_or(NO_ROUTE);
        }
    }

    /// The next hop an id names. A route inserted after this burst's snapshot may
    /// name an id the snapshot lacks: the writer stored the table before the route,
    /// so one refresh finds it.
    #[inline]
    pub fn next_hop(&mut self, id: u32) -> Option<&NextHop> {
        if id == NO_ROUTE {
            return None;
        }
        // A reference, not a copy: a tunnel next hop is 84 bytes, copied per packet.
        if !matches!(self.snapshot.get(id as usize), Some(Some(_))) {
            let v = self.version.load(Ordering::Acquire);
            if v != self.seen {
                self.refresh(v);
            }
        }
        self.snapshot.get(id as usize).and_then(Option::as_ref)
    }

    #[cold]
    fn refresh(&mut self, version: u64) {
        self.snapshot = self.hops.load_full();
        self.seen = version;
    }

    /// Reports a quiescent state: this reader holds no reference into the tables.
    #[inline]
    pub fn quiescent(&self) {
        self.reader.quiescent();
    }

    /// This reader stops reading (its thread exits): it no longer holds back reclamation.
    pub fn offline(&self) {
        self.reader.offline();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(i: u32) -> NextHop {
        NextHop::Tunnel {
            port: 1,
            tunnel: UdpTunnel {
                eth_src: MacAddr::default(),
                eth_dst: MacAddr([2, 0, 0, 0, 0, 1]),
                src: "192.0.2.1:5733".parse().unwrap(),
                dst: std::net::SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 5733),
                outer_hop_limit: 64,
                ipv4_udp_checksum: true,
            },
        }
    }

    fn prefix(i: u32) -> Prefix {
        let mut a = "2400::".parse::<Address>().unwrap();
        a.0[2..6].copy_from_slice(&i.to_be_bytes());
        Prefix::new(a, 48).unwrap()
    }

    /// What readers see: the next hop each route's key resolves to.
    fn resolved(fib: &Fib, r: &mut FibReader, n: u32) -> Vec<Option<NextHop>> {
        let keys: Vec<Address> = (0..n).map(|i| prefix(i).addr()).collect();
        let mut out = vec![0u32; keys.len()];
        let mut seen = Vec::new();
        for (k, o) in keys.chunks(MAX_BURST).zip(out.chunks_mut(MAX_BURST)) {
            r.lookup_bulk(k, o);
        }
        for id in out {
            seen.push(r.next_hop(id).copied());
        }
        assert_eq!(fib.len(), seen.iter().filter(|h| h.is_some()).count());
        seen
    }

    #[test]
    fn a_batch_equals_the_same_changes_one_by_one() {
        let mut batched = Fib::new();
        let mut single = Fib::new();
        let mut rb = batched.reader().unwrap();
        let mut rs = single.reader().unwrap();
        rb.offline();
        rs.offline();
        // Load 3000 routes with 1000 distinct tunnels, then change a third, remove a
        // third (ids go unused and come back after a grace period), all as batches.
        let load: Vec<(Prefix, Option<NextHop>)> = (0..3000).map(|i| (prefix(i), Some(tunnel(i % 1000)))).collect();
        let churn: Vec<(Prefix, Option<NextHop>)> =
            (0..3000).filter(|i| i % 3 != 0).map(|i| (prefix(i), if i % 3 == 1 { Some(tunnel(5000 + i)) } else { None })).collect();
        for changes in [&load, &churn, &load] {
            assert!(batched.apply(changes) > 0);
            for (p, h) in changes.iter() {
                match h {
                    Some(h) => {
                        single.insert(*p, *h);
                    }
                    None => {
                        single.remove(p);
                    }
                }
            }
            assert_eq!(resolved(&batched, &mut rb, 3000), resolved(&single, &mut rs, 3000));
            // Between reads the readers are offline, so the writers' grace periods
            // (id reuse) do not wait on this thread.
            rb.offline();
            rs.offline();
            assert_eq!(batched.ids.len(), single.ids.len(), "the same next hops are interned");
        }
        assert_eq!(batched.apply(&load), 0, "nothing differs: nothing applied");
        // Every interned id is in the published table, and only those.
        let table = batched.hops.load();
        assert_eq!(table.iter().filter(|h| h.is_some()).count(), batched.ids.len());
        for (hop, (id, _)) in &batched.ids {
            assert_eq!(table[*id as usize], Some(*hop));
        }
    }

    #[test]
    fn settled_routes_get_the_snapshot_and_changes_mark_it() {
        let mut fib = Fib::new();
        let mut r = fib.reader().unwrap();
        r.offline();
        let load: Vec<(Prefix, Option<NextHop>)> = (0..500).map(|i| (prefix(i), Some(tunnel(i % 50)))).collect();
        fib.apply(&load);
        let trie = resolved(&fib, &mut r, 500);
        r.offline();
        assert!(fib.settle(Duration::from_secs(3600)).is_none(), "not quiet long enough yet");
        assert!(!fib.has_snapshot());
        assert!(fib.settle(Duration::ZERO).is_some_and(|bytes| bytes > 0));
        assert!(fib.has_snapshot());
        assert!(fib.settle(Duration::ZERO).is_none(), "nothing changed since");
        assert_eq!(resolved(&fib, &mut r, 500), trie, "the snapshot resolves as the trie");
        r.offline();
        // A change is seen at once (its region of the snapshot is marked, and
        // looked up in the trie), then settles into a new snapshot.
        fib.insert(prefix(7), tunnel(999));
        assert!(fib.has_snapshot() && fib.snapshot_marks() == 1);
        let mut want = trie.clone();
        want[7] = Some(tunnel(999));
        assert_eq!(resolved(&fib, &mut r, 500), want);
        r.offline();
        assert!(fib.settle(Duration::from_secs(3600)).is_none(), "changed just now");
        assert!(fib.settle(Duration::ZERO).is_some());
        assert!(fib.has_snapshot() && fib.snapshot_marks() == 0);
        assert_eq!(resolved(&fib, &mut r, 500), want);
        r.offline();
        fib.remove(&prefix(8));
        assert_eq!(fib.snapshot_marks(), 1);
        want[8] = None;
        assert_eq!(resolved(&fib, &mut r, 500)[..10], want[..10]);
        r.offline();
        // Withdrawn, the trie answers alike.
        fib.withdraw_snapshot();
        assert!(!fib.has_snapshot() && fib.snapshot_marks() == 0);
        assert_eq!(resolved(&fib, &mut r, 500), want);
    }
}
