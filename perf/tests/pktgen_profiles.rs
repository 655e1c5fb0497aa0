//! The pcap profiles in perf/pktgen/profiles replayed through DPDK's net_pcap into
//! the dataplane (no security: plain forwarding with a default route): every frame
//! the wire crate parses with a hop limit above 1 comes out of the other port,
//! native, with its hop limit decremented and its chainroute-pktgen stamp intact;
//! nothing else does. Needs root for the EAL (make test runs as root).

use chainroute_dataplane::io::Device;
use chainroute_dataplane::pcap::{read_all, PcapWriter};
use chainroute_dataplane::{Dataplane, DataplaneConfig, Fib, NextHop, PortConfig};
use chainroute_perf::pktgen::read_stamp;
use chainroute_wire::tunnel::Decap;
use chainroute_wire::MacAddr;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn profiles_replay_through_net_pcap() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pktgen/profiles");
    let mut profiles: Vec<_> = std::fs::read_dir(&dir)
        .expect("perf/pktgen/profiles")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    profiles.sort();
    assert!(
        profiles.len() >= 6,
        "the profiles are committed: {profiles:?}"
    );
    let work = std::env::temp_dir().join(format!("pktgen-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let empty = work.join("empty.pcap");
    PcapWriter::new(std::fs::File::create(&empty).unwrap()).unwrap();
    let host = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let mut fib = Fib::new();
    fib.insert(
        "::/0".parse().unwrap(),
        NextHop::Local { port: 1, mac: host },
    );
    let eal = dpdk_sys::eal::test_args("pktgen-profiles", 512, "0-1");
    for (i, profile) in profiles.iter().enumerate() {
        let frames = read_all(std::fs::File::open(profile).unwrap()).unwrap();
        let expect: Vec<Vec<u8>> = frames
            .iter()
            .filter_map(|f| {
                let d = Decap::parse(f).ok()?;
                let p = f[d.inner].to_vec();
                (p[7] > 1).then_some(p)
            })
            .collect();
        let out = work.join(format!("out{i}.pcap"));
        let config = DataplaneConfig {
            eal_args: eal.clone(),
            ports: vec![
                // The profiles are addressed to the lab's router A (gen port MAC).
                PortConfig {
                    name: "in".into(),
                    device: Device::Vdev(format!("net_pcap_pi{i},rx_pcap={}", profile.display())),
                    mac: Some("02:00:00:00:0a:01".parse().unwrap()),
                },
                PortConfig {
                    name: "out".into(),
                    device: Device::Vdev(format!(
                        "net_pcap_po{i},rx_pcap={},tx_pcap={}",
                        empty.display(),
                        out.display()
                    )),
                    mac: None,
                },
            ],
            mbufs: 4095,
            burst: 32,
            rings: chainroute_dataplane::Rings::default(),
            security: None,
        };
        let dp = Dataplane::start(&config, &fib).expect("dataplane starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while dp.counters().rx_packets[0] < frames.len() as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (c, (free, size)) = dp.shutdown();
        let name = profile.file_name().unwrap().to_string_lossy();
        assert_eq!(
            c.rx_packets[0],
            frames.len() as u64,
            "{name}: every frame read"
        );
        let got = read_all(std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(
            got.len(),
            expect.len(),
            "{name}: forwarded {} of {} parseable frames; drops {}",
            got.len(),
            expect.len(),
            c.drops_line()
        );
        for (k, (g, e)) in got.iter().zip(&expect).enumerate() {
            assert_eq!(&g[12..14], &[0x88, 0xb5], "{name} #{k}: leaves native");
            assert_eq!(&g[0..6], &host.0, "{name} #{k}: to the host");
            let p = &g[14..];
            assert_eq!(p[7], e[7] - 1, "{name} #{k}: hop limit decremented");
            assert_eq!(
                &p[8..],
                &e[8..],
                "{name} #{k}: addresses and payload unchanged"
            );
            assert_eq!(read_stamp(p), read_stamp(e), "{name} #{k}: stamp intact");
        }
        assert_eq!(free, size, "{name}: no mbuf leaked");
        eprintln!(
            "{name}: {} frames, {} forwarded, drops {}",
            frames.len(),
            got.len(),
            c.drops_line()
        );
    }
    std::fs::remove_dir_all(&work).ok();
    chainroute_perf::traffic::remove_runtime_dir(&format!(
        "pktgen-profiles-{}",
        std::process::id()
    ));
}
