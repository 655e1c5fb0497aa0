//! `/etc/chainroute/chainroute.toml`: read, validated before anything starts, and
//! turned into the dataplane's configuration and static routes. Every error names
//! the key it is about (`ports[1].device: ...`).

use chainroute_dataplane::io::Device;
use chainroute_dataplane::{SecurityConfig, DataplaneConfig, Fib, NextHop, PortConfig};
use chainroute_wire::tunnel::{UdpTunnel, UDP_PORT};
use chainroute_wire::{MacAddr, Prefix, Wallet};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

/// The default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/chainroute/chainroute.toml";

/// A configuration error: the key (a dotted path) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.into(),
        message: message.into(),
    })
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub dataplane: DataplaneSection,
    #[serde(default)]
    pub ports: Vec<PortSection>,
    #[serde(default)]
    pub next_hops: Vec<NextHopSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub identity: IdentitySection,
    pub chain: Option<ChainSection>,
    #[serde(default)]
    pub api: ApiSection,
    pub metrics: Option<ListenSection>,
    pub jsonrpc: Option<ListenSection>,
    pub security: Option<SecuritySection>,
}

/// `[security]`: BIND/AUTH verification, bindings, anycast delivery and source
/// validation. Without the section it is on exactly when `[chain]` is configured
/// (the chain is where authorisations and peer licenses come from).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Drop data packets whose source has no binding on its ingress and no peer license.
    #[serde(default = "default_true")]
    pub source_validation: bool,
    /// Signatures a worker verifies per burst at most.
    #[serde(default = "default_verifies")]
    pub verifies_per_burst: usize,
    /// Signatures one source may have verified per burst.
    #[serde(default = "default_per_source")]
    pub per_source_per_burst: u32,
}

fn default_verifies() -> usize {
    64
}

fn default_per_source() -> u32 {
    8
}

/// Who this router is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// The router operator's wallet (0x + 40 hex, EIP-55 accepted).
    pub wallet: Option<String>,
    /// A file holding the router's Ed25519 device key: its 32-byte seed as hex
    /// (0x optional). The public key is the `routerKey` licenses name for this router.
    pub device_key_file: Option<String>,
    /// The router's Ed25519 public key, when no seed file is given (0x + 64 hex).
    pub device_public_key: Option<String>,
}

/// The chain the licenses live on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// Ethereum JSON-RPC endpoint (http:// or https://).
    pub rpc_url: String,
    /// contracts/deploy's JSON output (addresses and deployment block)...
    pub deployment: Option<String>,
    /// ...or the addresses themselves.
    pub segment_license: Option<String>,
    pub did_registry: Option<String>,
    pub ens_registry: Option<String>,
    /// The first block to read logs from (with explicit addresses; default 0).
    pub from_block: Option<u64>,
    /// Follow the head N blocks deep; absent: follow the `finalized` block.
    pub confirmations: Option<u64>,
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Each JSON-RPC request gives up after this long.
    #[serde(default = "default_rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// Chain data not refreshed for this long is dropped (RTR's expire timer).
    #[serde(default = "default_expire_s")]
    pub expire_s: u64,
    /// Blocks per eth_getLogs page.
    #[serde(default = "default_page")]
    pub log_page_blocks: u64,
    /// Where the last good state is persisted for a fast restart (optional).
    pub snapshot: Option<String>,
    /// Tunnel routes to other routers leave by this port ([[ports]] name)...
    pub underlay_port: Option<String>,
    /// ...to this underlay neighbour (gateway) MAC...
    pub underlay_mac: Option<String>,
    /// ...from this local endpoint (ip or ip:port; the family picks the peer's endpoint).
    pub local: Option<String>,
    #[serde(default = "default_hop_limit")]
    pub hop_limit: u8,
    /// The [[next_hops]] entry (kind local) this router's own licenses route to;
    /// absent: own licenses are listed but not routed.
    pub local_next_hop: Option<String>,
}

