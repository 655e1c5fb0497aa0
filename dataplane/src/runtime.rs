//! The running dataplane: EAL, one mempool, the ports, and one run-to-completion
//! worker per worker lcore. Worker `q` owns RX queue `q` and TX queue `q` of every
//! port, so no two cores ever share a queue or a counter.

use crate::counters::{bump, CoreCounters, CounterSnapshot, DropReason, LoopClock};
use crate::fib::Fib;
use crate::io::{self, Device, EthStats, MbufPtr, Mempool, Port, Rings};
use crate::pipeline::{Pipeline, PortInfo, Verdict, MAX_BURST};
use crate::security::{Security, SecurityConfig};
use chainroute_wire::MacAddr;
use dpdk_sys::{eal, ffi, DpdkError};
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the dataplane needs to start.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// EAL arguments (`-l`, `--no-huge`, `-m`, `--file-prefix`, ...).
    pub eal_args: Vec<String>,
    /// Ports in order: the pipeline's port index is the position here.
    pub ports: Vec<PortConfig>,
    /// Mbufs in the pool (a power of two minus one is best for the ring).
    pub mbufs: u32,
    /// Frames per RX burst (1..=64).
    pub burst: usize,
    /// Descriptors per RX / TX queue of every port.
    pub rings: Rings,
    /// BIND/AUTH verification, bindings and source validation (None: plain forwarding).
    pub security: Option<SecurityConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The operator's name for the port.
    pub name: String,
    pub device: Device,
    /// Overrides the device's MAC address.
    pub mac: Option<MacAddr>,
}

