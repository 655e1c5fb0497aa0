//! pcap in, pcap out on a real EAL (`--no-huge`, net_pcap vdevs): native and
//! tunnelled W3IP to many prefixes plus bad frames go in on port 0; each output
//! file must hold exactly the expected frames, checked by an independent parser
//! (etherparse: IPv4 header and UDP checksums, lengths), and the counters must
//! match. Afterwards every mbuf is back in the pool.

use chainroute_dataplane::io::Device;
use chainroute_dataplane::pcap::{read_all, PcapWriter};
use chainroute_dataplane::{Dataplane, DataplaneConfig, DropReason, Fib, NextHop, PortConfig};
use chainroute_wire::tunnel::{emit_native, UdpTunnel};
use chainroute_wire::{w3ip, Address, MacAddr, Prefix};
use etherparse::{InternetSlice, SlicedPacket, TransportSlice};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const HOST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x10]);
const P0_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0xaa, 0]);
const P1_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0xaa, 1]);

fn w3ip_packet(dst: Address, hop_limit: u8, payload_len: usize, seed: u8) -> Vec<u8> {
    let repr = w3ip::Repr {
        traffic_class: 0,
        flow_label: seed as u32,
        payload_len: payload_len as u16,
        next_header: 59,
        hop_limit,
        src_addr: "2001:db8:ffff::1".parse().unwrap(),
        dst_addr: dst,
    };
    let mut buf = vec![seed; repr.buffer_len()];
    repr.emit(&mut w3ip::Packet::new_unchecked(&mut buf[..])).unwrap();
    buf
}

fn native(packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + packet.len()];
    f[14..].copy_from_slice(packet);
    emit_native(&mut f, MacAddr([2, 0, 0, 0, 0, 0x20]), P0_MAC).unwrap();
    f
}

fn tunnel(src: &str, dst: &str) -> UdpTunnel {
    UdpTunnel {
        eth_src: MacAddr([2, 0, 0, 0, 0, 0x30]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 0x31]),
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        outer_hop_limit: 64,
        ipv4_udp_checksum: true,
    }
}

fn tunnelled(t: &UdpTunnel, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; t.header_len() + packet.len()];
    f[t.header_len()..].copy_from_slice(packet);
    t.emit(&mut f, packet.len()).unwrap();
    f
}

/// Addresses inside `prefix` (a /40 here), spread by `i`.
fn inside(prefix: &str, i: u32) -> Address {
    let p: Prefix = prefix.parse().unwrap();
    let mut b = *p.addr().as_bytes();
    b[6..10].copy_from_slice(&i.wrapping_mul(2654435761).to_be_bytes());
    b[31] = i as u8;
    Address::from_bytes(b)
}

#[derive(Debug, Clone, PartialEq)]
enum Out {
    Native { mac: MacAddr, packet: Vec<u8> },
    Tunnel { src: SocketAddr, dst: SocketAddr, packet: Vec<u8> },
}

