//! The read side: one walk, and the bulk walk that interleaves a batch of keys.
//!
//! Both are generic bodies instantiated twice on x86-64: with AVX2/BMI/POPCNT
//! (chosen at run time when the CPU has them) and for the baseline target, so the
//! crate needs no `-C target-cpu`. Nothing here can index out of the arena (every
//! index is masked) or loop forever (walks are bounded by [`MAX_STEPS`]).

use crate::arena::Arena;
use crate::node::*;
use chainroute_wire::Address;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// Keys walked together by the bulk lookup.
pub const BATCH: usize = 64;
const IDLE: usize = usize::MAX;

/// Per chunk width (by wcode): a word with a 1 in the low bit of every lane, and
/// one with a 1 in the high bit of every lane.
const LOW: [u64; 4] = [
    0x0101_0101_0101_0101,
    0x0001_0001_0001_0001,
    0x0000_0001_0000_0001,
    1,
];
const HIGH: [u64; 4] = [LOW[0] << 7, LOW[1] << 15, LOW[2] << 31, LOW[3] << 63];

/// How a RANGE node's bounds are compared with a chunk.
trait Isa {
    /// Number of the first `nb` bounds (lanes of `8 << WC` bits, low lane first, in
    /// `b[0..4]`) that are <= `c`. Branch-free.
    fn count_le<const WC: usize>(b: [u64; 4], nb: usize, c: u64) -> usize;
}

/// Lanes `b <= c` as the high bit of each lane (SWAR: no carry crosses a lane).
#[inline(always)]
fn le_lanes(b: u64, c: u64, h: u64) -> u64 {
    let t = (c | h).wrapping_sub(b & !h);
    ((c & !b) | (!(c ^ b) & t)) & h
}

struct Portable;

impl Isa for Portable {
    #[inline(always)]
    fn count_le<const WC: usize>(b: [u64; 4], nb: usize, c: u64) -> usize {
        let h = HIGH[WC];
        let cc = c.wrapping_mul(LOW[WC]);
        let valid = nb << WC;
        let mut n = 0;
        for (j, w) in b.iter().enumerate() {
            let r = le_lanes(*w, cc, h);
            // Bytes of this word that belong to real bounds.
            let k = valid.saturating_sub(8 * j).min(8);
            let m = if k == 0 { 0 } else { u64::MAX >> (64 - 8 * k) };
            n += (r & m).count_ones() as usize;
        }
        n
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    #[inline(always)]
    fn count_le<const WC: usize>(b: [u64; 4], nb: usize, c: u64) -> usize {
        // SAFETY: `Avx2` is only used by the `fast` kernels, which are compiled with
        // AVX2 and only called after `fast::available()` found it on this CPU.
        unsafe { count_le_avx2::<WC>(b, nb, c) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,bmi2")]
#[inline]
fn count_le_avx2<const WC: usize>(b: [u64; 4], nb: usize, c: u64) -> usize {
    use core::arch::x86_64::*;
    let v = _mm256_set_epi64x(b[3] as i64, b[2] as i64, b[1] as i64, b[0] as i64);
    let m = match WC {
        0 => {
            let k = _mm256_set1_epi8(c as i8);
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(v, k), k)) as u32
        }
        1 => {
            let k = _mm256_set1_epi16(c as i16);
            _mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_max_epu16(v, k), k)) as u32
        }
        2 => {
            let k = _mm256_set1_epi32(c as i32);
            _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_max_epu32(v, k), k)) as u32
        }
        _ => {
            let bias = _mm256_set1_epi64x(i64::MIN);
            let k = _mm256_xor_si256(_mm256_set1_epi64x(c as i64), bias);
            !(_mm256_movemask_epi8(_mm256_cmpgt_epi64(_mm256_xor_si256(v, bias), k)) as u32)
        }
    };
    (_bzhi_u32(m, ((nb << WC) as u32).min(32)).count_ones() >> WC) as usize
}

