//! Who may send, and where wallets are: bindings, tunnel peers and device-key
//! authorisations, with the single-writer / lock-free-reader split of the FIB.
//!
//! - A **binding** says wallet W is at unicast U behind an ingress (a native port
//!   and MAC, or the public UDP endpoint of a host behind NAT) until T, sequence S.
//!   Workers verify BINDs in their per-burst Ed25519 batch and hand accepted ones
//!   to the writer through a bounded lock-free queue; the writer installs the
//!   newest sequence per wallet, expires old ones, and publishes a new snapshot.
//! - A **peer** is a tunnel endpoint (or a native neighbour) of a router whose
//!   licensed prefixes it may source; an LPM maps prefixes to peer ids.
//! - **Authorisations** (wallet -> Ed25519 device keys with validity) are the
//!   crypto crate's [`DeviceRegistry`], filled by tests now and by the chain
//!   reconciler.
//!
//! Workers read a snapshot through `arc_swap`, refreshed only when a version
//! counter moves (no shared writes per burst), and the peer LPM through their own
//! QSBR reader.

use crate::fib::NextHop;
use arc_swap::ArcSwap;
use chainroute_crypto::registry::{DeviceReader, DeviceRegistry};
use chainroute_crypto::shed::ShedConfig;
use chainroute_crypto::BurstVerifier;
use chainroute_lpm as lpm;
use chainroute_wire::tunnel::{Carrier, UdpTunnel};
use chainroute_wire::{Address, MacAddr, Prefix, Wallet};
use crossbeam_queue::ArrayQueue;
use hashbrown::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Accepted BINDs a worker may queue before the writer drains them.
const BIND_QUEUE: usize = 4096;

/// Security settings of the dataplane.
#[derive(Debug, Clone, Copy)]
pub struct SecurityConfig {
    /// Drop data packets whose source is not proven (binding or peer license).
    pub source_validation: bool,
    /// Per-source budgets before verification.
    pub shed: ShedConfig,
    /// Signatures verified per burst at most.
    pub verifies_per_burst: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            source_validation: true,
            shed: ShedConfig::default(),
            verifies_per_burst: 64,
        }
    }
}

/// Where a packet came in, as precisely as the reverse path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ingress {
    /// A native frame from `mac` on `port`.
    Native { port: u16, mac: MacAddr },
    /// UDP from `remote` (a host's NAT'd public endpoint or a peer router) to our
    /// `local` endpoint, through the underlay neighbour `mac` on `port`.
    Udp {
        port: u16,
        remote: SocketAddr,
        local: SocketAddr,
        mac: MacAddr,
    },
}

impl Ingress {
    pub fn of(port: u16, eth_src: MacAddr, carrier: &Carrier) -> Ingress {
        match carrier {
            Carrier::Native => Ingress::Native { port, mac: eth_src },
            Carrier::Udp { src, dst } => Ingress::Udp {
                port,
                remote: *src,
                local: *dst,
                mac: eth_src,
            },
        }
    }

    /// The next hop that reaches back through this ingress (intranet penetration:
    /// UDP back to the NAT's public endpoint, from the endpoint the host sent to).
    pub fn reverse(&self) -> NextHop {
        match *self {
            Ingress::Native { port, mac } => NextHop::Local { port, mac },
            Ingress::Udp {
                port,
                remote,
                local,
                mac,
            } => NextHop::Tunnel {
                port,
                tunnel: UdpTunnel {
                    eth_src: MacAddr::default(),
                    eth_dst: mac,
                    src: local,
                    dst: remote,
                    outer_hop_limit: 64,
                    ipv4_udp_checksum: true,
                },
            },
        }
    }

    /// The peer-table key of this ingress.
    pub fn peer_key(&self) -> PeerKey {
        match *self {
            Ingress::Native { port, mac } => PeerKey::Native { port, mac },
            Ingress::Udp { remote, .. } => PeerKey::Udp(remote.ip()),
        }
    }

    /// A source id for load shedding.
    pub fn source_id(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// How a peer router is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// Its tunnel endpoint address.
    Udp(IpAddr),
    /// A neighbour on the same fiber.
    Native { port: u16, mac: MacAddr },
}

/// A wallet's location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub wallet: Wallet,
    pub unicast: Address,
    pub ingress: Ingress,
    /// Unix seconds.
    pub expiry: u64,
    pub sequence: u64,
    pub device_key: [u8; 32],
}

