//! The chain reconciler: SegmentLicense state (and ERC-1056 device keys) from an
//! Ethereum JSON-RPC endpoint, turned into routes.
//!
//! * **Load**: `eth_getLogs` pages from the deployment block to the settled block
//!   (`finalized`, or head - N confirmations) rebuild every license from its events;
//!   `nextId()` at that block checks nothing was missed.
//! * **Follow**: each poll reads the logs of the newly settled blocks, and re-reads
//!   every license they touched with view calls (`segment`, `router`, `ownerOf`) at
//!   that block: the views are the truth, the logs say where to look.
//! * **Reorgs**: the hash of the last settled block is checked on every poll; when it
//!   changed (or the block is gone), the state is rebuilt from the deployment block in
//!   the background of the old one (RTR's cache reset) and only the difference
//!   reaches the FIB.
//! * **Desired state**: a license is valid when it and every ancestor is neither
//!   revoked nor expired (expiry against the chain's clock). Every valid license with
//!   router endpoints routes its prefix to a tunnel to its first endpoint of the
//!   underlay's family; this router's own licenses (router key == our device key,
//!   or, without a device key, holder == our wallet) route to `local_next_hop`.
//! * **Failures**: an RPC error keeps the last good state (Status: degraded); state
//!   not refreshed for `expire_s` is dropped from the FIB (RTR's expire timer).
//! * **Snapshot**: the last good state is written to `snapshot` and loaded at start,
//!   so a restart routes at once and then catches up.

use crate::config::{ChainConfig, Follow, Identity};
use crate::pb;
use crate::state::{hex, ChainRoute, Shared};
use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{keccak256, Address as EthAddress, B256, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol;
use alloy::sol_types::SolEvent;
use chainroute_dataplane::NextHop;
use chainroute_wire::tunnel::UdpTunnel;
use chainroute_wire::{Address, MacAddr, Prefix, Wallet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

sol!(
    #[sol(rpc)]
    SegmentLicense,
    "../contracts/out/SegmentLicense.json"
);

sol! {
    #[sol(rpc)]
    interface DidRegistry {
        event DIDAttributeChanged(address indexed identity, bytes32 name, bytes value, uint256 validTo, uint256 previousChange);
    }
    #[sol(rpc)]
    interface EnsRegistry {
        function resolver(bytes32 node) external view returns (address);
    }
    #[sol(rpc)]
    interface AddrResolver {
        function addr(bytes32 node) external view returns (address);
    }
}

/// The ERC-1056 attribute name under which wallets authorise Ed25519 device keys.
pub const DID_ED25519_ATTRIBUTE: &str = "did/pub/Ed25519/veriKey/base64";

/// The mainnet ENS registry, used when the deployment names none.
pub const MAINNET_ENS_REGISTRY: [u8; 20] = [
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x2e, 0x07, 0x4e, 0xc6, 0x9a, 0x0d, 0xfb, 0x29, 0x97, 0xba,
    0x6c, 0x7d, 0x2e, 0x1e,
];

/// One segment license as known at the settled block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    pub id: u64,
    pub prefix: [u8; 32],
    pub len: u16,
    pub parent: u64,
    pub expiry: u64,
    pub revoked: bool,
    pub holder: [u8; 20],
    pub router_key: [u8; 32],
    pub endpoints: Vec<SocketAddr>,
    /// The block of its last change.
    pub block: u64,
}

impl License {
    /// Its prefix, when well formed (the contract guarantees it; a bad one is skipped).
    pub fn prefix(&self) -> Option<Prefix> {
        Prefix::new(Address(self.prefix), self.len).ok()
    }

    pub fn to_pb(&self, valid: bool, own: bool) -> pb::License {
        pb::License {
            id: self.id,
            prefix: self
                .prefix()
                .map(|p| p.to_string())
                .unwrap_or_else(|| format!("{}/{}", hex(&self.prefix), self.len)),
            parent_id: self.parent,
            holder: Wallet(self.holder).to_checksum_string(),
            expiry_unix: self.expiry,
            revoked: self.revoked,
            valid,
            router_key: hex(&self.router_key),
            endpoints: self.endpoints.iter().map(|e| e.to_string()).collect(),
            own,
            block: self.block,
        }
    }
}

/// Encodes endpoints as `setRouter` takes them: `abi.encode((uint8 family, bytes16
/// addr, uint16 port)[])`, the inverse of [`decode_endpoints`].
pub fn encode_endpoints(endpoints: &[SocketAddr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 96 * endpoints.len());
    let word = |out: &mut Vec<u8>, v: u64| {
        out.extend_from_slice(&[0u8; 24]);
        out.extend_from_slice(&v.to_be_bytes());
    };
    word(&mut out, 32);
    word(&mut out, endpoints.len() as u64);
    for e in endpoints {
        let mut a = [0u8; 32];
        let family = match e.ip() {
            IpAddr::V4(ip) => {
                a[..4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                a[..16].copy_from_slice(&ip.octets());
                6
            }
        };
        word(&mut out, family);
        out.extend_from_slice(&a);
        word(&mut out, e.port() as u64);
    }
    out
}

/// Decodes `abi.encode((uint8 family, bytes16 addr, uint16 port)[])`, strictly.
pub fn decode_endpoints(data: &[u8]) -> Option<Vec<SocketAddr>> {
    if data.is_empty() {
        return Some(Vec::new());
    }
    let word = |i: usize| data.get(i * 32..i * 32 + 32);
    let uint = |w: &[u8]| -> Option<u64> {
        if w[..24].iter().any(|b| *b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(w[24..32].try_into().ok()?))
    };
    if uint(word(0)?)? != 32 {
        return None;
    }
    let n = uint(word(1)?)? as usize;
    if n > 16 || data.len() != 64 + n * 96 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let family = uint(word(2 + 3 * k)?)?;
        let a = word(3 + 3 * k)?;
        if a[16..].iter().any(|b| *b != 0) {
            return None;
        }
        let port = uint(word(4 + 3 * k)?)?;
        if port == 0 || port > 65535 {
            return None;
        }
        let ip = match family {
            4 => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&a[..16]).ok()?)),
            _ => return None,
        };
        out.push(SocketAddr::new(ip, port as u16));
    }
    Some(out)
}