fn default_poll_ms() -> u64 {
    1000
}
fn default_rpc_timeout_ms() -> u64 {
    10_000
}
fn default_expire_s() -> u64 {
    7200
}
fn default_page() -> u64 {
    10_000
}
fn default_socket() -> String {
    "/run/chainroute/api.sock".into()
}
fn default_socket_mode() -> String {
    "0600".into()
}

/// The management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// The Unix socket the console uses; file permissions are the access control.
    #[serde(default = "default_socket")]
    pub socket: String,
    /// Its mode, octal: "0600" (owner only) or "0660" (owner and group).
    #[serde(default = "default_socket_mode")]
    pub socket_mode: String,
    /// Optional TCP listener (`ip:port`); TLS is then mandatory.
    pub tcp: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// CA that client certificates must chain to.
    pub client_ca: Option<String>,
    /// A file holding a bearer token accepted over TLS (`authorization: Bearer ...`).
    pub token_file: Option<String>,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            socket: default_socket(),
            socket_mode: default_socket_mode(),
            tcp: None,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    /// `ip:port`
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// EAL lcore list: the first is the main (control) lcore, the rest run workers.
    pub lcores: String,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Use hugepages (production); false runs with `--no-huge` (tests, VMs without them).
    #[serde(default = "default_true")]
    pub hugepages: bool,
    /// Probe PCI devices (false for vdev-only setups).
    #[serde(default = "default_true")]
    pub pci: bool,
    #[serde(default = "default_file_prefix")]
    pub file_prefix: String,
    /// Extra EAL arguments, passed as they are.
    #[serde(default)]
    pub eal_extra: Vec<String>,
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    #[serde(default = "default_burst")]
    pub burst: usize,
    /// Descriptors per RX queue: a bigger ring rides out a longer stall of its worker.
    #[serde(default = "default_descriptors")]
    pub rx_descriptors: u16,
    /// Descriptors per TX queue.
    #[serde(default = "default_descriptors")]
    pub tx_descriptors: u16,
    /// Seconds between counter log lines (0: never).
    #[serde(default = "default_stats_interval")]
    pub stats_interval_s: u64,
}

fn default_memory_mb() -> u32 {
    1024
}
fn default_true() -> bool {
    true
}
fn default_file_prefix() -> String {
    "chainroute".into()
}
fn default_mbufs() -> u32 {
    16383
}
fn default_descriptors() -> u16 {
    chainroute_dataplane::Rings::default().rx
}
fn default_burst() -> usize {
    chainroute_dataplane::DEFAULT_BURST
}
fn default_stats_interval() -> u64 {
    10
}
fn default_hop_limit() -> u8 {
    64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: String,
    /// A PCI address the EAL probed (`0000:03:00.0`) or a vdev (`net_tap0,iface=cr0`).
    pub device: String,
    /// Sets the port's MAC address instead of the device's own.
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NextHopKind {
    Local,
    Tunnel,
    Blackhole,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextHopSection {
    pub name: String,
    pub kind: NextHopKind,
    /// The port it leaves by (local and tunnel).
    pub port: Option<String>,
    /// Local: the host's MAC. Tunnel: the underlay neighbour's MAC (static in this release).
    pub mac: Option<String>,
    /// Tunnel: our endpoint, `ip:port` (port defaults to 5733).
    pub local: Option<String>,
    /// Tunnel: the peer's endpoint, `ip:port` (port defaults to 5733).
    pub remote: Option<String>,
    #[serde(default = "default_hop_limit")]
    pub hop_limit: u8,
    /// Fill the UDP checksum over IPv4 too (always filled over IPv6).
    #[serde(default = "default_true")]
    pub udp_checksum: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// W3IP, IPv6 or IPv4 prefix text (docs/w3ip.md).
    pub prefix: String,
    pub next_hop: String,
}

/// A validated configuration, ready to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: ConfigFile,
    pub dataplane: DataplaneConfig,
    pub routes: Vec<(Prefix, String, NextHop)>,
    /// Every named next hop (static routes added over the API name one).
    pub next_hops: HashMap<String, NextHop>,
    pub identity: Identity,
    pub chain: Option<ChainConfig>,
    pub api: ApiConfig,
    pub metrics: Option<SocketAddr>,
    pub jsonrpc: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub wallet: Option<Wallet>,
    /// The router's Ed25519 public key.
    pub device_key: Option<[u8; 32]>,
}

/// Which block the reconciler treats as settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    Finalized,
    Confirmations(u64),
}

