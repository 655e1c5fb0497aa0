//! A live test bed for the tests and benchmarks that need a real chain and a real
//! router: anvil on a free port, contracts/deploy and contracts/seed, chainrouted,
//! a gRPC client on its Unix socket. Every process started here is killed by a Drop
//! guard, even when the caller fails. Paths are those of a source checkout.

use crate::pb::{self, router_client::RouterClient};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

pub const DEPLOYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const OP_A_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
pub const OP_B_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// The root of the source checkout (contracts/ lives there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub struct Proc(pub Child, pub &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn anvil_bin() -> PathBuf {
    let bin = repo().join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        bin.exists(),
        "{} is missing: run contracts/setup.sh (make setup installs contracts/node_modules)",
        bin.display()
    );
    bin
}

/// Starts anvil on `port` (0: a free one); returns it and its URL.
pub fn anvil(port: u16, extra: &[&str]) -> (Proc, String) {
    let mut child = Command::new(anvil_bin())
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start anvil");
    let out = child.stdout.take().unwrap();
    let guard = Proc(child, "anvil");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("Listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("anvil printed `Listening on` within 30 s");
    (guard, format!("http://{addr}"))
}

/// Runs a command; panics with its output unless it succeeds.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `[dataplane]`, `[[ports]]` and `[[next_hops]]` of a chainrouted on two
/// net_null ports (`uplink`, `hosts`) with a local next hop `lan`: the router the
/// chain tests and benchmarks run; the caller appends the rest.
pub fn null_ports_config(file_prefix: &str) -> String {
    format!(
        r#"[dataplane]
lcores = "0-1"
memory_mb = 256
hugepages = false
pci = false
file_prefix = "{file_prefix}"
mbufs = 2047
stats_interval_s = 0

[[ports]]
name = "uplink"
device = "net_null0"

[[ports]]
name = "hosts"
device = "net_null1"

[[next_hops]]
name = "lan"
kind = "local"
port = "hosts"
mac = "02:00:00:00:00:99"
"#
    )
}

/// contracts/deploy and contracts/seed; returns (deployment.json, seed.json).
pub fn deploy_and_seed(rpc: &str, dir: &Path) -> (PathBuf, serde_json::Value) {
    let dep = dir.join("deployment.json");
    let seed = dir.join("seed.json");
    let deploy = repo().join("contracts/deploy");
    let seed_bin = repo().join("contracts/seed");
    sh(&[
        deploy.to_str().unwrap(),
        "--rpc",
        rpc,
        "--key",
        DEPLOYER_KEY,
        "--out",
        dep.to_str().unwrap(),
    ]);
    sh(&[
        seed_bin.to_str().unwrap(),
        "--rpc",
        rpc,
        "--key",
        DEPLOYER_KEY,
        "--deployment",
        dep.to_str().unwrap(),
        "--out",
        seed.to_str().unwrap(),
    ]);
    let v = serde_json::from_str(&std::fs::read_to_string(&seed).unwrap()).unwrap();
    (dep, v)
}

/// Starts the chainrouted binary `bin` on `config`, its log to `log`.
pub fn start_router(bin: &Path, config: &Path, log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start chainrouted");
    Proc(child, "chainrouted")
}

pub async fn client(socket: &Path) -> RouterClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = socket.to_path_buf();
        let ch = Endpoint::try_from("http://localhost")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await;
        match ch {
            Ok(ch) => return RouterClient::new(ch),
            Err(e) if Instant::now() > deadline => panic!("no API on {}: {e}", socket.display()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn routes(c: &mut RouterClient<Channel>) -> Vec<pb::Route> {
    let mut s = c
        .list_routes(pb::ListRoutesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = s.message().await.unwrap() {
        out.push(r);
    }
    out
}

pub async fn status(c: &mut RouterClient<Channel>) -> pb::StatusResponse {
    c.status(pb::StatusRequest {}).await.unwrap().into_inner()
}

/// Starts anvil without its per-transaction log (for bulk loads) on a free port;
/// returns it and its URL once it answers.
pub fn anvil_quiet(extra: &[&str]) -> (Proc, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(anvil_bin())
        .args([
            "--quiet",
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start anvil");
    let guard = Proc(child, "anvil");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "anvil did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, format!("http://127.0.0.1:{port}"))
}