/// EIP-137 namehash (labels as given: lower-case ASCII names; no UTS-46 mapping).
pub fn namehash(name: &str) -> [u8; 32] {
    let mut node = [0u8; 32];
    if name.is_empty() {
        return node;
    }
    for label in name.rsplit('.') {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&node);
        buf[32..].copy_from_slice(keccak256(label.as_bytes()).as_slice());
        node = keccak256(buf).0;
    }
    node
}

/// The ids that are valid at `now` (seconds): neither they nor an ancestor revoked or expired.
pub fn validity(licenses: &BTreeMap<u64, License>, now: u64) -> HashSet<u64> {
    let mut valid = HashSet::with_capacity(licenses.len());
    // Parents have smaller ids than their children: one pass in id order.
    for (id, l) in licenses {
        let own = !l.revoked && l.expiry > now && l.prefix().is_some();
        if own && (l.parent == 0 || valid.contains(&l.parent)) {
            valid.insert(*id);
        }
    }
    valid
}

/// Is this license served by this router?
pub fn is_own(l: &License, identity: &Identity) -> bool {
    match identity.device_key {
        Some(k) => l.router_key == k,
        None => identity.wallet.map(|w| w.0 == l.holder).unwrap_or(false),
    }
}

/// The routes the valid licenses ask for.
pub fn desired_routes(
    licenses: &BTreeMap<u64, License>,
    valid: &HashSet<u64>,
    identity: &Identity,
    cfg: &ChainConfig,
) -> HashMap<Prefix, ChainRoute> {
    let mut out = HashMap::new();
    for (id, l) in licenses {
        if !valid.contains(id) {
            continue;
        }
        let Some(prefix) = l.prefix() else { continue };
        let hop = if is_own(l, identity) {
            match cfg.local_next_hop {
                Some(h) => h,
                None => continue,
            }
        } else {
            let Some((port, mac, local, hop_limit)) = cfg.underlay else {
                continue;
            };
            let Some(remote) = l.endpoints.iter().find(|e| e.is_ipv4() == local.is_ipv4()) else {
                continue;
            };
            NextHop::Tunnel {
                port,
                tunnel: UdpTunnel {
                    eth_src: MacAddr::default(),
                    eth_dst: mac,
                    src: local,
                    dst: *remote,
                    outer_hop_limit: hop_limit,
                    ipv4_udp_checksum: true,
                },
            }
        };
        // Two valid licenses never share a prefix on chain; if they did, the newer wins.
        out.insert(prefix, ChainRoute { license: *id, hop });
    }
    out
}

