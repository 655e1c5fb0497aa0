mod common;

use chainroute_lpm::{Lpm, NaiveLpm, Update};
use chainroute_wire::{Address, Prefix};
use common::Rng;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}
fn a(s: &str) -> Address {
    s.parse().unwrap()
}

#[test]
fn small_cases() {
    let mut t = Lpm::new();
    assert_eq!(t.lookup(&a("2001:db8::1")), None);
    t.insert(p("::/0"), 1);
    t.insert(p("2001:db8::/32"), 2);
    t.insert(p("2001:db8:1::/48"), 3);
    t.insert(p("2001:db8:1::1/256"), 4);
    t.insert(p("2000::/3"), 5);
    t.check().unwrap();
    assert_eq!(t.lookup(&a("2001:db8::1")), Some(2));
    assert_eq!(t.lookup(&a("2001:db8:1::1")), Some(4));
    assert_eq!(t.lookup(&a("2001:db8:1::2")), Some(3));
    assert_eq!(t.lookup(&a("2001:db9::")), Some(5));
    assert_eq!(t.lookup(&a("::1")), Some(1));
    assert_eq!(t.get(&p("2001:db8:1::/48")), Some(3));
    assert_eq!(t.len(), 5);
    assert_eq!(t.remove(&p("2001:db8:1::/48")), Some(3));
    t.check().unwrap();
    assert_eq!(t.lookup(&a("2001:db8:1::2")), Some(2));
    assert_eq!(t.lookup(&a("2001:db8:1::1")), Some(4));
    assert_eq!(t.replace(&p("2001:db8:1::/48"), 9), None);
    assert_eq!(t.replace(&p("2001:db8::/32"), 9), Some(2));
    assert_eq!(t.lookup(&a("2001:db8:1::2")), Some(9));
    assert_eq!(t.remove(&p("::/0")), Some(1));
    assert_eq!(t.lookup(&a("::1")), None);
    let mut all = t.iter();
    all.sort();
    assert_eq!(
        all,
        vec![
            (p("2000::/3"), 5),
            (p("2001:db8::/32"), 9),
            (p("2001:db8:1::1/256"), 4)
        ]
    );
    assert_eq!(
        t.apply(&[
            Update::Remove(p("2000::/3")),
            Update::Insert(p("::1/256"), 7)
        ]),
        2
    );
    assert_eq!(t.lookup(&a("::1")), Some(7));
    assert_eq!(t.len(), 3);
}

fn random_prefix(r: &mut Rng, pool: &[Prefix]) -> Prefix {
    // Mostly nested under earlier prefixes, sometimes fresh; lengths everywhere.
    let len = match r.below(10) {
        0 => r.below(17) as u16,
        1..=4 => 17 + r.below(48) as u16,
        5..=7 => 64 + r.below(193) as u16,
        _ => [96, 128, 160, 256][r.below(4) as usize],
    };
    let mut bytes = [0u8; 32];
    for b in bytes.iter_mut() {
        *b = r.next() as u8;
    }
    if !pool.is_empty() && r.below(3) != 0 {
        let parent = pool[r.below(pool.len() as u64) as usize];
        let keep = parent.len().min(len);
        let pa = parent.addr().0;
        for i in 0..keep as usize {
            let m = 0x80u8 >> (i % 8);
            bytes[i / 8] = (bytes[i / 8] & !m) | (pa[i / 8] & m);
        }
    }
    Prefix::truncating(Address(bytes), len)
}

fn random_key(r: &mut Rng, pool: &[Prefix]) -> Address {
    let mut bytes = [0u8; 32];
    for b in bytes.iter_mut() {
        *b = r.next() as u8;
    }
    if !pool.is_empty() && r.below(5) != 0 {
        let p = pool[r.below(pool.len() as u64) as usize];
        let pa = p.addr().0;
        let exact = r.below(4) == 0;
        for i in 0..256usize {
            let m = 0x80u8 >> (i % 8);
            if i < p.len() as usize {
                bytes[i / 8] = (bytes[i / 8] & !m) | (pa[i / 8] & m);
            } else if exact {
                bytes[i / 8] &= !m;
            }
        }
    }
    Address(bytes)
}

