//! The table: one writer ([`Lpm`]) and any number of readers ([`Reader`]).

use crate::arena::{class_of, Alloc, Arena, CLASSES};
use crate::interval::IntervalTable;
use crate::lookup;
use crate::node::*;
use crate::qsbr::Qsbr;
use crate::snapshot::{Snapshot, MAX_MARKS};
use chainroute_wire::{Address, Prefix};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// Map the arena with transparent huge pages where the OS offers them.
    pub huge_pages: bool,
    /// A 16-bit region with more pieces than this becomes a DENSE node (256 KiB).
    pub dense_min_pieces: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_readers: 64,
            initial_words: 1 << 18,
            huge_pages: true,
            dense_min_pieces: DENSE_MIN_PIECES,
        }
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
    /// The table of next hops >= 2^30 (they do not fit in a slot).
    pub big_values: usize,
    /// Blocks freed and waiting for reuse (in free lists or a grace period).
    pub free: usize,
    /// Writer-side index of the prefixes of length 1..=16, and per-slot owners.
    pub writer: usize,
    /// The whole arena allocation (>= root + nodes + free: it grows by doubling).
    pub arena_capacity: usize,
    /// The arena is a mapping advised to use transparent huge pages (fewer TLB
    /// misses per lookup); the kernel decides whether it gets them.
    pub huge_page_mapped: bool,
    /// The published interval snapshot (0: none).
    pub snapshot: usize,
}

impl MemoryStats {
    /// Everything the table needs: root, nodes, free blocks and writer index
    /// (not the arena's unused headroom).
    pub fn total(&self) -> usize {
        self.root + self.nodes + self.big_values + self.free + self.writer + self.snapshot
    }
}

/// Memory readers may still use, kept until it is safe to free: a replaced arena
/// or a withdrawn snapshot.
enum Retired {
    Arena(*mut Arena),
    Snapshot(*mut Snapshot),
}
// SAFETY: the pointers come from Box::into_raw; Arena and Snapshot are Send +
// Sync, and a pointer is only turned back into a Box once, when no reader can use it.
unsafe impl Send for Retired {}

impl Retired {
    /// # Safety
    /// No reader may still use the memory, and this is the only owner.
    unsafe fn free(self) {
        // SAFETY: per the caller; the pointers came from Box::into_raw.
        unsafe {
            match self {
                Retired::Arena(p) => drop(Box::from_raw(p)),
                Retired::Snapshot(p) => drop(Box::from_raw(p)),
            }
        }
    }
}

pub(crate) struct Shared {
    arena: AtomicPtr<Arena>,
    /// The interval snapshot with the marks of the changes since, or null: see
    /// [`Lpm::publish_snapshot`].
    snapshot: AtomicPtr<Snapshot>,
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

    /// The published snapshot, if any.
    #[inline(always)]
    fn snapshot(&self) -> Option<&Snapshot> {
        // SAFETY: as for the arena: a non-null pointer came from Box::into_raw and
        // is freed only after a grace period that follows its withdrawal (or when
        // `Shared` drops), and every use of this borrow ends before the caller
        // reports a quiescent state.
        unsafe { self.snapshot.load(Ordering::Acquire).as_ref() }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: `Shared` is going away, so no reader or writer remains.
        unsafe {
            Retired::Arena(*self.arena.get_mut()).free();
            let snapshot = *self.snapshot.get_mut();
            if !snapshot.is_null() {
                Retired::Snapshot(snapshot).free();
            }
            for r in self
                .graveyard
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
            {
                r.free();
            }
        }
    }
}

/// A prefix of a node (writer-side list; readers never see it). `start` is the
/// prefix's chunk at the node's depth (its bits after `rel` are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed)]
pub(crate) struct Local {
    pub(crate) start: u64,
    pub(crate) rel: u8,
    /// Compact value (see `node`).
    pub(crate) value: u32,
}

impl Local {
    /// Last chunk the prefix covers (its low `w - rel` bits set).
    fn last(&self, w: u32) -> u64 {
        self.start
            | u64::MAX
                .checked_shr(64 - (w - self.rel as u32))
                .unwrap_or(0)
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
    /// Prefix: compact value. Subtree: its NODE outcome.
    payload: u32,
}

impl Item {
    fn prefix(addr: Words, len: u16, v: u32) -> Item {
        Item {
            addr: masked(&addr, len),
            len,
            sub: false,
            payload: v,
        }
    }

    fn sub(addr: Words, depth: u16, node: u32) -> Item {
        Item {
            addr: masked(&addr, depth),
            len: depth,
            sub: true,
            payload: node,
        }
    }

    fn order(&self) -> (Words, u16, bool) {
        (self.addr, self.len, self.sub)
    }
}

/// The locals of all RANGE nodes, in one vector carved into exact-size blocks,
/// reused by size (no allocation per node).
#[derive(Default)]
struct Slab {
    data: Vec<Local>,
    /// id -> (offset, len); id 0 means "no locals".
    index: Vec<(u32, u32)>,
    free_ids: Vec<u32>,
    /// Free blocks by length.
    free_blocks: Vec<Vec<u32>>,
}

impl Slab {
    fn new() -> Slab {
        Slab {
            index: vec![(0, 0)],
            ..Default::default()
        }
    }

    fn insert(&mut self, locals: &[Local]) -> u32 {
        if locals.is_empty() {
            return 0;
        }
        let len = locals.len();
        let off = match self.free_blocks.get_mut(len).and_then(Vec::pop) {
            Some(off) => off as usize,
            None => {
                let off = self.data.len();
                self.data.extend_from_slice(locals);
                off
            }
        };
        self.data[off..off + len].copy_from_slice(locals);
        let entry = (off as u32, len as u32);
        match self.free_ids.pop() {
            Some(id) => {
                self.index[id as usize] = entry;
                id
            }
            None => {
                let id = self.index.len() as u32;
                assert!(id <= MAX_LOCALS_ID, "lpm: more than 4M nodes with prefixes");
                self.index.push(entry);
                id
            }
        }
    }

    fn get(&self, id: u32) -> &[Local] {
        let (off, len) = self.index[id as usize];
        &self.data[off as usize..off as usize + len as usize]
    }

    fn remove(&mut self, id: u32) {
        if id != 0 {
            let (off, len) = self.index[id as usize];
            if self.free_blocks.len() <= len as usize {
                self.free_blocks.resize(len as usize + 1, Vec::new());
            }
            self.free_blocks[len as usize].push(off);
            self.index[id as usize] = (0, 0);
            self.free_ids.push(id);
        }
    }

    fn shrink(&mut self) {
        self.data.shrink_to_fit();
        self.index.shrink_to_fit();
    }

    fn bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<Local>()
            + self.index.capacity() * std::mem::size_of::<(u32, u32)>()
            + (self.free_ids.capacity() + self.free_blocks.iter().map(Vec::capacity).sum::<usize>())
                * 4
    }
}

/// Writer-side state of a DENSE node: its value and prefixes (readers see them
/// pushed into the slots).
struct Dense {
    /// Chunk width: 8 or 16.
    w: u32,
    inherited: u32,
    /// (start, rel) -> compact value, in start order (range queries find the
    /// prefixes inside a range).
    locals: BTreeMap<(u32, u8), u32>,
    children: u32,
}

/// Regions with more pieces than this in their 16-bit layout become DENSE nodes
/// (256 KiB each: worth it only where the table is crowded).
pub const DENSE_MIN_PIECES: usize = 2048;

/// One piece of a node's chunk space: a value (or NONE), or a child subtree
/// (items `group` of the deeper items) whose inherited value is `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) start: u64,
    pub(crate) value: u32,
    pub(crate) group: Option<usize>,
}

/// One change to a RANGE node, in the node's own chunk space (see
/// [`Lpm::range_edit`]).
#[derive(Clone, Copy, Debug)]
enum RangeEdit {
    /// Adds the prefix `start`/`rel`, or gives it a new value.
    SetLocal(Local),
    /// Drops the prefix `start`/`rel` (relative length).
    RemoveLocal { start: u64, rel: u8 },
    /// A prefix below the node's chunk, in a piece without a child: its new child.
    AddDeeper(Item),
    /// The child at chunk `x` is gone (nothing was left below it).
    RemoveChild { x: u64 },
}

/// Buffers for [`Lpm::range_edit`], kept between updates so that the common
/// update allocates nothing.
#[derive(Default)]
struct EditScratch {
    children: Vec<(u64, u32)>,
    locals: Vec<Local>,
    groups: Vec<(u64, std::ops::Range<usize>)>,
    pieces: Vec<Piece>,
    open: Vec<(u64, u32)>,
    outs: Vec<u32>,
}

/// A node layout under consideration: width, its locals, the deeper items grouped
/// by chunk, and the pieces.
#[derive(Default)]
struct Plan {
    w: u32,
    locals: Vec<Local>,
    deeper: Vec<Item>,
    groups: Vec<(u64, std::ops::Range<usize>)>,
    pieces: Vec<Piece>,
    /// Working space of the piece sweep.
    open: Vec<(u64, u32)>,
}

impl Plan {
    /// Lays out `items` (sorted) as a node of width `w` at depth `d`, in this
    /// plan's vectors (cleared first: the writer recycles plans, see
    /// [`Lpm::plan`], so a rebuild on the update path allocates nothing).
    fn lay_out(&mut self, d: u16, w: u32, items: &[Item]) {
        self.w = w;
        self.locals.clear();
        self.deeper.clear();
        for it in items {
            if !it.sub && it.len <= d + w as u16 {
                let rel = (it.len - d) as u8;
                self.locals.push(Local {
                    start: chunk(&it.addr, d as usize, w),
                    rel,
                    value: it.payload,
                });
            } else {
                self.deeper.push(*it);
            }
        }
        self.groups.clear();
        let deeper = &self.deeper;
        let mut s = 0;
        while s < deeper.len() {
            let x = chunk(&deeper[s].addr, d as usize, w);
            let mut t = s + 1;
            while t < deeper.len() && chunk(&deeper[t].addr, d as usize, w) == x {
                t += 1;
            }
            self.groups.push((x, s..t));
            s = t;
        }
        pieces_into(
            w,
            &mut self.locals,
            &self.groups,
            &mut self.pieces,
            &mut self.open,
        );
    }

