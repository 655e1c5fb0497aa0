//! chainroute-pktgen: a DPDK traffic generator and receiver that speaks W3IP.
//!
//! It sends native or tunnelled (UDP/IPv4 5733) W3IP frames whose destinations
//! are drawn from a prefix table (uniform or Zipf), over as many flows as asked
//! (flow labels and UDP source ports, for RSS), at a fixed rate or as fast as it
//! can, with a mix of signed BIND/AUTH, invalid and spoofed frames; it receives
//! what comes back and reports rate, loss, reordering and latency (a TSC stamp in
//! the payload), per traffic class, as JSON.
//!
//! Ports are any DPDK device: memif, pcap, null, tap, PCI. With an identity
//! (`--wallet`, `--device-seed`, `--locator`) it first binds its wallets at the
//! router with signed BINDs, so source validation lets its traffic in.
//!
//! Shutdown over memif: the loops stop at the end of the run (or at the first
//! SIGINT/SIGTERM); with `--hold` the ports then stay open, idle, until the next
//! signal, so the peer can stop its own loops and close first.

use chainroute_crypto::DeviceKey;
use chainroute_dataplane::io::Device;
use chainroute_perf::pktgen::{write_pcap, Dist, Identity, MixConfig, MIN_FRAME};
use chainroute_perf::prefixes::read_prefixes;
use chainroute_perf::traffic::{
    install_signal_counter, Engine, EngineConfig, PortSpec, TrialSpec, SIGNALS,
};
use chainroute_wire::{Address, MacAddr, Prefix, Wallet};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: chainroute-pktgen [options]
ports and EAL:
  --port DEV[@MAC]     a DPDK device (repeatable): net_memif0,role=server,socket=/run/x.sock
                       net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap  net_null0  net_tap0,iface=pg0
                       or a PCI address; @MAC sets the port's MAC
  --tx N               port index to send on (default 0)
  --rx LIST            port indexes to receive on (default: 1 with two ports or more, else 0)
  --lcores L           EAL lcores (default 0-1: main + one worker); one worker per queue
  --mem MB             EAL memory without hugepages (default 512)
  --file-prefix P      EAL file prefix (default chainroute-pktgen-<pid>)
  --huge, --pci        use hugepages / probe PCI (default: --no-huge --no-pci)
  --mbufs N            mempool size (default 16383)
  --wait-link S        wait this long for every link to come up (default 10)
traffic:
  --size B             Ethernet frame size without FCS (default 128, at least 110)
  --rate R             packets per second: 1000, 2.5k, 1.2M, or max (default max)
  --seconds S          TX time (default 5); --drain-ms MS: receive after TX (default 200)
  --dst LIST           destination prefixes, comma-separated (default 2002::/16)
  --dst-file FILE      destination prefixes from a RouteViews-style file (one per line)
  --zipf S             Zipf exponent over the table order (default: uniform)
  --flows N            flow labels / UDP source ports to cycle (default 1024)
  --pool N             distinct frames to cycle (default 4096)
  --mix SPEC           class weights: native=80,tunnel=10,signed=4,bind=1,invalid=2,spoofed=2,badsig=1
                       (default native=1)
  --src ADDR           data source without an identity (default 2001:db8::1)
  --src-mac MAC        (default 02:00:00:00:6e:01)   --dst-mac MAC: the router's (default 02:00:00:00:00:01)
  --tunnel-src IP:PORT (default 10.3.0.2:40000)       --tunnel-dst IP:PORT (default 10.3.0.1:5733)
  --hop-limit N        (default 64)                    --seed N: frame pool seed (default 1)
identity (BIND first, then AUTH-signed traffic from the bound source):
  --wallet 0x..        the wallet bound natively; --tunnel-wallet 0x..: the one bound over UDP
  --device-seed HEX    the Ed25519 seed of a device key the wallets authorised on chain
  --locator ADDR       top 96 bits: a prefix the router serves locally
  --bind-wait-ms MS    wait after the BINDs (default 300)
  --bind-seq N         first BIND sequence (default: Unix milliseconds x 1000, so it grows)
  --bind-expiry UNIX   BIND expiry (default: now + 1 h; pcap profiles use a fixed far one)
