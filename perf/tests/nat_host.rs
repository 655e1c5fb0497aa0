//! Intranet penetration: a host behind nftables masquerade binds its wallet at the
//! router over UDP, is reached by its anycast address, and its replies come back.
//!
//! ```text
//!   ns hostA (10.77.0.2) ----\
//!                             br (ns rtr) -- tap -- [dataplane, in this process]
//!   ns nat (10.77.0.254) ----/
//!     | masquerade
//!   ns hostB (192.168.77.2)
//! ```
//!
//! Host A pings host B's anycast address (`::/96` + wallet B); the router rewrites
//! it to B's binding and sends it over UDP to the NAT's public endpoint; B answers
//! to A's unicast, which the router delivers to A's binding. Needs root.

use chainroute_dataplane::io::Device;
use chainroute_dataplane::pcap::PcapWriter;
use chainroute_dataplane::{Dataplane, DataplaneConfig, Fib, Ingress, NextHop, PortConfig, SecurityConfig};
use chainroute_crypto::DeviceKey;
use chainroute_wire::{Address, MacAddr, Wallet};
use std::process::{Command, Output};

const ROUTER_MAC: &str = "02:00:00:00:77:01";

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

#[test]
fn host_behind_nat_binds_is_reached_and_replies() {
    assert!(unsafe { geteuid() } == 0, "this test needs root for network namespaces and nftables (make test runs as root)");
    let pid = std::process::id();
    let tag = pid % 100000;
    let (rtr, nat, ha, hb) = (format!("rtr{tag}"), format!("nat{tag}"), format!("ha{tag}"), format!("hb{tag}"));
    let ns = Namespaces(vec![rtr.clone(), nat.clone(), ha.clone(), hb.clone()]);
    for n in &ns.0 {
        let _ = Command::new("ip").args(["netns", "del", n]).output();
        run(&["ip", "netns", "add", n]);
        run(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }

    let dir = std::env::temp_dir().join(format!("chainroute-nat-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pcap");
    PcapWriter::new(std::fs::File::create(&empty).unwrap()).unwrap();
    let tap = format!("crn{tag}");

    let (wa, wb) = (Wallet([0xaa; 20]), Wallet([0xbb; 20]));
    let (ka, kb) = (DeviceKey::from_seed(&[0xa1; 32]), DeviceKey::from_seed(&[0xb1; 32]));
    let mut fib = Fib::new();
    // The locator block served here ("local"): hosts bind inside it.
    fib.insert("2001:db8:77::/48".parse().unwrap(), NextHop::Local { port: 0, mac: MacAddr::BROADCAST });
    let config = DataplaneConfig {
        eal_args: dpdk_sys::eal::test_args("dp-nat", 512, "0-1"),
        ports: vec![
            PortConfig { name: "access".into(), device: Device::Vdev(format!("net_tap_nat,iface={tap},mac={ROUTER_MAC}")), mac: None },
            PortConfig { name: "spare".into(), device: Device::Vdev(format!("net_pcap_nat,rx_pcap={},tx_pcap={}", empty.display(), dir.join("out.pcap").display())), mac: None },
        ],
        mbufs: 4095,
        burst: 32,
        rings: chainroute_dataplane::Rings::default(),
        security: Some(SecurityConfig::default()),
    };
    let dp = Dataplane::start(&config, &fib).expect("dataplane starts");
    {
        let sec = dp.security().unwrap();
        let mut sec = sec.lock().unwrap();
        let far = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
        sec.devices().upsert_bytes(wa, ka.public().as_bytes(), far).unwrap();
        sec.devices().upsert_bytes(wb, kb.public().as_bytes(), far).unwrap();
        sec.publish();
    }

    // The router's segment: its tap and two veths on a bridge in ns rtr.
    run(&["ip", "link", "set", &tap, "netns", &rtr]);
    run(&["ip", "-n", &rtr, "link", "set", &tap, "address", "02:00:00:00:77:fe"]);
    run(&["ip", "-n", &rtr, "link", "add", "name", "sw0", "type", "bridge"]);
    for (peer_ns, name) in [(&ha, "va"), (&nat, "vn")] {
        run(&["ip", "link", "add", &format!("{name}{tag}"), "type", "veth", "peer", "name", &format!("{name}p{tag}")]);
        run(&["ip", "link", "set", &format!("{name}{tag}"), "netns", &rtr, "name", name]);
        run(&["ip", "link", "set", &format!("{name}p{tag}"), "netns", peer_ns, "name", "eth0"]);
        run(&["ip", "-n", &rtr, "link", "set", name, "master", "sw0", "up"]);
    }
    run(&["ip", "-n", &rtr, "link", "set", &tap, "master", "sw0", "up"]);
    run(&["ip", "-n", &rtr, "link", "set", "sw0", "up"]);
    // Host A and the NAT's outside on 10.77.0.0/24; the router (DPDK) is 10.77.0.1.
    for (n, ip) in [(&ha, "10.77.0.2/24"), (&nat, "10.77.0.254/24")] {
        run(&["ip", "-n", n, "addr", "add", ip, "dev", "eth0"]);
        run(&["ip", "-n", n, "link", "set", "eth0", "up"]);
        // The dataplane answers no ARP: its neighbours know its MAC statically.
        run(&["ip", "-n", n, "neigh", "add", "10.77.0.1", "lladdr", ROUTER_MAC, "dev", "eth0", "nud", "permanent"]);
    }
    // Host B behind the NAT on 192.168.77.0/24.
    run(&["ip", "link", "add", &format!("vb{tag}"), "type", "veth", "peer", "name", &format!("vbp{tag}")]);
    run(&["ip", "link", "set", &format!("vb{tag}"), "netns", &nat, "name", "inside"]);
    run(&["ip", "link", "set", &format!("vbp{tag}"), "netns", &hb, "name", "eth0"]);
    run(&["ip", "-n", &nat, "addr", "add", "192.168.77.1/24", "dev", "inside"]);
    run(&["ip", "-n", &nat, "link", "set", "inside", "up"]);
    run(&["ip", "-n", &hb, "addr", "add", "192.168.77.2/24", "dev", "eth0"]);
    run(&["ip", "-n", &hb, "link", "set", "eth0", "up"]);
    run(&["ip", "-n", &hb, "route", "add", "default", "via", "192.168.77.1"]);
    run(&["ip", "netns", "exec", &nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    run(&["ip", "netns", "exec", &nat, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }; add rule ip nat post oifname eth0 masquerade"]);

    let host = env!("CARGO_BIN_EXE_w3ip-host");
    let hex = |s: &[u8; 32]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let echo = Command::new("ip")
        .args(["netns", "exec", &hb, host, "--router", "10.77.0.1:5733", "--wallet", &wb.to_string(), "--device-seed", &hex(&[0xb1; 32]), "--locator", "2001:db8:77:b::", "--echo", "--seconds", "6"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let anycast_b = Address::anycast(wb).to_string();
    let ping = Command::new("ip")
        .args(["netns", "exec", &ha, host, "--router", "10.77.0.1:5733", "--wallet", &wa.to_string(), "--device-seed", &hex(&[0xa1; 32]), "--locator", "2001:db8:77:a::", "--ping", &anycast_b, "--count", "5", "--seconds", "4"])
        .output()
        .unwrap();
    let echo = echo.wait_with_output().unwrap();
    {
        // B is known by the NAT's public address, not its private one.
        let sec = dp.security().unwrap();
        let sec = sec.lock().unwrap();
        match sec.binding(&wb).expect("B's binding").ingress {
            Ingress::Udp { remote, .. } => assert_eq!(remote.ip().to_string(), "10.77.0.254", "B bound through the NAT"),
            other => panic!("B bound natively? {other:?}"),
        }
    }
    let (c, (free, size)) = dp.shutdown();
    let ping_out = String::from_utf8_lossy(&ping.stdout);
    let echo_out = String::from_utf8_lossy(&echo.stdout);
    assert!(ping.status.success(), "every ping answered: ping {ping_out} echo {echo_out} drops {}", c.drops_line());
    assert!(ping_out.contains("\"received\":5"), "{ping_out}");
    assert!(echo_out.contains("\"answered\":5"), "{echo_out}");
    assert!(c.binds_accepted >= 2, "both hosts bound");
    assert_eq!(free, size, "no mbuf leaked");
    drop(ns);
    std::fs::remove_dir_all(&dir).ok();
}

extern "C" {
    fn geteuid() -> u32;
}
