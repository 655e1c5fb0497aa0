//! chainroute: the operator's console, a thin gRPC client of chainrouted (like
//! `gobgp` for `gobgpd`). Every command prints the API's messages: as text, or as
//! JSON with `-j` (`monitor` prints one JSON object per line).

use chainroute_mgmt::pb::{self, router_client::RouterClient};
use futures::StreamExt;
use serde::Serialize;
use std::process::ExitCode;
use tonic::transport::{Channel, Endpoint};

const USAGE: &str = "usage: chainroute [--target URI] [-j|--json] COMMAND
  --target URI      unix:///run/chainroute/api.sock (default) or https://HOST:PORT
  --ca FILE         (https) CA that signed the server's certificate
  --cert FILE --key FILE   (https) client certificate
  --token FILE      (https) bearer token
  -j, --json        print JSON (the API's messages as they are)
commands:
  status                         daemon, dataplane and chain state
  health                         grpc.health.v1 status of the daemon
  routes                         every route in the FIB
  route lookup ADDRESS           longest-prefix match (W3IP text or 0x wallet)
  route add PREFIX NEXT_HOP      static route to a [[next_hops]] name or \"blackhole\"
  route del PREFIX               delete a static route
  licenses [--valid]             SegmentLicense state from chain
  peers                          tunnel peers and the prefixes they may source
  bindings                       verified wallet bindings
  stats                          counters per port, per core, drops by reason
  monitor                        route and chain events as JSON lines (snapshot, sync, changes)
  resolve NAME                   ENS name or wallet -> wallet, locators, device keys";

struct Opts {
    target: String,
    json: bool,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    token: Option<String>,
    cmd: Vec<String>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        target: "unix:///run/chainroute/api.sock".into(),
        json: false,
        ca: None,
        cert: None,
        key: None,
        token: None,
        cmd: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--target" => o.target = val("--target")?,
            "--ca" => o.ca = Some(val("--ca")?),
            "--cert" => o.cert = Some(val("--cert")?),
            "--key" => o.key = Some(val("--key")?),
            "--token" => o.token = Some(val("--token")?),
            "-j" | "--json" => o.json = true,
            "-h" | "--help" => return Err(String::new()),
            _ => o.cmd.push(a),
        }
    }
    if o.cmd.is_empty() {
        return Err("no command".into());
    }
    Ok(o)
}

async fn connect(o: &Opts) -> Result<Channel, String> {
    if let Some(path) = o.target.strip_prefix("unix://") {
        let path = path.to_string();
        // The URI is a placeholder: the connector dials the socket.
        return Endpoint::try_from("http://localhost")
            .map_err(|e| e.to_string())?
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| format!("cannot connect to {}: {}", o.target, source_chain(&e)));
    }
    if o.target.starts_with("https://") {
        let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &o.ca {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        if let (Some(c), Some(k)) = (&o.cert, &o.key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(read(c)?, read(k)?));
        }
        return Endpoint::try_from(o.target.clone())
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {}", o.target, source_chain(&e)));
    }
    Err(format!(
        "--target {:?}: use unix:///path or https://host:port (the TCP API only speaks TLS)",
        o.target
    ))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn print_json<T: Serialize>(v: &T, pretty: bool) {
    let s = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    };
    println!("{}", s.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
}

fn hop_text(h: &Option<pb::NextHop>) -> String {
    match h {
        None => "-".into(),
        Some(h) => match h.kind.as_str() {
            "local" => format!("local {} mac {}", h.port, h.mac),
            "tunnel" => format!(
                "tunnel {} -> {} via {} ({})",
                h.local, h.remote, h.port, h.mac
            ),
            k => k.to_string(),
        },
    }
}

fn route_text(r: &pb::Route) -> String {
    let src = match r.source.as_str() {
        "chain" => format!("chain#{}", r.license_id),
        "static" => format!("static:{}", r.next_hop_name),
        s => s.to_string(),
    };
    format!("{:<44} {:<16} {}", r.prefix, src, hop_text(&r.next_hop))
}

type Client =
    RouterClient<tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>>;