impl fmt::Display for Follow {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Follow::Finalized => write!(f, "finalized"),
            Follow::Confirmations(n) => write!(f, "confirmations={n}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub rpc_url: String,
    pub segment_license: [u8; 20],
    pub did_registry: Option<[u8; 20]>,
    pub ens_registry: Option<[u8; 20]>,
    pub from_block: u64,
    pub follow: Follow,
    pub poll_interval: std::time::Duration,
    pub rpc_timeout: std::time::Duration,
    pub expire: std::time::Duration,
    pub log_page_blocks: u64,
    pub snapshot: Option<std::path::PathBuf>,
    /// Tunnel template for other routers' licenses: (egress port, neighbour MAC, local endpoint, hop limit).
    pub underlay: Option<(u16, MacAddr, SocketAddr, u8)>,
    /// The next hop for this router's own licenses.
    pub local_next_hop: Option<NextHop>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub socket: std::path::PathBuf,
    pub socket_mode: u32,
    pub tcp: Option<SocketAddr>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub client_ca: Option<std::path::PathBuf>,
    pub token_file: Option<std::path::PathBuf>,
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .or_else(|e| err("", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).or_else(|e| {
            let key = e.span().map(|s| key_at(text, s.start)).unwrap_or_default();
            err(key, e.message().to_string())
        })?;
        file.validate()
    }

    /// A FIB holding the static routes.
    pub fn static_fib(&self) -> Fib {
        let mut fib = Fib::new();
        for (prefix, _, hop) in &self.routes {
            fib.insert(*prefix, *hop);
        }
        fib
    }
}

/// The `[section]` / `[[section]]` heading in force at a byte offset, as a key hint.
fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut current = String::new();
    for line in before.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let n = counts.entry(name.trim().to_string()).or_insert(0);
            current = format!("{}[{}]", name.trim(), n);
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.trim().to_string();
        }
    }
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((k, _)) if !current.is_empty() => format!("{current}.{}", k.trim()),
        Some((k, _)) => k.trim().to_string(),
        None => current,
    }
}

fn parse_endpoint(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    match text.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, UDP_PORT)),
        Err(_) => err(
            key,
            format!("{text:?} is not an IPv4/IPv6 endpoint (ip, ip:port or [ipv6]:port)"),
        ),
    }
}