/// Why the dataplane could not start.
#[derive(Debug)]
pub enum StartError {
    Dpdk(DpdkError),
    /// The EAL was given no lcore beyond the main one.
    NoWorkerLcore,
    BadConfig(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            StartError::Dpdk(e) => write!(f, "{e}"),
            StartError::NoWorkerLcore => write!(f, "the EAL lcore list has no worker lcore besides the main one (e.g. use -l 0-1)"),
            StartError::BadConfig(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<DpdkError> for StartError {
    fn from(e: DpdkError) -> Self {
        StartError::Dpdk(e)
    }
}

/// A started port, as reported.
#[derive(Debug, Clone)]
pub struct PortStatus {
    pub index: u16,
    pub name: String,
    pub mac: MacAddr,
    pub link_up: bool,
    pub queues: u16,
    pub rss: bool,
    /// Descriptors per RX / TX queue, as the device took them.
    pub rings: Rings,
    pub stats: EthStats,
}

/// The running dataplane. Field order matters for drop: ports close before the pool.
pub struct Dataplane {
    stop: Arc<AtomicBool>,
    security: Option<Arc<Mutex<Security>>>,
    poller: Option<std::thread::JoinHandle<()>>,
    lcores: Vec<u32>,
    counters: Vec<Arc<CoreCounters>>,
    ports: Vec<Port>,
    names: Vec<String>,
    pool: Mempool,
    running: bool,
}

struct Worker {
    queue: u16,
    port_ids: Vec<u16>,
    pipeline: Pipeline,
    counters: Arc<CoreCounters>,
    stop: Arc<AtomicBool>,
    burst: usize,
    /// TSC ticks per second, for the loop-gap counters.
    tsc_hz: u64,
}

impl Dataplane {
    /// Starts the EAL (once per process), the ports and one worker per worker lcore.
    /// With `config.security`, a new [`Security`] writer is made (see [`Dataplane::security`]).
    pub fn start(config: &DataplaneConfig, fib: &Fib) -> Result<Dataplane, StartError> {
        let security = config.security.map(|c| Arc::new(Mutex::new(Security::new(c))));
        Self::start_with(config, fib, security)
    }

    /// Starts with a security writer the caller made (and may fill) beforehand.
    pub fn start_with(config: &DataplaneConfig, fib: &Fib, security: Option<Arc<Mutex<Security>>>) -> Result<Dataplane, StartError> {
        if config.ports.is_empty() || config.ports.len() > crate::counters::MAX_PORTS {
            return Err(StartError::BadConfig(format!("between 1 and {} ports are needed", crate::counters::MAX_PORTS)));
        }
        if !(1..=MAX_BURST).contains(&config.burst) {
            return Err(StartError::BadConfig(format!("burst must be 1..={MAX_BURST}")));
        }
        let eal = eal::init(&config.eal_args)?;
        let lcores = eal.worker_lcores();
        if lcores.is_empty() {
            return Err(StartError::NoWorkerLcore);
        }
        // One pool per process start; a unique name lets tests start several dataplanes.
        static POOLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pool_name = format!("cr_pool{}", POOLS.fetch_add(1, Ordering::Relaxed));
        let pool = Mempool::create(&pool_name, config.mbufs, 0)?;
        let queues = lcores.len() as u16;
        let mut ports = Vec::with_capacity(config.ports.len());
        for p in &config.ports {
            let port = Port::open(&p.device, queues, &pool, p.mac, config.rings).map_err(|e| StartError::BadConfig(format!("port {:?} ({:?}): {e}", p.name, p.device)))?;
            ports.push(port);
        }
        let infos: Vec<PortInfo> = ports.iter().map(|p| PortInfo { mac: p.mac }).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut counters = Vec::new();
        for (q, &lcore) in lcores.iter().enumerate() {
            let c = Arc::new(CoreCounters::default());
            counters.push(c.clone());
            let mut pipeline = Pipeline::new(fib.reader().map_err(|e| StartError::BadConfig(format!("FIB reader: {e}")))?, infos.clone());
            if let Some(sec) = &security {
                let reader = sec.lock().unwrap_or_else(|e| e.into_inner()).reader().map_err(StartError::BadConfig)?;
                pipeline = pipeline.with_security(reader);
            }
            let worker = Box::new(Worker {
                queue: q as u16,
                port_ids: ports.iter().map(|p| p.id).collect(),
                pipeline,
                counters: c,
                stop: stop.clone(),
                burst: config.burst,
                tsc_hz: eal.tsc_hz(),
            });
            let arg = Box::into_raw(worker) as *mut c_void;
            // SAFETY: the lcore is an idle EAL worker; the trampoline takes ownership of arg.
            let rc = unsafe { ffi::rte_eal_remote_launch(Some(worker_main), arg, lcore) };
            if rc != 0 {
                // SAFETY: launch failed, so the box was not taken.
                drop(unsafe { Box::from_raw(arg as *mut Worker) });
                stop.store(true, Ordering::Release);
                // SAFETY: waiting for the workers launched so far.
                unsafe { ffi::rte_eal_mp_wait_lcore() };
                return Err(DpdkError::from_errno("rte_eal_remote_launch", rc).into());
            }
        }
        let names = config.ports.iter().map(|p| p.name.clone()).collect();
        // The security writer drains accepted BINDs and expires bindings every millisecond.
        let poller = security.clone().map(|sec| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cr-security".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                        sec.lock().unwrap_or_else(|e| e.into_inner()).poll(now);
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                })
                .expect("spawn the security poller")
        });
        Ok(Dataplane { stop, security, poller, lcores, counters, ports, names, pool, running: true })
    }

    /// The security tables' writer (authorisations, peers, bindings), when enabled.
    pub fn security(&self) -> Option<Arc<Mutex<Security>>> {
        self.security.clone()
    }

    /// Worker lcore ids, in queue order.
    pub fn lcores(&self) -> &[u32] {
        &self.lcores
    }

    /// Each worker's counters (index = queue = position in `lcores`).
    pub fn core_counters(&self) -> &[Arc<CoreCounters>] {
        &self.counters
    }

    /// Counters summed over every worker.
    pub fn counters(&self) -> CounterSnapshot {
        let mut s = CounterSnapshot::default();
        for c in &self.counters {
            s.add(c);
        }
        s
    }

