//! Word-level encoding of the lookup structure (shared by the writer and the readers).
//!
//! Everything readers touch lives in one arena of 64-bit words:
//!
//! ```text
//! word 0 .. 65536      root: one outcome per value of the address's top 16 bits
//! word 65536           the default route (::/0) as an outcome (value part only)
//! word 65544 ..        nodes, each starting on a 64-byte line (offset % 8 == 0)
//! ```
//!
//! An **outcome** word says what a slot leads to:
//!
//! ```text
//! bits  0..32   next hop (meaningful when HAS_VALUE is set)
//! bit   32      HAS_VALUE: a prefix ends here (the longest one covering this slot
//!               inside its node); readers remember it as the best match so far
//! bits 33..35   child kind: 0 none, 1 C8 node, 2 SKIP node
//! bits 35..64   child line (word offset / 8)
//! ```
//!
//! A **C8 node** consumes one byte of the key (stride 8, always byte aligned):
//!
//! ```text
//! words 0..4    run-start bitmap over the 256 slots (slot c = word c>>6, bit c&63);
//!               slot 0 always starts a run
//! word  4       bits 8w..8w+8: run starts in bitmap words < w (w = 0..3; byte 0 is 0);
//!               bits 32..48: number of locals (writer only)
//! words 5..5+n  one outcome per run (n = popcount of the bitmap)
//! then m words  locals, writer only: the prefixes that end inside this byte,
//!               `value | rel_len << 32 | start << 40` sorted by (rel_len, start)
//! ```
//!
//! A **SKIP node** (one 64-byte line) compares a stretch of key bits at once: path
//! compression for long single-branch paths and the single-prefix tails under them
//! (a /256 host route is one SKIP node):
//!
//! ```text
//! words 0..4    pattern: the address bits of the path, zero from `end` on
//! word  4       bits 0..9: end (the key must equal the pattern on bits [0, end));
//!               bits 16..25: the depth the skip starts at (writer only)
//! word  5       outcome taken when the key matches
//! words 6..8    unused (line padding)
//! ```

/// A prefix ends at this slot: the low 32 bits are its next hop.
pub const HAS_VALUE: u64 = 1 << 32;
/// The next hop and HAS_VALUE: what a slot remembers as "best so far".
pub const VALUE_BITS: u64 = (1 << 33) - 1;
/// The child part of an outcome (kind + line).
pub const CHILD_BITS: u64 = !VALUE_BITS;
pub const KIND_SHIFT: u32 = 33;
pub const KIND_NONE: u64 = 0;
pub const KIND_C8: u64 = 1;
pub const KIND_SKIP: u64 = 2;
pub const LINE_SHIFT: u32 = 35;
/// The largest line index an outcome can name (29 bits: a 32 GiB arena).
pub const MAX_LINE: u64 = (1 << 29) - 1;

/// Words in the root table.
pub const ROOT_WORDS: usize = 1 << 16;
/// The word holding the default route.
pub const DEFAULT_WORD: usize = ROOT_WORDS;
/// The first word nodes may use.
pub const FIRST_NODE_WORD: usize = ROOT_WORDS + 8;

/// C8 layout.
pub const C8_CUM: usize = 4;
pub const C8_OUT: usize = 5;
/// SKIP layout.
pub const SKIP_META: usize = 4;
pub const SKIP_OUT: usize = 5;
pub const SKIP_WORDS: usize = 8;

/// Upper bound on the steps of one walk: a valid structure needs at most 30 C8 steps
/// (bytes 2..=31) plus the skips between them; the bound only matters for a
/// structure that is corrupt, where it keeps a lookup from looping.
pub const MAX_STEPS: usize = 64;

#[inline(always)]
pub const fn kind(out: u64) -> u64 {
    (out >> KIND_SHIFT) & 3
}

/// The word offset of an outcome's child node.
#[inline(always)]
pub const fn child_word(out: u64) -> usize {
    ((out >> (LINE_SHIFT - 3)) & !7) as usize
}

/// The child part of an outcome pointing at `word` (a multiple of 8).
#[inline(always)]
pub const fn child(kind: u64, word: usize) -> u64 {
    (kind << KIND_SHIFT) | (((word as u64) >> 3) << LINE_SHIFT)
}

/// The value part of an outcome for next hop `v`.
#[inline(always)]
pub const fn value(v: u32) -> u64 {
    HAS_VALUE | v as u64
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

/// An address as four big-endian words (bit 0 of the address = bit 63 of word 0).
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

/// Byte `i` (0 = most significant) of an address in word form.
#[inline]
pub fn byte(w: &Words, i: usize) -> u8 {
    (w[i / 8] >> (56 - 8 * (i % 8))) as u8
}

/// Packs a local prefix of a C8 node.
#[inline]
pub const fn local(start: u8, rel_len: u8, v: u32) -> u64 {
    v as u64 | (rel_len as u64) << 32 | (start as u64) << 40
}

#[inline]
pub const fn local_start(l: u64) -> u8 {
    (l >> 40) as u8
}

#[inline]
pub const fn local_len(l: u64) -> u8 {
    (l >> 32) as u8
}

#[inline]
pub const fn local_value(l: u64) -> u32 {
    l as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_lcp() {
        assert_eq!(MASKS[0], [0; 4]);
        assert_eq!(MASKS[256], [u64::MAX; 4]);
        assert_eq!(MASKS[1], [1 << 63, 0, 0, 0]);
        assert_eq!(MASKS[65], [u64::MAX, 1 << 63, 0, 0]);
        let a = [0, 0, 1, 0];
        assert_eq!(lcp(&a, &[0; 4]), 191);
        assert_eq!(lcp(&a, &a), 256);
        assert_eq!(masked(&[u64::MAX; 4], 70), [u64::MAX, 0xfc00_0000_0000_0000, 0, 0]);
        let b: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(bytes(&words(&b)), b);
        assert_eq!(byte(&words(&b), 13), 13);
        let o = child(KIND_SKIP, 8 * 12345) | value(7);
        assert_eq!((kind(o), child_word(o), o as u32, o & HAS_VALUE != 0), (KIND_SKIP, 8 * 12345, 7, true));
        let l = local(0xa0, 3, u32::MAX);
        assert_eq!((local_start(l), local_len(l), local_value(l)), (0xa0, 3, u32::MAX));
    }
}
