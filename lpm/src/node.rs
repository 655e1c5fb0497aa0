//! Word-level encoding of the lookup structure (shared by the writer and readers).
//!
//! Everything readers touch lives in one arena of 64-bit words:
//!
//! ```text
//! words 0 .. 32768   root: 65536 outcomes (u32, two a word), one per top-16-bit value
//! word  32768        the default route (::/0), as an outcome (value or NONE)
//! word  32769        the big-value table: word offset | count << 32
//! word  32776 ..     nodes, each starting on a 64-byte line (offset % 8 == 0),
//!                    except SKIP4 nodes, which take half a line
//! ```
//!
//! An **outcome** is a u32 (two per word, the even one in the low half):
//!
//! ```text
//! 0                    NONE: nothing more specific here
//! 01 | v (30 bits)     VALUE: next hop v (< 2^30)
//! 10 | k | at          NODE: continue at the node of kind k (3 bits: RANGE of
//!                      width 8/16/32/64, DENSE of width 8/16, SKIP, SKIP4) at
//!                      half-line `at` (27 bits: word / 4, an arena of up to 4 GiB)
//! 11 | i (30 bits)     BIG: next hop `big[i]` (next hops >= 2^30 are rare)
//! ```
//!
//! Tags 01 and 11 (odd) are values; a reader keeps the last value it saw as its
//! best match. A slot whose prefix also has deeper routes holds NODE; the value of
//! that slot is then the child node's `inherited` field, read with the child's
//! first line, so values never cost a cache line of their own.
//!
//! Every node starts with a **header** word:
//!
//! ```text
//! bits  0..32   inherited: the value of the slot that leads here (or NONE)
//! bits 32..34   type: 2 RANGE, 3 SKIP (DENSE nodes have no header)
//! RANGE  34..36 wcode (chunk width W = 8 << wcode: 8, 16, 32, 64 bits)
//!        36..42 nb: number of bounds (0..=32); the node has nb + 1 pieces
//! RANGE  42..64 locals id (writer only: where its prefixes are listed)
//! SKIP   34..43 end (the key must equal the pattern on bits [0, end))
//!        43..52 start depth (writer only)
//! ```
//!
//! **RANGE** (the common node): the next W key bits (a chunk) are looked up among
//! nb sorted bounds: piece `i` = number of bounds <= chunk, outcome = piece's.
//! Words 1.. hold the bounds packed low lane first (64/W a word, at most 4
//! words), then nb + 1 outcomes. With W = 16 a node of up to 9 pieces is one line.
//!
//! **DENSE8 / DENSE16** (crowded regions: more pieces than a RANGE holds, like
//! DPDK's tbl8 groups and, for the busiest /16s, its tbl24): 2^W outcomes, no
//! header; the node's inherited value is pushed into every slot that has no more
//! specific prefix, so a lookup reads exactly one line, whose address it knows
//! before reading anything of the node.
//!
//! **SKIP** (path compression and single-prefix tails): words 1..5 the pattern (the
//! address bits of the path, zero from `end` on), word 5 the outcome on a match
//! (low half). **SKIP4** is the same in half a line when the bits to check lie in
//! two address words `j, j + 1` (header bits 52..54 hold `j`): word 1 the outcome,
//! words 2..4 those two pattern words. A /256 host route under a branching node
//! at bit 128 or more, and most /96 and /160 tails, are one SKIP4.

/// NODE outcomes carry the kind of node they name in bits 27..30 (so a reader
/// knows it before touching the node) and its line in bits 0..27.
pub const KIND_SHIFT: u32 = 27;
/// RANGE nodes of width 8, 16, 32, 64 are kinds 0..=3 (`K_R8 + wcode`).
pub const K_R8: u32 = 0;
pub const K_R16: u32 = 1;
pub const K_R32: u32 = 2;
pub const K_R64: u32 = 3;
pub const K_DENSE8: u32 = 4;
pub const K_DENSE16: u32 = 5;
pub const K_SKIP: u32 = 6;
/// A half-line SKIP whose pattern fits two address words (most tails).
pub const K_SKIP4: u32 = 7;
pub const KINDS: usize = 8;
pub const LINE_MASK: u32 = (1 << KIND_SHIFT) - 1;