impl ConfigFile {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let d = &self.dataplane;
        if d.lcores.trim().is_empty() {
            return err(
                "dataplane.lcores",
                "is empty; give the main lcore and at least one worker, e.g. \"0-1\"",
            );
        }
        if d.memory_mb < 64 {
            return err(
                "dataplane.memory_mb",
                format!("{} MB is too little for the EAL (64 at least)", d.memory_mb),
            );
        }
        if !(1..=64).contains(&d.burst) {
            return err("dataplane.burst", format!("{} is outside 1..=64", d.burst));
        }
        for (key, n) in [
            ("dataplane.rx_descriptors", d.rx_descriptors),
            ("dataplane.tx_descriptors", d.tx_descriptors),
        ] {
            if !(64..=32768).contains(&n) {
                return err(key, format!("{n} is outside 64..=32768"));
            }
        }
        if d.mbufs < 1023 {
            return err(
                "dataplane.mbufs",
                format!("{} is too few (1023 at least)", d.mbufs),
            );
        }
        if d.file_prefix.is_empty() || d.file_prefix.contains('/') {
            return err(
                "dataplane.file_prefix",
                "must be a non-empty name without '/'",
            );
        }
        if self.ports.is_empty() {
            return err("ports", "at least one [[ports]] entry is needed");
        }
        let mut port_index = HashMap::new();
        let mut ports = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            if p.name.is_empty() {
                return err(format!("ports[{i}].name"), "is empty");
            }
            if port_index.insert(p.name.clone(), i as u16).is_some() {
                return err(
                    format!("ports[{i}].name"),
                    format!("{:?} is used by another port", p.name),
                );
            }
            if p.device.trim().is_empty() {
                return err(format!("ports[{i}].device"), "is empty");
            }
            let mac = match &p.mac {
                None => None,
                Some(m) => Some(m.parse::<MacAddr>().map_err(|e| ConfigError {
                    key: format!("ports[{i}].mac"),
                    message: e,
                })?),
            };
            ports.push(PortConfig {
                name: p.name.clone(),
                device: Device::parse(p.device.trim()),
                mac,
            });
        }
        let mut hops = HashMap::new();
        for (i, h) in self.next_hops.iter().enumerate() {
            let key = |f: &str| format!("next_hops[{i}].{f}");
            let port = |hops_port: &Option<String>| -> Result<u16, ConfigError> {
                let name = hops_port.as_ref().ok_or_else(|| ConfigError {
                    key: key("port"),
                    message: "is required for this kind".into(),
                })?;
                port_index.get(name).copied().ok_or_else(|| ConfigError {
                    key: key("port"),
                    message: format!("{name:?} is not a port in [[ports]]"),
                })
            };
            let mac = |m: &Option<String>| -> Result<MacAddr, ConfigError> {
                let text = m.as_ref().ok_or_else(|| ConfigError {
                    key: key("mac"),
                    message: "is required for this kind".into(),
                })?;
                text.parse().map_err(|e: String| ConfigError {
                    key: key("mac"),
                    message: e,
                })
            };
            let hop = match h.kind {
                NextHopKind::Blackhole => NextHop::Blackhole,
                NextHopKind::Local => NextHop::Local {
                    port: port(&h.port)?,
                    mac: mac(&h.mac)?,
                },
                NextHopKind::Tunnel => {
                    let local = parse_endpoint(
                        &key("local"),
                        h.local.as_deref().ok_or_else(|| ConfigError {
                            key: key("local"),
                            message: "is required for a tunnel".into(),
                        })?,
                    )?;
                    let remote = parse_endpoint(
                        &key("remote"),
                        h.remote.as_deref().ok_or_else(|| ConfigError {
                            key: key("remote"),
                            message: "is required for a tunnel".into(),
                        })?,
                    )?;
                    if local.is_ipv4() != remote.is_ipv4() {
                        return err(key("remote"), "is not the same IP family as local");
                    }
                    let p = port(&h.port)?;
                    NextHop::Tunnel {
                        port: p,
                        tunnel: UdpTunnel {
                            eth_src: MacAddr::default(), // filled with the port's MAC at start
                            eth_dst: mac(&h.mac)?,
                            src: local,
                            dst: remote,
                            outer_hop_limit: h.hop_limit,
                            ipv4_udp_checksum: h.udp_checksum,
                        },
                    }
                }
            };
            if hops.insert(h.name.clone(), hop).is_some() {
                return err(
                    key("name"),
                    format!("{:?} is used by another next hop", h.name),
                );
            }
        }
        let mut routes = Vec::new();
        let mut seen = HashMap::new();
        for (i, r) in self.routes.iter().enumerate() {
            let prefix: Prefix = r.prefix.parse().map_err(|e| ConfigError {
                key: format!("routes[{i}].prefix"),
                message: format!("{e}"),
            })?;
            let hop = *hops.get(&r.next_hop).ok_or_else(|| ConfigError {
                key: format!("routes[{i}].next_hop"),
                message: format!("{:?} is not a next hop in [[next_hops]]", r.next_hop),
            })?;
            if let Some(j) = seen.insert(prefix, i) {
                return err(
                    format!("routes[{i}].prefix"),
                    format!("{prefix} is already routed by routes[{j}]"),
                );
            }
            routes.push((prefix, r.next_hop.clone(), hop));
        }
        let mut eal_args = vec![
            "-l".to_string(),
            d.lcores.clone(),
            "-m".into(),
            d.memory_mb.to_string(),
            "--file-prefix".into(),
            d.file_prefix.clone(),
        ];
        if !d.hugepages {
            eal_args.push("--no-huge".into());
        }
        if !d.pci {
            eal_args.push("--no-pci".into());
        }
        eal_args.extend(d.eal_extra.iter().cloned());
        let security = match &self.security {
            None if self.chain.is_some() => Some(SecurityConfig::default()),
            None => None,
            Some(s) if !s.enabled => None,
            Some(s) => {
                if !(1..=256).contains(&s.verifies_per_burst) {
                    return err("security.verifies_per_burst", format!("{} is outside 1..=256", s.verifies_per_burst));
                }
                if s.per_source_per_burst == 0 {
                    return err("security.per_source_per_burst", "must be at least 1");
                }
                let mut c = SecurityConfig { source_validation: s.source_validation, verifies_per_burst: s.verifies_per_burst, ..SecurityConfig::default() };
                c.shed.trusted_per_burst = s.per_source_per_burst;
                Some(c)
            }
        };
        let dataplane = DataplaneConfig {
            eal_args,
            ports,
            mbufs: d.mbufs,
            burst: d.burst,
            rings: chainroute_dataplane::Rings {
                rx: d.rx_descriptors,
                tx: d.tx_descriptors,
            },
            security,
        };
        let identity = self.identity.validate()?;
        let chain = match &self.chain {
            None => None,
            Some(c) => Some(c.validate(&port_index, &hops)?),
        };
        let api = self.api.validate()?;
        let listen =
            |key: &str, s: &Option<ListenSection>| -> Result<Option<SocketAddr>, ConfigError> {
                match s {
                    None => Ok(None),
                    Some(l) => l.listen.parse().map(Some).map_err(|_| ConfigError {
                        key: format!("{key}.listen"),
                        message: format!("{:?} is not ip:port", l.listen),
                    }),
                }
            };
        let metrics = listen("metrics", &self.metrics)?;
        let jsonrpc = listen("jsonrpc", &self.jsonrpc)?;
        Ok(Config {
            file: self,
            dataplane,
            routes,
            next_hops: hops,
            identity,
            chain,
            api,
            metrics,
            jsonrpc,
        })
    }
}

