//! Two chainrouted processes, each in its own network namespace with a net_tap
//! port, joined by a veth pair and a bridge on each side:
//!
//! ```text
//!  ns A: [chainrouted A] --tap crA-- brA --vA====vB-- brB --tap crB-- [chainrouted B] :ns B
//!              |pcap out                                                  |pcap out
//! ```
//!
//! Hosts inject W3IP-in-UDP on each bridge (raw AF_PACKET from python3). Router A
//! tunnels 2001:db8:b::/48 to router B over IPv4 UDP/5733 and router B delivers it
//! on its pcap port, and the reverse for 2001:db8:a::/48. Both output files must hold
//! every packet with the hop limit decremented twice. Then SIGTERM: both exit 0.
//! Needs root (network namespaces), as `make test` runs.

use chainroute_dataplane::pcap::{read_all, PcapWriter};
use chainroute_mgmt::testbed::sh;
use chainroute_wire::tunnel::UdpTunnel;
use chainroute_wire::{w3ip, Address, MacAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

struct Router(Child);

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const MAC_A: &str = "02:00:00:00:0a:01";
const MAC_B: &str = "02:00:00:00:0b:01";

fn config(
    dir: &Path,
    me: &str,
    peer_mac: &str,
    my_ip: &str,
    peer_ip: &str,
    mine: &str,
    theirs: &str,
    tap_mac: &str,
) -> PathBuf {
    let empty = dir.join(format!("empty-{me}.pcap"));
    PcapWriter::new(std::fs::File::create(&empty).unwrap()).unwrap();
    let out = dir.join(format!("out-{me}.pcap"));
    let text = format!(
        r#"
[dataplane]
lcores = "0-1"
memory_mb = 256
hugepages = false
pci = false
file_prefix = "two-routers-{me}-{pid}"
mbufs = 2047
stats_interval_s = 1

[[ports]]
name = "underlay"
device = "net_tap_{me},iface=cr{me},mac={tap_mac}"

[[ports]]
name = "hosts"
device = "net_pcap_{me},rx_pcap={empty},tx_pcap={out}"

[[next_hops]]
name = "peer"
kind = "tunnel"
port = "underlay"
mac = "{peer_mac}"
local = "{my_ip}"
remote = "{peer_ip}"

[[next_hops]]
name = "lan"
kind = "local"
port = "hosts"
mac = "02:00:00:00:00:99"

[[routes]]
prefix = "{theirs}"
next_hop = "peer"

[[routes]]
prefix = "{mine}"
next_hop = "lan"

[api]
socket = "{sock}"
"#,
        sock = dir.join(format!("{me}.sock")).display(),
        pid = std::process::id(),
        empty = empty.display(),
        out = out.display(),
    );
    let path = dir.join(format!("{me}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn start(ns: &Netns, config: &Path, log: &Path) -> Router {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_chainrouted"),
            "--config",
        ])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start chainrouted");
    Router(child)
}

fn wait_for_link(ns: &Netns, iface: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let ok = Command::new("ip")
            .args(["-n", &ns.0, "link", "show", iface])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{iface} never appeared in {}", ns.0);
}

/// W3IP-in-UDP frames from a host at `host_ip` to the router at `router_ip`.
fn host_frames(
    dsts: &[Address],
    host_ip: &str,
    router_ip: &str,
    router_mac: &str,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let t = UdpTunnel {
        eth_src: MacAddr([2, 0, 0, 0, 0, 0x42]),
        eth_dst: router_mac.parse().unwrap(),
        src: format!("{host_ip}:40000").parse().unwrap(),
        dst: format!("{router_ip}:5733").parse().unwrap(),
        outer_hop_limit: 64,
        ipv4_udp_checksum: true,
    };
    let mut frames = Vec::new();
    let mut inner = Vec::new();
    for (i, dst) in dsts.iter().enumerate() {
        let repr = w3ip::Repr {
            traffic_class: 0,
            flow_label: i as u32,
            payload_len: 16,
            next_header: 59,
            hop_limit: 10,
            src_addr: "2001:db8:ffff::1".parse().unwrap(),
            dst_addr: *dst,
        };
        let mut p = vec![i as u8; repr.buffer_len()];
        repr.emit(&mut w3ip::Packet::new_unchecked(&mut p[..]))
            .unwrap();
        let mut f = vec![0u8; t.header_len() + p.len()];
        f[t.header_len()..].copy_from_slice(&p);
        t.emit(&mut f, p.len()).unwrap();
        frames.push(f);
        p[7] -= 2; // two routers on the way
        inner.push(p);
    }
    (frames, inner)
}

