//! The published interval snapshot and the changes made since it was built.
//!
//! A snapshot ([`IntervalTable`]) is static: rebuilding one takes a fifth of a
//! second for 640,000 prefixes. Rather than withdraw it at the first change (and
//! leave the workers on the three-times-slower trie until the routes settle), the
//! writer marks where a change can alter answers, before making it, and bulk
//! lookups send the keys under a mark to the trie, which is always current. A
//! change to a prefix can only alter the answers of keys inside it, so a mark
//! covers the prefix: a bit in a hashed bitmap of the top 128, 64, 48, 40 or 32 bits
//! of keys, the longest the prefix fixes (a /24 to /31 takes 2 to 256 bits of the
//! 32-bit level). Keys test every level (about 3 ns a key on the realistic
//! table; none while no mark exists). A collision only sends more keys to the
//! trie. A change to a prefix shorter than /24, or more marks
//! than [`MAX_MARKS`], withdraw the snapshot instead; the next quiet spell
//! publishes a new one.

use crate::arena::Arena;
use crate::interval::IntervalTable;
use crate::lookup;
use chainroute_wire::{Address, Prefix};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bits per bitmap (2^17: 16 KiB each).
const BITS_LOG2: u32 = 17;
const WORDS: usize = 1 << (BITS_LOG2 - 6);
/// Marks a snapshot takes before it is withdrawn: up to about 3 % of a bitmap,
/// so few clean keys go to the trie by a collision.
pub(crate) const MAX_MARKS: usize = 4096;
/// The shortest prefix a mark covers (2^(32 - 24) = 256 bits): a change to a
/// shorter one withdraws the snapshot.
pub const SHORTEST_MARKED: u16 = 24;
/// The key bits each level's bitmap is indexed by: the top 32, 40, 48, 64, 128.
const LEVELS: [u16; 5] = [32, 40, 48, 64, 128];

/// An interval snapshot as published to readers: the table, and the marks of
/// the changes made to the trie since it was built.
pub(crate) struct Snapshot {
    table: IntervalTable,
    /// Whether any mark was made (readers test keys only then).
    any: AtomicBool,
    bitmaps: [Box<[AtomicU64; WORDS]>; LEVELS.len()],
}

impl Snapshot {
    pub(crate) fn new(table: IntervalTable) -> Snapshot {
        Snapshot {
            table,
            any: AtomicBool::new(false),
            bitmaps: std::array::from_fn(|_| Box::new(std::array::from_fn(|_| AtomicU64::new(0)))),
        }
    }

    /// Bytes the lookups read from: the table and the bitmaps.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.table.memory_bytes() + self.bitmaps.iter().map(|b| b.len() * 8).sum::<usize>()
    }

    /// Marks the keys inside `prefix` as answered by the trie, before the writer
    /// changes it; returns how many marks that took, or `None` for a prefix too
    /// short to mark (the caller withdraws the snapshot).
    ///
    /// The marks are Release read-modify-writes made before the change's own
    /// Release stores in the trie: a reader that sees any part of the change through the trie
    /// (an Acquire load) also sees every mark, so its later lookups of keys in the
    /// prefix go to the trie too and never go back to the answers before the change.
    pub(crate) fn mark(&self, prefix: &Prefix) -> Option<usize> {
        let len = prefix.len();
        if len < SHORTEST_MARKED {
            return None;
        }
        // The longest level the prefix fixes; below /32, every 32-bit value it spans.
        let l = LEVELS.iter().rposition(|&bits| bits <= len).unwrap_or(0);
        let top = level_bits(l, &prefix.addr());
        let n = 1u64 << 32u16.saturating_sub(len);
        for t in top..top + n {
            let (w, m) = bit(t);
            self.bitmaps[l][w].fetch_or(m, Ordering::Release);
        }
        self.any.store(true, Ordering::Release);
        Some(n as usize)
    }

    /// Whether `key` lies in a marked region: every level tested, without a
    /// branch (an empty bitmap answers no). Relaxed loads: a reader that must
    /// see a mark sees it by the happens-before edge of the trie's stores (see
    /// [`Snapshot::mark`]); one that misses a mark made meanwhile answers as of
    /// before that change, which is concurrent with it.
    #[inline(always)]
    fn marked(&self, key: &Address) -> bool {
        let mut hit = 0;
        for (l, bitmap) in self.bitmaps.iter().enumerate() {
            let (w, m) = bit(level_bits(l, key));
            hit |= bitmap[w].load(Ordering::Relaxed) & m;
        }
        hit != 0
    }

    /// Longest-prefix match of a batch: the snapshot, then the trie (arena `a`)
    /// for the keys under a mark.
    pub(crate) fn lookup_bulk(&self, a: &Arena, keys: &[Address], out: &mut [Option<u32>]) {
        self.table.lookup_bulk(keys, out);
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        for (kc, oc) in keys
            .chunks(lookup::BATCH)
            .zip(out.chunks_mut(lookup::BATCH))
        {
            let mut which = [0u8; lookup::BATCH];
            let mut n = 0;
            for (i, k) in kc.iter().enumerate() {
                which[n] = i as u8;
                n += self.marked(k) as usize;
            }
            if n == 0 {
                continue;
            }
            let mut marked = [Address::UNSPECIFIED; lookup::BATCH];
            for (m, &i) in marked.iter_mut().zip(&which[..n]) {
                *m = kc[i as usize];
            }
            let mut answers = [None; lookup::BATCH];
            lookup::lookup_bulk(a, &marked[..n], &mut answers[..n]);
            for (&i, &v) in which[..n].iter().zip(&answers[..n]) {
                oc[i as usize] = v;
            }
        }
    }
}

