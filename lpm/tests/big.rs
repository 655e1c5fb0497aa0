//! The large correctness check: a table of more than 600,000 prefixes with deep
//! nesting, a default route and /256 host routes, and 200,000+ keys, each answered
//! by every lookup kernel and compared with a naive per-length reference; and the
//! update path on that shape of table, one call at a time and in batches.

mod common;

use chainroute_lpm::{Config, IntervalTable, Lpm, Update};
use chainroute_wire::{Address, Prefix};
use common::Rng;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A cheap hash for the reference's 32-byte keys (debug builds run this test).
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map = HashMap<[u8; 32], u32, BuildHasherDefault<Fx>>;

/// Longest match by probing one hash map per present length, longest first.
struct Reference {
    by_len: Vec<(u16, Map)>,
}

impl Reference {
    fn new(prefixes: &[(Prefix, u32)]) -> Reference {
        let mut m: HashMap<u16, Map> = HashMap::new();
        for (p, v) in prefixes {
            m.entry(p.len()).or_default().insert(p.addr().0, *v);
        }
        let mut by_len: Vec<(u16, Map)> = m.into_iter().collect();
        by_len.sort_by_key(|x| std::cmp::Reverse(x.0));
        Reference { by_len }
    }

    fn lookup(&self, k: &Address) -> Option<u32> {
        self.by_len
            .iter()
            .find_map(|(l, m)| m.get(&k.masked(*l).0).copied())
    }
}

/// About 640,000 prefixes: a default route; IPv6-like allocations /20-/48 under a
/// few hundred /12s with covering aggregates and more-specifics; /96 subnets in
/// clusters; /160 blocks; /256 host routes; and anycast host routes in ::/96.
fn table(rng: &mut Rng) -> Vec<(Prefix, u32)> {
    let mut out: Vec<(Prefix, u32)> = vec![(Prefix::DEFAULT, 1)];
    let mut v = 2u32;
    let mut next = || {
        v += 1;
        v
    };
    let tops: Vec<Prefix> = (0..300)
        .map(|_| Prefix::truncating(rng.inside(&"2000::/3".parse().unwrap()), 12))
        .collect();
    let mut alloc: Vec<Prefix> = Vec::new();
    for _ in 0..180_000 {
        let t = tops[rng.below(tops.len() as u64) as usize];
        let len = [20, 24, 28, 29, 32, 32, 36, 40, 44, 48, 48, 48][rng.below(12) as usize];
        let p = Prefix::truncating(rng.inside(&t), len);
        alloc.push(p);
        out.push((p, next()));
    }
    for _ in 0..20_000 {
        let p = alloc[rng.below(alloc.len() as u64) as usize];
        out.push((
            Prefix::truncating(p.addr(), p.len().saturating_sub(1 + rng.below(8) as u16)),
            next(),
        ));
    }
    for _ in 0..100_000 {
        let p = alloc[rng.below(alloc.len() as u64) as usize];
        let len = (p.len() + 1 + rng.below(24) as u16).min(64);
        out.push((Prefix::truncating(rng.inside(&p), len), next()));
    }
    let mut subnets = Vec::new();
    while subnets.len() < 150_000 {
        let p = alloc[rng.below(alloc.len() as u64) as usize];
        let site = Prefix::truncating(rng.inside(&p), 64 + 8 * rng.below(4) as u16);
        for _ in 0..1 + rng.below(6) {
            let s = Prefix::truncating(rng.inside(&site), 96);
            subnets.push(s);
            out.push((s, next()));
        }
    }
    let mut blocks = Vec::new();
    for _ in 0..40_000 {
        let s = subnets[rng.below(subnets.len() as u64) as usize];
        let b = Prefix::truncating(rng.inside(&s), 160);
        blocks.push(b);
        out.push((b, next()));
    }
    for i in 0..140_000 {
        let parent = if i % 5 == 0 {
            blocks[rng.below(blocks.len() as u64) as usize]
        } else {
            subnets[rng.below(subnets.len() as u64) as usize]
        };
        out.push((Prefix::host(rng.inside(&parent)), next()));
    }
    let anycast = Prefix::truncating(Address::UNSPECIFIED, 96);
    for _ in 0..10_000 {
        out.push((Prefix::host(rng.inside(&anycast)), next()));
    }
    // Duplicates: the last one wins in both the table and the reference.
    let mut seen: HashMap<Prefix, usize> = HashMap::new();
    let mut dedup = Vec::with_capacity(out.len());
    for (p, v) in out {
        match seen.get(&p) {
            Some(&i) => dedup[i] = (p, v),
            None => {
                seen.insert(p, dedup.len());
                dedup.push((p, v));
            }
        }
    }
    dedup
}