fn parse_hex<const N: usize>(key: &str, text: &str) -> Result<[u8; N], ConfigError> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    if t.len() != 2 * N || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return err(
            key,
            format!(
                "expected {} hex digits (0x optional), got {:?}",
                2 * N,
                text.trim()
            ),
        );
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(out)
}

fn parse_address(key: &str, text: &str) -> Result<[u8; 20], ConfigError> {
    text.trim()
        .parse::<Wallet>()
        .map(|w| w.0)
        .map_err(|e| ConfigError {
            key: key.into(),
            message: format!("{:?} is not a contract address: {e}", text.trim()),
        })
}

impl IdentitySection {
    fn validate(&self) -> Result<Identity, ConfigError> {
        let wallet = match &self.wallet {
            None => None,
            Some(w) => Some(w.trim().parse::<Wallet>().map_err(|e| ConfigError {
                key: "identity.wallet".into(),
                message: format!("{:?} is not a wallet: {e}", w.trim()),
            })?),
        };
        let device_key = match (&self.device_key_file, &self.device_public_key) {
            (Some(_), Some(_)) => {
                return err(
                    "identity.device_public_key",
                    "give either device_key_file or device_public_key, not both",
                )
            }
            (Some(f), None) => {
                let text = std::fs::read_to_string(f).or_else(|e| {
                    err("identity.device_key_file", format!("cannot read {f}: {e}"))
                })?;
                let seed = parse_hex::<32>("identity.device_key_file", &text)?;
                Some(
                    ed25519_dalek::SigningKey::from_bytes(&seed)
                        .verifying_key()
                        .to_bytes(),
                )
            }
            (None, Some(k)) => Some(parse_hex::<32>("identity.device_public_key", k)?),
            (None, None) => None,
        };
        Ok(Identity { wallet, device_key })
    }
}

