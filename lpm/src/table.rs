//! The table: one writer ([`Lpm`]) and any number of readers ([`Reader`]).

use crate::arena::{class_of, Alloc, Arena, CLASSES};
use crate::lookup;
use crate::node::*;
use crate::qsbr::Qsbr;
use chainroute_wire::{Address, Prefix};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

/// Why an operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Every reader slot is taken (see [`Config::max_readers`]).
    TooManyReaders(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::TooManyReaders(n) => write!(f, "all {n} reader slots are taken"),
        }
    }
}

impl std::error::Error for Error {}

/// Table settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Reader handles that may exist at once (each holds one cache line).
    pub max_readers: usize,
    /// Arena words to reserve up front (it grows by doubling when needed).
    pub initial_words: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config { max_readers: 64, initial_words: 1 << 18 }
    }
}

/// One change of a batch (see [`Lpm::apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Add the prefix, or change its next hop when present.
    Insert(Prefix, u32),
    /// Delete the prefix if present.
    Remove(Prefix),
    /// Change the next hop of a prefix that is present; nothing otherwise.
    Replace(Prefix, u32),
}

/// Memory the table uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Root table and default route (fixed: 512 KiB).
    pub root: usize,
    /// Node blocks in use (C8 nodes with their writer-only locals, SKIP nodes),
    /// size-class padding included.
    pub nodes: usize,
    /// Blocks freed and waiting for reuse (in free lists or a grace period).
    pub free: usize,
    /// Writer-side index of the prefixes of length 1..=16, and per-slot owners.
    pub writer: usize,
    /// The whole arena allocation (>= root + nodes + free: it grows by doubling).
    pub arena_capacity: usize,
}

impl MemoryStats {
    /// Everything the table needs: root, nodes, free blocks and writer index
    /// (not the arena's unused headroom).
    pub fn total(&self) -> usize {
        self.root + self.nodes + self.free + self.writer
    }
}

/// An arena pointer kept alive until it is safe to free.
struct Retired(*mut Arena);
// SAFETY: the pointer comes from Box::into_raw(Box<Arena>); Arena is Send + Sync and
// the pointer is only turned back into a Box once, when no reader can use it.
unsafe impl Send for Retired {}

impl Retired {
    /// # Safety
    /// No reader may still use the arena, and this is the only owner.
    unsafe fn free(self) {
        // SAFETY: per the caller; the pointer came from Box::into_raw.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

pub(crate) struct Shared {
    arena: AtomicPtr<Arena>,
    qsbr: Qsbr,
    /// Arenas retired by a writer that was dropped while readers lived.
    graveyard: Mutex<Vec<Retired>>,
}

impl Shared {
    /// The current arena.
    #[inline(always)]
    fn arena(&self) -> &Arena {
        // SAFETY: the pointer is never null (set in `Lpm::with_config`), came from
        // Box::into_raw, and is freed only (a) by the writer after a QSBR grace period
        // that follows its replacement, or (b) when `Shared` drops. Callers are the
        // writer (which frees only between its own calls) or online readers, which
        // report quiescence only between lookups; so the arena outlives every use of
        // this borrow, all of which end before the caller returns.
        unsafe { &*self.arena.load(Ordering::Acquire) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: `Shared` is going away, so no reader or writer remains.
        unsafe {
            Retired(*self.arena.get_mut()).free();
            for r in self.graveyard.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..) {
                r.free();
            }
        }
    }
}

/// A prefix or an existing subtree, as the builder sees them.
#[derive(Clone, Copy, Debug)]
struct Item {
    /// The address bits, zero from `len` on.
    addr: Words,
    /// Prefix length, or for a subtree the (byte-aligned) depth of its top node.
    len: u16,
    sub: bool,
    /// Prefix: `value(nh)`. Subtree: the child part of an outcome.
    payload: u64,
}

impl Item {
    fn prefix(addr: Words, len: u16, v: u64) -> Item {
        Item { addr: masked(&addr, len), len, sub: false, payload: v & VALUE_BITS }
    }

    fn sub(addr: Words, depth: u16, child: u64) -> Item {
        Item { addr: masked(&addr, depth), len: depth, sub: true, payload: child & CHILD_BITS }
    }

    fn order(&self) -> (Words, u16, bool) {
        (self.addr, self.len, self.sub)
    }
}

/// The writer: a longest-prefix-match table from 256-bit prefixes to next hops.
///
/// Lookups through `&self` or through [`Reader`]s on other threads never lock or
/// wait; changes take `&mut self`, so there is exactly one writer.
pub struct Lpm {
    shared: Arc<Shared>,
    alloc: Alloc,
    /// Prefixes of length 1..=16: `top16 << 8 | len` -> next hop.
    root_locals: HashMap<u32, u32>,
    /// Per root slot, the length of the longest root local covering it (0: none).
    root_owner: Box<[u8]>,
    default: Option<u32>,
    count: usize,
    /// Blocks unlinked by the operation in progress.
    pending: Vec<(u32, u8)>,
    pending_arenas: Vec<Retired>,
    /// Unlinked blocks waiting for their grace period.
    retired: VecDeque<(u64, Vec<(u32, u8)>)>,
    retired_arenas: VecDeque<(u64, Retired)>,
    ops_since_reclaim: u32,
}

impl Default for Lpm {
    fn default() -> Lpm {
        Lpm::new()
    }
}

impl fmt::Debug for Lpm {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Lpm").field("len", &self.count).field("memory", &self.memory()).finish()
    }
}

impl Lpm {
    pub fn new() -> Lpm {
        Lpm::with_config(Config::default())
    }

