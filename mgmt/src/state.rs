//! What the daemon's tasks share: the RIB (static and chain routes, merged into the
//! one FIB the workers read), the last confirmed chain view, the dataplane's figures
//! and the event stream.
//!
//! The FIB has a single writer: every change goes through [`Rib`] under its mutex.
//! A static route wins over a chain route for the same prefix (the operator's
//! override); when it is deleted the chain route comes back.

use crate::chain::ChainView;
use crate::config::Config;
use crate::pb;
use chainroute_dataplane::{CoreCounters, Fib, Ingress, NextHop, PeerKey, PortStatus, Security};
use chainroute_wire::{Address, Prefix, Wallet};
use std::net::IpAddr;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::broadcast;

/// Where a chain route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainRoute {
    pub license: u64,
    pub hop: NextHop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StaticRoute {
    name: String,
    hop: NextHop,
}

/// Static and chain routes, and the FIB they make.
pub struct Rib {
    fib: Fib,
    statics: BTreeMap<Prefix, StaticRoute>,
    chain: HashMap<Prefix, ChainRoute>,
    serial: u64,
    port_names: Vec<String>,
    events: broadcast::Sender<pb::Event>,
}

/// What a route change did to the FIB.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.added + self.removed + self.changed == 0
    }
}

impl Rib {
    pub fn new(
        fib: Fib,
        statics: &[(Prefix, String, NextHop)],
        port_names: Vec<String>,
        events: broadcast::Sender<pb::Event>,
    ) -> Rib {
        let mut rib = Rib {
            fib,
            statics: BTreeMap::new(),
            chain: HashMap::new(),
            serial: 0,
            port_names,
            events,
        };
        for (p, name, hop) in statics {
            rib.statics.insert(
                *p,
                StaticRoute {
                    name: name.clone(),
                    hop: *hop,
                },
            );
            rib.fib.insert(*p, *hop);
        }
        rib
    }

    /// The FIB (the dataplane's workers take their readers from it).
    pub fn fib(&self) -> &Fib {
        &self.fib
    }

    /// Publishes the FIB's lookup snapshot once the routes have been quiet for
    /// `quiet` (see [`Fib::settle`]); returns its size when it did.
    pub fn settle_fib(&mut self, quiet: std::time::Duration) -> Option<usize> {
        self.fib.settle(quiet)
    }

    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn len(&self) -> usize {
        self.fib.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fib.is_empty()
    }

    pub fn static_count(&self) -> usize {
        self.statics.len()
    }

    /// Chain routes in the FIB (those no static route overrides).
    pub fn chain_count(&self) -> usize {
        self.chain
            .keys()
            .filter(|p| !self.statics.contains_key(p))
            .count()
    }

    /// A subscription that starts exactly after the routes `snapshot` returns.
    pub fn subscribe_with_snapshot(&self) -> (broadcast::Receiver<pb::Event>, Vec<pb::Route>, u64) {
        (self.events.subscribe(), self.routes(), self.serial)
    }

    fn route_pb(&self, prefix: &Prefix) -> Option<pb::Route> {
        let hop = self.fib.get(prefix)?;
        let mut r = pb::Route {
            prefix: prefix.to_string(),
            next_hop: Some(next_hop_pb(&hop, &self.port_names)),
            ..Default::default()
        };
        if let Some(s) = self.statics.get(prefix) {
            r.source = "static".into();
            r.next_hop_name = s.name.clone();
        } else if let Some(c) = self.chain.get(prefix) {
            r.source = "chain".into();
            r.license_id = c.license;
        }
        Some(r)
    }

    /// Every route in the FIB, sorted by prefix.
    pub fn routes(&self) -> Vec<pb::Route> {
        let mut prefixes: Vec<Prefix> = self.fib.routes().map(|(p, _)| *p).collect();
        prefixes.sort();
        prefixes.iter().filter_map(|p| self.route_pb(p)).collect()
    }

    /// Every (prefix, next hop) in the FIB.
    pub fn fib_entries(&self) -> Vec<(Prefix, NextHop)> {
        self.fib.routes().map(|(p, h)| (*p, *h)).collect()
    }

    pub fn lookup(&self, addr: &Address) -> Option<pb::Route> {
        let (p, _) = self.fib.lookup(addr)?;
        self.route_pb(&p)
    }

    fn emit(&self, kind: &str, route: pb::Route) {
        let _ = self.events.send(pb::Event {
            r#type: kind.into(),
            serial: self.serial,
            route: Some(route),
            chain: None,
        });
    }

