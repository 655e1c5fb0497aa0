//! fwd-bench: forwarding rate of chainrouted's dataplane beside DPDK's own
//! forwarders, in one run, on the same vdev setup: net_pcap replaying a capture
//! forever (`infinite_rx=1`) into one worker core, which forwards to net_null.
//!
//! - `testpmd-io`: dpdk-testpmd in io mode (no lookup at all: the ceiling),
//! - `l3fwd-lpm6`: DPDK's l3fwd `--lookup=lpm --ipv6`, built at bench time from the
//!   dpdk-doc examples (offloads the vdevs lack are masked in the build copy), with
//!   its four built-in routes and one destination prefix (its lookups stay in L1);
//!   `FWD_BENCH_L3FWD_DIR=DIR` builds it there once and reuses that build,
//! - `l3fwd-lpm6-table`: the same l3fwd (`--rule_ipv6`) with the <= 128-bit part of
//!   chainrouted's table and the top 128 bits of chainrouted's destinations: the
//!   same lookup work on rte_lpm6 (the build copy's LPM6 limits and mbuf pool are
//!   raised to hold that table and the same 8192-frame capture),
//! - `chainrouted`: our dataplane with the realistic 256-bit table (RouteViews
//!   prefixes + synthetic nesting, see chainroute_perf::table), destinations drawn
//!   from that table, its routes settled: the LPM's interval snapshot published,
//!   as the daemon does once routes have been quiet for half a second,
//! - `chainrouted-marked`: the same after 100 route changes since the snapshot
//!   (next hops moved, still out of port 1): their regions of the snapshot are
//!   marked and their keys looked up in the editable trie,
//! - `chainrouted-trie`: the same with the snapshot withdrawn, as when routes
//!   change faster or wider than marks absorb (lookups walk the editable trie
//!   until the next quiet spell),
//! - `chainrouted-4routes`: our dataplane with four routes shaped like l3fwd's
//!   built-in ones and every destination inside one of them, as in l3fwd's frames:
//!   its lookups stay in L1 too, so beside `l3fwd-lpm6` it compares the pipelines
//!   (classify, checks, rewrite, counters) on the same lookup work, and beside
//!   `chainrouted` it shows what the realistic table costs.
//!
//! DPDK processes are measured through their telemetry socket (port TX packets over
//! a window); chainrouted through its own per-core counters. Every system runs once
//! per round (`--rounds`, 3 by default), in the same order: a rate is the median of
//! its rounds (each listed as `runs_mpps`), a ratio the median of the rounds' own
//! ratios, so a drift of the machine over the run falls on all of them. Prints a
//! table, or JSON with `--json`. Data: RouteViews (routeviews.org), DB-IP, NRO, CC BY 4.0.
//!
//! `--signed-fraction F` turns security on for the `chainrouted` entry: source
//! validation on every packet, and a fraction F of the frames signed (AUTH data
//! from bound hosts, with some BIND refreshes among them) verified in the per-burst
//! batch; it adds `verifies_per_sec`. Two more entries isolate the cost of source
//! validation on unsigned traffic: `chainrouted-unvalidated` (security off) and
//! `chainrouted-validated` (validation on), with their ratio.