/// Reads an output frame with etherparse and says what it carries.
fn decode(frame: &[u8], port_mac: MacAddr) -> Out {
    assert_eq!(&frame[6..12], &port_mac.0, "frames leave with the egress port's MAC");
    if frame[12..14] == [0x88, 0xb5] {
        return Out::Native { mac: MacAddr(frame[0..6].try_into().unwrap()), packet: frame[14..].to_vec() };
    }
    let sliced = SlicedPacket::from_ethernet(frame).expect("etherparse reads the frame");
    let Some(TransportSlice::Udp(udp)) = sliced.transport else { panic!("not UDP") };
    let payload = udp.payload().to_vec();
    let (src, dst) = match sliced.net.expect("an IP header") {
        InternetSlice::Ipv4(ip) => {
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
            let udp_h = udp.to_header();
            assert_eq!(udp_h.checksum, udp_h.calc_checksum_ipv4(&h, &payload).unwrap(), "UDP/IPv4 checksum");
            assert_eq!(h.total_len as usize, frame.len() - 14);
            (SocketAddr::new(h.source.into(), udp.source_port()), SocketAddr::new(h.destination.into(), udp.destination_port()))
        }
        InternetSlice::Ipv6(ip) => {
            let h = ip.header().to_header();
            let udp_h = udp.to_header();
            assert_ne!(udp_h.checksum, 0, "UDP checksum is mandatory over IPv6");
            assert_eq!(udp_h.checksum, udp_h.calc_checksum_ipv6(&h, &payload).unwrap(), "UDP/IPv6 checksum");
            assert_eq!(h.payload_length as usize, frame.len() - 54);
            (SocketAddr::new(h.source.into(), udp.source_port()), SocketAddr::new(h.destination.into(), udp.destination_port()))
        }
    };
    assert_eq!(udp.length() as usize, payload.len() + 8);
    Out::Tunnel { src, dst, packet: payload }
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(i as u64, f).unwrap();
    }
}

