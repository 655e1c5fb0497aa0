//! DPDK's `rte_fib6` (trie type: DIR-24-8, a 2^24 table then 256-entry tbl8
//! groups, one per further byte) and `rte_lpm6` (the same layout with a rule hash),
//! through `dpdk-sys`, with the EAL started without hugepages.
//!
//! Both hold prefixes up to /128 and next hops of 31 (fib6, 4-byte entries) or 21
//! (lpm6) bits, so the bench maps each distinct value to a dense id (1, 2, ...;
//! 0 means no match) and maps answers back only after timing. The tbl8 pools are
//! sized as an operator would: from the count of 8-bit paths the table needs
//! ([`tbl8_groups`]) times 1.5, retried at 2x and 3x if DPDK runs out (ENOSPC).
//!
//! `rte_fib6` is measured twice: with DPDK's default scalar lookup (what the EAL
//! arguments of the issue give: DPDK keeps AVX-512 off unless told) and with its
//! AVX-512 bulk lookup (the EAL gets `--force-max-simd-bitwidth=512` so that
//! `rte_fib6_select_lookup` may pick it); the faster counts as `rte_fib6`. Memory per engine is computed from DPDK 22.11's
//! allocation sizes for that configuration (tables, tbl8 pool, rule storage).

use super::Engine;
use chainroute_wire::{Address, Prefix};
use dpdk_sys::ffi;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

/// Which DPDK table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fib6,
    Lpm6,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fib6 => "rte_fib6",
            Kind::Lpm6 => "rte_lpm6",
        }
    }
}

/// Pool sizes tried, as multiples of [`tbl8_groups`]: DPDK allocates groups for
/// both edges of every range it writes, so it may need more than one per path;
/// a pool that runs out (ENOSPC) is retried at the next size.
const POOL_FACTORS: [f64; 3] = [1.5, 2.0, 3.0];

/// EAL memory (MB) the bench asks for: the 1024 unless the largest pool
/// tried needs more (only one DPDK table exists at a time).
pub fn eal_memory_mb(prefixes: &[(Prefix, u32)]) -> u32 {
    // Room for the largest pool plus the one before it (a failed attempt's memory
    // is freed, but the heap may not hand it back as one piece).
    let n = POOL_FACTORS.len();
    let groups = tbl8_groups(prefixes) as f64 * (POOL_FACTORS[n - 1] + POOL_FACTORS[n - 2]);
    // tbl24 (64 MiB) + 1 KiB groups + the RIB/rule storage + slack for the EAL.
    let need = (128u64 << 20) + (groups as u64) * 1040 + prefixes.len() as u64 * 320 + (128 << 20);
    ((need >> 20) as u32).max(1024)
}

/// Runs `build(pool)` with growing tbl8 pools until the table fits.
fn with_pool<T>(
    prefixes: &[(Prefix, u32)],
    mut build: impl FnMut(u32) -> Result<T, (bool, String)>,
) -> Result<T, String> {
    let groups = tbl8_groups(prefixes) as f64;
    let mut last = String::new();
    for f in POOL_FACTORS {
        match build((groups * f) as u32 + 64) {
            Ok(t) => return Ok(t),
            Err((true, e)) => last = e,
            Err((false, e)) => return Err(e),
        }
    }
    Err(format!(
        "{last} (even with {}x the tbl8 groups)",
        POOL_FACTORS[POOL_FACTORS.len() - 1]
    ))
}

