//! chainroute-pktgen's DPDK engine: one mempool, TX and RX ports (memif, pcap,
//! null, tap, PCI: any [`Device`]), and one worker per EAL worker lcore (or the
//! main lcore when there is none). Worker `q` sends the pool's frames of the flows
//! `f % queues == q` on TX queue `q` at its share of the rate (TSC-paced), and
//! receives on RX queue `q` of every RX port, reading the stamps back: per-class
//! counts, sequence, and latency from the TX TSC in the payload.
//!
//! A trial ends its TX at the deadline and keeps receiving for a drain time; then
//! the workers return. Between trials no loop polls the ports, which is what memif
//! needs for a clean shutdown: stop the loops on both sides before either process
//! closes its ports (see [`Engine::close`] and `chainroute-pktgen --hold`).

use crate::pktgen::{patch, read_stamp, Class, Histogram, Template, CLASSES, FLAG_FIXED};
use crate::stats::round3;
use chainroute_dataplane::io::{self, Device, Mempool, Port, Rings};
use chainroute_wire::tunnel::Decap;
use chainroute_wire::MacAddr;
use dpdk_sys::{eal, ffi};
use serde_json::json;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BURST: usize = 32;

/// Removes the EAL's runtime directory of `file_prefix` (`/var/run/dpdk/<prefix>`,
/// or under `$XDG_RUNTIME_DIR` for non-root), which DPDK 22.11 leaves behind. Call it
/// when the process is done with DPDK (after the ports closed): the files are unlinked,
/// mappings stay valid until exit.
pub fn remove_runtime_dir(file_prefix: &str) {
    if file_prefix.is_empty() || file_prefix.contains('/') || file_prefix.contains("..") {
        return;
    }
    let base = if unsafe { libc::geteuid() } == 0 {
        std::path::PathBuf::from("/var/run/dpdk")
    } else {
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) => std::path::PathBuf::from(d).join("dpdk"),
            None => std::path::PathBuf::from("/tmp/dpdk"),
        }
    };
    let _ = std::fs::remove_dir_all(base.join(file_prefix));
}