    /// Small enough to keep for reuse (plans of the initial build can be huge).
    fn worth_keeping(&self) -> bool {
        self.deeper
            .capacity()
            .max(self.locals.capacity())
            .max(self.pieces.capacity())
            <= 1024
    }

    fn bounds(&self) -> usize {
        self.pieces.len() - 1
    }

    fn fits_range(&self) -> bool {
        range_fits(self.w, self.bounds())
    }

    fn one_line(&self) -> bool {
        range_one_line(self.w, self.bounds())
    }
}

/// Flattens nested locals and child points into pieces (sorted; the first starts
/// at 0), merging neighbours with equal values. Sorts `locals` by (start, rel).
///
/// One sweep over the chunk space, without sorting the cuts: prefixes nest (two
/// either nest or do not meet), so with locals in (start, rel) order the
/// innermost open one always ends first, and the next cut is the least of the
/// next local's start, the innermost open local's end, and the next child point
/// (or, at a child point, the chunk after it). This runs on every RANGE edit;
/// sorting the cuts made it a large part of an update's cost.
///
/// The pieces go to `out` (cleared first), with `open` as working space: both
/// keep their allocations for the next call.
///
/// All in u64 (a 64-bit chunk space has no room for an exclusive end): a cut is
/// carried as the chunk before it, `cut - 1`. Every cut lies past `b >= 0`, so
/// `cut - 1` never wraps, and u64::MAX is free to mean "no cut ahead".
pub(crate) fn pieces_into(
    w: u32,
    locals: &mut [Local],
    groups: &[(u64, std::ops::Range<usize>)],
    out: &mut Vec<Piece>,
    open: &mut Vec<(u64, u32)>,
) {
    locals.sort_unstable_by_key(|l| (l.start, l.rel));
    let last = u64::MAX >> (64 - w);
    out.clear();
    // The open locals as (last chunk, value), innermost last.
    open.clear();
    let (mut li, mut gi) = (0, 0);
    let mut b = 0u64;
    loop {
        while open.last().is_some_and(|&(end, _)| end < b) {
            open.pop();
        }
        while li < locals.len() && locals[li].start == b {
            open.push((locals[li].last(w), locals[li].value));
            li += 1;
        }
        let value = open.last().map_or(NONE, |&(_, v)| v);
        // The next cut, as the chunk before it.
        let mut before_next = u64::MAX;
        if gi < groups.len() && groups[gi].0 == b {
            // A child point is a piece of one chunk.
            out.push(Piece {
                start: b,
                value,
                group: Some(gi),
            });
            gi += 1;
            before_next = b;
        } else {
            if !out
                .last()
                .is_some_and(|q| q.group.is_none() && q.value == value)
            {
                out.push(Piece {
                    start: b,
                    value,
                    group: None,
                });
            }
            if li < locals.len() {
                before_next = before_next.min(locals[li].start - 1);
            }
            if let Some(&(end, _)) = open.last() {
                before_next = before_next.min(end);
            }
            if gi < groups.len() {
                before_next = before_next.min(groups[gi].0 - 1);
            }
        }
        if before_next >= last {
            return;
        }
        b = before_next + 1;
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
    /// DENSE nodes by word offset.
    dense: HashMap<usize, Dense>,
    dense_min_pieces: usize,
    /// Locals of RANGE nodes, by the id in their header (0: none).
    locals: Slab,
    /// Next hops of 2^30 and more: value -> index, and the table (also in the arena).
    big_ids: HashMap<u32, u32>,
    big: Vec<u32>,
    /// The arena block holding `big` (word offset, words).
    big_block: (usize, usize),
    /// Blocks unlinked by the operation in progress.
    pending: Vec<(u32, u8)>,
    pending_frees: Vec<Retired>,
    /// Marks the published snapshot has taken (see [`Lpm::mark_snapshot`]).
    snapshot_marks: usize,
    /// Unlinked blocks waiting for their grace period.
    retired: VecDeque<(u64, Vec<(u32, u8)>)>,
    retired_frees: VecDeque<(u64, Retired)>,
    ops_since_reclaim: u32,
    /// Emptied block lists, for `pending` to reuse.
    spare_lists: Vec<Vec<(u32, u8)>>,
    scratch: EditScratch,
    /// Plans the builder discarded or finished with, for the next to reuse.
    spare_plans: Vec<Plan>,
    /// The item vector of the last rebuild, for the next to reuse.
    spare_items: Vec<Item>,
}

impl Default for Lpm {
    fn default() -> Lpm {
        Lpm::new()
    }
}

impl fmt::Debug for Lpm {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Lpm")
            .field("len", &self.count)
            .field("memory", &self.memory())
            .finish()
    }
}

impl Lpm {
    pub fn new() -> Lpm {
        Lpm::with_config(Config::default())
    }

    pub fn with_config(cfg: Config) -> Lpm {
        let arena = Box::new(Arena::new(
            cfg.initial_words.max(FIRST_NODE_WORD + 1024),
            cfg.huge_pages,
        ));
        let shared = Arc::new(Shared {
            arena: AtomicPtr::new(Box::into_raw(arena)),
            snapshot: AtomicPtr::new(std::ptr::null_mut()),
            qsbr: Qsbr::new(cfg.max_readers),
            graveyard: Mutex::new(Vec::new()),
        });
        Lpm {
            shared,
            alloc: Alloc::new(FIRST_NODE_WORD),
            root_locals: HashMap::new(),
            root_owner: vec![0u8; ROOT_SLOTS].into_boxed_slice(),
            default: None,
            count: 0,
            dense: HashMap::new(),
            dense_min_pieces: cfg.dense_min_pieces,
            locals: Slab::new(),
            big_ids: HashMap::new(),
            big: Vec::new(),
            big_block: (0, 0),
            pending: Vec::new(),
            pending_frees: Vec::new(),
            snapshot_marks: 0,
            retired: VecDeque::new(),
            retired_frees: VecDeque::new(),
            spare_lists: Vec::new(),
            scratch: EditScratch::default(),
            spare_plans: Vec::new(),
            spare_items: Vec::new(),
            ops_since_reclaim: 0,
        }
    }

    /// Builds a table from `(prefix, next hop)` pairs in one pass (a later pair for
    /// the same prefix wins). Much faster than inserting one by one.
    pub fn from_prefixes<I: IntoIterator<Item = (Prefix, u32)>>(pairs: I) -> Lpm {
        Lpm::from_prefixes_with_config(pairs, Config::default())
    }

    pub fn from_prefixes_with_config<I: IntoIterator<Item = (Prefix, u32)>>(
        pairs: I,
        cfg: Config,
    ) -> Lpm {
        let mut t = Lpm::with_config(cfg);
        let mut deep: Vec<(Words, u16, u32)> = Vec::new();
        for (p, v) in pairs {
            match p.len() {
                0..=16 => {
                    if t.set_shallow(&p, v).is_none() {
                        t.count += 1;
                    }
                }
                _ => deep.push((words(p.addr().as_bytes()), p.len(), v)),
            }
        }
        // Sort, keeping the last of equal prefixes.
        deep.reverse();
        deep.sort_by_key(|it| (it.0, it.1));
        deep.dedup_by_key(|it| (it.0, it.1));
        t.count += deep.len();
        let mut items: Vec<Item> = Vec::with_capacity(deep.len());
        for (a, l, v) in deep {
            let v = t.enc(v);
            items.push(Item::prefix(a, l, v));
        }
        let mut start = 0;
        while start < items.len() {
            let top = items[start].addr[0] >> 48;
            let mut end = start + 1;
            while end < items.len() && items[end].addr[0] >> 48 == top {
                end += 1;
            }
            let slot = top as usize;
            let inh = t.get_out(slot);
            let c = t.build(16, &mut items[start..end], inh);
            t.set_out(slot, c);
            start = end;
        }
        t.locals.shrink();
        t.finish_op();
        t
    }

    /// A handle other threads use to make readers.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
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

    /// Longest-prefix match (the writer needs no QSBR registration). One key
    /// walks the trie even while a snapshot is published: the snapshot's gain is
    /// in overlapping many keys' searches, and alone a key is faster in the trie.
    #[inline]
    pub fn lookup(&self, key: &Address) -> Option<u32> {
        lookup::lookup(self.a(), key)
    }

