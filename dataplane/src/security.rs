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
        SecurityConfig { source_validation: true, shed: ShedConfig::default(), verifies_per_burst: 64 }
    }
}

/// Where a packet came in, as precisely as the reverse path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ingress {
    /// A native frame from `mac` on `port`.
    Native { port: u16, mac: MacAddr },
    /// UDP from `remote` (a host's NAT'd public endpoint or a peer router) to our
    /// `local` endpoint, through the underlay neighbour `mac` on `port`.
    Udp { port: u16, remote: SocketAddr, local: SocketAddr, mac: MacAddr },
}

impl Ingress {
    pub fn of(port: u16, eth_src: MacAddr, carrier: &Carrier) -> Ingress {
        match carrier {
            Carrier::Native => Ingress::Native { port, mac: eth_src },
            Carrier::Udp { src, dst } => Ingress::Udp { port, remote: *src, local: *dst, mac: eth_src },
        }
    }

    /// The next hop that reaches back through this ingress (intranet penetration:
    /// UDP back to the NAT's public endpoint, from the endpoint the host sent to).
    pub fn reverse(&self) -> NextHop {
        match *self {
            Ingress::Native { port, mac } => NextHop::Local { port, mac },
            Ingress::Udp { port, remote, local, mac } => NextHop::Tunnel {
                port,
                tunnel: UdpTunnel { eth_src: MacAddr::default(), eth_dst: mac, src: local, dst: remote, outer_hop_limit: 64, ipv4_udp_checksum: true },
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
    peers: HashMap<PeerKey, u32>,
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
            shared: Arc::new(ArcSwap::from_pointee(Snapshot { bindings: HashMap::new(), peers: HashMap::new() })),
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
            verifier: BurstVerifier::new(self.config.shed, self.config.verifies_per_burst).map_err(|e| e.to_string())?,
            queue,
            recent: HashMap::new(),
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
        self.shared.store(Arc::new(Snapshot { bindings: self.bindings.clone(), peers: self.peers.clone() }));
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
        self.peers.iter().map(|(k, id)| (*k, self.peer_prefixes.get(id).cloned().unwrap_or_default())).filter(|(_, p)| !p.is_empty()).collect()
    }

    pub fn stats(&self) -> SecurityStats {
        SecurityStats { bindings: self.bindings.len(), peers: self.peer_prefixes.values().filter(|p| !p.is_empty()).count(), ..self.stats }
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
}

impl SecurityReader {
    /// Takes the newest snapshot if it changed (once per burst).
    #[inline]
    pub fn refresh(&mut self) {
        let v = self.version.load(Ordering::Acquire);
        if v != self.seen {
            self.snapshot = self.shared.load_full();
            self.seen = v;
            let snap = &self.snapshot;
            self.recent.retain(|w, s| snap.bindings.get(w).is_none_or(|b| b.sequence < *s));
        }
    }

    /// The live binding of a wallet.
    #[inline]
    pub fn binding(&self, wallet: &Wallet, now: u64) -> Option<&Binding> {
        self.snapshot.bindings.get(wallet).filter(|b| b.expiry > now)
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
    pub fn source_ok(&self, src: &Address, ingress: &Ingress, now: u64) -> bool {
        if let Some(b) = self.binding(&src.interface_id(), now) {
            if b.unicast == *src && b.ingress == *ingress {
                return true;
            }
        }
        if self.snapshot.peers.is_empty() {
            return false;
        }
        match self.snapshot.peers.get(&ingress.peer_key()) {
            Some(id) => self.peer_lpm.lookup(src) == Some(*id),
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
