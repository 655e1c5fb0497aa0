//! The reconciler against a live anvil: deploy, seed two operators (roots, a
//! subdivision, endpoints), start chainrouted on net_null vdevs, and check through the
//! API that the FIB equals the licenses; then subdivide, revoke, expire, transfer,
//! a stalled RPC (degraded, FIB kept), a reorg (undone in the FIB), a restart from the
//! snapshot; the console, grpcurl by reflection, JSON-RPC, /metrics, and the TCP API's
//! access control (TLS + client certificate or token; nobody else gets anything).

mod common;

use alloy::primitives::{Address as EthAddress, FixedBytes, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use chainroute_mgmt::chain::{decode_endpoints, SegmentLicense};
use chainroute_mgmt::pb;
use chainroute_wire::{Address, Prefix};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CONFIRMATIONS: u64 = 2;

fn wallet_provider(rpc: &str, key: &str) -> impl Provider + Clone {
    let signer: PrivateKeySigner = key.parse().unwrap();
    ProviderBuilder::new()
        .wallet(signer)
        .connect_http(rpc.parse().unwrap())
}

async fn mine(p: &impl Provider, n: u64) {
    let _: serde_json::Value = p.raw_request("anvil_mine".into(), (n,)).await.unwrap();
}

/// The FIB the licenses ask for, read straight from the contract's views.
async fn expected_fib(
    p: &impl Provider,
    lic: EthAddress,
    my_key: [u8; 32],
) -> BTreeMap<String, String> {
    let c = SegmentLicense::new(lic, p);
    let next: U256 = c.nextId().call().await.unwrap();
    let mut out = BTreeMap::new();
    for id in 1..next.to::<u64>() {
        let id = U256::from(id);
        if !c.isValid(id).call().await.unwrap() {
            continue;
        }
        let seg = c.segment(id).call().await.unwrap();
        let r = c.router(id).call().await.unwrap();
        let prefix = Prefix::new(Address(seg.prefix.0), seg.prefixLen)
            .unwrap()
            .to_string();
        if r.routerKey.0 == my_key {
            out.insert(prefix, "local".to_string());
        } else if let Some(e) = decode_endpoints(&r.endpoints)
            .unwrap()
            .iter()
            .find(|e| e.is_ipv4())
        {
            out.insert(prefix, format!("tunnel {e}"));
        }
    }
    out
}

fn fib_of(routes: &[pb::Route]) -> BTreeMap<String, String> {
    routes
        .iter()
        .filter(|r| r.source == "chain")
        .map(|r| {
            let h = r.next_hop.clone().unwrap();
            (
                r.prefix.clone(),
                if h.kind == "local" {
                    "local".to_string()
                } else {
                    format!("{} {}", h.kind, h.remote)
                },
            )
        })
        .collect()
}

fn sh(cmd: &str) -> String {
    let out = Command::new("bash").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn certs(dir: &Path) {
    let d = dir.display();
    sh(&format!(
        "set -e; cd {d}
        ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'
        openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=chainroute-test-ca 2>/dev/null
        openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
        openssl req $ec -keyout client.key -out client.csr -subj /CN=operator 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null
        openssl req -x509 $ec -keyout rogue.key -out rogue.pem -days 2 -subj /CN=rogue 2>/dev/null
        echo s3cret-operator-token > token
        echo wrong-token > wrong-token"
    ));
}

fn log_value(log: &Path, prefix: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find_map(|l| l.split(prefix).nth(1))
        .map(|s| {
            s.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches("/metrics")
                .to_string()
        })
        .unwrap_or_default()
}

fn console(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chainroute"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fib_follows_the_licenses_on_a_live_chain() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("chainroute-chain-live-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (anvil, rpc) = anvil(0, &[]);
    eprintln!("anvil at {rpc}");
    let (dep, seed) = deploy_and_seed(&rpc, &dir);
    let lic: EthAddress =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&dep).unwrap()).unwrap()
            ["contracts"]["SegmentLicense"]["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let op_a = &seed["operators"][0];
    let op_b = &seed["operators"][1];
    let key_a = op_a["routerKey"].as_str().unwrap();
    let mut my_key = [0u8; 32];
    for i in 0..32 {
        my_key[i] = u8::from_str_radix(&key_a[2 + 2 * i..4 + 2 * i], 16).unwrap();
    }
    certs(&dir);
    let socket = dir.join("api.sock");
    let d = dir.display();
    let config = format!(
        r#"{router}
[[routes]]
prefix = "3000::/16"
next_hop = "lan"

[identity]
wallet = "{wallet}"
device_public_key = "{key_a}"

[chain]
rpc_url = "{rpc}"
deployment = "{dep}"
confirmations = {CONFIRMATIONS}
poll_interval_ms = 200
rpc_timeout_ms = 1000
snapshot = "{d}/snapshot.json"
underlay_port = "uplink"
underlay_mac = "02:00:00:00:00:01"
local = "127.0.0.1:5733"
local_next_hop = "lan"

[api]
socket = "{d}/api.sock"
tcp = "127.0.0.1:0"
tls_cert = "{d}/server.pem"
tls_key = "{d}/server.key"
client_ca = "{d}/ca.pem"
token_file = "{d}/token"

[metrics]
listen = "127.0.0.1:0"

[jsonrpc]
listen = "127.0.0.1:0"
"#,
        router = null_ports_config(&format!("chain-live-{pid}")),
        wallet = op_a["address"].as_str().unwrap(),
        dep = dep.display(),
    );
    let cfg_path = dir.join("chainroute.toml");
    std::fs::write(&cfg_path, &config).unwrap();
    let log = dir.join("chainrouted.log");
    let mut router = start_router(&cfg_path, &log);
    let mut c = client(&socket).await;

    // 1. Initial sync: the FIB equals the licenses.
    let p = alloy::providers::ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    mine(&p, CONFIRMATIONS).await;
    let head = p.get_block_number().await.unwrap();
    wait_for(30, "first chain sync", &log, || {
        let mut c = c.clone();
        async move {
            let s = status(&mut c).await;
            s.state == "serving" && s.chain.unwrap().synced_block >= head - CONFIRMATIONS
        }
    })
    .await;
    let want = expected_fib(&p, lic, my_key).await;
    assert_eq!(want.len(), 3, "seed: two roots and a subdivision: {want:?}");
    assert_eq!(
        want.get("2001::/16").map(String::as_str),
        Some("local"),
        "our own root routes locally"
    );
    assert_eq!(
        want.get("2001:db8::/32").map(String::as_str),
        Some("tunnel 127.0.0.1:5734")
    );
    assert_eq!(
        fib_of(&routes(&mut c).await),
        want,
        "the FIB equals the licenses"
    );
    assert!(routes(&mut c)
        .await
        .iter()
        .any(|r| r.prefix == "3000::/16" && r.source == "static"));
    let st = status(&mut c).await;
    let chain = st.chain.clone().unwrap();
    assert!(
        chain.synced && !chain.degraded && chain.licenses == 3 && chain.valid_licenses == 3,
        "{st:?}"
    );
    assert_eq!(chain.device_keys, 1, "the seeded ERC-1056 Ed25519 key");

    // The console, reflection (grpcurl) and health.
    let target = format!("unix://{}", socket.display());
    let (ok, out, err) = console(&["--target", &target, "-j", "routes"]);
    assert!(ok, "{err}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 4, "{out}");
    let (ok, out, err) = console(&["--target", &target, "status"]);
    assert!(
        ok && out.contains("serving") && out.contains("licenses 3 (3 valid)"),
        "{out}{err}"
    );
    let (ok, out, _) = console(&["--target", &target, "health"]);
    assert!(ok && out.trim() == "SERVING", "{out}");
    let (ok, out, err) = console(&[
        "--target",
        &target,
        "-j",
        "route",
        "lookup",
        "2001:db8:1::1",
    ]);
    assert!(
        ok && out.contains("\"remote\": \"127.0.0.1:5734\""),
        "{out}{err}"
    );
    let (ok, out, err) = console(&["--target", &target, "resolve", "alice.eth"]);
    let alice = seed["names"][0]["address"].as_str().unwrap();
    assert!(
        ok && out.contains(alice) && out.contains("device key 0x"),
        "{out}{err}"
    );
    let (ok, out, _) = console(&["--target", &target, "-j", "stats"]);
    assert!(
        ok && out.contains("\"no_route\"") && out.contains("\"uplink\""),
        "{out}"
    );
    let (ok, _, err) = console(&["--target", &target, "route", "add", "3001::/16", "nope"]);
    assert!(!ok && err.contains("InvalidArgument"), "{err}");
    assert!(
        console(&[
            "--target",
            &target,
            "route",
            "add",
            "3001::/16",
            "blackhole"
        ])
        .0
    );
    assert!(console(&["--target", &target, "route", "del", "3001::/16"]).0);
    if Command::new("grpcurl").arg("-version").output().is_ok() {
        let sock = socket.display().to_string();
        let list = sh(&format!(
            "grpcurl -plaintext -authority localhost -unix {sock} list"
        ));
        assert!(
            list.contains("chainroute.v1.Router") && list.contains("grpc.health.v1.Health"),
            "{list}"
        );
        let r = sh(&format!("grpcurl -plaintext -authority localhost -unix -d '{{\"address\":\"2002::1\"}}' {sock} chainroute.v1.Router/LookupRoute"));
        assert!(
            r.contains("2002::/16") && r.contains("127.0.0.1:5734"),
            "{r}"
        );
        let h = sh(&format!(
            "grpcurl -plaintext -authority localhost -unix {sock} grpc.health.v1.Health/Check"
        ));
        assert!(h.contains("SERVING"), "{h}");
    } else {
        eprintln!("grpcurl not installed (scripts/setup.sh installs it): reflection check skipped");
    }
    // Socket permissions: owner only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // JSON-RPC and metrics.
    let rpc_addr = log_value(&log, "jsonrpc: http://");
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"chainroute_lookupRoute","params":["2001:db8::5"]}"#;
    let r = sh(&format!("python3 -c \"import urllib.request,sys;print(urllib.request.urlopen(urllib.request.Request('http://{rpc_addr}',data=sys.argv[1].encode(),headers={{'Content-Type':'application/json'}})).read().decode())\" '{body}'"));
    assert!(
        r.contains("2001:db8::/32") && r.contains("127.0.0.1:5734"),
        "{r}"
    );
    let m = http_get(&log_value(&log, "metrics: http://"), "/metrics");
    for needle in [
        "chainroute_port_rx_packets_total{port=\"uplink\"}",
        "chainroute_drops_total{reason=\"no_route\"}",
        "chainroute_worker_stalls_total{lcore=",
        "chainroute_worker_longest_loop_seconds{lcore=",
        "chainroute_licenses 3",
        "chainroute_build_info{version=",
        "chainroute_routes{source=\"chain\"} 3",
        "# EOF",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}: {m}");
    }
    // Routes quiet for half a second: the workers search the LPM's snapshot.
    let metrics = log_value(&log, "metrics: http://");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = http_get(&metrics, "/metrics");
        if m.contains("\nchainroute_lookup_snapshot 1\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no lookup snapshot published: {m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // TCP: only TLS with a client certificate from client_ca, or the token.
    let tcp = log_value(&log, "gRPC on tcp://");
    let https = format!("https://{tcp}");
    let ca = format!("{d}/ca.pem");
    let (ok, _, err) = console(&["--target", &https, "--ca", &ca, "status"]);
    assert!(
        !ok && err.contains("Unauthenticated"),
        "no credentials: {err}"
    );
    let (ok, _, err) = console(&[
        "--target",
        &https,
        "--ca",
        &ca,
        "--token",
        &format!("{d}/wrong-token"),
        "routes",
    ]);
    assert!(!ok && err.contains("Unauthenticated"), "wrong token: {err}");
    let (ok, out, err) = console(&[
        "--target",
        &https,
        "--ca",
        &ca,
        "--cert",
        &format!("{d}/rogue.pem"),
        "--key",
        &format!("{d}/rogue.key"),
        "routes",
    ]);
    assert!(
        !ok && out.is_empty(),
        "a certificate from another CA gets nothing: {out}{err}"
    );
    let (ok, out, err) = console(&[
        "--target",
        &https,
        "--ca",
        &ca,
        "--token",
        &format!("{d}/wrong-token"),
        "health",
    ]);
    assert!(!ok && out.is_empty(), "health is protected too: {out}{err}");
    let (ok, out, err) = console(&[
        "--target",
        &https,
        "--ca",
        &ca,
        "--cert",
        &format!("{d}/client.pem"),
        "--key",
        &format!("{d}/client.key"),
        "status",
    ]);
    assert!(
        ok && out.contains("serving"),
        "client certificate: {out}{err}"
    );
    let (ok, out, err) = console(&[
        "--target",
        &https,
        "--ca",
        &ca,
        "--token",
        &format!("{d}/token"),
        "status",
    ]);
    assert!(ok && out.contains("serving"), "token: {out}{err}");

    // WatchEvents: snapshot, sync, then changes.
    let mut events = c
        .watch_events(pb::WatchEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut snapshot = 0;
    loop {
        let e = events.message().await.unwrap().unwrap();
        if e.r#type == "sync" {
            break;
        }
        assert_eq!(e.r#type, "route_added");
        snapshot += 1;
    }
    assert_eq!(snapshot, 4);

    let cc = c.clone();
    let converge = |what: &'static str| {
        let p = p.clone();
        let c = cc.clone();
        let log = log.clone();
        async move {
            mine(&p, CONFIRMATIONS).await;
            let want = expected_fib(&p, lic, my_key).await;
            wait_for(20, what, &log, || {
                let mut c = c.clone();
                let want = want.clone();
                async move { fib_of(&routes(&mut c).await) == want }
            })
            .await;
            want
        }
    };

    // 2. Subdivide: op-b cuts 2002:1::/32 out of its root and names its router.
    let pb_ = wallet_provider(&rpc, OP_B_KEY);
    let lb = SegmentLicense::new(lic, &pb_);
    let expiry: u64 = seed["segments"][1]["expiry"].as_u64().unwrap();
    let prefix: Prefix = "2002:1::/32".parse().unwrap();
    let rc = lb
        .subdivide(
            U256::from(2),
            FixedBytes(prefix.addr().0),
            32,
            op_b["address"].as_str().unwrap().parse().unwrap(),
            expiry,
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(rc.status());
    let child = U256::from(4);
    let eps = hex_decode("0x0000000000000000000000000000000000000000000000000000000000000020000000000000000000000000000000000000000000000000000000000000000100000000000000000000000000000000000000000000000000000000000000047f000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001667");
    let key_b: FixedBytes<32> = op_b["routerKey"].as_str().unwrap().parse().unwrap();
    lb.setRouter(child, key_b, eps.into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let want = converge("subdivide").await;
    assert_eq!(
        want.get("2002:1::/32").map(String::as_str),
        Some("tunnel 127.0.0.1:5735")
    );
    // Its event reached the watcher.
    loop {
        let e = events.message().await.unwrap().unwrap();
        if e.r#type == "route_added" && e.route.as_ref().unwrap().prefix == "2002:1::/32" {
            break;
        }
    }

    // 3. Revoke: op-a revokes the subdivision it sold to op-b.
    let pa = wallet_provider(&rpc, OP_A_KEY);
    let la = SegmentLicense::new(lic, &pa);
    la.revoke(U256::from(3))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let want = converge("revoke").await;
    assert!(!want.contains_key("2001:db8::/32"));

    // 4. Expire: op-b shortens its child's life, time passes on chain.
    let now = p
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    lb.renew(child, now + 5)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let _: serde_json::Value = p
        .raw_request("evm_increaseTime".into(), (30u64,))
        .await
        .unwrap();
    let want = converge("expiry").await;
    assert!(!want.contains_key("2002:1::/32"));

    // 5. Transfer: op-b sells its root to op-a; the router is cleared, then op-a serves it.
    lb.transferFrom(
        op_b["address"].as_str().unwrap().parse().unwrap(),
        op_a["address"].as_str().unwrap().parse().unwrap(),
        U256::from(2),
    )
    .send()
    .await
    .unwrap()
    .get_receipt()
    .await
    .unwrap();
    let want = converge("transfer clears the router").await;
    assert!(!want.contains_key("2002::/16"));
    let key_a_b: FixedBytes<32> = key_a.parse().unwrap();
    let eps_a = hex_decode(seed["segments"][0]["endpointsEncoded"].as_str().unwrap());
    la.setRouter(U256::from(2), key_a_b, eps_a.into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let want = converge("new holder's router").await;
    assert_eq!(want.get("2002::/16").map(String::as_str), Some("local"));

    // 6. The RPC stalls (anvil stopped): the FIB is kept and Status says degraded.
    let before = fib_of(&routes(&mut c).await);
    let anvil_pid = anvil.0.id().to_string();
    sh(&format!("kill -STOP {anvil_pid}"));
    wait_for(20, "degraded", &log, || {
        let mut c = c.clone();
        async move {
            let s = status(&mut c).await;
            s.state == "degraded" && s.chain.unwrap().degraded
        }
    })
    .await;
    assert_eq!(
        fib_of(&routes(&mut c).await),
        before,
        "the last good FIB is kept"
    );
    sh(&format!("kill -CONT {anvil_pid}"));
    wait_for(20, "resync after the RPC is back", &log, || {
        let mut c = c.clone();
        async move { status(&mut c).await.state == "serving" }
    })
    .await;
    assert_eq!(converge("after the outage").await, before);

    // 7. A reorg: the deployer revokes op-a's root, then the chain forgets it.
    let snap: serde_json::Value = p.raw_request("evm_snapshot".into(), ()).await.unwrap();
    let pd = wallet_provider(&rpc, DEPLOYER_KEY);
    SegmentLicense::new(lic, &pd)
        .revoke(U256::from(1))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let want = converge("revoked root").await;
    assert!(!want.contains_key("2001::/16"));
    let reverted: bool = p.raw_request("evm_revert".into(), (snap,)).await.unwrap();
    assert!(reverted);
    mine(&p, 3).await;
    let want = converge("reorg undone").await;
    assert_eq!(want, before, "the reorganised chain is the old one");
    let st = status(&mut c).await;
    assert!(st.chain.unwrap().reorgs >= 1, "a reorg was seen");

    // 8. Restart from the snapshot while the RPC is down: routes at once.
    sh(&format!("kill -TERM {}", router.0.id()));
    let status_code = router.0.wait().unwrap();
    assert!(
        status_code.success(),
        "chainrouted exits 0 on SIGTERM: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    sh(&format!("kill -STOP {anvil_pid}"));
    let log2 = dir.join("chainrouted-2.log");
    let _router2 = start_router(&cfg_path, &log2);
    let mut c2 = client(&socket).await;
    wait_for(20, "routes from the snapshot", &log2, || {
        let mut c2 = c2.clone();
        let before = before.clone();
        async move { fib_of(&routes(&mut c2).await) == before }
    })
    .await;
    let s = status(&mut c2).await;
    assert_ne!(
        s.state, "serving",
        "not serving before the chain confirms the snapshot: {s:?}"
    );
    sh(&format!("kill -CONT {anvil_pid}"));
    wait_for(20, "serving after the restart", &log2, || {
        let mut c2 = c2.clone();
        async move { status(&mut c2).await.state == "serving" }
    })
    .await;
    drop(anvil);
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex_decode(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn bad_config_files_give_clear_errors() {
    let dir = std::env::temp_dir().join(format!("chainroute-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = "[dataplane]\nlcores = \"0-1\"\n[[ports]]\nname = \"p\"\ndevice = \"net_null0\"\n";
    let cases = [
        ("[chain]\nrpc_url = \"ws://x\"\nsegment_license = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n", "chain.rpc_url"),
        ("[chain]\nrpc_url = \"http://x\"\n", "chain: needs `deployment`"),
        ("[chain]\nrpc_url = \"http://x\"\nsegment_license = \"0x12\"\n", "chain.segment_license"),
        ("[chain]\nrpc_url = \"http://x\"\ndeployment = \"/nonexistent.json\"\n", "chain.deployment: cannot read"),
        ("[chain]\nrpc_url = \"http://x\"\nsegment_license = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nunderlay_port = \"p\"\n", "chain.underlay_mac"),
        ("[chain]\nrpc_url = \"http://x\"\nsegment_license = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nconfirmations = \"two\"\n", "chain.confirmations"),
        ("[api]\nsocket_mode = \"0666\"\n", "api.socket_mode"),
        ("[api]\ntcp = \"127.0.0.1:50051\"\n", "api.tls_cert"),
        ("[identity]\nwallet = \"0x1234\"\n", "identity.wallet"),
        ("[metrics]\nlisten = \"nowhere\"\n", "metrics.listen"),
    ];
    for (i, (extra, want)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_chainrouted"))
            .arg("--config")
            .arg(&path)
            .arg("--check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "case {i}: {err}");
        assert!(err.contains(want), "case {i}: want {want:?} in {err:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = Duration::ZERO;
}