use chainroute_crypto::shed::ShedConfig;
use chainroute_crypto::signed::{build_signed_packet, emit_signed_bind};
use chainroute_crypto::DeviceKey;
use chainroute_dataplane::io::Device;
use chainroute_dataplane::pcap::PcapWriter;
use chainroute_dataplane::{
    Binding, Dataplane, DataplaneConfig, DropReason, Fib, Ingress, NextHop, PeerKey, PortConfig,
    SecurityConfig, DEFAULT_BURST, MAX_BURST,
};
use chainroute_perf::pktgen::{MixConfig, MIN_FRAME};
use chainroute_perf::prefixes::read_prefixes;
use chainroute_perf::rng::Rng;
use chainroute_perf::stats::{median, round3};
use chainroute_perf::table::{address_inside, realistic, spread_markable};
use chainroute_perf::traffic::{
    install_signal_counter, Engine, EngineConfig, PortSpec, TrialSpec, SIGNALS,
};
use chainroute_perf::zeroloss::{search, SearchSpec, Trial};
use chainroute_wire::ext::{next_header, BindRepr, AUTH_LEN, BIND_LEN};
use chainroute_wire::tunnel::UdpTunnel;
use chainroute_wire::Wallet;
use chainroute_wire::{ethernet, w3ip, Address, MacAddr, Prefix};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: fwd-bench [--json] [--seconds S] [--sizes 64,256] [--prefixes FILE] [--skip-dpdk-apps] [--signed-fraction F]
                 [--zero-loss [--workers 1,2,4] [--systems chainrouted,testpmd-io] [--trial-seconds S]
                  [--final-seconds S] [--precision P] [--pdr-loss R] [--max-trials N]]
  --seconds S      measuring window per run (default 3)
  --sizes LIST     frame sizes in bytes (default 64,256; W3IP frames are at least 86 B;
                   with --zero-loss default 128, at least 110: the generator's stamp)
  --prefixes FILE  RouteViews-style prefix file (default ../shared/data/routeviews-v6-prefixes.txt)
  --skip-dpdk-apps measure chainrouted only
  --signed-fraction F  chainrouted with source validation on and a fraction F (0..=1) of signed
                   frames (AUTH, some BINDs); adds verifies_per_sec and validated/unvalidated runs
  --rounds N       rounds of every system in turn (default 3): rates are medians, ratios the
                   median of the rounds' own ratios, so drift over the run falls on all alike
  --burst N        RX burst of chainrouted and testpmd (1..=64, default 64: chainrouted's)
  --cycles N       A-B-B-A cycles of unvalidated/validated runs (default 3; the ratio is their median)
zero-loss throughput (RFC 2544 / MLRsearch style), chainroute-pktgen -> DUT -> chainroute-pktgen over memif:
  --zero-loss      binary search on the offered rate for NDR (no loss) and PDR (--pdr-loss, 0.005)
  --workers LIST   DUT worker cores, one search each (scaling; needs 2N+1 cores, N=1 runs on 2)
  --systems LIST   chainrouted (our dataplane with the realistic table) and/or testpmd-io (the baseline)
  --trial-seconds S (default 1)  --final-seconds S (default 3)  --precision P (default 0.02)";

const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

struct Args {
    json: bool,
    seconds: f64,
    sizes: Vec<usize>,
    sizes_given: bool,
    prefixes: PathBuf,
    skip_apps: bool,
    signed_fraction: Option<f64>,
    cycles: usize,
    /// Rounds of every system in turn (rates: medians; ratios: median of the rounds').
    rounds: usize,
    zero_loss: bool,
    workers: Vec<usize>,
    systems: Vec<String>,
    search: SearchSpec,
    dut: Option<String>,
    /// RX burst of chainrouted and testpmd (the same for both).
    burst: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        json: false,
        seconds: 3.0,
        sizes: vec![64, 256],
        sizes_given: false,
        prefixes: default_prefixes(),
        skip_apps: false,
        signed_fraction: None,
        cycles: 3,
        rounds: 3,
        zero_loss: false,
        workers: vec![1],
        systems: vec!["chainrouted".into(), "testpmd-io".into()],
        search: SearchSpec::default(),
        dut: None,
        burst: DEFAULT_BURST,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--json" => a.json = true,
            "--skip-dpdk-apps" => a.skip_apps = true,
            "--seconds" => {
                a.seconds = value("--seconds")?
                    .parse()
                    .map_err(|_| "--seconds: not a number")?
            }
            "--zero-loss" => a.zero_loss = true,
            "--rounds" => {
                a.rounds = value("--rounds")?
                    .parse::<usize>()
                    .map_err(|_| "--rounds: not a number")?
                    .max(1);
            }
            "--cycles" => {
                a.cycles = value("--cycles")?
                    .parse()
                    .map_err(|_| "--cycles: not a number")?;
                a.cycles = a.cycles.max(1);
            }
            "--signed-fraction" => {
                let f: f64 = value("--signed-fraction")?
                    .parse()
                    .map_err(|_| "--signed-fraction: not a number")?;
                if !(0.0..=1.0).contains(&f) {
                    return Err("--signed-fraction: a fraction from 0 to 1".into());
                }
                a.signed_fraction = Some(f);
            }
            "--workers" => {
                a.workers = value("--workers")?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("--workers: {s:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--systems" => {
                a.systems = value("--systems")?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect()
            }
            "--trial-seconds" => {
                a.search.trial_seconds = value("--trial-seconds")?
                    .parse()
                    .map_err(|_| "--trial-seconds: not a number")?
            }
            "--final-seconds" => {
                a.search.final_seconds = value("--final-seconds")?
                    .parse()
                    .map_err(|_| "--final-seconds: not a number")?
            }
            "--precision" => {
                a.search.precision = value("--precision")?
                    .parse()
                    .map_err(|_| "--precision: not a number")?
            }
            "--pdr-loss" => {
                a.search.pdr_loss = value("--pdr-loss")?
                    .parse()
                    .map_err(|_| "--pdr-loss: not a number")?
            }
            "--max-trials" => {
                a.search.max_trials = value("--max-trials")?
                    .parse()
                    .map_err(|_| "--max-trials: not a number")?
            }
            "--dut-serve" => a.dut = Some(value("--dut-serve")?),
            "--burst" => {
                a.burst = value("--burst")?
                    .parse()
                    .map_err(|_| "--burst: not a number")?;
                if !(1..=MAX_BURST).contains(&a.burst) {
                    return Err(format!("--burst: 1..={MAX_BURST}"));
                }
            }
            "--sizes" => {
                a.sizes_given = true;
                a.sizes = value("--sizes")?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .map_err(|_| format!("--sizes: {s:?} is not a size"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--prefixes" => a.prefixes = PathBuf::from(value("--prefixes")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.sizes.iter().any(|&s| !(60..=1514).contains(&s)) {
        return Err("--sizes: frames are 60..=1514 bytes".into());
    }
    Ok(a)
}

fn default_prefixes() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.join("../../shared/data/routeviews-v6-prefixes.txt")
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("fwd-bench: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let work = std::env::temp_dir().join(format!("fwd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let progress = |m: &str| eprintln!("fwd-bench: {m}");

    progress(&format!(
        "building the realistic table from {}",
        args.prefixes.display()
    ));
    let real = read_prefixes(&args.prefixes).unwrap_or_else(|e| {
        eprintln!("fwd-bench: {}: {e}", args.prefixes.display());
        std::process::exit(1)
    });
    let table = realistic(&real, 1);
    let mut fib = Fib::new();
    let tunnel = UdpTunnel {
        eth_src: ROUTER_MAC,
        eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
        src: "192.0.2.1:5733".parse().unwrap(),
        dst: "198.51.100.2:5733".parse().unwrap(),
        outer_hop_limit: 64,
        ipv4_udp_checksum: true,
    };
    // Every route leaves by port 1: native to one of 16 hosts, or tunnelled to a peer.
    for (prefix, value) in &table {
        let hop = match value % 17 {
            16 => NextHop::Tunnel {
                port: 1,
                tunnel: UdpTunnel {
                    dst: format!("198.51.100.{}:5733", value % 200).parse().unwrap(),
                    ..tunnel
                },
            },
            n => NextHop::Local {
                port: 1,
                mac: MacAddr([2, 0, 0, 0, 1, n as u8]),
            },
        };
        fib.insert(*prefix, hop);
    }
    // The access segment the signing hosts are bound on (BINDs must name a prefix
    // served here).
    fib.insert(
        ACCESS_PREFIX.parse().unwrap(),
        NextHop::Local {
            port: 0,
            mac: MacAddr::BROADCAST,
        },
    );
    let t0 = Instant::now();
    let snapshot_bytes = fib.publish_snapshot();
    // The routes `chainrouted-marked` moves (a shorter prefix than a mark covers
    // would withdraw the snapshot).
    let moved_routes = spread_markable(&table, MOVED_ROUTES);
    progress(&format!(
        "{} routes in the FIB; lookup snapshot {:.1} MB, published in {:.2} s",
        fib.len(),
        snapshot_bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    ));
    if let Ok(spec) = std::env::var("FWD_BENCH_GEN") {
        gen_child_main(&args, &table, &spec, &work);
        std::fs::remove_dir_all(&work).ok();
        return;
    }
    if let Some(socks) = &args.dut {
        serve_dut(&fib, socks);
        std::fs::remove_dir_all(&work).ok();
        return;
    }
    if args.zero_loss {
        let sizes = if args.sizes_given {
            args.sizes.clone()
        } else {
            vec![128]
        };
        let out = zero_loss(&args, &table, &sizes, &work);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&out).unwrap());
        }
        std::fs::remove_dir_all(&work).ok();
        return;
    }

    let l3fwd = if args.skip_apps {
        None
    } else {
        build_l3fwd(&work)
    };
    // l3fwd's rule files for the same-table run: its stock IPv4 routes, and the
    // <= 128-bit part of chainrouted's table.
    let l3fwd_rules = l3fwd.as_ref().and_then(|bin| {
        let v4 = bin.parent()?.parent()?.join("lpm_default_v4.cfg");
        let v6 = work.join("l3fwd-table-v6.cfg");
        let n = write_l3fwd_rules(&v6, &table);
        v4.exists().then_some((v4, v6, n))
    });
    // The same destinations as chainrouted's frames, cut to 128 bits for l3fwd.
    let table_dsts: Vec<[u8; 16]> = destinations(&table).iter().map(top_half).collect();
    let (mut few_fib, few_dsts) = few_routes();
    few_fib.publish_snapshot();
    let mut results = Vec::new();
    let mut ratios = serde_json::Map::new();
    let mut verifies_per_sec: Option<f64> = None;
    let mut validation_ratios: Vec<(usize, f64)> = Vec::new();
    for &size in &args.sizes {
        let w3ip_pcap = work.join(format!("w3ip-{size}.pcap"));
        let wire = write_w3ip_frames(&w3ip_pcap, &table, size);
        let few_pcap = work.join(format!("w3ip-4routes-{size}.pcap"));
        write_pcap(&few_pcap, w3ip_frames_to(&few_dsts, size));
        let v6_pcap = work.join(format!("ipv6-{size}.pcap"));
        write_ipv6_frames(&v6_pcap, size, &builtin_route_destinations());
        let table_pcap = work.join(format!("ipv6-table-{size}.pcap"));
        if l3fwd_rules.is_some() {
            write_ipv6_frames(&table_pcap, size, &table_dsts);
        }
        // Every system once per round, in the same order: a drift over the run (the
        // machine's load, its neighbours) falls on all of them alike.
        // A run that failed (the app did not start or report) is None in its round.
        let mut runs: Vec<(&str, usize, Vec<Option<f64>>)> = Vec::new();
        let mut record = |system: &'static str, wire: usize, mpps: Option<f64>| match runs
            .iter_mut()
            .find(|r| r.0 == system)
        {
            Some(r) => r.2.push(mpps),
            None => runs.push((system, wire, vec![mpps])),
        };
        for round in 1..=args.rounds {
            let of = format!("{size} B, round {round} of {}", args.rounds);
            if !args.skip_apps {
                progress(&format!("testpmd io, {of}"));
                let cmd = testpmd_cmd(&w3ip_pcap, args.burst);
                record(
                    "testpmd-io",
                    wire,
                    run_dpdk_app(&work, "testpmd", &cmd, args.seconds),
                );
                if let Some(bin) = &l3fwd {
                    progress(&format!("l3fwd lpm6, {of}"));
                    let cmd = l3fwd_cmd(bin, &v6_pcap, None);
                    record(
                        "l3fwd-lpm6",
                        size,
                        run_dpdk_app(&work, "l3fwd", &cmd, args.seconds),
                    );
                    if let Some((v4, v6, n)) = &l3fwd_rules {
                        progress(&format!("l3fwd lpm6 with {n} routes of the table, {of}"));
                        let cmd = l3fwd_cmd(bin, &table_pcap, Some((v4, v6)));
                        record(
                            "l3fwd-lpm6-table",
                            size,
                            run_dpdk_app(&work, "l3fwd-table", &cmd, args.seconds),
                        );
                    }
                }
            }
            if args.signed_fraction.is_none() {
                progress(&format!("chainrouted (lookup snapshot published), {of}"));
                let run = run_chainrouted(&fib, &w3ip_pcap, size, args.seconds, None, args.burst);
                record("chainrouted", wire, Some(run.tx_mpps));
                // Routes that changed since the snapshot: their regions are
                // marked and their keys looked up in the trie.
                let moved: Vec<(Prefix, NextHop)> = moved_routes
                    .iter()
                    .map(|(p, _)| (*p, fib.get(p).expect("a table route")))
                    .collect();
                for (p, _) in &moved {
                    fib.insert(*p, MOVED_HOP);
                }
                progress(&format!(
                    "chainrouted after {} route changes (snapshot marked), {of}",
                    moved.len()
                ));
                let run = run_chainrouted(&fib, &w3ip_pcap, size, args.seconds, None, args.burst);
                record("chainrouted-marked", wire, Some(run.tx_mpps));
                for (p, hop) in &moved {
                    fib.insert(*p, *hop);
                }
                // Routes changing faster or wider than marks absorb: the snapshot
                // withdrawn; it is published again for the next round.
                fib.withdraw_snapshot();
                progress(&format!(
                    "chainrouted while routes change (no snapshot), {of}"
                ));
                let run = run_chainrouted(&fib, &w3ip_pcap, size, args.seconds, None, args.burst);
                record("chainrouted-trie", wire, Some(run.tx_mpps));
                fib.publish_snapshot();
                progress(&format!("chainrouted with 4 routes, {of}"));
                let run =
                    run_chainrouted(&few_fib, &few_pcap, size, args.seconds, None, args.burst);
                record("chainrouted-4routes", wire, Some(run.tx_mpps));
            }
        }
        for (system, wire, r) in &runs {
            let ok: Vec<f64> = r.iter().flatten().copied().collect();
            let mpps = (!ok.is_empty()).then(|| median(&ok));
            let mut j = json!({"system": system, "frame_bytes": size, "wire_bytes": wire, "mpps": mpps, "runs_mpps": r});
            if *system == "l3fwd-lpm6-table" {
                j["routes"] = json!(l3fwd_rules.as_ref().map(|x| x.2));
            }
            results.push(j);
        }
        // chainrouted over each baseline, and the pipelines on the same lookup work
        // (four routes in L1 on both sides): the median of the rounds' ratios.
        let rates = |name: &str| runs.iter().find(|r| r.0 == name).map(|r| &r.2);
        let mut pairs: Vec<(&str, &str)> = runs
            .iter()
            .filter(|r| r.0 != "chainrouted")
            .map(|r| ("chainrouted", r.0))
            .collect();
        pairs.push(("chainrouted-4routes", "l3fwd-lpm6"));
        for (num, den) in pairs {
            if let (Some(a), Some(b)) = (rates(num), rates(den)) {
                if let Some(r) = median_round_ratio(a, b) {
                    ratios.insert(format!("{num}/{den}@{size}"), ratio(r, 1.0));
                }
            }
        }
        match args.signed_fraction {
            None => {}
            Some(fraction) => {
                let hosts = SigningHosts::new(64);
                // A-B-B-A cycles, so drift over the runs (cache, load, neighbours on a
                // shared machine) falls on both alike; the cost of validation is the
                // median over cycles of each cycle's ratio, the rates are medians.
                let (mut plain, mut validated, mut cycle_ratios) =
                    (Vec::new(), Vec::new(), Vec::new());
                for cycle in 0..args.cycles {
                    let mut sums = [0.0f64; 2];
                    for validate in [false, true, true, false] {
                        progress(&format!(
                            "chainrouted {} source validation, unsigned traffic, {size} B (cycle {} of {})",
                            if validate { "with" } else { "without" },
                            cycle + 1,
                            args.cycles
                        ));
                        let run = run_chainrouted(
                            &fib,
                            &w3ip_pcap,
                            size,
                            args.seconds,
                            validate.then_some(&hosts),
                            args.burst,
                        );
                        sums[validate as usize] += run.tx_mpps;
                        if validate {
                            validated.push(run.tx_mpps)
                        } else {
                            plain.push(run.tx_mpps)
                        }
                    }
                    if sums[0] > 0.0 {
                        cycle_ratios.push(sums[1] / sums[0]);
                    }
                }
                validation_ratios.push((size, median(&cycle_ratios)));
                results.push(json!({"system": "chainrouted-unvalidated", "frame_bytes": size, "wire_bytes": wire, "mpps": median(&plain), "runs_mpps": plain}));
                results.push(json!({"system": "chainrouted-validated", "frame_bytes": size, "wire_bytes": wire, "mpps": median(&validated), "runs_mpps": validated, "cycle_ratios": cycle_ratios}));
                let mix_pcap = work.join(format!("signed-{size}.pcap"));
                let (mix_wire, signed) =
                    write_signed_mix(&mix_pcap, &table, size, fraction, &hosts);
                progress(&format!("chainrouted with source validation, {:.1} % signed ({signed} of {MIX_FRAMES} frames), {size} B", fraction * 100.0));
                let mix = run_chainrouted(
                    &fib,
                    &mix_pcap,
                    size,
                    args.seconds,
                    Some(&hosts),
                    args.burst,
                );
                if verifies_per_sec.is_none() {
                    verifies_per_sec = Some(mix.verifies_per_sec);
                }
                results.push(json!({"system": "chainrouted", "frame_bytes": size, "wire_bytes": mix_wire, "mpps": mix.rx_mpps,
                    "forwarded_mpps": mix.tx_mpps, "signed_fraction": fraction, "verifies_per_sec": mix.verifies_per_sec.round(),
                    "source_validation": true, "drops": mix.drops}));
            }
        }
    }
    for &size in &args.sizes {
        if let Some((_, r)) = validation_ratios.iter().find(|(s, _)| *s == size) {
            ratios.insert(
                format!("chainrouted-validated/chainrouted-unvalidated@{size}"),
                ratio(*r, 1.0),
            );
        }
    }
    let mut out = json!({"results": results, "ratios": ratios, "routes": fib.len(), "data": "RouteViews (routeviews.org), DB-IP, NRO: CC BY 4.0"});
    if let Some(v) = verifies_per_sec {
        out["verifies_per_sec"] = json!(v.round());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        println!(
            "{:<16} {:>6} {:>6} {:>10}",
            "system", "frame", "wire", "Mpps"
        );
        for r in out["results"].as_array().unwrap() {
            println!(
                "{:<16} {:>6} {:>6} {:>10.2}",
                r["system"].as_str().unwrap(),
                r["frame_bytes"],
                r["wire_bytes"],
                r["mpps"].as_f64().unwrap_or(0.0)
            );
        }
        for (k, v) in &ratios {
            println!("{k}: {v}");
        }
        if let Some(v) = verifies_per_sec {
            println!("signatures verified: {v:.0}/s (chainrouted, signed mix)");
        }
        println!(
            "(one worker core; {} routes; data: RouteViews, CC BY 4.0)",
            fib.len()
        );
    }
    std::fs::remove_dir_all(&work).ok();
}

/// Native W3IP frames of `size` bytes (at least the 86-byte minimum), destinations
/// drawn from the table: 70 % inside a random prefix, 15 % on a prefix start, 15 %
/// uniformly random. Returns the frame size used.
fn write_w3ip_frames(path: &Path, table: &[(Prefix, u32)], size: usize) -> usize {
    write_pcap(path, w3ip_frames(table, size))
}

/// Writes `frames` as a capture; returns their size.
fn write_pcap(path: &Path, (wire, frames): (usize, Vec<Vec<u8>>)) -> usize {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(i as u64, f).unwrap();
    }
    wire
}

/// The destinations of the benchmark's frames, one per frame: 70 % inside a random
/// prefix of the table, 15 % on a prefix start, 15 % uniformly random (seeded).
fn destinations(table: &[(Prefix, u32)]) -> Vec<Address> {
    let mut rng = Rng::new(7);
    (0..MIX_FRAMES)
        .map(|_| match rng.below(100) {
            0..=69 => {
                let p = table[rng.below(table.len() as u64) as usize].0;
                address_inside(&mut rng, &p)
            }
            70..=84 => table[rng.below(table.len() as u64) as usize].0.addr(),
            _ => Address::from_bytes(rng.bytes32()),
        })
        .collect()
}

/// The frames of write_w3ip_frames, and their size.
fn w3ip_frames(table: &[(Prefix, u32)], size: usize) -> (usize, Vec<Vec<u8>>) {
    w3ip_frames_to(&destinations(table), size)
}

/// Native W3IP frames of `size` bytes (at least a header's), one to each of `dsts`.
fn w3ip_frames_to(dsts: &[Address], size: usize) -> (usize, Vec<Vec<u8>>) {
    let wire = size.max(ethernet::HEADER_LEN + w3ip::HEADER_LEN);
    let frames = dsts
        .iter()
        .enumerate()
        .map(|(i, &dst)| {
            let repr = w3ip::Repr {
                traffic_class: 0,
                flow_label: (i & 0xfffff) as u32,
                payload_len: (wire - ethernet::HEADER_LEN - w3ip::HEADER_LEN) as u16,
                next_header: 59,
                hop_limit: 64,
                src_addr: "2001:db8::1".parse().unwrap(),
                dst_addr: dst,
            };
            let mut f = vec![0u8; wire];
            repr.emit(&mut w3ip::Packet::new_unchecked(
                &mut f[ethernet::HEADER_LEN..],
            ))
            .unwrap();
            chainroute_wire::tunnel::emit_native(&mut f, NEIGHBOUR_MAC, ROUTER_MAC).unwrap();
            f
        })
        .collect();
    (wire, frames)
}

/// Four routes shaped like l3fwd's built-in IPv6 ones (a /48 and three /64s in
/// 2001:200::/48, here in W3IP's IPv6 form), all to port 1 like the realistic
/// table's, and as many destinations as the realistic capture, every one inside
/// 2001:200:0:1::/64 (l3fwd's frames all go to that route).
fn few_routes() -> (Fib, Vec<Address>) {
    let mut fib = Fib::new();
    for (i, p) in [
        "2001:200::/48",
        "2001:200:0:1::/64",
        "2001:200:0:2::/64",
        "2001:200:0:3::/64",
    ]
    .iter()
    .enumerate()
    {
        let mac = MacAddr([2, 0, 0, 0, 1, i as u8]);
        fib.insert(p.parse().unwrap(), NextHop::Local { port: 1, mac });
    }
    let route: Prefix = "2001:200:0:1::/64".parse().unwrap();
    let mut rng = Rng::new(9);
    let dsts = (0..MIX_FRAMES)
        .map(|_| address_inside(&mut rng, &route))
        .collect();
    (fib, dsts)
}

/// IPv6/UDP frames to l3fwd's built-in routes 2001:200:0:1::/64 (its port 1).
/// net_pcap's infinite_rx holds the whole capture in mbufs of the app's pool; the
/// stock l3fwd pool is 8192 mbufs, so the capture stays at 2048 frames.
fn builtin_route_destinations() -> Vec<[u8; 16]> {
    let mut rng = Rng::new(9);
    let base: std::net::Ipv6Addr = "2001:200:0:1::".parse().unwrap();
    (0..2048)
        .map(|_| {
            let mut dst = base.octets();
            dst[8..16].copy_from_slice(&rng.next_u64().to_be_bytes());
            dst
        })
        .collect()
}

/// IPv6/UDP frames of `size` bytes to `dsts`, one frame each, to the router's MAC.
fn write_ipv6_frames(path: &Path, size: usize, dsts: &[[u8; 16]]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, dst) in dsts.iter().enumerate() {
        let mut f = vec![0u8; size];
        f[0..6].copy_from_slice(&ROUTER_MAC.0);
        f[6..12].copy_from_slice(&NEIGHBOUR_MAC.0);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let plen = (size - 54) as u16;
        f[14] = 0x60;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        f[20] = 17;
        f[21] = 64;
        f[22..38].copy_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        f[38..54].copy_from_slice(dst);
        f[54..56].copy_from_slice(&4000u16.to_be_bytes());
        f[56..58].copy_from_slice(&4000u16.to_be_bytes());
        f[58..60].copy_from_slice(&(plen).to_be_bytes());
        w.write(i as u64, &f).unwrap();
    }
}

/// The <= 128-bit routes of `table` as an l3fwd `--rule_ipv6` file, every route to
/// port 1 (net_null). rte_lpm6 takes depths 1..=128, so a default route becomes
/// its two halves, ::/1 and 8000::/1. Returns the number of rules.
fn write_l3fwd_rules(path: &Path, table: &[(Prefix, u32)]) -> usize {
    use std::fmt::Write;
    let mut text = String::new();
    let mut n = 0;
    for (p, _) in table.iter().filter(|(p, _)| p.len() <= 128) {
        let a = std::net::Ipv6Addr::from(top_half(&p.addr()));
        if p.len() == 0 {
            text.push_str("R::/1 1\nR8000::/1 1\n");
            n += 2;
        } else {
            writeln!(text, "R{a}/{} 1", p.len()).unwrap();
            n += 1;
        }
    }
    std::fs::write(path, text).unwrap();
    n
}

/// The top 128 bits of an address (what a 128-bit engine sees).
fn top_half(a: &Address) -> [u8; 16] {
    a.0[..16].try_into().unwrap()
}

fn eal_common(prefix: &str) -> Vec<String> {
    [
        "-l",
        "0-1",
        "--no-huge",
        "--no-pci",
        "-m",
        "1024",
        "--file-prefix",
        prefix,
        "--log-level=error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn testpmd_cmd(pcap: &Path, burst: usize) -> Vec<String> {
    let prefix = format!("fb-tp-{}", std::process::id());
    let mut c = vec!["dpdk-testpmd".to_string()];
    c.extend(eal_common(&prefix));
    c.push(format!(
        "--vdev=net_pcap0,rx_pcap={},infinite_rx=1",
        pcap.display()
    ));
    c.push("--vdev=net_null0,no-rx=1".into());
    c.extend(
        [
            "--",
            "--forward-mode=io",
            "--nb-cores=1",
            "--stats-period=1",
            "--total-num-mbufs=16384",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    c.push(format!("--burst={burst}"));
    c
}

/// l3fwd's command line; with `rules` (IPv4 and IPv6 rule files) it loads those
/// routes instead of its built-in ones.
fn l3fwd_cmd(bin: &Path, pcap: &Path, rules: Option<(&Path, &Path)>) -> Vec<String> {
    let prefix = format!("fb-l3-{}", std::process::id());
    let mut c = vec![bin.display().to_string()];
    // l3fwd sets up one TX queue per enabled lcore: give it only the worker lcore,
    // which is also its main lcore.
    c.extend(eal_common(&prefix));
    let l = c.iter().position(|a| a == "-l").unwrap();
    c[l + 1] = "1".into();
    // The build copy's LPM6 reserves 2^20 tbl8 groups (1 GiB) so a realistic table fits.
    let m = c.iter().position(|a| a == "-m").unwrap();
    c[m + 1] = L3FWD_MEMORY_MB.into();
    c.push(format!(
        "--vdev=net_pcap0,rx_pcap={},infinite_rx=1",
        pcap.display()
    ));
    c.push("--vdev=net_null0,no-rx=1".into());
    c.extend(
        [
            "--",
            "-p",
            "0x3",
            "-P",
            "--lookup=lpm",
            "--ipv6",
            "--parse-ptype",
            "--config=(0,0,1),(1,0,1)",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    if let Some((v4, v6)) = rules {
        c.push(format!("--rule_ipv4={}", v4.display()));
        c.push(format!("--rule_ipv6={}", v6.display()));
    }
    c
}

/// EAL memory (MiB) for l3fwd: its LPM6 tables with the raised limits, and mbufs.
const L3FWD_MEMORY_MB: &str = "2560";

/// Copies the l3fwd example (and its `common/` folder) from dpdk-doc and builds it,
/// with RX checksum offload masked (net_pcap/net_null do not offer it), LPM6
/// limits raised from 1024 rules and 2^16 tbl8 groups to 2^20 each (a realistic
/// table needs ~512k groups), and a pool of at least 32768 mbufs (an 8192-frame
/// capture lives in the pool). None of these change l3fwd's per-packet path.
fn build_l3fwd(work: &Path) -> Option<PathBuf> {
    // FWD_BENCH_L3FWD_DIR keeps the build between runs (and lets a machine without
    // a compiler or DPDK's headers run one built elsewhere): a build found there is
    // reused as it is.
    let cache = std::env::var_os("FWD_BENCH_L3FWD_DIR").map(PathBuf::from);
    if let Some(dir) = &cache {
        let bin = dir.join("l3fwd/build/l3fwd");
        if bin.exists() {
            eprintln!("fwd-bench: using the l3fwd built in {}", dir.display());
            return Some(bin);
        }
    }
    let src = Path::new("/usr/share/dpdk/examples");
    if !src.join("l3fwd/main.c").exists() {
        eprintln!("fwd-bench: /usr/share/dpdk/examples/l3fwd missing (Debian package dpdk-doc): skipping l3fwd");
        return None;
    }
    let dst = cache.unwrap_or_else(|| work.join("examples"));
    // A copy left by a build that failed would take `cp -r` into a subfolder and
    // keep its edited sources: start from the pristine example every time.
    for sub in ["l3fwd", "common"] {
        std::fs::remove_dir_all(dst.join(sub)).ok();
    }
    std::fs::create_dir_all(&dst).ok();
    let ok = Command::new("cp")
        .arg("-r")
        .arg(src.join("l3fwd"))
        .arg(src.join("common"))
        .arg(&dst)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("fwd-bench: cannot copy the l3fwd example");
        return None;
    }
    let edits: [(&str, &[(&str, &str)]); 2] = [
        (
            "main.c",
            &[
                (".offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,", ".offloads = 0,"),
                ("(unsigned)8192)", "(unsigned)32768)"),
            ],
        ),
        (
            "l3fwd_lpm.c",
            &[
                (
                    "#define IPV6_L3FWD_LPM_MAX_RULES         1024",
                    "#define IPV6_L3FWD_LPM_MAX_RULES         (1 << 20)",
                ),
                (
                    "#define IPV6_L3FWD_LPM_NUMBER_TBL8S (1 << 16)",
                    "#define IPV6_L3FWD_LPM_NUMBER_TBL8S (1 << 20)",
                ),
            ],
        ),
    ];
    for (file, pairs) in edits {
        let path = dst.join("l3fwd").join(file);
        let mut text = std::fs::read_to_string(&path).ok()?;
        for (from, to) in pairs {
            // Another DPDK release may word these lines differently: say so rather
            // than build an l3fwd that silently lacks the edit.
            if !text.contains(from) {
                eprintln!("fwd-bench: l3fwd/{file} has no {from:?} to edit: skipping l3fwd");
                return None;
            }
            text = text.replace(from, to);
        }
        std::fs::write(&path, text).ok()?;
    }
    eprintln!("fwd-bench: building DPDK's l3fwd example");
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(dst.join("l3fwd"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "fwd-bench: l3fwd build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(dst.join("l3fwd/build/l3fwd"))
}

/// Port 1's TX packet count through the telemetry socket of a running DPDK process.
fn telemetry_opackets(prefix: &str) -> Option<u64> {
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take()?;
        stdin.write_all(b"/ethdev/stats,1\n").ok()?;
    }
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let i = text.find("\"opackets\":")? + "\"opackets\":".len();
    text[i..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        // SIGINT lets testpmd/l3fwd stop their ports cleanly.
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a DPDK app, waits for it to forward, and measures port 1's TX rate in Mpps.
fn run_dpdk_app(work: &Path, name: &str, cmd: &[String], seconds: f64) -> Option<f64> {
    let prefix = cmd
        .iter()
        .position(|a| a == "--file-prefix")
        .map(|i| cmd[i + 1].clone())?;
    let log = std::fs::File::create(work.join(format!("{name}.log"))).ok()?;
    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .spawn();
    let child = match child {
        Ok(c) => Kill(c),
        Err(e) => {
            eprintln!("fwd-bench: cannot start {}: {e}", cmd[0]);
            return None;
        }
    };
    // Warm up until it forwards (l3fwd loading a realistic table takes a while).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut first = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(n) = telemetry_opackets(&prefix).filter(|&n| n > 0) {
            first = Some(n);
            break;
        }
    }
    let Some(_) = first else {
        eprintln!(
            "fwd-bench: {name} did not forward (log in {})",
            work.join(format!("{name}.log")).display()
        );
        drop(child);
        return None;
    };
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let a = telemetry_opackets(&prefix)?;
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let b = telemetry_opackets(&prefix)?;
    let dt = t0.elapsed().as_secs_f64();
    drop(child);
    Some((b - a) as f64 / dt / 1e6)
}

/// What one chainrouted run measured.
struct RouterRun {
    /// Frames taken from the input port per second (forwarded, consumed or dropped).
    rx_mpps: f64,
    /// Frames sent on the output port per second.
    tx_mpps: f64,
    /// Signatures verified per second (pushed into the batch and not shed).
    verifies_per_sec: f64,
    /// Drops by reason over the window.
    drops: serde_json::Value,
}

/// Runs the dataplane in this process on the same vdevs and measures its rates over
/// a window. With `hosts`, security is on: the sender's MAC is a neighbour licensed
/// for the unsigned sources' prefix, the hosts are bound and their keys authorised.
fn run_chainrouted(
    fib: &Fib,
    pcap: &Path,
    size: usize,
    seconds: f64,
    hosts: Option<&SigningHosts>,
    burst: usize,
) -> RouterRun {
    let prefix = format!("fb-cr-{}", std::process::id());
    let security = hosts.map(|_| SecurityConfig {
        source_validation: true,
        // The bench measures the verifier's capacity, not the per-source shedding:
        // every signature of a burst may be verified.
        shed: ShedConfig {
            trusted_per_burst: 64,
            probation_per_burst: 64,
            suspect_per_burst: 64,
            probation_slots: 64,
            suspect_slots: 64,
            rate_per_sec: 10_000_000,
            bucket: 1 << 20,
            ..ShedConfig::default()
        },
        verifies_per_burst: 64,
    });
    let config = DataplaneConfig {
        eal_args: eal_common(&prefix),
        ports: vec![
            PortConfig {
                name: "in".into(),
                device: Device::Vdev(format!(
                    "net_pcap_fb{size},rx_pcap={},infinite_rx=1",
                    pcap.display()
                )),
                mac: Some(ROUTER_MAC),
            },
            PortConfig {
                name: "out".into(),
                device: Device::Vdev(format!("net_null_fb{size},no-rx=1")),
                mac: None,
            },
        ],
        mbufs: 16383,
        burst,
        rings: chainroute_dataplane::Rings::default(),
        security,
    };
    let dp = Dataplane::start(&config, fib).unwrap_or_else(|e| {
        eprintln!("fwd-bench: dataplane: {e}");
        std::process::exit(1)
    });
    if let (Some(hosts), Some(sec)) = (hosts, dp.security()) {
        let mut sec = sec.lock().unwrap();
        hosts.provision(&mut sec);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let t0 = Instant::now();
    let a = dp.counters();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let b = dp.counters();
    let dt = t0.elapsed().as_secs_f64();
    let (end, _) = dp.shutdown();
    if hosts.is_none() && end.total_drops() > 0 {
        eprintln!(
            "fwd-bench: chainrouted drops during the run: {}",
            end.drops_line()
        );
    }
    let shed = b.drops_of(DropReason::SignatureShed) - a.drops_of(DropReason::SignatureShed);
    let mut drops = serde_json::Map::new();
    for r in DropReason::ALL {
        let n = b.drops_of(r) - a.drops_of(r);
        if n > 0 {
            drops.insert(r.name().to_string(), json!(n));
        }
    }
    RouterRun {
        rx_mpps: (b.rx_packets[0] - a.rx_packets[0]) as f64 / dt / 1e6,
        tx_mpps: (b.tx_packets[1] - a.tx_packets[1]) as f64 / dt / 1e6,
        verifies_per_sec: (b.verified - a.verified).saturating_sub(shed) as f64 / dt,
        drops: serde_json::Value::Object(drops),
    }
}

// ------------------------------------------------------------------ signed traffic

/// The prefix of the segment the signing hosts sit on.
const ACCESS_PREFIX: &str = "2001:db8:5eed::/48";
/// Routes `chainrouted-marked` changes after the snapshot, and where they go.
const MOVED_ROUTES: usize = 100;
const MOVED_HOP: NextHop = NextHop::Local {
    port: 1,
    mac: MacAddr([2, 0, 0, 0, 2, 0]),
};
/// The prefix the unsigned sources lie in, licensed to the sending neighbour.
const NEIGHBOUR_PREFIX: &str = "2001:db8::/32";
/// The neighbour that sends the unsigned traffic (w3ip_frames).
const NEIGHBOUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);
/// Frames in each generated W3IP capture (replayed forever).
const MIX_FRAMES: u64 = 8192;

/// Hosts on the access segment, each a wallet with an authorised device key, a
/// MAC of its own (a shedding source of its own) and a binding.
struct SigningHosts {
    hosts: Vec<(Wallet, DeviceKey, MacAddr, Address)>,
}

impl SigningHosts {
    fn new(n: u8) -> SigningHosts {
        let locator: Address = ACCESS_PREFIX.trim_end_matches("/48").parse().unwrap();
        let hosts = (0..n)
            .map(|i| {
                let wallet = Wallet([0xa0 ^ i; 20]);
                let mut seed = [0x5e; 32];
                seed[0] = i;
                (
                    wallet,
                    DeviceKey::from_seed(&seed),
                    MacAddr([2, 0, 0, 0, 0xa, i]),
                    Address::unicast(&locator, wallet),
                )
            })
            .collect();
        SigningHosts { hosts }
    }

    /// Fills the security tables as the chain reconciler and earlier BINDs would:
    /// the neighbour's license, the device keys and the hosts' bindings (sequence 1).
    fn provision(&self, sec: &mut chainroute_dataplane::Security) {
        let far = now() + 3600;
        sec.set_peer(
            PeerKey::Native {
                port: 0,
                mac: NEIGHBOUR_MAC,
            },
            &[NEIGHBOUR_PREFIX.parse::<Prefix>().unwrap()],
        );
        for (wallet, key, mac, unicast) in &self.hosts {
            sec.devices()
                .upsert_bytes(*wallet, key.public().as_bytes(), far)
                .unwrap();
            sec.install(Binding {
                wallet: *wallet,
                unicast: *unicast,
                ingress: Ingress::Native { port: 0, mac: *mac },
                expiry: far,
                sequence: 1,
                device_key: *key.public().as_bytes(),
            });
        }
        sec.publish();
    }
}

/// The median over rounds of `a / b`, skipping rounds where either failed.
fn median_round_ratio(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    let per_round: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(a, b)| Some(a.as_ref()? / b.filter(|b| *b > 0.0)?))
        .collect();
    (!per_round.is_empty()).then(|| median(&per_round))
}

/// `a / b` to three decimals, as the JSON's ratios print it.
fn ratio(a: f64, b: f64) -> serde_json::Value {
    json!(round3(a / b))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The unsigned frames of write_w3ip_frames with a fraction of them replaced by
/// signed ones from the bound hosts: AUTH data to destinations in the table, and one
/// in 16 a BIND refresh (a newer sequence: accepted on the first pass of the
/// capture, stale and counted `bind_rejected` on every replay after). Signed frames
/// are spread evenly. Returns the smallest frame size used and the signed count.
fn write_signed_mix(
    path: &Path,
    table: &[(Prefix, u32)],
    size: usize,
    fraction: f64,
    hosts: &SigningHosts,
) -> (usize, u64) {
    let (wire, frames) = w3ip_frames(table, size);
    let mut rng = Rng::new(11);
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let (mut signed, mut acc, mut sequence) = (0u64, 0.0f64, 2u64);
    let mut scratch = Vec::new();
    for (i, unsigned_frame) in frames.iter().enumerate() {
        acc += fraction;
        if acc < 1.0 {
            w.write(i as u64, unsigned_frame).unwrap();
            continue;
        }
        acc -= 1.0;
        let (wallet, key, mac, unicast) =
            &hosts.hosts[rng.below(hosts.hosts.len() as u64) as usize];
        let packet = if signed % 16 == 15 {
            let mut hdr = [0u8; BIND_LEN];
            let bind = BindRepr {
                next_header: 59,
                wallet: *wallet,
                unicast: *unicast,
                expiry: now() + 3600,
                sequence,
                device_key: [0; 32],
                signature: [0; 64],
            };
            sequence += 1;
            emit_signed_bind(key, bind, &mut hdr).unwrap();
            let repr = w3ip::Repr {
                traffic_class: 0,
                flow_label: 0,
                payload_len: BIND_LEN as u16,
                next_header: next_header::BIND,
                hop_limit: 64,
                src_addr: *unicast,
                dst_addr: Address::UNSPECIFIED,
            };
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut w3ip::Packet::new_unchecked(&mut b[..]))
                .unwrap();
            b[w3ip::HEADER_LEN..].copy_from_slice(&hdr);
            b
        } else {
            let p = table[rng.below(table.len() as u64) as usize].0;
            let dst = address_inside(&mut rng, &p);
            let repr = w3ip::Repr {
                traffic_class: 0,
                flow_label: i as u32,
                payload_len: 0,
                next_header: 0,
                hop_limit: 64,
                src_addr: *unicast,
                dst_addr: dst,
            };
            // A payment instruction padded to the frame size of the unsigned traffic.
            let payload =
                vec![
                    0x70u8;
                    size.saturating_sub(ethernet::HEADER_LEN + w3ip::HEADER_LEN + AUTH_LEN)
                        .max(16)
                ];
            let mut buf = vec![0u8; 2048];
            let n = build_signed_packet(key, &repr, 59, &payload, &mut buf, &mut scratch).unwrap();
            buf.truncate(n);
            buf
        };
        let mut f = vec![0u8; ethernet::HEADER_LEN + packet.len()];
        f[ethernet::HEADER_LEN..].copy_from_slice(&packet);
        chainroute_wire::tunnel::emit_native(&mut f, *mac, ROUTER_MAC).unwrap();
        w.write(i as u64, &f).unwrap();
        signed += 1;
    }
    (wire, signed)
}

// ------------------------------------------------------------------ zero-loss search

/// EAL lcore arguments for the generator and the DUT with `n` workers each: their
/// own cores when the machine has 2n+1, else (n = 1 on 2 cores) the DUT's worker on
/// core 0 and the generator's on core 1 (main lcores only sleep).
fn lcore_plan(n: usize) -> Option<(String, Vec<String>)> {
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    if cores > 2 * n {
        let dut = if n == 1 {
            format!("0,{}", n + 1)
        } else {
            format!("0,{}-{}", n + 1, 2 * n)
        };
        Some((
            format!("0-{n}"),
            vec!["-l".into(), dut, "--main-lcore".into(), "0".into()],
        ))
    } else if n == 1 && cores >= 2 {
        Some((
            "0-1".into(),
            vec!["-l".into(), "0-1".into(), "--main-lcore".into(), "1".into()],
        ))
    } else {
        None
    }
}

struct Dut(std::process::Child, &'static str);

impl Dut {
    /// SIGTERM (the DUT stops its workers, then closes its ports), then wait.
    fn stop(mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("fwd-bench: {} ignored SIGTERM: killing it", self.1);
        let _ = self.0.kill();
        self.0.wait().ok()
    }
}

/// The last `n` lines of a log, in order.
fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// `--dut-serve`'s value: the two memif sockets, the EAL file prefix, then the
/// DUT's lcore arguments separated by spaces (an lcore list such as `0,2-3` has
/// commas of its own).
fn dut_serve_arg(sock_in: &str, sock_out: &str, prefix: &str, lcore_args: &[String]) -> String {
    format!("{sock_in},{sock_out},{prefix},{}", lcore_args.join(" "))
}

fn parse_dut_serve_arg(arg: &str) -> Option<(&str, &str, &str, Vec<String>)> {
    let parts: Vec<&str> = arg.splitn(4, ',').collect();
    let lcores = parts.get(3)?.split_whitespace().map(String::from).collect();
    Some((parts[0], parts[1], parts[2], lcores))
}

/// Runs the DUT's dataplane on two memif client ports (in, out) until SIGTERM.
fn serve_dut(fib: &Fib, socks: &str) {
    let (sock_in, sock_out, prefix, lcore_args) = parse_dut_serve_arg(socks).unwrap_or_else(|| {
        eprintln!("fwd-bench dut: --dut-serve {socks:?}: expected IN,OUT,PREFIX,LCORE ARGS");
        std::process::exit(2)
    });
    let mut eal: Vec<String> = vec![
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "1024".into(),
        "--file-prefix".into(),
        prefix.into(),
        "--log-level=error".into(),
    ];
    eal.extend(lcore_args);
    install_signal_counter();
    let config = DataplaneConfig {
        eal_args: eal,
        ports: vec![
            PortConfig {
                name: "in".into(),
                device: Device::Vdev(format!("net_memif_in,role=client,socket={sock_in},id=0")),
                mac: Some(ROUTER_MAC),
            },
            PortConfig {
                name: "out".into(),
                device: Device::Vdev(format!("net_memif_out,role=client,socket={sock_out},id=0")),
                mac: None,
            },
        ],
        mbufs: 16383,
        burst: DEFAULT_BURST,
        rings: chainroute_dataplane::Rings::default(),
        security: None,
    };
    let dp = Dataplane::start(&config, fib).unwrap_or_else(|e| {
        eprintln!("fwd-bench dut: {e}");
        std::process::exit(1)
    });
    println!("ready {} workers", dp.lcores().len());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    while SIGNALS.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Ring overflows show on the generator as refused frames; what the DUT saw is here.
    let ports: Vec<_> = dp.ports().iter().map(|p| json!({"name": p.name, "rx_missed": p.stats.imissed, "rx_nombuf": p.stats.rx_nombuf, "tx_errors": p.stats.oerrors})).collect();
    let (c, (free, size)) = dp.shutdown();
    println!(
        "{}",
        json!({"rx": c.total_rx(), "tx": c.total_tx(), "drops": c.drops_line(), "worker_stalls": c.stalls, "longest_loop_us": round3(c.longest_loop_ns as f64 / 1e3), "ports": ports, "mbufs_free": free, "mbufs": size})
    );
}

/// The zero-loss search for every system, worker count and size.
fn zero_loss(
    args: &Args,
    table: &[(Prefix, u32)],
    sizes: &[usize],
    work: &Path,
) -> serde_json::Value {
    let pid = std::process::id();
    let mut results = Vec::new();
    let _ = table;
    for &n in &args.workers {
        if lcore_plan(n).is_none() {
            eprintln!("fwd-bench: {n} workers need {} cores (a generator and a DUT core each, plus one): skipped", 2 * n + 1);
            results.push(json!({"workers": n, "skipped": format!("needs {} cores", 2 * n + 1)}));
            continue;
        }
        for &size in sizes {
            let size = size.max(MIN_FRAME);
            for system in &args.systems {
                let tag = format!("{pid}-{n}-{size}-{system}");
                eprintln!("fwd-bench: zero-loss search, {system}, {n} worker(s), {size} B");
                let r = run_search_child(system, n, size, &tag, work);
                // Each result as it comes, so a run cut short still says what it found.
                match r.get("error").or(r.get("skipped")) {
                    Some(e) => eprintln!("fwd-bench: {system}, {n} worker(s): {e}"),
                    None => eprintln!(
                        "fwd-bench: {system}, {n} worker(s), {size} B: NDR {} Mpps, PDR {} Mpps (generator max {})",
                        r["ndr_mpps"], r["pdr_mpps"], r["generator_max_mpps"]
                    ),
                }
                if let Some(c) = r.get("dut_counters") {
                    eprintln!(
                        "fwd-bench:   {system} over the search: rx {} tx {}, drops {}, worker stalls {} (longest loop {} us)",
                        c["rx"], c["tx"], c["drops"], c["worker_stalls"], c["longest_loop_us"]
                    );
                }
                results.push(r);
            }
        }
    }
    // Ratios: chainrouted / testpmd-io, per workers and size.
    let mut ratios = serde_json::Map::new();
    for r in &results {
        if r["system"] != "chainrouted" {
            continue;
        }
        let base = results.iter().find(|b| {
            b["system"] == "testpmd-io"
                && b["workers"] == r["workers"]
                && b["frame_bytes"] == r["frame_bytes"]
        });
        if let (Some(b), Some(c)) = (base, r["ndr_mpps"].as_f64()) {
            if let Some(bv) = b["ndr_mpps"].as_f64().filter(|v| *v > 0.0) {
                ratios.insert(
                    format!(
                        "ndr chainrouted/testpmd-io@{}B,{}w",
                        r["frame_bytes"], r["workers"]
                    ),
                    ratio(c, bv),
                );
            }
            if let (Some(cp), Some(bp)) = (
                r["pdr_mpps"].as_f64(),
                b["pdr_mpps"].as_f64().filter(|v| *v > 0.0),
            ) {
                ratios.insert(
                    format!(
                        "pdr chainrouted/testpmd-io@{}B,{}w",
                        r["frame_bytes"], r["workers"]
                    ),
                    ratio(cp, bp),
                );
            }
        }
        if let (Some(c), Some(g)) = (
            r["ndr_mpps"].as_f64(),
            r["generator_max_mpps"].as_f64().filter(|v| *v > 0.0),
        ) {
            ratios.insert(
                format!(
                    "ndr chainrouted/generator-max@{}B,{}w",
                    r["frame_bytes"], r["workers"]
                ),
                ratio(c, g),
            );
        }
    }
    let out = json!({"zero_loss": results, "ratios": ratios, "link": "memif (copy mode), generator -> DUT -> generator", "data": "RouteViews (routeviews.org), DB-IP, NRO: CC BY 4.0"});
    if !args.json {
        println!(
            "{:<12} {:>7} {:>6} {:>10} {:>10} {:>10} {:>7}",
            "system", "workers", "frame", "NDR Mpps", "PDR Mpps", "gen max", "trials"
        );
        for r in out["zero_loss"].as_array().unwrap() {
            if r.get("skipped").is_some() || r.get("error").is_some() {
                println!(
                    "{:<12} {:>7} {}",
                    r["system"].as_str().unwrap_or("-"),
                    r["workers"],
                    r.get("skipped").or(r.get("error")).unwrap()
                );
                continue;
            }
            println!(
                "{:<12} {:>7} {:>6} {:>10.3} {:>10.3} {:>10.3} {:>7}",
                r["system"].as_str().unwrap_or(""),
                r["workers"],
                r["frame_bytes"],
                r["ndr_mpps"].as_f64().unwrap_or(0.0),
                r["pdr_mpps"].as_f64().unwrap_or(0.0),
                r["generator_max_mpps"].as_f64().unwrap_or(0.0),
                r["trials"].as_array().map(|t| t.len()).unwrap_or(0)
            );
        }
        for (k, v) in &ratios {
            println!("{k}: {v}");
        }
    }
    out
}

/// One search in a child process of this binary (the EAL starts once per process,
/// and each search needs a fresh generator): `FWD_BENCH_GEN` tells it what to do.
fn run_search_child(
    system: &str,
    n: usize,
    size: usize,
    tag: &str,
    work: &Path,
) -> serde_json::Value {
    let out = work.join(format!("search-{tag}.json"));
    let status = Command::new(std::env::current_exe().expect("own path"))
        .args(std::env::args().skip(1))
        .env(
            "FWD_BENCH_GEN",
            format!("{system}|{n}|{size}|{}", out.display()),
        )
        .status();
    match (status, std::fs::read_to_string(&out)) {
        (Ok(s), Ok(text)) if s.success() => serde_json::from_str(&text).unwrap_or_else(|e| json!({"system": system, "workers": n, "frame_bytes": size, "error": e.to_string()})),
        (s, _) => json!({"system": system, "workers": n, "frame_bytes": size, "error": format!("generator child failed: {s:?}")}),
    }
}

/// In the generator child: open the memif servers, start the DUT, search, stop both
/// sides in order (generator loops, DUT workers + ports, generator ports).
fn gen_child_main(args: &Args, table: &[(Prefix, u32)], spec_env: &str, work: &Path) {
    let parts: Vec<&str> = spec_env.splitn(4, '|').collect();
    let (system, n, size, out_path) = (
        parts[0],
        parts[1].parse::<usize>().unwrap(),
        parts[2].parse::<usize>().unwrap(),
        parts[3],
    );
    let pid = std::process::id();
    let tag = format!("{pid}-{n}-{size}-{system}");
    let sock_in = format!("/run/fwd-bench-{tag}-in.sock");
    let sock_out = format!("/run/fwd-bench-{tag}-out.sock");
    let (gen_lcores, dut_lcores) = lcore_plan(n).expect("checked by the parent");
    install_signal_counter();
    let cfg = EngineConfig {
        eal_args: vec![
            "-l".into(),
            gen_lcores,
            "--no-huge".into(),
            "--no-pci".into(),
            "-m".into(),
            "1024".into(),
            "--file-prefix".into(),
            format!("fb-gen-{tag}"),
            "--log-level=error".into(),
        ],
        ports: vec![
            PortSpec {
                device: Device::Vdev(format!("net_memif_gin,role=server,socket={sock_in},id=0")),
                mac: Some(MacAddr([2, 0, 0, 0, 0, 9])),
            },
            PortSpec {
                device: Device::Vdev(format!("net_memif_gout,role=server,socket={sock_out},id=0")),
                mac: None,
            },
        ],
        tx: 0,
        rx: vec![1],
        mbufs: 32767,
    };
    let fail = |e: String| -> ! {
        let _ = std::fs::write(
            out_path,
            json!({"system": system, "workers": n, "frame_bytes": size, "error": e}).to_string(),
        );
        std::process::exit(0)
    };
    let engine = Engine::open(&cfg).unwrap_or_else(|e| fail(e));
    let dut_prefix = format!("fb-dut-{tag}");
    let mut cmd = match system {
        "chainrouted" => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.arg("--prefixes")
                .arg(&args.prefixes)
                .arg("--dut-serve")
                .arg(dut_serve_arg(&sock_in, &sock_out, &dut_prefix, &dut_lcores));
            c.env_remove("FWD_BENCH_GEN");
            c
        }
        "testpmd-io" => {
            let mut c = Command::new("dpdk-testpmd");
            c.args(&dut_lcores).args([
                "--no-huge",
                "--no-pci",
                "-m",
                "1024",
                "--file-prefix",
                &dut_prefix,
                "--log-level=error",
            ]);
            c.arg(format!(
                "--vdev=net_memif0,role=client,socket={sock_in},id=0"
            ))
            .arg(format!(
                "--vdev=net_memif1,role=client,socket={sock_out},id=0"
            ));
            c.args([
                "--",
                "--forward-mode=io",
                "--stats-period=1",
                "--total-num-mbufs=16384",
            ]);
            c.arg(format!("--burst={DEFAULT_BURST}"));
            c.arg(format!("--nb-cores={n}"))
                .arg(format!("--rxq={n}"))
                .arg(format!("--txq={n}"));
            c
        }
        other => fail(format!("unknown system {other:?}")),
    };
    let log_path = work.join("dut.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| fail(format!("cannot start {system}: {e}")));
    let dut = Dut(
        child,
        if system == "testpmd-io" {
            "dpdk-testpmd"
        } else {
            "the DUT"
        },
    );
    if !engine.wait_links(Duration::from_secs(60)) {
        let _ = dut.stop();
        engine.close();
        // The DUT's own words say why (an EAL or config error, most often).
        fail(format!(
            "{system}: memif links did not come up; the DUT's log ends: {:?}",
            log_tail(&log_path, 5)
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut mix = MixConfig::new(table.iter().map(|(p, _)| *p).collect());
    mix.size = size;
    mix.dst_mac = ROUTER_MAC;
    mix.src_mac = MacAddr([2, 0, 0, 0, 0, 9]);
    mix.flows = 4096;
    mix.pool = 8192;
    let templates = std::sync::Arc::new(mix.templates().unwrap_or_else(|e| fail(e)));
    let trial = |rate: f64, seconds: f64| -> (Trial, serde_json::Value) {
        engine.flush_rx();
        let r = engine.trial(
            &templates,
            &TrialSpec {
                rate_pps: rate,
                seconds,
                drain: Duration::from_millis(300),
                progress: false,
            },
        );
        // A generator that could not offer the rate (its core was busy elsewhere) did
        // not test the DUT at that rate: the shortfall counts as loss (conservative).
        let offered = (r.sent_total() + r.refused) as f64 / seconds.max(1e-9);
        let shortfall = if rate > 0.0 {
            (1.0 - offered / rate).max(0.0)
        } else {
            0.0
        };
        let loss = if shortfall > 0.01 {
            r.loss_ratio().max(shortfall)
        } else {
            r.loss_ratio()
        };
        let t = Trial {
            rate: if rate > 0.0 { rate } else { r.tx_mpps() * 1e6 },
            seconds,
            loss_ratio: loss,
            rx_rate: r.rx_mpps() * 1e6,
        };
        eprintln!(
            "fwd-bench:   offered {:8.3} Mpps for {seconds:.1} s: received {:8.3} Mpps, loss ratio {:.6}{}",
            t.rate / 1e6,
            t.rx_rate / 1e6,
            t.loss_ratio,
            if shortfall > 0.01 { format!(" (generator short by {:.1} %)", shortfall * 100.0) } else { String::new() }
        );
        let mut j = r.to_json();
        j["generator_shortfall"] = json!((shortfall * 1e4).round() / 1e4);
        (t, j)
    };
    // The generator's ceiling here: a max-rate trial (what the DUT's ring accepts and what comes back).
    let (max, max_json) = trial(0.0, args.search.trial_seconds.max(1.0));
    let spec = SearchSpec {
        max_rate: (max.rate * 1.05).max(1e4),
        ..args.search
    };
    let result = if SIGNALS.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        Some(search(&spec, max.rx_rate, |rate, seconds| {
            trial(rate, seconds).0
        }))
    } else {
        None
    };
    // Stop order for memif: our loops are stopped (trials are over); the DUT stops its
    // workers and closes its ports; then we close ours.
    let dut_status = dut.stop();
    engine.close();
    chainroute_perf::traffic::remove_runtime_dir(&format!("fb-gen-{tag}"));
    chainroute_perf::traffic::remove_runtime_dir(&dut_prefix);
    let clean = dut_status.map(|s| s.success()).unwrap_or(false);
    let mut out = json!({"system": system, "workers": n, "frame_bytes": size, "generator_max_mpps": round3(max.rate / 1e6), "max_rate_trial": max_json, "dut_exit": dut_status.map(|s| s.to_string()), "dut_clean_exit": clean});
    let stalled = result.as_ref().is_some_and(|r| r.stalled_at.is_some());
    if stalled {
        eprintln!("fwd-bench: nothing came back from {system} after an overload trial: the DUT or its memif link stopped forwarding (dut_stalled_at_trial and the DUT's log tail in the JSON)");
    }
    if !clean || stalled {
        out["dut_log_tail"] = json!(log_tail(&log_path, 10));
    }
    // chainrouted's last line: its counters over the whole search (drops by reason,
    // worker stalls), to tell a slow DUT from a generator that did not drain.
    if let Some(c) = log_tail(&log_path, 1)
        .first()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        out["dut_counters"] = c;
    }
    if let Some(r) = result {
        for (k, v) in r.to_json().as_object().unwrap() {
            out[k] = v.clone();
        }
    }
    let _ = std::fs::write(out_path, out.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dut_gets_its_lcore_list_whole() {
        // On a machine with more than 2n cores the DUT's list has commas ("0,2"),
        // which once split into stray EAL arguments.
        let lcores: Vec<String> = ["-l", "0,5-8", "--main-lcore", "0"]
            .map(String::from)
            .to_vec();
        let arg = dut_serve_arg("/run/a.sock", "/run/b.sock", "fb-dut-1", &lcores);
        let (i, o, p, l) = parse_dut_serve_arg(&arg).unwrap();
        assert_eq!(
            (i, o, p, l),
            ("/run/a.sock", "/run/b.sock", "fb-dut-1", lcores)
        );
        assert!(parse_dut_serve_arg("only,two").is_none());
    }

    #[test]
    fn l3fwd_rules_hold_the_le128_routes_and_split_the_default() {
        let table: Vec<(Prefix, u32)> = [
            ("::/0", 1),
            ("2001:db8::/32", 2),
            ("2001:db8:1::/48", 3),
            ("2001:db8::1:2:3:4:5/256", 4),
        ]
        .iter()
        .map(|(p, v)| (p.parse().unwrap(), *v))
        .collect();
        let path = std::env::temp_dir().join(format!("l3fwd-rules-{}", std::process::id()));
        assert_eq!(write_l3fwd_rules(&path, &table), 4);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "R::/1 1",
                "R8000::/1 1",
                "R2001:db8::/32 1",
                "R2001:db8:1::/48 1"
            ]
        );
    }

    #[test]
    fn the_four_route_frames_all_take_the_one_route() {
        let (fib, dsts) = few_routes();
        assert_eq!(fib.len(), 4);
        assert_eq!(dsts.len() as u64, MIX_FRAMES);
        let mut r = fib.reader().unwrap();
        let mut hops = vec![0; dsts.len()];
        for (k, h) in dsts.chunks(MAX_BURST).zip(hops.chunks_mut(MAX_BURST)) {
            r.lookup_bulk(k, h);
        }
        let want = Some(NextHop::Local {
            port: 1,
            mac: MacAddr([2, 0, 0, 0, 1, 1]),
        });
        assert!(hops.iter().all(|&h| r.next_hop(h) == want.as_ref()));
        let (wire, frames) = w3ip_frames_to(&dsts, 64);
        assert_eq!(wire, ethernet::HEADER_LEN + w3ip::HEADER_LEN);
        let p = w3ip::Packet::new_checked(&frames[5][ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(p.dst_addr(), dsts[5]);
    }

    #[test]
    fn ipv6_frames_carry_the_destinations_in_order() {
        let path = std::env::temp_dir().join(format!("v6-frames-{}", std::process::id()));
        let dsts = [[0x20; 16], [0x30; 16]];
        write_ipv6_frames(&path, 64, &dsts);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        // pcap: 24-byte file header, then a 16-byte record header per frame.
        let frame = |i: usize| &bytes[24 + i * (16 + 64) + 16..][..64];
        for (i, d) in dsts.iter().enumerate() {
            assert_eq!(&frame(i)[12..14], &[0x86, 0xdd]);
            assert_eq!(&frame(i)[38..54], d);
        }
        assert_eq!(bytes.len(), 24 + 2 * (16 + 64));
    }
}
