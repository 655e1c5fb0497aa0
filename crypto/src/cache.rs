//! The shared cache of decompressed, checked public keys, read lock-free by workers.
//!
//! # Publication scheme (also used by [`crate::registry`])
//!
//! One writer (the management plane) owns the data and publishes immutable
//! snapshots through [`arc_swap::ArcSwap`]; workers read the current snapshot
//! with one `load()` (an atomic load plus a per-thread debt slot: no lock, no
//! refcount contention between cores, no registration). Chosen over
//! crossbeam-epoch and a QSBR of our own because:
//! * a reader needs no per-thread registration or quiescent-state reports, so the
//!   crypto caches do not depend on the dataplane's worker loop;
//! * the writer decides where memory is freed: every replaced snapshot goes to a
//!   retired list and is dropped by the writer once it alone holds it
//!   (`Arc::strong_count == 1`: arc-swap converts readers' outstanding debts into
//!   counted references when a snapshot is replaced), so a worker never runs a
//!   destructor of a large map in the data path.
//!
//! # Key cache
//!
//! Bounded by two generations of at most `generation_capacity` keys each: lookups
//! probe the young then the old generation; when the young one is full it becomes
//! the old one and the old one is dropped (an approximate LRU with O(1) eviction
//! and a publish cost bounded by one generation). Keys are found by their 32 bytes
//! in hashbrown maps. Keys that break the rules are cached too (as their error),
//! so a repeated bad key costs one lookup.
//!
//! A worker that misses prepares the key itself (~3 us plus the subgroup check)
//! and offers it to the writer through a bounded lock-free channel (`try_send`;
//! when the channel is full the offer is dropped and counted). The writer folds
//! offers in at its next [`publish`](KeyCacheWriter::publish).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

use crate::ed25519::PublicKey;
use crate::error::{Error, Result};

type KeyMap = HashMap<[u8; 32], core::result::Result<PublicKey, Error>>;

struct KeySnapshot {
    young: Arc<KeyMap>,
    old: Arc<KeyMap>,
    version: u64,
}

impl KeySnapshot {
    fn get(&self, key: &[u8; 32]) -> Option<core::result::Result<PublicKey, Error>> {
        self.young.get(key).or_else(|| self.old.get(key)).copied()
    }
}

/// Drops retired snapshots that no reader holds any more.
pub(crate) fn reclaim<T>(retired: &mut Vec<Arc<T>>) {
    retired.retain(|s| Arc::strong_count(s) > 1);
}

/// Creates a key cache: one writer, and a reader to clone for every worker.
/// `generation_capacity` bounds the cache at twice that many keys; `queue_len`
/// bounds the offers waiting for the writer.
pub fn key_cache(generation_capacity: usize, queue_len: usize) -> (KeyCacheWriter, KeyCacheReader) {
    let empty = Arc::new(KeyMap::new());
    let snapshot = KeySnapshot { young: empty.clone(), old: empty, version: 0 };
    let shared = Arc::new(ArcSwap::from_pointee(snapshot));
    let (tx, rx) = sync_channel(queue_len.max(1));
    let writer = KeyCacheWriter {
        shared: shared.clone(),
        young: KeyMap::with_capacity(generation_capacity.max(1)),
        old: Arc::new(KeyMap::new()),
        generation_capacity: generation_capacity.max(1),
        rx,
        retired: Vec::new(),
        version: 0,
        dirty: false,
    };
    let reader = KeyCacheReader { shared, tx, stats: KeyCacheStats::default() };
    (writer, reader)
}

/// Per-reader counters (each worker has its own reader, so these are not shared).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Offers dropped because the writer's queue was full.
    pub offers_dropped: u64,
}

/// A worker's handle: lock-free lookups.
pub struct KeyCacheReader {
    shared: Arc<ArcSwap<KeySnapshot>>,
    tx: SyncSender<([u8; 32], core::result::Result<PublicKey, Error>)>,
    stats: KeyCacheStats,
}

impl Clone for KeyCacheReader {
    /// A new handle (for another worker) with its own zeroed counters.
    fn clone(&self) -> KeyCacheReader {
        KeyCacheReader { shared: self.shared.clone(), tx: self.tx.clone(), stats: KeyCacheStats::default() }
    }
}

impl KeyCacheReader {
    /// The cached verdict on `key`: the prepared key, its error, or `None` on a miss.
    pub fn get(&mut self, key: &[u8; 32]) -> Option<Result<PublicKey>> {
        let r = self.shared.load().get(key);
        match r {
            Some(_) => self.stats.hits += 1,
            None => self.stats.misses += 1,
        }
        r
    }

    /// The prepared key; on a miss, prepares it here and offers it to the writer.
    pub fn get_or_prepare(&mut self, key: &[u8; 32]) -> Result<PublicKey> {
        if let Some(r) = self.get(key) {
            return r;
        }
        let r = PublicKey::from_bytes(key);
        match self.tx.try_send((*key, r)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.stats.offers_dropped += 1,
        }
        r
    }

    /// The version of the snapshot readers see now.
    pub fn version(&self) -> u64 {
        self.shared.load().version
    }

    /// This reader's counters.
    pub fn stats(&self) -> &KeyCacheStats {
        &self.stats
    }
}

/// The single writer (management plane side).
pub struct KeyCacheWriter {
    shared: Arc<ArcSwap<KeySnapshot>>,
    young: KeyMap,
    old: Arc<KeyMap>,
    generation_capacity: usize,
    rx: Receiver<([u8; 32], core::result::Result<PublicKey, Error>)>,
    retired: Vec<Arc<KeySnapshot>>,
    version: u64,
    dirty: bool,
}

impl KeyCacheWriter {
    fn add(&mut self, key: [u8; 32], r: core::result::Result<PublicKey, Error>) {
        if self.young.contains_key(&key) || self.old.contains_key(&key) {
            return;
        }
        if self.young.len() >= self.generation_capacity {
            let full = core::mem::replace(&mut self.young, KeyMap::with_capacity(self.generation_capacity));
            self.old = Arc::new(full);
        }
        self.young.insert(key, r);
        self.dirty = true;
    }

    /// Prepares `key` and adds it (e.g. keys known from the chain, ahead of traffic).
    pub fn insert(&mut self, key: &[u8; 32]) -> Result<PublicKey> {
        let r = PublicKey::from_bytes(key);
        self.add(*key, r);
        r
    }

    /// Folds in the workers' offers and, if anything changed, publishes a new
    /// snapshot. Returns the version readers now see.
    pub fn publish(&mut self) -> u64 {
        while let Ok((key, r)) = self.rx.try_recv() {
            self.add(key, r);
        }
        if self.dirty {
            self.version += 1;
            let snapshot = KeySnapshot { young: Arc::new(self.young.clone()), old: self.old.clone(), version: self.version };
            let previous = self.shared.swap(Arc::new(snapshot));
            self.retired.push(previous);
            self.dirty = false;
        }
        reclaim(&mut self.retired);
        self.version
    }

    /// Keys the writer holds (both generations).
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// True when no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaced snapshots some reader still holds.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }
}
