//! Property tests: any sequence of inserts and removes leaves a table that answers
//! every key like the naive reference, through every lookup kernel.

use chainroute_lpm::{Config, IntervalTable, Lpm, NaiveLpm};
use chainroute_wire::{Address, Prefix};
use proptest::prelude::*;

/// A few base addresses, so that random prefixes nest and share paths.
const BASES: [[u8; 32]; 4] = [[0x20; 32], [0x2a; 32], [0; 32], [0xff; 32]];

fn prefix() -> impl Strategy<Value = Prefix> {
    let len = prop_oneof![
        0u16..=24,
        25u16..=64,
        65u16..=256,
        Just(96u16),
        Just(128u16),
        Just(160u16),
        Just(256u16)
    ];
    (0usize..BASES.len(), any::<[u8; 32]>(), len, 0u16..=256).prop_map(|(b, rnd, len, keep)| {
        let mut a = rnd;
        for i in 0..keep as usize {
            let m = 0x80u8 >> (i % 8);
            a[i / 8] = (a[i / 8] & !m) | (BASES[b][i / 8] & m);
        }
        Prefix::truncating(Address(a), len)
    })
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Prefix, u32),
    Remove(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (prefix(), prop_oneof![0u32..64, Just(u32::MAX), (1u32 << 30)..u32::MAX]).prop_map(|(p, v)| Op::Insert(p, v)),
            1 => any::<usize>().prop_map(Op::Remove),
        ],
        1..160,
    )
}

/// Keys that probe every prefix: its first and last address, a neighbour, and random.
fn keys(prefixes: &[Prefix], extra: &[[u8; 32]]) -> Vec<Address> {
    let mut k = Vec::new();
    for p in prefixes {
        k.push(p.addr());
        k.push(p.last());
        k.push(p.last().wrapping_next());
    }
    k.extend(extra.iter().map(|b| Address(*b)));
    k
}

fn run(ops: &[Op], extra: &[[u8; 32]], cfg: Config) -> Result<(), TestCaseError> {
    let mut t = Lpm::with_config(cfg);
    let mut n = NaiveLpm::new();
    let mut present: Vec<Prefix> = Vec::new();
    for op in ops {
        match op {
            Op::Insert(p, v) => {
                prop_assert_eq!(t.insert(*p, *v), n.insert(*p, *v));
                present.push(*p);
            }
            Op::Remove(i) if !present.is_empty() => {
                let p = present.swap_remove(i % present.len());
                prop_assert_eq!(t.remove(&p), n.remove(&p));
            }
            Op::Remove(_) => {}
        }
    }
    prop_assert_eq!(t.len(), n.len());
    if let Err(e) = t.check() {
        return Err(TestCaseError::fail(e));
    }
    let ks = keys(&present, extra);
    let mut bulk = vec![None; ks.len()];
    t.lookup_bulk(&ks, &mut bulk);
    let mut bulk2 = vec![None; ks.len()];
    t.lookup_bulk_portable(&ks, &mut bulk2);
    for (i, k) in ks.iter().enumerate() {
        let want = n.lookup(k);
        prop_assert_eq!(t.lookup(k), want, "key {}", k);
        prop_assert_eq!(t.lookup_portable(k), want, "portable, key {}", k);
        prop_assert_eq!(bulk[i], want, "bulk, key {}", k);
        prop_assert_eq!(bulk2[i], want, "portable bulk, key {}", k);
    }
    for p in &present {
        prop_assert_eq!(t.get(p), n.get(p));
    }
    // The bulk builder makes an equivalent table.
    let b = Lpm::from_prefixes_with_config(t.iter(), cfg);
    for k in &ks {
        prop_assert_eq!(b.lookup(k), n.lookup(k), "rebuilt, key {}", k);
    }
    // So does the interval engine, through each of its kernels.
    let iv = IntervalTable::from_prefixes(t.iter());
    prop_assert_eq!(iv.len(), n.len());
    iv.lookup_bulk(&ks, &mut bulk);
    iv.lookup_bulk_portable(&ks, &mut bulk2);
    for (i, k) in ks.iter().enumerate() {
        let want = n.lookup(k);
        prop_assert_eq!(iv.lookup(k), want, "interval, key {}", k);
        prop_assert_eq!(iv.lookup_portable(k), want, "interval portable, key {}", k);
        prop_assert_eq!(bulk[i], want, "interval bulk, key {}", k);
        prop_assert_eq!(bulk2[i], want, "interval portable bulk, key {}", k);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn updates_match_naive(ops in ops(), extra in prop::collection::vec(any::<[u8; 32]>(), 0..16)) {
        run(&ops, &extra, Config::default())?;
    }

    #[test]
    fn updates_match_naive_with_dense_nodes(ops in ops(), extra in prop::collection::vec(any::<[u8; 32]>(), 0..16)) {
        run(&ops, &extra, Config { dense_min_pieces: 4, ..Config::default() })?;
    }

    #[test]
    fn lookups_never_panic_on_any_key(key in any::<[u8; 32]>(), ops in ops()) {
        let mut t = Lpm::new();
        for op in &ops {
            if let Op::Insert(p, v) = op {
                t.insert(*p, *v);
            }
        }
        let k = Address(key);
        let mut out = [None; 1];
        t.lookup_bulk(&[k], &mut out);
        prop_assert_eq!(out[0], t.lookup(&k));
    }
}