#[derive(Clone)]
struct TokenInterceptor(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

async fn collect<T>(
    s: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<Vec<T>, tonic::Status> {
    let mut s = s?.into_inner();
    let mut out = Vec::new();
    while let Some(x) = s.next().await {
        out.push(x?);
    }
    Ok(out)
}

async fn run(o: Opts) -> Result<(), String> {
    let channel = connect(&o).await?;
    let token = match &o.token {
        None => None,
        Some(f) => {
            let t = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
            Some(
                format!("Bearer {}", t.trim())
                    .parse()
                    .map_err(|_| format!("{f}: not a valid token"))?,
            )
        }
    };
    let interceptor = TokenInterceptor(token);
    let mut c: Client = RouterClient::with_interceptor(channel.clone(), interceptor.clone());
    let st = |e: tonic::Status| format!("{:?}: {}", e.code(), e.message());
    let cmd: Vec<&str> = o.cmd.iter().map(String::as_str).collect();
    let j = o.json;
    match cmd.as_slice() {
        ["status"] => {
            let s = c
                .status(pb::StatusRequest {})
                .await
                .map_err(st)?
                .into_inner();
            if j {
                return Ok(print_json(&s, true));
            }
            println!(
                "chainrouted {}: {} (up {} s)",
                s.version, s.state, s.uptime_seconds
            );
            println!(
                "dataplane: {} ({} ports, {} workers)",
                if s.dataplane_up { "up" } else { "down" },
                s.ports,
                s.workers
            );
            println!(
                "routes: {} ({} static, {} chain)",
                s.routes, s.static_routes, s.chain_routes
            );
            if !s.router_wallet.is_empty() || !s.device_key.is_empty() {
                println!(
                    "identity: wallet {} device key {}",
                    s.router_wallet, s.device_key
                );
            }
            if let Some(ch) = s.chain.filter(|c| c.enabled) {
                println!(
                    "chain: {} chain id {} follow {}: head {} settled {} synced {}{}{}",
                    ch.rpc_url,
                    ch.chain_id,
                    ch.follow,
                    ch.head_block,
                    ch.finalized_block,
                    ch.synced_block,
                    if ch.synced { "" } else { " (initial sync)" },
                    if ch.degraded { " DEGRADED" } else { "" }
                );
                if !ch.synced {
                    println!("  initial sync {:.0} %", ch.progress * 100.0);
                }
                if !ch.last_error.is_empty() {
                    println!("  last error: {}", ch.last_error);
                }
                println!(
                    "  licenses {} ({} valid), device keys {}, reorgs {}, serial {}",
                    ch.licenses, ch.valid_licenses, ch.device_keys, ch.reorgs, ch.serial
                );
            }
        }
        ["health"] => {
            let mut h = tonic_health::pb::health_client::HealthClient::with_interceptor(
                channel,
                interceptor,
            );
            let r = h
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(st)?
                .into_inner();
            let name = tonic_health::pb::health_check_response::ServingStatus::try_from(r.status)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN");
            if j {
                print_json(&serde_json::json!({ "status": name }), true);
            } else {
                println!("{name}");
            }
        }
        ["routes"] | ["route", "list"] => {
            let routes = collect(c.list_routes(pb::ListRoutesRequest {}).await)
                .await
                .map_err(st)?;
            if j {
                return Ok(print_json(&routes, true));
            }
            for r in &routes {
                println!("{}", route_text(r));
            }
        }
        ["route", "lookup", addr] => {
            let r = c
                .lookup_route(pb::LookupRouteRequest {
                    address: addr.to_string(),
                })
                .await
                .map_err(st)?
                .into_inner();
            if j {
                return Ok(print_json(&r, true));
            }
            match &r.route {
                Some(route) if r.found => println!("{}", route_text(route)),
                _ => println!("no route"),
            }
        }
        ["route", "add", prefix, hop] => {
            let r = c
                .add_static_route(pb::AddStaticRouteRequest {
                    prefix: prefix.to_string(),
                    next_hop: hop.to_string(),
                })
                .await
                .map_err(st)?
                .into_inner();
            if j {
                return Ok(print_json(&r, true));
            }
            println!(
                "{} {prefix} -> {hop}",
                if r.replaced { "replaced" } else { "added" }
            );
        }
        ["route", "del" | "delete", prefix] => {
            let r = c
                .delete_static_route(pb::DeleteStaticRouteRequest {
                    prefix: prefix.to_string(),
                })
                .await
                .map_err(st)?
                .into_inner();
            if j {
                return Ok(print_json(&r, true));
            }
            println!("deleted {prefix}");
        }
        ["licenses", rest @ ..] => {
            let valid_only = rest.contains(&"--valid");
            let ls = collect(
                c.list_licenses(pb::ListLicensesRequest { valid_only })
                    .await,
            )
            .await
            .map_err(st)?;
            if j {
                return Ok(print_json(&ls, true));
            }
            for l in &ls {
                let state = if l.revoked {
                    "revoked"
                } else if l.valid {
                    "valid"
                } else {
                    "invalid"
                };
                println!(
                    "#{:<5} {:<44} {:<8}{} holder {} parent {} expiry {} endpoints [{}]",
                    l.id,
                    l.prefix,
                    state,
                    if l.own { " own" } else { "" },
                    l.holder,
                    l.parent_id,
                    l.expiry_unix,
                    l.endpoints.join(", ")
                );
            }
        }
        ["peers"] => {
            let ps = collect(c.list_peers(pb::ListPeersRequest {}).await)
                .await
                .map_err(st)?;
            if j {
                return Ok(print_json(&ps, true));
            }
            for p in &ps {
                println!(
                    "{:<28} key {} prefixes {}",
                    p.endpoint,
                    p.router_key,
                    p.prefixes.join(" ")
                );
            }
        }
        ["bindings"] => {
            let bs = collect(c.list_bindings(pb::ListBindingsRequest {}).await)
                .await
                .map_err(st)?;
            if j {
                return Ok(print_json(&bs, true));
            }
            for b in &bs {
                println!(
                    "{} at {} via {} until {} seq {}",
                    b.wallet, b.unicast, b.ingress_port, b.expires_unix, b.seq
                );
            }
        }
        ["stats"] => {
            let s = c
                .get_stats(pb::GetStatsRequest {})
                .await
                .map_err(st)?
                .into_inner();
            if j {
                return Ok(print_json(&s, true));
            }
            for p in &s.ports {
                println!("port {} {} ({}) link {}: rx {} pkts {} B, tx {} pkts {} B; device missed {} errors {}/{} nombuf {}", p.index, p.name, p.mac, if p.link_up { "up" } else { "down" }, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, p.hw_rx_missed, p.hw_rx_errors, p.hw_tx_errors, p.hw_rx_nombuf);
            }
            for k in &s.cores {
                println!(
                    "lcore {} (queue {}): loops {} busy {} rx {} tx {} drops {}; stalls {} (longest loop {:.1} us)",
                    k.lcore, k.queue, k.loops, k.busy_loops, k.rx_packets, k.tx_packets, k.drops, k.stalls, k.longest_loop_ns as f64 / 1e3
                );
            }
            let drops: Vec<String> = s
                .drops
                .iter()
                .filter(|d| d.packets > 0)
                .map(|d| format!("{}={}", d.reason, d.packets))
                .collect();
            println!(
                "drops: {}",
                if drops.is_empty() {
                    "none".into()
                } else {
                    drops.join(" ")
                }
            );
            println!("mbufs: {}/{} free", s.mbufs_free, s.mbufs_size);
        }
        ["monitor"] => {
            let mut s = c
                .watch_events(pb::WatchEventsRequest {})
                .await
                .map_err(st)?
                .into_inner();
            while let Some(e) = s.next().await {
                print_json(&e.map_err(st)?, false);
            }
        }
        ["resolve", name] => {
            let r = c
                .resolve(pb::ResolveRequest {
                    name: name.to_string(),
                })
                .await
                .map_err(st)?
                .into_inner();
            if j {
                return Ok(print_json(&r, true));
            }
            println!("{} -> {} (anycast {})", r.name, r.wallet, r.anycast);
            for l in &r.locators {
                println!("  {} {} [{}]", l.kind, l.address, l.endpoints.join(", "));
            }
            for k in &r.device_keys {
                println!("  device key {} valid to {}", k.public_key, k.valid_to_unix);
            }
        }
        _ => return Err(format!("unknown command {:?}\n{USAGE}", o.cmd.join(" "))),
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chainroute: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chainroute: {e}");
            ExitCode::FAILURE
        }
    }
}
