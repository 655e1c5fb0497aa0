//! chainrouted: the chainroute appliance daemon. Reads and validates
//! `/etc/chainroute/chainroute.toml` (or `--config FILE`), opens the management API
//! (gRPC on the Unix socket, optional TCP+TLS, health, reflection; JSON-RPC; metrics),
//! starts the dataplane with the static routes, keeps the FIB equal to the licenses on
//! chain, and on SIGTERM/SIGINT stops the workers, closes the ports and exits.
//! SIGUSR1 stops the workers but keeps the ports open until SIGTERM: two routers
//! linked by memif are quiesced both before either closes its end.

use chainroute_dataplane::Dataplane;
use chainroute_mgmt::config::{Config, DEFAULT_PATH};
use chainroute_mgmt::state::Shared;
use chainroute_mgmt::{api, chain, jsonrpc, log, metrics};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: chainrouted [--config FILE] [--check]
  --config FILE   configuration (default /etc/chainroute/chainroute.toml)
  --check         validate the configuration and exit";

/// Routes unchanged this long get the LPM's lookup snapshot (Fib::settle).
const ROUTES_QUIET: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let mut path = PathBuf::from(DEFAULT_PATH);
    let mut check_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => path = PathBuf::from(p),
                None => {
                    eprintln!("chainrouted: --config needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--check" => check_only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("chainrouted: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chainrouted: {}: {e}", path.display());
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if check_only {
        println!(
            "{}: ok ({} ports, {} static routes, chain {}, api unix://{}{})",
            path.display(),
            config.dataplane.ports.len(),
            config.routes.len(),
            config
                .chain
                .as_ref()
                .map(|c| c.rpc_url.as_str())
                .unwrap_or("off"),
            config.api.socket.display(),
            config
                .api
                .tcp
                .map(|a| format!(" + tcp://{a} (TLS)"))
                .unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    run(config)
}

fn run(config: Config) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    let quiesce = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [(signal_hook::consts::SIGTERM, &stop), (signal_hook::consts::SIGINT, &stop), (signal_hook::consts::SIGUSR1, &quiesce)] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            log!("error", "cannot install the handler for signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // The runtime's threads start before the EAL pins this thread to the main lcore,
    // so they keep the process's whole CPU set.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("chainrouted-mgmt")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log!("error", "cannot start the management runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (reporter, health_service) = tonic_health::server::health_reporter();
    rt.block_on(async {
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(
                "chainroute.v1.Router",
                tonic_health::ServingStatus::NotServing,
            )
            .await;
    });
    let interval = Duration::from_secs(config.file.dataplane.stats_interval_s);
    let shared = Shared::new(config, reporter);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    // The management plane first: an operator can ask what is happening while it starts.
    let started = rt.block_on(async {
        let mut tasks = api::start(shared.clone(), health_service, stop_rx.clone()).await?;
        if let Some(addr) = shared.config.metrics {
            tasks.push(metrics::start(shared.clone(), addr, stop_rx.clone()).await?);
        }
        let rpc = match shared.config.jsonrpc {
            Some(addr) => Some(jsonrpc::start(shared.clone(), addr).await?),
            None => None,
        };
        Ok::<_, String>((tasks, rpc))
    });
    let (tasks, rpc) = match started {
        Ok(x) => x,
        Err(e) => {
            log!("error", "{e}");
            return ExitCode::FAILURE;
        }
    };
    let reconciler =
        chain::Reconciler::new(shared.clone()).map(|r| rt.spawn(r.run(stop_rx.clone())));
    if shared.config.chain.is_some() && reconciler.is_none() {
        log!("error", "chain.rpc_url: not a URL");
        return ExitCode::FAILURE;
    }

    let mut dp = {
        let rib = shared.rib.lock().unwrap();
        match Dataplane::start_with(&shared.config.dataplane, rib.fib(), shared.security.clone()) {
            Ok(dp) => dp,
            Err(e) => {
                drop(rib);
                log!("error", "dataplane did not start: {e}");
                let _ = stop_tx.send(true);
                rt.shutdown_timeout(Duration::from_secs(2));
                let _ = std::fs::remove_file(&shared.config.api.socket);
                return ExitCode::FAILURE;
            }
        }
    };
    for p in dp.ports() {
        log!(
            "info",
            "port {} ({}) mac {} link {} queues {}{} descriptors {} RX / {} TX",
            p.index,
            p.name,
            p.mac,
            if p.link_up { "up" } else { "down" },
            p.queues,
            if p.rss { " rss" } else { "" },
            p.rings.rx,
            p.rings.tx
        );
    }
    // A NIC fills its RX rings from the pool at start and holds TX mbufs until they
    // are sent: a pool smaller than the rings starves RX (vdevs do not pre-fill).
    let d = &shared.config.dataplane;
    let (nports, workers) = (d.ports.len() as u64, dp.lcores().len() as u64);
    let held = nports * workers * (d.rings.rx as u64 + d.rings.tx as u64);
    if (d.mbufs as u64) < held {
        log!(
            "warn",
            "dataplane.mbufs: {} mbufs are fewer than the rings can hold ({nports} ports x {workers} workers x ({} RX + {} TX descriptors) = {held}): raise mbufs or lower rx_descriptors/tx_descriptors for NICs that fill their rings",
            d.mbufs,
            d.rings.rx,
            d.rings.tx
        );
    }
    let routes = shared.rib.lock().unwrap().len();
    log!(
        "info",
        "{} workers on lcores {:?}, {} routes",
        dp.lcores().len(),
        dp.lcores(),
        routes
    );
    {
        let mut v = shared.dataplane.write().unwrap();
        v.up = true;
        v.lcores = dp.lcores().to_vec();
        v.counters = dp.core_counters().to_vec();
        v.ports = dp.ports();
        v.mbufs = dp.mbufs();
    }
    {
        let _g = rt.enter();
        api::update_health(&shared);
    }

    let mut last = Instant::now();
    let mut last_refresh = Instant::now();
    let mut last_rx = 0u64;
    let mut quiesced = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if !quiesced && quiesce.load(Ordering::Relaxed) {
            dp.stop();
            quiesced = true;
            log!("info", "workers stopped (SIGUSR1); ports stay open until SIGTERM");
        }
        // Routes that have settled get the LPM's faster snapshot (changes mark
        // the regions they touch, which the trie answers, until the next quiet
        // spell, or Fib::settle's age limit under churn, brings a new one).
        if let Ok(mut rib) = shared.rib.try_lock() {
            let t0 = Instant::now();
            if let Some(bytes) = rib.settle_fib(ROUTES_QUIET) {
                log!(
                    "info",
                    "lookup snapshot of {} routes published: {:.1} MB, built in {} ms",
                    rib.len(),
                    bytes as f64 / 1e6,
                    t0.elapsed().as_millis()
                );
            }
        }
        if last_refresh.elapsed() >= Duration::from_millis(250) {
            let ports = dp.ports();
            let mbufs = dp.mbufs();
            let mut v = shared.dataplane.write().unwrap();
            v.ports = ports;
            v.mbufs = mbufs;
            last_refresh = Instant::now();
        }
        if !interval.is_zero() && last.elapsed() >= interval {
            let c = dp.counters();
            let rate = (c.total_rx() - last_rx) as f64 / last.elapsed().as_secs_f64();
            log!(
                "info",
                "rx {} tx {} ({:.3} Mpps) drops {}; worker stalls {} (longest loop {:.1} us)",
                c.total_rx(),
                c.total_tx(),
                rate / 1e6,
                c.drops_line(),
                c.stalls,
                c.longest_loop_ns as f64 / 1e3
            );
            last = Instant::now();
            last_rx = c.total_rx();
        }
    }
    log!(
        "info",
        "stopping: management plane, then workers, then ports"
    );
    shared.dataplane.write().unwrap().up = false;
    let _ = stop_tx.send(true);
    rt.block_on(async {
        if let Some(r) = reconciler {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        if let Some(h) = rpc {
            let _ = h.stop();
        }
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    let _ = std::fs::remove_file(&shared.config.api.socket);
    let (c, (free, size)) = dp.shutdown();
    log!(
        "info",
        "final: rx {} tx {} drops {}; worker stalls {} (longest loop {:.1} us); mbufs {free}/{size} free",
        c.total_rx(),
        c.total_tx(),
        c.drops_line(),
        c.stalls,
        c.longest_loop_ns as f64 / 1e3
    );
    ExitCode::SUCCESS
}