    pub fn with_config(cfg: Config) -> Lpm {
        let arena = Box::new(Arena::new(cfg.initial_words.max(FIRST_NODE_WORD + 1024)));
        let shared = Arc::new(Shared {
            arena: AtomicPtr::new(Box::into_raw(arena)),
            qsbr: Qsbr::new(cfg.max_readers),
            graveyard: Mutex::new(Vec::new()),
        });
        Lpm {
            shared,
            alloc: Alloc::new(FIRST_NODE_WORD),
            root_locals: HashMap::new(),
            root_owner: vec![0u8; ROOT_WORDS].into_boxed_slice(),
            default: None,
            count: 0,
            pending: Vec::new(),
            pending_arenas: Vec::new(),
            retired: VecDeque::new(),
            retired_arenas: VecDeque::new(),
            ops_since_reclaim: 0,
        }
    }

    /// Builds a table from `(prefix, next hop)` pairs in one pass (a later pair for
    /// the same prefix wins). Much faster than inserting one by one.
    pub fn from_prefixes<I: IntoIterator<Item = (Prefix, u32)>>(pairs: I) -> Lpm {
        Lpm::from_prefixes_with_config(pairs, Config::default())
    }

    pub fn from_prefixes_with_config<I: IntoIterator<Item = (Prefix, u32)>>(pairs: I, cfg: Config) -> Lpm {
        let mut t = Lpm::with_config(cfg);
        let mut deep: Vec<Item> = Vec::new();
        for (p, v) in pairs {
            match p.len() {
                0..=16 => {
                    if t.set_shallow(&p, v).is_none() {
                        t.count += 1;
                    }
                }
                _ => deep.push(Item::prefix(words(p.addr().as_bytes()), p.len(), value(v))),
            }
        }
        // Sort, keeping the last of equal prefixes.
        deep.reverse();
        deep.sort_by_key(|it| (it.addr, it.len));
        deep.dedup_by_key(|it| (it.addr, it.len));
        t.count += deep.len();
        let mut start = 0;
        while start < deep.len() {
            let top = deep[start].addr[0] >> 48;
            let mut end = start + 1;
            while end < deep.len() && deep[end].addr[0] >> 48 == top {
                end += 1;
            }
            let c = t.build(16, &mut deep[start..end]);
            let slot = top as usize;
            let o = t.a().get(slot);
            t.a().publish(slot, (o & VALUE_BITS) | c);
            start = end;
        }
        t.finish_op();
        t
    }

    /// A handle other threads use to make readers.
    pub fn handle(&self) -> Handle {
        Handle { shared: self.shared.clone() }
    }

    /// A reader for this thread or another (`Reader` is `Send`, not `Sync`).
    pub fn reader(&self) -> Result<Reader, Error> {
        self.handle().reader()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Longest-prefix match (the writer needs no QSBR registration).
    #[inline]
    pub fn lookup(&self, key: &Address) -> Option<u32> {
        lookup::lookup(self.a(), key)
    }

    /// Longest-prefix match of a batch; see [`Reader::lookup_bulk`].
    pub fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        lookup::lookup_bulk(self.a(), keys, out)
    }

    /// The portable (no target features) kernels, for cross-checking.
    #[doc(hidden)]
    pub fn lookup_portable(&self, key: &Address) -> Option<u32> {
        lookup::lookup_portable(self.a(), key)
    }

    #[doc(hidden)]
    pub fn lookup_bulk_portable(&self, keys: &[Address], out: &mut [Option<u32>]) {
        lookup::lookup_bulk_portable(self.a(), keys, out)
    }

    /// Adds `prefix` or changes its next hop; returns the previous next hop.
    pub fn insert(&mut self, prefix: Prefix, next_hop: u32) -> Option<u32> {
        let old = self.insert_inner(&prefix, next_hop);
        self.finish_op();
        old
    }

    /// Deletes `prefix`; returns its next hop if it was present.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<u32> {
        let old = self.remove_inner(prefix);
        self.finish_op();
        old
    }

    /// Changes the next hop of a present prefix; returns the previous one, or
    /// `None` (and changes nothing) when the prefix is absent.
    pub fn replace(&mut self, prefix: &Prefix, next_hop: u32) -> Option<u32> {
        let old = self.replace_inner(prefix, next_hop);
        self.finish_op();
        old
    }

