//! Feeds arbitrary bursts through the forwarding pipeline (security on: BIND/AUTH
//! verification, anycast, source validation) on plain buffers, without EAL.
//! Every frame must get a verdict; every frame sent must be a well-formed native
//! or tunnelled W3IP frame whose hop limit is at least 1.
#![no_main]

use chainroute_dataplane::counters::CoreCounters;
use chainroute_dataplane::{Fib, FrameBuf, NextHop, Pipeline, PortInfo, Security, SecurityConfig, Verdict, VecFrame};
use chainroute_wire::tunnel::{Decap, UdpTunnel};
use chainroute_wire::{w3ip, MacAddr};
use libfuzzer_sys::fuzz_target;

struct World {
    _fib: Fib,
    _security: Security,
    pipeline: Pipeline,
}

thread_local! {
    // libFuzzer runs one thread; the tables live for the whole run.
    static WORLD: std::cell::RefCell<World> = std::cell::RefCell::new(world());
}

fn world() -> World {
    {
        let mut fib = Fib::new();
        let t = UdpTunnel { eth_src: MacAddr::default(), eth_dst: MacAddr([2, 0, 0, 0, 0, 9]), src: "192.0.2.1:5733".parse().unwrap(), dst: "[2001:db8::9]:5733".parse().unwrap(), outer_hop_limit: 64, ipv4_udp_checksum: true };
        fib.insert("::/0".parse().unwrap(), NextHop::Tunnel { port: 1, tunnel: UdpTunnel { src: "[2001:db8::1]:5733".parse().unwrap(), ..t } });
        fib.insert("2001:db8::/32".parse().unwrap(), NextHop::Local { port: 0, mac: MacAddr([2, 0, 0, 0, 0, 7]) });
        fib.insert("2001:db8:1::/48".parse().unwrap(), NextHop::Blackhole);
        fib.insert("1::/16".parse().unwrap(), NextHop::Tunnel { port: 3, tunnel: t }); // a port that does not exist
        // Settled routes: lookups go through the LPM's snapshot, as in chainrouted.
        fib.publish_snapshot();
        let mut security = Security::new(SecurityConfig::default());
        let reader = security.reader().unwrap();
        let ports = vec![PortInfo { mac: MacAddr([2, 0, 0, 0, 0, 1]) }, PortInfo { mac: MacAddr([2, 0, 0, 0, 0, 2]) }];
        let pipeline = Pipeline::new(fib.reader().unwrap(), ports).with_security(reader);
        World { _fib: fib, _security: security, pipeline }
    }
}

fuzz_target!(|data: &[u8]| {
    // A burst: frames prefixed by a one-byte length (x4), at most 64 frames.
    let mut frames = Vec::new();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize * 4).min(tail.len());
        let mut frame = tail[..n].to_vec();
        // Frames for the router's MAC most of the time, so parsing goes deep.
        if frame.len() >= 6 && frame[0] & 0x80 == 0 {
            frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        }
        frames.push(VecFrame::new(&frame));
        rest = &tail[n..];
        if frames.len() == 64 {
            break;
        }
    }
    let mut verdicts = vec![Verdict::Consumed; frames.len()];
    let counters = CoreCounters::default();
    WORLD.with(|w| {
        let p = &mut w.borrow_mut().pipeline;
        p.process(0, &mut frames, &mut verdicts, &counters);
        p.quiescent();
    });
    for (f, v) in frames.iter().zip(&verdicts) {
        if let Verdict::Tx(port) = v {
            assert!(*port < 2);
            let d = Decap::parse(f.data()).expect("a sent frame parses");
            let packet = w3ip::Packet::new_checked(&f.data()[d.inner]).expect("its W3IP packet parses");
            assert!(packet.hop_limit() >= 1);
        }
    }
    let s = counters.snapshot();
    let sent = verdicts.iter().filter(|v| matches!(v, Verdict::Tx(_))).count() as u64;
    let consumed = verdicts.iter().filter(|v| matches!(v, Verdict::Consumed)).count() as u64;
    assert_eq!(sent + consumed + s.total_drops(), frames.len() as u64, "every frame has exactly one fate");
});