/// Asks for the 64-byte line at `p` ahead of use (a hint, never a fault; a
/// no-op off x86-64). Public for the benchmarks' memory ceiling, which must
/// issue the same hint the bulk lookups do.
#[inline(always)]
pub fn prefetch(p: *const u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
fn root_slot(k: &[u8; 32]) -> usize {
    (k[0] as usize) << 8 | k[1] as usize
}

/// The outcome in `slot` (word * 2 + half).
#[inline(always)]
fn read_slot(a: &Arena, slot: usize) -> u32 {
    (a.outcome(slot >> 1) >> ((slot & 1) * 32)) as u32
}

/// Where a step found the next outcome: in the node's first line (`IDLE`), or in
/// `slot` on another line of the node, to be read on the next visit.
type Step = (u32, usize);

/// Key words, plus a zero word so a chunk can start anywhere.
type Kw = [u64; 5];

#[inline(always)]
fn key_words(k: &[u8; 32]) -> Kw {
    let w = words(k);
    [w[0], w[1], w[2], w[3], 0]
}

/// The `w`-bit chunk of a key at bit `d` (`d % 8 == 0`), branch-free.
#[inline(always)]
fn chunk5(kw: &Kw, d: usize, w: u32) -> u64 {
    let j = (d >> 6) & 3;
    let sh = (d & 63) as u32;
    let x = (kw[j] << sh) | ((kw[j + 1] >> 1) >> (63 - sh));
    x >> (64 - w)
}

#[inline(always)]
fn pick<T>(c: bool, a: T, b: T) -> T {
    std::hint::select_unpredictable(c, a, b)
}

/// The outcome in slot `slot` (relative to the node) if it lies in the node's
/// first line `l`, else a pending read of `node * 2 + slot`.
#[inline(always)]
fn in_line(l: &[std::sync::atomic::AtomicU64; 8], node: usize, slot: usize) -> Step {
    let o = (l[(slot >> 1) & 7].load(Acquire) >> ((slot & 1) * 32)) as u32;
    let far = slot >= 16;
    (
        pick(far, NONE, o),
        pick(far, node.wrapping_mul(2).wrapping_add(slot), IDLE),
    )
}

/// A RANGE node of width `8 << WC`.
#[inline(always)]
fn step_range<I: Isa, const WC: usize>(
    a: &Arena,
    kw: &Kw,
    o: u32,
    d: &mut usize,
    best: &mut u32,
) -> Step {
    let node = node_word(o);
    let l = a.line(node);
    let h = l[0].load(Relaxed);
    let inh = inherited(h);
    *best = pick(is_value(inh), inh, *best);
    let nb = ((h >> 36) & 63) as usize;
    let c = chunk5(kw, *d & 255, 8 << WC);
    let b = [
        l[1].load(Relaxed),
        l[2].load(Relaxed),
        l[3].load(Relaxed),
        l[4].load(Relaxed),
    ];
    let i = I::count_le::<WC>(b, nb, c);
    *d = d.wrapping_add(8 << WC);
    in_line(l, node, (1 + (nb << WC).div_ceil(8)) * 2 + i)
}

#[inline(always)]
fn step_skip(a: &Arena, kw: &Kw, o: u32, d: &mut usize, best: &mut u32) -> Step {
    let l = a.line(node_word(o));
    let h = l[0].load(Relaxed);
    let inh = inherited(h);
    *best = pick(is_value(inh), inh, *best);
    let end = skip_end(h).min(256);
    let m = &MASKS[end];
    let diff = ((kw[0] ^ l[1].load(Relaxed)) & m[0])
        | ((kw[1] ^ l[2].load(Relaxed)) & m[1])
        | ((kw[2] ^ l[3].load(Relaxed)) & m[2])
        | ((kw[3] ^ l[4].load(Relaxed)) & m[3]);
    *d = end;
    let on_match = l[5].load(Acquire) as u32;
    (pick(diff == 0, on_match, NONE), IDLE)
}

/// A half-line SKIP4: the key must equal the two pattern words on [0, end).
#[inline(always)]
fn step_skip4(a: &Arena, kw: &Kw, o: u32, d: &mut usize, best: &mut u32) -> Step {
    let node = node_word(o);
    let l = a.line(node);
    let b = node & 4;
    let h = l[b].load(Relaxed);
    let inh = inherited(h);
    *best = pick(is_value(inh), inh, *best);
    let end = skip_end(h).min(256);
    let j = skip4_word(h);
    let diff = ((kw[j] ^ l[b + 2].load(Relaxed)) & mask_word(end, j))
        | ((kw[j + 1] ^ l[b + 3].load(Relaxed)) & mask_word(end, j + 1));
    *d = end;
    let on_match = l[b + 1].load(Acquire) as u32;
    (pick(diff == 0, on_match, NONE), IDLE)
}

#[inline(always)]
fn step_dense<const WC: usize>(a: &Arena, kw: &Kw, o: u32, d: &mut usize) -> Step {
    let c = chunk5(kw, *d & 255, 8 << WC) as usize;
    *d = d.wrapping_add(8 << WC);
    (
        read_slot(a, node_word(o).wrapping_mul(2).wrapping_add(c)),
        IDLE,
    )
}

#[inline(always)]
fn step<I: Isa>(a: &Arena, kw: &Kw, o: u32, d: &mut usize, best: &mut u32) -> Step {
    match kind(o) {
        K_R8 => step_range::<I, 0>(a, kw, o, d, best),
        K_R16 => step_range::<I, 1>(a, kw, o, d, best),
        K_R32 => step_range::<I, 2>(a, kw, o, d, best),
        K_R64 => step_range::<I, 3>(a, kw, o, d, best),
        K_DENSE8 => step_dense::<0>(a, kw, o, d),
        K_DENSE16 => step_dense::<1>(a, kw, o, d),
        K_SKIP => step_skip(a, kw, o, d, best),
        _ => step_skip4(a, kw, o, d, best),
    }
}

/// The word a lookup at outcome `o` reads first (for a DENSE node, the key's slot),
/// branch-free.
#[inline(always)]
fn first_word(o: u32, kw: &Kw, d: usize) -> usize {
    let c16 = chunk5(kw, d & 255, 16) as usize;
    let c = pick(kind(o) == K_DENSE16, c16, c16 >> 8);
    node_word(o).wrapping_add(pick(is_dense(o), c, 0) / 2)
}

#[inline(always)]
fn decode(a: &Arena, best: u32) -> Option<u32> {
    match best >> 30 {
        1 => Some(best & PAYLOAD),
        3 => {
            let t = a.get(BIG_WORD);
            let i = (best & PAYLOAD) as usize;
            let off = (t as u32) as usize;
            Some((a.get(off.wrapping_add(i / 2)) >> ((i & 1) * 32)) as u32)
        }
        _ => None,
    }
}

#[inline(always)]
fn walk_impl<I: Isa>(a: &Arena, key: &Address) -> Option<u32> {
    let kb = &key.0;
    let kw = key_words(kb);
    let mut best = a.get(DEFAULT_WORD) as u32;
    let mut o = read_slot(a, root_slot(kb));
    let mut d = 16usize;
    for _ in 0..MAX_STEPS {
        if is_value(o) {
            best = o;
        }
        if !is_node(o) {
            break;
        }
        let (next, slot) = step::<I>(a, &kw, o, &mut d, &mut best);
        o = if slot == IDLE {
            next
        } else {
            read_slot(a, slot)
        };
    }
    decode(a, best)
}

/// Work lists of the bulk walk: keys waiting at a node of each kind, and keys
/// waiting for an outcome on another line of their node.
const L_PEND: usize = KINDS;
const LISTS: usize = KINDS + 1;
/// The list of keys that are done (filled, never run).
const L_DONE: u8 = LISTS as u8;

/// Walks up to [`BATCH`] keys together, in rounds. In each round every key that is
/// still walking moves by exactly one cache line, which was prefetched in the
/// round before, so the misses of all keys overlap. Keys are processed grouped by
/// the kind of node they are at, so each group's loop body is the same code for
/// every key and branch-free (no mispredicted dispatch per step); a step whose
/// outcome is on another line of its node becomes a pending read for the next
/// round. The steps of a round only write per-key state, so no step waits for
/// another; the grouping for the next round is a separate, cheap pass.
#[inline(always)]
fn chunk_impl<I: Isa>(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    const M: usize = BATCH - 1;
    let n = keys.len().min(res.len()).min(BATCH);
    let default = a.get(DEFAULT_WORD) as u32;
    let mut out = [0u32; BATCH];
    let mut best = [0u32; BATCH];
    let mut pend = [0usize; BATCH];
    let mut depth = [16usize; BATCH];
    let mut list = [L_DONE; BATCH];
    let mut kw = [[0u64; 5]; BATCH];
    let mut active = [0u8; BATCH];
    let mut lists = [[0u8; BATCH]; LISTS + 1];
    for key in &keys[..n] {
        prefetch(a.addr(root_slot(&key.0) >> 1));
    }
    // Records that key `i` is at outcome `o` (or a pending read `ps`), picks its
    // list and prefetches the line it reads next. Branch-free.
    macro_rules! file {
        ($i:expr, $o:expr, $ps:expr) => {{
            let (i, o, ps) = ($i & M, $o, $ps);
            let pending = ps != IDLE;
            best[i] = pick(is_value(o), o, best[i]);
            out[i] = o;
            pend[i] = ps;
            let k = pick(is_node(o), kind(o) as u8, L_DONE);
            list[i] = pick(pending, L_PEND as u8, k);
            let w = pick(
                pending,
                ps >> 1,
                pick(is_node(o), first_word(o, &kw[i], depth[i]), 0),
            );
            prefetch(a.addr(w));
        }};
    }
    for i in 0..n {
        kw[i] = key_words(&keys[i].0);
        best[i] = default;
        let o = read_slot(a, root_slot(&keys[i].0));
        file!(i, o, IDLE);
        active[i] = i as u8;
    }
    let mut na = n;
    let mut rounds = 0;
    while na > 0 && rounds < 2 * MAX_STEPS {
        // Keep the keys still walking, grouped by the list they are on.
        let mut lens = [0usize; LISTS + 1];
        let mut still = 0;
        for j in 0..na {
            let i = active[j & M] as usize & M;
            let l = list[i] as usize;
            lists[l.min(LISTS)][lens[l.min(LISTS)] & M] = i as u8;
            lens[l.min(LISTS)] += 1;
            active[still & M] = i as u8;
            still += (l < LISTS) as usize;
        }
        na = still;
        macro_rules! run {
            ($l:expr, $step:expr) => {
                for j in 0..lens[$l] {
                    let i = lists[$l][j & M] as usize & M;
                    let (o, ps) = $step(i);
                    file!(i, o, ps);
                }
            };
        }
        run!(K_R8 as usize, |i: usize| step_range::<I, 0>(
            a,
            &kw[i],
            out[i],
            &mut depth[i],
            &mut best[i]
        ));
        run!(K_R16 as usize, |i: usize| step_range::<I, 1>(
            a,
            &kw[i],
            out[i],
            &mut depth[i],
            &mut best[i]
        ));
        run!(K_R32 as usize, |i: usize| step_range::<I, 2>(
            a,
            &kw[i],
            out[i],
            &mut depth[i],
            &mut best[i]
        ));
        run!(K_R64 as usize, |i: usize| step_range::<I, 3>(
            a,
            &kw[i],
            out[i],
            &mut depth[i],
            &mut best[i]
        ));
        run!(K_DENSE8 as usize, |i: usize| step_dense::<0>(
            a,
            &kw[i],
            out[i],
            &mut depth[i]
        ));
        run!(K_DENSE16 as usize, |i: usize| step_dense::<1>(
            a,
            &kw[i],
            out[i],
            &mut depth[i]
        ));
        run!(K_SKIP as usize, |i: usize| step_skip(
            a,
            &kw[i],
            out[i],
            &mut depth[i],
            &mut best[i]
        ));
        run!(K_SKIP4 as usize, |i: usize| step_skip4(
            a,
            &kw[i],
            out[i],
            &mut depth[i],
            &mut best[i]
        ));
        run!(L_PEND, |i: usize| (read_slot(a, pend[i]), IDLE));
        rounds += 1;
    }
    for i in 0..n {
        res[i] = decode(a, best[i]);
    }
}

#[inline(always)]
fn bulk_impl<I: Isa>(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    for (k, r) in keys.chunks(BATCH).zip(res.chunks_mut(BATCH)) {
        chunk_impl::<I>(a, k, r);
    }
}

/// The AVX-512 bulk walk: eight keys per vector, one hop per round for every
/// lane at once, whatever kind of node each lane is at (masks instead of
/// branches), with gathers for the lines of RANGE and SKIP nodes.
///
/// Memory model: gathers are plain (non-atomic) loads, so they only ever read
/// words of RANGE and SKIP nodes, which the writer never changes once published
/// (it copies them instead), and which stay allocated while this reader has not
/// reported a quiescent state. The mutable words (root and DENSE slots, the
/// default and big-value words) are read with scalar atomic loads. So no gather
/// races with a write.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use core::arch::x86_64::*;

    const LANES: usize = 8;
    const VECS: usize = BATCH / LANES;

    #[inline(always)]
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            && super::fast::available()
    }

    /// One field of the per-lane state of a batch (64 lanes = eight vectors).
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct F([u64; BATCH]);

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn ld(f: &F, v: usize) -> __m512i {
        let s = &f.0[(v & (VECS - 1)) * LANES..][..LANES];
        // SAFETY: `s` is 8 readable u64s, 64-byte aligned (v * 64 bytes into F).
        unsafe { _mm512_load_si512(s.as_ptr() as *const _) }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn st(f: &mut F, v: usize, x: __m512i) {
        let s = &mut f.0[(v & (VECS - 1)) * LANES..][..LANES];
        // SAFETY: `s` is 8 writable u64s, 64-byte aligned.
        unsafe { _mm512_store_si512(s.as_mut_ptr() as *mut _, x) }
    }

    /// One vector's lanes, spilled for per-lane scalar work (prefetches, DENSE slot
    /// reads): a line, not a whole batch field, so spilling costs one store.
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Lanes([u64; LANES]);

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn spill(x: __m512i) -> Lanes {
        let mut l = Lanes([0; LANES]);
        // SAFETY: `l` is 8 writable u64s, 64-byte aligned.
        unsafe { _mm512_store_si512(l.0.as_mut_ptr() as *mut _, x) };
        l
    }

    /// Moves the lanes of `f` selected by `active` to the front, in order.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn compact(f: &mut F, active: u64) {
        let mut tmp = F([0; BATCH]);
        let mut pos = 0;
        for v in 0..VECS {
            let m = (active >> (8 * v)) as u8;
            let x = ld(f, v);
            let dst = &mut tmp.0[pos..];
            // SAFETY: at most popcount(m) <= 8 lanes are written from `dst`, and
            // pos + popcount(m) <= popcount(active) <= BATCH, so they fit in `dst`.
            unsafe { _mm512_mask_compressstoreu_epi64(dst.as_mut_ptr() as *mut _, m, x) };
            pos += m.count_ones() as usize;
        }
        *f = tmp;
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt,bmi1,bmi2,lzcnt")]
    pub fn bulk(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
        for (k, r) in keys.chunks(BATCH).zip(res.chunks_mut(BATCH)) {
            chunk(a, k, r);
        }
    }

    /// Gathers the words at `idx` (already masked into the arena) for lanes in `k`.
    ///
    /// SAFETY (callers): every index is `& (arena.len() - 1)`, so each address is a
    /// word of the arena, which outlives the call; and lanes in `k` only ever name
    /// words of published RANGE or SKIP nodes, which are never written while
    /// readers can reach them (see the module docs), so the plain loads race with
    /// no write.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn gather(base: *const i64, k: __mmask8, idx: __m512i) -> __m512i {
        // SAFETY: per the function's contract.
        unsafe { _mm512_mask_i64gather_epi64::<8>(_mm512_setzero_si512(), k, idx, base) }
    }

    /// The 64 key bits at bit depth `d` of each lane (zero past the key's end).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn key_bits(d: __m512i, kw: [__m512i; 4]) -> __m512i {
        let c = |x: u64| _mm512_set1_epi64(x as i64);
        let j = _mm512_and_si512(_mm512_srli_epi64::<6>(d), c(3));
        let j1 = _mm512_cmpeq_epi64_mask(j, c(1));
        let j2 = _mm512_cmpeq_epi64_mask(j, c(2));
        let j3 = _mm512_cmpeq_epi64_mask(j, c(3));
        let wj = _mm512_mask_mov_epi64(
            _mm512_mask_mov_epi64(_mm512_mask_mov_epi64(kw[0], j1, kw[1]), j2, kw[2]),
            j3,
            kw[3],
        );
        let wn = _mm512_mask_mov_epi64(
            _mm512_mask_mov_epi64(_mm512_mask_mov_epi64(kw[1], j1, kw[2]), j2, kw[3]),
            j3,
            _mm512_setzero_si512(),
        );
        let sh = _mm512_and_si512(d, c(63));
        _mm512_or_si512(
            _mm512_sllv_epi64(wj, sh),
            _mm512_srlv_epi64(_mm512_srli_epi64::<1>(wn), _mm512_sub_epi64(c(63), sh)),
        )
    }

    /// The word each lane reads first at outcome `o` (a DENSE node's slot line),
    /// lane-wise; see `first_word`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn first_words(o: __m512i, d: __m512i, kw: [__m512i; 4], amask: __m512i) -> __m512i {
        let c = |x: u64| _mm512_set1_epi64(x as i64);
        let kind_v = _mm512_and_si512(_mm512_srli_epi64::<27>(o), c(7));
        let node = _mm512_slli_epi64::<2>(_mm512_and_si512(o, c(LINE_MASK as u64)));
        let dense = _mm512_cmpeq_epi64_mask(_mm512_and_si512(kind_v, c(6)), c(4));
        let d16 = _mm512_cmpeq_epi64_mask(kind_v, c(5));
        let x = key_bits(d, kw);
        let cd = _mm512_mask_mov_epi64(_mm512_srli_epi64::<56>(x), d16, _mm512_srli_epi64::<48>(x));
        let off = _mm512_maskz_mov_epi64(dense, _mm512_srli_epi64::<1>(cd));
        _mm512_and_si512(_mm512_add_epi64(node, off), amask)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt,bmi1,bmi2,lzcnt")]
    fn chunk(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
        let n = keys.len().min(res.len()).min(BATCH);
        let default = a.get(DEFAULT_WORD) as u32;
        let base = a.addr(0) as *const i64;
        let amask = _mm512_set1_epi64((a.len() - 1) as i64);
        let zero = _mm512_setzero_si512();
        let ones = _mm512_set1_epi64(-1);
        let lo32 = _mm512_set1_epi64(0xffff_ffff);
        let idle = ones;
        let high_t = _mm512_set_epi64(
            0,
            0,
            0,
            0,
            HIGH[3] as i64,
            HIGH[2] as i64,
            HIGH[1] as i64,
            HIGH[0] as i64,
        );
        let c = |x: u64| _mm512_set1_epi64(x as i64);

        // Per-lane state; `idx` is the key a lane walks for (lanes get compacted).
        let mut out = F([0; BATCH]);
        let mut pend = F([u64::MAX; BATCH]);
        let mut depth = F([16; BATCH]);
        let mut best = F([0; BATCH]);
        let mut kwf = [F([0; BATCH]); 4];
        let mut idx = F([0; BATCH]);
        let mut fin = [NONE; BATCH];
        let mut active = 0u64;
        for key in &keys[..n] {
            prefetch(a.addr(root_slot(&key.0) >> 1));
        }
        for i in 0..n {
            let k = key_words(&keys[i].0);
            for (j, f) in kwf.iter_mut().enumerate() {
                f.0[i] = k[j];
            }
            idx.0[i] = i as u64;
            let o = read_slot(a, root_slot(&keys[i].0));
            let b = if is_value(o) { o } else { default };
            out.0[i] = o as u64;
            best.0[i] = b as u64;
            fin[i] = b;
            if is_node(o) {
                active |= 1 << i;
                prefetch(a.addr(first_word(o, &k, 16)));
            }
        }
        // Lanes that hold a key still to be answered in `fin`: a lane that finishes
        // keeps its state until the next compaction, which records its answer (so
        // the vector step has no per-lane loop for finished lanes).
        let mut unrecorded = active;
        let record = |fin: &mut [u32; BATCH], idx: &F, best: &F, mut lanes: u64| {
            while lanes != 0 {
                let l = lanes.trailing_zeros() as usize;
                fin[idx.0[l] as usize & (BATCH - 1)] = best.0[l] as u32;
                lanes &= lanes - 1;
            }
        };
        let mut rounds = 0;
        while active != 0 && rounds < 2 * MAX_STEPS {
            // Pack the walking lanes into as few vectors as possible when that saves
            // at least two vector steps this round.
            let used = (0..VECS).filter(|v| (active >> (8 * v)) as u8 != 0).count();
            let live = active.count_ones() as usize;
            if used >= live.div_ceil(LANES) + 2 {
                record(&mut fin, &idx, &best, unrecorded & !active);
                for f in [&mut out, &mut pend, &mut depth, &mut best, &mut idx] {
                    compact(f, active);
                }
                for f in kwf.iter_mut() {
                    compact(f, active);
                }
                active = if live == BATCH {
                    u64::MAX
                } else {
                    (1u64 << live) - 1
                };
                unrecorded = active;
            }
            // Each vector's lanes come from the round's start, so one vector's step
            // never waits for the one before (they only share the `next` update).
            let now = active;
            let mut next = 0u64;
            for v in 0..VECS {
                let m = (now >> (8 * v)) as u8;
                if m == 0 {
                    continue;
                }
                let o = ld(&out, v);
                let ps = ld(&pend, v);
                let d = ld(&depth, v);
                let mut bst = ld(&best, v);
                let kw = [
                    ld(&kwf[0], v),
                    ld(&kwf[1], v),
                    ld(&kwf[2], v),
                    ld(&kwf[3], v),
                ];

                let pending = m & _mm512_cmpneq_epi64_mask(ps, idle);
                let kind_v = _mm512_and_si512(_mm512_srli_epi64::<27>(o), c(7));
                let node = _mm512_and_si512(
                    _mm512_slli_epi64::<2>(_mm512_and_si512(o, c(LINE_MASK as u64))),
                    amask,
                );
                let walking = m & !pending;
                let dense = walking & _mm512_cmpeq_epi64_mask(_mm512_and_si512(kind_v, c(6)), c(4));
                let dense16 = dense & _mm512_cmpeq_epi64_mask(kind_v, c(5));
                let skip = walking & _mm512_cmpeq_epi64_mask(kind_v, c(6));
                let skip4 = walking & _mm512_cmpeq_epi64_mask(kind_v, c(7));
                let range = walking & _mm512_cmplt_epu64_mask(kind_v, c(4));
                let rs = range | skip | skip4;
                let at = |k: u64| _mm512_and_si512(_mm512_add_epi64(node, c(k)), amask);
                // SAFETY: indices are masked into the arena; `rs` lanes are at RANGE or
                // SKIP nodes, whose words read here are immutable (see `gather`): a
                // SKIP4 is half a line, so its lanes do not read word 4.
                let (h, b1, b2, b3, b4) = unsafe {
                    (
                        gather(base, rs, node),
                        gather(base, rs, at(1)),
                        gather(base, rs, at(2)),
                        gather(base, rs, at(3)),
                        gather(base, range | skip, at(4)),
                    )
                };
                let inh = _mm512_and_si512(h, lo32);
                let inh_val = rs & _mm512_test_epi64_mask(inh, c(1 << 30));
                bst = _mm512_mask_mov_epi64(bst, inh_val, inh);
                let x = key_bits(d, kw);

                // RANGE: count bounds <= chunk (SWAR per word, any width).
                let wc = _mm512_and_si512(kind_v, c(3));
                let wbits = _mm512_sllv_epi64(c(8), wc);
                let chunk_v = _mm512_srlv_epi64(x, _mm512_sub_epi64(c(64), wbits));
                let hi = _mm512_permutexvar_epi64(wc, high_t);
                // The chunk in every W-bit field (shifts of 64 or more give zero).
                let cc = _mm512_or_si512(chunk_v, _mm512_sllv_epi64(chunk_v, wbits));
                let cc = _mm512_or_si512(cc, _mm512_sllv_epi64(cc, _mm512_slli_epi64::<1>(wbits)));
                let cc = _mm512_or_si512(cc, _mm512_sllv_epi64(cc, _mm512_slli_epi64::<2>(wbits)));
                let nb = _mm512_and_si512(_mm512_srli_epi64::<36>(h), c(63));
                let valid = _mm512_sllv_epi64(nb, wc);
                let mut cnt = zero;
                for (k, bk) in [b1, b2, b3, b4].into_iter().enumerate() {
                    let t = _mm512_sub_epi64(_mm512_or_si512(cc, hi), _mm512_andnot_si512(hi, bk));
                    let r = _mm512_and_si512(
                        hi,
                        _mm512_or_si512(
                            _mm512_andnot_si512(bk, cc),
                            _mm512_andnot_si512(_mm512_xor_si512(cc, bk), t),
                        ),
                    );
                    let kb = _mm512_min_epi64(
                        _mm512_max_epi64(_mm512_sub_epi64(valid, c(8 * k as u64)), zero),
                        c(8),
                    );
                    let wm = _mm512_srlv_epi64(
                        ones,
                        _mm512_sub_epi64(c(64), _mm512_slli_epi64::<3>(kb)),
                    );
                    cnt = _mm512_add_epi64(cnt, _mm512_popcnt_epi64(_mm512_and_si512(r, wm)));
                }
                let bw = _mm512_srli_epi64::<3>(_mm512_add_epi64(valid, c(7)));
                let slot =
                    _mm512_add_epi64(_mm512_slli_epi64::<1>(_mm512_add_epi64(bw, c(1))), cnt);
                let far = range & _mm512_cmpge_epu64_mask(slot, c(16));
                let near = range & !far;
                // SAFETY: masked indices; `near` lanes read the first line of a RANGE node.
                let ov = unsafe {
                    gather(
                        base,
                        near,
                        at_off(node, _mm512_srli_epi64::<1>(slot), amask),
                    )
                };
                let o_r = _mm512_and_si512(
                    _mm512_srlv_epi64(ov, _mm512_slli_epi64::<5>(_mm512_and_si512(slot, c(1)))),
                    lo32,
                );
                let d_r = _mm512_add_epi64(d, wbits);

                // SKIP: the key must equal the pattern on [0, end).
                let end = _mm512_min_epu64(
                    _mm512_and_si512(_mm512_srli_epi64::<34>(h), c(0x1ff)),
                    c(256),
                );
                // Most vectors hold no SKIP lane (long skips are rare): skip the work.
                let mut o_s = zero;
                if skip != 0 {
                    let mut diff = zero;
                    for (k, (kwk, bk)) in [(kw[0], b1), (kw[1], b2), (kw[2], b3), (kw[3], b4)]
                        .into_iter()
                        .enumerate()
                    {
                        let bits = _mm512_min_epi64(
                            _mm512_max_epi64(_mm512_sub_epi64(end, c(64 * k as u64)), zero),
                            c(64),
                        );
                        let mk = _mm512_sllv_epi64(ones, _mm512_sub_epi64(c(64), bits));
                        diff =
                            _mm512_or_si512(diff, _mm512_and_si512(_mm512_xor_si512(kwk, bk), mk));
                    }
                    let hit = skip & _mm512_cmpeq_epi64_mask(diff, zero);
                    // SAFETY: masked indices; `hit` lanes read word 5 of a SKIP node.
                    o_s = _mm512_and_si512(unsafe { gather(base, hit, at(5)) }, lo32);
                }
                // SKIP4: two pattern words (b2, b3) starting at address word j.
                let mut o_s4 = zero;
                if skip4 != 0 {
                    let j4 = _mm512_and_si512(_mm512_srli_epi64::<52>(h), c(3));
                    let pick_word = |j: __m512i| {
                        let w =
                            _mm512_mask_mov_epi64(kw[0], _mm512_cmpeq_epi64_mask(j, c(1)), kw[1]);
                        let w = _mm512_mask_mov_epi64(w, _mm512_cmpeq_epi64_mask(j, c(2)), kw[2]);
                        let w = _mm512_mask_mov_epi64(w, _mm512_cmpeq_epi64_mask(j, c(3)), kw[3]);
                        _mm512_mask_mov_epi64(w, _mm512_cmpeq_epi64_mask(j, c(4)), zero)
                    };
                    let word_mask = |j: __m512i| {
                        let bits = _mm512_min_epi64(
                            _mm512_max_epi64(
                                _mm512_sub_epi64(end, _mm512_slli_epi64::<6>(j)),
                                zero,
                            ),
                            c(64),
                        );
                        _mm512_sllv_epi64(ones, _mm512_sub_epi64(c(64), bits))
                    };
                    let j5 = _mm512_add_epi64(j4, c(1));
                    let diff4 = _mm512_or_si512(
                        _mm512_and_si512(_mm512_xor_si512(pick_word(j4), b2), word_mask(j4)),
                        _mm512_and_si512(_mm512_xor_si512(pick_word(j5), b3), word_mask(j5)),
                    );
                    let hit4 = skip4 & _mm512_cmpeq_epi64_mask(diff4, zero);
                    o_s4 = _mm512_maskz_and_epi64(hit4, b1, lo32);
                }

                // DENSE: one slot, read with an atomic load (DENSE slots change in place).
                let cd = _mm512_mask_mov_epi64(
                    _mm512_srli_epi64::<56>(x),
                    dense16,
                    _mm512_srli_epi64::<48>(x),
                );
                // Scalar atomic loads in a fixed loop (lanes not at a DENSE node read
                // slot 0, the root's first, which is cached): no loop whose length
                // depends on how many lanes are at DENSE nodes, and the vector is
                // built in registers (reloading eight scalar stores as one vector
                // would stall on store forwarding).
                let mut o_d = zero;
                if dense != 0 {
                    let dslot = spill(_mm512_maskz_add_epi64(
                        dense,
                        _mm512_slli_epi64::<1>(node),
                        cd,
                    ));
                    let rd = |l: usize| read_slot(a, dslot.0[l] as usize) as i64;
                    o_d = _mm512_set_epi64(rd(7), rd(6), rd(5), rd(4), rd(3), rd(2), rd(1), rd(0));
                }
                let d_d = _mm512_add_epi64(d, _mm512_mask_mov_epi64(c(8), dense16, c(16)));

                // PENDING: an outcome on a later line of a RANGE node.
                // SAFETY: masked indices; `pending` lanes read a RANGE node's outcome.
                let pv = unsafe {
                    gather(
                        base,
                        pending,
                        _mm512_and_si512(_mm512_srli_epi64::<1>(ps), amask),
                    )
                };
                let o_p = _mm512_and_si512(
                    _mm512_srlv_epi64(pv, _mm512_slli_epi64::<5>(_mm512_and_si512(ps, c(1)))),
                    lo32,
                );

                // Combine.
                let mut o2 = _mm512_maskz_mov_epi64(near, o_r);
                o2 = _mm512_mask_mov_epi64(o2, skip, o_s);
                o2 = _mm512_mask_mov_epi64(o2, skip4, o_s4);
                o2 = _mm512_mask_mov_epi64(o2, dense, o_d);
                o2 = _mm512_mask_mov_epi64(o2, pending, o_p);
                let ps2 = _mm512_mask_mov_epi64(
                    idle,
                    far,
                    _mm512_add_epi64(_mm512_slli_epi64::<1>(node), slot),
                );
                let mut d2 = _mm512_mask_mov_epi64(d, range, d_r);
                d2 = _mm512_mask_mov_epi64(d2, skip | skip4, end);
                d2 = _mm512_mask_mov_epi64(d2, dense, d_d);
                let is_val = m & _mm512_test_epi64_mask(o2, c(1 << 30));
                bst = _mm512_mask_mov_epi64(bst, is_val, o2);
                let is_nd = _mm512_cmpeq_epi64_mask(_mm512_srli_epi64::<30>(o2), c(2));
                let alive = m & (far | is_nd);
                st(&mut out, v, o2);
                st(&mut pend, v, ps2);
                st(&mut depth, v, d2);
                st(&mut best, v, bst);
                next |= (alive as u64) << (8 * v);

                // Prefetch what each lane reads next.
                let nxt = _mm512_mask_mov_epi64(
                    first_words(o2, d2, kw, amask),
                    far,
                    _mm512_and_si512(_mm512_srli_epi64::<1>(ps2), amask),
                );
                // Every lane prefetches (a finished lane the root's first word, which
                // is cached): a fixed loop, no branch on how many lanes are alive.
                let nx = spill(_mm512_maskz_mov_epi64(alive, nxt));
                for l in 0..LANES {
                    prefetch(a.addr(nx.0[l] as usize));
                }
            }
            active = next;
            rounds += 1;
        }
        // The lanes not yet recorded (and any cut off by the round limit, over a
        // corrupt structure) keep their best.
        record(&mut fin, &idx, &best, unrecorded);
        for i in 0..n {
            res[i] = decode(a, fin[i]);
        }
    }

    /// `(node + off) & amask`, lane-wise.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn at_off(node: __m512i, off: __m512i, amask: __m512i) -> __m512i {
        _mm512_and_si512(_mm512_add_epi64(node, off), amask)
    }
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use super::*;

    #[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,avx2")]
    pub fn walk(a: &Arena, k: &Address) -> Option<u32> {
        walk_impl::<Avx2>(a, k)
    }

    #[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,avx2")]
    pub fn bulk(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
        bulk_impl::<Avx2>(a, keys, res)
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
        return unsafe { fast::walk(a, k) };
    }
    walk_impl::<Portable>(a, k)
}