    /// Applies a batch in order; one grace period covers all of it. Returns how
    /// many updates changed the table.
    pub fn apply(&mut self, batch: &[Update]) -> usize {
        let mut changed = 0;
        for u in batch {
            let did = match *u {
                Update::Insert(p, v) => self.insert_inner(&p, v) != Some(v),
                Update::Remove(p) => self.remove_inner(&p).is_some(),
                Update::Replace(p, v) => matches!(self.replace_inner(&p, v), Some(old) if old != v),
            };
            changed += did as usize;
        }
        self.finish_op();
        changed
    }

    /// The next hop of exactly `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<u32> {
        let len = prefix.len();
        let addr = words(prefix.addr().as_bytes());
        match len {
            0 => self.default,
            1..=16 => self.root_locals.get(&root_key(&addr, len)).copied(),
            _ => self.get_at((addr[0] >> 48) as usize, 16, &addr, len),
        }
    }

    /// Every prefix with its next hop, in no particular order.
    pub fn iter(&self) -> Vec<(Prefix, u32)> {
        let mut out = Vec::with_capacity(self.count);
        if let Some(v) = self.default {
            out.push((Prefix::DEFAULT, v));
        }
        for (&k, &v) in &self.root_locals {
            let mut a = [0u8; 32];
            a[..2].copy_from_slice(&((k >> 8) as u16).to_be_bytes());
            out.push((Prefix::new(Address(a), (k & 0xff) as u16).expect("root local"), v));
        }
        for slot in 0..ROOT_WORDS {
            let mut region = [0u64; 4];
            region[0] = (slot as u64) << 48;
            self.collect(self.a().get(slot), 16, region, &mut out);
        }
        out
    }

    /// Memory in use; see [`MemoryStats`].
    pub fn memory(&self) -> MemoryStats {
        let pending: usize = self.retired.iter().flat_map(|(_, v)| v).chain(&self.pending).map(|&(_, c)| CLASSES[c as usize]).sum();
        MemoryStats {
            root: FIRST_NODE_WORD * 8,
            nodes: (self.alloc.live - pending) * 8,
            free: (self.alloc.free_words() + pending) * 8,
            writer: self.root_owner.len() + self.root_locals.capacity() * 16,
            arena_capacity: self.a().len() * 8,
        }
    }

    /// Blocks until every reader has passed a quiescent state, then reuses all
    /// memory unlinked so far. Never needed for correctness.
    pub fn synchronize(&mut self) {
        let e = self.shared.qsbr.advance();
        self.shared.qsbr.synchronize(e);
        self.reclaim();
    }

    // ---------------------------------------------------------------------------
    // Arena access and allocation.

    #[inline(always)]
    fn a(&self) -> &Arena {
        self.shared.arena()
    }

    /// A block of at least `words` words, 64-byte aligned.
    fn alloc(&mut self, words: usize) -> usize {
        let c = class_of(words);
        if let Some(off) = self.alloc.take(c) {
            return off;
        }
        if self.alloc.bump + CLASSES[c] > self.a().len() {
            self.reclaim();
            if let Some(off) = self.alloc.take(c) {
                return off;
            }
            self.grow(self.alloc.bump + CLASSES[c]);
        }
        let off = self.alloc.bump(c);
        assert!((off as u64 >> 3) <= MAX_LINE, "lpm arena over 32 GiB");
        off
    }

    fn grow(&mut self, need: usize) {
        let old = self.shared.arena.load(Ordering::Relaxed);
        let new = Box::new(self.a().grown((self.a().len() * 2).max(need), self.alloc.bump));
        self.shared.arena.store(Box::into_raw(new), Ordering::Release);
        self.pending_arenas.push(Retired(old));
    }

    fn free(&mut self, off: usize, words: usize) {
        self.pending.push((off as u32, class_of(words) as u8));
    }

    fn c8_words(&self, node: usize) -> usize {
        let a = self.a();
        let n: u32 = (0..4).map(|i| a.get(node + i).count_ones()).sum();
        C8_OUT + n as usize + ((a.get(node + C8_CUM) >> 32) & 0xffff) as usize
    }

    fn free_node(&mut self, o: u64) {
        match kind(o) {
            KIND_C8 => {
                let node = child_word(o);
                let w = self.c8_words(node);
                self.free(node, w);
            }
            KIND_SKIP => self.free(child_word(o), SKIP_WORDS),
            _ => {}
        }
    }

    /// Ends an operation: memory it unlinked starts its grace period.
    fn finish_op(&mut self) {
        if !self.pending.is_empty() || !self.pending_arenas.is_empty() {
            let e = self.shared.qsbr.advance();
            if !self.pending.is_empty() {
                self.retired.push_back((e, std::mem::take(&mut self.pending)));
            }
            for r in self.pending_arenas.drain(..) {
                self.retired_arenas.push_back((e, r));
            }
        }
        self.ops_since_reclaim += 1;
        if self.ops_since_reclaim >= 32 || !self.retired_arenas.is_empty() {
            self.reclaim();
        }
    }

    /// Reuses memory whose grace period has passed.
    fn reclaim(&mut self) {
        self.ops_since_reclaim = 0;
        if self.retired.is_empty() && self.retired_arenas.is_empty() {
            return;
        }
        let done = self.shared.qsbr.completed();
        while self.retired.front().is_some_and(|(e, _)| *e <= done) {
            let (_, blocks) = self.retired.pop_front().unwrap();
            for (off, c) in blocks {
                self.alloc.give_back(off as usize, c as usize);
            }
        }
        while self.retired_arenas.front().is_some_and(|(e, _)| *e <= done) {
            let (_, r) = self.retired_arenas.pop_front().unwrap();
            // SAFETY: every reader has been quiescent since this arena was replaced,
            // so none holds a reference into it; we are its only owner.
            unsafe { r.free() };
        }
    }

    // ---------------------------------------------------------------------------
    // Node construction.

    /// A SKIP node: keys equal to `pattern` on `[0, end)` continue with `on_match`.
    fn new_skip(&mut self, pattern: &Words, start: u16, end: u16, on_match: u64) -> u64 {
        let off = self.alloc(SKIP_WORDS);
        let a = self.a();
        let p = masked(pattern, end);
        for (i, w) in p.iter().enumerate() {
            a.set(off + i, *w);
        }
        a.set(off + SKIP_META, end as u64 | (start as u64) << 16);
        a.set(off + SKIP_OUT, on_match);
        a.set(off + 6, 0);
        a.set(off + 7, 0);
        child(KIND_SKIP, off)
    }

    /// A C8 node from its locals (sorted here) and the child part of each slot.
    fn new_c8(&mut self, locals: &mut [u64], children: &[u64; 256]) -> u64 {
        locals.sort_unstable_by_key(|&l| (local_len(l), local_start(l)));
        let mut outs = [0u64; 256];
        for &l in locals.iter() {
            let s = local_start(l) as usize;
            let n = 256usize >> local_len(l);
            outs[s..s + n].fill(value(local_value(l)));
        }
        let mut bm = [0u64; 4];
        let mut runs = [0u64; 256];
        let mut n = 0;
        for c in 0..256 {
            let o = outs[c] | children[c];
            if c == 0 || o != runs[n - 1] {
                bm[c >> 6] |= 1 << (c & 63);
                runs[n] = o;
                n += 1;
            }
        }
        let c1 = bm[0].count_ones() as u64;
        let c2 = c1 + bm[1].count_ones() as u64;
        let c3 = c2 + bm[2].count_ones() as u64;
        let m = locals.len();
        let off = self.alloc(C8_OUT + n + m);
        let a = self.a();
        for (i, w) in bm.iter().enumerate() {
            a.set(off + i, *w);
        }
        a.set(off + C8_CUM, c1 << 8 | c2 << 16 | c3 << 24 | (m as u64) << 32);
        for (i, o) in runs[..n].iter().enumerate() {
            a.set(off + C8_OUT + i, *o);
        }
        for (i, l) in locals.iter().enumerate() {
            a.set(off + C8_OUT + n + i, *l);
        }
        child(KIND_C8, off)
    }

    /// The locals and per-slot child parts of a C8 node.
    fn read_c8(&self, node: usize) -> (Vec<u64>, [u64; 256]) {
        let a = self.a();
        let bm: [u64; 4] = core::array::from_fn(|i| a.get(node + i));
        let n: usize = bm.iter().map(|w| w.count_ones() as usize).sum();
        let m = ((a.get(node + C8_CUM) >> 32) & 0xffff) as usize;
        let locals = (0..m).map(|i| a.get(node + C8_OUT + n + i)).collect();
        let mut children = [0u64; 256];
        let mut run = 0usize;
        for (c, ch) in children.iter_mut().enumerate() {
            if c > 0 && bm[c >> 6] >> (c & 63) & 1 != 0 {
                run += 1;
            }
            *ch = a.get(node + C8_OUT + run) & CHILD_BITS;
        }
        (locals, children)
    }

    /// The word holding the outcome of slot `c` of a C8 node.
    fn c8_slot(&self, node: usize, c: u8) -> usize {
        let a = self.a();
        let c = c as usize;
        let mut rank = 0;
        for i in 0..c >> 6 {
            rank += a.get(node + i).count_ones() as usize;
        }
        rank += (a.get(node + (c >> 6)) & (u64::MAX >> (63 - (c & 63)))).count_ones() as usize;
        node + C8_OUT + rank - 1
    }

    /// Builds the structure for `items` (sorted by `Item::order`) below a slot at
    /// byte-aligned depth `d`; returns the child part of that slot's outcome.
    ///
    /// Every item has `len > d`, and no item lies inside a subtree item's region
    /// unless it is the prefix naming exactly that region.
    fn build(&mut self, d: u16, items: &mut [Item]) -> u64 {
        match items.len() {
            0 => return 0,
            1 => {
                let it = items[0];
                if !it.sub {
                    return self.new_skip(&it.addr, d, it.len, it.payload);
                }
                if it.len == d {
                    return it.payload;
                }
                if kind(it.payload) == KIND_SKIP {
                    // Skip into a skip: one longer skip instead.
                    let node = child_word(it.payload);
                    let a = self.a();
                    let pat: Words = core::array::from_fn(|i| a.get(node + i));
                    let end = (a.get(node + SKIP_META) & 0x1ff) as u16;
                    let om = a.get(node + SKIP_OUT);
                    self.free(node, SKIP_WORDS);
                    return self.new_skip(&pat, d, end, om);
                }
                return self.new_skip(&it.addr, d, it.len, it.payload);
            }
            _ => {}
        }
        let last = items.len() - 1;
        let mut l = lcp(&items[0].addr, &items[last].addr);
        for it in items.iter() {
            l = l.min(it.len);
        }
        let e = l & !7;
        if e > d {
            // Every item shares bits [d, e): one skip, then the rest below e.
            let (val, rest) = if !items[0].sub && items[0].len == e {
                (items[0].payload, &mut items[1..])
            } else {
                (0, &mut items[..])
            };
            let addr = rest[0].addr;
            let c = self.build(e, rest);
            return self.new_skip(&addr, d, e, val | c);
        }
        // A C8 node at d.
        let bi = (d / 8) as usize;
        let mut locals = Vec::new();
        let mut deeper: Vec<Item> = Vec::with_capacity(items.len());
        for it in items.iter() {
            if !it.sub && it.len <= d + 8 {
                let rel = (it.len - d) as u8;
                locals.push(local(byte(&it.addr, bi), rel, it.payload as u32));
            } else {
                deeper.push(*it);
            }
        }
        let mut children = [0u64; 256];
        let mut s = 0;
        while s < deeper.len() {
            let b = byte(&deeper[s].addr, bi);
            let mut t = s + 1;
            while t < deeper.len() && byte(&deeper[t].addr, bi) == b {
                t += 1;
            }
            children[b as usize] = self.build(d + 8, &mut deeper[s..t]);
            s = t;
        }
        self.new_c8(&mut locals, &children)
    }

    // ---------------------------------------------------------------------------
    // Updates.

    /// Prefixes of length 0..=16 live in the default word and the root slots.
    fn set_shallow(&mut self, p: &Prefix, v: u32) -> Option<u32> {
        let len = p.len();
        if len == 0 {
            self.a().publish(DEFAULT_WORD, value(v));
            return self.default.replace(v);
        }
        let addr = words(p.addr().as_bytes());
        let old = self.root_locals.insert(root_key(&addr, len), v);
        let start = (addr[0] >> 48) as usize;
        let a = self.shared.arena();
        for s in start..start + (1usize << (16 - len)) {
            if self.root_owner[s] as u16 <= len {
                self.root_owner[s] = len as u8;
                a.publish(s, (a.get(s) & CHILD_BITS) | value(v));
            }
        }
        old
    }

    fn unset_shallow(&mut self, p: &Prefix) -> Option<u32> {
        let len = p.len();
        if len == 0 {
            self.a().publish(DEFAULT_WORD, 0);
            return self.default.take();
        }
        let addr = words(p.addr().as_bytes());
        let old = self.root_locals.remove(&root_key(&addr, len))?;
        let cover = (1..len).rev().find_map(|l| self.root_locals.get(&root_key(&addr, l)).map(|&v| (l, v)));
        let start = (addr[0] >> 48) as usize;
        let a = self.shared.arena();
        for s in start..start + (1usize << (16 - len)) {
            if self.root_owner[s] as u16 == len {
                let (l, val) = cover.map_or((0, 0), |(l, v)| (l as u8, value(v)));
                self.root_owner[s] = l;
                a.publish(s, (a.get(s) & CHILD_BITS) | val);
            }
        }
        Some(old)
    }

    fn insert_inner(&mut self, p: &Prefix, v: u32) -> Option<u32> {
        let old = if p.len() <= 16 {
            self.set_shallow(p, v)
        } else {
            let it = Item::prefix(words(p.addr().as_bytes()), p.len(), value(v));
            self.insert_at((it.addr[0] >> 48) as usize, 16, it)
        };
        if old.is_none() {
            self.count += 1;
        }
        old
    }

    fn remove_inner(&mut self, p: &Prefix) -> Option<u32> {
        let old = if p.len() <= 16 {
            self.unset_shallow(p)
        } else {
            let addr = words(p.addr().as_bytes());
            self.remove_at((addr[0] >> 48) as usize, 16, &addr, p.len())
        };
        if old.is_some() {
            self.count -= 1;
        }
        old
    }

    fn replace_inner(&mut self, p: &Prefix, v: u32) -> Option<u32> {
        self.get(p)?;
        self.insert_inner(p, v)
    }

    /// Inserts prefix item `p` below the outcome word `slot`, at depth `d`.
    fn insert_at(&mut self, slot: usize, d: u16, p: Item) -> Option<u32> {
        let o = self.a().get(slot);
        match kind(o) {
            KIND_C8 => {
                let node = child_word(o);
                let bi = (d / 8) as usize;
                let b = byte(&p.addr, bi);
                if p.len <= d + 8 {
                    let (mut locals, children) = self.read_c8(node);
                    let rel = (p.len - d) as u8;
                    let mut old = None;
                    match locals.iter_mut().find(|l| local_start(**l) == b && local_len(**l) == rel) {
                        Some(l) => {
                            old = Some(local_value(*l));
                            *l = local(b, rel, p.payload as u32);
                        }
                        None => locals.push(local(b, rel, p.payload as u32)),
                    }
                    let c = self.new_c8(&mut locals, &children);
                    self.a().publish(slot, (o & VALUE_BITS) | c);
                    self.free_node(o);
                    return old;
                }
                let w = self.c8_slot(node, b);
                if kind(self.a().get(w)) != KIND_NONE {
                    return self.insert_at(w, d + 8, p);
                }
                let (mut locals, mut children) = self.read_c8(node);
                children[b as usize] = self.build(d + 8, &mut [p]);
                let c = self.new_c8(&mut locals, &children);
                self.a().publish(slot, (o & VALUE_BITS) | c);
                self.free_node(o);
                None
            }
            KIND_SKIP => {
                let node = child_word(o);
                let a = self.a();
                let pat: Words = core::array::from_fn(|i| a.get(node + i));
                let end = (a.get(node + SKIP_META) & 0x1ff) as u16;
                let om = a.get(node + SKIP_OUT);
                let m = lcp(&p.addr, &pat).min(p.len).min(end);
                if m == end {
                    if p.len == end {
                        let old = (om & HAS_VALUE != 0).then_some(om as u32);
                        a.publish(node + SKIP_OUT, (om & CHILD_BITS) | p.payload);
                        return old;
                    }
                    if kind(om) != KIND_NONE {
                        return self.insert_at(node + SKIP_OUT, end, p);
                    }
                }
                let mut items = vec![p];
                if om & HAS_VALUE != 0 {
                    items.push(Item::prefix(pat, end, om));
                }
                if kind(om) != KIND_NONE {
                    items.push(Item::sub(pat, end, om));
                }
                items.sort_by_key(Item::order);
                let c = self.build(d, &mut items);
                self.a().publish(slot, (o & VALUE_BITS) | c);
                self.free(node, SKIP_WORDS);
                None
            }
            _ => {
                let c = self.build(d, &mut [p]);
                self.a().publish(slot, (o & VALUE_BITS) | c);
                None
            }
        }
    }

    /// Removes prefix `addr/len` below the outcome word `slot`, at depth `d`.
    fn remove_at(&mut self, slot: usize, d: u16, addr: &Words, len: u16) -> Option<u32> {
        let o = self.a().get(slot);
        match kind(o) {
            KIND_C8 => {
                let node = child_word(o);
                let bi = (d / 8) as usize;
                let b = byte(addr, bi);
                if len <= d + 8 {
                    let (mut locals, children) = self.read_c8(node);
                    let rel = (len - d) as u8;
                    let i = locals.iter().position(|l| local_start(*l) == b && local_len(*l) == rel)?;
                    let old = local_value(locals.swap_remove(i));
                    self.rebuild_c8(slot, o, d, addr, locals, children);
                    return Some(old);
                }
                let w = self.c8_slot(node, b);
                if kind(self.a().get(w)) == KIND_NONE {
                    return None;
                }
                let old = self.remove_at(w, d + 8, addr, len)?;
                if kind(self.a().get(w)) == KIND_NONE {
                    let (locals, children) = self.read_c8(node);
                    self.rebuild_c8(slot, o, d, addr, locals, children);
                }
                Some(old)
            }
            KIND_SKIP => {
                let node = child_word(o);
                let a = self.a();
                let pat: Words = core::array::from_fn(|i| a.get(node + i));
                let end = (a.get(node + SKIP_META) & 0x1ff) as u16;
                let om = a.get(node + SKIP_OUT);
                if lcp(addr, &pat).min(len).min(end) < end {
                    return None;
                }
                if len == end {
                    if om & HAS_VALUE == 0 {
                        return None;
                    }
                    if kind(om) == KIND_NONE {
                        a.publish(slot, o & VALUE_BITS);
                        self.free(node, SKIP_WORDS);
                    } else if kind(om) == KIND_SKIP {
                        // Nothing ends at `end` any more: merge the two skips.
                        let c = self.build(d, &mut [Item::sub(pat, end, om)]);
                        self.a().publish(slot, (o & VALUE_BITS) | c);
                        self.free(node, SKIP_WORDS);
                    } else {
                        a.publish(node + SKIP_OUT, om & CHILD_BITS);
                    }
                    return Some(om as u32);
                }
                if kind(om) == KIND_NONE {
                    return None;
                }
                let old = self.remove_at(node + SKIP_OUT, end, addr, len)?;
                let om = self.a().get(node + SKIP_OUT);
                if om == 0 {
                    self.a().publish(slot, o & VALUE_BITS);
                    self.free(node, SKIP_WORDS);
                } else if om & HAS_VALUE == 0 && kind(om) == KIND_SKIP {
                    let c = self.build(d, &mut [Item::sub(pat, end, om)]);
                    self.a().publish(slot, (o & VALUE_BITS) | c);
                    self.free(node, SKIP_WORDS);
                }
                Some(old)
            }
            _ => None,
        }
    }

    /// Replaces the C8 node of outcome `o` (in word `slot`, depth `d`, region of
    /// `addr`) by one with these locals and children, or by something smaller when
    /// at most one of them is left.
    fn rebuild_c8(&mut self, slot: usize, o: u64, d: u16, addr: &Words, mut locals: Vec<u64>, children: [u64; 256]) {
        let nchildren = children.iter().filter(|c| **c != 0).count();
        let c = if locals.len() + nchildren <= 1 {
            let region = masked(addr, d);
            let bi = (d / 8) as usize;
            let at = |b: u8| {
                let mut w = region;
                w[bi / 8] |= (b as u64) << (56 - 8 * (bi % 8));
                w
            };
            let mut items = Vec::new();
            if let Some(&l) = locals.first() {
                items.push(Item::prefix(at(local_start(l)), d + local_len(l) as u16, value(local_value(l))));
            }
            if let Some(b) = children.iter().position(|c| *c != 0) {
                items.push(Item::sub(at(b as u8), d + 8, children[b]));
            }
            self.build(d, &mut items)
        } else {
            self.new_c8(&mut locals, &children)
        };
        self.a().publish(slot, (o & VALUE_BITS) | c);
        self.free_node(o);
    }

    fn get_at(&self, slot: usize, d: u16, addr: &Words, len: u16) -> Option<u32> {
        let a = self.a();
        let o = a.get(slot);
        match kind(o) {
            KIND_C8 => {
                let node = child_word(o);
                let b = byte(addr, (d / 8) as usize);
                if len <= d + 8 {
                    let rel = (len - d) as u8;
                    let (locals, _) = self.read_c8(node);
                    return locals.iter().find(|l| local_start(**l) == b && local_len(**l) == rel).map(|l| local_value(*l));
                }
                self.get_at(self.c8_slot(node, b), d + 8, addr, len)
            }
            KIND_SKIP => {
                let node = child_word(o);
                let pat: Words = core::array::from_fn(|i| a.get(node + i));
                let end = (a.get(node + SKIP_META) & 0x1ff) as u16;
                let om = a.get(node + SKIP_OUT);
                if lcp(addr, &pat).min(len).min(end) < end {
                    return None;
                }
                if len == end {
                    return (om & HAS_VALUE != 0).then_some(om as u32);
                }
                self.get_at(node + SKIP_OUT, end, addr, len)
            }
            _ => None,
        }
    }

    /// Collects the prefixes below outcome `o` (at depth `d`, region `region`).
    fn collect(&self, o: u64, d: u16, region: Words, out: &mut Vec<(Prefix, u32)>) {
        let a = self.a();
        match kind(o) {
            KIND_C8 => {
                let node = child_word(o);
                let bi = (d / 8) as usize;
                let at = |b: u8| {
                    let mut w = region;
                    w[bi / 8] |= (b as u64) << (56 - 8 * (bi % 8));
                    w
                };
                let (locals, children) = self.read_c8(node);
                for l in locals {
                    out.push((to_prefix(&at(local_start(l)), d + local_len(l) as u16), local_value(l)));
                }
                for (b, c) in children.iter().enumerate() {
                    if *c != 0 {
                        self.collect(*c, d + 8, at(b as u8), out);
                    }
                }
            }
            KIND_SKIP => {
                let node = child_word(o);
                let pat: Words = core::array::from_fn(|i| a.get(node + i));
                let end = (a.get(node + SKIP_META) & 0x1ff) as u16;
                let om = a.get(node + SKIP_OUT);
                if om & HAS_VALUE != 0 {
                    out.push((to_prefix(&pat, end), om as u32));
                }
                self.collect(om, end, pat, out);
            }
            _ => {}
        }
    }

    /// Checks the structural invariants (tests and debugging); returns a description
    /// of the first violation.
    #[doc(hidden)]
    pub fn check(&self) -> Result<(), String> {
        for slot in 0..ROOT_WORDS {
            self.check_at(self.a().get(slot), 16, &[(slot as u64) << 48, 0, 0, 0])?;
        }
        Ok(())
    }

    fn check_at(&self, o: u64, d: u16, region: &Words) -> Result<(), String> {
        let a = self.a();
        match kind(o) {
            KIND_NONE => Ok(()),
            KIND_C8 => {
                let node = child_word(o);
                if d % 8 != 0 || d >= 256 {
                    return Err(format!("C8 node at depth {d}"));
                }
                if a.get(node) & 1 == 0 {
                    return Err("C8 slot 0 starts no run".into());
                }
                let bm: [u64; 4] = core::array::from_fn(|i| a.get(node + i));
                let cum = a.get(node + C8_CUM);
                let mut c = 0;
                for w in 0..4 {
                    if (cum >> (8 * w)) & 0xff != c {
                        return Err("C8 cumulative counts".into());
                    }
                    c += bm[w].count_ones() as u64;
                }
                let (locals, children) = self.read_c8(node);
                for l in &locals {
                    let r = local_len(*l);
                    if !(1..=8).contains(&r) || local_start(*l) & (0xffu8.checked_shr(r as u32).unwrap_or(0)) != 0 {
                        return Err(format!("bad local {l:#x}"));
                    }
                }
                let bi = (d / 8) as usize;
                for (b, ch) in children.iter().enumerate() {
                    let mut w = *region;
                    w[bi / 8] |= (b as u64) << (56 - 8 * (bi % 8));
                    self.check_at(*ch, d + 8, &w)?;
                }
                Ok(())
            }
            KIND_SKIP => {
                let node = child_word(o);
                let pat: Words = core::array::from_fn(|i| a.get(node + i));
                let end = (a.get(node + SKIP_META) & 0x1ff) as u16;
                let om = a.get(node + SKIP_OUT);
                if end <= d || end > 256 || masked(&pat, d) != *region || masked(&pat, end) != pat {
                    return Err(format!("skip {d}->{end} does not fit its region"));
                }
                if kind(om) != KIND_NONE && end % 8 != 0 {
                    return Err(format!("skip to {end} continues into a node"));
                }
                if om == 0 {
                    return Err("skip leads nowhere".into());
                }
                self.check_at(om & CHILD_BITS, end, &pat)
            }
            k => Err(format!("unknown kind {k}")),
        }
    }
}

