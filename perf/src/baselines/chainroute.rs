use super::Engine;
use chainroute_lpm::{IntervalTable, Lpm};
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

/// chainroute-lpm's interval engine (`IntervalTable`): static, rebuilt to change.
pub struct Intervals {
    pub table: IntervalTable,
    /// Seconds the build from the prefix list took.
    pub build_secs: f64,
}

impl Intervals {
    pub fn new(prefixes: &[(Prefix, u32)]) -> Intervals {
        let t0 = std::time::Instant::now();
        let table = IntervalTable::from_prefixes(prefixes.iter().copied());
        Intervals {
            table,
            build_secs: t0.elapsed().as_secs_f64(),
        }
    }
}

impl Engine for Intervals {
    type Key = Address;
    type Out = Option<u32>;

    fn name(&self) -> &'static str {
        "chainroute-intervals"
    }

    fn key(&self, a: &Address) -> Address {
        *a
    }

    fn decode(&self, o: Option<u32>) -> Option<u32> {
        o
    }

    #[inline]
    fn lookup(&self, k: &Address) -> Option<u32> {
        self.table.lookup(k)
    }

    #[inline]
    fn lookup_bulk(&self, keys: &[Address], out: &mut [Option<u32>]) {
        self.table.lookup_bulk(keys, out)
    }

    fn bytes(&self) -> usize {
        self.table.memory_bytes()
    }
}
