//! A read-optimised longest-prefix match over elementary intervals (the idea of
//! PlanB, NSDI '26, carried to 256-bit keys): built from a prefix list, searched,
//! never edited. Changes are made by building a new one.
//!
//! Longest-prefix match is a step function of the address: the prefixes' first
//! addresses and the addresses after their last cut the space into elementary
//! intervals with one answer each, however the prefixes nest. So one ordered
//! search over the cuts answers it: no walk down the prefix lengths.
//!
//! 256-bit cuts would make every comparison four words wide, so the key is taken
//! 64 bits at a time. A *table* holds the intervals of one 64-bit chunk of the key;
//! an interval that is a single chunk value under which longer prefixes start (a
//! *point*) leads to a child table for the next chunk, built with the point's own
//! answer as the child's default. Real tables need one table (prefixes up to /64);
//! /96 subnets a second, /160 and /256 routes a third and fourth.
//!
//! A table's cuts form a static B+-tree laid out level by level without pointers
//! (an S+-tree) in 64-byte lines: inner nodes of 8 keys, the children of node `j`
//! at `9 j .. 9 j + 8` in the next level, and leaves of up to 6 intervals that
//! hold their outcomes beside their keys, so the step that finds a key's interval
//! brings its answer along. Keys are the intervals' *last* chunks and a step
//! counts the keys strictly below the search key, so the padding (`u64::MAX`) is
//! never counted and the last interval (which ends at `u64::MAX`) needs no
//! special case. One step is an 8-lane compare and a popcount; the bulk lookup
//! steps a batch of keys in rounds and prefetches each key's next line, so the
//! misses of different keys overlap. The search is bound by the misses in flight,
//! so lines count more than levels: nodes of 16 keys (two lines) took a level
//! less and looked up about 20 % slower on the full table.
//!
//! A table is found through its descriptor (where its levels start), one more
//! dependent fetch, except a child table of at most 54 intervals (most of them):
//! its parent's outcome names its line directly, a lone leaf or one inner node
//! with its leaves right after it.

use crate::mapping::HugeSlice;
use crate::node::{chunk, words, Words, NONE};
use crate::table::{pieces_into, Local, Piece};
use chainroute_wire::{Address, Prefix};
use std::collections::HashMap;

/// Keys per inner node (one 64-byte line of u64).
const KEYS: usize = 8;
/// Children per inner node.
const FANOUT: usize = KEYS + 1;
/// Keys per leaf: a leaf line holds up to 6 intervals, the last chunks of all but
/// the last (which its parent's key bounds) and the 6 outcomes.
const LEAF_KEYS: usize = 5;
/// Intervals per leaf.
const SPAN: usize = LEAF_KEYS + 1;
/// Most inner levels a table can need: 6 * 9^10 > 2^32 intervals.
const MAX_LEVELS: usize = 10;
/// In the bulk rounds, a key's level while its next table's descriptor is fetched.
const DESC: usize = u8::MAX as usize;
/// An outcome with this bit leads to the child table in the low bits.
const CHILD: u32 = 1 << 31;
/// An outcome with this bit (and not `CHILD`) is a point under which exactly one
/// longer prefix starts: `singles[low bits]` answers it without a table (most
/// host routes and small blocks are alone under their point; a table each would
/// cost a line and a fetch more).
const SINGLE: u32 = 1 << 30;
/// An outcome with both bits leads to a table without a descriptor, at line
/// `low bits & INDEX`: a lone leaf (at most 6 intervals), or with [`SHAPE`] one
/// inner node and its leaves after it (at most 54).
const SMALL: u32 = CHILD | SINGLE;
/// In a `SMALL` outcome: the table is an inner node followed by its leaves.
const SHAPE: u32 = 1 << 29;
/// In a `SMALL` outcome: the line.
const INDEX: u32 = SHAPE - 1;
/// The bits that say what an outcome is.
const KIND: u32 = CHILD | SINGLE;
/// A value code with this bit names `values[low bits]`; without it, a code `c`
/// is the value `c - 1` itself (0: no match). Next hops below 2^29 - 1 (every
/// FIB id, and nearly every AS number) are answered without a load more.
const INDIRECT: u32 = SHAPE;
/// Keys stepped together by the bulk lookup.
pub const INTERVAL_BATCH: usize = 64;

/// One 64-byte line of a table: an inner node (8 keys) or a leaf (see [`leaf`]).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u64; KEYS]);

const PAD: Line = Line([u64::MAX; KEYS]);

const _: () = assert!(std::mem::size_of::<Line>() == 64);

/// One 64-bit chunk's intervals: where its inner levels start in `lines` (root
/// first), where its leaves start (after them).
#[derive(Clone, Copy, Debug, Default)]
struct TableDesc {
    inner: u32,
    leaves: u32,
    level_start: [u32; MAX_LEVELS],
}

/// A static longest-prefix-match table over elementary intervals (see the module
/// documentation). Prefix lengths 0..=256; next hops any u32.
pub struct IntervalTable {
    /// Every table's lines, its inner levels then its leaves. Lines and singles
    /// are read all over at random: from 2 MiB up they live in huge-page
    /// mappings. A leaf's outcomes are value codes (see [`INDIRECT`]),
    /// `CHILD | table`, `SINGLE | single` or `SMALL | ...`.
    lines: HugeSlice<Line>,
    tables: HugeSlice<TableDesc>,
    singles: HugeSlice<Single>,
    /// The next hops too large to be their own code.
    values: HugeSlice<u32>,
    prefixes: usize,
    intervals: usize,
    smalls: usize,
}