/// Longest-prefix match of every key; `res[i]` gets key `i`'s answer (only the
/// first `min(keys.len(), res.len())` are written).
pub fn lookup_bulk(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has every feature `avx512::bulk` is compiled for.
        return unsafe { avx512::bulk(a, keys, res) };
    }
    #[cfg(target_arch = "x86_64")]
    if fast::available() {
        // SAFETY: the CPU has every feature `fast::bulk` is compiled for.
        return unsafe { fast::bulk(a, keys, res) };
    }
    bulk_impl::<Portable>(a, keys, res)
}

/// The AVX2 (scalar-per-key) bulk kernel, for tests and comparison.
pub fn lookup_bulk_avx2(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    #[cfg(target_arch = "x86_64")]
    if fast::available() {
        // SAFETY: the CPU has every feature `fast::bulk` is compiled for.
        return unsafe { fast::bulk(a, keys, res) };
    }
    bulk_impl::<Portable>(a, keys, res)
}

/// The baseline-target kernels, for tests that compare both instantiations.
pub fn lookup_portable(a: &Arena, k: &Address) -> Option<u32> {
    walk_impl::<Portable>(a, k)
}

pub fn lookup_bulk_portable(a: &Arena, keys: &[Address], res: &mut [Option<u32>]) {
    bulk_impl::<Portable>(a, keys, res)
}

