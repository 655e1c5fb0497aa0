//! Memory for large lookup structures, mapped to use transparent huge pages.
//!
//! Lookups touch lines all over tens of megabytes: with 4 KiB pages most of them
//! also miss the TLB and pay a page walk. A 2 MiB-aligned anonymous mapping
//! advised with `MADV_HUGEPAGE` gets 2 MiB pages where the kernel offers them
//! (`transparent_hugepage/enabled` set to `madvise` or `always`, Debian's
//! default being `madvise`), and stays correct with 4 KiB pages where it does not.

use core::ptr::NonNull;

/// Mappings are asked for in, and aligned to, this size (a huge page).
pub(crate) const HUGE: usize = 2 << 20;

/// A zero-filled anonymous mapping of at least `bytes` bytes, 2 MiB-aligned and
/// advised to use transparent huge pages. Unmapped on drop.
#[cfg(target_os = "linux")]
pub(crate) struct Mapping {
    base: *mut libc::c_void,
    len: usize,
    start: NonNull<u8>,
}

// SAFETY: the mapping is owned exclusively by this value; the pointers only name it.
#[cfg(target_os = "linux")]
unsafe impl Send for Mapping {}
// SAFETY: as above; sharing hands out nothing but the start address.
#[cfg(target_os = "linux")]
unsafe impl Sync for Mapping {}

#[cfg(target_os = "linux")]
impl Mapping {
    /// None if the kernel refuses the mapping (the caller falls back to the heap).
    pub(crate) fn huge(bytes: usize) -> Option<Mapping> {
        // Over-allocate by one huge page so a 2 MiB-aligned start fits inside.
        let len = bytes.checked_add(HUGE)?;
        // SAFETY: a fresh private anonymous mapping: no aliasing, zero-filled by the
        // kernel, lazily backed. Failure is checked.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let start = (base as usize).next_multiple_of(HUGE);
        // SAFETY: [start, start + bytes) lies inside the mapping (over-allocated by
        // HUGE); madvise is only advice and cannot make the range invalid.
        unsafe { libc::madvise(start as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE) };
        Some(Mapping {
            base,
            len,
            start: NonNull::new(start as *mut u8)?,
        })
    }

    /// The 2 MiB-aligned start: `bytes` zeroed bytes, valid while `self` lives.
    pub(crate) fn start(&self) -> NonNull<u8> {
        self.start
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; nothing refers to the
        // mapping any more (its owner is being dropped).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// An immutable slice that, from 2 MiB up, lives in a mapping advised to use
/// transparent huge pages (elsewhere, and where mapping fails, on the heap). For
/// `Copy` data built once and then read at random: the snapshot's arrays, and the
/// benchmarks' memory ceiling, which must read the same kind of memory.
pub struct HugeSlice<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    _owner: Owner<T>,
}

enum Owner<T> {
    #[cfg(target_os = "linux")]
    Mapped(#[allow(dead_code)] Mapping),
    Heap(#[allow(dead_code)] Box<[T]>),
}

// SAFETY: a HugeSlice owns its elements (as a Box<[T]> would) and never hands out
// mutable access; the raw pointer only names them.
unsafe impl<T: Copy + Send> Send for HugeSlice<T> {}
// SAFETY: as above: shared access is read-only.
unsafe impl<T: Copy + Sync> Sync for HugeSlice<T> {}

impl<T: Copy> HugeSlice<T> {
    /// `v`'s elements, copied into a mapping from 2 MiB up.
    pub fn from_vec(v: Vec<T>) -> HugeSlice<T> {
        let bytes = std::mem::size_of_val(v.as_slice());
        #[cfg(target_os = "linux")]
        if bytes >= HUGE && std::mem::align_of::<T>() <= HUGE {
            if let Some(m) = Mapping::huge(bytes) {
                let ptr = m.start().cast::<T>();
                // SAFETY: the mapping has room for `bytes` bytes from its start, which is
                // aligned for T (2 MiB >= align_of T); it cannot overlap the vector.
                unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), ptr.as_ptr(), v.len()) };
                return HugeSlice {
                    ptr,
                    len: v.len(),
                    _owner: Owner::Mapped(m),
                };
            }
        }
        let heap = v.into_boxed_slice();
        HugeSlice {
            // A Box<[T]>'s pointer is non-null and aligned, also when empty.
            ptr: NonNull::new(heap.as_ptr() as *mut T).expect("boxed slice pointer"),
            len: heap.len(),
            _owner: Owner::Heap(heap),
        }
    }
}

impl<T: Copy> core::ops::Deref for HugeSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` names `len` initialised elements owned by `_owner` (copied
        // into the mapping, or the boxed slice itself) for as long as `self` lives.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_slices_are_mapped_and_read_back() {
        let big: Vec<u64> = (0..(HUGE / 8 + 3) as u64).collect();
        let s = HugeSlice::from_vec(big.clone());
        assert_eq!(&s[..], &big[..]);
        #[cfg(target_os = "linux")]
        {
            assert!(matches!(s._owner, Owner::Mapped(_)));
            assert_eq!(s.as_ptr() as usize % HUGE, 0, "2 MiB-aligned");
        }
        let small = HugeSlice::from_vec(vec![7u32; 10]);
        assert!(matches!(small._owner, Owner::Heap(_)));
        assert_eq!(&small[..], &[7u32; 10][..]);
        let empty = HugeSlice::<u32>::from_vec(Vec::new());
        assert!(empty.is_empty());
    }
}