/// The arrays of an [`IntervalTable`] while it is built.
#[derive(Default)]
struct Parts {
    lines: Vec<Line>,
    tables: Vec<TableDesc>,
    singles: Vec<Single>,
    values: Vec<u32>,
    intervals: usize,
    smalls: usize,
}

/// The one longer prefix under a point, and the point's own answer: 32 bytes,
/// one line. The prefix is longer than 64 bits and its first word is the one the
/// path to the point matched already, so `rest` holds its words 1 to 3. Its
/// length is not stored: a prefix shorter than 256 bits carries a marker bit
/// right after its last bit (its lowest set bit, since the bits after a prefix
/// are zero), and a /256 is flagged in `value`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Single {
    rest: [u64; 3],
    /// Value code, with [`HOST`] for a /256.
    value: u32,
    inherited: u32,
}

/// In a single's `value`: the prefix is a /256 (no marker bit).
const HOST: u32 = 1 << 31;

impl Single {
    fn new(addr: &Words, len: u16, value: u32, inherited: u32) -> Single {
        let mut rest = [addr[1], addr[2], addr[3]];
        let value = match len {
            256 => value | HOST,
            _ => {
                // Bit `len` of the address, counted from its top: in `rest`, bit
                // `len - 64`.
                let b = len as usize - 64;
                rest[b / 64] |= 1 << (63 - b % 64);
                value
            }
        };
        Single {
            rest,
            value,
            inherited,
        }
    }

    /// Whether `key` (whose first word the path matched) lies in the prefix.
    #[inline(always)]
    fn contains(&self, key: &Words) -> bool {
        if self.value & HOST != 0 {
            return key[1] == self.rest[0] && key[2] == self.rest[1] && key[3] == self.rest[2];
        }
        // The marker is the lowest set bit: the prefix's bits are those above it.
        let mut same = true;
        let mut found = false;
        for w in (0..3).rev() {
            let r = self.rest[w];
            let mask = if found {
                u64::MAX
            } else if r != 0 {
                found = true;
                // The bits above the marker `m`.
                let m = r & r.wrapping_neg();
                !((m << 1).wrapping_sub(1))
            } else {
                0
            };
            same &= (key[w + 1] ^ r) & mask == 0;
        }
        same
    }
}

impl std::fmt::Debug for IntervalTable {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("IntervalTable")
            .field("prefixes", &self.prefixes)
            .field("tables", &self.tables())
            .field("intervals", &self.intervals())
            .finish()
    }
}

/// A prefix as the builder sees it: address words, length, value code.
type Item = (Words, u16, u32);

/// Scratch of one table's build, reused across tables.
#[derive(Default)]
struct Scratch {
    locals: Vec<Local>,
    groups: Vec<(u64, std::ops::Range<usize>)>,
    pieces: Vec<Piece>,
    open: Vec<(u64, u32)>,
}

impl IntervalTable {
    /// Builds the table; of equal prefixes the last one counts.
    pub fn from_prefixes<I: IntoIterator<Item = (Prefix, u32)>>(pairs: I) -> IntervalTable {
        let mut t = Parts::default();
        let mut codes: HashMap<u32, u32> = HashMap::new();
        let mut items: Vec<Item> = Vec::new();
        for (p, v) in pairs {
            let code = match v.checked_add(1) {
                Some(c) if c < INDIRECT => c,
                _ => *codes.entry(v).or_insert_with(|| {
                    t.values.push(v);
                    INDIRECT | (t.values.len() - 1) as u32
                }),
            };
            items.push((words(p.addr().as_bytes()), p.len(), code));
        }
        // Outcomes keep two flag bits above the value codes, and those one more.
        assert!(
            t.values.len() <= INDIRECT as usize,
            "at most 2^29 distinct next hops of 2^29 - 1 and up"
        );
        // Sort by address then length, keeping the last of equal prefixes.
        items.reverse();
        items.sort_by_key(|it| (it.0, it.1));
        items.dedup_by_key(|it| (it.0, it.1));
        let (default, rest) = match items.first() {
            Some(&(_, 0, code)) => (code, &items[1..]),
            _ => (NONE, &items[..]),
        };
        t.build_table(0, rest, default, &mut Scratch::default());
        IntervalTable {
            lines: HugeSlice::from_vec(t.lines),
            tables: HugeSlice::from_vec(t.tables),
            singles: HugeSlice::from_vec(t.singles),
            values: HugeSlice::from_vec(t.values),
            prefixes: items.len(),
            intervals: t.intervals,
            smalls: t.smalls,
        }
    }
}