#[test]
fn six_hundred_thousand_prefixes_against_the_reference() {
    let mut rng = Rng(2026);
    let prefixes = table(&mut rng);
    assert!(prefixes.len() >= 600_000, "{} prefixes", prefixes.len());
    assert!(
        prefixes.iter().any(|(p, _)| p.len() == 256) && prefixes.iter().any(|(p, _)| p.is_empty())
    );
    let reference = Reference::new(&prefixes);
    let t = Lpm::from_prefixes(prefixes.iter().copied());
    assert_eq!(t.len(), prefixes.len());
    // 210,000 keys: inside random prefixes, on their first address, and random.
    let keys: Vec<Address> = (0..210_000)
        .map(|i| {
            let p = prefixes[rng.below(prefixes.len() as u64) as usize].0;
            match i % 7 {
                0 => p.addr(),
                1 => p.last(),
                2 => {
                    let mut b = [0u8; 32];
                    for c in b.chunks_mut(8) {
                        c.copy_from_slice(&rng.next().to_le_bytes());
                    }
                    Address(b)
                }
                _ => rng.inside(&p),
            }
        })
        .collect();
    let mut bulk = vec![None; keys.len()];
    t.lookup_bulk(&keys, &mut bulk);
    let mut bulk2 = vec![None; keys.len()];
    t.lookup_bulk_avx2(&keys, &mut bulk2);
    // The interval engine, built from the same list.
    let iv = IntervalTable::from_prefixes(prefixes.iter().copied());
    assert_eq!(iv.len(), prefixes.len());
    let mut ibulk = vec![None; keys.len()];
    iv.lookup_bulk(&keys, &mut ibulk);
    let mut bad = 0;
    for (i, k) in keys.iter().enumerate() {
        let want = reference.lookup(k);
        let single = t.lookup(k);
        let isingle = iv.lookup(k);
        if single != want || bulk[i] != want || bulk2[i] != want || isingle != want || ibulk[i] != want {
            bad += 1;
            if bad < 5 {
                eprintln!(
                    "{k}: want {want:?}, single {single:?}, bulk {:?}, avx2 bulk {:?}, interval {isingle:?} / bulk {:?}",
                    bulk[i], bulk2[i], ibulk[i]
                );
            }
        }
    }
    assert_eq!(bad, 0, "{bad} of {} keys answered wrongly", keys.len());
    let m = t.memory();
    eprintln!(
        "{} prefixes: {:.1} bytes per prefix ({m:?})",
        t.len(),
        m.total() as f64 / t.len() as f64
    );
    eprintln!(
        "interval engine: {} tables, {} intervals, {:.1} bytes per prefix",
        iv.tables(),
        iv.intervals(),
        iv.memory_bytes() as f64 / iv.len() as f64
    );
}

#[test]
fn dense_and_sparse_layouts_agree() {
    // The same table without DENSE16 nodes must answer the same.
    let mut rng = Rng(7);
    let mut prefixes = table(&mut rng);
    prefixes.truncate(40_000);
    let a = Lpm::from_prefixes_with_config(
        prefixes.iter().copied(),
        Config {
            dense_min_pieces: 24,
            ..Default::default()
        },
    );
    let b = Lpm::from_prefixes_with_config(
        prefixes.iter().copied(),
        Config {
            dense_min_pieces: usize::MAX,
            ..Default::default()
        },
    );
    assert!(
        a.census()[8] > 0 && b.census()[8] == 0,
        "DENSE16 nodes in one layout only"
    );
    let reference = Reference::new(&prefixes);
    for _ in 0..30_000 {
        let p = prefixes[rng.below(prefixes.len() as u64) as usize].0;
        let k = rng.inside(&p);
        let want = reference.lookup(&k);
        assert_eq!(a.lookup(&k), want, "{k}");
        assert_eq!(b.lookup(&k), want, "{k}");
    }
}

#[test]
fn updates_on_the_big_table_against_the_reference() {
    // The update path on a realistic shape: removes of present prefixes and inserts
    // of new ones 0-8 bits inside a present one, one call each and in batches
    // (`apply` warms the batch's paths first), then the table is checked and
    // answers keys in and around every prefix touched as a rebuilt reference does.
    let mut rng = Rng(5);
    let mut prefixes = table(&mut rng);
    prefixes.truncate(300_000);
    let mut t = Lpm::from_prefixes(prefixes.iter().copied());
    let mut present: HashMap<Prefix, u32> = prefixes.iter().copied().collect();
    let mut list: Vec<Prefix> = prefixes.iter().map(|x| x.0).collect();
    let mut touched: Vec<Prefix> = Vec::new();
    let mut batch: Vec<Update> = Vec::new();
    for i in 0..40_000u32 {
        // The first half one call per update (checking what each returns), the
        // rest in batches of 64.
        let one_by_one = i < 20_000;
        let p = if i % 2 == 0 {
            let p = list.swap_remove(rng.below(list.len() as u64) as usize);
            let old = present.remove(&p);
            match one_by_one {
                true => assert_eq!(t.remove(&p), old, "remove {p}"),
                false => batch.push(Update::Remove(p)),
            }
            p
        } else {
            let parent = list[rng.below(list.len() as u64) as usize];
            let len = (parent.len() + rng.below(9) as u16).min(256);
            let p = Prefix::new(rng.inside(&parent).masked(len), len).unwrap();
            let old = present.insert(p, i);
            if old.is_none() {
                list.push(p);
            }
            match one_by_one {
                true => assert_eq!(t.insert(p, i), old, "insert {p}"),
                false => batch.push(Update::Insert(p, i)),
            }
            p
        };
        touched.push(p);
        if batch.len() == 64 {
            t.apply(&batch);
            batch.clear();
        }
    }
    t.apply(&batch);
    t.check().unwrap();
    assert_eq!(t.len(), present.len());
    let now: Vec<(Prefix, u32)> = present.into_iter().collect();
    let reference = Reference::new(&now);
    let mut bad = 0;
    for p in &touched {
        for k in [p.addr(), p.last(), rng.inside(p)] {
            let want = reference.lookup(&k);
            if t.lookup(&k) != want {
                bad += 1;
                if bad < 5 {
                    eprintln!("{k} (around {p}): want {want:?}, got {:?}", t.lookup(&k));
                }
            }
        }
    }
    assert_eq!(
        bad, 0,
        "{bad} keys around updated prefixes answered wrongly"
    );
}
