//! `/etc/chainroute/chainroute.toml`: read, validated before anything starts, and
//! turned into the dataplane's configuration and static routes. Every error names
//! the key it is about (`ports[1].device: ...`).

use chainroute_dataplane::io::Device;
use chainroute_dataplane::{DataplaneConfig, Fib, NextHop, PortConfig};
use chainroute_wire::tunnel::{UdpTunnel, UDP_PORT};
use chainroute_wire::{MacAddr, Prefix};
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
    Err(ConfigError { key: key.into(), message: message.into() })
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
fn default_burst() -> usize {
    32
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
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).or_else(|e| err("", format!("cannot read {}: {e}", path.display())))?;
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
        Err(_) => err(key, format!("{text:?} is not an IPv4/IPv6 endpoint (ip, ip:port or [ipv6]:port)")),
    }
}

impl ConfigFile {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let d = &self.dataplane;
        if d.lcores.trim().is_empty() {
            return err("dataplane.lcores", "is empty; give the main lcore and at least one worker, e.g. \"0-1\"");
        }
        if d.memory_mb < 64 {
            return err("dataplane.memory_mb", format!("{} MB is too little for the EAL (64 at least)", d.memory_mb));
        }
        if !(1..=64).contains(&d.burst) {
            return err("dataplane.burst", format!("{} is outside 1..=64", d.burst));
        }
        if d.mbufs < 1023 {
            return err("dataplane.mbufs", format!("{} is too few (1023 at least)", d.mbufs));
        }
        if d.file_prefix.is_empty() || d.file_prefix.contains('/') {
            return err("dataplane.file_prefix", "must be a non-empty name without '/'");
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
                return err(format!("ports[{i}].name"), format!("{:?} is used by another port", p.name));
            }
            if p.device.trim().is_empty() {
                return err(format!("ports[{i}].device"), "is empty");
            }
            let mac = match &p.mac {
                None => None,
                Some(m) => Some(m.parse::<MacAddr>().map_err(|e| ConfigError { key: format!("ports[{i}].mac"), message: e })?),
            };
            ports.push(PortConfig { name: p.name.clone(), device: Device::parse(p.device.trim()), mac });
        }
        let mut hops = HashMap::new();
        for (i, h) in self.next_hops.iter().enumerate() {
            let key = |f: &str| format!("next_hops[{i}].{f}");
            let port = |hops_port: &Option<String>| -> Result<u16, ConfigError> {
                let name = hops_port.as_ref().ok_or_else(|| ConfigError { key: key("port"), message: "is required for this kind".into() })?;
                port_index.get(name).copied().ok_or_else(|| ConfigError { key: key("port"), message: format!("{name:?} is not a port in [[ports]]") })
            };
            let mac = |m: &Option<String>| -> Result<MacAddr, ConfigError> {
                let text = m.as_ref().ok_or_else(|| ConfigError { key: key("mac"), message: "is required for this kind".into() })?;
                text.parse().map_err(|e: String| ConfigError { key: key("mac"), message: e })
            };
            let hop = match h.kind {
                NextHopKind::Blackhole => NextHop::Blackhole,
                NextHopKind::Local => NextHop::Local { port: port(&h.port)?, mac: mac(&h.mac)? },
                NextHopKind::Tunnel => {
                    let local = parse_endpoint(&key("local"), h.local.as_deref().ok_or_else(|| ConfigError { key: key("local"), message: "is required for a tunnel".into() })?)?;
                    let remote = parse_endpoint(&key("remote"), h.remote.as_deref().ok_or_else(|| ConfigError { key: key("remote"), message: "is required for a tunnel".into() })?)?;
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
                return err(key("name"), format!("{:?} is used by another next hop", h.name));
            }
        }
        let mut routes = Vec::new();
        let mut seen = HashMap::new();
        for (i, r) in self.routes.iter().enumerate() {
            let prefix: Prefix = r.prefix.parse().map_err(|e| ConfigError { key: format!("routes[{i}].prefix"), message: format!("{e}") })?;
            let hop = *hops.get(&r.next_hop).ok_or_else(|| ConfigError { key: format!("routes[{i}].next_hop"), message: format!("{:?} is not a next hop in [[next_hops]]", r.next_hop) })?;
            if let Some(j) = seen.insert(prefix, i) {
                return err(format!("routes[{i}].prefix"), format!("{prefix} is already routed by routes[{j}]"));
            }
            routes.push((prefix, r.next_hop.clone(), hop));
        }
        let mut eal_args = vec!["-l".to_string(), d.lcores.clone(), "-m".into(), d.memory_mb.to_string(), "--file-prefix".into(), d.file_prefix.clone()];
        if !d.hugepages {
            eal_args.push("--no-huge".into());
        }
        if !d.pci {
            eal_args.push("--no-pci".into());
        }
        eal_args.extend(d.eal_extra.iter().cloned());
        let dataplane = DataplaneConfig { eal_args, ports, mbufs: d.mbufs, burst: d.burst };
        Ok(Config { file: self, dataplane, routes })
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
        assert_eq!(c.dataplane.ports[1].device, Device::Vdev("net_tap0,iface=cr0".into()));
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
        let e = error_of(&GOOD.replace("remote = \"198.51.100.2:6000\"", "remote = \"2001:db8::1\""));
        assert_eq!(e.key, "next_hops[0].remote");
        let e = error_of(&GOOD.replace("mac = \"02:00:00:00:00:03\"", "mac = \"02:00:00\""));
        assert_eq!(e.key, "next_hops[1].mac");
        let e = error_of(&GOOD.replace("port = \"hosts\"", "port = \"nope\""));
        assert_eq!(e.key, "next_hops[1].port");
        let e = error_of(&GOOD.replace("lcores = \"0-1\"", "lcores = \"0-1\"\nburst = 500"));
        assert_eq!(e.key, "dataplane.burst");
        let e = error_of(&GOOD.replace("pci = false", "pci = false\ncolour = 3"));
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        assert_eq!(e.key, "dataplane.colour");
        let e = error_of(&GOOD.replace("device = \"net_null0\"", "device = 7"));
        assert_eq!(e.key, "ports[0].device");
        let e = error_of(&GOOD.replace("name = \"hosts\"", "name = \"uplink\""));
        assert_eq!(e.key, "ports[1].name");
        let e = error_of(&format!("{GOOD}\n[[routes]]\nprefix = \"2001:db8::/32\"\nnext_hop = \"lan\"\n"));
        assert_eq!(e.key, "routes[3].prefix");
    }
}