    /// Makes the FIB entries for `prefixes` what the static and chain tables say,
    /// as one FIB batch (a full sync of 100k chain routes is one copy of the
    /// next-hop table, not one per route), then tells the watchers, in order.
    fn settle(&mut self, prefixes: &[Prefix], applied: &mut Applied) {
        let mut changes = Vec::new();
        // (prefix, the hop it had when removed; None when added or changed)
        let mut events: Vec<(Prefix, Option<NextHop>)> = Vec::new();
        for prefix in prefixes {
            let want = self
                .statics
                .get(prefix)
                .map(|s| s.hop)
                .or_else(|| self.chain.get(prefix).map(|c| c.hop));
            match (self.fib.get(prefix), want) {
                (None, None) => {}
                (Some(h), Some(w)) if h == w => {}
                (have, Some(w)) => {
                    changes.push((*prefix, Some(w)));
                    if have.is_some() {
                        applied.changed += 1;
                    } else {
                        applied.added += 1;
                    }
                    events.push((*prefix, None));
                }
                (Some(h), None) => {
                    changes.push((*prefix, None));
                    applied.removed += 1;
                    events.push((*prefix, Some(h)));
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        self.fib.apply(&changes);
        for (prefix, removed) in events {
            match removed {
                None => {
                    if let Some(r) = self.route_pb(&prefix) {
                        self.emit("route_added", r);
                    }
                }
                Some(h) => self.emit(
                    "route_removed",
                    pb::Route {
                        prefix: prefix.to_string(),
                        next_hop: Some(next_hop_pb(&h, &self.port_names)),
                        ..Default::default()
                    },
                ),
            }
        }
    }

    /// Adds or replaces a static route; true when it replaced one.
    pub fn add_static(&mut self, prefix: Prefix, name: String, hop: NextHop) -> bool {
        self.serial += 1;
        let old = self.statics.insert(prefix, StaticRoute { name, hop });
        let mut a = Applied::default();
        self.settle(&[prefix], &mut a);
        old.is_some()
    }

    /// Deletes a static route; false when there was none.
    pub fn delete_static(&mut self, prefix: &Prefix) -> bool {
        if self.statics.remove(prefix).is_none() {
            return false;
        }
        self.serial += 1;
        let mut a = Applied::default();
        self.settle(&[*prefix], &mut a);
        true
    }

    /// The chain routes now in force.
    pub fn chain_routes(&self) -> &HashMap<Prefix, ChainRoute> {
        &self.chain
    }

    /// Replaces the chain routes with `desired`, touching only what differs.
    pub fn apply_chain(&mut self, desired: HashMap<Prefix, ChainRoute>) -> Applied {
        let mut touched: Vec<Prefix> = Vec::new();
        for (p, r) in &desired {
            if self.chain.get(p) != Some(r) {
                touched.push(*p);
            }
        }
        for p in self.chain.keys() {
            if !desired.contains_key(p) {
                touched.push(*p);
            }
        }
        let mut applied = Applied::default();
        if touched.is_empty() {
            return applied;
        }
        self.serial += 1;
        self.chain = desired;
        // Removals last would briefly leave a more specific route; order does not
        // matter for correctness (each prefix is independent in the LPM).
        self.settle(&touched, &mut applied);
        applied
    }
}

/// The API form of a next hop.
pub fn next_hop_pb(hop: &NextHop, ports: &[String]) -> pb::NextHop {
    let port_name = |i: u16| {
        ports
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| format!("#{i}"))
    };
    match hop {
        NextHop::Local { port, mac } => pb::NextHop {
            kind: "local".into(),
            port: port_name(*port),
            mac: mac.to_string(),
            ..Default::default()
        },
        NextHop::Tunnel { port, tunnel } => pb::NextHop {
            kind: "tunnel".into(),
            port: port_name(*port),
            mac: tunnel.eth_dst.to_string(),
            local: tunnel.src.to_string(),
            remote: tunnel.dst.to_string(),
        },
        NextHop::Blackhole => pb::NextHop {
            kind: "blackhole".into(),
            ..Default::default()
        },
    }
}

/// The dataplane as the API sees it (the main thread refreshes it).
#[derive(Default)]
pub struct DataplaneView {
    pub up: bool,
    pub lcores: Vec<u32>,
    pub counters: Vec<Arc<CoreCounters>>,
    pub ports: Vec<PortStatus>,
    pub mbufs: (u32, u32),
}

/// Everything the daemon's tasks share.
pub struct Shared {
    pub config: Config,
    pub started: Instant,
    pub rib: Mutex<Rib>,
    pub chain: RwLock<ChainView>,
    pub dataplane: RwLock<DataplaneView>,
    pub events: broadcast::Sender<pb::Event>,
    pub health: tonic_health::server::HealthReporter,
    /// Readiness as grpc.health.v1 should report it (None: not computed yet).
    pub health_ready: tokio::sync::watch::Sender<Option<bool>>,
    /// The dataplane's security tables (bindings, peers, authorisations), when enabled.
    pub security: Option<Arc<Mutex<Security>>>,
    /// What was last pushed into `security` from the chain, to push only changes.
    pub security_synced: Mutex<(HashMap<IpAddr, Vec<Prefix>>, BTreeMap<([u8; 20], [u8; 32]), u64>)>,
}

impl Shared {
    pub fn new(config: Config, health: tonic_health::server::HealthReporter) -> Arc<Shared> {
        let (events, _) = broadcast::channel(65536);
        let config_security = config.dataplane.security.map(|c| Arc::new(Mutex::new(Security::new(c))));
        let port_names = config
            .dataplane
            .ports
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let rib = Rib::new(Fib::new(), &config.routes, port_names, events.clone());
        let chain = ChainView::new(config.chain.as_ref());
        Arc::new(Shared {
            config,
            started: Instant::now(),
            rib: Mutex::new(rib),
            chain: RwLock::new(chain),
            dataplane: RwLock::new(DataplaneView::default()),
            events,
            health,
            health_ready: tokio::sync::watch::channel(None).0,
            security: config_security,
            security_synced: Mutex::default(),
        })
    }

    /// The daemon's state word: starting, syncing, serving or degraded.
    pub fn state_word(&self) -> &'static str {
        let dp_up = self.dataplane.read().unwrap().up;
        let chain = self.chain.read().unwrap();
        if !dp_up {
            return "starting";
        }
        if chain.status.enabled && !chain.status.synced {
            return "syncing";
        }
        if chain.status.degraded || chain.status.expired {
            return "degraded";
        }
        "serving"
    }

    /// Ready for grpc.health.v1: ports and workers up, first chain sync done.
    pub fn ready(&self) -> bool {
        let dp_up = self.dataplane.read().unwrap().up;
        let chain = self.chain.read().unwrap();
        dp_up && (!chain.status.enabled || chain.status.synced)
    }

    pub fn status(&self) -> pb::StatusResponse {
        let rib = self.rib.lock().unwrap();
        let (routes, statics, chain_routes) = (
            rib.len() as u64,
            rib.static_count() as u64,
            rib.chain_count() as u64,
        );
        drop(rib);
        let dp = self.dataplane.read().unwrap();
        let (up, ports, workers) = (dp.up, dp.ports.len() as u32, dp.lcores.len() as u32);
        drop(dp);
        let chain = self.chain.read().unwrap().status.clone();
        pb::StatusResponse {
            version: crate::VERSION.into(),
            state: self.state_word().into(),
            dataplane_up: up,
            ports,
            workers,
            routes,
            static_routes: statics,
            chain_routes,
            uptime_seconds: self.started.elapsed().as_secs(),
            router_wallet: self
                .config
                .identity
                .wallet
                .map(|w| w.to_checksum_string())
                .unwrap_or_default(),
            device_key: self
                .config
                .identity
                .device_key
                .map(|k| hex(&k))
                .unwrap_or_default(),
            chain: Some(chain),
        }
    }

    /// Publishes a chain status change as an event.
    pub fn emit_chain(&self, status: pb::ChainStatus) {
        let serial = self.rib.lock().unwrap().serial();
        let _ = self.events.send(pb::Event {
            r#type: "chain".into(),
            serial,
            route: None,
            chain: Some(status),
        });
    }
}

/// `0x` + lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainroute_wire::MacAddr;