/// Set by the signal handler: how many SIGINT/SIGTERM arrived.
pub static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(_: c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Counts SIGINT/SIGTERM in [`SIGNALS`] instead of dying: a trial stops its loops
/// on the first, and `--hold` waits for the next before closing the ports.
pub fn install_signal_counter() {
    // SAFETY: the handler only touches an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

#[derive(Debug, Clone)]
pub struct PortSpec {
    pub device: Device,
    pub mac: Option<MacAddr>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub eal_args: Vec<String>,
    pub ports: Vec<PortSpec>,
    /// Index into `ports` of the TX port.
    pub tx: usize,
    /// Indexes of the ports to receive on.
    pub rx: Vec<usize>,
    pub mbufs: u32,
}

/// What one trial asks for.
#[derive(Debug, Clone, Copy)]
pub struct TrialSpec {
    /// Offered packets per second over all workers (0: as fast as possible).
    pub rate_pps: f64,
    pub seconds: f64,
    /// Keep receiving this long after TX stops.
    pub drain: Duration,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// Live counters a worker publishes for progress lines.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    received: AtomicU64,
    done: AtomicBool,
}

/// What a trial measured.
#[derive(Debug, Clone, Default)]
pub struct TrialResult {
    pub rate_pps: f64,
    pub seconds: f64,
    /// Frames the TX queues took, per class.
    pub sent: [u64; CLASSES],
    /// Frames the TX queue refused (ring full: the receiver did not keep up).
    pub refused: u64,
    /// Stamped frames received, per class.
    pub received: [u64; CLASSES],
    /// Received frames without a stamp (or unparsable).
    pub foreign: u64,
    /// Received frames whose sequence went backwards within their template's stream.
    pub reordered: u64,
    pub latency: Histogram,
    /// TX time: first to last burst.
    pub tx_seconds: f64,
}

impl TrialResult {
    pub fn sent_total(&self) -> u64 {
        self.sent.iter().sum()
    }
    pub fn deliverable_sent(&self) -> u64 {
        Class::ALL
            .iter()
            .filter(|c| c.deliverable())
            .map(|c| self.sent[*c as usize])
            .sum()
    }
    pub fn deliverable_received(&self) -> u64 {
        Class::ALL
            .iter()
            .filter(|c| c.deliverable())
            .map(|c| self.received[*c as usize])
            .sum()
    }
    /// Frames offered at a fixed rate that the TX ring refused count as lost (the
    /// receiver did not keep up); at max rate they are only backpressure.
    fn refused_lost(&self) -> u64 {
        if self.rate_pps > 0.0 {
            self.refused
        } else {
            0
        }
    }
    /// Deliverable frames offered but not received back.
    pub fn lost(&self) -> u64 {
        (self.deliverable_sent() + self.refused_lost()).saturating_sub(self.deliverable_received())
    }
    pub fn loss_ratio(&self) -> f64 {
        let offered = self.deliverable_sent() + self.refused_lost();
        if offered == 0 {
            return 0.0;
        }
        self.lost() as f64 / offered as f64
    }
    pub fn tx_mpps(&self) -> f64 {
        if self.tx_seconds <= 0.0 {
            return 0.0;
        }
        self.sent_total() as f64 / self.tx_seconds / 1e6
    }
    pub fn rx_mpps(&self) -> f64 {
        if self.tx_seconds <= 0.0 {
            return 0.0;
        }
        self.received.iter().sum::<u64>() as f64 / self.tx_seconds / 1e6
    }

    fn merge(&mut self, o: &TrialResult) {
        for i in 0..CLASSES {
            self.sent[i] += o.sent[i];
            self.received[i] += o.received[i];
        }
        self.refused += o.refused;
        self.foreign += o.foreign;
        self.reordered += o.reordered;
        self.latency.merge(&o.latency);
        self.tx_seconds = self.tx_seconds.max(o.tx_seconds);
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut classes = serde_json::Map::new();
        for c in Class::ALL {
            let (s, r) = (self.sent[c as usize], self.received[c as usize]);
            if s > 0 || r > 0 {
                classes.insert(
                    c.name().into(),
                    json!({"sent": s, "received": r, "deliverable": c.deliverable()}),
                );
            }
        }
        json!({
            "offered_pps": if self.rate_pps > 0.0 { json!(self.rate_pps.round()) } else { json!("max") },
            "seconds": round3(self.tx_seconds),
            "sent": self.sent_total(),
            "refused": self.refused,
            "received": self.received.iter().sum::<u64>(),
            "deliverable_sent": self.deliverable_sent(),
            "deliverable_received": self.deliverable_received(),
            "lost": self.lost(),
            "loss_ratio": (self.loss_ratio() * 1e6).round() / 1e6,
            "foreign": self.foreign,
            "reordered": self.reordered,
            "tx_mpps": round3(self.tx_mpps()),
            "rx_mpps": round3(self.rx_mpps()),
            "latency": self.latency.to_json(),
            "classes": classes,
        })
    }
}

/// The running generator: EAL, pool and ports.
pub struct Engine {
    // Field order: ports close before the pool drops.
    ports: Vec<Port>,
    pool: Mempool,
    tx: usize,
    rx: Vec<usize>,
    lcores: Vec<u32>,
    hz: u64,
    eal: &'static eal::Eal,
}

struct Job {
    queue: u16,
    tx_port: u16,
    rx_ports: Vec<u16>,
    pool: *mut ffi::rte_mempool,
    templates: Arc<Vec<Template>>,
    mine: Vec<u32>,
    rate_pps: f64,
    tsc_seconds: u64,
    tsc_drain: u64,
    hz: u64,
    live: Arc<Live>,
    result: TrialResult,
}

// SAFETY: the pool pointer is a DPDK mempool, safe to use from any lcore.
unsafe impl Send for Job {}

impl Engine {
    /// Starts the EAL and opens the ports with one queue pair per worker.
    pub fn open(cfg: &EngineConfig) -> Result<Engine, String> {
        let eal = eal::init(&cfg.eal_args).map_err(|e| format!("EAL: {e}"))?;
        let lcores = eal.worker_lcores();
        let queues = lcores.len().max(1) as u16;
        static POOLS: AtomicU64 = AtomicU64::new(0);
        let name = format!("pg_pool{}", POOLS.fetch_add(1, Ordering::Relaxed));
        let pool = Mempool::create(&name, cfg.mbufs, 0).map_err(|e| format!("mempool: {e}"))?;
        let mut ports = Vec::new();
        for (i, p) in cfg.ports.iter().enumerate() {
            ports.push(
                Port::open(&p.device, queues, &pool, p.mac, Rings::default())
                    .map_err(|e| format!("port {i} ({:?}): {e}", p.device))?,
            );
        }
        if cfg.tx >= ports.len() || cfg.rx.iter().any(|&r| r >= ports.len()) {
            return Err("tx/rx port index out of range".into());
        }
        Ok(Engine {
            ports,
            pool,
            tx: cfg.tx,
            rx: cfg.rx.clone(),
            lcores,
            hz: eal.tsc_hz(),
            eal,
        })
    }

    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    pub fn workers(&self) -> usize {
        self.lcores.len().max(1)
    }

    /// Waits until every port reports link up (memif: the peer connected).
    pub fn wait_links(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ports.iter().all(|p| p.link_up()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends a few frames from the calling thread on TX queue 0 (BINDs before a
    /// trial). Returns how many were taken.
    pub fn send_frames(&self, frames: &[Vec<u8>]) -> usize {
        let port = self.ports[self.tx].id;
        let mut sent = 0;
        for f in frames {
            if let Some(m) = self.pool.alloc_frame(f) {
                let mut a = [m.0];
                if io::tx_burst(port, 0, &mut a) == 1 {
                    sent += 1;
                } else {
                    io::free_bulk(&mut a);
                }
            }
        }
        sent
    }

    /// Receives and frees whatever is waiting (between trials), on every queue.
    pub fn flush_rx(&self) -> u64 {
        let mut n = 0;
        let mut rx = [std::ptr::null_mut(); BURST];
        for &r in &self.rx {
            for q in 0..self.workers() as u16 {
                loop {
                    let got = io::rx_burst(self.ports[r].id, q, &mut rx);
                    if got == 0 {
                        break;
                    }
                    n += got as u64;
                    io::free_bulk(&mut rx[..got]);
                }
            }
        }
        n
    }

    /// Runs one trial: the workers start, send for `spec.seconds`, drain, return.
    /// A SIGINT/SIGTERM (see [`install_signal_counter`]) ends it early.
    pub fn trial(&self, templates: &Arc<Vec<Template>>, spec: &TrialSpec) -> TrialResult {
        let workers = self.workers();
        let signals_at_start = SIGNALS.load(Ordering::SeqCst);
        let mut jobs = Vec::new();
        let mut lives = Vec::new();
        for q in 0..workers {
            let mine: Vec<u32> = (0..templates.len() as u32)
                .filter(|&i| templates[i as usize].flow as usize % workers == q)
                .collect();
            // A worker without a flow of its own still receives; give it nothing to send.
            let live = Arc::new(Live::default());
            lives.push(live.clone());
            jobs.push(Box::new(Job {
                queue: q as u16,
                tx_port: self.ports[self.tx].id,
                rx_ports: self.rx.iter().map(|&r| self.ports[r].id).collect(),
                pool: self.pool.as_ptr(),
                templates: templates.clone(),
                mine,
                rate_pps: spec.rate_pps / workers as f64,
                tsc_seconds: (spec.seconds * self.hz as f64) as u64,
                tsc_drain: (spec.drain.as_secs_f64() * self.hz as f64) as u64,
                hz: self.hz,
                live,
                result: TrialResult::default(),
            }));
        }
        let mut total = TrialResult {
            rate_pps: spec.rate_pps,
            seconds: spec.seconds,
            ..Default::default()
        };
        if self.lcores.is_empty() {
            let mut job = jobs.pop().unwrap();
            job.run(signals_at_start);
            total.merge(&job.result);
            return total;
        }
        let mut raw = Vec::new();
        for (job, &lcore) in jobs.into_iter().zip(&self.lcores) {
            let arg = Box::into_raw(job);
            // SAFETY: the lcore is an idle worker; we take the box back after waiting.
            let rc =
                unsafe { ffi::rte_eal_remote_launch(Some(job_main), arg as *mut c_void, lcore) };
            assert_eq!(rc, 0, "rte_eal_remote_launch on lcore {lcore}");
            raw.push((arg, lcore));
        }
        let t0 = Instant::now();
        let mut last = (Instant::now(), 0u64, 0u64);
        while !lives.iter().all(|l| l.done.load(Ordering::Acquire)) {
            std::thread::sleep(Duration::from_millis(50));
            if spec.progress && last.0.elapsed() >= Duration::from_secs(1) {
                let s: u64 = lives.iter().map(|l| l.sent.load(Ordering::Relaxed)).sum();
                let r: u64 = lives
                    .iter()
                    .map(|l| l.received.load(Ordering::Relaxed))
                    .sum();
                let dt = last.0.elapsed().as_secs_f64();
                eprintln!(
                    "pktgen: {:5.1} s  tx {:8.3} Mpps  rx {:8.3} Mpps  sent {s}  received {r}",
                    t0.elapsed().as_secs_f64(),
                    (s - last.1) as f64 / dt / 1e6,
                    (r - last.2) as f64 / dt / 1e6
                );
                last = (Instant::now(), s, r);
            }
        }
        for (arg, lcore) in raw {
            // SAFETY: waiting for the job launched above; then its box is ours again.
            unsafe { ffi::rte_eal_wait_lcore(lcore) };
            let job = unsafe { Box::from_raw(arg) };
            total.merge(&job.result);
        }
        total
    }

    /// Closes the ports (memif: only once the peer's loops have stopped too), then
    /// the pool. The EAL stays up until the process exits.
    pub fn close(self) {
        let Engine {
            ports, pool, eal, ..
        } = self;
        for p in ports {
            p.close();
        }
        drop(pool);
        let _ = eal;
    }

    /// Port counters (packets in/out, misses) for reports.
    pub fn port_stats(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.ports
                .iter()
                .map(|p| {
                    let s = p.stats();
                    json!({"port": p.name, "ipackets": s.ipackets, "opackets": s.opackets, "imissed": s.imissed, "oerrors": s.oerrors, "rx_nombuf": s.rx_nombuf})
                })
                .collect(),
        )
    }
}

extern "C" fn job_main(arg: *mut c_void) -> c_int {
    // SAFETY: arg is a Box<Job> the launcher keeps alive until rte_eal_wait_lcore.
    let job = unsafe { &mut *(arg as *mut Job) };
    job.run(SIGNALS.load(Ordering::SeqCst));
    0
}

impl Job {
    fn run(&mut self, signals_at_start: u64) {
        let mut tx: [*mut ffi::rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        let mut rx: [*mut ffi::rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        let mut cls = [0u8; BURST];
        let templates = self.templates.clone();
        let n_mine = self.mine.len();
        let mut next = 0usize;
        let mut seq = 0u64;
        let mut last_seq = vec![0u64; templates.len()];
        let start = io::tsc();
        let tx_end = start + self.tsc_seconds;
        let mut end = u64::MAX;
        let mut sending = n_mine > 0;
        let mut tx_last = start;
        let per_tick = if self.rate_pps > 0.0 {
            self.rate_pps / self.hz as f64
        } else {
            0.0
        };
        let ns_per_tick = 1e9 / self.hz as f64;
        let mut r = TrialResult::default();
        let mut loops = 0u32;
        if !sending {
            end = tx_end + self.tsc_drain;
        }
        loop {
            let now = io::tsc();
            if sending {
                if now >= tx_end {
                    sending = false;
                    end = now + self.tsc_drain;
                } else {
                    let want = if per_tick > 0.0 {
                        let due = ((now - start) as f64 * per_tick) as u64;
                        (due.saturating_sub(seq) as usize).min(BURST)
                    } else {
                        BURST
                    };
                    if want > 0 {
                        // SAFETY: the pool is alive; tx has room for `want` pointers.
                        let ok = unsafe {
                            ffi::shim_rte_pktmbuf_alloc_bulk(
                                self.pool,
                                tx.as_mut_ptr(),
                                want as u32,
                            )
                        } == 0;
                        if ok {
                            for (k, m) in tx[..want].iter().enumerate() {
                                let t = &templates[self.mine[next] as usize];
                                next += 1;
                                if next == n_mine {
                                    next = 0;
                                }
                                cls[k] = t.class as u8;
                                // SAFETY: a fresh single-segment mbuf with room for a
                                // frame of at most 1514 bytes (default data room).
                                unsafe {
                                    let dst = ffi::shim_rte_pktmbuf_append(*m, t.frame.len() as u16)
                                        as *mut u8;
                                    let f = std::slice::from_raw_parts_mut(dst, t.frame.len());
                                    f.copy_from_slice(&t.frame);
                                    patch(t, f, seq + k as u64, now);
                                }
                            }
                            let sent = io::tx_burst(self.tx_port, self.queue, &mut tx[..want]);
                            for &c in &cls[..sent] {
                                r.sent[c as usize] += 1;
                            }
                            if sent < want {
                                // The ring was full: the frames not taken were offered and refused.
                                r.refused += (want - sent) as u64;
                                io::free_bulk(&mut tx[sent..want]);
                            }
                            // Paced mode counts refused frames as offered, so the rate holds.
                            seq += want as u64;
                            tx_last = now;
                        }
                    }
                }
            } else if now >= end {
                break;
            }
            for &port in &self.rx_ports {
                let n = io::rx_burst(port, self.queue, &mut rx);
                if n == 0 {
                    continue;
                }
                let now = io::tsc();
                for &m in &rx[..n] {
                    // SAFETY: a received single-segment mbuf we own until freed below.
                    let frame = unsafe {
                        std::slice::from_raw_parts(
                            ffi::shim_rte_pktmbuf_mtod(m),
                            ffi::shim_rte_pktmbuf_data_len(m) as usize,
                        )
                    };
                    let stamp = Decap::parse(frame)
                        .ok()
                        .and_then(|d| read_stamp(&frame[d.inner]));
                    match stamp {
                        None => r.foreign += 1,
                        Some(s) => {
                            r.received[s.class as usize] += 1;
                            if s.flags & FLAG_FIXED == 0 {
                                if s.tsc <= now && s.tsc >= start {
                                    r.latency
                                        .record(((now - s.tsc) as f64 * ns_per_tick) as u64);
                                }
                                if let Some(l) = last_seq.get_mut(s.template as usize) {
                                    if s.seq < *l {
                                        r.reordered += 1;
                                    }
                                    *l = s.seq;
                                }
                            }
                        }
                    }
                }
                io::free_bulk(&mut rx[..n]);
            }
            loops = loops.wrapping_add(1);
            if loops.is_multiple_of(1024) {
                self.live.sent.store(r.sent.iter().sum(), Ordering::Relaxed);
                self.live.received.store(
                    r.received.iter().sum::<u64>() + r.foreign,
                    Ordering::Relaxed,
                );
                if SIGNALS.load(Ordering::Relaxed) != signals_at_start && sending {
                    sending = false;
                    end = io::tsc() + self.tsc_drain;
                }
            }
        }
        r.tx_seconds = (tx_last.max(start + 1) - start) as f64 / self.hz as f64;
        if r.sent.iter().sum::<u64>() == 0 {
            r.tx_seconds = self.tsc_seconds as f64 / self.hz as f64;
        }
        self.live.sent.store(r.sent.iter().sum(), Ordering::Relaxed);
        self.live.received.store(
            r.received.iter().sum::<u64>() + r.foreign,
            Ordering::Relaxed,
        );
        self.result = r;
        self.live.done.store(true, Ordering::Release);
    }
}