output and modes:
  --json               print the result as JSON (default: a summary)
  --out FILE           also write the JSON result there
  --progress           a rate line every second on stderr
  --hold               after the run keep the ports open (loops stopped) until SIGTERM/SIGINT
  --hold-max S         stop holding after S seconds anyway (default 600)
  --go-file FILE       open the ports, then wait (up to --hold-max) for FILE to exist before
                       binding and sending: lets a script start the memif servers first
  --write-pcap FILE    write --count frames (default 4096) of the mix to a pcap file; no DPDK
  --manifest FILE      with --write-pcap: every frame's W3IP fields as JSON (what a dissector must show)
  --print-key SEED     print the Ed25519 public key of a 32-byte seed (hex) and exit";

struct Args {
    ports: Vec<PortSpec>,
    tx: usize,
    rx: Option<Vec<usize>>,
    lcores: String,
    mem: u32,
    file_prefix: String,
    huge: bool,
    pci: bool,
    mbufs: u32,
    wait_link: f64,
    mix: MixConfig,
    rate: f64,
    seconds: f64,
    drain_ms: u64,
    wallet: Option<Wallet>,
    tunnel_wallet: Option<Wallet>,
    seed: Option<[u8; 32]>,
    locator: Option<Address>,
    bind_wait_ms: u64,
    bind_seq: Option<u64>,
    bind_expiry: Option<u64>,
    json: bool,
    out: Option<String>,
    progress: bool,
    hold: bool,
    hold_max: f64,
    go_file: Option<String>,
    manifest: Option<String>,
    write_pcap: Option<String>,
    count: usize,
}

fn hex32(s: &str) -> Result<[u8; 32], String> {
    let h = s.trim_start_matches("0x");
    if h.len() != 64 {
        return Err(format!("{s:?}: 64 hex digits expected"));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(|_| format!("{s:?}: not hex"))?;
    }
    Ok(out)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    if s == "max" || s == "0" {
        return Ok(0.0);
    }
    let (num, mult) = match s.chars().last() {
        Some('k') | Some('K') => (&s[..s.len() - 1], 1e3),
        Some('m') | Some('M') => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    num.parse::<f64>()
        .map(|v| v * mult)
        .map_err(|_| format!("--rate: {s:?} is not a rate"))
}

fn parse_prefix_list(s: &str) -> Result<Vec<Prefix>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim()
                .parse::<Prefix>()
                .map_err(|e| format!("{p:?}: {e}"))
        })
        .collect()
}