    fn hop(n: u8) -> NextHop {
        NextHop::Local {
            port: 0,
            mac: MacAddr([2, 0, 0, 0, 0, n]),
        }
    }

    #[test]
    fn static_overrides_chain_and_diffs_are_minimal() {
        let (tx, mut rx) = broadcast::channel(64);
        let p1: Prefix = "2001::/16".parse().unwrap();
        let p2: Prefix = "2002::/16".parse().unwrap();
        let mut rib = Rib::new(
            Fib::new(),
            &[(p1, "lan".into(), hop(1))],
            vec!["p0".into()],
            tx,
        );
        let desired: HashMap<_, _> = [
            (
                p1,
                ChainRoute {
                    license: 1,
                    hop: hop(2),
                },
            ),
            (
                p2,
                ChainRoute {
                    license: 2,
                    hop: hop(3),
                },
            ),
        ]
        .into();
        let a = rib.apply_chain(desired.clone());
        assert_eq!((a.added, a.removed, a.changed), (1, 0, 0));
        assert_eq!(rib.fib().get(&p1), Some(hop(1)), "static wins");
        assert!(
            rib.apply_chain(desired).is_empty(),
            "no change, nothing applied"
        );
        assert!(rib.delete_static(&p1));
        assert_eq!(
            rib.fib().get(&p1),
            Some(hop(2)),
            "the chain route comes back"
        );
        let a = rib.apply_chain(HashMap::new());
        assert_eq!((a.added, a.removed, a.changed), (0, 2, 0));
        assert!(rib.is_empty());
        let mut kinds = Vec::new();
        while let Ok(e) = rx.try_recv() {
            kinds.push(e.r#type);
        }
        assert_eq!(
            kinds,
            [
                "route_added",
                "route_added",
                "route_removed",
                "route_removed"
            ]
        );
        let _ = rib.lookup(&"2001::1".parse().unwrap());
    }
}

/// Pushes what the chain says into the dataplane's security tables: each peer
/// endpoint may source the prefixes of the valid licenses it serves (not ours),
/// and each wallet's ERC-1056 Ed25519 keys are authorised until their validTo.
/// Only changes are applied. When the chain data expired, peers lose their
/// prefixes (bindings of our own hosts keep working).
pub fn sync_security(
    shared: &Shared,
    licenses: &std::collections::BTreeMap<u64, crate::chain::License>,
    valid: &std::collections::HashSet<u64>,
    dids: &BTreeMap<([u8; 20], [u8; 32]), u64>,
    expired: bool,
) {
    let Some(sec) = &shared.security else { return };
    let own_key = shared.config.identity.device_key;
    let mut peers: HashMap<IpAddr, Vec<Prefix>> = HashMap::new();
    if !expired {
        for (id, l) in licenses {
            if !valid.contains(id) || Some(l.router_key) == own_key {
                continue;
            }
            let Some(prefix) = l.prefix() else { continue };
            for e in &l.endpoints {
                peers.entry(e.ip()).or_default().push(prefix);
            }
        }
        for p in peers.values_mut() {
            p.sort();
            p.dedup();
        }
    }
    let keys = dids.clone();
    let mut last = shared.security_synced.lock().unwrap();
    if last.0 == peers && last.1 == keys {
        return;
    }
    let mut s = sec.lock().unwrap();
    for ip in last.0.keys() {
        if !peers.contains_key(ip) {
            s.remove_peer(&PeerKey::Udp(*ip));
        }
    }
    for (ip, prefixes) in &peers {
        if last.0.get(ip) != Some(prefixes) {
            s.set_peer(PeerKey::Udp(*ip), prefixes);
        }
    }
    for ((wallet, key), valid_to) in &keys {
        if last.1.get(&(*wallet, *key)) != Some(valid_to) {
            // A key that breaks the Ed25519 rules is never authorised.
            let _ = s.devices().upsert_bytes(Wallet(*wallet), key, *valid_to);
        }
    }
    s.publish();
    *last = (peers, keys);
}

/// The binding table as the API shows it.
pub fn bindings_pb(shared: &Shared) -> Vec<pb::Binding> {
    let Some(sec) = &shared.security else { return Vec::new() };
    let ports: Vec<String> = shared.config.dataplane.ports.iter().map(|p| p.name.clone()).collect();
    let s = sec.lock().unwrap();
    let mut out: Vec<pb::Binding> = s
        .bindings()
        .map(|b| {
            let (port, via) = match b.ingress {
                Ingress::Native { port, mac } => (port, format!("native {mac}")),
                Ingress::Udp { port, remote, .. } => (port, format!("udp {remote}")),
            };
            let name = ports.get(port as usize).cloned().unwrap_or_else(|| port.to_string());
            pb::Binding { wallet: b.wallet.to_string(), unicast: b.unicast.to_string(), ingress_port: format!("{name} {via}"), expires_unix: b.expiry, seq: b.sequence }
        })
        .collect();
    out.sort_by(|a, b| a.wallet.cmp(&b.wallet));
    out
}
