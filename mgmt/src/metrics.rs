//! `/metrics` in the OpenMetrics text format: per-port and per-core counters, drops by
//! reason, worker loop figures, the chain's head/finalized/synced blocks, license and
//! route counts, and `chainroute_build_info`. A deliberately small HTTP/1.1 server:
//! one GET per connection.

use crate::state::Shared;
use chainroute_dataplane::DropReason;
use std::fmt::Write as _;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Renders every metric.
pub fn render(shared: &Shared) -> String {
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# TYPE {name} {kind}\n# HELP {name} {help}");
    };
    family(
        &mut o,
        "chainroute_build",
        "info",
        "Version of chainrouted.",
    );
    let _ = writeln!(
        o,
        "chainroute_build_info{{version=\"{}\"}} 1",
        crate::VERSION
    );

    let dp = shared.dataplane.read().unwrap();
    let mut total = chainroute_dataplane::CounterSnapshot::default();
    for c in &dp.counters {
        total.add(c);
    }
    type PortFig = fn(&chainroute_dataplane::CounterSnapshot, usize) -> u64;
    let port_figs: [(&str, &str, PortFig); 4] = [
        (
            "chainroute_port_rx_packets",
            "Frames received, by port.",
            |t, i| t.rx_packets[i],
        ),
        (
            "chainroute_port_rx_bytes",
            "Bytes received, by port.",
            |t, i| t.rx_bytes[i],
        ),
        (
            "chainroute_port_tx_packets",
            "Frames sent, by port.",
            |t, i| t.tx_packets[i],
        ),
        (
            "chainroute_port_tx_bytes",
            "Bytes sent, by port.",
            |t, i| t.tx_bytes[i],
        ),
    ];
    for (name, help, f) in port_figs {
        family(&mut o, name, "counter", help);
        for p in &dp.ports {
            let _ = writeln!(
                o,
                "{name}_total{{port=\"{}\"}} {}",
                esc(&p.name),
                f(&total, p.index as usize)
            );
        }
    }
    type HwFig = fn(&chainroute_dataplane::io::EthStats) -> u64;
    let hw: [(&str, &str, HwFig); 4] = [
        (
            "chainroute_port_rx_missed",
            "Frames the device dropped for lack of RX descriptors.",
            |s| s.imissed,
        ),
        (
            "chainroute_port_rx_errors",
            "Erroneous frames received (device).",
            |s| s.ierrors,
        ),
        (
            "chainroute_port_tx_errors",
            "Failed transmissions (device).",
            |s| s.oerrors,
        ),
        (
            "chainroute_port_rx_nombuf",
            "RX mbuf allocation failures (device).",
            |s| s.rx_nombuf,
        ),
    ];
    for (name, help, f) in hw {
        family(&mut o, name, "counter", help);
        for p in &dp.ports {
            let _ = writeln!(
                o,
                "{name}_total{{port=\"{}\"}} {}",
                esc(&p.name),
                f(&p.stats)
            );
        }
    }
    family(
        &mut o,
        "chainroute_port_link_up",
        "gauge",
        "1 when the port's link is up.",
    );
    for p in &dp.ports {
        let _ = writeln!(
            o,
            "chainroute_port_link_up{{port=\"{}\"}} {}",
            esc(&p.name),
            p.link_up as u8
        );
    }
    family(
        &mut o,
        "chainroute_drops",
        "counter",
        "Packets dropped, by reason.",
    );
    for r in DropReason::ALL {
        let _ = writeln!(
            o,
            "chainroute_drops_total{{reason=\"{}\"}} {}",
            r.name(),
            total.drops_of(r)
        );
    }
    type CoreFig = fn(&chainroute_dataplane::CounterSnapshot) -> u64;
    let core_figs: [(&str, &str, CoreFig); 6] = [
        (
            "chainroute_worker_loops",
            "Worker poll loops, by lcore.",
            |s| s.loops,
        ),
        (
            "chainroute_worker_busy_loops",
            "Worker loops that received at least one frame, by lcore.",
            |s| s.busy_loops,
        ),
        (
            "chainroute_worker_stalls",
            "Worker loops that began 100 us or more after the previous one, by lcore.",
            |s| s.stalls,
        ),
        (
            "chainroute_worker_rx_packets",
            "Frames a worker received, by lcore.",
            |s| s.total_rx(),
        ),
        (
            "chainroute_worker_tx_packets",
            "Frames a worker sent, by lcore.",
            |s| s.total_tx(),
        ),
        (
            "chainroute_worker_drops",
            "Frames a worker dropped, by lcore.",
            |s| s.total_drops(),
        ),
    ];
    for (name, help, f) in core_figs {
        family(&mut o, name, "counter", help);
        for (q, c) in dp.counters.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}_total{{lcore=\"{}\"}} {}",
                dp.lcores.get(q).copied().unwrap_or(0),
                f(&c.snapshot())
            );
        }
    }
    family(
        &mut o,
        "chainroute_worker_longest_loop_seconds",
        "gauge",
        "The longest gap between two loops of a worker, by lcore.",
    );
    for (q, c) in dp.counters.iter().enumerate() {
        let _ = writeln!(
            o,
            "chainroute_worker_longest_loop_seconds{{lcore=\"{}\"}} {}",
            dp.lcores.get(q).copied().unwrap_or(0),
            c.snapshot().longest_loop_ns as f64 / 1e9
        );
    }
    family(
        &mut o,
        "chainroute_mbufs_free",
        "gauge",
        "Free mbufs in the pool.",
    );
    let _ = writeln!(o, "chainroute_mbufs_free {}", dp.mbufs.0);
    drop(dp);

    let chain = shared.chain.read().unwrap().status.clone();
    let gauges: [(&str, &str, u64); 8] = [
        (
            "chainroute_chain_head_block",
            "The chain head's block number.",
            chain.head_block,
        ),
        (
            "chainroute_chain_finalized_block",
            "The settled block (finalized or head - confirmations).",
            chain.finalized_block,
        ),
        (
            "chainroute_chain_synced_block",
            "The block the routes were computed at.",
            chain.synced_block,
        ),
        (
            "chainroute_chain_degraded",
            "1 while the chain RPC fails (the last good state is kept).",
            chain.degraded as u64,
        ),
        (
            "chainroute_chain_synced",
            "1 once the first chain sync is done.",
            chain.synced as u64,
        ),
        ("chainroute_licenses", "Licenses known.", chain.licenses),
        (
            "chainroute_licenses_valid",
            "Licenses valid now.",
            chain.valid_licenses,
        ),
        (
            "chainroute_device_keys",
            "Authorised device keys valid now.",
            chain.device_keys,
        ),
    ];
    for (name, help, v) in gauges {
        family(&mut o, name, "gauge", help);
        let _ = writeln!(o, "{name} {v}");
    }
    family(
        &mut o,
        "chainroute_chain_reorgs",
        "counter",
        "Reorganisations that reset the chain state.",
    );
    let _ = writeln!(o, "chainroute_chain_reorgs_total {}", chain.reorgs);
    let rib = shared.rib.lock().unwrap();
    let (statics, chain_routes) = (rib.static_count(), rib.chain_count());
    let (snapshot, marks) = (rib.fib().has_snapshot(), rib.fib().snapshot_marks());
    drop(rib);
    family(
        &mut o,
        "chainroute_routes",
        "gauge",
        "Routes in the FIB, by source.",
    );
    let _ = writeln!(o, "chainroute_routes{{source=\"static\"}} {statics}\nchainroute_routes{{source=\"chain\"}} {chain_routes}");
    family(
        &mut o,
        "chainroute_lookup_snapshot",
        "gauge",
        "Whether the workers search the LPM's interval snapshot (1) or walk its trie (0).",
    );
    let _ = writeln!(o, "chainroute_lookup_snapshot {}", snapshot as u8);
    family(
        &mut o,
        "chainroute_lookup_snapshot_marks",
        "gauge",
        "Regions of the snapshot marked by route changes since it was published (their lookups walk the trie).",
    );
    let _ = writeln!(o, "chainroute_lookup_snapshot_marks {marks}");
    family(
        &mut o,
        "chainroute_ready",
        "gauge",
        "1 when ports and workers are up and the first chain sync is done.",
    );
    let _ = writeln!(o, "chainroute_ready {}", shared.ready() as u8);
    o.push_str("# EOF\n");
    o
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `addr` until `stop`.
pub async fn start(
    shared: Arc<Shared>,
    addr: std::net::SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("metrics.listen: cannot bind {addr}: {e}"))?;
    crate::log!(
        "info",
        "metrics: http://{}/metrics",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    Ok(tokio::spawn(async move {
        loop {
            let (mut sock, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = stop.changed() => return,
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let line = String::from_utf8_lossy(&buf)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let (status, ctype, body) =
                    if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
                        (
                            "200 OK",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            render(&shared),
                        )
                    } else {
                        (
                            "404 Not Found",
                            "text/plain",
                            "only GET /metrics here\n".to_string(),
                        )
                    };
                let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    }))
}
