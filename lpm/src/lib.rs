//! Lock-free longest-prefix match on 256-bit W3IP addresses: one writer publishes
//! new versions, any number of poll-mode readers look up without locks.
//!
//! (Full design notes: see `README.md` in this crate.)

mod arena;
mod lookup;
pub mod naive;
mod node;
pub mod qsbr;
mod table;

pub use lookup::BATCH;
pub use naive::NaiveLpm;
pub use table::{Config, Error, Handle, Lpm, MemoryStats, Reader, Update};
