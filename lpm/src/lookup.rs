//! The read side: one walk, and the bulk walk that interleaves a batch of keys.
//!
//! Both are generic `#[inline(always)]` bodies instantiated twice on x86-64: once
//! with `popcnt`/`bmi2`/`avx2` enabled (chosen at run time when the CPU has them)
//! and once for the baseline target, so the crate needs no `-C target-cpu`.

use crate::arena::Arena;
use crate::node::*;
use chainroute_wire::Address;

/// Keys walked together by the bulk lookup.
pub const BATCH: usize = 64;

#[inline(always)]
fn prefetch(p: *const u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
fn root_index(k: &[u8; 32]) -> usize {
    (k[0] as usize) << 8 | k[1] as usize
}

/// One step from a node outcome `o` (kind C8 or SKIP) to the next outcome; `pos`
/// is the key byte the next C8 node consumes. A failed skip yields 0 (stop).
#[inline(always)]
fn step(a: &Arena, k: &[u8; 32], o: u64, pos: &mut u8) -> u64 {
    let node = child_word(o);
    if kind(o) == KIND_C8 {
        let c = k[(*pos & 31) as usize] as u64;
        let w = (c >> 6) as usize;
        let bm = a.get(node.wrapping_add(w));
        let cum = (a.get(node.wrapping_add(C8_CUM)) >> (w * 8)) & 0xff;
        let below = bm & (u64::MAX >> (63 - (c & 63)));
        let idx = (cum + below.count_ones() as u64).wrapping_sub(1) as usize;
        *pos = pos.wrapping_add(1);
        a.outcome(node.wrapping_add(C8_OUT).wrapping_add(idx))
    } else {
        let end = ((a.get(node.wrapping_add(SKIP_META)) & 0x1ff) as usize).min(256);
        let m = &MASKS[end];
        let kw = words(k);
        let diff = ((kw[0] ^ a.get(node)) & m[0])
            | ((kw[1] ^ a.get(node.wrapping_add(1))) & m[1])
            | ((kw[2] ^ a.get(node.wrapping_add(2))) & m[2])
            | ((kw[3] ^ a.get(node.wrapping_add(3))) & m[3]);
        *pos = (end >> 3) as u8;
        if diff == 0 {
            a.outcome(node.wrapping_add(SKIP_OUT))
        } else {
            0
        }
    }
}

#[inline(always)]
fn decode(best: u64) -> Option<u32> {
    if best & HAS_VALUE != 0 {
        Some(best as u32)
    } else {
        None
    }
}

#[inline(always)]
fn walk_impl(a: &Arena, k: &[u8; 32]) -> Option<u32> {
    let mut best = a.get(DEFAULT_WORD);
    let mut o = a.outcome(root_index(k));
    let mut pos = 2u8;
    for _ in 0..MAX_STEPS {
        if o & HAS_VALUE != 0 {
            best = o;
        }
        if kind(o) == KIND_NONE {
            break;
        }
        o = step(a, k, o, &mut pos);
    }
    decode(best)
}

/// Walks up to [`BATCH`] keys level by level: each round advances every key that is
/// still walking by one node and prefetches the node it moves to, so the misses of
/// different keys overlap instead of queueing behind each other.
#[inline(always)]
fn chunk_impl(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    let n = keys.len().min(res.len()).min(BATCH);
    let default = a.get(DEFAULT_WORD);
    let mut out = [0u64; BATCH];
    let mut best = [0u64; BATCH];
    let mut pos = [2u8; BATCH];
    let mut active = [0u8; BATCH];
    for key in &keys[..n] {
        prefetch(a.addr(root_index(&key.0)));
    }
    let mut na = 0;
    for i in 0..n {
        let o = a.outcome(root_index(&keys[i].0));
        out[i] = o;
        best[i] = if o & HAS_VALUE != 0 { o } else { default };
        if kind(o) != KIND_NONE {
            prefetch(a.addr(child_word(o)));
            active[na] = i as u8;
            na += 1;
        }
    }
    let mut rounds = 0;
    while na > 0 && rounds < MAX_STEPS {
        let mut still = 0;
        for j in 0..na {
            let i = active[j] as usize;
            let o = step(a, &keys[i].0, out[i], &mut pos[i]);
            out[i] = o;
            if o & HAS_VALUE != 0 {
                best[i] = o;
            }
            if kind(o) != KIND_NONE {
                prefetch(a.addr(child_word(o)));
                active[still] = i as u8;
                still += 1;
            }
        }
        na = still;
        rounds += 1;
    }
    for i in 0..n {
        res[i] = decode(best[i]);
    }
}

#[inline(always)]
fn bulk_impl(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    for (k, r) in keys.chunks(BATCH).zip(res.chunks_mut(BATCH)) {
        chunk_impl(a, k, r);
    }
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use super::*;

    #[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,avx2")]
    pub fn walk(a: &Arena, k: &[u8; 32]) -> Option<u32> {
        walk_impl(a, k)
    }

    #[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,avx2")]
    pub fn bulk(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
        bulk_impl(a, keys, res)
    }

    #[inline(always)]
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("lzcnt")
            && std::arch::is_x86_feature_detected!("avx2")
    }
}

/// Longest-prefix match of one key.
#[inline]
pub fn lookup(a: &Arena, k: &Address) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    if fast::available() {
        // SAFETY: the CPU has every feature `fast::walk` is compiled for.
        return unsafe { fast::walk(a, &k.0) };
    }
    walk_impl(a, &k.0)
}

/// Longest-prefix match of every key; `res[i]` gets key `i`'s answer (only the
/// first `min(keys.len(), res.len())` are written).
pub fn lookup_bulk(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    #[cfg(target_arch = "x86_64")]
    if fast::available() {
        // SAFETY: the CPU has every feature `fast::bulk` is compiled for.
        return unsafe { fast::bulk(a, keys, res) };
    }
    bulk_impl(a, keys, res)
}

/// The baseline-target kernels, for tests that compare both instantiations.
pub fn lookup_portable(a: &Arena, k: &Address) -> Option<u32> {
    walk_impl(a, &k.0)
}

pub fn lookup_bulk_portable(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    bulk_impl(a, keys, res)
}