impl Parts {
    /// Builds the table of the chunk at bit `d` for `items` (sorted, all longer
    /// than `d`, sharing their first `d` bits); `inherited` answers where none of
    /// them matches. Returns the outcome that leads to it: `CHILD | table`, or
    /// `SMALL | ...` for a table of at most one inner level (the top table, at
    /// `d` 0, is always table 0).
    fn build_table(&mut self, d: usize, items: &[Item], inherited: u32, s: &mut Scratch) -> u32 {
        if d == 0 {
            // Reserved before the children are built, which take the next indices.
            self.tables.push(TableDesc::default());
        }
        s.locals.clear();
        s.groups.clear();
        let mut i = 0;
        while i < items.len() {
            let (a, len, code) = items[i];
            let x = chunk(&a, d, 64);
            if len as usize <= d + 64 {
                s.locals.push(Local {
                    start: x,
                    rel: (len as usize - d) as u8,
                    value: code,
                });
                i += 1;
            } else {
                // The longer prefixes under one chunk value are adjacent (sorted).
                let mut j = i + 1;
                while j < items.len()
                    && items[j].1 as usize > d + 64
                    && chunk(&items[j].0, d, 64) == x
                {
                    j += 1;
                }
                s.groups.push((x, i..j));
                i = j;
            }
        }
        // Locals and groups interleave in address order; the sweep needs groups
        // in chunk order, which they are, and sorts the locals itself.
        pieces_into(64, &mut s.locals, &s.groups, &mut s.pieces, &mut s.open);
        let pieces = std::mem::take(&mut s.pieces);
        let groups = std::mem::take(&mut s.groups);
        let mut outs = Vec::with_capacity(pieces.len());
        for p in &pieces {
            let value = if p.value == NONE { inherited } else { p.value };
            outs.push(match p.group {
                None => value,
                Some(g) => match &items[groups[g].1.clone()] {
                    &[(addr, len, code)] => {
                        self.singles.push(Single::new(&addr, len, code, value));
                        SINGLE | (self.singles.len() - 1) as u32
                    }
                    more => self.build_table(d + 64, more, value, s),
                },
            });
        }
        let lasts: Vec<u64> = pieces
            .windows(2)
            .map(|w| w[1].start - 1)
            .chain(std::iter::once(u64::MAX))
            .collect();
        s.pieces = pieces;
        s.groups = groups;
        let desc = self.lay_out(&lasts, &outs);
        if d > 0 && desc.inner <= 1 {
            self.smalls += 1;
            return match desc.inner {
                0 => SMALL | desc.leaves,
                _ => SMALL | SHAPE | desc.level_start[0],
            };
        }
        if d == 0 {
            self.tables[0] = desc;
            return CHILD;
        }
        self.tables.push(desc);
        CHILD | (self.tables.len() - 1) as u32
    }

    /// Appends the S+-tree over `lasts` (the intervals' last chunks, ascending,
    /// ending in `u64::MAX`) and their outcomes to `lines`: its inner levels, root
    /// first (each node holds the largest key of each of its first 8 children),
    /// then its leaves of up to 6 intervals.
    fn lay_out(&mut self, lasts: &[u64], outs: &[u32]) -> TableDesc {
        assert!(
            self.lines.len() + lasts.len() < INDEX as usize,
            "at most 2^29 lines"
        );
        self.intervals += lasts.len();
        let mut levels: Vec<Vec<Line>> = Vec::new();
        let mut maxes: Vec<u64> = lasts.chunks(SPAN).map(|c| c[c.len() - 1]).collect();
        while maxes.len() > 1 {
            let parents: Vec<Line> = maxes
                .chunks(FANOUT)
                .map(|c| fill(&c[..c.len().min(KEYS)]))
                .collect();
            maxes = maxes.chunks(FANOUT).map(|c| c[c.len() - 1]).collect();
            levels.push(parents);
        }
        assert!(levels.len() <= MAX_LEVELS, "more than 2^32 intervals");
        let mut desc = TableDesc {
            inner: levels.len() as u32,
            leaves: 0,
            level_start: [0; MAX_LEVELS],
        };
        for (l, nodes) in levels.iter().rev().enumerate() {
            desc.level_start[l] = self.lines.len() as u32;
            self.lines.extend_from_slice(nodes);
        }
        desc.leaves = self.lines.len() as u32;
        for (ks, os) in lasts.chunks(SPAN).zip(outs.chunks(SPAN)) {
            self.lines.push(leaf(&ks[..ks.len() - 1], os));
        }
        desc
    }
}

impl IntervalTable {
    /// How many prefixes it was built from (after removing duplicates).
    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    /// Elementary intervals over all tables.
    pub fn intervals(&self) -> usize {
        self.intervals
    }

    /// Whether the top table is all there is (no prefix longer than /64), so its
    /// leaves hold answers only.
    #[inline(always)]
    fn flat(&self) -> bool {
        self.tables.len() == 1 && self.smalls == 0 && self.singles.is_empty()
    }

    /// Tables (64-bit chunk levels) in all.
    pub fn tables(&self) -> usize {
        self.tables.len() + self.smalls
    }