/// Starts the EAL once per process with the bench's arguments.
pub fn start_eal(mem_mb: u32) -> Result<(), String> {
    let args = vec![
        "--no-huge".to_string(),
        "--no-pci".into(),
        "-m".into(),
        mem_mb.to_string(),
        "--file-prefix".into(),
        format!("lpmbench-{}", std::process::id()),
        "-l".into(),
        "0".into(),
        "--log-level=error".into(),
        "--force-max-simd-bitwidth=512".into(),
    ];
    dpdk_sys::eal::init(&args)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// tbl8 groups a DIR-24-8 table over these prefixes needs: one per distinct
/// d-bit path (d = 24, 32, ..., 120) under which some prefix is longer than d.
pub fn tbl8_groups(prefixes: &[(Prefix, u32)]) -> usize {
    let mut seen: HashSet<(u16, u128)> = HashSet::new();
    for (p, _) in prefixes.iter().filter(|(p, _)| p.len() <= 128) {
        let a = u128::from_be_bytes(p.addr().0[..16].try_into().expect("16 bytes"));
        let mut d = 24u16;
        while d < p.len() {
            seen.insert((d, a >> (128 - d)));
            d += 8;
        }
    }
    seen.len()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique_name(kind: Kind) -> CString {
    CString::new(format!(
        "{}_{}",
        kind.name(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("no NUL")
}

/// Dense next-hop ids: `ids[v]` for a value, `values[id]` back.
struct Ids {
    values: Vec<u32>,
}

impl Ids {
    fn new(prefixes: &[(Prefix, u32)]) -> (Ids, Vec<u32>) {
        let mut map: HashMap<u32, u32> = HashMap::new();
        let mut values = vec![0];
        let ids = prefixes
            .iter()
            .map(|&(_, v)| {
                *map.entry(v).or_insert_with(|| {
                    values.push(v);
                    (values.len() - 1) as u32
                })
            })
            .collect();
        (Ids { values }, ids)
    }

    fn value(&self, id: u64) -> Option<u32> {
        if id == 0 {
            None
        } else {
            self.values.get(id as usize).copied()
        }
    }
}

fn ipv6(a: &Address) -> [u8; 16] {
    a.0[..16].try_into().expect("16 bytes")
}

/// `rte_fib6`, trie type, 4-byte next hops.
pub struct Fib6 {
    fib: *mut ffi::rte_fib6,
    ids: Ids,
    bytes: usize,
    vector: bool,
}

impl Fib6 {
    /// Builds the table from the prefixes of length <= 128.
    pub fn new(prefixes: &[(Prefix, u32)]) -> Result<Fib6, String> {
        let prefixes: Vec<(Prefix, u32)> = prefixes
            .iter()
            .copied()
            .filter(|(p, _)| p.len() <= 128)
            .collect();
        with_pool(&prefixes, |num_tbl8| Fib6::with_pool(&prefixes, num_tbl8))
    }

    fn with_pool(prefixes: &[(Prefix, u32)], num_tbl8: u32) -> Result<Fib6, (bool, String)> {
        let mut conf = ffi::rte_fib6_conf {
            type_: ffi::RTE_FIB6_TRIE,
            default_nh: 0,
            // The RIB behind the FIB needs a node per route and per branching point.
            max_routes: (2 * prefixes.len() + 64) as i32,
            rib_ext_sz: 0,
            ..Default::default()
        };
        conf.__bindgen_anon_1.trie = ffi::rte_fib6_conf__bindgen_ty_1__bindgen_ty_1 {
            nh_sz: ffi::RTE_FIB6_TRIE_4B,
            num_tbl8,
        };
        let name = unique_name(Kind::Fib6);
        // SAFETY: the EAL is up (start_eal), `name` and `conf` are valid for the call.
        let fib = unsafe { ffi::rte_fib6_create(name.as_ptr(), -1, &mut conf) };
        if fib.is_null() {
            return Err((
                false,
                format!("{}", dpdk_sys::DpdkError::last("rte_fib6_create")),
            ));
        }
        let (ids, nh) = Ids::new(prefixes);
        let mut t = Fib6 {
            fib,
            ids,
            bytes: 0,
            vector: false,
        };
        for ((p, _), id) in prefixes.iter().zip(nh) {
            let ip = ipv6(&p.addr());
            // SAFETY: `fib` is live; `ip` is 16 readable bytes.
            let rc = unsafe { ffi::rte_fib6_add(t.fib, ip.as_ptr(), p.len() as u8, id as u64) };
            if rc < 0 {
                let e = dpdk_sys::DpdkError::from_errno("rte_fib6_add", rc);
                return Err((e.errno == 28, format!("rte_fib6_add {p}: {e}")));
            }
        }
        // SAFETY: `fib` is live.
        t.vector =
            unsafe { ffi::rte_fib6_select_lookup(t.fib, ffi::RTE_FIB6_LOOKUP_TRIE_VECTOR_AVX512) }
                == 0;
        // DPDK 22.11 trie: tbl24 of 2^24 entries and (num_tbl8 + 1) groups of 256,
        // 4 bytes each; the tbl8 index pool; the RIB's node pool (~64 B a node).
        t.bytes = (1 << 24) * 4
            + (num_tbl8 as usize + 1) * 256 * 4
            + num_tbl8 as usize * 4
            + (2 * prefixes.len() + 64) * 64;
        Ok(t)
    }

    /// Whether DPDK's AVX-512 lookup is in use.
    pub fn vector(&self) -> bool {
        self.vector
    }

    /// Switches between DPDK's scalar and AVX-512 bulk lookup; returns whether the
    /// one asked for is in use.
    pub fn set_vector(&mut self, on: bool) -> bool {
        let kind = if on {
            ffi::RTE_FIB6_LOOKUP_TRIE_VECTOR_AVX512
        } else {
            ffi::RTE_FIB6_LOOKUP_TRIE_SCALAR
        };
        // SAFETY: `fib` is live.
        let ok = unsafe { ffi::rte_fib6_select_lookup(self.fib, kind) } == 0;
        if ok {
            self.vector = on;
        }
        ok
    }
}

impl Drop for Fib6 {
    fn drop(&mut self) {
        // SAFETY: created by rte_fib6_create, freed once.
        unsafe { ffi::rte_fib6_free(self.fib) };
    }
}

impl Engine for Fib6 {
    type Key = [u8; 16];
    type Out = u64;

    fn name(&self) -> &'static str {
        "rte_fib6"
    }

    fn key(&self, a: &Address) -> [u8; 16] {
        ipv6(a)
    }

    fn decode(&self, o: u64) -> Option<u32> {
        self.ids.value(o)
    }

    #[inline]
    fn lookup(&self, k: &[u8; 16]) -> u64 {
        let mut nh = 0u64;
        // SAFETY: `fib` is live; DPDK reads one key and writes one next hop (it takes
        // the key array as mutable but does not write it).
        unsafe {
            ffi::rte_fib6_lookup_bulk(self.fib, k as *const [u8; 16] as *mut [u8; 16], &mut nh, 1)
        };
        nh
    }

    #[inline]
    fn lookup_bulk(&self, keys: &[[u8; 16]], out: &mut [u64]) {
        let n = keys.len().min(out.len());
        // SAFETY: `fib` is live; n keys readable, n next hops writable (keys unwritten).
        unsafe {
            ffi::rte_fib6_lookup_bulk(
                self.fib,
                keys.as_ptr() as *mut [u8; 16],
                out.as_mut_ptr(),
                n as i32,
            )
        };
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// `rte_lpm6`. It takes depths 1..=128 only, so a default route becomes the answer
/// for a miss (as an application using rte_lpm6 does).
pub struct Lpm6 {
    lpm: *mut ffi::rte_lpm6,
    ids: Ids,
    bytes: usize,
    default: i32,
}

impl Lpm6 {
    /// Builds the table from the prefixes of length <= 128.
    pub fn new(prefixes: &[(Prefix, u32)]) -> Result<Lpm6, String> {
        let prefixes: Vec<(Prefix, u32)> = prefixes
            .iter()
            .copied()
            .filter(|(p, _)| p.len() <= 128)
            .collect();
        with_pool(&prefixes, |n| Lpm6::with_pool(&prefixes, n))
    }

    fn with_pool(prefixes: &[(Prefix, u32)], number_tbl8s: u32) -> Result<Lpm6, (bool, String)> {
        let conf = ffi::rte_lpm6_config {
            max_rules: (prefixes.len() + 64) as u32,
            number_tbl8s,
            flags: 0,
        };
        let name = unique_name(Kind::Lpm6);
        // SAFETY: the EAL is up, `name` and `conf` are valid for the call.
        let lpm = unsafe { ffi::rte_lpm6_create(name.as_ptr(), -1, &conf) };
        if lpm.is_null() {
            return Err((
                false,
                format!("{}", dpdk_sys::DpdkError::last("rte_lpm6_create")),
            ));
        }
        let (ids, nh) = Ids::new(prefixes);
        let mut t = Lpm6 {
            lpm,
            ids,
            bytes: 0,
            default: -1,
        };
        if t.ids.values.len() >= 1 << 21 {
            return Err((false, "more than 2^21 distinct next hops".into()));
        }
        for ((p, _), id) in prefixes.iter().zip(nh) {
            if p.is_empty() {
                t.default = id as i32;
                continue;
            }
            let ip = ipv6(&p.addr());
            // SAFETY: `lpm` is live; `ip` is 16 readable bytes.
            let rc = unsafe { ffi::rte_lpm6_add(t.lpm, ip.as_ptr(), p.len() as u8, id) };
            if rc < 0 {
                let e = dpdk_sys::DpdkError::from_errno("rte_lpm6_add", rc);
                return Err((e.errno == 28, format!("rte_lpm6_add {p}: {e}")));
            }
        }
        // DPDK 22.11 lpm6: tbl24 of 2^24 4-byte entries, the tbl8 groups (1 KiB)
        // with an 8-byte header and a 4-byte pool slot each, and the rule hash
        // (key 17 B + next hop, bucketed: ~64 B a rule).
        t.bytes =
            (1 << 24) * 4 + number_tbl8s as usize * (1024 + 8 + 4) + (prefixes.len() + 64) * 64;
        Ok(t)
    }
}

impl Drop for Lpm6 {
    fn drop(&mut self) {
        // SAFETY: created by rte_lpm6_create, freed once.
        unsafe { ffi::rte_lpm6_free(self.lpm) };
    }
}

impl Engine for Lpm6 {
    type Key = [u8; 16];
    type Out = i32;

    fn name(&self) -> &'static str {
        "rte_lpm6"
    }

    fn key(&self, a: &Address) -> [u8; 16] {
        ipv6(a)
    }

    fn decode(&self, o: i32) -> Option<u32> {
        let o = if o < 0 { self.default } else { o };
        if o < 0 {
            None
        } else {
            self.ids.value(o as u64)
        }
    }

    #[inline]
    fn lookup(&self, k: &[u8; 16]) -> i32 {
        let mut nh = 0u32;
        // SAFETY: `lpm` is live; DPDK reads 16 key bytes and writes one next hop.
        let rc = unsafe { ffi::rte_lpm6_lookup(self.lpm, k.as_ptr(), &mut nh) };
        if rc == 0 {
            nh as i32
        } else {
            -1
        }
    }

    #[inline]
    fn lookup_bulk(&self, keys: &[[u8; 16]], out: &mut [i32]) {
        let n = keys.len().min(out.len());
        // SAFETY: `lpm` is live; n keys readable (not written), n results writable.
        unsafe {
            ffi::rte_lpm6_lookup_bulk_func(
                self.lpm,
                keys.as_ptr() as *mut [u8; 16],
                out.as_mut_ptr(),
                n as u32,
            )
        };
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}
