//! Bindings to the system DPDK 22.11: `ffi` holds what bindgen generated from the
//! headers plus `shim_*` out-of-line copies of the static-inline hot path (RX/TX
//! burst, mbuf alloc/free/mtod, lcore id, rdtsc, `rte_errno`). The [`eal`] module is
//! the one safe entry point every user needs first. Only this crate and the
//! dataplane's I/O layer see DPDK types.

#[allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code, clippy::all)]
pub mod ffi {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub mod eal;

pub use eal::{DpdkError, Eal};
