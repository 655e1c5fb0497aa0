//! A deliberately simple reference: one hash map per prefix length, probed from the
//! longest present length down. It shares no code with the table (masking comes
//! from the wire crate), so tests and `lpm-bench lookup` can check one against the
//! other.

use chainroute_wire::{Address, Prefix};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct NaiveLpm {
    by_len: Vec<HashMap<Address, u32>>,
    /// Lengths holding at least one prefix, longest first.
    lens: Vec<u16>,
}

impl Default for NaiveLpm {
    fn default() -> NaiveLpm {
        NaiveLpm::new()
    }
}

impl NaiveLpm {
    pub fn new() -> NaiveLpm {
        NaiveLpm {
            by_len: vec![HashMap::new(); 257],
            lens: Vec::new(),
        }
    }

    pub fn insert(&mut self, p: Prefix, v: u32) -> Option<u32> {
        let old = self.by_len[p.len() as usize].insert(p.addr(), v);
        if !self.lens.contains(&p.len()) {
            self.lens.push(p.len());
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        old
    }

    pub fn remove(&mut self, p: &Prefix) -> Option<u32> {
        let old = self.by_len[p.len() as usize].remove(&p.addr());
        if self.by_len[p.len() as usize].is_empty() {
            self.lens.retain(|&l| l != p.len());
        }
        old
    }

    pub fn get(&self, p: &Prefix) -> Option<u32> {
        self.by_len[p.len() as usize].get(&p.addr()).copied()
    }

    pub fn len(&self) -> usize {
        self.by_len.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    pub fn lookup(&self, key: &Address) -> Option<u32> {
        self.lens
            .iter()
            .find_map(|&l| self.by_len[l as usize].get(&key.masked(l)).copied())
    }
}
