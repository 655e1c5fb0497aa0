use super::Engine;
use chainroute_lpm::Lpm;
use chainroute_wire::{Address, Prefix};

/// chainroute-lpm, looked up through the writer handle (same kernels as a Reader).
pub struct Chainroute {
    pub lpm: Lpm,
}

impl Chainroute {
    pub fn new(prefixes: &[(Prefix, u32)]) -> Chainroute {
        Chainroute {
            lpm: Lpm::from_prefixes(prefixes.iter().copied()),
        }
    }
}

impl Engine for Chainroute {
    type Key = Address;
    type Out = Option<u32>;

    fn name(&self) -> &'static str {
        "chainroute"
    }

    fn key(&self, a: &Address) -> Address {
        *a
    }

    fn decode(&self, o: Option<u32>) -> Option<u32> {
        o
    }

    #[inline]
    fn lookup(&self, k: &Address) -> Option<u32> {
        self.lpm.lookup(k)
    }

    #[inline]
    fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        self.lpm.lookup_bulk(keys, out)
    }

    fn bytes(&self) -> usize {
        self.lpm.memory().total()
    }
}

/// chainroute-lpm with its interval snapshot published (`Lpm::publish_snapshot`):
/// what readers search while the table does not change.
pub struct Snapshot {
    pub lpm: Lpm,
    /// Seconds `publish_snapshot` took (the listing of the trie and the build).
    pub build_secs: f64,
}

impl Snapshot {
    pub fn new(prefixes: &[(Prefix, u32)]) -> Snapshot {
        let mut lpm = Lpm::from_prefixes(prefixes.iter().copied());
        let t0 = std::time::Instant::now();
        lpm.publish_snapshot();
        Snapshot {
            lpm,
            build_secs: t0.elapsed().as_secs_f64(),
        }
    }
}

impl Engine for Snapshot {
    type Key = Address;
    type Out = Option<u32>;

    fn name(&self) -> &'static str {
        "chainroute-snapshot"
    }

    fn key(&self, a: &Address) -> Address {
        *a
    }

    fn decode(&self, o: Option<u32>) -> Option<u32> {
        o
    }

    #[inline]
    fn lookup(&self, k: &Address) -> Option<u32> {
        self.lpm.lookup(k)
    }

    #[inline]
    fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        self.lpm.lookup_bulk(keys, out)
    }

    /// The trie and the snapshot: both are kept (changes go to the trie).
    fn bytes(&self) -> usize {
        self.lpm.memory().total()
    }
}