fn parse() -> Result<Option<Args>, String> {
    let mut a = Args {
        ports: Vec::new(),
        tx: 0,
        rx: None,
        lcores: "0-1".into(),
        mem: 512,
        file_prefix: format!("chainroute-pktgen-{}", std::process::id()),
        huge: false,
        pci: false,
        mbufs: 16383,
        wait_link: 10.0,
        mix: MixConfig::new(vec!["2002::/16".parse().unwrap()]),
        rate: 0.0,
        seconds: 5.0,
        drain_ms: 200,
        wallet: None,
        tunnel_wallet: None,
        seed: None,
        locator: None,
        bind_wait_ms: 300,
        bind_seq: None,
        bind_expiry: None,
        json: false,
        out: None,
        progress: false,
        hold: false,
        hold_max: 600.0,
        go_file: None,
        manifest: None,
        write_pcap: None,
        count: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut v = || it.next().ok_or(format!("{arg} needs a value"));
        let num = |s: String, name: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("{name}: {s:?} is not a number"))
        };
        match arg.as_str() {
            "--port" => {
                let s = v()?;
                let (dev, mac) = match s.rsplit_once('@') {
                    Some((d, m)) => (
                        d.to_string(),
                        Some(
                            m.parse::<MacAddr>()
                                .map_err(|e| format!("--port {s:?}: {e}"))?,
                        ),
                    ),
                    None => (s, None),
                };
                a.ports.push(PortSpec {
                    device: Device::parse(&dev),
                    mac,
                });
            }
            "--tx" => a.tx = num(v()?, "--tx")? as usize,
            "--rx" => {
                a.rx = Some(
                    v()?.split(',')
                        .map(|x| {
                            x.trim()
                                .parse::<usize>()
                                .map_err(|_| format!("--rx: {x:?}"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            "--lcores" => a.lcores = v()?,
            "--mem" => a.mem = num(v()?, "--mem")? as u32,
            "--file-prefix" => a.file_prefix = v()?,
            "--huge" => a.huge = true,
            "--pci" => a.pci = true,
            "--mbufs" => a.mbufs = num(v()?, "--mbufs")? as u32,
            "--wait-link" => a.wait_link = num(v()?, "--wait-link")?,
            "--size" => a.mix.size = num(v()?, "--size")? as usize,
            "--rate" => a.rate = parse_rate(&v()?)?,
            "--seconds" => a.seconds = num(v()?, "--seconds")?,
            "--drain-ms" => a.drain_ms = num(v()?, "--drain-ms")? as u64,
            "--dst" => a.mix.prefixes = parse_prefix_list(&v()?)?,
            "--dst-file" => {
                let f = v()?;
                a.mix.prefixes = read_prefixes(std::path::Path::new(&f))
                    .map_err(|e| format!("--dst-file {f}: {e}"))?
                    .into_iter()
                    .map(|(p, _)| p)
                    .collect();
            }
            "--zipf" => a.mix.dist = Dist::Zipf(num(v()?, "--zipf")?),
            "--flows" => a.mix.flows = num(v()?, "--flows")? as u32,
            "--pool" => a.mix.pool = num(v()?, "--pool")? as usize,
            "--mix" => a.mix.weights = MixConfig::parse_mix(&v()?)?,
            "--src" => a.mix.src = v()?.parse().map_err(|e| format!("--src: {e}"))?,
            "--src-mac" => a.mix.src_mac = v()?.parse().map_err(|e| format!("--src-mac: {e}"))?,
            "--dst-mac" => a.mix.dst_mac = v()?.parse().map_err(|e| format!("--dst-mac: {e}"))?,
            "--tunnel-src" => {
                a.mix.tunnel_src = v()?.parse().map_err(|_| "--tunnel-src: IP:PORT")?
            }
            "--tunnel-dst" => {
                a.mix.tunnel_dst = v()?.parse().map_err(|_| "--tunnel-dst: IP:PORT")?
            }
            "--hop-limit" => a.mix.hop_limit = num(v()?, "--hop-limit")? as u8,
            "--seed" => a.mix.seed = num(v()?, "--seed")? as u64,
            "--wallet" => a.wallet = Some(v()?.parse().map_err(|e| format!("--wallet: {e}"))?),
            "--tunnel-wallet" => {
                a.tunnel_wallet = Some(v()?.parse().map_err(|e| format!("--tunnel-wallet: {e}"))?)
            }
            "--device-seed" => a.seed = Some(hex32(&v()?)?),
            "--locator" => a.locator = Some(v()?.parse().map_err(|e| format!("--locator: {e}"))?),
            "--bind-wait-ms" => a.bind_wait_ms = num(v()?, "--bind-wait-ms")? as u64,
            "--bind-seq" => {
                a.bind_seq = Some(v()?.parse().map_err(|_| "--bind-seq: not a number")?)
            }
            "--bind-expiry" => {
                a.bind_expiry = Some(v()?.parse().map_err(|_| "--bind-expiry: not a number")?)
            }
            "--json" => a.json = true,
            "--out" => a.out = Some(v()?),
            "--progress" => a.progress = true,
            "--hold" => a.hold = true,
            "--hold-max" => a.hold_max = num(v()?, "--hold-max")?,
            "--go-file" => a.go_file = Some(v()?),
            "--manifest" => a.manifest = Some(v()?),
            "--write-pcap" => a.write_pcap = Some(v()?),
            "--count" => a.count = num(v()?, "--count")? as usize,
            "--print-key" => {
                let k = DeviceKey::from_seed(&hex32(&v()?)?);
                println!(
                    "0x{}",
                    k.public()
                        .as_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                return Ok(None);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.mix.size < MIN_FRAME {
        return Err(format!(
            "--size: at least {MIN_FRAME} bytes (Ethernet + W3IP header + the 24-byte stamp)"
        ));
    }
    match (a.wallet, a.seed, a.locator) {
        (Some(w), Some(s), Some(l)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            a.mix.identity = Some(Identity {
                native_wallet: w,
                tunnel_wallet: a.tunnel_wallet.unwrap_or(w),
                key: DeviceKey::from_seed(&s),
                locator: l,
                // Grows across runs (milliseconds), leaving room for the mix's BINDs.
                sequence: a.bind_seq.unwrap_or(now.as_millis() as u64 * 1000),
                expiry: a.bind_expiry.unwrap_or(now.as_secs() + 3600),
            });
        }
        (None, None, None) => {}
        _ => return Err("--wallet, --device-seed and --locator go together".into()),
    }
    if a.write_pcap.is_none() && a.ports.is_empty() {
        return Err("give at least one --port (or --write-pcap)".into());
    }
    Ok(Some(a))
}

fn main() {
    let a = match parse() {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("chainroute-pktgen: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let templates = match a.mix.templates() {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("chainroute-pktgen: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &a.write_pcap {
        let mut frames = a
            .mix
            .bind_frames(a.mix.identity.as_ref().map(|i| i.sequence).unwrap_or(0));
        if a.mix.identity.is_none() {
            frames.clear();
        }
        // BINDs first (as the generator sends them), then the mix.
        let mut all: Vec<chainroute_perf::pktgen::Template> = frames
            .into_iter()
            .map(|f| chainroute_perf::pktgen::Template {
                frame: f,
                class: chainroute_perf::pktgen::Class::Bind,
                stamp_seq_at: None,
                udp_csum_at: None,
                flow: 0,
            })
            .collect();
        let n = all.len();
        all.extend(templates.iter().cloned());
        let count = a.count.max(n);
        // Write the BINDs once, then cycle the mix.
        let mut seq: Vec<_> = all[..n].to_vec();
        seq.extend((0..count - n).map(|i| templates[i % templates.len()].clone()));
        if let Err(e) = write_pcap(std::path::Path::new(path), &seq, seq.len()) {
            eprintln!("chainroute-pktgen: {path}: {e}");
            std::process::exit(1);
        }
        eprintln!("chainroute-pktgen: wrote {} frames to {path}", seq.len());
        if let Some(m) = &a.manifest {
            let frames = chainroute_dataplane::pcap::read_all(
                std::fs::File::open(path).expect("just written"),
            )
            .expect("just written");
            let list: Vec<serde_json::Value> = frames.iter().map(|f| manifest_entry(f)).collect();
            std::fs::write(m, serde_json::to_string_pretty(&list).unwrap())
                .unwrap_or_else(|e| eprintln!("chainroute-pktgen: {m}: {e}"));
        }
        return;
    }
    install_signal_counter();
    let rx =
        a.rx.clone()
            .unwrap_or_else(|| if a.ports.len() >= 2 { vec![1] } else { vec![0] });
    let mut eal = vec![
        "-l".to_string(),
        a.lcores.clone(),
        "-m".into(),
        a.mem.to_string(),
        "--file-prefix".into(),
        a.file_prefix.clone(),
        "--log-level=error".into(),
    ];
    if !a.huge {
        eal.push("--no-huge".into());
    }
    if !a.pci {
        eal.push("--no-pci".into());
    }
    let cfg = EngineConfig {
        eal_args: eal,
        ports: a.ports.clone(),
        tx: a.tx,
        rx,
        mbufs: a.mbufs,
    };
    let engine = match Engine::open(&cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("chainroute-pktgen: {e}");
            std::process::exit(1);
        }
    };
    if let Some(go) = &a.go_file {
        eprintln!("chainroute-pktgen: ports open; waiting for {go}");
        let deadline = Instant::now() + Duration::from_secs_f64(a.hold_max);
        while !std::path::Path::new(go).exists()
            && Instant::now() < deadline
            && SIGNALS.load(Ordering::SeqCst) == 0
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        if SIGNALS.load(Ordering::SeqCst) != 0 {
            engine.close();
            chainroute_perf::traffic::remove_runtime_dir(&a.file_prefix);
            return;
        }
    }
    if !engine.wait_links(Duration::from_secs_f64(a.wait_link)) {
        eprintln!(
            "chainroute-pktgen: not every link came up within {} s (continuing)",
            a.wait_link
        );
    }
    if let Some(id) = &a.mix.identity {
        let binds = a.mix.bind_frames(id.sequence);
        let n = engine.send_frames(&binds);
        eprintln!(
            "chainroute-pktgen: sent {n} BIND(s): {} at {}{}",
            id.native_wallet,
            id.native_unicast(),
            if binds.len() > 1 {
                format!(", {} at {} (UDP)", id.tunnel_wallet, id.tunnel_unicast())
            } else {
                String::new()
            }
        );
        std::thread::sleep(Duration::from_millis(a.bind_wait_ms));
    }
    engine.flush_rx();
    let spec = TrialSpec {
        rate_pps: a.rate,
        seconds: a.seconds,
        drain: Duration::from_millis(a.drain_ms),
        progress: a.progress,
    };
    let r = engine.trial(&templates, &spec);
    let signals_after = SIGNALS.load(Ordering::SeqCst);
    let out = json!({
        "tool": "chainroute-pktgen",
        "workers": engine.workers(),
        "frame_bytes": a.mix.size,
        "flows": a.mix.flows,
        "prefixes": a.mix.prefixes.len(),
        "distribution": match a.mix.dist { Dist::Uniform => "uniform".to_string(), Dist::Zipf(s) => format!("zipf {s}") },
        "result": r.to_json(),
        "ports": engine.port_stats(),
    });
    if let Some(path) = &a.out {
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()) {
            eprintln!("chainroute-pktgen: {path}: {e}");
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        println!(
            "sent {} ({:.3} Mpps)  received {} ({:.3} Mpps)  lost {} ({:.4} %)  refused {}",
            r.sent_total(),
            r.tx_mpps(),
            r.received.iter().sum::<u64>(),
            r.rx_mpps(),
            r.lost(),
            r.loss_ratio() * 100.0,
            r.refused
        );
        if r.latency.count > 0 {
            println!(
                "latency us: min {:.2} p50 {:.2} p99 {:.2} max {:.2}",
                r.latency.min as f64 / 1e3,
                r.latency.quantile(0.5) as f64 / 1e3,
                r.latency.quantile(0.99) as f64 / 1e3,
                r.latency.max as f64 / 1e3
            );
        }
        for (k, v) in out["result"]["classes"].as_object().unwrap() {
            println!(
                "  {k:8} sent {:>10} received {:>10}",
                v["sent"], v["received"]
            );
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if a.hold {
        eprintln!("chainroute-pktgen: holding the ports open (loops stopped) until SIGTERM/SIGINT");
        let deadline = Instant::now() + Duration::from_secs_f64(a.hold_max);
        while SIGNALS.load(Ordering::SeqCst) == signals_after && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    engine.close();
    chainroute_perf::traffic::remove_runtime_dir(&a.file_prefix);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a W3IP decoder must find in one frame (None fields: not W3IP / not present).
fn manifest_entry(frame: &[u8]) -> serde_json::Value {
    use chainroute_wire::ext::{next_header, AuthHeader, BindHeader, Extensions};
    use chainroute_wire::tunnel::{Carrier, Decap};
    use chainroute_wire::w3ip;
    let Ok(d) = Decap::parse(frame) else {
        return json!({"w3ip": false});
    };
    let p = &frame[d.inner.clone()];
    let pk = w3ip::Packet::new_unchecked(p);
    let mut e = json!({
        "w3ip": true,
        "carrier": match d.carrier { Carrier::Native => "native".to_string(), Carrier::Udp { src, dst } => format!("udp {src} -> {dst}") },
        "version": pk.version(),
        "tclass": pk.traffic_class(),
        "flow": pk.flow_label(),
        "plen": pk.payload_len(),
        "nxt": pk.next_header(),
        "hlim": pk.hop_limit(),
        "src": pk.src_addr().to_string(),
        "dst": pk.dst_addr().to_string(),
        "src_wallet": format!("0x{}", hex(&pk.src_addr().interface_id().0)),
        "dst_wallet": format!("0x{}", hex(&pk.dst_addr().interface_id().0)),
        "dst_anycast": pk.dst_addr().is_anycast(),
    });
    if let Ok(ext) = Extensions::parse(&pk) {
        if let Some(off) = ext.auth {
            let h = AuthHeader::new_unchecked(&p[off..]);
            e["auth"] = json!({"nxt": h.next_header(), "key": hex(h.signer_key()), "sig": hex(h.signature())});
        }
        if let Some(off) = ext.bind {
            let h = BindHeader::new_unchecked(&p[off..]);
            e["bind"] = json!({"nxt": h.next_header(), "wallet": format!("0x{}", hex(&h.wallet().0)), "unicast": h.unicast().to_string(), "expiry": h.expiry(), "seq": h.sequence(), "key": hex(h.device_key()), "sig": hex(h.signature())});
        }
    }
    let _ = next_header::AUTH;
    e
}