impl ChainSection {
    fn validate(
        &self,
        ports: &HashMap<String, u16>,
        hops: &HashMap<String, NextHop>,
    ) -> Result<ChainConfig, ConfigError> {
        let url = self.rpc_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return err(
                "chain.rpc_url",
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
        let (segment_license, mut did_registry, mut ens_registry, mut from_block);
        match (&self.deployment, &self.segment_license) {
            (Some(_), Some(_)) => {
                return err(
                    "chain.segment_license",
                    "give either chain.deployment or the addresses, not both",
                )
            }
            (None, None) => return err(
                "chain",
                "needs `deployment` (contracts/deploy's JSON) or `segment_license` (its address)",
            ),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .or_else(|e| err("chain.deployment", format!("cannot read {path}: {e}")))?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .or_else(|e| err("chain.deployment", format!("{path} is not JSON: {e}")))?;
                let addr = |name: &str| -> Result<Option<[u8; 20]>, ConfigError> {
                    match v["contracts"][name]["address"].as_str() {
                        None => Ok(None),
                        Some(a) => parse_address("chain.deployment", a).map(Some),
                    }
                };
                segment_license = addr("SegmentLicense")?.ok_or_else(|| ConfigError {
                    key: "chain.deployment".into(),
                    message: format!("{path} has no contracts.SegmentLicense.address"),
                })?;
                did_registry = addr("EthereumDIDRegistry")?;
                ens_registry = addr("ENSRegistry")?;
                from_block = v["deploymentBlock"].as_u64().unwrap_or(0);
            }
            (None, Some(a)) => {
                segment_license = parse_address("chain.segment_license", a)?;
                did_registry = None;
                ens_registry = None;
                from_block = 0;
            }
        }
        if let Some(a) = &self.did_registry {
            did_registry = Some(parse_address("chain.did_registry", a)?);
        }
        if let Some(a) = &self.ens_registry {
            ens_registry = Some(parse_address("chain.ens_registry", a)?);
        }
        if let Some(b) = self.from_block {
            from_block = b;
        }
        if self.poll_interval_ms < 50 {
            return err(
                "chain.poll_interval_ms",
                format!("{} ms is too short (50 at least)", self.poll_interval_ms),
            );
        }
        if self.rpc_timeout_ms < 100 {
            return err(
                "chain.rpc_timeout_ms",
                format!("{} ms is too short (100 at least)", self.rpc_timeout_ms),
            );
        }
        if self.expire_s == 0 {
            return err("chain.expire_s", "must be over 0");
        }
        if self.log_page_blocks == 0 {
            return err("chain.log_page_blocks", "must be over 0");
        }
        let underlay = match (&self.underlay_port, &self.underlay_mac, &self.local) {
            (None, None, None) => None,
            (Some(p), Some(m), Some(l)) => {
                let port = *ports.get(p).ok_or_else(|| ConfigError { key: "chain.underlay_port".into(), message: format!("{p:?} is not a port in [[ports]]") })?;
                let mac: MacAddr = m.parse().map_err(|e: String| ConfigError { key: "chain.underlay_mac".into(), message: e })?;
                let local = parse_endpoint("chain.local", l)?;
                Some((port, mac, local, self.hop_limit))
            }
            (None, _, _) => return err("chain.underlay_port", "is required with underlay_mac/local (tunnels to other routers need all three)"),
            (_, None, _) => return err("chain.underlay_mac", "is required with underlay_port/local (tunnels to other routers need all three)"),
            (_, _, None) => return err("chain.local", "is required with underlay_port/underlay_mac (tunnels to other routers need all three)"),
        };
        let local_next_hop = match &self.local_next_hop {
            None => None,
            Some(n) => match hops.get(n) {
                Some(h @ NextHop::Local { .. }) => Some(*h),
                Some(_) => {
                    return err(
                        "chain.local_next_hop",
                        format!("{n:?} is not a next hop of kind local"),
                    )
                }
                None => {
                    return err(
                        "chain.local_next_hop",
                        format!("{n:?} is not a next hop in [[next_hops]]"),
                    )
                }
            },
        };
        let follow = match self.confirmations {
            None => Follow::Finalized,
            Some(n) => Follow::Confirmations(n),
        };
        Ok(ChainConfig {
            rpc_url: url.to_string(),
            segment_license,
            did_registry,
            ens_registry,
            from_block,
            follow,
            poll_interval: std::time::Duration::from_millis(self.poll_interval_ms),
            rpc_timeout: std::time::Duration::from_millis(self.rpc_timeout_ms),
            expire: std::time::Duration::from_secs(self.expire_s),
            log_page_blocks: self.log_page_blocks,
            snapshot: self.snapshot.as_ref().map(std::path::PathBuf::from),
            underlay,
            local_next_hop,
        })
    }
}

