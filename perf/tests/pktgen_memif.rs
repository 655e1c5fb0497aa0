//! chainroute-pktgen (a separate process, memif servers) -> the dataplane (this
//! process, memif clients, two ports) -> chainroute-pktgen, at a low fixed rate, with
//! the coordinated shutdown memif needs: the generator's loops stop at the end of its
//! run (it holds its ports open), the dataplane stops its workers and closes its
//! ports, then the generator gets SIGTERM and closes its own. Checks that traffic
//! came back stamped, that both sides exit cleanly and that no mbuf leaked; it does
//! not assert on rates or loss (the machine may be busy). Needs root.

use chainroute_dataplane::io::Device;
use chainroute_dataplane::{Dataplane, DataplaneConfig, Fib, NextHop, PortConfig};
use chainroute_wire::MacAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn generator_and_dataplane_over_memif_shut_down_cleanly() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("pktgen-memif-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (s_in, s_out) = (
        format!("/run/pktgen-test-{pid}-in.sock"),
        format!("/run/pktgen-test-{pid}-out.sock"),
    );
    let (go, out, log) = (dir.join("go"), dir.join("result.json"), dir.join("gen.log"));
    let gen = Command::new(env!("CARGO_BIN_EXE_chainroute-pktgen"))
        .args([
            "--file-prefix",
            &format!("pktgen-test-gen-{pid}"),
            "--lcores",
            "0-1",
            "--mem",
            "256",
            "--mbufs",
            "4095",
        ])
        .args([
            "--port",
            &format!("net_memif_ti,role=server,socket={s_in},id=0"),
            "--port",
            &format!("net_memif_to,role=server,socket={s_out},id=0"),
        ])
        .args([
            "--dst",
            "2002::/16",
            "--mix",
            "native=3,tunnel=1",
            "--size",
            "160",
            "--rate",
            "20k",
            "--seconds",
            "1",
            "--drain-ms",
            "300",
        ])
        .args(["--hold", "--hold-max", "60", "--json"])
        .arg("--go-file")
        .arg(&go)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start chainroute-pktgen");
    let mut gen = Kill(gen);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(30, || log_text().contains("waiting for")),
        "the generator opened its ports: {}",
        log_text()
    );

    let mut fib = Fib::new();
    fib.insert(
        "2002::/16".parse().unwrap(),
        NextHop::Local {
            port: 1,
            mac: MacAddr([2, 0, 0, 0, 0x6e, 2]),
        },
    );
    let config = DataplaneConfig {
        eal_args: dpdk_sys::eal::test_args("pktgen-memif-dut", 512, "0-1"),
        ports: vec![
            PortConfig {
                name: "in".into(),
                device: Device::Vdev(format!("net_memif_di,role=client,socket={s_in},id=0")),
                mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            },
            PortConfig {
                name: "out".into(),
                device: Device::Vdev(format!("net_memif_do,role=client,socket={s_out},id=0")),
                mac: None,
            },
        ],
        mbufs: 4095,
        burst: 32,
        rings: chainroute_dataplane::Rings::default(),
        security: None,
    };
    let dp = Dataplane::start(&config, &fib).expect("dataplane starts (memif clients)");
    std::fs::write(&go, b"go").unwrap();
    assert!(
        wait_until(60, || out.exists() && log_text().contains("holding")),
        "the generator finished its run: {}",
        log_text()
    );
    // Its loops have stopped: our workers stop, our ports close.
    let (c, (free, size)) = dp.shutdown();
    // Now the generator may close its ports and exit.
    unsafe { libc_kill(gen.0.id() as i32, 15) };
    assert!(
        wait_until(20, || matches!(gen.0.try_wait(), Ok(Some(_)))),
        "the generator exits on SIGTERM"
    );
    let status = gen.0.wait().unwrap();
    assert!(status.success(), "generator exit {status}: {}", log_text());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let r = &v["result"];
    let (sent, received) = (r["sent"].as_u64().unwrap(), r["received"].as_u64().unwrap());
    assert!(sent > 0 && received > 0, "traffic went through: {r}");
    assert!(received <= sent, "{r}");
    assert_eq!(
        r["foreign"], 0,
        "every frame that came back carries its stamp: {r}"
    );
    assert!(
        r["classes"]["tunnel"]["received"].as_u64().unwrap_or(0) > 0,
        "tunnelled frames too: {r}"
    );
    assert!(
        r["latency"]["samples"].as_u64().unwrap_or(0) > 0,
        "latency measured: {r}"
    );
    assert_eq!(
        c.rx_packets[0], sent,
        "the dataplane read every frame the generator's ring took"
    );
    assert_eq!(free, size, "no mbuf leaked in the dataplane");
    eprintln!(
        "sent {sent} received {received}, dataplane drops {}",
        c.drops_line()
    );
    std::fs::remove_dir_all(&dir).ok();
    chainroute_perf::traffic::remove_runtime_dir(&format!("pktgen-memif-dut-{pid}"));
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
