//! Helpers shared by the LPM integration tests.
#![allow(dead_code)]

use chainroute_wire::{Address, Prefix};

/// SplitMix64: seeded, reproducible test data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A random address inside `p`.
    pub fn inside(&mut self, p: &Prefix) -> Address {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let pa = p.addr().0;
        for i in 0..p.len() as usize {
            let m = 0x80u8 >> (i % 8);
            b[i / 8] = (b[i / 8] & !m) | (pa[i / 8] & m);
        }
        Address(b)
    }
}
