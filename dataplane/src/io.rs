//! The DPDK I/O layer: mempools, ports and their queues, mbufs as [`FrameBuf`]s.
//! With `dpdk-sys`, the only code that sees DPDK types.

use crate::pipeline::FrameBuf;
use chainroute_wire::MacAddr;
use dpdk_sys::ffi;
use dpdk_sys::DpdkError;
use std::ffi::CString;
use std::ptr::NonNull;

/// A pool of packet buffers.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<ffi::rte_mempool>,
    size: u32,
}

// SAFETY: rte_mempool is designed for concurrent use from many lcores.
unsafe impl Send for Mempool {}
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with the default data room (2 KiB + headroom).
    pub fn create(name: &str, size: u32, socket: i32) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).expect("pool name without NUL");
        let cache = 256.min(size / 8);
        // SAFETY: EAL is up (callers hold an Eal); the name is a valid C string.
        let ptr = unsafe { ffi::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16, socket) };
        NonNull::new(ptr).map(|ptr| Mempool { ptr, size }).ok_or_else(|| DpdkError::last("rte_pktmbuf_pool_create"))
    }

    pub fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Mbufs in the pool now (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive.
        unsafe { ffi::shim_rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// One mbuf holding `frame`, or None when the pool is empty or the frame too big.
    pub fn alloc_frame(&self, frame: &[u8]) -> Option<MbufPtr> {
        // SAFETY: the pool is alive; append returns NULL when the room is short.
        unsafe {
            let m = ffi::shim_rte_pktmbuf_alloc(self.ptr.as_ptr());
            if m.is_null() {
                return None;
            }
            let len = u16::try_from(frame.len()).ok();
            let dst = len.map(|l| ffi::shim_rte_pktmbuf_append(m, l)).unwrap_or(std::ptr::null_mut());
            if dst.is_null() {
                ffi::shim_rte_pktmbuf_free(m);
                return None;
            }
            std::ptr::copy_nonoverlapping(frame.as_ptr(), dst as *mut u8, frame.len());
            Some(MbufPtr(m))
        }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: every port using the pool is closed before the pool drops (Dataplane
        // orders its fields so), and no mbuf of it is still held.
        unsafe { ffi::rte_mempool_free(self.ptr.as_ptr()) }
    }
}

/// An owned mbuf pointer, in a burst array. `repr(transparent)` so a burst of raw
/// `*mut rte_mbuf` can be handed to the pipeline as `&mut [MbufPtr]`.
#[repr(transparent)]
#[derive(Debug)]
pub struct MbufPtr(pub *mut ffi::rte_mbuf);

// SAFETY: an mbuf belongs to one lcore at a time; moving ownership between threads is fine.
unsafe impl Send for MbufPtr {}

impl MbufPtr {
    pub fn free(self) {
        // SAFETY: we own the mbuf.
        unsafe { ffi::shim_rte_pktmbuf_free(self.0) }
    }
}

impl FrameBuf for MbufPtr {
    // data()/data_mut() run several times per packet: they read the mbuf's fields
    // directly (what rte_pktmbuf_mtod does) instead of calling through the C shim.
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: single-segment mbufs (no scatter RX is configured): data_len bytes
        // at buf_addr + data_off, as rte_pktmbuf_mtod computes.
        unsafe {
            let m = &*self.0;
            std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize)
        }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; we own the mbuf exclusively.
        unsafe {
            let m = &*self.0;
            std::slice::from_raw_parts_mut((m.buf_addr as *mut u8).add(m.data_off as usize), m.data_len as usize)
        }
    }
    // The three edits below are what rte_pktmbuf_adj / _prepend / _trim do to a
    // single-segment mbuf, done here: a C call per packet showed in the profile.
    #[inline]
    fn strip_front(&mut self, n: usize) {
        // SAFETY: we own the mbuf exclusively; it has one segment, so pkt_len equals
        // data_len, and n is cut to data_len.
        unsafe {
            let m = &mut *self.0;
            let n = (n.min(m.data_len as usize)) as u16;
            m.data_off += n;
            m.data_len -= n;
            m.pkt_len -= n as u32;
        }
    }
    #[inline]
    fn push_front(&mut self, n: usize) -> bool {
        // SAFETY: as above; the headroom (data_off) bounds n, so data_off + data_len
        // stays within the buffer and fits u16.
        unsafe {
            let m = &mut *self.0;
            if n > m.data_off as usize {
                return false;
            }
            m.data_off -= n as u16;
            m.data_len += n as u16;
            m.pkt_len += n as u32;
        }
        true
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        // SAFETY: as above; only shortens.
        unsafe {
            let m = &mut *self.0;
            if len < m.data_len as usize {
                m.pkt_len -= m.data_len as u32 - len as u32;
                m.data_len = len as u16;
            }
        }
    }
}