/// NONE outcome.
pub const NONE: u32 = 0;
pub const PAYLOAD: u32 = (1 << 30) - 1;
pub const TAG_VALUE: u32 = 1 << 30;
pub const TAG_NODE: u32 = 2 << 30;
pub const TAG_BIG: u32 = 3 << 30;
/// Next hops below this are stored in the outcome itself.
pub const SMALL_LIMIT: u32 = 1 << 30;

#[inline(always)]
pub const fn is_node(o: u32) -> bool {
    o >> 30 == 2
}

#[inline(always)]
pub const fn is_value(o: u32) -> bool {
    o >> 30 & 1 == 1
}

/// A NODE outcome for a node of kind `k` at word `word` (a multiple of 4).
#[inline(always)]
pub const fn node_ref(k: u32, word: usize) -> u32 {
    TAG_NODE | k << KIND_SHIFT | (word >> 2) as u32
}

/// The kind of node a NODE outcome names.
#[inline(always)]
pub const fn kind(o: u32) -> u32 {
    (o >> KIND_SHIFT) & 7
}

/// DENSE8 or DENSE16.
#[inline(always)]
pub const fn is_dense(o: u32) -> bool {
    kind(o) & 6 == 4
}

/// The chunk width of a DENSE node.
#[inline(always)]
pub const fn dense_width(o: u32) -> u32 {
    if kind(o) == K_DENSE8 {
        8
    } else {
        16
    }
}

#[inline(always)]
pub const fn node_word(o: u32) -> usize {
    ((o & LINE_MASK) as usize) << 2
}

pub const ROOT_SLOTS: usize = 1 << 16;
pub const DEFAULT_WORD: usize = ROOT_SLOTS / 2;
pub const BIG_WORD: usize = DEFAULT_WORD + 1;
pub const FIRST_NODE_WORD: usize = DEFAULT_WORD + 8;

pub const TY_RANGE: u64 = 2;
pub const TY_SKIP: u64 = 3;

/// Most bound words a RANGE node has (so its bounds always sit in its first line).
pub const RANGE_BOUND_WORDS: usize = 4;
/// Highest locals id (22 bits).
pub const MAX_LOCALS_ID: u32 = (1 << 22) - 1;

pub const SKIP_WORDS: usize = 6;
pub const SKIP4_WORDS: usize = 4;
/// The on-match outcome of a SKIP node, as a slot from the node's start.
pub const SKIP_OUT_REL: usize = 10;
pub const SKIP4_OUT_REL: usize = 2;

/// SKIP or SKIP4.
#[inline(always)]
pub const fn is_skip(o: u32) -> bool {
    kind(o) >= K_SKIP
}

/// SKIP4: the first address word its two pattern words cover.
#[inline(always)]
pub const fn skip4_word(h: u64) -> usize {
    ((h >> 52) & 3) as usize
}

/// The bits of address word `i` (0..=4; word 4 is past the end) in `[0, end)`.
#[inline(always)]
pub const fn mask_word(end: usize, i: usize) -> u64 {
    let lo = 64 * i;
    if end >= lo + 64 {
        u64::MAX
    } else if end <= lo {
        0
    } else {
        u64::MAX << (64 - (end - lo))
    }
}

/// Upper bound on the steps of one walk (a valid structure needs at most 31 node
/// steps; the bound only stops a lookup over a corrupt structure from looping).
pub const MAX_STEPS: usize = 40;

#[inline(always)]
pub const fn ty(h: u64) -> u64 {
    (h >> 32) & 3
}

#[inline(always)]
pub const fn inherited(h: u64) -> u32 {
    h as u32
}

/// RANGE: (W, number of bounds).
#[inline(always)]
pub const fn range_params(h: u64) -> (u32, usize) {
    (8 << ((h >> 34) & 3), ((h >> 36) & 63) as usize)
}

#[inline(always)]
pub const fn skip_end(h: u64) -> usize {
    ((h >> 34) & 0x1ff) as usize
}