    /// Bytes the lookups read from: lines, table descriptors, singles, values.
    pub fn memory_bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
            + self.tables.len() * std::mem::size_of::<TableDesc>()
            + self.singles.len() * std::mem::size_of::<Single>()
            + self.values.len() * 4
    }

    /// The answer of a leaf outcome (a value code or a single) for `key`.
    #[inline(always)]
    fn finish(&self, o: u32, key: &Address) -> Option<u32> {
        self.finish_touching(o, key, |_| {})
    }

    /// `finish`, showing `touch` the address of the single or value it reads.
    #[inline(always)]
    fn finish_touching(&self, o: u32, key: &Address, mut touch: impl FnMut(usize)) -> Option<u32> {
        let code = match o & SINGLE {
            0 => o,
            _ => {
                let one = &self.singles[(o & !SINGLE) as usize];
                touch(one as *const Single as usize);
                match one.contains(&words(key.as_bytes())) {
                    true => one.value & !HOST,
                    false => one.inherited,
                }
            }
        };
        if code != NONE && code & INDIRECT != 0 {
            touch(&self.values[(code & !INDIRECT) as usize] as *const u32 as usize);
        }
        self.decode(code)
    }

    #[inline(always)]
    fn decode(&self, code: u32) -> Option<u32> {
        match code {
            NONE => None,
            c if c & INDIRECT != 0 => Some(self.values[(c & !INDIRECT) as usize]),
            c => Some(c - 1),
        }
    }

    /// Longest-prefix match of one key.
    pub fn lookup(&self, key: &Address) -> Option<u32> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, all `avx512::single` is compiled for.
            return unsafe { avx512::single(self, key) };
        }
        self.lookup_with::<Portable>(key)
    }

    /// The single-key lookup without target features, for cross-checking.
    #[doc(hidden)]
    pub fn lookup_portable(&self, key: &Address) -> Option<u32> {
        self.lookup_with::<Portable>(key)
    }

    #[inline(always)]
    fn lookup_with<R: Rank>(&self, key: &Address) -> Option<u32> {
        self.walk::<R>(key, |_| {})
    }

    /// The addresses of the 64-byte lines a lookup of `key` reads, in order:
    /// descriptors, nodes, leaves, singles, values (diagnostics).
    #[doc(hidden)]
    pub fn trace(&self, key: &Address) -> Vec<usize> {
        let mut lines = Vec::new();
        self.walk::<Portable>(key, |at| lines.push(at / 64));
        lines
    }

    #[inline(always)]
    fn line_touched(&self, i: usize, touch: &mut impl FnMut(usize)) -> &Line {
        let l = &self.lines[i];
        touch(l as *const Line as usize);
        l
    }

    /// The single-key search; `touch` sees the address of everything it reads.
    #[inline(always)]
    fn walk<R: Rank>(&self, key: &Address, mut touch: impl FnMut(usize)) -> Option<u32> {
        let k = words(key.as_bytes());
        // The top table first, at chunk 0; each child at the next chunk.
        let (mut o, mut c) = (CHILD, 0usize);
        loop {
            let leaf = match o & KIND {
                CHILD => {
                    let desc = &self.tables[(o & !KIND) as usize];
                    touch(desc as *const TableDesc as usize);
                    let mut idx = 0usize;
                    for l in 0..desc.inner as usize {
                        let node =
                            self.line_touched(desc.level_start[l] as usize + idx, &mut touch);
                        idx = idx * FANOUT + R::below(node, k[c]);
                    }
                    desc.leaves as usize + idx
                }
                SMALL => {
                    let at = (o & INDEX) as usize;
                    match o & SHAPE {
                        0 => at,
                        _ => at + 1 + R::below(self.line_touched(at, &mut touch), k[c]),
                    }
                }
                _ => return self.finish_touching(o, key, touch),
            };
            let l = self.line_touched(leaf, &mut touch);
            o = outcome(l, R::below_leaf(l, k[c]));
            c += 1;
        }
    }

    /// Longest-prefix match of a batch: `out[i]` for `keys[i]` (`out` at least as
    /// long as `keys`).
    pub fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, all `avx512::bulk` is compiled for.
            return unsafe { avx512::bulk(self, keys, out) };
        }
        self.bulk_with::<Portable>(keys, out)
    }

    /// The bulk lookup without target features, for cross-checking.
    #[doc(hidden)]
    pub fn lookup_bulk_portable(&self, keys: &[Address], out: &mut [Option<u32>]) {
        self.bulk_with::<Portable>(keys, out)
    }

    /// Steps [`INTERVAL_BATCH`] keys at a time. Every key starts in the top
    /// table, so a batch's levels go in lockstep: one level for all its keys,
    /// then the next, each step prefetching the node (or leaf) that key needs
    /// next (the other keys' steps give it time to arrive). Keys that go on into
    /// child tables (most take none, a /96 subnet one, a host route two or three)
    /// then continue in passes: the keys in small tables (nearly all) in two
    /// tight loops per pass, their first lines then their leaves; the keys in
    /// tables with a descriptor a line further per pass.
    #[inline(always)]
    fn bulk_with<R: Rank>(&self, keys: &[Address], out: &mut [Option<u32>]) {
        assert!(out.len() >= keys.len(), "out shorter than keys");
        let top = self.tables[0];
        let depth = top.inner as usize;
        let leaves = top.leaves as usize;
        let mut deeper = Deeper::new();
        for (kc, oc) in keys
            .chunks(INTERVAL_BATCH)
            .zip(out.chunks_mut(INTERVAL_BATCH))
        {
            let n = kc.len();
            let mut idx = [0usize; INTERVAL_BATCH];
            let mut x = [0u64; INTERVAL_BATCH];
            for (xk, key) in x.iter_mut().zip(kc) {
                *xk = key_chunk(key, 0);
            }
            for l in 0..depth {
                let level = top.level_start[l] as usize;
                let last = l + 1 == depth;
                let next = if last {
                    0
                } else {
                    top.level_start[l + 1] as usize
                };
                for k in 0..n {
                    idx[k] = idx[k] * FANOUT + R::below(self.node(level + idx[k]), x[k]);
                    R::prefetch(self.line_at(if last { leaves } else { next } + idx[k]));
                }
            }
            if self.flat() {
                // Every outcome is an answer (a table of prefixes up to /64).
                for k in 0..n {
                    oc[k] = self.decode(self.leaf_step::<R>(leaves + idx[k], x[k]));
                }
                continue;
            }
            for k in 0..n {
                let o = self.leaf_step::<R>(leaves + idx[k], x[k]);
                deeper.go_on::<R>(self, k as u8, o, 1, oc);
            }
            while deeper.smalls + deeper.live > 0 {
                self.small_pass::<R>(kc, oc, &mut deeper);
                self.round::<R>(kc, oc, &mut deeper);
            }
            // Answered last, after their lines were fetched.
            deeper.finish_singles(self, kc, oc);
        }
    }

    /// One step of every key in a small table: the table's first line (a lone
    /// leaf, or the inner node whose count picks the leaf after it, which is
    /// fetched), then, once all first lines are done, the leaves. A key ends, or
    /// goes on at the next chunk.
    #[inline(always)]
    fn small_pass<R: Rank>(&self, kc: &[Address], oc: &mut [Option<u32>], st: &mut Deeper) {
        let m = st.smalls;
        for j in 0..m {
            let x = key_chunk(&kc[st.small_key[j] as usize], st.small_chunk[j] as usize);
            let at = st.small_at[j];
            let first = (at & INDEX) as usize;
            let shape = (at & SHAPE != 0) as usize;
            // A lone leaf's count is unused: it is its own leaf.
            let leaf = first + shape * (1 + R::below(self.node(first), x));
            R::prefetch(self.line_at(leaf));
            (st.small_x[j], st.small_leaf[j]) = (x, leaf as u32);
        }
        // Keys that go on are kept in place (at slot `smalls` <= j).
        st.smalls = 0;
        for j in 0..m {
            let o = self.leaf_step::<R>(st.small_leaf[j] as usize, st.small_x[j]);
            st.go_on::<R>(self, st.small_key[j], o, st.small_chunk[j] + 1, oc);
        }
    }

    /// One round: every key in a table with a descriptor one line further,
    /// prefetching its next; a key that reaches its outcome ends or goes on into
    /// the next table.
    #[inline(always)]
    fn round<R: Rank>(&self, kc: &[Address], oc: &mut [Option<u32>], st: &mut Deeper) {
        let live = st.live;
        st.live = 0;
        for a in 0..live {
            let (k, at, l, ch) = (st.key[a], st.at[a], st.level[a] as usize, st.chunk[a]);
            // Level DESC means "the descriptor was fetched: fetch the root";
            // level `inner` means "step the leaf at `idx`".
            let table = at & !KIND;
            if l == DESC {
                R::prefetch(self.first_node(table));
                st.keep(k, at, 0, 0, ch);
                continue;
            }
            let x = key_chunk(&kc[k as usize], ch as usize);
            let d = self.desc(table);
            let (i, inner) = (st.idx[a] as usize, d.inner as usize);
            if l < inner {
                let ix = i * FANOUT + R::below(self.node(d.level_start[l] as usize + i), x);
                let next = if l + 1 < inner {
                    d.level_start[l + 1]
                } else {
                    d.leaves
                };
                R::prefetch(self.line_at(next as usize + ix));
                st.keep(k, at, l as u8 + 1, ix as u32, ch);
                continue;
            }
            // The key has its outcome at this chunk: it ends, or goes on at the next.
            let o = self.leaf_step::<R>(d.leaves as usize + i, x);
            st.go_on::<R>(self, k, o, ch + 1, oc);
        }
    }

    /// The outcome of the interval of leaf `i` that holds `x`.
    #[inline(always)]
    fn leaf_step<R: Rank>(&self, i: usize, x: u64) -> u32 {
        let leaf = &self.lines[i];
        outcome(leaf, R::below_leaf(leaf, x))
    }

    /// The address of line `i` (for prefetching).
    #[inline(always)]
    fn line_at(&self, i: usize) -> *const Line {
        self.lines.as_ptr().wrapping_add(i)
    }

    /// The address of the single an outcome names (for prefetching).
    #[inline(always)]
    fn single_at(&self, o: u32) -> *const Single {
        self.singles.as_ptr().wrapping_add((o & !SINGLE) as usize)
    }

    #[inline(always)]
    fn desc(&self, t: u32) -> &TableDesc {
        &self.tables[t as usize]
    }

    #[inline(always)]
    fn node(&self, i: usize) -> &Line {
        &self.lines[i]
    }

    /// The address of a child table's root node (for prefetching; a child table
    /// has inner levels, or it would be a small one).
    #[inline(always)]
    fn first_node(&self, t: u32) -> *const Line {
        self.line_at(self.desc(t).level_start[0] as usize)
    }
}