impl Drop for Lpm {
    fn drop(&mut self) {
        // Readers may still walk retired arenas: they go when the last reader does.
        let mut g = self.shared.graveyard.lock().unwrap_or_else(|e| e.into_inner());
        g.extend(self.pending_arenas.drain(..));
        g.extend(self.retired_arenas.drain(..).map(|(_, r)| r));
    }
}

fn root_key(addr: &Words, len: u16) -> u32 {
    let top = (addr[0] >> 48) as u32;
    let mask = !(0xffffu32 >> len) & 0xffff;
    (top & mask) << 8 | len as u32
}

fn to_prefix(w: &Words, len: u16) -> Prefix {
    Prefix::truncating(Address(bytes(w)), len)
}

/// Makes [`Reader`]s; cheap to clone and send to other threads.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Registers a reader (online from the start).
    pub fn reader(&self) -> Result<Reader, Error> {
        let slot = self.shared.qsbr.register().ok_or(Error::TooManyReaders(self.shared.qsbr.capacity()))?;
        Ok(Reader { shared: self.shared.clone(), slot, online: Cell::new(true) })
    }
}

/// A registered reader: looks up without locks or waits. Call [`Reader::quiescent`]
/// once per poll loop (between batches), or go [`Reader::offline`] when idle, so
/// that the writer can reuse memory.
pub struct Reader {
    shared: Arc<Shared>,
    slot: usize,
    /// Also makes `Reader` `!Sync`: one thread uses it at a time.
    online: Cell<bool>,
}

impl Reader {
    #[inline(always)]
    fn arena(&self) -> &Arena {
        if !self.online.get() {
            self.online();
        }
        self.shared.arena()
    }

    /// Longest-prefix match of one key.
    #[inline]
    pub fn lookup(&self, key: &Address) -> Option<u32> {
        lookup::lookup(self.arena(), key)
    }

    /// Longest-prefix match of a batch (best with 32-64 keys): `out[i]` gets the
    /// next hop of the longest prefix matching `keys[i]`. The walks of up to 64 keys
    /// are interleaved with prefetches so their cache misses overlap.
    pub fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        lookup::lookup_bulk(self.arena(), keys, out)
    }

    /// Reports that this reader holds no reference into the table right now.
    #[inline]
    pub fn quiescent(&self) {
        self.shared.qsbr.quiescent(self.slot);
    }

    /// Stops taking part in grace periods until the next lookup or [`Reader::online`].
    pub fn offline(&self) {
        self.online.set(false);
        self.shared.qsbr.offline(self.slot);
    }

    pub fn online(&self) {
        self.shared.qsbr.online(self.slot);
        self.online.set(true);
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shared.qsbr.unregister(self.slot);
    }
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Reader").field("slot", &self.slot).finish()
    }
}
