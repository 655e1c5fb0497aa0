//! Quiescent-state-based reclamation (QSBR), the scheme of DPDK's `rte_rcu_qsbr`,
//! liburcu's QSBR flavour and NDN-DPDK's FIB.
//!
//! Readers never write shared state while they look up. Each registered reader owns
//! one cache line holding the last grace-period counter it saw while quiescent (not
//! holding any reference into the table), or `OFFLINE`. A reader reports a quiescent
//! state once per poll loop: one load of the global counter and one store to its
//! own line, no read-modify-write, no fence on x86.
//!
//! The writer unlinks memory, then advances the global counter to `e` and tags the
//! memory with `e`. Once every reader's line shows `e` or more (or `OFFLINE`), no
//! reader can still hold a reference, and the memory is reused. The writer never
//! waits unless it asks to ([`Qsbr::synchronize`]); a stalled reader only delays
//! reuse.
//!
//! Ordering argument (see also the crate docs):
//! 1. The writer's unlinking store precedes its `fetch_add` of the counter (AcqRel).
//! 2. A reader's `quiescent` loads the counter with Acquire: if it reads `e` or
//!    more, the unlink happens-before everything the reader does next, so later
//!    lookups cannot reach the unlinked memory.
//! 3. The reader's lookups before `quiescent` precede (program order) its Release
//!    store of the counter value; the writer's Acquire load of that line reads it,
//!    so those lookups happen-before the writer reuses the memory.
//! 4. Going online is a store followed by loads of table state, racing with the
//!    writer's store-then-load: a store-buffering pattern, so both sides use SeqCst
//!    fences there (online/register and the writer's scan). Online is rare; the
//!    per-loop `quiescent` needs no fence.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Mutex;

/// A reader that holds no reference (offline or unregistered).
pub const OFFLINE: u64 = u64::MAX;

#[repr(align(64))]
struct Line(AtomicU64);

/// The grace-period state shared by one writer and its readers.
pub struct Qsbr {
    /// Grace-period counter; starts at 1 so that 0 never looks quiescent.
    global: AtomicU64,
    readers: Box<[Line]>,
    used: Mutex<Vec<bool>>,
}

impl Qsbr {
    pub fn new(max_readers: usize) -> Qsbr {
        let max_readers = max_readers.max(1);
        Qsbr {
            global: AtomicU64::new(1),
            readers: (0..max_readers)
                .map(|_| Line(AtomicU64::new(OFFLINE)))
                .collect(),
            used: Mutex::new(vec![false; max_readers]),
        }
    }

    /// Takes a free reader slot and puts it online; `None` when all are taken.
    pub fn register(&self) -> Option<usize> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let slot = used.iter().position(|u| !u)?;
        used[slot] = true;
        drop(used);
        self.online(slot);
        Some(slot)
    }

    /// Returns a slot; the reader must hold no reference any more.
    pub fn unregister(&self, slot: usize) {
        self.offline(slot);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used[slot] = false;
    }

    /// The reader holds no reference from here on (it may stop calling `quiescent`).
    #[inline]
    pub fn offline(&self, slot: usize) {
        self.readers[slot].0.store(OFFLINE, Ordering::Release);
    }

    /// The reader may take references again.
    pub fn online(&self, slot: usize) {
        let g = self.global.load(Ordering::SeqCst);
        self.readers[slot].0.store(g, Ordering::SeqCst);
        // Store-buffering with the writer's unlink-then-scan: see point 4 above.
        fence(Ordering::SeqCst);
    }

    /// The reader holds no reference at this instant (call once per poll loop).
    #[inline]
    pub fn quiescent(&self, slot: usize) {
        let g = self.global.load(Ordering::Acquire);
        self.readers[slot].0.store(g, Ordering::Release);
    }

    /// Writer: starts a new grace period after unlinking; returns its number.
    /// Memory unlinked before this call may be reused once `safe(number)` holds.
    pub fn advance(&self) -> u64 {
        self.global.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The newest grace period every online reader has passed through.
    pub fn completed(&self) -> u64 {
        fence(Ordering::SeqCst);
        let mut min = self.global.load(Ordering::Acquire);
        for r in self.readers.iter() {
            let v = r.0.load(Ordering::Acquire);
            if v < min {
                min = v;
            }
        }
        min
    }

    /// Writer: blocks until every online reader has passed grace period `e`.
    pub fn synchronize(&self, e: u64) {
        let mut spins = 0u32;
        while self.completed() < e {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Reader slots in all.
    pub fn capacity(&self) -> usize {
        self.readers.len()
    }

    /// Number of registered readers (diagnostics).
    pub fn readers(&self) -> usize {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|u| **u)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods() {
        let q = Qsbr::new(4);
        assert_eq!(q.completed(), 1);
        let a = q.register().unwrap();
        let e = q.advance();
        assert!(q.completed() < e, "reader has not been quiescent since");
        q.quiescent(a);
        assert!(q.completed() >= e);
        let e = q.advance();
        q.offline(a);
        assert!(
            q.completed() >= e,
            "offline readers do not hold grace periods"
        );
        q.online(a);
        q.synchronize(e);
        q.unregister(a);
        let slots: Vec<_> = (0..4).map(|_| q.register().unwrap()).collect();
        assert!(q.register().is_none());
        assert_eq!(q.readers(), 4);
        for s in slots {
            q.unregister(s);
        }
        assert_eq!(q.readers(), 0);
    }
}