    pub fn ports(&self) -> Vec<PortStatus> {
        self.ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortStatus {
                index: i as u16,
                name: self.names[i].clone(),
                mac: p.mac,
                link_up: p.link_up(),
                queues: p.queues,
                rss: p.rss,
                rings: p.rings,
                stats: p.stats(),
            })
            .collect()
    }

    /// The mempool's free mbufs and size (equal once idle: no leak).
    pub fn mbufs(&self) -> (u32, u32) {
        (self.pool.available(), self.pool.size())
    }

    /// Stops the workers (they finish their burst and flush), waits for them, then
    /// stops and closes every port. Order matters: memif crashes if a port closes
    /// while a worker still polls it.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        self.stop.store(true, Ordering::Release);
        // SAFETY: waits for every worker lcore to return from worker_main.
        unsafe { ffi::rte_eal_mp_wait_lcore() };
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
    }

    /// Stops the workers and closes the ports; returns the final counters and the
    /// mempool's (free, size) after every mbuf came back.
    pub fn shutdown(mut self) -> (CounterSnapshot, (u32, u32)) {
        self.stop();
        let counters = self.counters();
        for p in self.ports.drain(..) {
            p.close();
        }
        (counters, self.mbufs())
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop();
    }
}

extern "C" fn worker_main(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Box<Worker> leaked by Dataplane::start, handed over once.
    let mut worker = unsafe { Box::from_raw(arg as *mut Worker) };
    worker.run();
    0
}

impl Worker {
    fn run(&mut self) {
        let nports = self.port_ids.len();
        let mut rx: [*mut ffi::rte_mbuf; MAX_BURST] = [std::ptr::null_mut(); MAX_BURST];
        let mut verdicts = [Verdict::Drop(DropReason::NotW3ip); MAX_BURST];
        let mut tx: Vec<Vec<*mut ffi::rte_mbuf>> = (0..nports).map(|_| Vec::with_capacity(MAX_BURST * nports)).collect();
        let mut dropped: Vec<*mut ffi::rte_mbuf> = Vec::with_capacity(MAX_BURST * nports);
        let c = self.counters.clone();
        let mut clock = LoopClock::new(self.tsc_hz, io::tsc());
        while !self.stop.load(Ordering::Acquire) {
            clock.tick(io::tsc(), &c);
            let mut got = 0;
            for (pi, &port) in self.port_ids.iter().enumerate() {
                let n = io::rx_burst(port, self.queue, &mut rx[..self.burst]);
                if n == 0 {
                    continue;
                }
                got += n;
                // SAFETY: MbufPtr is repr(transparent) over *mut rte_mbuf.
                let frames: &mut [MbufPtr] = unsafe { std::slice::from_raw_parts_mut(rx.as_mut_ptr() as *mut MbufPtr, n) };
                self.pipeline.process(pi as u16, frames, &mut verdicts, &c);
                for i in 0..n {
                    match verdicts[i] {
                        Verdict::Tx(out) => tx[out as usize].push(rx[i]),
                        Verdict::Drop(_) | Verdict::Consumed => dropped.push(rx[i]),
                    }
                }
            }
            for (pi, q) in tx.iter_mut().enumerate() {
                if q.is_empty() {
                    continue;
                }
                // Lengths are read before sending: a sent mbuf belongs to the driver.
                // SAFETY: every pointer in q is an mbuf this worker still owns.
                let len = |m: &*mut ffi::rte_mbuf| unsafe { (**m).pkt_len } as u64;
                let offered: u64 = q.iter().map(len).sum();
                let sent = io::tx_burst(self.port_ids[pi], self.queue, q);
                let unsent: u64 = q[sent..].iter().map(len).sum();
                bump(&c.ports[pi].tx_packets, sent as u64);
                bump(&c.ports[pi].tx_bytes, offered - unsent);
                if sent < q.len() {
                    c.count_drop(DropReason::TxFull, (q.len() - sent) as u64);
                    dropped.extend_from_slice(&q[sent..]);
                }
                q.clear();
            }
            io::free_bulk(&mut dropped);
            dropped.clear();
            bump(&c.loops, 1);
            if got > 0 {
                bump(&c.busy_loops, 1);
            }
            self.pipeline.quiescent();
        }
        self.pipeline.offline();
    }
}
