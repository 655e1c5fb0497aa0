//! chain-bench: how fast chainrouted's chain reconciler loads the licenses held on
//! chain, and how soon a settled event reaches its FIB, on a real anvil with the
//! real contracts (contracts/deploy and contracts/seed).
//!
//! 1. Load: an operator subdivides N /48 licenses out of a /16 root and names a
//!    router (an IPv4 endpoint) for each: 2N transactions, signed here and mined in
//!    full blocks (anvil without automine, base fee 0).
//! 2. Initial sync: chainrouted starts (net_null ports, no snapshot) and the clock
//!    runs until its Status says synced with N+ tunnel routes in the FIB. Beside it,
//!    in the same run, the baseline: the bare `eth_getLogs` pages of the same range
//!    and page size (the floor any log-based reconciler sits on), as a ratio.
//! 3. Event latency: one more license (subdivide + setRouter) at a time; its block
//!    settles when the `confirmations`-th block after it is mined; the clock runs from
//!    then until LookupRoute on the API finds the new route. Beside it, the poll
//!    interval the reconciler was configured with.
//!
//! Prints a summary, or JSON with `--json`. Runs from a source checkout after
//! `make setup` (anvil and the contracts' npm toolchain), as root (EAL).

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address as EthAddress, FixedBytes, U256};
use alloy::providers::{Provider, ProviderBuilder, RootProvider};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use chainroute_mgmt::chain::{encode_endpoints, SegmentLicense};
use chainroute_mgmt::pb;
use chainroute_mgmt::testbed;
use chainroute_wire::{Address, Prefix};
use futures::StreamExt;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: chain-bench [--licenses N] [--events N] [--confirmations N] [--poll-ms MS]
                   [--page-blocks N] [--chainrouted PATH] [--json]
  --licenses N       licenses to load (default 100000; each is a subdivide and a setRouter)
  --events N         single-license events timed to the FIB (default 20)
  --confirmations N  blocks before an event counts as settled (default 2)
  --poll-ms MS       the reconciler's poll interval (default 200)
  --page-blocks N    blocks per eth_getLogs page (default 10000, chainrouted's default)
  --chainrouted PATH the daemon to measure (default: next to this binary)";

/// The bench's root: clear of the seed's 2001::/16 and 2002::/16.
const ROOT: &str = "2400::/16";
/// Transactions sent before each block is mined: all of them fit in it (at their gas
/// limits), because anvil drops what a mined block leaves in its pool.
const CHUNK: usize = 2_000;
const SUBDIVIDE_GAS: u64 = 400_000;
const SET_ROUTER_GAS: u64 = 200_000;
const BLOCK_GAS: u64 = 1_000_000_000;

struct Args {
    licenses: u32,
    events: u32,
    confirmations: u64,
    poll_ms: u64,
    page_blocks: u64,
    chainrouted: PathBuf,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut a = Args {
        licenses: 100_000,
        events: 20,
        confirmations: 2,
        poll_ms: 200,
        page_blocks: 10_000,
        chainrouted: exe.with_file_name("chainrouted"),
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let num = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: {v:?} is not a number"))
        };
        match arg.as_str() {
            "--licenses" => {
                a.licenses = num("--licenses", value("--licenses")?)?.clamp(1, 1 << 24) as u32
            }
            "--events" => a.events = num("--events", value("--events")?)?.min(10_000) as u32,
            "--confirmations" => {
                a.confirmations = num("--confirmations", value("--confirmations")?)?
            }
            "--poll-ms" => a.poll_ms = num("--poll-ms", value("--poll-ms")?)?.max(50),
            "--page-blocks" => {
                a.page_blocks = num("--page-blocks", value("--page-blocks")?)?.max(1)
            }
            "--chainrouted" => a.chainrouted = PathBuf::from(value("--chainrouted")?),
            "--json" => a.json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !a.chainrouted.exists() {
        return Err(format!(
            "{}: no such file (build it: cargo build --release -p chainroute-mgmt)",
            a.chainrouted.display()
        ));
    }
    Ok(a)
}

fn progress(m: &str) {
    eprintln!("chain-bench: {m}");
}

/// The i-th /48 under the /16 root.
fn child(root: &Prefix, i: u32) -> Prefix {
    let mut a = root.addr();
    a.0[2..6].copy_from_slice(&i.to_be_bytes());
    Prefix::new(a, 48).expect("a /48 inside the root")
}

/// The endpoint the i-th license's router announces.
fn endpoint(i: u32) -> SocketAddr {
    SocketAddr::new(
        std::net::Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8).into(),
        5733,
    )
}

/// Signs transactions for one sender with consecutive nonces, without RPC round trips.
struct Sender {
    wallet: EthereumWallet,
    from: EthAddress,
    nonce: u64,
    chain_id: u64,
    to: EthAddress,
}

impl Sender {
    async fn sign(&mut self, input: Vec<u8>, gas: u64) -> Vec<u8> {
        let tx = TransactionRequest::default()
            .with_from(self.from)
            .with_to(self.to)
            .with_input(input)
            .with_nonce(self.nonce)
            .with_chain_id(self.chain_id)
            .with_gas_limit(gas)
            .with_max_fee_per_gas(1_000_000_000)
            .with_max_priority_fee_per_gas(0);
        self.nonce += 1;
        tx.build(&self.wallet)
            .await
            .expect("sign a transaction")
            .encoded_2718()
    }

    fn subdivide(parent: u64, p: &Prefix, to: EthAddress, expiry: u64) -> Vec<u8> {
        SegmentLicense::subdivideCall {
            parentId: U256::from(parent),
            prefix: FixedBytes(p.addr().0),
            prefixLen: p.len() as u16,
            to,
            expiry,
        }
        .abi_encode()
    }

    fn set_router(id: u64, key: [u8; 32], e: SocketAddr) -> Vec<u8> {
        SegmentLicense::setRouterCall {
            id: U256::from(id),
            routerKey: FixedBytes(key),
            endpoints: encode_endpoints(&[e]).into(),
        }
        .abi_encode()
    }
}

async fn raw(
    p: &RootProvider,
    method: &'static str,
    params: serde_json::Value,
) -> serde_json::Value {
    p.raw_request(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Mines blocks until `from`'s nonce on chain reaches `nonce`; returns the blocks mined.
async fn mine_until(p: &RootProvider, from: EthAddress, nonce: u64) -> u64 {
    let mut blocks = 0;
    loop {
        let have = p.get_transaction_count(from).await.expect("nonce");
        if have >= nonce {
            return blocks;
        }
        let _: serde_json::Value = raw(p, "anvil_mine", json!([1])).await;
        blocks += 1;
        if blocks > 1_000_000 {
            panic!("transactions are not being mined (nonce {have} of {nonce})");
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("chain-bench: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("chain-bench-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    let out = run(&args, &dir).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        let s = &out["initial_sync"];
        println!(
            "initial sync of {} licenses ({} logs, {} blocks): {:.2} s to the FIB (reconciler {:.2} s); bare eth_getLogs {:.2} s; ratio {:.2}",
            out["licenses"], s["logs"], s["blocks"], s["start_to_fib_s"].as_f64().unwrap_or(0.0), s["reconciler_s"].as_f64().unwrap_or(0.0),
            s["baseline_get_logs_s"].as_f64().unwrap_or(0.0), s["ratio_to_baseline"].as_f64().unwrap_or(0.0)
        );
        let l = &out["event_to_fib"];
        println!(
            "settled event -> FIB over {} events: median {:.0} ms, p90 {:.0} ms, max {:.0} ms (poll interval {} ms, {} confirmations)",
            l["events"], l["median_ms"].as_f64().unwrap_or(0.0), l["p90_ms"].as_f64().unwrap_or(0.0), l["max_ms"].as_f64().unwrap_or(0.0),
            l["poll_interval_ms"], l["confirmations"]
        );
        println!(
            "(load: {:.1} s for {} transactions)",
            out["load"]["seconds"].as_f64().unwrap_or(0.0),
            out["load"]["transactions"]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(args: &Args, dir: &Path) -> serde_json::Value {
    let gas = BLOCK_GAS.to_string();
    let (_anvil, rpc) = testbed::anvil_quiet(&[
        "--gas-limit",
        &gas,
        "--base-fee",
        "0",
        "--disable-min-priority-fee",
    ]);
    progress(&format!(
        "anvil at {rpc}; deploying and seeding the contracts"
    ));
    let (dep, seed) = testbed::deploy_and_seed(&rpc, dir);
    let lic: EthAddress =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&dep).unwrap()).unwrap()
            ["contracts"]["SegmentLicense"]["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let p: RootProvider = ProviderBuilder::default().connect_http(rpc.parse().unwrap());
    let chain_id = p.get_chain_id().await.expect("chain id");
    let deployer: PrivateKeySigner = testbed::DEPLOYER_KEY.parse().unwrap();
    let operator: PrivateKeySigner = testbed::OP_B_KEY.parse().unwrap();
    let op_addr = operator.address();
    let router_key = [0x42u8; 32];

    // The root, issued by the allocator to the operator.
    let root: Prefix = ROOT.parse().unwrap();
    let now: u64 = p
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let expiry = now + 365 * 86_400;
    let root_id: u64 = SegmentLicense::new(lic, &p)
        .nextId()
        .call()
        .await
        .unwrap()
        .to::<u64>();
    let allocator = deployer.address();
    let mut alloc = Sender {
        from: allocator,
        wallet: EthereumWallet::from(deployer),
        nonce: p.get_transaction_count(allocator).await.unwrap(),
        chain_id,
        to: lic,
    };
    let issue = SegmentLicense::issueRootCall {
        prefix: FixedBytes(root.addr().0),
        prefixLen: root.len() as u16,
        to: op_addr,
        expiry,
    }
    .abi_encode();
    let tx = alloc.sign(issue, SUBDIVIDE_GAS).await;
    p.send_raw_transaction(&tx)
        .await
        .expect("issueRoot")
        .get_receipt()
        .await
        .expect("issueRoot mined");

    // 1. Load: N subdivisions with routers, in full blocks.
    let _: serde_json::Value = raw(&p, "evm_setAutomine", json!([false])).await;
    let nonce0 = p.get_transaction_count(op_addr).await.unwrap();
    let mut op = Sender {
        wallet: EthereumWallet::from(operator),
        from: op_addr,
        nonce: nonce0,
        chain_id,
        to: lic,
    };
    let t_load = Instant::now();
    let mut blocks = 0;
    let first_block = p.get_block_number().await.unwrap() + 1;
    let n = args.licenses;
    let mut i = 0u32;
    while i < n {
        let end = (i + CHUNK as u32 / 2).min(n);
        let mut txs = Vec::with_capacity(2 * (end - i) as usize);
        for k in i..end {
            let id = root_id + 1 + k as u64;
            txs.push(
                op.sign(
                    Sender::subdivide(root_id, &child(&root, k), op_addr, expiry),
                    SUBDIVIDE_GAS,
                )
                .await,
            );
            txs.push(
                op.sign(
                    Sender::set_router(id, router_key, endpoint(k)),
                    SET_ROUTER_GAS,
                )
                .await,
            );
        }
        let sent: Vec<_> = futures::stream::iter(txs.iter().map(|t| p.send_raw_transaction(t)))
            .buffered(16)
            .collect()
            .await;
        if let Some(Err(e)) = sent.into_iter().find(|r| r.is_err()) {
            panic!("sending a transaction: {e}");
        }
        blocks += mine_until(&p, op_addr, op.nonce).await;
        i = end;
        progress(&format!(
            "{i}/{n} licenses on chain ({blocks} blocks, {:.0} s)",
            t_load.elapsed().as_secs_f64()
        ));
    }
    let load_s = t_load.elapsed().as_secs_f64();
    let next: u64 = SegmentLicense::new(lic, &p)
        .nextId()
        .call()
        .await
        .unwrap()
        .to::<u64>();
    assert_eq!(next, root_id + 1 + n as u64, "every subdivision landed");
    let _: serde_json::Value = raw(&p, "evm_setAutomine", json!([true])).await;
    let _: serde_json::Value = raw(&p, "anvil_mine", json!([args.confirmations])).await;
    let head = p.get_block_number().await.unwrap();
    let target = head - args.confirmations;

    // 2a. Baseline: the bare log pages chainrouted reads, with the same page size.
    let t_logs = Instant::now();
    let mut logs = 0usize;
    let mut start = 0u64;
    while start <= target {
        let end = (start + args.page_blocks - 1).min(target);
        logs += p
            .get_logs(&Filter::new().address(lic).from_block(start).to_block(end))
            .await
            .expect("eth_getLogs")
            .len();
        start = end + 1;
    }
    let baseline_s = t_logs.elapsed().as_secs_f64();
    progress(&format!(
        "baseline: {logs} logs by eth_getLogs in {baseline_s:.2} s"
    ));

    // 2b. chainrouted from cold (no snapshot) to a FIB holding every license.
    let socket = dir.join("api.sock");
    let config = dir.join("chainroute.toml");
    std::fs::write(
        &config,
        router_config(
            args,
            dir,
            &rpc,
            &dep,
            &seed,
            format!("chain-bench-{}", std::process::id()),
        ),
    )
    .unwrap();
    let log = dir.join("chainrouted.log");
    let t_start = Instant::now();
    let router = testbed::start_router(&args.chainrouted, &config, &log);
    let mut c = testbed::client(&socket).await;
    let want_routes = n as u64;
    let mut seen_sync = None;
    loop {
        let s = testbed::status(&mut c).await;
        let chain = s.chain.clone().unwrap_or_default();
        if chain.synced && seen_sync.is_none() {
            seen_sync = Some(t_start.elapsed().as_secs_f64());
        }
        if chain.synced && chain.synced_block >= target && s.chain_routes >= want_routes {
            break;
        }
        if t_start.elapsed() > Duration::from_secs(600) {
            panic!(
                "no full sync within 600 s: {s:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start_to_fib = t_start.elapsed().as_secs_f64();
    let reconciler_s = reconciler_seconds(&log);
    progress(&format!("chainrouted: FIB complete {start_to_fib:.2} s after start (reconciler {reconciler_s:.2} s)"));

    // 3. One event at a time: settled -> in the FIB.
    let mut lat = Vec::new();
    let mut op_nonce = p.get_transaction_count(op_addr).await.unwrap();
    for e in 0..args.events {
        let k = n + e;
        let prefix = child(&root, k);
        let id = next + e as u64;
        op.nonce = op_nonce;
        let a = op
            .sign(
                Sender::subdivide(root_id, &prefix, op_addr, expiry),
                SUBDIVIDE_GAS,
            )
            .await;
        let b = op
            .sign(
                Sender::set_router(id, router_key, endpoint(k)),
                SET_ROUTER_GAS,
            )
            .await;
        op_nonce = op.nonce;
        p.send_raw_transaction(&a)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        p.send_raw_transaction(&b)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        // Let a poll pass on the unsettled head first, as it would on a live chain.
        tokio::time::sleep(Duration::from_millis(
            args.poll_ms / 2 + e as u64 * 37 % args.poll_ms,
        ))
        .await;
        let _: serde_json::Value = raw(&p, "anvil_mine", json!([args.confirmations])).await;
        let settled = Instant::now();
        let probe = Address::from(prefix.addr()).to_string();
        loop {
            let r = c
                .lookup_route(pb::LookupRouteRequest {
                    address: probe.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if r.found
                && r.route
                    .as_ref()
                    .is_some_and(|r| r.prefix == prefix.to_string())
            {
                break;
            }
            if settled.elapsed() > Duration::from_secs(60) {
                panic!("event {e}: {prefix} not in the FIB 60 s after it settled");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat.push(settled.elapsed().as_secs_f64() * 1000.0);
    }
    drop(router);
    let mut sorted = lat.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({
        "licenses": n,
        "load": {"seconds": load_s, "transactions": 2 * n as u64, "blocks": blocks, "first_block": first_block},
        "initial_sync": {
            "blocks": target + 1, "logs": logs, "page_blocks": args.page_blocks,
            "start_to_fib_s": start_to_fib, "first_synced_s": seen_sync, "reconciler_s": reconciler_s,
            "baseline_get_logs_s": baseline_s, "ratio_to_baseline": start_to_fib / baseline_s.max(1e-9),
            "target_s": 30.0
        },
        "event_to_fib": {
            "events": lat.len(), "median_ms": percentile(&sorted, 0.5), "p90_ms": percentile(&sorted, 0.9),
            "max_ms": sorted.last().copied().unwrap_or(0.0), "samples_ms": lat,
            "poll_interval_ms": args.poll_ms, "confirmations": args.confirmations, "target_ms": 1000.0
        }
    })
}

/// The reconciler's own figure from its log: "... sync to block B: ... in S s".
fn reconciler_seconds(log: &Path) -> f64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("initial sync to block"))
        .filter_map(|l| {
            l.rsplit(" in ")
                .next()?
                .trim()
                .trim_end_matches(" s")
                .parse()
                .ok()
        })
        .last()
        .unwrap_or(f64::NAN)
}

/// chainrouted on two net_null ports, following the chain as operator A.
fn router_config(
    args: &Args,
    dir: &Path,
    rpc: &str,
    dep: &Path,
    seed: &serde_json::Value,
    prefix: String,
) -> String {
    let op_a = &seed["operators"][0];
    format!(
        r#"{router}
[identity]
wallet = "{wallet}"
device_public_key = "{key}"

[chain]
rpc_url = "{rpc}"
deployment = "{dep}"
confirmations = {conf}
poll_interval_ms = {poll}
log_page_blocks = {page}
rpc_timeout_ms = 30000
underlay_port = "uplink"
underlay_mac = "02:00:00:00:00:01"
local = "127.0.0.1:5733"
local_next_hop = "lan"

[api]
socket = "{d}/api.sock"
"#,
        router = testbed::null_ports_config(&prefix),
        wallet = op_a["address"].as_str().unwrap(),
        key = op_a["routerKey"].as_str().unwrap(),
        dep = dep.display(),
        conf = args.confirmations,
        poll = args.poll_ms,
        page = args.page_blocks,
        d = dir.display(),
    )
}
