//! The adversarial suite on a real EAL: hosts and a peer router send through a
//! net_tap port (frames injected from the kernel side with AF_PACKET), the router
//! forwards to a net_pcap port. Each attack must be dropped and counted under its
//! own reason while the valid traffic around it passes:
//!
//! forged signature, key not authorised for the wallet, replayed BIND, BIND for a
//! prefix not served here, spoofed source from the wrong ingress, spoofed source
//! through a tunnel peer not licensed for it, anycast to an unknown wallet.
//!
//! Valid: two BINDs (one native, one from behind NAT over UDP), data from both
//! hosts, an AUTH-signed packet, peer traffic to a host's anycast address
//! (delivered through its binding, locator rewritten) and to the NAT'd host's
//! unicast (sent back over UDP to its public endpoint). Needs root (a tap device).

use chainroute_crypto::signed::{build_signed_packet, emit_signed_bind};
use chainroute_crypto::DeviceKey;
use chainroute_dataplane::io::Device;
use chainroute_dataplane::pcap::{read_all, PcapWriter};
use chainroute_dataplane::{Dataplane, DataplaneConfig, DropReason, Fib, NextHop, PeerKey, PortConfig, SecurityConfig};
use chainroute_wire::ext::{next_header, BindRepr, BIND_LEN};
use chainroute_wire::tunnel::{emit_native, UdpTunnel};
use chainroute_wire::{w3ip, Address, MacAddr, Prefix, Wallet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x5e, 1]);
const H1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x11, 1]);
const NAT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x22, 1]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x33, 1]);
const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x44, 1]);

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn host_unicast(locator: &str, w: Wallet) -> Address {
    Address::unicast(&locator.parse().unwrap(), w)
}

fn packet(src: Address, dst: Address, seed: u8) -> Vec<u8> {
    let repr = w3ip::Repr { traffic_class: 0, flow_label: seed as u32, payload_len: 8, next_header: 59, hop_limit: 32, src_addr: src, dst_addr: dst };
    let mut b = vec![seed; repr.buffer_len()];
    repr.emit(&mut w3ip::Packet::new_unchecked(&mut b[..])).unwrap();
    b
}

fn signed(key: &DeviceKey, src: Address, dst: Address) -> Vec<u8> {
    let repr = w3ip::Repr { traffic_class: 0, flow_label: 0, payload_len: 0, next_header: 0, hop_limit: 32, src_addr: src, dst_addr: dst };
    let mut buf = vec![0u8; 512];
    let n = build_signed_packet(key, &repr, 59, b"pay 5 to bob", &mut buf, &mut Vec::new()).unwrap();
    buf.truncate(n);
    buf
}

fn bind_packet(key: &DeviceKey, wallet: Wallet, unicast: Address, seq: u64) -> Vec<u8> {
    let mut hdr = [0u8; BIND_LEN];
    let bind = BindRepr { next_header: 59, wallet, unicast, expiry: now() + 600, sequence: seq, device_key: [0; 32], signature: [0; 64] };
    emit_signed_bind(key, bind, &mut hdr).unwrap();
    let repr = w3ip::Repr { traffic_class: 0, flow_label: 0, payload_len: BIND_LEN as u16, next_header: next_header::BIND, hop_limit: 32, src_addr: unicast, dst_addr: Address::UNSPECIFIED };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut w3ip::Packet::new_unchecked(&mut b[..])).unwrap();
    b[w3ip::HEADER_LEN..].copy_from_slice(&hdr);
    b
}

fn native(from: MacAddr, p: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + p.len()];
    f[14..].copy_from_slice(p);
    emit_native(&mut f, from, ROUTER_MAC).unwrap();
    f
}

fn udp(from_mac: MacAddr, src: &str, p: &[u8]) -> Vec<u8> {
    let t = UdpTunnel { eth_src: from_mac, eth_dst: ROUTER_MAC, src: src.parse().unwrap(), dst: "192.0.2.1:5733".parse().unwrap(), outer_hop_limit: 64, ipv4_udp_checksum: true };
    let mut f = vec![0u8; t.header_len() + p.len()];
    f[t.header_len()..].copy_from_slice(p);
    t.emit(&mut f, p.len()).unwrap();
    f
}

