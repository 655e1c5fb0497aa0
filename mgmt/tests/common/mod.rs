//! Shared helpers for the live tests: the library's test bed (anvil, deployment,
//! chainrouted, API client) plus what only tests need.
#![allow(dead_code)]

pub use chainroute_mgmt::testbed::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// chainrouted as built for this test run.
pub fn start_router(config: &Path, log: &Path) -> Proc {
    chainroute_mgmt::testbed::start_router(
        Path::new(env!("CARGO_BIN_EXE_chainrouted")),
        config,
        log,
    )
}

/// Polls `f` until it is true or `secs` pass; panics with `what` and the log.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, log: &Path, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out after {secs} s waiting for: {what}\n--- chainrouted log ---\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