/// Endpoint -> the valid licenses it serves (for source validation of tunnel peers).
pub fn peers(licenses: &BTreeMap<u64, License>, valid: &HashSet<u64>) -> Vec<pb::Peer> {
    let mut by: BTreeMap<SocketAddr, pb::Peer> = BTreeMap::new();
    for (id, l) in licenses {
        if !valid.contains(id) {
            continue;
        }
        let Some(prefix) = l.prefix() else { continue };
        for e in &l.endpoints {
            let p = by.entry(*e).or_insert_with(|| pb::Peer {
                endpoint: e.to_string(),
                router_key: hex(&l.router_key),
                ..Default::default()
            });
            p.prefixes.push(prefix.to_string());
            p.license_ids.push(*id);
        }
    }
    by.into_values().collect()
}

/// What the API reads: the last published chain state.
pub struct ChainView {
    pub status: pb::ChainStatus,
    pub licenses: Arc<BTreeMap<u64, License>>,
    pub valid: Arc<HashSet<u64>>,
    /// wallet -> (device key, valid until), live or not.
    pub device_keys: Arc<BTreeMap<[u8; 20], Vec<([u8; 32], u64)>>>,
    /// The chain clock the validity was computed at.
    pub now: u64,
}

impl ChainView {
    pub fn new(cfg: Option<&ChainConfig>) -> ChainView {
        let status = match cfg {
            None => pb::ChainStatus::default(),
            Some(c) => pb::ChainStatus {
                enabled: true,
                rpc_url: c.rpc_url.clone(),
                follow: c.follow.to_string(),
                ..Default::default()
            },
        };
        ChainView {
            status,
            licenses: Arc::default(),
            valid: Arc::default(),
            device_keys: Arc::default(),
            now: 0,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    chain_id: u64,
    contract: [u8; 20],
    block: u64,
    hash: [u8; 32],
    saved_unix: u64,
    /// The chain's clock when saved (its head's timestamp, advanced to the save time).
    chain_now: u64,
    licenses: Vec<License>,
    dids: Vec<([u8; 20], [u8; 32], u64)>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

type Dids = BTreeMap<([u8; 20], [u8; 32]), u64>;

/// The reconciler task's state.
pub struct Reconciler {
    shared: Arc<Shared>,
    cfg: ChainConfig,
    provider: RootProvider,
    license_addr: EthAddress,
    did_addr: Option<EthAddress>,
    licenses: BTreeMap<u64, License>,
    dids: Dids,
    /// The settled block the state is at.
    synced: Option<(u64, B256)>,
    chain_id: u64,
    /// The head's timestamp and when it was read (the chain's clock).
    head_time: Option<(u64, Instant)>,
    last_success: Option<Instant>,
    status: pb::ChainStatus,
    dirty_snapshot: bool,
    last_snapshot: Instant,
    /// Bumped whenever `licenses` or `dids` change; with 100k licenses the desired
    /// state is only recomputed when this, the expire flag or the clock (a license
    /// reaching its expiry) says it may differ.
    changes: u64,
    /// (changes, expired) of the last computed state, and the next expiry after it.
    computed: Option<(u64, bool)>,
    next_expiry: u64,
}

/// An RPC failure, with what was being done.
type RpcResult<T> = Result<T, String>;

fn rpc<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> RpcResult<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

impl Reconciler {
    pub fn new(shared: Arc<Shared>) -> Option<Reconciler> {
        let cfg = shared.config.chain.clone()?;
        let provider = http_provider(&cfg.rpc_url, cfg.rpc_timeout)?;
        let status = shared.chain.read().unwrap().status.clone();
        Some(Reconciler {
            license_addr: EthAddress::from(cfg.segment_license),
            did_addr: cfg.did_registry.map(EthAddress::from),
            shared,
            cfg,
            provider,
            licenses: BTreeMap::new(),
            dids: BTreeMap::new(),
            synced: None,
            chain_id: 0,
            head_time: None,
            last_success: None,
            status,
            dirty_snapshot: false,
            last_snapshot: Instant::now(),
            changes: 0,
            computed: None,
            next_expiry: 0,
        })
    }

    /// Loads the snapshot, then polls until `stop` says so.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        self.load_snapshot();
        loop {
            let t0 = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(600), self.poll())
                .await
                .unwrap_or_else(|_| Err("poll timed out after 600 s".into()));
            match r {
                Ok(()) => {
                    if self.status.degraded {
                        crate::log!(
                            "info",
                            "chain: RPC reachable again at block {}",
                            self.status.synced_block
                        );
                    }
                    self.status.degraded = false;
                    self.status.last_error.clear();
                    self.last_success = Some(Instant::now());
                    self.status.last_success_unix = unix_now();
                }
                Err(e) => {
                    if !self.status.degraded || self.status.last_error != e {
                        crate::log!(
                            "warn",
                            "chain: {e}; keeping the last good state (block {})",
                            self.status.synced_block
                        );
                    }
                    self.status.degraded = true;
                    self.status.last_error = e;
                }
            }
            self.publish();
            if self.dirty_snapshot
                && (self.last_snapshot.elapsed() > Duration::from_secs(5)
                    || self.licenses.len() < 10_000)
            {
                self.save_snapshot();
            }
            let wait = self.cfg.poll_interval.saturating_sub(t0.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {
                    if self.dirty_snapshot { self.save_snapshot(); }
                    return;
                }
            }
        }
    }

    /// The chain's clock: the head's timestamp plus the time since it was read,
    /// never behind the wall clock.
    fn chain_now(&self) -> u64 {
        let wall = unix_now();
        match self.head_time {
            Some((ts, seen)) => wall.max(ts + seen.elapsed().as_secs()),
            None => wall,
        }
    }

    async fn block(&self, tag: BlockNumberOrTag) -> RpcResult<Option<(u64, B256, u64)>> {
        let b = rpc(
            "eth_getBlockByNumber",
            self.provider.get_block_by_number(tag).await,
        )?;
        Ok(b.map(|b| (b.header.number, b.header.hash, b.header.timestamp)))
    }

    /// One round: find the settled block, check for a reorg, read what changed.
    async fn poll(&mut self) -> RpcResult<()> {
        if self.chain_id == 0 {
            self.chain_id = rpc("eth_chainId", self.provider.get_chain_id().await)?;
            self.status.chain_id = self.chain_id;
        }
        let (head, _, head_ts) = self
            .block(BlockNumberOrTag::Latest)
            .await?
            .ok_or("no latest block")?;
        self.head_time = Some((head_ts, Instant::now()));
        self.status.head_block = head;
        let target = match self.cfg.follow {
            Follow::Finalized => self
                .block(BlockNumberOrTag::Finalized)
                .await?
                .map(|b| b.0)
                .unwrap_or(0),
            Follow::Confirmations(n) => head.saturating_sub(n),
        };
        self.status.finalized_block = target;
        let (target, target_hash, _) = self
            .block(BlockNumberOrTag::Number(target))
            .await?
            .ok_or_else(|| format!("block {target} not found"))?;

        // Reorg: the block we settled on is gone or different.
        let mut reset = false;
        if let Some((n, h)) = self.synced {
            let now_hash = self.block(BlockNumberOrTag::Number(n)).await?.map(|b| b.1);
            if now_hash != Some(h) {
                self.status.reorgs += 1;
                crate::log!(
                    "warn",
                    "chain: block {n} was reorganised away ({} -> {}); resyncing from block {}",
                    h,
                    now_hash.map(|h| h.to_string()).unwrap_or("gone".into()),
                    self.cfg.from_block
                );
                reset = true;
            } else if n >= target {
                // Nothing new settled; the state at n is confirmed.
                self.status.synced = true;
                self.status.progress = 1.0;
                return Ok(());
            }
        }
        let initial = reset || self.synced.is_none();
        let from = if initial {
            self.cfg.from_block
        } else {
            self.synced.unwrap().0 + 1
        };
        let (mut licenses, mut dids) = if initial {
            (BTreeMap::new(), BTreeMap::new())
        } else {
            (self.licenses.clone(), self.dids.clone())
        };
        let mut touched = HashSet::new();
        let t0 = Instant::now();
        let mut last_log = Instant::now();
        let mut addresses = vec![self.license_addr];
        addresses.extend(self.did_addr);
        let mut start = from;
        let mut count = 0usize;
        while start <= target {
            let end = (start + self.cfg.log_page_blocks - 1).min(target);
            let filter = Filter::new()
                .address(addresses.clone())
                .from_block(start)
                .to_block(end);
            let logs = rpc("eth_getLogs", self.provider.get_logs(&filter).await)?;
            count += logs.len();
            for log in &logs {
                self.apply_log(log, &mut licenses, &mut dids, &mut touched);
            }
            if initial {
                self.status.progress = (end - from + 1) as f64 / (target - from + 1).max(1) as f64;
                if last_log.elapsed() > Duration::from_secs(2) {
                    crate::log!("info", "chain: initial sync: block {end}/{target} ({:.0} %), {} licenses, {count} logs", self.status.progress * 100.0, licenses.len());
                    last_log = Instant::now();
                    self.shared.chain.write().unwrap().status = self.status.clone();
                }
            }
            start = end + 1;
        }
        let contract = SegmentLicense::new(self.license_addr, &self.provider);
        let at = BlockId::number(target);
        if initial {
            // Completeness: ids are dense from 1 to nextId - 1.
            let next: U256 = rpc("nextId", contract.nextId().block(at).call().await)?;
            let next = u64::try_from(next).map_err(|_| "nextId out of range")?;
            let max = licenses.keys().next_back().copied().unwrap_or(0);
            if max + 1 != next || licenses.len() as u64 != next - 1 {
                return Err(format!("logs up to block {target} hold {} licenses (max id {max}) but nextId() is {next}", licenses.len()));
            }
        } else if !touched.is_empty() {
            // The views are the truth; the logs only said where to look.
            let ids: Vec<u64> = touched.iter().copied().collect();
            for chunk in ids.chunks(64) {
                let reads = chunk.iter().map(|id| self.read_license(&contract, *id, at));
                for l in futures::future::try_join_all(reads).await? {
                    let mut l = l;
                    l.block = licenses.get(&l.id).map(|o| o.block).unwrap_or(target);
                    if let Some(old) = licenses.get(&l.id) {
                        if old != &l {
                            crate::log!("warn", "chain: license {} from logs differs from its views at block {target}; using the views", l.id);
                        }
                    }
                    licenses.insert(l.id, l);
                }
            }
        }
        // A reorg may have happened while we read: the target must still be there.
        let check = self
            .block(BlockNumberOrTag::Number(target))
            .await?
            .map(|b| b.1);
        if check != Some(target_hash) {
            return Err(format!("block {target} changed while reading; retrying"));
        }
        if initial {
            crate::log!(
                "info",
                "chain: {} sync to block {target}: {} licenses, {} device keys, {count} logs in {:.2} s",
                if reset { "re" } else { "initial" },
                licenses.len(),
                dids.len(),
                t0.elapsed().as_secs_f64()
            );
        } else if !touched.is_empty() {
            crate::log!(
                "info",
                "chain: block {target}: {} licenses changed",
                touched.len()
            );
        }
        if initial || count > 0 {
            self.dirty_snapshot = true;
            self.changes += 1;
        }
        self.licenses = licenses;
        self.dids = dids;
        self.synced = Some((target, target_hash));
        self.status.synced_block = target;
        self.status.progress = 1.0;
        self.status.synced = true;
        Ok(())
    }

    async fn read_license(
        &self,
        c: &SegmentLicense::SegmentLicenseInstance<&RootProvider>,
        id: u64,
        at: BlockId,
    ) -> RpcResult<License> {
        let uid = U256::from(id);
        let (s, r, o) = (
            c.segment(uid).block(at),
            c.router(uid).block(at),
            c.ownerOf(uid).block(at),
        );
        let (seg, router, owner) = tokio::join!(s.call(), r.call(), o.call());
        let seg = rpc("segment", seg)?;
        let router = rpc("router", router)?;
        let owner = rpc("ownerOf", owner)?;
        Ok(License {
            id,
            prefix: seg.prefix.0,
            len: seg.prefixLen,
            parent: u64::try_from(seg.parentId).unwrap_or(u64::MAX),
            expiry: seg.expiry,
            revoked: seg.revoked,
            holder: owner.0 .0,
            router_key: router.routerKey.0,
            endpoints: decode_endpoints(&router.endpoints).unwrap_or_default(),
            block: 0,
        })
    }

    fn apply_log(
        &self,
        log: &Log,
        licenses: &mut BTreeMap<u64, License>,
        dids: &mut Dids,
        touched: &mut HashSet<u64>,
    ) {
        let Some(topic) = log.topic0() else { return };
        let block = log.block_number.unwrap_or(0);
        let id_of = |v: U256| u64::try_from(v).ok();
        if log.address() == self.license_addr {
            if *topic == SegmentLicense::SegmentIssued::SIGNATURE_HASH {
                if let Ok(e) = log.log_decode::<SegmentLicense::SegmentIssued>() {
                    let e = e.inner.data;
                    if let (Some(id), Some(parent)) = (id_of(e.id), id_of(e.parentId)) {
                        let l = entry(licenses, touched, id, block);
                        l.prefix = e.prefix.0;
                        l.len = e.prefixLen;
                        l.parent = parent;
                        l.expiry = e.expiry;
                    }
                }
            } else if *topic == SegmentLicense::Transfer::SIGNATURE_HASH {
                if let Ok(e) = log.log_decode::<SegmentLicense::Transfer>() {
                    let e = e.inner.data;
                    if let Some(id) = id_of(e.tokenId) {
                        entry(licenses, touched, id, block).holder = e.to.0 .0;
                    }
                }
            } else if *topic == SegmentLicense::RouterSet::SIGNATURE_HASH {
                if let Ok(e) = log.log_decode::<SegmentLicense::RouterSet>() {
                    let e = e.inner.data;
                    if let Some(id) = id_of(e.id) {
                        let l = entry(licenses, touched, id, block);
                        l.router_key = e.routerKey.0;
                        l.endpoints = decode_endpoints(&e.endpoints).unwrap_or_default();
                    }
                }
            } else if *topic == SegmentLicense::SegmentRevoked::SIGNATURE_HASH {
                if let Ok(e) = log.log_decode::<SegmentLicense::SegmentRevoked>() {
                    if let Some(id) = id_of(e.inner.data.id) {
                        entry(licenses, touched, id, block).revoked = true;
                    }
                }
            } else if *topic == SegmentLicense::SegmentRenewed::SIGNATURE_HASH {
                if let Ok(e) = log.log_decode::<SegmentLicense::SegmentRenewed>() {
                    let e = e.inner.data;
                    if let Some(id) = id_of(e.id) {
                        entry(licenses, touched, id, block).expiry = e.expiry;
                    }
                }
            }
        } else if Some(log.address()) == self.did_addr
            && *topic == DidRegistry::DIDAttributeChanged::SIGNATURE_HASH
        {
            if let Ok(e) = log.log_decode::<DidRegistry::DIDAttributeChanged>() {
                let e = e.inner.data;
                let mut name = [0u8; 32];
                name[..DID_ED25519_ATTRIBUTE.len()]
                    .copy_from_slice(DID_ED25519_ATTRIBUTE.as_bytes());
                if e.name.0 == name && e.value.len() == 32 {
                    let key: [u8; 32] = e.value[..].try_into().expect("32 bytes");
                    let valid_to = u64::try_from(e.validTo).unwrap_or(u64::MAX);
                    dids.insert((e.identity.0 .0, key), valid_to);
                }
            }
        }
    }

    /// Computes the desired state and applies the difference; updates the view.
    fn publish(&mut self) {
        let now = self.chain_now();
        let expired = match self.last_success {
            Some(t) => t.elapsed() > self.cfg.expire,
            None => self.synced.is_some() && self.status.degraded && self.snapshot_age_expired(),
        };
        if expired && !self.status.expired {
            crate::log!(
                "warn",
                "chain: no successful sync for {} s (expire_s): dropping chain routes",
                self.cfg.expire.as_secs()
            );
        }
        self.status.expired = expired;
        let stale = self.computed != Some((self.changes, expired)) || now >= self.next_expiry;
        let mut computed = None;
        if stale {
            let valid = validity(&self.licenses, now);
            let desired = if expired {
                HashMap::new()
            } else {
                desired_routes(
                    &self.licenses,
                    &valid,
                    &self.shared.config.identity,
                    &self.cfg,
                )
            };
            let applied = self.shared.rib.lock().unwrap().apply_chain(desired);
            crate::state::sync_security(&self.shared, &self.licenses, &valid, &self.dids, expired);
            if !applied.is_empty() {
                crate::log!(
                    "info",
                    "chain: FIB +{} -{} ~{} at block {}",
                    applied.added,
                    applied.removed,
                    applied.changed,
                    self.status.synced_block
                );
            }
            self.status.licenses = self.licenses.len() as u64;
            self.status.valid_licenses = valid.len() as u64;
            let mut keys: BTreeMap<[u8; 20], Vec<([u8; 32], u64)>> = BTreeMap::new();
            for ((w, k), v) in &self.dids {
                keys.entry(*w).or_default().push((*k, *v));
            }
            // Validity only changes by itself when a license reaches its expiry.
            self.next_expiry = self
                .licenses
                .values()
                .map(|l| l.expiry)
                .filter(|e| *e > now)
                .min()
                .unwrap_or(u64::MAX);
            self.computed = Some((self.changes, expired));
            computed = Some((valid, keys));
        }
        self.status.serial = self.shared.rib.lock().unwrap().serial();
        self.status.device_keys = self.dids.values().filter(|v| **v > now).count() as u64;
        let changed;
        {
            let mut view = self.shared.chain.write().unwrap();
            changed = view.status != self.status;
            if self.status.session_id == 0 {
                self.status.session_id = (unix_now() & 0xffff_ffff) ^ u64::from(std::process::id());
            }
            view.status = self.status.clone();
            if let Some((valid, keys)) = computed {
                view.licenses = Arc::new(self.licenses.clone());
                view.valid = Arc::new(valid);
                view.device_keys = Arc::new(keys);
            }
            view.now = now;
        }
        if changed {
            self.shared.emit_chain(self.status.clone());
        }
        crate::api::update_health(&self.shared);
    }

    fn snapshot_age_expired(&self) -> bool {
        false
    }

    fn load_snapshot(&mut self) {
        let Some(path) = self.cfg.snapshot.clone() else {
            return;
        };
        let Ok(bytes) = std::fs::read(&path) else {
            return;
        };
        let snap: Snapshot = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                crate::log!(
                    "warn",
                    "chain: snapshot {} unreadable ({e}); full sync",
                    path.display()
                );
                return;
            }
        };
        let age = unix_now().saturating_sub(snap.saved_unix);
        if snap.format != 1
            || snap.contract != self.cfg.segment_license
            || age > self.cfg.expire.as_secs()
        {
            crate::log!(
                "info",
                "chain: snapshot {} is for another contract or older than expire_s; full sync",
                path.display()
            );
            return;
        }
        self.licenses = snap.licenses.into_iter().map(|l| (l.id, l)).collect();
        self.dids = snap.dids.into_iter().map(|(w, k, v)| ((w, k), v)).collect();
        self.changes += 1;
        self.synced = Some((snap.block, B256::from(snap.hash)));
        self.chain_id = snap.chain_id;
        self.head_time = Some((
            snap.chain_now,
            Instant::now()
                .checked_sub(Duration::from_secs(age))
                .unwrap_or_else(Instant::now),
        ));
        self.status.synced_block = snap.block;
        // Serve it at once, but the first sync is not done until the RPC confirms it.
        crate::log!(
            "info",
            "chain: snapshot loaded: {} licenses at block {} ({age} s old)",
            self.licenses.len(),
            snap.block
        );
        self.last_success = Some(
            Instant::now()
                .checked_sub(Duration::from_secs(age))
                .unwrap_or_else(Instant::now),
        );
        self.publish();
        self.status.synced = false;
    }

    fn save_snapshot(&mut self) {
        let Some(path) = self.cfg.snapshot.clone() else {
            self.dirty_snapshot = false;
            return;
        };
        let Some((block, hash)) = self.synced else {
            return;
        };
        let snap = Snapshot {
            format: 1,
            chain_id: self.chain_id,
            contract: self.cfg.segment_license,
            block,
            hash: hash.0,
            saved_unix: unix_now(),
            chain_now: self.chain_now(),
            licenses: self.licenses.values().cloned().collect(),
            dids: self.dids.iter().map(|((w, k), v)| (*w, *k, *v)).collect(),
        };
        let tmp = path.with_extension("tmp");
        let r = serde_json::to_vec(&snap)
            .map_err(|e| e.to_string())
            .and_then(|b| std::fs::write(&tmp, b).map_err(|e| e.to_string()))
            .and_then(|_| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()));
        match r {
            Ok(()) => {
                self.dirty_snapshot = false;
                self.last_snapshot = Instant::now();
            }
            Err(e) => crate::log!(
                "warn",
                "chain: cannot write snapshot {}: {e}",
                path.display()
            ),
        }
    }
}

