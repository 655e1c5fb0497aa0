use super::Engine;
use chainroute_lpm::Lpm;
use chainroute_wire::{Address, Prefix};

/// chainroute-lpm, looked up through the writer handle (same kernels as a Reader).
pub struct Chainroute {
    pub lpm: Lpm,
    name: &'static str,
    /// Seconds `publish_snapshot` took (`with_snapshot`).
    pub publish_secs: Option<f64>,
}

impl Chainroute {
    /// The editable trie, as lookups find it while routes change.
    pub fn new(prefixes: &[(Prefix, u32)]) -> Chainroute {
        Chainroute {
            lpm: Lpm::from_prefixes(prefixes.iter().copied()),
            name: "chainroute",
            publish_secs: None,
        }
    }

    /// With its interval snapshot published (`Lpm::publish_snapshot`): what bulk
    /// lookups search while the table does not change. Its memory counts both.
    pub fn with_snapshot(prefixes: &[(Prefix, u32)]) -> Chainroute {
        let mut c = Chainroute::new(prefixes);
        let t0 = std::time::Instant::now();
        c.lpm.publish_snapshot();
        c.publish_secs = Some(t0.elapsed().as_secs_f64());
        c.name = "chainroute-snapshot";
        c
    }

    /// With its snapshot published and then `changes` changes made: half as many
    /// prefixes of /24 and longer, spread over the table, removed and put back.
    /// The answers stay the same; the snapshot has those regions marked and their
    /// keys go to the trie, as after routes change (see `Lpm::publish_snapshot`).
    pub fn with_marked_snapshot(prefixes: &[(Prefix, u32)], changes: usize) -> Chainroute {
        let mut c = Chainroute::with_snapshot(prefixes);
        for (p, v) in crate::table::spread_markable(prefixes, changes / 2) {
            c.lpm.remove(&p);
            c.lpm.insert(p, v);
        }
        assert!(c.lpm.has_snapshot(), "marks, not a withdrawal");
        c.name = "chainroute-snapshot-marked";
        c
    }
}

impl Engine for Chainroute {
    type Key = Address;
    type Out = Option<u32>;

    fn name(&self) -> &'static str {
        self.name
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
