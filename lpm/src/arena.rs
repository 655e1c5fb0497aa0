//! The word arena readers walk, and the writer's allocator over it.
//!
//! The arena is a power-of-two slice of `AtomicU64`. Readers index it with
//! `i & mask`, so no index, however wrong, can leave the slice: a lookup over a
//! structure that were ever inconsistent would return a wrong answer, never read
//! out of bounds or panic. On x86-64 a Relaxed or Acquire atomic load is a plain
//! `mov`, so the atomics cost nothing over plain memory.
//!
//! The writer allocates 64-byte-aligned blocks in size classes, never frees a block
//! a reader may still walk (freed blocks wait one QSBR grace period), and grows the
//! arena by copying it into one twice the size, which it then publishes; the old
//! arena is freed after a grace period like any other unlinked memory.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Arena {
    words: Box<[AtomicU64]>,
    mask: usize,
}

impl Arena {
    /// A zeroed arena of `words` words (rounded up to a power of two).
    pub fn new(words: usize) -> Arena {
        let n = words.next_power_of_two();
        Arena { words: (0..n).map(|_| AtomicU64::new(0)).collect(), mask: n - 1 }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.mask + 1
    }

    #[inline(always)]
    fn at(&self, i: usize) -> &AtomicU64 {
        // SAFETY: `words.len() == mask + 1` (a power of two), so `i & mask` is in bounds.
        unsafe { self.words.get_unchecked(i & self.mask) }
    }

    /// Reads node content (immutable once published, or written only by the writer).
    #[inline(always)]
    pub fn get(&self, i: usize) -> u64 {
        self.at(i).load(Ordering::Relaxed)
    }

    /// Reads an outcome word: pairs with the writer's Release store that published
    /// the node it names, so that node's content is visible.
    #[inline(always)]
    pub fn outcome(&self, i: usize) -> u64 {
        self.at(i).load(Ordering::Acquire)
    }

    /// Writer: content of a block no reader can reach yet.
    #[inline(always)]
    pub fn set(&self, i: usize, v: u64) {
        self.at(i).store(v, Ordering::Relaxed)
    }

    /// Writer: a word readers may be reading (publishes what it names).
    #[inline(always)]
    pub fn publish(&self, i: usize, v: u64) {
        self.at(i).store(v, Ordering::Release)
    }

    /// Address of word `i`, for prefetching only.
    #[inline(always)]
    pub fn addr(&self, i: usize) -> *const u64 {
        self.at(i).as_ptr() as *const u64
    }

    /// Writer: a copy of this arena with room for `words` words.
    pub fn grown(&self, words: usize, used: usize) -> Arena {
        let new = Arena::new(words.max(self.len()));
        for i in 0..used.min(self.len()) {
            new.set(i, self.get(i));
        }
        new
    }
}

/// Size classes in words; every class is a multiple of 8 (one 64-byte line).
pub const CLASSES: [usize; 20] =
    [8, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640, 768, 1024];

/// The class index for a block of `words` words.
pub fn class_of(words: usize) -> usize {
    CLASSES.iter().position(|&c| c >= words).expect("block larger than the largest class")
}

/// The writer's free lists and bump pointer (offsets in words).
pub struct Alloc {
    pub bump: usize,
    pub free: [Vec<u32>; CLASSES.len()],
    /// Words in blocks handed out and not yet freed.
    pub live: usize,
}

impl Alloc {
    pub fn new(first: usize) -> Alloc {
        Alloc { bump: first, free: Default::default(), live: 0 }
    }

    /// A block of class `c` from the free lists, or `None` (bump needed).
    pub fn take(&mut self, c: usize) -> Option<usize> {
        let off = self.free[c].pop()? as usize;
        self.live += CLASSES[c];
        Some(off)
    }

    pub fn bump(&mut self, c: usize) -> usize {
        let off = self.bump;
        self.bump += CLASSES[c];
        self.live += CLASSES[c];
        off
    }

    pub fn give_back(&mut self, off: usize, c: usize) {
        self.live -= CLASSES[c];
        self.free[c].push(off as u32);
    }

    /// Words sitting in free lists.
    pub fn free_words(&self) -> usize {
        self.free.iter().zip(CLASSES).map(|(f, c)| f.len() * c).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_indexing_and_growth() {
        let a = Arena::new(1000);
        assert_eq!(a.len(), 1024);
        a.set(5, 42);
        assert_eq!(a.get(5 + 1024), 42, "indices wrap instead of leaving the slice");
        let b = a.grown(4096, 8);
        assert_eq!((b.len(), b.get(5), b.get(1029)), (4096, 42, 0));
        assert!(CLASSES.iter().all(|c| c % 8 == 0));
        assert_eq!(class_of(8), 0);
        assert_eq!(class_of(9), 1);
        assert_eq!(CLASSES[class_of(5 + 256 + 510)], 1024);
    }
}