/// The keys of a bulk lookup's batch that went on past the top table: those in
/// small tables (the common child tables: a lone leaf, or one inner node and its
/// leaves) with the outcome that names the table and the key chunk; those in
/// tables with a descriptor with the level and index they are at as well; and
/// the keys that ended on a single, answered once its line came. Keys are
/// indices into the batch.
struct Deeper {
    small_key: [u8; INTERVAL_BATCH],
    small_at: [u32; INTERVAL_BATCH],
    small_chunk: [u8; INTERVAL_BATCH],
    /// A small-table key's chunk and the leaf its first line picked.
    small_x: [u64; INTERVAL_BATCH],
    small_leaf: [u32; INTERVAL_BATCH],
    smalls: usize,
    key: [u8; INTERVAL_BATCH],
    at: [u32; INTERVAL_BATCH],
    level: [u8; INTERVAL_BATCH],
    idx: [u32; INTERVAL_BATCH],
    chunk: [u8; INTERVAL_BATCH],
    live: usize,
    singles: [(u8, u32); INTERVAL_BATCH],
    ns: usize,
}

impl Deeper {
    #[inline(always)]
    fn new() -> Deeper {
        Deeper {
            small_key: [0; INTERVAL_BATCH],
            small_at: [0; INTERVAL_BATCH],
            small_chunk: [0; INTERVAL_BATCH],
            small_x: [0; INTERVAL_BATCH],
            small_leaf: [0; INTERVAL_BATCH],
            smalls: 0,
            key: [0; INTERVAL_BATCH],
            at: [0; INTERVAL_BATCH],
            level: [0; INTERVAL_BATCH],
            idx: [0; INTERVAL_BATCH],
            chunk: [0; INTERVAL_BATCH],
            live: 0,
            singles: [(0, 0); INTERVAL_BATCH],
            ns: 0,
        }
    }

