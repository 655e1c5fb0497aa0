use super::Engine;
use chainroute_wire::{Address, Prefix};
use prefix_trie::PrefixMap;

/// The `prefix-trie` crate's `PrefixMap` over `(u128, u8)` prefixes (a TreeBitMap
/// trie); holds prefixes up to /128 and looks up the top 128 bits of a key.
pub struct PrefixTrie {
    map: PrefixMap<(u128, u8), u32>,
}

impl PrefixTrie {
    /// Takes the prefixes of length <= 128 and skips the rest.
    pub fn new(prefixes: &[(Prefix, u32)]) -> PrefixTrie {
        let mut map = PrefixMap::new();
        for (p, v) in prefixes.iter().filter(|(p, _)| p.len() <= 128) {
            map.insert((top(&p.addr()), p.len() as u8), *v);
        }
        PrefixTrie { map }
    }
}

fn top(a: &Address) -> u128 {
    u128::from_be_bytes(a.0[..16].try_into().expect("16 bytes"))
}

impl Engine for PrefixTrie {
    type Key = u128;
    type Out = Option<u32>;

    fn name(&self) -> &'static str {
        "prefix-trie"
    }

    fn key(&self, a: &Address) -> u128 {
        top(a)
    }

    fn decode(&self, o: Option<u32>) -> Option<u32> {
        o
    }

    #[inline]
    fn lookup(&self, k: &u128) -> Option<u32> {
        self.map.get_lpm(&(*k, 128)).map(|(_, v)| *v)
    }

    fn lookup_bulk(&self, keys: &[u128], out: &mut [Option<u32>]) {
        for (k, o) in keys.iter().zip(out.iter_mut()) {
            *o = self.lookup(k);
        }
    }

    fn bytes(&self) -> usize {
        self.map.mem_size()
    }

    fn native_bulk(&self) -> bool {
        false
    }
}
