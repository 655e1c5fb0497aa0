//! Drives the LPM's writer with arbitrary sequences of inserts, removes, replaces
//! and batches, and checks the table against the naive reference: every lookup
//! kernel, `get` and `len` after each batch; at the end also its structure
//! (`Lpm::check`), a bulk build of the same prefixes, and the interval engine
//! (`IntervalTable`) built from them. Now and then the input publishes the
//! interval snapshot; while one is published (the changes after it marking the
//! regions the trie answers) the table is checked after every change.
//!
//! The input decides the prefixes, so they nest: each new prefix may start from one
//! already used and change a few bits near its end. That keeps most of them inside
//! the same nodes, where the edits, node splits, skips and DENSE repaints happen.
#![no_main]

use chainroute_lpm::{Config, IntervalTable, Lpm, NaiveLpm, Update};
use chainroute_wire::{Address, Prefix};
use libfuzzer_sys::fuzz_target;

/// Reads the input a byte at a time; zeros once it is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Two starting addresses far apart (different root slots), for prefixes that do
/// not start from an earlier one.
const BASES: [[u8; 32]; 2] = [[0x20; 32], [0xfe; 32]];

fn prefix(inp: &mut Input, pool: &[Prefix]) -> Prefix {
    let sel = inp.byte();
    let len = match inp.byte() {
        b @ 0..=250 => b as u16,
        251 => 256,
        252 => 128,
        253 => 160,
        254 => 96,
        _ => 255,
    };
    let (mut addr, near) = if sel & 0x80 != 0 && !pool.is_empty() {
        // One of the latest 128, so nests go deep.
        let parent = pool[pool.len() - 1 - (sel & 0x7f) as usize % pool.len().min(128)];
        (parent.addr().0, parent.len())
    } else {
        (BASES[(sel & 1) as usize], 0)
    };
    // Change a byte just below the parent's end or the new prefix's end, so
    // siblings land in the same node.
    let at = if sel & 0x40 != 0 {
        near
    } else {
        len.saturating_sub(8)
    };
    let i = (at as usize / 8).min(31);
    addr[i] ^= inp.byte();
    Prefix::truncating(Address(addr), len)
}

/// Small values (so neighbouring pieces often merge) and now and then one of the
/// values of 2^30 and more, which the table keeps in a side table.
fn value(inp: &mut Input) -> u32 {
    let v = inp.byte();
    if v & 0xe0 == 0xe0 {
        (1 << 30) + (v & 3) as u32
    } else {
        (v & 7) as u32
    }
}

/// Keys around each prefix: its first address, the last, and one just past it.
fn keys(pool: &[Prefix]) -> Vec<Address> {
    let mut keys = Vec::with_capacity(3 * pool.len() + 1);
    keys.push(Address([0; 32]));
    for p in pool {
        keys.extend([p.addr(), p.last(), p.last().wrapping_next()]);
    }
    keys
}

fn compare(t: &Lpm, naive: &NaiveLpm, pool: &[Prefix]) {
    assert_eq!(t.len(), naive.len(), "len");
    for p in pool {
        assert_eq!(t.get(p), naive.get(p), "get {p}");
    }
    let keys = keys(pool);
    let want: Vec<Option<u32>> = keys.iter().map(|k| naive.lookup(k)).collect();
    let reader = t.reader().expect("a reader");
    let mut bulk = vec![None; keys.len()];
    reader.lookup_bulk(&keys, &mut bulk);
    let mut portable = vec![None; keys.len()];
    t.lookup_bulk_portable(&keys, &mut portable);
    let mut avx2 = vec![None; keys.len()];
    t.lookup_bulk_avx2(&keys, &mut avx2);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(t.lookup(k), want[i], "lookup {k}");
        assert_eq!(t.lookup_portable(k), want[i], "portable lookup {k}");
        assert_eq!(bulk[i], want[i], "bulk lookup {k}");
        assert_eq!(portable[i], want[i], "portable bulk lookup {k}");
        assert_eq!(avx2[i], want[i], "avx2 bulk lookup {k}");
    }
    reader.quiescent();
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    // Low thresholds make DENSE nodes out of a few dozen prefixes.
    let dense_min_pieces = 8 + (inp.byte() as usize & 63);
    let cfg = || Config {
        max_readers: 2,
        initial_words: 1 << 15,
        huge_pages: false,
        dense_min_pieces,
    };
    let mut t = Lpm::with_config(cfg());
    let mut naive = NaiveLpm::new();
    let mut pool: Vec<Prefix> = Vec::new();
    let mut batch: Vec<Update> = Vec::new();
    let mut ops = 0;
    while !inp.is_empty() && ops < 400 {
        ops += 1;
        let op = inp.byte();
        if op & 0x60 == 0x60 {
            t.publish_snapshot();
        }
        let p = prefix(&mut inp, &pool);
        if !pool.contains(&p) {
            pool.push(p);
        }
        let u = match op % 5 {
            0 | 1 => Update::Insert(p, value(&mut inp)),
            2 => Update::Remove(p),
            _ => Update::Replace(p, value(&mut inp)),
        };
        let want = match u {
            Update::Insert(p, v) => naive.insert(p, v),
            Update::Remove(p) => naive.remove(&p),
            Update::Replace(p, v) => match naive.get(&p) {
                Some(_) => naive.insert(p, v),
                None => None,
            },
        };
        if op & 0x80 != 0 {
            // Collect into a batch; a batch ends at the first op without this bit.
            batch.push(u);
            continue;
        }
        if !batch.is_empty() {
            batch.push(u);
            t.apply(&batch);
            batch.clear();
            compare(&t, &naive, &pool);
            continue;
        }
        let got = match u {
            Update::Insert(p, v) => t.insert(p, v),
            Update::Remove(p) => t.remove(&p),
            Update::Replace(p, v) => t.replace(&p, v),
        };
        assert_eq!(got, want, "{u:?}");
        if t.has_snapshot() {
            compare(&t, &naive, &pool);
        }
    }
    if !batch.is_empty() {
        t.apply(&batch);
    }
    // The structural check walks all 65,536 root slots: once per input.
    if let Err(e) = t.check() {
        panic!("structure: {e}");
    }
    compare(&t, &naive, &pool);
    let mut listed = t.iter();
    listed.sort_unstable();
    let mut want: Vec<(Prefix, u32)> = pool
        .iter()
        .filter_map(|p| Some((*p, naive.get(p)?)))
        .collect();
    want.sort_unstable();
    assert_eq!(listed, want, "iter");
    // The interval engine, built from the same prefixes, answers the same.
    let iv = IntervalTable::from_prefixes(want.iter().copied());
    assert_eq!(iv.len(), naive.len(), "interval len");
    let keys = keys(&pool);
    let mut bulk = vec![None; keys.len()];
    iv.lookup_bulk(&keys, &mut bulk);
    let mut portable = vec![None; keys.len()];
    iv.lookup_bulk_portable(&keys, &mut portable);
    for (i, k) in keys.iter().enumerate() {
        let want = naive.lookup(k);
        assert_eq!(iv.lookup(k), want, "interval lookup {k}");
        assert_eq!(iv.lookup_portable(k), want, "interval portable lookup {k}");
        assert_eq!(bulk[i], want, "interval bulk lookup {k}");
        assert_eq!(portable[i], want, "interval portable bulk lookup {k}");
    }
    // A bulk build of the same prefixes answers the same.
    let built = Lpm::from_prefixes_with_config(want, cfg());
    compare(&built, &naive, &pool);
});