/// The lines one walk reads, in order, each with the key bit depth of the step
/// that read it in bits 48..64 and the node kind in bits 40..43 (7: the second
/// line of a node) (diagnostics).
pub fn trace(a: &Arena, key: &Address) -> Vec<usize> {
    let kb = &key.0;
    let kw = key_words(kb);
    let mut t = vec![(root_slot(kb) >> 1) >> 3];
    let mut best = 0;
    let mut o = read_slot(a, root_slot(kb));
    let mut d = 16usize;
    for _ in 0..MAX_STEPS {
        if !is_node(o) {
            break;
        }
        t.push((first_word(o, &kw, d) >> 3) | d << 48 | (kind(o) as usize) << 40);
        let at = d;
        let (next, slot) = step::<Portable>(a, &kw, o, &mut d, &mut best);
        o = if slot == IDLE {
            next
        } else {
            t.push((slot >> 4) | at << 48 | 7 << 40);
            read_slot(a, slot)
        };
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_any<I: Isa>(b: [u64; 4], wcode: usize, nb: usize, c: u64) -> usize {
        match wcode {
            0 => I::count_le::<0>(b, nb, c),
            1 => I::count_le::<1>(b, nb, c),
            2 => I::count_le::<2>(b, nb, c),
            _ => I::count_le::<3>(b, nb, c),
        }
    }

    #[test]
    fn swar_compare_matches_scalar() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20000 {
            let wcode = (next() % 4) as usize;
            let w = 8u32 << wcode;

            let lanes = 64 / w as usize;
            let nb = (next() % (4 * lanes as u64 + 1)) as usize;
            let mut bounds: Vec<u64> = (0..nb).map(|_| next() >> (64 - w)).collect();
            bounds.sort();
            let mut b = [0u64; 4];
            for (i, v) in bounds.iter().enumerate() {
                b[i / lanes] |= v << (w as usize * (i % lanes));
            }
            // Junk in unused lanes must not count.
            for i in nb..4 * lanes {
                b[i / lanes] |= (next() >> (64 - w)) << (w as usize * (i % lanes));
            }
            let c = match next() % 3 {
                0 => next() >> (64 - w),
                1 if nb > 0 => bounds[(next() % nb as u64) as usize],
                _ => (next() >> (64 - w)).saturating_sub(1),
            };
            let want = bounds.iter().filter(|&&v| v <= c).count();
            assert_eq!(
                count_any::<Portable>(b, wcode, nb, c),
                want,
                "w {w} nb {nb} c {c:#x} {bounds:x?}"
            );
            #[cfg(target_arch = "x86_64")]
            if fast::available() {
                assert_eq!(
                    count_any::<Avx2>(b, wcode, nb, c),
                    want,
                    "avx2 w {w} nb {nb} c {c:#x}"
                );
            }
        }
    }
}