/// Receives up to `out.len()` frames from a queue.
#[inline]
pub fn rx_burst(port: u16, queue: u16, out: &mut [*mut ffi::rte_mbuf]) -> usize {
    // SAFETY: the port and queue are started; out has room for out.len() pointers.
    unsafe { ffi::shim_rte_eth_rx_burst(port, queue, out.as_mut_ptr(), out.len().min(u16::MAX as usize) as u16) as usize }
}

/// Queues frames for transmission; returns how many the device took (the rest
/// stay owned by the caller).
#[inline]
pub fn tx_burst(port: u16, queue: u16, frames: &mut [*mut ffi::rte_mbuf]) -> usize {
    // SAFETY: the port and queue are started; the mbufs are ours until taken.
    unsafe { ffi::shim_rte_eth_tx_burst(port, queue, frames.as_mut_ptr(), frames.len().min(u16::MAX as usize) as u16) as usize }
}

/// The CPU's time-stamp counter (ticks at the EAL's `tsc_hz`).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: no preconditions.
    unsafe { ffi::shim_rte_rdtsc() }
}

/// Frees a list of mbufs.
#[inline]
pub fn free_bulk(frames: &mut [*mut ffi::rte_mbuf]) {
    if !frames.is_empty() {
        // SAFETY: we own every mbuf in the list.
        unsafe { ffi::shim_rte_pktmbuf_free_bulk(frames.as_mut_ptr(), frames.len() as u32) }
    }
}

/// How to find or create a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A virtual device created at start: `net_null0`, `net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap`,
    /// `net_tap0,iface=cr0`, `net_memif0,role=server,socket=/run/x.sock`, `net_ring0`...
    Vdev(String),
    /// A device the EAL already probed, by name (a PCI address such as `0000:03:00.0`).
    Named(String),
}

impl Device {
    /// Parses a config value: names starting with `net_` are vdevs.
    pub fn parse(spec: &str) -> Device {
        if spec.starts_with("net_") {
            Device::Vdev(spec.to_string())
        } else {
            Device::Named(spec.to_string())
        }
    }

    fn name(&self) -> &str {
        match self {
            Device::Vdev(s) => s.split(',').next().unwrap_or(s),
            Device::Named(s) => s,
        }
    }
}

/// Ethernet device statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// A started port with `queues` RX and TX queues (one pair per worker).
#[derive(Debug)]
pub struct Port {
    pub id: u16,
    pub name: String,
    pub mac: MacAddr,
    pub queues: u16,
    /// RSS spreads flows over the RX queues (when the device can).
    pub rss: bool,
    /// The descriptors per queue the device took (it may round what was asked).
    pub rings: Rings,
    vdev: Option<String>,
    closed: bool,
}

/// Descriptors per RX and per TX queue. A bigger RX ring rides out a longer stall
/// of its worker (at 10 Mpps, 1024 slots last 100 µs) at the cost of mbufs held in
/// it and of cache footprint; the device may round either to what it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rings {
    pub rx: u16,
    pub tx: u16,
}

impl Default for Rings {
    fn default() -> Rings {
        Rings { rx: 1024, tx: 1024 }
    }
}

fn check(call: &'static str, rc: i32) -> Result<(), DpdkError> {
    if rc < 0 {
        Err(DpdkError::from_errno(call, rc))
    } else {
        Ok(())
    }
}

