//! chainrouted: the chainroute appliance daemon. Starts the dataplane from
//! `/etc/chainroute/chainroute.toml` (or `--config FILE`), installs the static
//! routes, logs its counters, and on SIGTERM/SIGINT stops the workers, closes
//! the ports and exits.

use chainroute_dataplane::Dataplane;
use chainroute_mgmt::config::{Config, DEFAULT_PATH};
use chainroute_mgmt::log;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: chainrouted [--config FILE] [--check]
  --config FILE   configuration (default /etc/chainroute/chainroute.toml)
  --check         validate the configuration and exit";

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
        println!("{}: ok ({} ports, {} static routes)", path.display(), config.dataplane.ports.len(), config.routes.len());
        return ExitCode::SUCCESS;
    }
    run(config)
}

fn run(config: Config) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            log!("error", "cannot install the handler for signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let fib = config.static_fib();
    let dp = match Dataplane::start(&config.dataplane, &fib) {
        Ok(dp) => dp,
        Err(e) => {
            log!("error", "dataplane did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for p in dp.ports() {
        log!("info", "port {} ({}) mac {} link {} queues {}{}", p.index, p.name, p.mac, if p.link_up { "up" } else { "down" }, p.queues, if p.rss { " rss" } else { "" });
    }
    log!("info", "{} workers on lcores {:?}, {} static routes", dp.lcores().len(), dp.lcores(), fib.len());
    let interval = Duration::from_secs(config.file.dataplane.stats_interval_s);
    let mut last = Instant::now();
    let mut last_rx = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if !interval.is_zero() && last.elapsed() >= interval {
            let c = dp.counters();
            let rate = (c.total_rx() - last_rx) as f64 / last.elapsed().as_secs_f64();
            log!("info", "rx {} tx {} ({:.3} Mpps) drops {}", c.total_rx(), c.total_tx(), rate / 1e6, c.drops_line());
            last = Instant::now();
            last_rx = c.total_rx();
        }
    }
    log!("info", "stopping: workers first, then ports");
    let (c, (free, size)) = dp.shutdown();
    log!("info", "final: rx {} tx {} drops {}; mbufs {free}/{size} free", c.total_rx(), c.total_tx(), c.drops_line());
    ExitCode::SUCCESS
}