struct Snapshot {
    bindings: HashMap<Wallet, Binding>,
    /// One bit per hash bucket of the bound wallets: most packets' wallets are
    /// not bound here, and a bit test is cheaper than a hash-map miss.
    bound: BoundFilter,
    peers: HashMap<PeerKey, u32>,
}

impl Snapshot {
    fn new(bindings: HashMap<Wallet, Binding>, peers: HashMap<PeerKey, u32>) -> Snapshot {
        let mut bound = BoundFilter::default();
        for w in bindings.keys() {
            bound.insert(w);
        }
        Snapshot {
            bindings,
            bound,
            peers,
        }
    }
}

/// A 2^16-bit membership filter over wallets (false positives only cost the map
/// lookup they stand in front of).
struct BoundFilter(Box<[u64; 1024]>);

impl Default for BoundFilter {
    fn default() -> Self {
        BoundFilter(Box::new([0; 1024]))
    }
}

impl BoundFilter {
    #[inline]
    fn bit(w: &Wallet) -> usize {
        // Wallets are Keccak outputs, so any 16 bits of them are uniform; an
        // attacker who picks wallets to collide gains one map lookup per packet.
        u16::from_le_bytes([w.0[18], w.0[19]]) as usize
    }

    fn insert(&mut self, w: &Wallet) {
        let b = Self::bit(w);
        self.0[b / 64] |= 1 << (b % 64);
    }

    #[inline]
    fn may_hold(&self, w: &Wallet) -> bool {
        let b = Self::bit(w);
        self.0[b / 64] & (1 << (b % 64)) != 0
    }
}

/// What the writer did, for the API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecurityStats {
    pub bindings: usize,
    pub binds_installed: u64,
    /// Accepted by a worker but older than what another worker installed first.
    pub binds_stale: u64,
    pub bindings_expired: u64,
    pub peers: usize,
}

/// The single writer (the management plane's, behind a mutex it alone takes).
pub struct Security {
    config: SecurityConfig,
    shared: Arc<ArcSwap<Snapshot>>,
    version: Arc<AtomicU64>,
    bindings: HashMap<Wallet, Binding>,
    peers: HashMap<PeerKey, u32>,
    peer_prefixes: HashMap<u32, Vec<Prefix>>,
    peer_lpm: lpm::Lpm,
    devices: DeviceRegistry,
    queues: Vec<Arc<ArrayQueue<Binding>>>,
    stats: SecurityStats,
    dirty: bool,
}

impl Security {
    pub fn new(config: SecurityConfig) -> Security {
        Security {
            config,
            shared: Arc::new(ArcSwap::from_pointee(Snapshot::new(
                HashMap::new(),
                HashMap::new(),
            ))),
            version: Arc::new(AtomicU64::new(0)),
            bindings: HashMap::new(),
            peers: HashMap::new(),
            peer_prefixes: HashMap::new(),
            peer_lpm: lpm::Lpm::new(),
            devices: DeviceRegistry::new(),
            queues: Vec::new(),
            stats: SecurityStats::default(),
            dirty: false,
        }
    }

    pub fn config(&self) -> &SecurityConfig {
        &self.config
    }

    /// A worker's reader (and its queue of accepted BINDs).
    pub fn reader(&mut self) -> Result<SecurityReader, String> {
        let queue = Arc::new(ArrayQueue::new(BIND_QUEUE));
        self.queues.push(queue.clone());
        Ok(SecurityReader {
            config: self.config,
            shared: self.shared.clone(),
            version: self.version.clone(),
            seen: u64::MAX,
            snapshot: self.shared.load_full(),
            peer_lpm: self.peer_lpm.reader().map_err(|e| e.to_string())?,
            devices: self.devices.reader(),
            verifier: BurstVerifier::new(self.config.shed, self.config.verifies_per_burst)
                .map_err(|e| e.to_string())?,
            queue,
            recent: HashMap::new(),
            last_peer: None,
        })
    }

    /// The authorisation table (publish with [`DeviceRegistry::publish`]).
    pub fn devices(&mut self) -> &mut DeviceRegistry {
        &mut self.devices
    }

    /// Sets the prefixes a peer router may source (replacing what it had).
    pub fn set_peer(&mut self, key: PeerKey, prefixes: &[Prefix]) {
        let next_id = self.peers.len() as u32;
        let id = *self.peers.entry(key).or_insert(next_id);
        for p in self.peer_prefixes.remove(&id).unwrap_or_default() {
            self.peer_lpm.remove(&p);
        }
        for p in prefixes {
            self.peer_lpm.insert(*p, id);
        }
        self.peer_prefixes.insert(id, prefixes.to_vec());
        self.dirty = true;
    }