#[test]
fn pcap_in_pcap_out() {
    let dir = std::env::temp_dir().join(format!("chainroute-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let t4 = tunnel("192.0.2.1:5733", "198.51.100.9:5733");
    let t6 = tunnel("[2001:db8:a::1]:5733", "[2001:db8:b::2]:5733");
    let mut fib = Fib::new();
    fib.insert("2001:db8:100::/40".parse().unwrap(), NextHop::Local { port: 1, mac: HOST_MAC });
    fib.insert("2001:db8:200::/40".parse().unwrap(), NextHop::Tunnel { port: 1, tunnel: t4 });
    fib.insert("2001:db8:300::/40".parse().unwrap(), NextHop::Tunnel { port: 0, tunnel: t6 });
    fib.insert("2001:db8:400::/40".parse().unwrap(), NextHop::Blackhole);
    // A /256 host route inside the local block wins over it.
    let special = inside("2001:db8:100::/40", 7);
    fib.insert(Prefix::host(special), NextHop::Tunnel { port: 0, tunnel: t6 });

    let ingress_t4 = UdpTunnel { eth_dst: P0_MAC, ..tunnel("203.0.113.5:40000", "192.0.2.1:5733") };
    let ingress_t6 = UdpTunnel { eth_dst: P0_MAC, ..tunnel("[2001:db8:c::5]:40001", "[2001:db8:a::1]:5733") };
    let blocks = ["2001:db8:100::/40", "2001:db8:200::/40", "2001:db8:300::/40"];
    let mut input = Vec::new();
    let mut expected: [Vec<Out>; 2] = [Vec::new(), Vec::new()];
    let mut expected_drops: Vec<(DropReason, u64)> = Vec::new();
    let route = |dst: &Address, packet: Vec<u8>| -> (usize, Out) {
        if *dst == special {
            return (0, Out::Tunnel { src: t6.src, dst: t6.dst, packet });
        }
        let a = dst.as_bytes();
        match a[4] {
            0x01 => (1, Out::Native { mac: HOST_MAC, packet }),
            0x02 => (1, Out::Tunnel { src: t4.src, dst: t4.dst, packet }),
            _ => (0, Out::Tunnel { src: t6.src, dst: t6.dst, packet }),
        }
    };
    for i in 0..300u32 {
        let dst = if i == 0 { special } else { inside(blocks[(i % 3) as usize], i) };
        let packet = w3ip_packet(dst, 64, (i % 200) as usize, i as u8);
        let frame = match i % 3 {
            0 => native(&packet),
            1 => tunnelled(&ingress_t4, &packet),
            _ => tunnelled(&ingress_t6, &packet),
        };
        input.push(frame);
        let mut out = packet.clone();
        out[7] = 63;
        let (port, o) = route(&dst, out);
        expected[port].push(o);
    }
    // Bad input, each counted under its reason.
    let good = w3ip_packet(inside("2001:db8:100::/40", 1), 64, 20, 1);
    let mut bad_version = good.clone();
    bad_version[0] = 0x20;
    input.push(native(&bad_version));
    let mut expiring = good.clone();
    expiring[7] = 1;
    input.push(native(&expiring));
    input.push(tunnelled(&ingress_t4, &expiring));
    input.push(native(&good)[..60].to_vec()); // cut inside the destination address
    let mut arp = native(&good);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    input.push(arp);
    let mut bad_sum = tunnelled(&ingress_t6, &good);
    let last = bad_sum.len() - 1;
    bad_sum[last] ^= 0xff;
    input.push(bad_sum);
    input.push(native(&w3ip_packet(inside("2001:db8:400::/40", 3), 64, 8, 3)));
    input.push(native(&w3ip_packet("2001:db9::1".parse().unwrap(), 64, 8, 4)));
    let mut elsewhere = native(&good);
    elsewhere[5] ^= 0x40; // unicast to another station on the segment
    input.push(elsewhere);
    expected_drops.extend([
        (DropReason::BadVersion, 1),
        (DropReason::HopLimitExpired, 2),
        (DropReason::Truncated, 1),
        (DropReason::NotW3ip, 1),
        (DropReason::BadChecksum, 1),
        (DropReason::Blackhole, 1),
        (DropReason::NoRoute, 1),
        (DropReason::OtherHost, 1),
    ]);

    let in0 = dir.join("in0.pcap");
    let in1 = dir.join("in1.pcap");
    let out0 = dir.join("out0.pcap");
    let out1 = dir.join("out1.pcap");
    write_pcap(&in0, &input);
    write_pcap(&in1, &[]);
    let config = DataplaneConfig {
        eal_args: dpdk_sys::eal::test_args("dp-pcap", 512, "0-1"),
        ports: vec![
            PortConfig { name: "p0".into(), device: Device::Vdev(format!("net_pcap_t0,rx_pcap={},tx_pcap={}", in0.display(), out0.display())), mac: Some(P0_MAC) },
            PortConfig { name: "p1".into(), device: Device::Vdev(format!("net_pcap_t1,rx_pcap={},tx_pcap={}", in1.display(), out1.display())), mac: Some(P1_MAC) },
        ],
        mbufs: 4095,
        burst: 32,
        // Not the default, so the test sees the rings reach the device.
        rings: chainroute_dataplane::Rings { rx: 512, tx: 256 },
        security: None,
    };
    let dp = Dataplane::start(&config, &fib).expect("dataplane starts on net_pcap");
    for p in dp.ports() {
        assert_eq!((p.rings.rx, p.rings.tx), (512, 256), "port {}", p.name);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while dp.counters().total_rx() < input.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (counters, (free, size)) = dp.shutdown();

    assert_eq!(counters.total_rx(), input.len() as u64, "every input frame received");
    for (reason, n) in &expected_drops {
        assert_eq!(counters.drops_of(*reason), *n, "drops of {}", reason.name());
    }
    assert_eq!(counters.total_drops(), expected_drops.iter().map(|d| d.1).sum::<u64>(), "{}", counters.drops_line());
    assert_eq!(counters.tx_packets[0], expected[0].len() as u64);
    assert_eq!(counters.tx_packets[1], expected[1].len() as u64);
    assert_eq!(free, size, "every mbuf is back in the pool");

    for (port, path) in [(0usize, &out0), (1, &out1)] {
        let frames = read_all(std::fs::File::open(path).unwrap()).unwrap();
        let mac = if port == 0 { P0_MAC } else { P1_MAC };
        let got: Vec<Out> = frames.iter().map(|f| decode(f, mac)).collect();
        assert_eq!(got.len(), expected[port].len(), "frames on port {port}");
        for (k, (g, e)) in got.iter().zip(&expected[port]).enumerate() {
            assert_eq!(g, e, "frame {k} on port {port}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