/// The top `LEVELS[l]` bits of `a`, as a u64 (the top 128 folded into one).
#[inline(always)]
fn level_bits(l: usize, a: &Address) -> u64 {
    let word = |i: usize| u64::from_be_bytes(a.0[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    match LEVELS[l] {
        128 => word(0).wrapping_mul(0xff51_afd7_ed55_8ccd) ^ word(1),
        bits => word(0) >> (64 - bits),
    }
}

/// The word and bit of `top` in a bitmap: a multiplicative hash.
#[inline(always)]
fn bit(top: u64) -> (usize, u64) {
    let b = (top.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BITS_LOG2)) as usize;
    (b / 64 % WORDS, 1 << (b % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn a_mark_covers_every_key_of_its_prefix() {
        let s = Snapshot::new(IntervalTable::from_prefixes([]));
        let v6 = |t: &str| Address::from_ipv6(t.parse().unwrap());
        let host = |last: u8| {
            let mut a = v6("2001:db8:5::1").0;
            a[31] = last;
            Address(a)
        };
        assert!(!s.marked(&v6("2001:db8:1:2::")));
        assert_eq!(s.mark(&p("2001:db8:1:2::/64")), Some(1));
        assert_eq!(s.mark(&p("2001:db9::/36")), Some(1));
        assert_eq!(s.mark(&p("2001:dbb::/40")), Some(1));
        assert_eq!(s.mark(&p("2001:dc0::/26")), Some(64));
        assert_eq!(s.mark(&Prefix::host(host(7))), Some(1));
        assert_eq!(s.mark(&p("2001:e00::/23")), None, "too short: withdraw");
        for (prefix, inside) in [
            (
                "/64",
                [v6("2001:db8:1:2::"), v6("2001:db8:1:2:ffff:ffff:ffff:ffff")],
            ),
            ("/36", [v6("2001:db9::"), v6("2001:db9:fff:ffff::1")]),
            ("/40", [v6("2001:dbb::"), v6("2001:dbb:ff:ffff::1")]),
            ("/26", [v6("2001:dc0::"), v6("2001:dff:ffff::1")]),
            ("/256", [host(7), host(7)]),
        ] {
            for k in inside {
                assert!(s.marked(&k), "{k} in the {prefix}");
            }
        }
        // A mark is as coarse as its level: the /36's covers its /32, the /256's
        // its /128.
        assert!(s.marked(&v6("2001:db9:1000::")));
        assert!(s.marked(&host(8)));
        // Outside every mark: clean, unless a hash collides (not these).
        for k in [
            "2001:db8:1:3::",
            "2001:dba::",
            "2001:dbb:100::",
            "2001:e00::",
            "2001:db8:6::1",
            "::",
        ] {
            assert!(!s.marked(&v6(k)), "{k}");
        }
    }
}