    /// Keeps key `k` in a table with a descriptor for the next round (in place:
    /// a round compacts as it goes).
    #[inline(always)]
    fn keep(&mut self, k: u8, at: u32, level: u8, idx: u32, chunk: u8) {
        let i = self.live;
        (
            self.key[i],
            self.at[i],
            self.level[i],
            self.idx[i],
            self.chunk[i],
        ) = (k, at, level, idx, chunk);
        self.live += 1;
    }

    /// Key `k` has outcome `o` at chunk `chunk - 1`: its answer, or the table or
    /// single that decides it, whose first line is fetched now.
    #[inline(always)]
    fn go_on<R: Rank>(
        &mut self,
        t: &IntervalTable,
        k: u8,
        o: u32,
        chunk: u8,
        out: &mut [Option<u32>],
    ) {
        let kind = o & KIND;
        if kind == SINGLE {
            R::prefetch_single(t.single_at(o));
            self.singles[self.ns] = (k, o);
            self.ns += 1;
            return;
        }
        if kind == CHILD {
            // A table's root is found through its descriptor: fetch that first.
            R::prefetch_desc(t.desc(o & !KIND));
            self.keep(k, o, DESC as u8, 0, chunk);
            return;
        }
        // A value or a small table, the common outcomes, about evenly mixed after
        // the top table of a realistic table: no branch on which (a mispredicted
        // branch per key cost more than the work both ways). The key is kept and
        // counted only if it goes on, and answered as if it ended (one that goes
        // on is answered again when it does).
        let small = kind == SMALL;
        R::prefetch(t.line_at(if small { (o & INDEX) as usize } else { 0 }));
        let i = self.smalls;
        (self.small_key[i], self.small_at[i], self.small_chunk[i]) = (k, o, chunk);
        self.smalls += small as usize;
        out[k as usize] = t.decode(if small { NONE } else { o });
    }

    /// Answers the keys that ended on a single.
    #[inline(always)]
    fn finish_singles(&mut self, t: &IntervalTable, kc: &[Address], oc: &mut [Option<u32>]) {
        for &(k, o) in &self.singles[..self.ns] {
            oc[k as usize] = t.finish(o, &kc[k as usize]);
        }
        self.ns = 0;
    }
}

/// The `c`-th 64-bit chunk of a key.
#[inline(always)]
fn key_chunk(key: &Address, c: usize) -> u64 {
    let b: [u8; 8] = key.0[8 * c..8 * c + 8].try_into().expect("8 bytes");
    u64::from_be_bytes(b)
}

/// A node with `keys` first and padding after.
fn fill(keys: &[u64]) -> Line {
    let mut n = PAD;
    n.0[..keys.len()].copy_from_slice(keys);
    n
}

/// A leaf: up to 6 intervals in one line, the last chunks of all but the last
/// (whose end the parent's key bounds) in words 0-4, `u64::MAX` padding never
/// counted, and the outcomes two to a word in words 5-7, so the step that finds
/// the interval brings its outcome along.
fn leaf(keys: &[u64], outs: &[u32]) -> Line {
    let mut l = PAD;
    l.0[..keys.len()].copy_from_slice(keys);
    for w in 0..SPAN / 2 {
        let at = |i: usize| outs.get(i).copied().unwrap_or(NONE) as u64;
        l.0[LEAF_KEYS + w] = at(2 * w) | at(2 * w + 1) << 32;
    }
    l
}

/// Outcome `i` of a leaf.
#[inline(always)]
fn outcome(leaf: &Line, i: usize) -> u32 {
    (leaf.0[LEAF_KEYS + i / 2] >> (32 * (i % 2))) as u32
}

/// One step's count: how many of a node's keys are below `x`.
trait Rank {
    fn below(node: &Line, x: u64) -> usize;
    /// How many of a leaf's keys are below `x`: the index of its outcome.
    fn below_leaf(leaf: &Line, x: u64) -> usize;
    fn prefetch(_line: *const Line) {}
    fn prefetch_single(_s: *const Single) {}
    fn prefetch_desc(_d: *const TableDesc) {}
}

struct Portable;

impl Rank for Portable {
    #[inline(always)]
    fn below(node: &Line, x: u64) -> usize {
        node.0.iter().map(|&k| (k < x) as usize).sum()
    }