#[test]
fn random_updates_match_naive() {
    random_updates(Lpm::new(), 7);
}

#[test]
fn random_updates_with_dense_nodes() {
    // A low threshold makes crowded regions DENSE in a bulk build; the updates
    // then run through their paths.
    let cfg = chainroute_lpm::Config {
        dense_min_pieces: 24,
        ..Default::default()
    };
    let mut r = Rng(99);
    let mut pool: Vec<Prefix> = Vec::new();
    let mut start = Vec::new();
    for i in 0..3000 {
        let q = random_prefix(&mut r, &pool);
        pool.push(q);
        start.push((q, i));
    }
    let t = Lpm::from_prefixes_with_config(start, cfg);
    t.check().unwrap();
    assert!(t.census()[8] > 0, "no DENSE node was made");
    random_updates(t, 8);
}

fn random_updates(mut t: Lpm, seed: u64) -> usize {
    let mut r = Rng(seed);
    let mut dense_seen = 0;
    let mut n = NaiveLpm::new();
    let mut pool: Vec<Prefix> = Vec::new();
    for (q, v) in t.iter() {
        n.insert(q, v);
        pool.push(q);
    }
    for round in 0..40 {
        for _ in 0..200 {
            if pool.is_empty() || r.below(3) != 0 {
                let q = random_prefix(&mut r, &pool);
                let v = r.next() as u32;
                assert_eq!(t.insert(q, v), n.insert(q, v), "insert {q}");
                pool.push(q);
            } else {
                let i = r.below(pool.len() as u64) as usize;
                let q = pool.swap_remove(i);
                assert_eq!(t.remove(&q), n.remove(&q), "remove {q}");
            }
        }
        t.check().unwrap_or_else(|e| panic!("round {round}: {e}"));
        dense_seen = dense_seen.max(t.census()[8]);
        assert_eq!(t.len(), n.len());
        let keys: Vec<Address> = (0..500).map(|_| random_key(&mut r, &pool)).collect();
        let mut bulk = vec![None; keys.len()];
        t.lookup_bulk(&keys, &mut bulk);
        let mut bulk2 = vec![None; keys.len()];
        t.lookup_bulk_portable(&keys, &mut bulk2);
        let mut bulk3 = vec![None; keys.len()];
        t.lookup_bulk_avx2(&keys, &mut bulk3);
        for (i, k) in keys.iter().enumerate() {
            let want = n.lookup(k);
            assert_eq!(t.lookup(k), want, "round {round} key {k}");
            assert_eq!(t.lookup_portable(k), want, "portable, key {k}");
            assert_eq!(bulk[i], want, "bulk, key {k}");
            assert_eq!(bulk2[i], want, "portable bulk, key {k}");
            assert_eq!(bulk3[i], want, "avx2 bulk, key {k}");
        }
        for q in pool.iter().take(50) {
            assert_eq!(t.get(q), n.get(q), "get {q}");
        }
    }
    // The bulk builder makes an equivalent table.
    let mut all = t.iter();
    let b = Lpm::from_prefixes_with_config(
        all.iter().copied(),
        chainroute_lpm::Config {
            dense_min_pieces: 24,
            ..Default::default()
        },
    );
    b.check().unwrap();
    assert_eq!(b.len(), t.len());
    let mut ball = b.iter();
    all.sort();
    ball.sort();
    assert_eq!(all, ball);
    for _ in 0..2000 {
        let k = random_key(&mut r, &pool);
        assert_eq!(b.lookup(&k), n.lookup(&k));
    }
    // Removing everything leaves an empty structure and no live nodes.
    for q in pool {
        t.remove(&q);
    }
    t.check().unwrap();
    assert!(t.is_empty());
    assert_eq!(t.memory().nodes, 0, "{:?}", t.memory());
    dense_seen
}