impl Port {
    /// Creates (for a vdev) or finds the device, configures `queues` queue pairs
    /// (RSS on IP/UDP when the device has it and there are several), and starts it.
    pub fn open(device: &Device, queues: u16, pool: &Mempool, mac: Option<MacAddr>, rings: Rings) -> Result<Port, DpdkError> {
        let name = device.name().to_string();
        let cname = CString::new(name.clone()).expect("device name without NUL");
        let mut vdev = None;
        if let Device::Vdev(spec) = device {
            let args = spec.split_once(',').map(|(_, a)| a).unwrap_or("");
            let cargs = CString::new(args).expect("device args without NUL");
            // SAFETY: EAL is up; both strings are valid C strings.
            check("rte_vdev_init", unsafe { ffi::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) })?;
            vdev = Some(name.clone());
        }
        let mut id = 0u16;
        // SAFETY: valid name and out-pointer.
        if let Err(e) = check("rte_eth_dev_get_port_by_name", unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) }) {
            if let Some(v) = &vdev {
                let c = CString::new(v.as_str()).unwrap();
                // SAFETY: undoing the vdev created above.
                unsafe { ffi::rte_vdev_uninit(c.as_ptr()) };
            }
            return Err(e);
        }
        let mut port = Port { id, name, mac: MacAddr::default(), queues, rss: false, rings, vdev, closed: false };
        // From here on, a failure closes the port (Drop) before returning.
        port.configure(queues, pool, mac, rings)?;
        Ok(port)
    }

    fn configure(&mut self, queues: u16, pool: &Mempool, mac: Option<MacAddr>, rings: Rings) -> Result<(), DpdkError> {
        let id = self.id;
        // SAFETY (whole block): the port id is valid; the structs are zeroed C structs
        // that DPDK fills or reads; the pool outlives the port (Dataplane owns both).
        unsafe {
            let mut info: ffi::rte_eth_dev_info = std::mem::zeroed();
            check("rte_eth_dev_info_get", ffi::rte_eth_dev_info_get(id, &mut info))?;
            if queues > info.max_rx_queues || queues > info.max_tx_queues {
                return Err(DpdkError {
                    call: "rte_eth_dev_configure",
                    errno: 22,
                    message: format!("device {} has {} RX / {} TX queues, {} workers need one each", self.name, info.max_rx_queues, info.max_tx_queues, queues),
                });
            }
            let mut conf: ffi::rte_eth_conf = std::mem::zeroed();
            let rss_hf = info.flow_type_rss_offloads & ffi::shim_rss_ip_udp();
            if queues > 1 && rss_hf != 0 {
                conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
                self.rss = true;
            }
            check("rte_eth_dev_configure", ffi::rte_eth_dev_configure(id, queues, queues, &conf))?;
            let (mut rxd, mut txd) = (rings.rx, rings.tx);
            check("rte_eth_dev_adjust_nb_rx_tx_desc", ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd))?;
            self.rings = Rings { rx: rxd, tx: txd };
            let socket = ffi::rte_eth_dev_socket_id(id);
            let socket = if socket < 0 { 0 } else { socket as u32 };
            for q in 0..queues {
                check("rte_eth_rx_queue_setup", ffi::rte_eth_rx_queue_setup(id, q, rxd, socket, std::ptr::null(), pool.as_ptr()))?;
                check("rte_eth_tx_queue_setup", ffi::rte_eth_tx_queue_setup(id, q, txd, socket, std::ptr::null()))?;
            }
            // Not every vdev supports promiscuous mode; a router wants it where it exists.
            let _ = ffi::rte_eth_promiscuous_enable(id);
            // A device that cannot change its MAC (net_pcap) still runs promiscuous, so
            // the configured MAC is honoured in software: filter and source address.
            let mut software_mac = None;
            if let Some(m) = mac {
                let mut addr = ffi::rte_ether_addr { addr_bytes: m.0 };
                let rc = ffi::rte_eth_dev_default_mac_addr_set(id, &mut addr);
                if rc == -95 {
                    software_mac = Some(m);
                } else {
                    check("rte_eth_dev_default_mac_addr_set", rc)?;
                }
            }
            check("rte_eth_dev_start", ffi::rte_eth_dev_start(id))?;
            let mut hw: ffi::rte_ether_addr = std::mem::zeroed();
            check("rte_eth_macaddr_get", ffi::rte_eth_macaddr_get(id, &mut hw))?;
            self.mac = software_mac.unwrap_or(MacAddr(hw.addr_bytes));
        }
        Ok(())
    }

    /// Link state now, without waiting.
    pub fn link_up(&self) -> bool {
        // SAFETY: valid port id and out-pointer.
        unsafe {
            let mut link: ffi::rte_eth_link = std::mem::zeroed();
            ffi::rte_eth_link_get_nowait(self.id, &mut link) == 0 && link.link_status() != 0
        }
    }

    pub fn stats(&self) -> EthStats {
        // SAFETY: valid port id and out-pointer.
        unsafe {
            let mut s: ffi::rte_eth_stats = std::mem::zeroed();
            if ffi::rte_eth_stats_get(self.id, &mut s) != 0 {
                return EthStats::default();
            }
            EthStats {
                ipackets: s.ipackets,
                opackets: s.opackets,
                ibytes: s.ibytes,
                obytes: s.obytes,
                imissed: s.imissed,
                ierrors: s.ierrors,
                oerrors: s.oerrors,
                rx_nombuf: s.rx_nombuf,
            }
        }
    }

    /// Stops and closes the device (a vdev is removed too: net_pcap flushes its
    /// output file here). Workers must have stopped using it.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        // SAFETY: no worker polls the port any more (callers stop them first).
        unsafe {
            ffi::rte_eth_dev_stop(self.id);
            ffi::rte_eth_dev_close(self.id);
            if let Some(v) = &self.vdev {
                let c = CString::new(v.as_str()).unwrap();
                ffi::rte_vdev_uninit(c.as_ptr());
            }
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.close_inner();
    }
}