fn inject(iface: &str, frames: &[Vec<u8>]) {
    let hex: Vec<String> = frames.iter().map(|f| f.iter().map(|b| format!("{b:02x}")).collect()).collect();
    let script = format!("import socket,sys,time\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(('{iface}',0))\nfor h in sys.stdin.read().split():\n    s.send(bytes.fromhex(h))\n    time.sleep(0.002)\n");
    let mut child = Command::new("python3").args(["-c", &script]).stdin(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(hex.join("\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "inject on {iface}");
}

#[test]
fn adversarial_suite() {
    assert!(unsafe { geteuid() } == 0, "this test needs root for its tap device (make test runs as root)");
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("chainroute-security-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pcap");
    PcapWriter::new(std::fs::File::create(&empty).unwrap()).unwrap();
    let out = dir.join("out.pcap");
    let tap = format!("crsec{}", pid % 100000);

    let w1 = Wallet([0x11; 20]);
    let w2 = Wallet([0x22; 20]);
    let k1 = DeviceKey::from_seed(&[1; 32]);
    let k2 = DeviceKey::from_seed(&[2; 32]);
    let k3 = DeviceKey::from_seed(&[3; 32]); // authorised for nobody
    let u1 = host_unicast("2001:db8:1::", w1);
    let u2 = host_unicast("2001:db8:1:2::", w2);

    let mut fib = Fib::new();
    fib.insert("2001:db8:1::/48".parse().unwrap(), NextHop::Local { port: 0, mac: MacAddr::BROADCAST });
    let to_peer = UdpTunnel { eth_src: MacAddr::default(), eth_dst: OUT_MAC, src: "192.0.2.1:5733".parse().unwrap(), dst: "198.51.100.2:5733".parse().unwrap(), outer_hop_limit: 64, ipv4_udp_checksum: true };
    fib.insert("2001:db8:2::/48".parse().unwrap(), NextHop::Tunnel { port: 1, tunnel: to_peer });

    let config = DataplaneConfig {
        eal_args: dpdk_sys::eal::test_args("dp-sec", 512, "0-1"),
        ports: vec![
            PortConfig { name: "access".into(), device: Device::Vdev(format!("net_tap_sec,iface={tap},mac={ROUTER_MAC}")), mac: None },
            PortConfig { name: "uplink".into(), device: Device::Vdev(format!("net_pcap_sec,rx_pcap={},tx_pcap={}", empty.display(), out.display())), mac: Some(MacAddr([2, 0, 0, 0, 0x5e, 2])) },
        ],
        mbufs: 4095,
        burst: 32,
        rings: chainroute_dataplane::Rings::default(),
        security: Some(SecurityConfig::default()),
    };
    let dp = Dataplane::start(&config, &fib).expect("dataplane with security starts");
    {
        let sec = dp.security().unwrap();
        let mut sec = sec.lock().unwrap();
        let far = now() + 3600;
        sec.devices().upsert_bytes(w1, k1.public().as_bytes(), far).unwrap();
        sec.devices().upsert_bytes(w2, k2.public().as_bytes(), far).unwrap();
        sec.set_peer(PeerKey::Udp("198.51.100.2".parse().unwrap()), &["2001:db8:2::/48".parse::<Prefix>().unwrap()]);
        sec.publish();
    }
    // The tap's kernel side: up, with its own MAC so it does not answer for ours.
    let sh = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    sh(&["link", "set", &tap, "address", "02:00:00:00:5e:fe"]);
    sh(&["link", "set", &tap, "up"]);

    // Phase 1: BINDs.
    let mut forged = bind_packet(&k1, w1, u1, 2);
    let n = forged.len();
    forged[n - 1] ^= 1; // last signature byte
    let mut wrong_prefix_u = u1;
    wrong_prefix_u.0[4] = 0x02; // 2001:db8:2::/48 is a peer's, not ours
    inject(
        &tap,
        &[
            native(H1_MAC, &bind_packet(&k1, w1, u1, 1)),
            udp(NAT_MAC, "203.0.113.7:40001", &bind_packet(&k2, w2, u2, 5)),
            native(MacAddr([2, 0, 0, 0, 0x66, 6]), &forged), // an attacker on the segment
            native(H1_MAC, &bind_packet(&k3, w1, u1, 3)),
            native(H1_MAC, &bind_packet(&k1, w1, wrong_prefix_u, 4)),
        ],
    );
    std::thread::sleep(Duration::from_millis(100));
    {
        let sec = dp.security().unwrap();
        let sec = sec.lock().unwrap();
        assert_eq!(sec.stats().bindings, 2, "both valid BINDs installed");
        assert_eq!(sec.binding(&w2).unwrap().ingress, chainroute_dataplane::Ingress::Udp { port: 0, remote: "203.0.113.7:40001".parse().unwrap(), local: "192.0.2.1:5733".parse().unwrap(), mac: NAT_MAC });
    }

    // Phase 2: data, attacks among it.
    let peer_src: Address = "2001:db8:2::9".parse().unwrap();
    let unlicensed_src: Address = "2001:db8:5::9".parse().unwrap();
    let mut forged_auth = signed(&k1, u1, "2001:db8:2::7".parse().unwrap());
    let n = forged_auth.len();
    forged_auth[n - 1] ^= 1; // payload byte: the signature no longer matches
    let frames = vec![
        native(H1_MAC, &bind_packet(&k1, w1, u1, 1)),                                  // replayed BIND
        native(H1_MAC, &packet(u1, "2001:db8:2::5".parse().unwrap(), 1)),               // valid -> uplink
        native(MacAddr([2, 0, 0, 0, 0x99, 9]), &packet(u1, "2001:db8:2::6".parse().unwrap(), 2)), // spoofed: wrong ingress
        udp(PEER_MAC, "198.51.100.2:5733", &packet(unlicensed_src, u1, 3)),          // spoofed: peer not licensed for it
        udp(PEER_MAC, "198.51.100.2:5733", &packet(peer_src, Address::anycast(w1), 4)), // valid -> H1 by anycast
        native(H1_MAC, &packet(u1, Address::anycast(Wallet([0x99; 20])), 5)),          // unknown wallet
        native(H1_MAC, &signed(&k1, u1, "2001:db8:2::7".parse().unwrap())),             // valid AUTH -> uplink
        native(H1_MAC, &forged_auth),                                                   // forged AUTH signature
        native(H1_MAC, &signed(&k3, u1, "2001:db8:2::7".parse().unwrap())),             // AUTH key not authorised
        udp(NAT_MAC, "203.0.113.7:40001", &packet(u2, "2001:db8:2::8".parse().unwrap(), 6)), // valid from behind NAT
        udp(PEER_MAC, "198.51.100.2:5733", &packet(peer_src, u2, 7)),                 // valid -> NAT'd host over UDP
    ];
    inject(&tap, &frames);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dp.counters().tx_packets[1] < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let (c, (free, size)) = dp.shutdown();

    let expect = [
        (DropReason::BadSignature, 2),
        (DropReason::Unauthorised, 2),
        (DropReason::BindRejected, 2),
        (DropReason::SpoofedSource, 2),
        (DropReason::UnknownWallet, 1),
        (DropReason::SignatureShed, 0),
    ];
    for (reason, n) in expect {
        assert_eq!(c.drops_of(reason), n, "{}: {}", reason.name(), c.drops_line());
    }
    assert_eq!(c.binds_accepted, 2);
    assert_eq!(c.tx_packets[1], 3, "three valid packets to the peer prefix");
    assert_eq!(c.tx_packets[0], 2, "anycast to H1 and the reply to the NAT'd host");
    assert_eq!(free, size, "no mbuf leaked");

    let sent = read_all(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(sent.len(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

extern "C" {
    fn geteuid() -> u32;
}