/// Sends raw frames on an interface inside a namespace.
fn inject(ns: &Netns, iface: &str, frames: &[Vec<u8>]) {
    let hex: Vec<String> = frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let script = format!(
        "import socket,sys,time\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(('{iface}',0))\nfor h in sys.stdin.read().split():\n    s.send(bytes.fromhex(h))\n    time.sleep(0.001)\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(hex.join("\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn two_routers_exchange_tunnelled_traffic() {
    assert!(
        unsafe { libc_geteuid() } == 0,
        "this test needs root for network namespaces (make test runs as root)"
    );
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("chainroute-two-routers-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let na = Netns::new(format!("cr-a-{pid}"));
    let nb = Netns::new(format!("cr-b-{pid}"));

    let ca = config(
        &dir,
        "A",
        MAC_B,
        "10.99.0.1",
        "10.99.0.2",
        "2001:db8:a::/48",
        "2001:db8:b::/48",
        MAC_A,
    );
    let cb = config(
        &dir,
        "B",
        MAC_A,
        "10.99.0.2",
        "10.99.0.1",
        "2001:db8:b::/48",
        "2001:db8:a::/48",
        MAC_B,
    );
    let mut ra = start(&na, &ca, &dir.join("A.log"));
    let mut rb = start(&nb, &cb, &dir.join("B.log"));
    wait_for_link(&na, "crA");
    wait_for_link(&nb, "crB");

    // The underlay: a bridge in each namespace holding the router's tap and one end of a veth.
    sh(&[
        "ip",
        "link",
        "add",
        &format!("vA{pid}"),
        "type",
        "veth",
        "peer",
        "name",
        &format!("vB{pid}"),
    ]);
    sh(&[
        "ip",
        "link",
        "set",
        &format!("vA{pid}"),
        "netns",
        &na.0,
        "name",
        "vA",
    ]);
    sh(&[
        "ip",
        "link",
        "set",
        &format!("vB{pid}"),
        "netns",
        &nb.0,
        "name",
        "vB",
    ]);
    for (ns, side) in [(&na, "A"), (&nb, "B")] {
        // net_tap gives the kernel side the port's MAC; a bridge would then keep frames
        // for that MAC to itself. The kernel side gets its own.
        sh(&[
            "ip",
            "-n",
            &ns.0,
            "link",
            "set",
            &format!("cr{side}"),
            "address",
            &format!("02:00:00:00:ee:0{}", if side == "A" { 1 } else { 2 }),
        ]);
        let br = format!("br{side}");
        sh(&["ip", "-n", &ns.0, "link", "add", &br, "type", "bridge"]);
        for dev in [format!("cr{side}"), format!("v{side}")] {
            sh(&["ip", "-n", &ns.0, "link", "set", &dev, "master", &br]);
            sh(&["ip", "-n", &ns.0, "link", "set", &dev, "up"]);
        }
        sh(&["ip", "-n", &ns.0, "link", "set", &br, "up"]);
    }

    let to_b: Vec<Address> = (0..40u8)
        .map(|i| format!("2001:db8:b:{i:x}::{i:x}").parse().unwrap())
        .collect();
    let to_a: Vec<Address> = (0..30u8)
        .map(|i| format!("2001:db8:a:{i:x}::1:{i:x}").parse().unwrap())
        .collect();
    let (frames_ab, expect_at_b) = host_frames(&to_b, "10.99.0.100", "10.99.0.1", MAC_A);
    let (frames_ba, expect_at_a) = host_frames(&to_a, "10.99.0.200", "10.99.0.2", MAC_B);
    inject(&na, "brA", &frames_ab);
    inject(&nb, "brB", &frames_ba);
    std::thread::sleep(Duration::from_millis(500));

    for r in [&mut ra, &mut rb] {
        sh(&["kill", "-TERM", &r.0.id().to_string()]);
    }
    for (r, name) in [(&mut ra, "A"), (&mut rb, "B")] {
        let status = r.0.wait().unwrap();
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap();
        assert!(status.success(), "router {name} exit {status}: {log}");
        assert!(
            log.contains("final: rx"),
            "router {name} logs its counters: {log}"
        );
    }

    for (name, expect) in [("B", &expect_at_b), ("A", &expect_at_a)] {
        let frames =
            read_all(std::fs::File::open(dir.join(format!("out-{name}.pcap"))).unwrap()).unwrap();
        let got: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| f[12..14] == [0x88, 0xb5])
            .map(|f| f[14..].to_vec())
            .collect();
        assert_eq!(
            got.len(),
            expect.len(),
            "router {name} delivers every tunnelled packet"
        );
        for (k, (g, e)) in got.iter().zip(expect.iter()).enumerate() {
            assert!(
                g == e,
                "router {name}, packet {k}: got {g:02x?}, want {e:02x?} (hop limit -2)"
            );
        }
        assert!(
            frames.iter().all(|f| f[0..6] == [2, 0, 0, 0, 0, 0x99]),
            "native frames to the host MAC"
        );
    }
    drop(na);
    drop(nb);
    std::fs::remove_dir_all(&dir).ok();
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