fn entry<'a>(
    licenses: &'a mut BTreeMap<u64, License>,
    touched: &mut HashSet<u64>,
    id: u64,
    block: u64,
) -> &'a mut License {
    touched.insert(id);
    let l = licenses.entry(id).or_insert_with(|| License {
        id,
        ..Default::default()
    });
    l.block = block;
    l
}

/// A JSON-RPC client whose every request gives up after `timeout`.
pub fn http_provider(url: &str, timeout: Duration) -> Option<RootProvider> {
    let url: reqwest::Url = url.parse().ok()?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .ok()?;
    let rpc = alloy::rpc::client::RpcClient::new_http_with_client(client, url);
    Some(RootProvider::new(rpc))
}

/// ENS: name -> (node, resolver, address), through `registry` on `provider`.
pub async fn ens_resolve(
    provider: &RootProvider,
    registry: [u8; 20],
    name: &str,
) -> Result<([u8; 32], [u8; 20], [u8; 20]), String> {
    let node = namehash(name);
    let reg = EnsRegistry::new(EthAddress::from(registry), provider);
    let resolver = rpc(
        "ENS resolver()",
        reg.resolver(B256::from(node)).call().await,
    )?;
    if resolver == EthAddress::ZERO {
        return Err(format!("{name}: no resolver set"));
    }
    let r = AddrResolver::new(resolver, provider);
    let addr = rpc("resolver addr()", r.addr(B256::from(node)).call().await)?;
    if addr == EthAddress::ZERO {
        return Err(format!("{name}: no address set"));
    }
    Ok((node, resolver.0 .0, addr.0 .0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namehash_matches_eip137() {
        assert_eq!(namehash(""), [0u8; 32]);
        assert_eq!(
            hex(&namehash("eth")),
            "0x93cdeb708b7545dc668eb9280176169d1c33cfd8ed6f04690a0bcc88a93fc4ae"
        );
        assert_eq!(
            hex(&namehash("foo.eth")),
            "0xde9b09fd7c5f901e23a3f19fecc54828e9c848539801e86591bd9801b019f84f"
        );
    }

    #[test]
    fn endpoints_round_trip() {
        let eps: Vec<SocketAddr> = vec![
            "127.0.0.1:5733".parse().unwrap(),
            "[2001:db8::1]:6000".parse().unwrap(),
        ];
        assert_eq!(decode_endpoints(&encode_endpoints(&eps)), Some(eps));
        assert_eq!(decode_endpoints(&encode_endpoints(&[])), Some(vec![]));
    }

    #[test]
    fn endpoints_decode_strictly() {
        let text = "0000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000000100000000000000000000000000000000000000000000000000000000000000047f000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001665";
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            decode_endpoints(&bytes),
            Some(vec!["127.0.0.1:5733".parse().unwrap()])
        );
        assert_eq!(decode_endpoints(&[]), Some(vec![]));
        assert_eq!(decode_endpoints(&bytes[..bytes.len() - 1]), None);
        let mut bad = bytes.clone();
        bad[95] = 5; // family 5
        assert_eq!(decode_endpoints(&bad), None);
    }

    #[test]
    fn validity_follows_the_chain_of_parents() {
        let mk = |id, parent, expiry, revoked| {
            let mut prefix = [0u8; 32];
            prefix[0] = 0x20;
            prefix[1] = id as u8;
            (
                id,
                License {
                    id,
                    prefix,
                    len: 16,
                    parent,
                    expiry,
                    revoked,
                    ..Default::default()
                },
            )
        };
        let m: BTreeMap<u64, License> = [
            mk(1, 0, 100, false),
            mk(2, 1, 100, false),
            mk(3, 2, 50, false),
            mk(4, 0, 100, true),
            mk(5, 4, 100, false),
        ]
        .into();
        let v = validity(&m, 60);
        let mut v: Vec<u64> = v.into_iter().collect();
        v.sort();
        assert_eq!(v, [1, 2]);
    }
}
