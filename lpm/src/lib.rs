//! Lock-free longest-prefix match on 256-bit W3IP addresses: one writer publishes
//! new versions, any number of poll-mode readers look up without locks.
//!
//! ```
//! use chainroute_lpm::Lpm;
//! use chainroute_wire::{Address, Prefix};
//!
//! let mut t = Lpm::new();
//! t.insert("::/0".parse::<Prefix>().unwrap(), 1);
//! t.insert("2001:db8::/32".parse().unwrap(), 2);
//! t.insert("2001:db8::1:2:3:4:5/256".parse().unwrap(), 3);
//!
//! // A reader per worker thread: lookups never lock or wait.
//! let r = t.reader().unwrap();
//! let keys: [Address; 2] = ["2001:db8::9".parse().unwrap(), "2001:db8::1:2:3:4:5".parse().unwrap()];
//! let mut out = [None; 2];
//! r.lookup_bulk(&keys, &mut out);
//! assert_eq!(out, [Some(2), Some(3)]);
//! r.quiescent(); // once per poll loop: lets the writer reuse memory
//!
//! t.remove(&"2001:db8::/32".parse().unwrap());
//! assert_eq!(r.lookup(&keys[0]), Some(1));
//! ```
//!
//! # Algorithm
//!
//! A multibit trie over the key with *adaptive* nodes, path compression, and
//! leaf values folded into the slots that lead to them; designed so that a lookup
//! touches as few 64-byte lines as possible (on a machine with little cache, lines
//! are the cost). After a 2^16-slot root (the top 16 bits), every node consumes a
//! byte-aligned chunk of the key and is one of:
//!
//! * **RANGE** (most nodes): the next W = 8, 16, 32 or 64 bits are looked up among
//!   at most 32 sorted bounds (at most 4 words) by a branch-free SIMD count (SWAR
//!   in the AVX-512 kernel); each piece between bounds has an outcome: a next hop,
//!   nothing, or a child node. One line holds a node of up to 10 (W=8), 9 (16), 7
//!   (32) or 5 (64) pieces. A prefix ending inside the chunk is a range of pieces,
//!   so a /48 under a /32 is one RANGE16 node, and a cluster of /96s under a /48 is
//!   often one RANGE64 node: many levels of a plain trie become one line.
//! * **DENSE8 / DENSE16**: where a region is too crowded for a RANGE node (or for
//!   the busiest /16s, more than 2048 pieces), a direct array of 2^W outcomes, like
//!   DPDK's tbl8/tbl24: one line read, whose address the reader knows from the key
//!   before touching the node.
//! * **SKIP / SKIP4**: path compression: the key must equal a stored pattern up to
//!   bit `end`, then continue (or end, for a single-prefix tail: a /256 host route
//!   under a branching node is one half-line SKIP4).
//!
//! The builder picks, for each region, the widest RANGE that fits one line, else a
//! skip when all prefixes share bits, else a two-line RANGE, else a DENSE8 node.
//! Leaf pushing is limited to one level: a slot that has both a value and a child
//! stores the child; the value lives in the child's header ("inherited"), read with
//! the child's first line. So changing a prefix changes one node, never a subtree.
//!
//! Lookups: `lookup` walks one key. `lookup_bulk` walks up to 64 keys together,
//! round by round, each key advancing one line per round with that line prefetched
//! the round before (so the misses of all keys overlap). On CPUs with AVX-512
//! (F/BW/DQ/VPOPCNTDQ) eight keys go through each step at once whatever node kind
//! each is at (masks, no branches), with gathers for node lines and lanes compacted
//! as keys finish; otherwise a scalar kernel groups keys by node kind so that each
//! group's loop is branch-free. Both are chosen at run time (no `-C target-cpu`).
//!
//! # Memory layout
//!
//! One arena of 64-bit words (2 MiB-aligned, transparent huge pages requested):
//! the root (65,536 u32 outcomes), the default route, a table of next hops of 2^30
//! and more, then the nodes, each starting a line (SKIP4: half a line). A u32
//! outcome carries a 2-bit tag (none, value, node, big value); a node outcome
//! carries the node's kind (3 bits) and its half-line index, so a reader knows what
//! it will find before it reads it. The exact bit layout is in `node.rs`. Writer-
//! only data (the prefixes of each node, to rebuild it) lives outside the arena.
//! The arena grows by doubling: a copy is published and the old one retired.
//!
//! # Concurrency: QSBR and the memory-ordering argument
//!
//! One writer (`&mut Lpm`), any number of [`Reader`]s (one per thread; `Send`,
//! not `Sync`). Readers take no lock, write nothing shared during a lookup, and
//! report a quiescent state once per poll loop ([`Reader::quiescent`]: one load
//! and one store to the reader's own cache line), like DPDK's `rte_rcu_qsbr`.
//!
//! 1. **Publication.** The writer never changes a RANGE or SKIP node a reader can
//!    reach: it builds a new node in unused memory with plain (Relaxed) stores and
//!    publishes it with one Release store of the 32-bit outcome that names it. If
//!    that outcome sits in another RANGE/SKIP node, that node is copied in turn
//!    (path copying), up to the nearest slot that is updated in place: a root slot
//!    or a DENSE slot. Readers load outcomes with Acquire, so everything written
//!    before the Release (the whole new path) is visible to a reader that sees the
//!    new outcome. Every published node is therefore immutable, and the AVX-512
//!    kernel can read node lines with plain gathers without racing any write.
//!    (Only the root and DENSE slots, the default-route word and the big-value
//!    words change in place; every read of them is an atomic load.)
//! 2. **Atomicity per key.** Each change becomes visible through single aligned
//!    64-bit atomic stores; a lookup sees, for each slot on its path, the old or the
//!    new outcome, both of which lead to complete, consistent nodes. A change that
//!    touches several slots (a prefix of length <= 16 spans root slots, a prefix
//!    inside a DENSE node spans slots) becomes visible slot by slot: every lookup
//!    returns the answer of either the old or the new table for its key.
//! 3. **Reclamation.** Unlinked blocks (and retired arenas) are tagged with a new
//!    grace period `e` (the writer's `fetch_add`, AcqRel, after the unlinking
//!    stores). They are reused only when every online reader's line shows `e` or
//!    more. A reader's `quiescent` loads the counter with Acquire and stores it with
//!    Release: the lookups it did before happen-before the writer's Acquire load of
//!    its line, hence before any reuse; and having seen `e`, its later lookups
//!    happen after the unlinking, so they cannot reach the unlinked block. Going
//!    online (or registering) is a store followed by loads, racing the writer's
//!    store-then-load scan: both sides use SeqCst fences there (store buffering).
//!    A reader that stalls only delays reuse; the writer never waits unless it
//!    calls [`Lpm::synchronize`].
//! 4. **Bounds.** Every arena index a reader computes is masked by the arena's
//!    power-of-two length, and walks are bounded in steps, so even a corrupt
//!    structure could only give a wrong answer: no out-of-bounds read, no panic,
//!    no endless loop, for any key.
//!
//! # The interval snapshot
//!
//! [`IntervalTable`] answers the same question another way (the idea of PlanB,
//! NSDI '26): the prefixes cut the address space into elementary intervals with
//! one answer each, so one ordered search over the cuts replaces the walk. Keys
//! are taken 64 bits at a time: a table per chunk, an S+-tree of 64-byte lines
//! (one 8-lane compare and a popcount per step, outcomes in the leaves, no pointers),
//! child tables under the chunk values where longer prefixes start. It is static:
//! built from a prefix list, never edited. On the realistic table its bulk lookup
//! is two to three times the trie's, so the writer can publish one
//! ([`Lpm::publish_snapshot`]) when the routes have settled; bulk lookups (the
//! writer's and every [`Reader`]'s) then search it. A later change first marks
//! the region it can alter (a bit, in a hashed bitmap, for the top 32 to 128 bits
//! its prefix fixes); bulk lookups send the keys under a mark to the trie. A
//! change to a prefix shorter than /24, or more than 4096 marks, withdraws the
//! snapshot instead (`src/snapshot.rs`):
//!
//! 5. **Snapshot.** Publishing is one AcqRel swap of a pointer to a fully built
//!    table (with empty bitmaps) after every change it holds; a reader loads it
//!    with Acquire, so it sees the whole table and a trie at least as new.
//!    A change that the snapshot cannot take first swaps the pointer to null
//!    (AcqRel), then changes the trie with its Release stores: a reader that sees
//!    any part of the change (an Acquire load that reads one of those stores)
//!    happens-after the swap and can no longer load the old pointer. A change it
//!    can take first sets its marks (Release read-modify-writes), then changes
//!    the trie: a reader that sees any part of the change through the trie
//!    happens-after the marks, so its later loads of those bits read them set
//!    (coherence) and its lookups of keys in the prefix go to the trie. Either
//!    way a reader never goes back to the answers before a change it has seen.
//!    A reader that misses a mark (it loaded the bits, Relaxed, before the mark
//!    was made) answers from the snapshot, which is what the key resolved to
//!    before that change: a lookup concurrent with it. Bits are never cleared in
//!    a published snapshot; a new one comes with its own. A reader that loaded a
//!    pointer before a swap finishes its lookups on it (marks of changes made
//!    after the swap are not in it: as above, its answers are those from before
//!    them); the snapshot is retired like an arena and freed after a grace period.
//!
//! # `unsafe`
//!
//! Confined to: the arena (mmap/madvise/munmap, a slice from the mapping, one
//! unchecked index proven in bounds by masking, a line view of 8 words); the QSBR-
//! protected arena pointer (dereferenced by readers, freed only after a grace
//! period); prefetches (hints); calling the AVX2 and AVX-512 kernels after run-time
//! feature detection; the AVX-512 kernel's gathers (masked indices, immutable
//! nodes, see 1.) and its aligned loads/stores of local state. Each block carries a
//! `SAFETY` comment.
//!
//! # Measured
//!
//! See `README.md` in this crate for the figures measured with `lpm-bench` on the
//! realistic 256-bit table (RouteViews IPv6 prefixes, routeviews.org, CC BY 4.0,
//! plus synthetic W3IP routes), against DPDK's `rte_fib6`/`rte_lpm6` and the
//! `prefix-trie` crate.

mod arena;
mod interval;
mod lookup;
mod mapping;
pub mod naive;
mod node;
pub mod qsbr;
mod snapshot;
mod table;

pub use interval::{IntervalTable, INTERVAL_BATCH};
pub use lookup::{prefetch, BATCH};
pub use mapping::HugeSlice;
pub use naive::NaiveLpm;
pub use snapshot::SHORTEST_MARKED;
pub use table::{Config, Error, Handle, Lpm, MemoryStats, Reader, Update, DENSE_MIN_PIECES};