    /// Removes a peer and its prefixes.
    pub fn remove_peer(&mut self, key: &PeerKey) {
        if let Some(id) = self.peers.get(key).copied() {
            for p in self.peer_prefixes.remove(&id).unwrap_or_default() {
                self.peer_lpm.remove(&p);
            }
            // The id stays reserved (the map keeps it) so a late lookup never matches another peer.
            self.peer_prefixes.insert(id, Vec::new());
            self.dirty = true;
        }
    }

    /// Installs a binding when its sequence is newer than the one held.
    pub fn install(&mut self, b: Binding) -> bool {
        match self.bindings.get(&b.wallet) {
            Some(old) if old.sequence >= b.sequence => {
                self.stats.binds_stale += 1;
                false
            }
            _ => {
                self.bindings.insert(b.wallet, b);
                self.stats.binds_installed += 1;
                self.dirty = true;
                true
            }
        }
    }

    /// Drains the workers' accepted BINDs, expires old bindings and publishes what
    /// changed. Call often (every millisecond): a host is reachable from then on.
    pub fn poll(&mut self, now: u64) {
        for q in self.queues.clone() {
            while let Some(b) = q.pop() {
                if b.expiry > now {
                    self.install(b);
                }
            }
        }
        let before = self.bindings.len();
        self.bindings.retain(|_, b| b.expiry > now);
        let expired = before - self.bindings.len();
        if expired > 0 {
            self.stats.bindings_expired += expired as u64;
            self.dirty = true;
        }
        self.publish();
    }

    /// Publishes the current tables if they changed.
    pub fn publish(&mut self) {
        self.devices.publish();
        if !self.dirty {
            return;
        }
        self.dirty = false;
        // One copy per change batch: bindings change at human rates (BIND refreshes),
        // never per packet.
        self.shared.store(Arc::new(Snapshot::new(
            self.bindings.clone(),
            self.peers.clone(),
        )));
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values()
    }

    pub fn binding(&self, wallet: &Wallet) -> Option<&Binding> {
        self.bindings.get(wallet)
    }

    /// Peers and the prefixes each may source.
    pub fn peers(&self) -> Vec<(PeerKey, Vec<Prefix>)> {
        self.peers
            .iter()
            .map(|(k, id)| (*k, self.peer_prefixes.get(id).cloned().unwrap_or_default()))
            .filter(|(_, p)| !p.is_empty())
            .collect()
    }

    pub fn stats(&self) -> SecurityStats {
        SecurityStats {
            bindings: self.bindings.len(),
            peers: self
                .peer_prefixes
                .values()
                .filter(|p| !p.is_empty())
                .count(),
            ..self.stats
        }
    }
}

/// A worker's view: lock-free reads, its own verifier and queue.
pub struct SecurityReader {
    pub(crate) config: SecurityConfig,
    shared: Arc<ArcSwap<Snapshot>>,
    version: Arc<AtomicU64>,
    seen: u64,
    snapshot: Arc<Snapshot>,
    peer_lpm: lpm::Reader,
    pub(crate) devices: DeviceReader,
    pub(crate) verifier: BurstVerifier,
    queue: Arc<ArrayQueue<Binding>>,
    /// Sequences this worker accepted but the writer may not have published yet:
    /// an immediate replay must not pass twice.
    recent: HashMap<Wallet, u64>,
    /// The peer id of the last ingress looked up: a burst mostly comes from one
    /// neighbour. Cleared when the snapshot changes.
    last_peer: Option<(PeerKey, Option<u32>)>,
}

impl SecurityReader {
    /// Takes the newest snapshot if it changed (once per burst).
    #[inline]
    pub fn refresh(&mut self) {
        let v = self.version.load(Ordering::Acquire);
        if v != self.seen {
            self.snapshot = self.shared.load_full();
            self.seen = v;
            self.last_peer = None;
            let snap = &self.snapshot;
            self.recent
                .retain(|w, s| snap.bindings.get(w).is_none_or(|b| b.sequence < *s));
        }
    }

    /// The live binding of a wallet.
    #[inline]
    pub fn binding(&self, wallet: &Wallet, now: u64) -> Option<&Binding> {
        if !self.snapshot.bound.may_hold(wallet) {
            return None;
        }
        self.snapshot
            .bindings
            .get(wallet)
            .filter(|b| b.expiry > now)
    }