#[inline(always)]
pub const fn skip_start(h: u64) -> u16 {
    ((h >> 43) & 0x1ff) as u16
}

#[inline(always)]
pub const fn locals_id(h: u64) -> u32 {
    (h >> 42) as u32
}

pub const fn header_range(inherited: u32, w: u32, nb: usize, locals: u32) -> u64 {
    let wcode = match w {
        8 => 0,
        16 => 1,
        32 => 2,
        _ => 3,
    };
    inherited as u64 | TY_RANGE << 32 | wcode << 34 | (nb as u64) << 36 | (locals as u64) << 42
}

pub const fn header_skip(inherited: u32, start: u16, end: u16) -> u64 {
    inherited as u64 | TY_SKIP << 32 | (end as u64) << 34 | (start as u64) << 43
}

pub const fn header_skip4(inherited: u32, start: u16, end: u16, word: usize) -> u64 {
    header_skip(inherited, start, end) | (word as u64) << 52
}

/// Words of bounds for `nb` bounds of `w` bits.
#[inline(always)]
pub const fn bound_words(w: u32, nb: usize) -> usize {
    (nb * w as usize).div_ceil(64)
}

/// Words a RANGE node of `nb` bounds of `w` bits uses: header, bounds, outcomes.
#[inline(always)]
pub const fn range_words(w: u32, nb: usize) -> usize {
    1 + bound_words(w, nb) + (nb + 1).div_ceil(2)
}

/// Whether `nb` bounds of `w` bits fit a RANGE node (at most two lines).
#[inline(always)]
pub const fn range_fits(w: u32, nb: usize) -> bool {
    bound_words(w, nb) <= RANGE_BOUND_WORDS
}

/// Whether such a RANGE node is one 64-byte line.
#[inline(always)]
pub const fn range_one_line(w: u32, nb: usize) -> bool {
    range_fits(w, nb) && range_words(w, nb) <= 8
}

/// Bound `i` of `w` bits from a RANGE node's bound words (`bounds[j]` = word
/// `1 + j` of the node), packed low lane first.
#[inline(always)]
pub const fn unpack_bound(word: u64, w: u32, i: usize) -> u64 {
    let lanes = (64 / w) as usize;
    (word >> (w as usize * (i % lanes))) & (u64::MAX >> (64 - w))
}

/// `MASKS[end][i]`: the bits of address word `i` (big-endian words, bit 0 = most
/// significant) that lie in `[0, end)`.
pub static MASKS: [[u64; 4]; 257] = masks();

const fn masks() -> [[u64; 4]; 257] {
    let mut t = [[0u64; 4]; 257];
    let mut end = 0;
    while end <= 256 {
        let mut i = 0;
        while i < 4 {
            let lo = 64 * i;
            t[end][i] = if end >= lo + 64 {
                u64::MAX
            } else if end <= lo {
                0
            } else {
                u64::MAX << (64 - (end - lo))
            };
            i += 1;
        }
        end += 1;
    }
    t
}

/// An address as four big-endian words (bit 0 of the address = bit 63 of word 0),
/// plus a zero word so that a 64-bit chunk can start anywhere.
pub type Words = [u64; 4];

#[inline(always)]
pub fn words(bytes: &[u8; 32]) -> Words {
    let mut w = [0u64; 4];
    for (i, x) in w.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        *x = u64::from_be_bytes(b);
    }
    w
}

pub fn bytes(w: &Words) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..4 {
        out[8 * i..8 * i + 8].copy_from_slice(&w[i].to_be_bytes());
    }
    out
}

/// The `w`-bit chunk of an address starting at bit `d` (`d % 8 == 0`, `d + w <= 256`).
#[inline(always)]
pub fn chunk(k: &Words, d: usize, w: u32) -> u64 {
    let j = (d / 64) & 3;
    let sh = (d % 64) as u32;
    let next = if j < 3 { k[j + 1] } else { 0 };
    let x = (k[j] << sh) | ((next >> 1) >> (63 - sh));
    x >> (64 - w)
}