    #[inline(always)]
    fn below_leaf(leaf: &Line, x: u64) -> usize {
        leaf.0[..LEAF_KEYS].iter().map(|&k| (k < x) as usize).sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    pub struct Avx512;

    impl Rank for Avx512 {
        #[inline(always)]
        fn below(node: &Line, x: u64) -> usize {
            // SAFETY: only reached from code compiled with AVX-512F; a node is
            // one 64-byte line, aligned.
            unsafe {
                let v = _mm512_set1_epi64(x as i64);
                let keys = _mm512_load_si512(node.0.as_ptr() as *const __m512i);
                _mm512_cmplt_epu64_mask(keys, v).count_ones() as usize
            }
        }

        #[inline(always)]
        fn below_leaf(leaf: &Line, x: u64) -> usize {
            // SAFETY: as `below`: a leaf is one aligned line; lanes 5-7 hold the
            // outcomes, masked off.
            unsafe {
                let v = _mm512_set1_epi64(x as i64);
                let line = _mm512_load_si512(leaf.0.as_ptr() as *const __m512i);
                let mask = (1u8 << LEAF_KEYS) - 1;
                (_mm512_cmplt_epu64_mask(line, v) & mask).count_ones() as usize
            }
        }

        #[inline(always)]
        fn prefetch(line: *const Line) {
            // SAFETY: prefetches never fault.
            unsafe { _mm_prefetch(line as *const i8, _MM_HINT_T0) }
        }

        #[inline(always)]
        fn prefetch_single(s: *const Single) {
            // SAFETY: prefetches never fault. A single is half a line.
            unsafe { _mm_prefetch(s as *const i8, _MM_HINT_T0) }
        }

        #[inline(always)]
        fn prefetch_desc(d: *const TableDesc) {
            // SAFETY: prefetches never fault. A descriptor (under a line) may
            // straddle two: fetch the lines of its first and last bytes.
            unsafe {
                let p = d as *const i8;
                _mm_prefetch(p, _MM_HINT_T0);
                _mm_prefetch(
                    p.wrapping_add(std::mem::size_of::<TableDesc>() - 1),
                    _MM_HINT_T0,
                );
            }
        }
    }

    #[target_feature(enable = "avx512f,popcnt")]
    pub unsafe fn single(t: &IntervalTable, key: &Address) -> Option<u32> {
        t.lookup_with::<Avx512>(key)
    }

    #[target_feature(enable = "avx512f,popcnt")]
    pub unsafe fn bulk(t: &IntervalTable, keys: &[Address], out: &mut [Option<u32>]) {
        t.bulk_with::<Avx512>(keys, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NaiveLpm;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn check(pairs: &[(Prefix, u32)], keys: &[Address]) {
        let t = IntervalTable::from_prefixes(pairs.iter().copied());
        let mut naive = NaiveLpm::new();
        for &(q, v) in pairs {
            naive.insert(q, v);
        }
        let mut bulk = vec![Some(u32::MAX); keys.len()];
        t.lookup_bulk(keys, &mut bulk);
        let mut portable = vec![Some(u32::MAX); keys.len()];
        t.lookup_bulk_portable(keys, &mut portable);
        for (i, k) in keys.iter().enumerate() {
            let want = naive.lookup(k);
            assert_eq!(t.lookup(k), want, "single {k}");
            assert_eq!(t.lookup_portable(k), want, "portable single {k}");
            assert_eq!(bulk[i], want, "bulk {k}");
            assert_eq!(portable[i], want, "portable bulk {k}");
        }
    }

    #[test]
    fn empty_default_and_edges() {
        let ends = [
            Address::UNSPECIFIED,
            Address([0xff; 32]),
            Address([0x80; 32]),
        ];
        check(&[], &ends);
        check(&[(Prefix::DEFAULT, 7)], &ends);
        // A host route at the very top of the space: its interval ends the chunk
        // space, in every one of the four tables.
        check(
            &[(Prefix::host(Address([0xff; 32])), 1), (p("ff00::/8"), 2)],
            &ends,
        );
        check(&[(Prefix::host(Address::UNSPECIFIED), 3)], &ends);
    }

    #[test]
    fn singles_of_every_length_class() {
        // One prefix alone under each point (a single), with its marker bit at
        // each word edge, and a covering /32 so a miss has an answer.
        let lens = [65u16, 127, 128, 129, 191, 192, 193, 255, 256];
        let mut pairs = vec![(p("2001:db8::/32"), 1)];
        let mut keys = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let mut a = [0xa5u8; 32];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            a[4] = i as u8;
            let q = Prefix::truncating(Address(a), len);
            pairs.push((q, 10 + i as u32));
            keys.extend([q.addr(), q.last(), q.last().wrapping_next()]);
            // Just before the first address, when that stays under the point.
            let mut before = q.addr();
            if let Some(b) = before.0.iter_mut().rev().find(|b| **b != 0) {
                *b -= 1;
                keys.push(before);
            }
        }
        let t = IntervalTable::from_prefixes(pairs.iter().copied());
        assert_eq!(t.tables(), 1, "every long prefix is a single");
        check(&pairs, &keys);
    }

    #[test]
    fn next_hops_on_both_sides_of_the_direct_codes() {
        // Values up to 2^29 - 2 are their own codes; from 2^29 - 1 on they are
        // looked up, in the top table, a child table and a single alike.
        let edge = INDIRECT - 1;
        let values = [0, 1, edge - 1, edge, edge + 1, u32::MAX];
        let mut pairs = Vec::new();
        let mut keys = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            for len in [48u16, 96, 200] {
                let mut a = [0u8; 32];
                a[..3].copy_from_slice(&[0x20, 0x01, i as u8]);
                a[12] = len as u8;
                a[30] = 1;
                let q = Prefix::truncating(Address(a), len);
                pairs.push((q, v));
                keys.extend([q.addr(), q.last()]);
            }
        }
        check(&pairs, &keys);
        let t = IntervalTable::from_prefixes(pairs.iter().copied());
        assert_eq!(
            t.values.len(),
            3,
            "only the values from 2^29 - 1 on take a slot"
        );
    }

    #[test]
    fn leaves_pack_five_keys_and_six_outcomes() {
        let outs = [
            NONE,
            1,
            CHILD | 7,
            SINGLE | 9,
            SMALL | SHAPE | 11,
            u32::MAX >> 2,
        ];
        let keys = [10, 20, 30, 40, 50];
        let l = leaf(&keys, &outs);
        for (i, &o) in outs.iter().enumerate() {
            assert_eq!(outcome(&l, i), o);
        }
        for (x, i) in [(0, 0), (10, 0), (11, 1), (50, 4), (51, 5), (u64::MAX, 5)] {
            assert_eq!(Portable::below_leaf(&l, x), i, "x {x}");
        }
        // A short leaf: padding keys are never below, missing outcomes are NONE.
        let short = leaf(&[5], &[3, 4]);
        assert_eq!(Portable::below_leaf(&short, u64::MAX), 1);
        assert_eq!((outcome(&short, 1), outcome(&short, 2)), (4, NONE));
    }

    #[test]
    fn small_tables_at_every_chunk() {
        // A key that goes through a small table at chunk 1, then 2, then 3: under
        // a /64, /128s (one inner node and leaves); under one of them two /192s
        // (a lone leaf at chunk 2); under one of those two /256s (a lone leaf at
        // chunk 3). Beside it, keys that end at each chunk.
        let at = |words: [u64; 4]| {
            let mut a = [0u8; 32];
            for (i, w) in words.iter().enumerate() {
                a[8 * i..8 * i + 8].copy_from_slice(&w.to_be_bytes());
            }
            Address(a)
        };
        let top = 0x2001_0db8_0000_0001u64;
        let mut pairs = vec![
            (p("2001:db8::/32"), 1),
            (Prefix::truncating(at([top, 0, 0, 0]), 64), 2),
        ];
        for j in 0..8u64 {
            pairs.push((
                Prefix::truncating(at([top, 100 * j + 7, 0, 0]), 128),
                10 + j as u32,
            ));
        }
        pairs.push((Prefix::truncating(at([top, 307, 50, 0]), 192), 30));
        pairs.push((Prefix::truncating(at([top, 307, 90, 0]), 192), 31));
        pairs.push((Prefix::host(at([top, 307, 90, 5])), 40));
        pairs.push((Prefix::host(at([top, 307, 90, 9])), 41));
        let t = IntervalTable::from_prefixes(pairs.iter().copied());
        assert_eq!(
            t.tables(),
            4,
            "the top table and a small table at each chunk"
        );
        let mut keys = Vec::new();
        for &(q, _) in &pairs {
            keys.extend([q.addr(), q.last(), q.last().wrapping_next()]);
        }
        for w in [0, 4, 5, 6, 9, 10, u64::MAX] {
            keys.push(at([top, 307, 90, w]));
            keys.push(at([top, 307, w, w]));
        }
        // A trace names a line per step: the top table's descriptor, levels and
        // leaf, then the small tables' lines (two at chunk 1, one at 2 and at 3).
        let top_steps = 2 + t.tables[0].inner as usize;
        assert_eq!(t.trace(&p("2001:db8::/32").addr()).len(), top_steps);
        assert_eq!(t.trace(&at([top, 307, 90, 5])).len(), top_steps + 4);
        // Whole batches of them, so keys at every chunk step together.
        let many: Vec<Address> = keys
            .iter()
            .cycle()
            .take(3 * INTERVAL_BATCH)
            .copied()
            .collect();
        check(&pairs, &many);
    }

    #[test]
    fn child_tables_of_every_shape() {
        // Under one /64 point, 1 to 40 /128s with gaps between them: child tables
        // of 3 to 81 intervals, so a lone leaf (<= 6), one inner node and its
        // leaves (<= 54) and a table with a descriptor (more), each probed at
        // every cut and on both sides of it, through every kernel.
        for m in 1..=40u64 {
            let mut pairs = vec![(p("2001:db8::/32"), 1), (p("2001:db8:0:1::/64"), 2)];
            let mut keys = Vec::new();
            let at = |chunk: u64| {
                let mut a = [0u8; 32];
                a[..8].copy_from_slice(&0x2001_0db8_0000_0001u64.to_be_bytes());
                a[8..16].copy_from_slice(&chunk.to_be_bytes());
                Address(a)
            };
            for j in 0..m {
                let x = 1000 + 10 * j;
                let q = Prefix::truncating(at(x), 128);
                pairs.push((q, 100 + j as u32));
                keys.extend([at(x - 1), q.addr(), q.last(), q.last().wrapping_next()]);
            }
            check(&pairs, &keys);
        }
    }
}
