//! The engines `lpm-bench` compares: chainroute-lpm itself, the `prefix-trie` crate,
//! and DPDK's `rte_fib6` (trie) and `rte_lpm6` through `dpdk-sys`.
//!
//! Each engine takes keys in its own format, converted before timing, and writes
//! its own result type, decoded after timing; only the lookup calls are timed.

mod chainroute;
pub mod dpdk;
mod prefixtrie;

pub use chainroute::Chainroute;
pub use prefixtrie::PrefixTrie;

use chainroute_wire::Address;

/// A longest-prefix-match engine under test.
pub trait Engine {
    /// A key as the engine takes it.
    type Key: Copy + Default;
    /// A result as the engine writes it.
    type Out: Copy + Default;

    fn name(&self) -> &'static str;
    fn key(&self, a: &Address) -> Self::Key;
    fn decode(&self, o: Self::Out) -> Option<u32>;
    /// One key at a time, the engine's single-key entry point.
    fn lookup(&self, k: &Self::Key) -> Self::Out;
    /// A batch (the bench passes 64 keys at a time).
    fn lookup_bulk(&self, keys: &[Self::Key], out: &mut [Self::Out]);
    /// Bytes of memory the engine's table takes.
    fn bytes(&self) -> usize;
    /// Whether `lookup_bulk` is a native batched walk (false: a loop of lookups).
    fn native_bulk(&self) -> bool {
        true
    }
}