/// `k` with the `w`-bit chunk at bit `d` replaced by `c` (`d % 8 == 0`,
/// `d + w <= 256`, `c < 2^w`).
pub fn with_chunk(k: &Words, d: usize, w: u32, c: u64) -> Words {
    let mut out = *k;
    let j = d / 64;
    let sh = (d % 64) as u32;
    let field = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    // The chunk in the 128 bits of words j and j + 1, as a left-aligned window.
    let wide = ((c as u128) << (128 - w)) >> sh;
    let mask = ((field as u128) << (128 - w)) >> sh;
    let hi = |x: u128| (x >> 64) as u64;
    let lo = |x: u128| x as u64;
    out[j] = (out[j] & !hi(mask)) | hi(wide);
    if j + 1 < 4 {
        out[j + 1] = (out[j + 1] & !lo(mask)) | lo(wide);
    }
    out
}

/// `w` with every bit from `len` on cleared.
#[inline]
pub fn masked(w: &Words, len: u16) -> Words {
    let m = &MASKS[len.min(256) as usize];
    [w[0] & m[0], w[1] & m[1], w[2] & m[2], w[3] & m[3]]
}

/// Length of the common leading bits of `a` and `b` (256 when equal).
#[inline]
pub fn lcp(a: &Words, b: &Words) -> u16 {
    for i in 0..4 {
        let x = a[i] ^ b[i];
        if x != 0 {
            return (64 * i as u32 + x.leading_zeros()) as u16;
        }
    }
    256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(MASKS[0], [0; 4]);
        assert_eq!(MASKS[256], [u64::MAX; 4]);
        assert_eq!(MASKS[65], [u64::MAX, 1 << 63, 0, 0]);
        let a = [0, 0, 1, 0];
        assert_eq!(lcp(&a, &[0; 4]), 191);
        assert_eq!(
            masked(&[u64::MAX; 4], 70),
            [u64::MAX, 0xfc00_0000_0000_0000, 0, 0]
        );
        let b: [u8; 32] = core::array::from_fn(|i| i as u8);
        let k = words(&b);
        assert_eq!(bytes(&k), b);
        assert_eq!(chunk(&k, 8 * 13, 8), 13);
        assert_eq!(chunk(&k, 8 * 6, 16), 0x0607);
        assert_eq!(chunk(&k, 8 * 6, 32), 0x0607_0809);
        assert_eq!(chunk(&k, 8 * 24, 64), 0x1819_1a1b_1c1d_1e1f);
        assert_eq!(chunk(&k, 8 * 28, 32), 0x1c1d_1e1f);
        let mut six_to_nine = [0u8; 32];
        six_to_nine[6..10].copy_from_slice(&[6, 7, 8, 9]);
        assert_eq!(
            with_chunk(&[0; 4], 8 * 6, 32, 0x0607_0809),
            words(&six_to_nine)
        );
        assert_eq!(
            with_chunk(&k, 8 * 31, 8, 0),
            words(&core::array::from_fn(|i| if i == 31 { 0 } else { i as u8 }))
        );
        let o = node_ref(K_SKIP, 8 * 12345);
        assert!(is_node(o) && !is_value(o) && !is_dense(o));
        assert_eq!((node_word(o), kind(o)), (8 * 12345, K_SKIP));
        assert!(
            is_dense(node_ref(K_DENSE16, 8))
                && is_dense(node_ref(K_DENSE8, 8))
                && !is_dense(node_ref(K_R64, 8))
        );
        assert_eq!(dense_width(node_ref(K_DENSE8, 8)), 8);
        assert!(is_value(TAG_VALUE | 5) && is_value(TAG_BIG | 5) && !is_value(NONE));
        let h = header_range(TAG_VALUE | 9, 16, 7, 12345);
        assert_eq!(
            (ty(h), inherited(h), range_params(h), locals_id(h)),
            (TY_RANGE, TAG_VALUE | 9, (16, 7), 12345)
        );
        let h = header_skip(0, 48, 256);
        assert_eq!((ty(h), skip_end(h), skip_start(h)), (TY_SKIP, 256, 48));
        assert_eq!(bound_words(64, 4), 4);
        assert_eq!(bound_words(8, 9), 2);
    }
}
