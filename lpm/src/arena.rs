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

use core::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(target_os = "linux")]
use crate::mapping::{Mapping, HUGE};

pub struct Arena {
    words: NonNull<AtomicU64>,
    mask: usize,
    backing: Backing,
    /// Asked for huge pages: kept apart from `backing` because a small first arena
    /// is heap-backed, and the arenas it grows into must still get them.
    huge_pages: bool,
}

enum Backing {
    /// An anonymous mapping asked to use transparent huge pages.
    #[cfg(target_os = "linux")]
    Mapped(#[allow(dead_code)] Mapping),
    Heap(#[allow(dead_code)] Box<[AtomicU64]>),
}

// SAFETY: the arena is a slice of atomics (Sync) that it owns exclusively; the raw
// pointers only name that allocation.
unsafe impl Send for Arena {}
// SAFETY: as above; all access goes through `&AtomicU64`.
unsafe impl Sync for Arena {}

impl Arena {
    /// A zeroed arena of `words` words (rounded up to a power of two). With
    /// `huge_pages`, large arenas are mapped 2 MiB-aligned and advised to use
    /// transparent huge pages: lookups touch lines all over the arena, and 4 KiB
    /// pages would add a TLB miss (a page walk) to most of them.
    pub fn new(words: usize, huge_pages: bool) -> Arena {
        let n = words.next_power_of_two().max(8);
        #[cfg(target_os = "linux")]
        if huge_pages && n * 8 >= HUGE {
            if let Some(a) = Arena::mapped(n) {
                return a;
            }
        }
        let heap: Box<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let words = NonNull::from(&heap[0]);
        Arena {
            words,
            mask: n - 1,
            backing: Backing::Heap(heap),
            huge_pages,
        }
    }

    #[cfg(target_os = "linux")]
    fn mapped(n: usize) -> Option<Arena> {
        let m = Mapping::huge(n * 8)?;
        // Zeroed memory is a valid [AtomicU64] (same layout as u64), and the start
        // (2 MiB-aligned) is aligned for it.
        let words = m.start().cast::<AtomicU64>();
        Some(Arena {
            words,
            mask: n - 1,
            backing: Backing::Mapped(m),
            huge_pages: true,
        })
    }

    #[inline(always)]
    fn slice(&self) -> &[AtomicU64] {
        // SAFETY: `words` points to `mask + 1` initialised (zeroed or written) atomics
        // owned by this arena for its whole life, suitably aligned.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr(), self.mask + 1) }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.mask + 1
    }

    #[inline(always)]
    fn at(&self, i: usize) -> &AtomicU64 {
        // SAFETY: the slice has `mask + 1` words (a power of two), so `i & mask` is in bounds.
        unsafe { self.slice().get_unchecked(i & self.mask) }
    }

    /// The 64-byte line holding word `i` (a node's first line, read as a unit).
    #[inline(always)]
    pub fn line(&self, i: usize) -> &[AtomicU64; 8] {
        let base = i & self.mask & !7;
        // SAFETY: the slice has `mask + 1` words, a power of two >= 8, so a base that
        // is a multiple of 8 and at most `mask` has 8 words from it in bounds.
        unsafe { &*(self.slice().as_ptr().add(base) as *const [AtomicU64; 8]) }
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

    /// Whether this arena's memory is an anonymous mapping advised to use THP.
    pub fn is_mapped(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Backing::Mapped(..) = self.backing {
            return true;
        }
        false
    }

    /// Address of word `i`, for prefetching only.
    #[inline(always)]
    pub fn addr(&self, i: usize) -> *const u64 {
        self.at(i).as_ptr() as *const u64
    }

    /// Writer: a copy of this arena with room for `words` words.
    pub fn grown(&self, words: usize, used: usize) -> Arena {
        let new = Arena::new(words.max(self.len()), self.huge_pages);
        for i in 0..used.min(self.len()) {
            new.set(i, self.get(i));
        }
        new
    }
}

/// Size classes in words: half a line (SKIP4 nodes, carved in pairs from one
/// line), then multiples of a 64-byte line. Nodes other than DENSE ones are at
/// most 134 words; the larger classes serve DENSE nodes and the big-value table.
pub const CLASSES: [usize; 40] = classes();

const fn classes() -> [usize; 40] {
    let small = [
        4, 8, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640, 768,
        1024,
    ];
    let mut t = [0usize; 40];
    let mut i = 0;
    while i < 21 {
        t[i] = small[i];
        i += 1;
    }
    while i < 40 {
        t[i] = 1024 << (i - 20);
        i += 1;
    }
    t
}

/// The class index for a block of `words` words.
pub fn class_of(words: usize) -> usize {
    CLASSES
        .iter()
        .position(|&c| c >= words)
        .expect("block larger than the largest class")
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
        Alloc {
            bump: first,
            free: core::array::from_fn(|_| Vec::new()),
            live: 0,
        }
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
        self.free
            .iter()
            .zip(CLASSES)
            .map(|(f, c)| f.len() * c)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_indexing_and_growth() {
        let a = Arena::new(1000, false);
        assert_eq!(a.len(), 1024);
        a.set(5, 42);
        assert_eq!(
            a.get(5 + 1024),
            42,
            "indices wrap instead of leaving the slice"
        );
        let b = a.grown(4096, 8);
        assert_eq!((b.len(), b.get(5), b.get(1029)), (4096, 42, 0));
        let h = Arena::new(1 << 20, true);
        h.set(3, 7);
        assert_eq!(h.grown(1 << 21, 8).get(3), 7);
        // A small first arena lives on the heap; what it grows into is mapped for THP.
        let small = Arena::new(1000, true);
        assert!(!small.is_mapped());
        #[cfg(target_os = "linux")]
        assert!(
            small.grown(1 << 20, 8).is_mapped(),
            "growth keeps the huge-page request"
        );
        assert!(CLASSES[1..].iter().all(|c| c % 8 == 0));
        assert_eq!(class_of(4), 0);
        assert_eq!(class_of(8), 1);
        assert_eq!(class_of(9), 2);
        assert_eq!(CLASSES[class_of(5 + 256 + 510)], 1024);
        assert_eq!(CLASSES[class_of(3000)], 4096);
    }
}