impl ApiSection {
    fn validate(&self) -> Result<ApiConfig, ConfigError> {
        if self.socket.trim().is_empty() {
            return err("api.socket", "is empty");
        }
        let mode = u32::from_str_radix(self.socket_mode.trim().trim_start_matches("0o"), 8)
            .or_else(|_| {
                err(
                    "api.socket_mode",
                    format!(
                        "{:?} is not an octal mode such as \"0600\"",
                        self.socket_mode
                    ),
                )
            })?;
        if mode & 0o007 != 0 {
            return err(
                "api.socket_mode",
                format!("{:04o} lets every local user in; use 0600 or 0660", mode),
            );
        }
        if mode & 0o600 != 0o600 || mode > 0o777 {
            return err(
                "api.socket_mode",
                format!(
                    "{:04o}: the owner needs read and write (0600 or 0660)",
                    mode
                ),
            );
        }
        let path = |p: &Option<String>| p.as_ref().map(std::path::PathBuf::from);
        let tcp = match &self.tcp {
            None => None,
            Some(t) => Some(
                t.parse::<SocketAddr>()
                    .or_else(|_| err("api.tcp", format!("{t:?} is not ip:port")))?,
            ),
        };
        if tcp.is_some() {
            if self.tls_cert.is_none() {
                return err(
                    "api.tls_cert",
                    "is required with api.tcp: the TCP API only speaks TLS",
                );
            }
            if self.tls_key.is_none() {
                return err(
                    "api.tls_key",
                    "is required with api.tcp: the TCP API only speaks TLS",
                );
            }
            if self.client_ca.is_none() && self.token_file.is_none() {
                return err("api.client_ca", "api.tcp needs client certificates (client_ca) or a token (token_file): nobody else may manage the router");
            }
        }
        for (k, v) in [
            ("api.tls_cert", &self.tls_cert),
            ("api.tls_key", &self.tls_key),
            ("api.client_ca", &self.client_ca),
            ("api.token_file", &self.token_file),
        ] {
            if let Some(f) = v {
                if std::fs::metadata(f).is_err() {
                    return err(k, format!("cannot read {f}"));
                }
            }
        }
        Ok(ApiConfig {
            socket: self.socket.trim().into(),
            socket_mode: mode,
            tcp,
            tls_cert: path(&self.tls_cert),
            tls_key: path(&self.tls_key),
            client_ca: path(&self.client_ca),
            token_file: path(&self.token_file),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[dataplane]
lcores = "0-1"
hugepages = false
pci = false

[[ports]]
name = "uplink"
device = "net_null0"

[[ports]]
name = "hosts"
device = "net_tap0,iface=cr0"

[[next_hops]]
name = "peer"
kind = "tunnel"
port = "uplink"
mac = "02:00:00:00:00:02"
local = "192.0.2.1"
remote = "198.51.100.2:6000"

[[next_hops]]
name = "lan"
kind = "local"
port = "hosts"
mac = "02:00:00:00:00:03"

[[next_hops]]
name = "null"
kind = "blackhole"

[[routes]]
prefix = "2001:db8::/32"
next_hop = "peer"

[[routes]]
prefix = "10.0.0.0/8"
next_hop = "lan"

[[routes]]
prefix = "::/0"
next_hop = "null"
"#;

    #[test]
    fn good_config() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.routes.len(), 3);
        assert!(c.dataplane.eal_args.contains(&"--no-huge".to_string()));
        assert_eq!(
            c.dataplane.ports[1].device,
            Device::Vdev("net_tap0,iface=cr0".into())
        );
        match c.routes[0].2 {
            NextHop::Tunnel { port, tunnel } => {
                assert_eq!(port, 0);
                assert_eq!(tunnel.src, "192.0.2.1:5733".parse().unwrap());
                assert_eq!(tunnel.dst, "198.51.100.2:6000".parse().unwrap());
            }
            other => panic!("{other:?}"),
        }
        let fib = c.static_fib();
        assert_eq!(fib.len(), 3);
    }

    fn error_of(text: &str) -> ConfigError {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_key() {
        let e = error_of(&GOOD.replace("next_hop = \"lan\"", "next_hop = \"lane\""));
        assert_eq!(e.key, "routes[1].next_hop");
        let e = error_of(&GOOD.replace("10.0.0.0/8", "10.0.0.1/8"));
        assert_eq!(e.key, "routes[1].prefix");
        assert!(e.message.contains("bits after the prefix length"), "{e}");
        let e =
            error_of(&GOOD.replace("remote = \"198.51.100.2:6000\"", "remote = \"2001:db8::1\""));
        assert_eq!(e.key, "next_hops[0].remote");
        let e = error_of(&GOOD.replace("mac = \"02:00:00:00:00:03\"", "mac = \"02:00:00\""));
        assert_eq!(e.key, "next_hops[1].mac");
        let e = error_of(&GOOD.replace("port = \"hosts\"", "port = \"nope\""));
        assert_eq!(e.key, "next_hops[1].port");
        let e = error_of(&GOOD.replace("lcores = \"0-1\"", "lcores = \"0-1\"\nburst = 500"));
        assert_eq!(e.key, "dataplane.burst");
        let e = error_of(&GOOD.replace("lcores = \"0-1\"", "lcores = \"0-1\"\nrx_descriptors = 16"));
        assert_eq!(e.key, "dataplane.rx_descriptors");
        assert!(e.message.contains("64..=32768"), "{e}");
        let e = error_of(&GOOD.replace("lcores = \"0-1\"", "lcores = \"0-1\"\ntx_descriptors = 40000"));
        assert_eq!(e.key, "dataplane.tx_descriptors");
        let e = error_of(&GOOD.replace("pci = false", "pci = false\ncolour = 3"));
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        assert_eq!(e.key, "dataplane.colour");
        let e = error_of(&GOOD.replace("device = \"net_null0\"", "device = 7"));
        assert_eq!(e.key, "ports[0].device");
        let e = error_of(&GOOD.replace("name = \"hosts\"", "name = \"uplink\""));
        assert_eq!(e.key, "ports[1].name");
        let e = error_of(&format!(
            "{GOOD}\n[[routes]]\nprefix = \"2001:db8::/32\"\nnext_hop = \"lan\"\n"
        ));
        assert_eq!(e.key, "routes[3].prefix");
    }
}