    /// Longest-prefix match of a batch; see [`Reader::lookup_bulk`].
    pub fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        match self.shared.snapshot() {
            Some(s) => s.lookup_bulk(self.a(), keys, out),
            None => lookup::lookup_bulk(self.a(), keys, out),
        }
    }

    /// Builds the interval snapshot ([`IntervalTable`]) of the current contents and
    /// publishes it: from now on bulk lookups, here and in every [`Reader`], search
    /// the snapshot (two to three times faster on real tables). Changes made after
    /// it mark the regions they touch, whose keys the trie answers from then on;
    /// a change to a prefix shorter than /24, or more than 4096 marks, withdraws
    /// the snapshot and leaves lookups to the trie (see `snapshot.rs`). For tables
    /// that change in bursts: publish again when a burst has settled. Takes about
    /// 0.3 s for 640,000 prefixes; returns the snapshot's size in bytes.
    pub fn publish_snapshot(&mut self) -> usize {
        let snap = Box::new(Snapshot::new(IntervalTable::from_prefixes(self.iter())));
        let bytes = snap.memory_bytes();
        self.swap_snapshot(Box::into_raw(snap));
        self.snapshot_marks = 0;
        // Frees a snapshot this one replaced, after its grace period.
        self.finish_op();
        bytes
    }

    /// Whether a snapshot is published (since [`Lpm::publish_snapshot`], and not
    /// withdrawn by a change it could not take).
    pub fn has_snapshot(&self) -> bool {
        !self.shared.snapshot.load(Ordering::Relaxed).is_null()
    }

    /// How many marks the published snapshot has taken (0 with none published):
    /// regions whose keys the trie answers until the next publication.
    pub fn snapshot_marks(&self) -> usize {
        self.snapshot_marks
    }

    /// Before a change to `prefix`: marks the keys inside it as the trie's in the
    /// published snapshot, or withdraws the snapshot when the prefix is too short
    /// to mark or the snapshot has taken its share of marks.
    fn mark_snapshot(&mut self, prefix: &Prefix) {
        let marks = match self.shared.snapshot() {
            None => return,
            Some(s) => s.mark(prefix),
        };
        match marks {
            Some(n) if self.snapshot_marks + n <= MAX_MARKS => self.snapshot_marks += n,
            _ => self.withdraw(),
        }
    }

    /// Withdraws the snapshot: bulk lookups walk the trie until the next
    /// [`Lpm::publish_snapshot`].
    pub fn withdraw_snapshot(&mut self) {
        self.withdraw();
        self.finish_op();
    }

    /// Withdraws the snapshot: readers that load the pointer from now on walk the
    /// trie; those still in the snapshot finish on what it answered, and it is
    /// freed after a grace period. Before a change, the swap is ordered before the
    /// change's stores (AcqRel; the trie's own publication stores are Release), so
    /// no reader can see the snapshot after it has seen the change.
    fn withdraw(&mut self) {
        if self.has_snapshot() {
            self.swap_snapshot(std::ptr::null_mut());
        }
        self.snapshot_marks = 0;
    }

    /// Publishes `new` (or null) as the snapshot and retires the one it replaces.
    fn swap_snapshot(&mut self, new: *mut Snapshot) {
        let old = self.shared.snapshot.swap(new, Ordering::AcqRel);
        if !old.is_null() {
            self.pending_frees.push(Retired::Snapshot(old));
        }
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

    /// The scalar-per-key AVX2 bulk kernel (the default picks AVX-512 when present).
    #[doc(hidden)]
    pub fn lookup_bulk_avx2(&self, keys: &[Address], out: &mut [Option<u32>]) {
        lookup::lookup_bulk_avx2(self.a(), keys, out)
    }

    /// The cache lines a lookup of `key` reads, in order, with the key bit depth
    /// of each step in bits 48..64 (diagnostics).
    #[doc(hidden)]
    pub fn trace(&self, key: &Address) -> Vec<usize> {
        lookup::trace(self.a(), key)
    }

    /// Adds `prefix` or changes its next hop; returns the previous next hop.
    pub fn insert(&mut self, prefix: Prefix, next_hop: u32) -> Option<u32> {
        self.mark_snapshot(&prefix);
        let old = self.insert_inner(&prefix, next_hop);
        self.finish_op();
        old
    }

    /// Deletes `prefix`; returns its next hop if it was present.
    pub fn remove(&mut self, prefix: &Prefix) -> Option<u32> {
        self.mark_snapshot(prefix);
        let old = self.remove_inner(prefix);
        self.finish_op();
        old
    }

    /// Changes the next hop of a present prefix; returns the previous one, or
    /// `None` (and changes nothing) when the prefix is absent.
    pub fn replace(&mut self, prefix: &Prefix, next_hop: u32) -> Option<u32> {
        self.mark_snapshot(prefix);
        let old = self.replace_inner(prefix, next_hop);
        self.finish_op();
        old
    }

    /// Applies a batch in order; one grace period covers all of it. Returns how
    /// many updates changed the table.
    pub fn apply(&mut self, batch: &[Update]) -> usize {
        for u in batch {
            let (Update::Insert(p, _) | Update::Replace(p, _) | Update::Remove(p)) = u;
            self.mark_snapshot(p);
        }
        self.warm_paths(batch);
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

    /// Brings the lines a batch's updates will walk into the cache, with the bulk
    /// lookup over their prefixes' addresses: it overlaps the misses of many walks,
    /// which the updates would take one after another (each walk is a chain of
    /// dependent loads). Worth it from a handful of updates on.
    fn warm_paths(&self, batch: &[Update]) {
        if batch.len() < 8 {
            return;
        }
        let mut keys = [Address([0; 32]); lookup::BATCH];
        let mut out = [None; lookup::BATCH];
        for chunk in batch.chunks(lookup::BATCH) {
            for (k, u) in keys.iter_mut().zip(chunk) {
                *k = match u {
                    Update::Insert(p, _) | Update::Replace(p, _) | Update::Remove(p) => p.addr(),
                };
            }
            let n = chunk.len();
            lookup::lookup_bulk(self.a(), &keys[..n], &mut out[..n]);
        }
    }

    /// The next hop of exactly `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<u32> {
        let len = prefix.len();
        let addr = words(prefix.addr().as_bytes());
        match len {
            0 => self.default,
            1..=16 => self.root_locals.get(&root_key(&addr, len)).copied(),
            _ => self
                .get_at((addr[0] >> 48) as usize, 16, &addr, len)
                .map(|v| self.dec(v)),
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
            out.push((
                Prefix::new(Address(a), (k & 0xff) as u16).expect("root local"),
                v,
            ));
        }
        for slot in 0..ROOT_SLOTS {
            let o = self.get_out(slot);
            if is_node(o) {
                let region = [(slot as u64) << 48, 0, 0, 0];
                for it in self.subtree_prefixes(o, 16, &region) {
                    out.push((to_prefix(&it.addr, it.len), self.dec(it.payload)));
                }
            }
        }
        out
    }

    /// Memory in use; see [`MemoryStats`].
    pub fn memory(&self) -> MemoryStats {
        let pending: usize = self
            .retired
            .iter()
            .flat_map(|(_, v)| v)
            .chain(&self.pending)
            .map(|&(_, c)| CLASSES[c as usize])
            .sum();
        let locals = self.locals.bytes();
        MemoryStats {
            root: FIRST_NODE_WORD * 8,
            nodes: (self.alloc.live - pending - self.big_block.1) * 8,
            big_values: self.big_block.1 * 8,
            free: (self.alloc.free_words() + pending) * 8,
            writer: self.root_owner.len()
                + self.root_locals.capacity() * 16
                + locals
                + self.big_ids.capacity() * 12
                + self.big.capacity() * 4
                // A BTreeMap entry costs about 24 bytes with its node overhead.
                + self.dense.values().map(|d| d.locals.len() * 24 + 48).sum::<usize>(),
            arena_capacity: self.a().len() * 8,
            huge_page_mapped: self.a().is_mapped(),
            snapshot: self.shared.snapshot().map_or(0, Snapshot::memory_bytes),
        }
    }

    /// Writer-side memory by part (diagnostics): (locals, locals slots, dense owner
    /// arrays, dense locals, root owner and locals).
    #[doc(hidden)]
    pub fn writer_memory(&self) -> [usize; 5] {
        [
            self.locals.data.capacity() * std::mem::size_of::<Local>(),
            self.locals.index.capacity() * 8,
            0,
            self.dense.values().map(|d| d.locals.len() * 24).sum(),
            self.root_owner.len() + self.root_locals.capacity() * 16,
        ]
    }

    /// Blocks until every reader has passed a quiescent state, then reuses all
    /// memory unlinked so far. Never needed for correctness.
    pub fn synchronize(&mut self) {
        let e = self.shared.qsbr.advance();
        self.shared.qsbr.synchronize(e);
        self.reclaim();
    }

    // ---------------------------------------------------------------------------
    // Arena access, allocation and reclamation.

    #[inline(always)]
    fn a(&self) -> &Arena {
        self.shared.arena()
    }

    /// The outcome in `slot` (word * 2 + half).
    fn get_out(&self, slot: usize) -> u32 {
        (self.a().get(slot >> 1) >> ((slot & 1) * 32)) as u32
    }

    /// Publishes outcome `o` in `slot`: one atomic store of the word holding it.
    fn set_out(&self, slot: usize, o: u32) {
        let a = self.a();
        let w = a.get(slot >> 1);
        let sh = (slot & 1) * 32;
        a.publish(slot >> 1, (w & !(0xffff_ffffu64 << sh)) | (o as u64) << sh);
    }

    /// Gives the node `o` names the inherited value `v`; returns the outcome that
    /// now stands for it. A DENSE node changes in place (every slot no prefix of its
    /// own covers); a RANGE or SKIP node is never written once published, so it is
    /// copied with the new header (the caller publishes the copy).
    fn with_inherited(&mut self, o: u32, v: u32) -> u32 {
        let node = node_word(o);
        if is_dense(o) {
            let Some(dn) = self.dense.get_mut(&node) else {
                return o;
            };
            if dn.inherited != v {
                dn.inherited = v;
                self.dense_repaint(node, 0, 0);
            }
            return o;
        }
        let h = self.a().get(node);
        if inherited(h) == v {
            return o;
        }
        let (c, off) = self.copy_node(o);
        self.a().set(off, (h & !0xffff_ffff) | v as u64);
        c
    }

    /// The node `o` with its outcome `rel` (word * 2 + half, from the node's start)
    /// replaced by `x`: a copy for RANGE and SKIP nodes, in place for DENSE ones.
    fn with_slot(&mut self, o: u32, rel: usize, x: u32) -> u32 {
        if is_dense(o) {
            self.set_out(node_word(o) * 2 + rel, x);
            return o;
        }
        if self.get_out(node_word(o) * 2 + rel) == x {
            return o;
        }
        let (c, off) = self.copy_node(o);
        let a = self.a();
        let w = a.get(off + rel / 2);
        let sh = (rel & 1) * 32;
        a.set(
            off + rel / 2,
            (w & !(0xffff_ffffu64 << sh)) | (x as u64) << sh,
        );
        c
    }

    /// The on-match outcome of a SKIP or SKIP4 node, as a slot from its start.
    fn skip_out_rel(o: u32) -> usize {
        if kind(o) == K_SKIP4 {
            SKIP4_OUT_REL
        } else {
            SKIP_OUT_REL
        }
    }

    /// A SKIP or SKIP4 node's pattern (completed from `region`, an address inside
    /// the node's region, for the words a SKIP4 does not store), end and outcome.
    fn skip_parts(&self, o: u32, region: &Words) -> (Words, u16, u32) {
        let a = self.a();
        let node = node_word(o);
        let h = a.get(node);
        let end = skip_end(h) as u16;
        if kind(o) == K_SKIP4 {
            let j = skip4_word(h);
            let mut pat = masked(region, skip_start(h));
            pat[j] = a.get(node + 2);
            if j < 3 {
                pat[j + 1] = a.get(node + 3);
            }
            (masked(&pat, end), end, a.get(node + 1) as u32)
        } else {
            let pat: Words = core::array::from_fn(|i| a.get(node + 1 + i));
            (pat, end, a.get(node + 5) as u32)
        }
    }

    /// Copies the RANGE or SKIP node `o` (its locals move with it) and retires the
    /// original; returns the copy's outcome and word offset, not yet published.
    fn copy_node(&mut self, o: u32) -> (u32, usize) {
        let words = self.node_words(o);
        let off = self.alloc(words);
        let from = node_word(o);
        let a = self.a();
        for i in 0..words {
            a.set(off + i, a.get(from + i));
        }
        self.free(from, words);
        (node_ref(kind(o), off), off)
    }

    /// The inherited value of the node `o` names.
    fn node_inherited(&self, o: u32) -> u32 {
        if is_dense(o) {
            self.dense.get(&node_word(o)).map_or(NONE, |d| d.inherited)
        } else {
            inherited(self.a().get(node_word(o)))
        }
    }

    /// Sets the value a slot of the root or of a DENSE node stands for: in its
    /// child's header when it has one.
    fn set_slot_value(&mut self, slot: usize, v: u32) {
        let o = self.get_out(slot);
        if is_node(o) {
            let c = self.with_inherited(o, v);
            if c != o {
                self.set_out(slot, c);
            }
        } else if o != v {
            self.set_out(slot, v);
        }
    }

    /// A block of at least `words` words, 64-byte aligned.
    fn alloc(&mut self, words: usize) -> usize {
        let c = class_of(words);
        if let Some(off) = self.alloc.take(c) {
            return off;
        }
        if c == 0 {
            // Half lines come in pairs: take a line, keep the second half free.
            let off = self.alloc(CLASSES[1]);
            self.alloc.give_back(off + CLASSES[0], 0);
            self.alloc.live -= CLASSES[1] - 2 * CLASSES[0];
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
        assert!(((off >> 3) as u32) <= LINE_MASK, "lpm arena over 8 GiB");
        off
    }

    fn grow(&mut self, need: usize) {
        let old = self.shared.arena.load(Ordering::Relaxed);
        let new = Box::new(
            self.a()
                .grown((self.a().len() * 2).max(need), self.alloc.bump),
        );
        self.shared
            .arena
            .store(Box::into_raw(new), Ordering::Release);
        self.pending_frees.push(Retired::Arena(old));
    }

    fn free(&mut self, off: usize, words: usize) {
        self.pending.push((off as u32, class_of(words) as u8));
    }

    /// Words of the node `o` names.
    fn node_words(&self, o: u32) -> usize {
        if is_dense(o) {
            return (1usize << dense_width(o)) / 2;
        }
        if kind(o) == K_SKIP4 {
            return SKIP4_WORDS;
        }
        let h = self.a().get(node_word(o));
        match ty(h) {
            TY_RANGE => {
                let (w, nb) = range_params(h);
                // Every node but SKIP4 starts a line of its own.
                range_words(w, nb).max(8)
            }
            _ => SKIP_WORDS,
        }
    }

    /// Unlinks the node `o` names (not its children): its block waits for a grace
    /// period, its locals go at once (readers never see them).
    fn free_node(&mut self, o: u32) {
        let words = self.node_words(o);
        if is_dense(o) {
            self.dense.remove(&node_word(o));
            self.free(node_word(o), words);
            return;
        }
        let h = self.a().get(node_word(o));
        if ty(h) != TY_SKIP {
            self.free_locals_id(locals_id(h));
        }
        self.free(node_word(o), words);
    }

    fn new_locals_id(&mut self, locals: &[Local]) -> u32 {
        self.locals.insert(locals)
    }

    fn free_locals_id(&mut self, id: u32) {
        self.locals.remove(id);
    }

    /// Ends an operation: memory it unlinked starts its grace period.
    fn finish_op(&mut self) {
        if !self.pending.is_empty() || !self.pending_frees.is_empty() {
            let e = self.shared.qsbr.advance();
            if !self.pending.is_empty() {
                let next = self.spare_lists.pop().unwrap_or_default();
                let blocks = std::mem::replace(&mut self.pending, next);
                self.retired.push_back((e, blocks));
            }
            for r in self.pending_frees.drain(..) {
                self.retired_frees.push_back((e, r));
            }
        }
        self.ops_since_reclaim += 1;
        if self.ops_since_reclaim >= 32 || !self.retired_frees.is_empty() {
            self.reclaim();
        }
    }

    /// Reuses memory whose grace period has passed.
    fn reclaim(&mut self) {
        self.ops_since_reclaim = 0;
        if self.retired.is_empty() && self.retired_frees.is_empty() {
            return;
        }
        let done = self.shared.qsbr.completed();
        while self.retired.front().is_some_and(|(e, _)| *e <= done) {
            let (_, mut blocks) = self.retired.pop_front().unwrap();
            for (off, c) in blocks.drain(..) {
                self.alloc.give_back(off as usize, c as usize);
            }
            // Kept for later operations' lists: saves an allocation per update.
            if self.spare_lists.len() < 64 {
                self.spare_lists.push(blocks);
            }
        }
        while self.retired_frees.front().is_some_and(|(e, _)| *e <= done) {
            let (_, r) = self.retired_frees.pop_front().unwrap();
            // SAFETY: every reader has been quiescent since this arena was replaced,
            // so none holds a reference into it; we are its only owner.
            unsafe { r.free() };
        }
    }

    // ---------------------------------------------------------------------------
    // Values.

    /// The compact value of next hop `nh`.
    fn enc(&mut self, nh: u32) -> u32 {
        if nh < SMALL_LIMIT {
            return TAG_VALUE | nh;
        }
        if let Some(&i) = self.big_ids.get(&nh) {
            return TAG_BIG | i;
        }
        let i = self.big.len();
        assert!(
            i < PAYLOAD as usize,
            "lpm: too many distinct next hops >= 2^30"
        );
        self.big.push(nh);
        // The table in the arena: grow it by copying, publish, then use.
        if i / 2 >= self.big_block.1 {
            let words = (self.big_block.1 * 2).max(8);
            let off = self.alloc(words);
            let a = self.a();
            for (j, pair) in self.big.chunks(2).enumerate() {
                a.set(
                    off + j,
                    pair[0] as u64 | (*pair.get(1).unwrap_or(&0) as u64) << 32,
                );
            }
            a.publish(BIG_WORD, off as u64 | (self.big.len() as u64) << 32);
            let old = self.big_block;
            self.big_block = (off, words);
            if old.1 > 0 {
                self.free(old.0, old.1);
            }
        } else {
            let a = self.a();
            let (off, _) = self.big_block;
            let w = a.get(off + i / 2);
            let sh = (i & 1) * 32;
            a.set(
                off + i / 2,
                (w & !(0xffff_ffffu64 << sh)) | (nh as u64) << sh,
            );
            a.publish(BIG_WORD, off as u64 | (self.big.len() as u64) << 32);
        }
        self.big_ids.insert(nh, i as u32);
        TAG_BIG | i as u32
    }

    /// The next hop of a compact value.
    fn dec(&self, v: u32) -> u32 {
        if v >> 30 == 3 {
            self.big[(v & PAYLOAD) as usize]
        } else {
            v & PAYLOAD
        }
    }

    // ---------------------------------------------------------------------------
    // Node construction.

    /// A SKIP node: keys equal to `pattern` on `[0, end)` continue with `on_match`.
    fn new_skip(
        &mut self,
        pattern: &Words,
        start: u16,
        end: u16,
        on_match: u32,
        inherited: u32,
    ) -> u32 {
        let p = masked(pattern, end);
        let j = (start / 64) as usize;
        if (end as usize) <= 64 * (j + 2) && j < 4 {
            // The bits to check lie in words j and j + 1: half a line.
            let off = self.alloc(SKIP4_WORDS);
            let a = self.a();
            a.set(off, header_skip4(inherited, start, end, j));
            a.set(off + 1, on_match as u64);
            a.set(off + 2, p[j]);
            a.set(off + 3, if j < 3 { p[j + 1] } else { 0 });
            return node_ref(K_SKIP4, off);
        }
        let off = self.alloc(SKIP_WORDS);
        let a = self.a();
        a.set(off, header_skip(inherited, start, end));
        for (i, w) in p.iter().enumerate() {
            a.set(off + 1 + i, *w);
        }
        a.set(off + 5, on_match as u64);
        node_ref(K_SKIP, off)
    }

    /// Builds the structure for `items` (sorted by `Item::order`) below a slot at
    /// byte-aligned depth `d` whose own value is `inherited`; returns the slot's new
    /// outcome (a NODE, or NONE when there are no items).
    ///
    /// Every item has `len > d`; no item lies inside a subtree item's region unless
    /// it is the prefix naming exactly that region.
    fn build(&mut self, d: u16, items: &mut [Item], inherited: u32) -> u32 {
        self.build_hint(d, items, inherited, 0)
    }

    /// [`Lpm::build`], trying a RANGE node of width `hint` first (the width of the
    /// node being replaced, which usually still fits: saves laying out the others).
    fn build_hint(&mut self, d: u16, items: &mut [Item], inherited: u32, hint: u32) -> u32 {
        match items.len() {
            0 => return NONE,
            1 => {
                let it = items[0];
                if !it.sub {
                    return self.new_skip(&it.addr, d, it.len, it.payload, inherited);
                }
                if it.len == d {
                    return self.with_inherited(it.payload, inherited);
                }
                if is_skip(it.payload) {
                    // Skip into a skip: one longer skip instead.
                    let (pat, end, om) = self.skip_parts(it.payload, &it.addr);
                    self.free_node(it.payload);
                    return self.new_skip(&pat, d, end, om, inherited);
                }
                let sub = self.with_inherited(it.payload, NONE);
                return self.new_skip(&it.addr, d, it.len, sub, inherited);
            }
            _ => {}
        }
        let last = items.len() - 1;
        let mut l = lcp(&items[0].addr, &items[last].addr);
        let mut min_sub = 256u16;
        for it in items.iter() {
            l = l.min(it.len);
            if it.sub {
                min_sub = min_sub.min(it.len);
            }
        }
        let e = l & !7;
        // A region has at most 2 pieces per item, plus one.
        if d <= 240
            && min_sub >= d + 16
            && e < d + 16
            && 2 * items.len() + 1 > self.dense_min_pieces
        {
            let plan = self.plan(d, 16, items);
            if plan.pieces.len() > self.dense_min_pieces {
                return self.new_dense(d, plan, inherited);
            }
            self.recycle(plan);
        }
        // Candidate RANGE layouts, widest first (the hinted one before them).
        let mut best: Option<Plan> = None;
        let mut fallback: Option<Plan> = None;
        for (k, w) in [hint, 64u32, 32, 16, 8].into_iter().enumerate() {
            if w == 0 || (k > 0 && w == hint) {
                continue;
            }
            // A node whose items all share its whole chunk is a skip in disguise.
            if d as u32 + w > 256 || (min_sub as u32) < d as u32 + w || e as u32 >= d as u32 + w {
                continue;
            }
            let plan = self.plan(d, w, items);
            if plan.one_line() {
                best = Some(plan);
                break;
            }
            if fallback.is_none() && plan.fits_range() {
                fallback = Some(plan);
            } else {
                self.recycle(plan);
            }
        }
        if best.is_none() && e > d {
            if let Some(f) = fallback.take() {
                self.recycle(f);
            }
            // Every item shares bits [d, e): one skip, then the rest below e.
            let (val, rest) = if !items[0].sub && items[0].len == e {
                (items[0].payload, &mut items[1..])
            } else {
                (NONE, &mut items[..])
            };
            let addr = rest[0].addr;
            let c = self.build(e, rest, val);
            return self.new_skip(&addr, d, e, c, inherited);
        }
        let plan = match best {
            Some(b) => {
                if let Some(f) = fallback {
                    self.recycle(f);
                }
                Some(b)
            }
            None => fallback,
        };
        match plan {
            Some(plan) => self.new_range(d, plan, inherited),
            None => {
                let plan = self.plan(d, 8, items);
                self.new_dense(d, plan, inherited)
            }
        }
    }

    /// Builds the children of a plan; returns the outcome of each piece. A child
    /// whose piece has no value of its own inherits `fallback` (a DENSE node's
    /// value, which has no header to carry it; NONE under a RANGE node).
    fn build_pieces(&mut self, d: u16, plan: &mut Plan, fallback: u32) -> Vec<u32> {
        let mut outs = Vec::with_capacity(plan.pieces.len());
        for i in 0..plan.pieces.len() {
            let p = plan.pieces[i];
            outs.push(match p.group {
                Some(g) => {
                    let r = plan.groups[g].1.clone();
                    let inh = if p.value == NONE { fallback } else { p.value };
                    self.build(d + plan.w as u16, &mut plan.deeper[r], inh)
                }
                None => p.value,
            });
        }
        outs
    }

    fn new_range(&mut self, d: u16, mut plan: Plan, inherited: u32) -> u32 {
        let outs = self.build_pieces(d, &mut plan, NONE);
        let c = self.emit_range(plan.w, &plan.pieces, &outs, &plan.locals, inherited);
        self.recycle(plan);
        c
    }

    /// A plan of `items` at width `w`, in a recycled plan's vectors when there is one.
    fn plan(&mut self, d: u16, w: u32, items: &[Item]) -> Plan {
        let mut plan = self.spare_plans.pop().unwrap_or_default();
        plan.lay_out(d, w, items);
        plan
    }

    fn recycle(&mut self, plan: Plan) {
        if self.spare_plans.len() < 16 && plan.worth_keeping() {
            self.spare_plans.push(plan);
        }
    }

    /// Writes a RANGE node of width `w` (pieces, their outcomes, its locals) into
    /// a fresh block; returns its outcome, not yet published.
    fn emit_range(
        &mut self,
        w: u32,
        pieces: &[Piece],
        outs: &[u32],
        locals: &[Local],
        inherited: u32,
    ) -> u32 {
        let nb = pieces.len() - 1;
        let bw = bound_words(w, nb);
        let lanes = (64 / w) as usize;
        let words = range_words(w, nb);
        let id = self.new_locals_id(locals);
        // Every node but SKIP4 starts a line of its own.
        let off = self.alloc(words.max(8));
        let a = self.a();
        a.set(off, header_range(inherited, w, nb, id));
        for j in 0..bw {
            let mut word = 0u64;
            for i in j * lanes..((j + 1) * lanes).min(nb) {
                word |= pieces[i + 1].start << (w as usize * (i % lanes));
            }
            a.set(off + 1 + j, word);
        }
        for (j, pair) in outs.chunks(2).enumerate() {
            a.set(
                off + 1 + bw + j,
                pair[0] as u64 | (*pair.get(1).unwrap_or(&0) as u64) << 32,
            );
        }
        node_ref(K_R8 + w.trailing_zeros() - 3, off)
    }

    /// A DENSE node of the plan's width (8 or 16).
    fn new_dense(&mut self, d: u16, mut plan: Plan, inherited: u32) -> u32 {
        let w = plan.w;
        let slots = 1usize << w;
        let outs = self.build_pieces(d, &mut plan, inherited);
        let off = self.alloc(slots / 2);
        let locals: BTreeMap<(u32, u8), u32> = plan
            .locals
            .iter()
            .map(|l| ((l.start as u32, l.rel), l.value))
            .collect();
        let mut children = 0;
        let a = self.a();
        let mut slot_out = vec![0u32; slots];
        for (i, p) in plan.pieces.iter().enumerate() {
            let end = plan.pieces.get(i + 1).map_or(slots, |q| q.start as usize);
            let o = if outs[i] == NONE { inherited } else { outs[i] };
            children += is_node(o) as u32;
            slot_out[p.start as usize..end].fill(o);
        }
        for j in 0..slots / 2 {
            a.set(
                off + j,
                slot_out[2 * j] as u64 | (slot_out[2 * j + 1] as u64) << 32,
            );
        }
        self.dense.insert(
            off,
            Dense {
                w,
                inherited,
                locals,
                children,
            },
        );
        node_ref(if w == 8 { K_DENSE8 } else { K_DENSE16 }, off)
    }

    /// The values of slots `[start, start + 2^(w - rel))` of a DENSE node: the
    /// longest of its prefixes covering each, else its inherited value.
    fn dense_values(&self, node: usize, start: usize, rel: u8) -> Vec<u32> {
        let dn = &self.dense[&node];
        let w = dn.w;
        let n = 1usize << (w - rel as u32);
        let mut base = dn.inherited;
        for r in (1..=rel).rev() {
            let st = (start as u32) & !((1u32 << (w - r as u32)) - 1);
            if let Some(&v) = dn.locals.get(&(st, r)) {
                base = v;
                break;
            }
        }
        let mut vals = vec![base; n];
        let mut inner: Vec<(u8, usize, u32)> = dn
            .locals
            .range((start as u32, 0)..((start + n) as u32, 0))
            .filter(|((_, r), _)| *r > rel)
            .map(|(&(s, r), &v)| (r, s as usize, v))
            .collect();
        inner.sort_unstable_by_key(|x| x.0);
        for (r, s, v) in inner {
            vals[s - start..s - start + (1usize << (w - r as u32))].fill(v);
        }
        vals
    }

    /// Republishes slots `[start, start + 2^(w - rel))` of a DENSE node after its
    /// prefixes or inherited value changed (only slots whose value changes).
    fn dense_repaint(&mut self, node: usize, start: usize, rel: u8) {
        let vals = self.dense_values(node, start, rel);
        for (c, v) in vals.into_iter().enumerate() {
            self.set_slot_value(node * 2 + start + c, v);
        }
    }

    fn dense_insert(&mut self, o: u32, d: u16, p: Item) -> Option<u32> {
        let node = node_word(o);
        let w = dense_width(o);
        let c = chunk(&p.addr, d as usize, w) as usize;
        if p.len <= d + w as u16 {
            let rel = (p.len - d) as u8;
            let old = self
                .dense
                .get_mut(&node)?
                .locals
                .insert((c as u32, rel), p.payload);
            self.dense_repaint(node, c, rel);
            return old;
        }
        let s = node * 2 + c;
        let cur = self.get_out(s);
        let (child, old) = self.insert_at(cur, d + w as u16, p);
        if child != cur {
            self.set_out(s, child);
        }
        if !is_node(cur) {
            self.dense.get_mut(&node)?.children += 1;
        }
        old
    }

    fn dense_remove(&mut self, o: u32, d: u16, addr: &Words, len: u16) -> (u32, Option<u32>) {
        let node = node_word(o);
        let w = dense_width(o);
        let c = chunk(addr, d as usize, w) as usize;
        if len <= d + w as u16 {
            let rel = (len - d) as u8;
            let Some(dn) = self.dense.get_mut(&node) else {
                return (o, None);
            };
            let Some(old) = dn.locals.remove(&(c as u32, rel)) else {
                return (o, None);
            };
            self.dense_repaint(node, c, rel);
            return (self.dense_collapse(o), Some(old));
        }
        let s = node * 2 + c;
        let cur = self.get_out(s);
        let (child, old) = self.remove_at(cur, d + w as u16, addr, len);
        if old.is_none() {
            return (o, None);
        }
        if child != cur {
            self.set_out(s, child);
        }
        if !is_node(child) {
            if let Some(dn) = self.dense.get_mut(&node) {
                dn.children -= 1;
            }
            return (self.dense_collapse(o), old);
        }
        (o, old)
    }

    /// An empty DENSE node goes away: returns what stands for it (its inherited
    /// value when empty, else itself).
    fn dense_collapse(&mut self, o: u32) -> u32 {
        let dn = &self.dense[&node_word(o)];
        if dn.children == 0 && dn.locals.is_empty() {
            let inh = dn.inherited;
            self.free_node(o);
            return inh;
        }
        o
    }

    // ---------------------------------------------------------------------------
    // Reading nodes back (writer side).

    /// A RANGE node's width, pieces (start, outcome slot) and locals.
    fn read_pieces(&self, o: u32) -> (u32, Vec<(u64, usize)>, &[Local]) {
        let a = self.a();
        let node = node_word(o);
        let h = a.get(node);
        let locals: &[Local] = self.locals.get(locals_id(h));
        let (w, nb) = range_params(h);
        let base = (node + 1 + bound_words(w, nb)) * 2;
        let mut out = Vec::with_capacity(nb + 1);
        out.push((0u64, base));
        for i in 0..nb {
            out.push((self.range_bound(node, w, i), base + i + 1));
        }
        (w, out, locals)
    }

    /// The slot of the piece of RANGE node `o` holding chunk `x` (without building
    /// the piece list). Its locals are not read: a walk that only passes through
    /// the node would pay two cache misses (slab index, then data) for nothing.
    fn range_lookup(&self, o: u32, x: u64) -> usize {
        let a = self.a();
        let node = node_word(o);
        let h = a.get(node);
        let (w, nb) = range_params(h);
        let mut i = 0;
        while i < nb && self.range_bound(node, w, i) <= x {
            i += 1;
        }
        (node + 1 + bound_words(w, nb)) * 2 + i
    }

    /// Bound `i` of the RANGE node at word `node` (of width `w`).
    #[inline(always)]
    fn range_bound(&self, node: usize, w: u32, i: usize) -> u64 {
        unpack_bound(self.a().get(node + 1 + i / (64 / w) as usize), w, i)
    }

    /// The locals of RANGE node `o`.
    fn range_locals(&self, o: u32) -> &[Local] {
        self.locals.get(locals_id(self.a().get(node_word(o))))
    }

    /// Applies `edit` to RANGE node `o` (at depth `d`) by editing its locals and
    /// children in its chunk space and laying them out again at the same width:
    /// no builder items, no sort of 256-bit addresses, no planning of other widths,
    /// and only the children whose covering value changes are read. Returns the
    /// replacement's outcome (not yet published), or `None`, having changed
    /// nothing, when the result would differ from what `rebuild` builds: it no
    /// longer fits one line at this width (a node already on two lines may stay
    /// on two), or it is down to a skip's worth of items. The caller then
    /// rebuilds. This is the common update (two thirds of what were rebuilds on
    /// the realistic mix).
    fn range_edit(&mut self, o: u32, d: u16, edit: RangeEdit) -> Option<u32> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let c = self.range_edit_in(o, d, edit, &mut scratch);
        self.scratch = scratch;
        c
    }

    fn range_edit_in(
        &mut self,
        o: u32,
        d: u16,
        edit: RangeEdit,
        scratch: &mut EditScratch,
    ) -> Option<u32> {
        let EditScratch {
            children,
            locals,
            groups,
            pieces,
            open,
            outs,
        } = scratch;
        let node = node_word(o);
        let h = self.a().get(node);
        let (w, nb) = range_params(h);
        let base = (node + 1 + bound_words(w, nb)) * 2;
        // Children as (chunk, outcome) in chunk order; a child's piece is its chunk.
        children.clear();
        for i in 0..=nb {
            let c = self.get_out(base + i);
            if is_node(c) {
                let start = match i {
                    0 => 0,
                    _ => self.range_bound(node, w, i - 1),
                };
                children.push((start, c));
            }
        }
        locals.clear();
        locals.extend_from_slice(self.locals.get(locals_id(h)));
        // Chunks whose covering value may change (their children's inherited value
        // with it), and the new child's prefix.
        let mut touched: Option<std::ops::RangeInclusive<u64>> = None;
        let mut deeper = None;
        match edit {
            RangeEdit::SetLocal(l) => {
                match locals
                    .iter_mut()
                    .find(|m| m.start == l.start && m.rel == l.rel)
                {
                    Some(m) => m.value = l.value,
                    None => locals.push(l),
                }
                touched = Some(l.start..=l.last(w));
            }
            RangeEdit::RemoveLocal { start, rel } => {
                let i = locals
                    .iter()
                    .position(|m| m.start == start && m.rel == rel)?;
                touched = Some(start..=locals.swap_remove(i).last(w));
            }
            RangeEdit::AddDeeper(p) => {
                let x = chunk(&p.addr, d as usize, w);
                let i = children.binary_search_by_key(&x, |c| c.0).err()?;
                children.insert(i, (x, NONE));
                deeper = Some(p);
            }
            RangeEdit::RemoveChild { x } => {
                let i = children.binary_search_by_key(&x, |c| c.0).ok()?;
                children.remove(i);
            }
        }
        // What `build_hint` would not lay out as a RANGE of this width: a single
        // item (a skip), items all inside one chunk (a skip, then a node below),
        // a DENSE candidate.
        let items = locals.len() + children.len();
        if items < 2 || 2 * items + 1 > self.dense_min_pieces {
            return None;
        }
        let first = children.first().map_or_else(|| locals[0].start, |c| c.0);
        if locals.iter().all(|l| l.rel as u32 == w && l.start == first)
            && children.iter().all(|c| c.0 == first)
        {
            return None;
        }
        groups.clear();
        groups.extend(children.iter().enumerate().map(|(i, c)| (c.0, i..i + 1)));
        pieces_into(w, locals, groups, pieces, open);
        // The result must fit one line at this width, or (a node that already did
        // not) still fit this width's two lines: a node only changes width when the
        // builder plans it from its items again.
        let fits = match range_one_line(w, nb) {
            true => range_one_line(w, pieces.len() - 1),
            false => range_fits(w, pieces.len() - 1),
        };
        if !fits {
            return None;
        }
        outs.clear();
        for p in pieces.iter() {
            outs.push(match p.group {
                None => p.value,
                Some(g) => match children[g] {
                    (_, NONE) => {
                        let mut one = [deeper.expect("the new child's prefix")];
                        self.build(d + w as u16, &mut one, p.value)
                    }
                    (x, c) if touched.as_ref().is_some_and(|t| t.contains(&x)) => {
                        self.with_inherited(c, p.value)
                    }
                    (_, c) => c,
                },
            });
        }
        let c = self.emit_range(w, pieces, outs, locals, inherited(h));
        self.free_node(o);
        Some(c)
    }

    /// The node `o` (at depth `d`, in the region of `addr`) as builder items: its
    /// prefixes and its children as subtrees, unsorted (`rebuild` sorts them once,
    /// after the caller's edit).
    fn node_items(&self, o: u32, d: u16, addr: &Words) -> Vec<Item> {
        // Room for a RANGE node's prefixes and children plus the caller's new item.
        let mut items = Vec::with_capacity(2 * RANGE_BOUND_WORDS * 8 + 2);
        self.node_items_into(o, d, addr, &mut items);
        items
    }

    /// [`Lpm::node_items`] in the vector the last rebuild handed back (an update
    /// that falls back to the builder allocates nothing for its items).
    fn edit_items(&mut self, o: u32, d: u16, addr: &Words) -> Vec<Item> {
        let mut items = std::mem::take(&mut self.spare_items);
        items.clear();
        self.node_items_into(o, d, addr, &mut items);
        items
    }

    fn node_items_into(&self, o: u32, d: u16, addr: &Words, items: &mut Vec<Item>) {
        let node = node_word(o);
        let region = masked(addr, d);
        if is_dense(o) {
            let dn = &self.dense[&node];
            let w = dn.w;
            for (&(st, r), &v) in &dn.locals {
                items.push(Item::prefix(
                    with_chunk(&region, d as usize, w, st as u64),
                    d + r as u16,
                    v,
                ));
            }
            for c in 0..1usize << w {
                let x = self.get_out(node * 2 + c);
                if is_node(x) {
                    items.push(Item::sub(
                        with_chunk(&region, d as usize, w, c as u64),
                        d + w as u16,
                        x,
                    ));
                }
            }
            return;
        }
        if is_skip(o) {
            let (pat, end, om) = self.skip_parts(o, &region);
            if is_node(om) {
                let inh = self.node_inherited(om);
                if is_value(inh) {
                    items.push(Item::prefix(pat, end, inh));
                }
                items.push(Item::sub(pat, end, om));
            } else if is_value(om) {
                items.push(Item::prefix(pat, end, om));
            }
        } else {
            let (w, pieces, locals) = self.read_pieces(o);
            for l in locals {
                items.push(Item::prefix(
                    with_chunk(&region, d as usize, w, l.start),
                    d + l.rel as u16,
                    l.value,
                ));
            }
            for (start, slot) in pieces {
                let c = self.get_out(slot);
                if is_node(c) {
                    items.push(Item::sub(
                        with_chunk(&region, d as usize, w, start),
                        d + w as u16,
                        c,
                    ));
                }
            }
        }
    }

    /// Builds the replacement of node `o` from `items` and retires `o`; returns
    /// the outcome that stands for it (its inherited value when nothing is left).
    fn rebuild(&mut self, o: u32, d: u16, mut items: Vec<Item>) -> u32 {
        let inh = self.node_inherited(o);
        items.sort_by_key(Item::order);
        let hint = if is_node(o) && kind(o) <= K_R64 {
            8 << kind(o)
        } else {
            0
        };
        let c = self.build_hint(d, &mut items, inh, hint);
        if items.capacity() <= 4096 {
            self.spare_items = items;
        }
        self.free_node(o);
        if c == NONE {
            inh
        } else {
            c
        }
    }

    // ---------------------------------------------------------------------------
    // Updates.

    /// Prefixes of length 0..=16 live in the default word and the root slots.
    fn set_shallow(&mut self, p: &Prefix, v: u32) -> Option<u32> {
        let len = p.len();
        let val = self.enc(v);
        if len == 0 {
            self.a().publish(DEFAULT_WORD, val as u64);
            return self.default.replace(v);
        }
        let addr = words(p.addr().as_bytes());
        let old = self.root_locals.insert(root_key(&addr, len), v);
        let start = (addr[0] >> 48) as usize;
        for s in start..start + (1usize << (16 - len)) {
            if self.root_owner[s] as u16 <= len {
                self.root_owner[s] = len as u8;
                self.set_root_value(s, val);
            }
        }
        old
    }

    fn unset_shallow(&mut self, p: &Prefix) -> Option<u32> {
        let len = p.len();
        if len == 0 {
            self.a().publish(DEFAULT_WORD, NONE as u64);
            return self.default.take();
        }
        let addr = words(p.addr().as_bytes());
        let old = self.root_locals.remove(&root_key(&addr, len))?;
        let cover = (1..len)
            .rev()
            .find_map(|l| self.root_locals.get(&root_key(&addr, l)).map(|&v| (l, v)));
        let (l, val) = match cover {
            Some((l, v)) => (l as u8, self.enc(v)),
            None => (0, NONE),
        };
        let start = (addr[0] >> 48) as usize;
        for s in start..start + (1usize << (16 - len)) {
            if self.root_owner[s] as u16 == len {
                self.root_owner[s] = l;
                self.set_root_value(s, val);
            }
        }
        Some(old)
    }

    /// Sets the value of root slot `s` (in its child's header when it has one).
    fn set_root_value(&mut self, s: usize, val: u32) {
        self.set_slot_value(s, val);
    }

    fn insert_inner(&mut self, p: &Prefix, v: u32) -> Option<u32> {
        let old = if p.len() <= 16 {
            self.set_shallow(p, v)
        } else {
            let val = self.enc(v);
            let it = Item::prefix(words(p.addr().as_bytes()), p.len(), val);
            let slot = (it.addr[0] >> 48) as usize;
            let cur = self.get_out(slot);
            let (c, old) = self.insert_at(cur, 16, it);
            if c != cur {
                self.set_out(slot, c);
            }
            old.map(|o| self.dec(o))
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
            let slot = (addr[0] >> 48) as usize;
            let cur = self.get_out(slot);
            let (c, old) = self.remove_at(cur, 16, &addr, p.len());
            if c != cur {
                self.set_out(slot, c);
            }
            old.map(|o| self.dec(o))
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

    /// Inserts prefix item `p` below outcome `o` (of a slot at depth `d`); returns
    /// the outcome that replaces `o` (the caller publishes it) and the compact value
    /// `p` replaced.
    fn insert_at(&mut self, o: u32, d: u16, p: Item) -> (u32, Option<u32>) {
        if !is_node(o) {
            // No subtree yet: the slot's own value moves into the new node.
            return (self.build(d, &mut [p], o), None);
        }
        if is_dense(o) {
            let old = self.dense_insert(o, d, p);
            return (o, old);
        }
        let node = node_word(o);
        if is_skip(o) {
            let (pat, end, om) = self.skip_parts(o, &p.addr);
            let rel = Lpm::skip_out_rel(o);
            if lcp(&p.addr, &pat).min(p.len).min(end) == end {
                if p.len == end {
                    if is_node(om) {
                        let inh = self.node_inherited(om);
                        let c = self.with_inherited(om, p.payload);
                        return (self.with_slot(o, rel, c), is_value(inh).then_some(inh));
                    }
                    return (
                        self.with_slot(o, rel, p.payload),
                        is_value(om).then_some(om),
                    );
                }
                if is_node(om) {
                    let (c, old) = self.insert_at(om, end, p);
                    return (self.with_slot(o, rel, c), old);
                }
            }
            let mut items = self.edit_items(o, d, &p.addr);
            items.push(p);
            return (self.rebuild(o, d, items), None);
        }
        let w = range_params(self.a().get(node)).0;
        let s = self.range_lookup(o, chunk(&p.addr, d as usize, w));
        if p.len <= d + w as u16 {
            let rel = (p.len - d) as u8;
            let start = chunk(&p.addr, d as usize, w);
            let old = self
                .range_locals(o)
                .iter()
                .find(|l| l.start == start && l.rel == rel)
                .map(|l| l.value);
            let set = Local {
                start,
                rel,
                value: p.payload,
            };
            if let Some(c) = self.range_edit(o, d, RangeEdit::SetLocal(set)) {
                return (c, old);
            }
            let mut items = self.edit_items(o, d, &p.addr);
            if old.is_some() {
                items.retain(|it| it.sub || it.len != p.len || it.addr != p.addr);
            }
            items.push(p);
            return (self.rebuild(o, d, items), old);
        }
        let child = self.get_out(s);
        if is_node(child) {
            let (c, old) = self.insert_at(child, d + w as u16, p);
            return (self.with_slot(o, s - node * 2, c), old);
        }
        if let Some(c) = self.range_edit(o, d, RangeEdit::AddDeeper(p)) {
            return (c, None);
        }
        let mut items = self.edit_items(o, d, &p.addr);
        items.push(p);
        (self.rebuild(o, d, items), None)
    }

    /// Removes prefix `addr/len` below outcome `o` (of a slot at depth `d`); returns
    /// the outcome that replaces `o` and the compact value removed.
    fn remove_at(&mut self, o: u32, d: u16, addr: &Words, len: u16) -> (u32, Option<u32>) {
        if !is_node(o) {
            return (o, None);
        }
        if is_dense(o) {
            return self.dense_remove(o, d, addr, len);
        }
        let node = node_word(o);
        if is_skip(o) {
            let h = self.a().get(node);
            let (pat, end, om) = self.skip_parts(o, addr);
            if lcp(addr, &pat).min(len).min(end) < end {
                return (o, None);
            }
            if len == end {
                if is_node(om) {
                    let inh = self.node_inherited(om);
                    if !is_value(inh) {
                        return (o, None);
                    }
                    // Nothing ends at `end` any more: the skip may merge with its child.
                    let c = self.with_inherited(om, NONE);
                    let items = vec![Item::sub(pat, end, c)];
                    return (self.rebuild(o, d, items), Some(inh));
                }
                if !is_value(om) {
                    return (o, None);
                }
                let inh = inherited(h);
                self.free_node(o);
                return (inh, Some(om));
            }
            if !is_node(om) {
                return (o, None);
            }
            let (c, old) = self.remove_at(om, end, addr, len);
            if old.is_none() {
                return (o, None);
            }
            if c == NONE {
                let inh = inherited(h);
                self.free_node(o);
                return (inh, old);
            }
            if is_node(c) && is_skip(c) && !is_value(self.node_inherited(c)) {
                return (self.rebuild(o, d, vec![Item::sub(pat, end, c)]), old);
            }
            return (self.with_slot(o, Lpm::skip_out_rel(o), c), old);
        }
        let w = range_params(self.a().get(node)).0;
        let s = self.range_lookup(o, chunk(addr, d as usize, w));
        if len <= d + w as u16 {
            let rel = (len - d) as u8;
            let start = chunk(addr, d as usize, w);
            let Some(old) = self
                .range_locals(o)
                .iter()
                .find(|l| l.start == start && l.rel == rel)
                .map(|l| l.value)
            else {
                return (o, None);
            };
            if let Some(c) = self.range_edit(o, d, RangeEdit::RemoveLocal { start, rel }) {
                return (c, Some(old));
            }
            let mut items = self.edit_items(o, d, addr);
            let key = masked(addr, len);
            items.retain(|it| it.sub || it.len != len || it.addr != key);
            return (self.rebuild(o, d, items), Some(old));
        }
        let child = self.get_out(s);
        if !is_node(child) {
            return (o, None);
        }
        let (c, old) = self.remove_at(child, d + w as u16, addr, len);
        if old.is_none() {
            return (o, None);
        }
        if is_node(c) {
            return (self.with_slot(o, s - node * 2, c), old);
        }
        // The child went away: the node loses that piece.
        let x = chunk(addr, d as usize, w);
        if let Some(c) = self.range_edit(o, d, RangeEdit::RemoveChild { x }) {
            return (c, old);
        }
        let mut items = self.edit_items(o, d, addr);
        items.retain(|it| !(it.sub && it.payload == child));
        (self.rebuild(o, d, items), old)
    }

    fn get_at(&self, slot: usize, d: u16, addr: &Words, len: u16) -> Option<u32> {
        let o = self.get_out(slot);
        if !is_node(o) {
            return None;
        }
        let a = self.a();
        let node = node_word(o);
        if is_dense(o) {
            let w = dense_width(o);
            let c = chunk(addr, d as usize, w);
            if len <= d + w as u16 {
                let rel = (len - d) as u32;
                return self.dense[&node]
                    .locals
                    .get(&(c as u32, rel as u8))
                    .copied();
            }
            return self.get_at(node * 2 + c as usize, d + w as u16, addr, len);
        }
        if is_skip(o) {
            let (pat, end, om) = self.skip_parts(o, addr);
            if lcp(addr, &pat).min(len).min(end) < end {
                return None;
            }
            if len == end {
                let v = if is_node(om) {
                    self.node_inherited(om)
                } else {
                    om
                };
                return is_value(v).then_some(v);
            }
            return self.get_at(node * 2 + Lpm::skip_out_rel(o), end, addr, len);
        }
        let w = range_params(a.get(node)).0;
        if len <= d + w as u16 {
            let rel = (len - d) as u8;
            let start = chunk(addr, d as usize, w);
            return self
                .range_locals(o)
                .iter()
                .find(|l| l.start == start && l.rel == rel)
                .map(|l| l.value);
        }
        let s = self.range_lookup(o, chunk(addr, d as usize, w));
        self.get_at(s, d + w as u16, addr, len)
    }

    /// Every prefix below the node `o` (at depth `d`, in the region of `addr`).
    fn subtree_prefixes(&self, o: u32, d: u16, addr: &Words) -> Vec<Item> {
        let mut out = Vec::new();
        let mut stack = vec![(o, d, *addr)];
        while let Some((o, d, addr)) = stack.pop() {
            for it in self.node_items(o, d, &addr) {
                if it.sub {
                    stack.push((it.payload, it.len, it.addr));
                } else {
                    out.push(it);
                }
            }
        }
        out
    }

    /// Node census (diagnostics): counts of (DENSE8, RANGE by width 8/16/32/64,
    /// RANGE nodes that fit one line, SKIP with a child, SKIP tails, DENSE16).
    #[doc(hidden)]
    pub fn census(&self) -> [usize; 9] {
        let mut c = [0usize; 9];
        let mut stack: Vec<u32> = (0..ROOT_SLOTS)
            .map(|s| self.get_out(s))
            .filter(|o| is_node(*o))
            .collect();
        while let Some(o) = stack.pop() {
            let a = self.a();
            let node = node_word(o);
            if is_dense(o) {
                c[if dense_width(o) == 8 { 0 } else { 8 }] += 1;
                stack.extend(
                    (0..1usize << dense_width(o))
                        .map(|x| self.get_out(node * 2 + x))
                        .filter(|x| is_node(*x)),
                );
                continue;
            }
            let h = a.get(node);
            match ty(h) {
                TY_SKIP => {
                    let om = self.get_out(node * 2 + Lpm::skip_out_rel(o));
                    if is_node(om) {
                        c[6] += 1;
                        stack.push(om);
                    } else {
                        c[7] += 1;
                    }
                    continue;
                }
                TY_RANGE => {
                    let (w, nb) = range_params(h);
                    c[1 + w.trailing_zeros() as usize - 3] += 1;
                    if range_one_line(w, nb) {
                        c[5] += 1;
                    }
                }
                _ => {}
            }
            let (_, pieces, _) = self.read_pieces(o);
            for (_, s) in pieces {
                let x = self.get_out(s);
                if is_node(x) {
                    stack.push(x);
                }
            }
        }
        c
    }

    /// Checks the structural invariants (tests and debugging); returns a description
    /// of the first violation.
    #[doc(hidden)]
    pub fn check(&self) -> Result<(), String> {
        for slot in 0..ROOT_SLOTS {
            let o = self.get_out(slot);
            if is_node(o) {
                self.check_at(o, 16, &[(slot as u64) << 48, 0, 0, 0])?;
            }
        }
        Ok(())
    }

    fn check_at(&self, o: u32, d: u16, region: &Words) -> Result<(), String> {
        let a = self.a();
        let node = node_word(o);
        let align = if kind(o) == K_SKIP4 { 4 } else { 8 };
        if node % align != 0 || node < FIRST_NODE_WORD {
            return Err(format!("node at word {node}"));
        }
        if is_dense(o) {
            let dn = self.dense.get(&node).ok_or("dense node without state")?;
            let w = dn.w;
            if d % 8 != 0 || d as u32 + w > 256 || w != dense_width(o) {
                return Err(format!("dense{w} node at depth {d}"));
            }
            let mut children = 0;
            let vals = self.dense_values(node, 0, 0);
            for (c, &val) in vals.iter().enumerate() {
                let x = self.get_out(node * 2 + c);
                if is_node(x) {
                    children += 1;
                    if self.node_inherited(x) != val {
                        return Err(format!("dense child {c} inherits the wrong value"));
                    }
                    self.check_at(
                        x,
                        d + w as u16,
                        &with_chunk(region, d as usize, w, c as u64),
                    )?;
                } else if x != val {
                    return Err(format!("dense slot {c} has {x:#x}, not {val:#x}"));
                }
            }
            if children != dn.children {
                return Err(format!(
                    "dense node counts {} children, has {children}",
                    dn.children
                ));
            }
            return Ok(());
        }
        let h = a.get(node);
        match ty(h) {
            TY_SKIP => {
                let (pat, end, om) = self.skip_parts(o, region);
                let four = kind(o) == K_SKIP4;
                if four != (end as usize <= 64 * (d as usize / 64 + 2))
                    || (four && skip4_word(h) != d as usize / 64)
                {
                    return Err(format!("skip {d}->{end} in the wrong form"));
                }
                if !four && (0..4).any(|i| a.get(node + 1 + i) != pat[i]) {
                    return Err("skip pattern".into());
                }
                if end <= d
                    || end > 256
                    || skip_start(h) != d
                    || masked(&pat, d) != *region
                    || masked(&pat, end) != pat
                {
                    return Err(format!("skip {d}->{end} does not fit its region"));
                }
                if is_node(om) {
                    if end % 8 != 0 {
                        return Err(format!("skip to {end} continues into a node"));
                    }
                    return self.check_at(om, end, &pat);
                }
                if !is_value(om) {
                    return Err("skip leads nowhere".into());
                }
                Ok(())
            }
            TY_RANGE => {
                if d % 8 != 0 || d >= 256 {
                    return Err(format!("node at depth {d}"));
                }
                let (w, pieces, locals) = self.read_pieces(o);
                if d as u32 + w > 256 {
                    return Err(format!("{w}-bit node at depth {d}"));
                }
                if pieces[0].0 != 0 || pieces.windows(2).any(|p| p[0].0 >= p[1].0) {
                    return Err(format!("pieces out of order at depth {d}"));
                }
                for l in locals {
                    if l.rel == 0
                        || l.rel as u32 > w
                        || (l.rel as u32) < w
                            && l.start & (u64::MAX >> (64 - (w - l.rel as u32))) != 0
                    {
                        return Err(format!("bad local {l:?}"));
                    }
                }
                for (start, s) in pieces {
                    let c = self.get_out(s);
                    if is_node(c) {
                        self.check_at(c, d + w as u16, &with_chunk(region, d as usize, w, start))?;
                    }
                }
                Ok(())
            }
            t => Err(format!("unknown node type {t}")),
        }
    }
}

impl Drop for Lpm {
    fn drop(&mut self) {
        // Readers may still walk retired arenas: they go when the last reader does.
        let mut g = self
            .shared
            .graveyard
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        g.extend(self.pending_frees.drain(..));
        g.extend(self.retired_frees.drain(..).map(|(_, r)| r));
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
        let slot = self
            .shared
            .qsbr
            .register()
            .ok_or(Error::TooManyReaders(self.shared.qsbr.capacity()))?;
        Ok(Reader {
            shared: self.shared.clone(),
            slot,
            online: Cell::new(true),
        })
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

    /// Longest-prefix match of one key (through the trie; see [`Lpm::lookup`]).
    #[inline]
    pub fn lookup(&self, key: &Address) -> Option<u32> {
        lookup::lookup(self.arena(), key)
    }

    /// Longest-prefix match of a batch (best with 32-64 keys): `out[i]` gets the
    /// next hop of the longest prefix matching `keys[i]`. The walks of up to 64 keys
    /// are interleaved with prefetches so their cache misses overlap. While a
    /// snapshot is published ([`Lpm::publish_snapshot`]) it answers instead,
    /// but for keys in regions changed since (the trie answers those).
    pub fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        let a = self.arena();
        match self.shared.snapshot() {
            Some(s) => s.lookup_bulk(a, keys, out),
            None => lookup::lookup_bulk(a, keys, out),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `pieces_into` against the definition on random nested locals and child points:
    /// chunk by chunk in an 8-bit chunk space, and in a 64-bit one (where the
    /// sweep's u64 arithmetic meets the end of the space) at every chunk next to
    /// a cut, where a wrong piece would show.
    #[test]
    fn pieces_match_a_chunk_by_chunk_reference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if n == 0 {
                seed
            } else {
                seed % n
            }
        };
        for w in [8u32, 64] {
            let space = 1u128 << w;
            // Starts near the ends of the space and one elsewhere, so prefixes nest.
            let bases = [0u64, u64::MAX >> (64 - w), next(0) >> (64 - w)];
            for _ in 0..2000 {
                let mut locals: Vec<Local> = Vec::new();
                for _ in 0..next(12) {
                    let rel = 1 + next(w as u64) as u8;
                    let span = w - rel as u32;
                    let near = bases[next(3) as usize] ^ next(4).checked_shl(span).unwrap_or(0);
                    let low = u64::MAX.checked_shr(64 - span).unwrap_or(0);
                    let start = near & (u64::MAX >> (64 - w)) & !low;
                    if !locals.iter().any(|l| l.start == start && l.rel == rel) {
                        let value = TAG_VALUE | (1 + next(3) as u32);
                        locals.push(Local { start, rel, value });
                    }
                }
                let mut xs: Vec<u64> = (0..next(6))
                    .map(|_| match next(3) {
                        0 => bases[next(3) as usize],
                        _ => next(0) >> (64 - w),
                    })
                    .collect();
                xs.sort_unstable();
                xs.dedup();
                let groups: Vec<(u64, std::ops::Range<usize>)> =
                    xs.iter().enumerate().map(|(i, &x)| (x, i..i + 1)).collect();
                let want = |c: u64| -> (u32, Option<usize>) {
                    let value = locals
                        .iter()
                        // Its own end arithmetic, not the sweep's `Local::last`.
                        .filter(|l| {
                            let end = l.start as u128 + (1u128 << (w - l.rel as u32));
                            l.start <= c && (c as u128) < end
                        })
                        .max_by_key(|l| l.rel)
                        .map_or(NONE, |l| l.value);
                    (value, xs.iter().position(|&x| x == c))
                };
                let mut got = Vec::new();
                pieces_into(w, &mut locals.clone(), &groups, &mut got, &mut Vec::new());
                assert_eq!(got[0].start, 0);
                for (i, p) in got.iter().enumerate() {
                    let end = got.get(i + 1).map_or(space, |q| q.start as u128);
                    assert!((p.start as u128) < end, "pieces out of order: {got:?}");
                    if p.group.is_some() {
                        assert_eq!(end, p.start as u128 + 1, "a child point is one chunk");
                    }
                    if i > 0 && p.group.is_none() && got[i - 1].group.is_none() {
                        assert_ne!(p.value, got[i - 1].value, "unmerged neighbours");
                    }
                }
                let piece_at = |c: u64| &got[got.partition_point(|p| p.start <= c) - 1];
                let points: Vec<u64> = if w == 8 {
                    (0..256).collect()
                } else {
                    let mut cuts = vec![0, u64::MAX];
                    for l in &locals {
                        cuts.extend([l.start, l.last(w)]);
                    }
                    cuts.extend(&xs);
                    cuts.iter()
                        .flat_map(|&c| [c.wrapping_sub(1), c, c.wrapping_add(1)])
                        .collect()
                };
                for c in points {
                    let p = piece_at(c);
                    assert_eq!((p.value, p.group), want(c), "chunk {c} in {got:?}");
                }
            }
        }
    }
}
