//! The chainroute dataplane: a per-core, run-to-completion pipeline that classifies
//! frames (native W3IP or W3IP-in-UDP), checks headers, looks destinations up in
//! bulk in the lock-free FIB and rewrites each frame for its next hop; plus the DPDK
//! I/O layer (ports, queues, mempools) and the workers that drive it.
//!
//! Only [`io`] and [`runtime`] touch DPDK; [`pipeline`] and [`fib`] run on plain
//! buffers, so they are unit-tested and fuzzed without EAL.

pub mod counters;
pub mod fib;
#[cfg(feature = "dpdk")]
pub mod io;
pub mod pcap;
pub mod pipeline;
#[cfg(feature = "dpdk")]
pub mod runtime;
pub mod security;

pub use counters::{CoreCounters, CounterSnapshot, DropReason};
pub use fib::{Fib, FibReader, NextHop, NO_ROUTE};
pub use pipeline::{FrameBuf, Pipeline, PortInfo, Verdict, VecFrame, DEFAULT_BURST, MAX_BURST};
pub use security::{Binding, Ingress, PeerKey, Security, SecurityConfig, SecurityReader};
#[cfg(feature = "dpdk")]
pub use io::Rings;
#[cfg(feature = "dpdk")]
pub use runtime::{Dataplane, DataplaneConfig, PortConfig, PortStatus, StartError};
