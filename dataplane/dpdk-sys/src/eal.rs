//! The Environment Abstraction Layer: initialised once per process.

use crate::ffi;
use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// A failed DPDK call: which one, its errno and DPDK's text for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub call: &'static str,
    pub errno: i32,
    pub message: String,
}

impl DpdkError {
    /// Builds the error from `rte_errno` (or from a negative return value).
    pub fn last(call: &'static str) -> DpdkError {
        // SAFETY: reading the per-thread errno has no preconditions.
        Self::from_errno(call, unsafe { ffi::shim_rte_errno() })
    }

    /// Builds the error from an errno value (DPDK returns `-errno` from many calls).
    pub fn from_errno(call: &'static str, errno: i32) -> DpdkError {
        let errno = errno.abs();
        // SAFETY: rte_strerror returns a pointer to a static or thread-local string.
        let message = unsafe { CStr::from_ptr(ffi::rte_strerror(errno)) }.to_string_lossy().into_owned();
        DpdkError { call, errno, message }
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} failed: {} (errno {})", self.call, self.message, self.errno)
    }
}

impl std::error::Error for DpdkError {}

/// Proof that the EAL is up in this process. It stays up until [`Eal::cleanup`].
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<Eal> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

impl Eal {
    /// The arguments the EAL was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Lcore ids the EAL runs workers on (excluding the main lcore).
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: EAL is initialised (we hold &Eal); rte_get_next_lcore only reads config.
        let mut id = unsafe { ffi::rte_get_next_lcore(u32::MAX, 1, 0) };
        while id < ffi::RTE_MAX_LCORE {
            out.push(id);
            id = unsafe { ffi::rte_get_next_lcore(id, 1, 0) };
        }
        out
    }

    /// The main lcore's id.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised.
        unsafe { ffi::rte_get_main_lcore() }
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised.
        unsafe { ffi::rte_get_tsc_hz() }
    }

    /// Releases hugepage/file resources. Call once, after every port is closed and
    /// every worker stopped; the process should exit soon after.
    pub fn cleanup(&self) -> Result<(), DpdkError> {
        // SAFETY: EAL is initialised; callers guarantee nothing DPDK runs any more.
        let rc = unsafe { ffi::rte_eal_cleanup() };
        if rc < 0 {
            return Err(DpdkError::from_errno("rte_eal_cleanup", rc));
        }
        Ok(())
    }
}

/// Starts the EAL with `args` (program name first is not needed: one is added).
/// The EAL can start only once per process: a later call returns the running one
/// if its arguments are the same, and an error otherwise.
pub fn init<S: AsRef<str>>(args: &[S]) -> Result<&'static Eal, DpdkError> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let wanted: Vec<String> = args.iter().map(|s| s.as_ref().to_owned()).collect();
    if let Some(eal) = EAL.get() {
        if eal.args == wanted {
            return Ok(eal);
        }
        return Err(DpdkError { call: "rte_eal_init", errno: 114, message: format!("EAL already running with {:?}", eal.args) });
    }
    let mut owned: Vec<CString> = Vec::with_capacity(wanted.len() + 1);
    owned.push(CString::new("chainroute").unwrap());
    for a in &wanted {
        owned.push(CString::new(a.as_str()).map_err(|_| DpdkError { call: "rte_eal_init", errno: 22, message: format!("argument {a:?} holds a NUL byte") })?);
    }
    // rte_eal_init may permute argv; it keeps pointers, so the strings must outlive the
    // EAL: they are leaked on purpose (a few bytes, once per process).
    let mut argv: Vec<*mut std::os::raw::c_char> = owned.into_iter().map(|c| c.into_raw()).collect();
    let argc = argv.len() as i32;
    // SAFETY: argv holds argc valid NUL-terminated strings that live forever.
    let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
    std::mem::forget(argv);
    if rc < 0 {
        return Err(DpdkError::last("rte_eal_init"));
    }
    Ok(EAL.get_or_init(|| Eal { args: wanted }))
}

/// Arguments for a test or benchmark EAL: no hugepages, no PCI, `mem_mb` of memory,
/// a unique file prefix, lcores `lcores` (e.g. "0" or "0-2"), quiet logs.
pub fn test_args(prefix: &str, mem_mb: u32, lcores: &str) -> Vec<String> {
    vec![
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        mem_mb.to_string(),
        "--file-prefix".into(),
        format!("{prefix}-{}", std::process::id()),
        "-l".into(),
        lcores.into(),
        "--log-level=error".into(),
        "--no-telemetry".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_starts_once_and_reports_bad_calls() {
        let eal = init(&test_args("dpdksys-test", 256, "0")).expect("EAL init with --no-huge");
        assert!(eal.tsc_hz() > 0);
        assert!(eal.worker_lcores().is_empty());
        // Same arguments: the running EAL. Other arguments: a clear error.
        assert!(init(&test_args("dpdksys-test", 256, "0")).is_ok());
        let err = init(&["--no-huge"]).unwrap_err();
        assert!(err.message.contains("already running"), "{err}");
        // A DPDK call that fails maps errno to text.
        let e = DpdkError::from_errno("x", -22);
        assert_eq!(e.errno, 22);
        assert!(!e.message.is_empty());
    }
}