    /// The newest sequence known for a wallet (published or accepted here).
    pub fn sequence(&self, wallet: &Wallet) -> Option<u64> {
        let published = self.snapshot.bindings.get(wallet).map(|b| b.sequence);
        let recent = self.recent.get(wallet).copied();
        published.max(recent)
    }

    /// Source validation: a live binding of the source behind this very ingress, or
    /// a peer whose licensed prefixes cover the source.
    #[inline]
    pub fn source_ok(&mut self, src: &Address, ingress: &Ingress, now: u64) -> bool {
        if let Some(b) = self.binding(&src.interface_id(), now) {
            if b.unicast == *src && b.ingress == *ingress {
                return true;
            }
        }
        if self.snapshot.peers.is_empty() {
            return false;
        }
        let key = ingress.peer_key();
        let peer = match self.last_peer {
            Some((k, id)) if k == key => id,
            _ => {
                let id = self.snapshot.peers.get(&key).copied();
                self.last_peer = Some((key, id));
                id
            }
        };
        match peer {
            Some(id) => self.peer_lpm.lookup(src) == Some(id),
            None => false,
        }
    }

    /// Hands an accepted BIND to the writer; false when its queue is full.
    pub fn accept(&mut self, b: Binding) -> bool {
        self.recent.insert(b.wallet, b.sequence);
        self.queue.push(b).is_ok()
    }

    pub fn quiescent(&self) {
        self.peer_lpm.quiescent();
    }

    pub fn offline(&self) {
        self.peer_lpm.offline();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(mac: u8) -> Ingress {
        Ingress::Native {
            port: 0,
            mac: MacAddr([2, 0, 0, 0, 0, mac]),
        }
    }

    #[test]
    fn source_validation_follows_published_peers_and_bindings() {
        let mut sec = Security::new(SecurityConfig::default());
        let mut r = sec.reader().unwrap();
        let src: Address = "2001:db8::7".parse().unwrap();
        r.refresh();
        assert!(
            !r.source_ok(&src, &native(1), 100),
            "nothing published: unproven"
        );

        sec.set_peer(native(1).peer_key(), &["2001:db8::/32".parse().unwrap()]);
        sec.publish();
        r.refresh();
        assert!(r.source_ok(&src, &native(1), 100), "the licensed neighbour");
        assert!(
            !r.source_ok(&src, &native(2), 100),
            "another neighbour, right after the memo of the first"
        );
        assert!(r.source_ok(&src, &native(1), 100));
        assert!(
            !r.source_ok(&"2001:db9::1".parse().unwrap(), &native(1), 100),
            "outside its license"
        );

        // A new snapshot clears the per-burst memo: the peer is gone for good.
        sec.remove_peer(&native(1).peer_key());
        sec.publish();
        r.refresh();
        assert!(!r.source_ok(&src, &native(1), 100));

        // A binding proves its own unicast behind its own ingress, until it expires.
        let w = Wallet([0x5a; 20]);
        let u = Address::unicast(&"2001:db8:1::".parse().unwrap(), w);
        sec.install(Binding {
            wallet: w,
            unicast: u,
            ingress: native(3),
            expiry: 200,
            sequence: 1,
            device_key: [0; 32],
        });
        sec.publish();
        r.refresh();
        assert!(r.source_ok(&u, &native(3), 100));
        assert!(
            !r.source_ok(&u, &native(4), 100),
            "same source, wrong ingress"
        );
        assert!(!r.source_ok(&u, &native(3), 200), "expired");
        assert!(r.binding(&w, 100).is_some());
        assert!(r.binding(&Wallet([0x5b; 20]), 100).is_none());
    }

    #[test]
    fn bound_filter_has_no_false_negatives() {
        let mut f = BoundFilter::default();
        let wallets: Vec<Wallet> = (0..5000u32)
            .map(|i| {
                let mut w = [0u8; 20];
                w[..4].copy_from_slice(&i.to_be_bytes());
                w[16..20].copy_from_slice(&i.wrapping_mul(2654435761).to_le_bytes());
                Wallet(w)
            })
            .collect();
        for w in &wallets {
            f.insert(w);
        }
        assert!(wallets.iter().all(|w| f.may_hold(w)));
        assert!(!BoundFilter::default().may_hold(&wallets[0]));
    }
}
