//! Readers on other threads look up without locks while one writer changes the
//! table; QSBR grace periods let the writer reuse memory without freeing anything
//! a reader may still hold.

use chainroute_lpm::{Config, Error, Lpm};
use chainroute_wire::{Address, Prefix};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        b
    }
}

/// A prefix in one of 16 shared /16 regions; `churn` picks the half of the region
/// (bit 16) the stable prefixes never use, so churn never changes their answers
/// but does rebuild the nodes their paths go through.
fn prefix(rng: &mut Rng, churn: bool, len: u16) -> Prefix {
    let mut b = rng.bytes();
    b[0] = 0x20;
    b[1] = (rng.next() % 16) as u8;
    b[2] = if churn { b[2] | 0x80 } else { b[2] & 0x7f };
    Prefix::truncating(Address(b), len.max(17))
}

#[test]
fn readers_see_stable_routes_while_the_writer_churns() {
    let mut rng = Rng(0x1234_5678);
    let lens = [24u16, 32, 40, 48, 56, 64, 96, 128, 160, 256];
    let stable: Vec<(Prefix, u32)> = (0..3000)
        .map(|i| (prefix(&mut rng, false, lens[i % lens.len()]), i as u32))
        .collect();
    // Keys: each stable prefix's first address; expected answers from a quiet table.
    let mut t = Lpm::from_prefixes(stable.iter().copied());
    let keys: Vec<Address> = stable.iter().map(|(p, _)| p.addr()).collect();
    let expected: Vec<Option<u32>> = keys.iter().map(|k| t.lookup(k)).collect();
    assert!(expected.iter().all(Option::is_some));

    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let keys = Arc::new(keys);
    let expected = Arc::new(expected);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (h, stop, lookups, keys, expected) = (
                t.handle(),
                stop.clone(),
                lookups.clone(),
                keys.clone(),
                expected.clone(),
            );
            std::thread::spawn(move || {
                let r = h.reader().expect("reader slot");
                let mut out = vec![None; 64];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for (k, e) in keys.chunks(64).zip(expected.chunks(64)) {
                        r.lookup_bulk(k, &mut out);
                        assert_eq!(&out[..k.len()], e, "a stable route changed under a reader");
                        r.quiescent();
                        n += k.len() as u64;
                    }
                    let i = (n as usize / 64) % keys.len();
                    assert_eq!(r.lookup(&keys[i]), expected[i]);
                }
                lookups.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();

    let mut churned: Vec<Prefix> = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut ops = 0;
    while Instant::now() < deadline || ops < 20_000 {
        if churned.is_empty() || rng.next() % 3 != 0 {
            let len = lens[(rng.next() % lens.len() as u64) as usize];
            let p = prefix(&mut rng, true, len);
            t.insert(p, (rng.next() % 1000) as u32);
            churned.push(p);
        } else {
            let i = (rng.next() % churned.len() as u64) as usize;
            t.remove(&churned.swap_remove(i));
        }
        ops += 1;
        if ops % 5000 == 0 {
            t.check().expect("structure");
        }
        // Readers also go through published snapshots, each marked by the
        // changes after it until a /24 or its marks running out withdraw it
        // (freed after a grace period), or the next one replaces it.
        if ops % 1000 == 0 {
            t.publish_snapshot();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader thread");
    }
    assert!(lookups.load(Ordering::Relaxed) > 0);
    // Everything unlinked can be reused once the readers are gone.
    t.synchronize();
    for p in churned {
        t.remove(&p);
    }
    t.synchronize();
    let fresh = Lpm::from_prefixes(stable.iter().copied());
    assert_eq!(t.len(), fresh.len());
    assert!(
        t.memory().nodes <= fresh.memory().nodes * 2,
        "{:?} vs {:?}",
        t.memory(),
        fresh.memory()
    );
}

#[test]
fn a_snapshot_takes_changes_as_marks_until_one_withdraws_it() {
    let mut rng = Rng(99);
    let routes: Vec<(Prefix, u32)> = (0..2000)
        .map(|i| {
            (
                prefix(&mut rng, i % 2 == 0, [20u16, 48, 96, 256][i % 4]),
                i as u32,
            )
        })
        .collect();
    let mut t = Lpm::from_prefixes(routes.iter().copied());
    let r = t.handle().reader().expect("reader slot");
    let keys: Vec<Address> = routes.iter().map(|(p, _)| p.addr()).collect();
    let trie: Vec<Option<u32>> = keys.iter().map(|k| t.lookup(k)).collect();
    assert!(!t.has_snapshot() && t.memory().snapshot == 0);
    let bytes = t.publish_snapshot();
    assert!(t.has_snapshot() && bytes > 0 && t.memory().snapshot == bytes);
    let mut out = vec![None; keys.len()];
    r.lookup_bulk(&keys, &mut out);
    assert_eq!(out, trie, "the snapshot answers as the trie does");
    let mut writer_out = vec![None; keys.len()];
    t.lookup_bulk(&keys, &mut writer_out);
    assert_eq!(writer_out, trie);
    assert!(keys
        .iter()
        .zip(&trie)
        .all(|(k, w)| t.lookup(k) == *w && r.lookup(k) == *w));
    r.quiescent();
    // A change to a /256 is marked and the snapshot stays: the new route is seen
    // at once, by writer and reader.
    let (p, _) = routes[3];
    t.insert(p, 77_777);
    assert!(t.has_snapshot() && t.snapshot_marks() == 1 && t.memory().snapshot == bytes);
    assert_eq!(t.lookup(&p.addr()), Some(77_777));
    r.lookup_bulk(&[p.addr()], &mut out[..1]);
    assert_eq!(out[0], Some(77_777));
    t.lookup_bulk(&[p.addr()], &mut out[..1]);
    assert_eq!(out[0], Some(77_777));
    // A change to a /20 is too wide to mark: it withdraws the snapshot.
    let (q, _) = routes[0];
    t.remove(&q);
    assert!(!t.has_snapshot() && t.memory().snapshot == 0 && t.snapshot_marks() == 0);
    r.lookup_bulk(&[q.addr()], &mut out[..1]);
    assert_eq!(out[0], t.lookup(&q.addr()));
    // Published again, it holds the changes, without marks; the withdrawn one is
    // freed once the reader has passed a quiescent state (offline: this thread is
    // also the writer, which waits for it).
    t.publish_snapshot();
    assert_eq!(t.snapshot_marks(), 0);
    r.lookup_bulk(&[p.addr()], &mut out[..1]);
    assert_eq!(out[0], Some(77_777));
    r.offline();
    t.synchronize();
    t.remove(&p);
    r.lookup_bulk(&[p.addr()], &mut out[..1]);
    assert_eq!(out[0], t.lookup(&p.addr()));
    assert_ne!(out[0], Some(77_777));
}

#[test]
fn a_marked_snapshot_answers_as_the_trie_after_every_change() {
    // Changes of every length class on a published snapshot, checked against the
    // trie over the table's keys and every changed prefix's first and last
    // address; a snapshot withdrawn (a prefix shorter than /24, or its marks used
    // up) is published again.
    let mut rng = Rng(0x5eed);
    let lens = [24u16, 28, 32, 40, 47, 48, 56, 64, 96, 128, 160, 256];
    let routes: Vec<(Prefix, u32)> = (0..3000)
        .map(|i| (prefix(&mut rng, i % 2 == 0, lens[i % lens.len()]), i as u32))
        .collect();
    let mut t = Lpm::from_prefixes(routes.iter().copied());
    let r = t.handle().reader().expect("reader slot");
    let mut keys: Vec<Address> = routes.iter().map(|(p, _)| p.addr()).collect();
    let mut present: Vec<Prefix> = routes.iter().map(|(p, _)| *p).collect();
    t.publish_snapshot();
    let (mut marked_checks, mut publications) = (0, 1);
    let mut out = Vec::new();
    for step in 0..2000u32 {
        let p = if rng.next() % 3 == 0 {
            let i = (rng.next() % present.len() as u64) as usize;
            let p = present.swap_remove(i);
            t.remove(&p);
            p
        } else {
            let len = match rng.next() % 40 {
                0 => 17,
                n => lens[n as usize % lens.len()],
            };
            let churn = rng.next() % 2 == 0;
            let p = prefix(&mut rng, churn, len);
            t.insert(p, step);
            present.push(p);
            p
        };
        keys.extend([p.addr(), p.last()]);
        if step % 25 == 0 {
            out.resize(keys.len(), None);
            r.lookup_bulk(&keys, &mut out);
            for (k, got) in keys.iter().zip(&out) {
                assert_eq!(*got, t.lookup(k), "{k} after step {step}");
            }
            r.quiescent();
            marked_checks += (t.snapshot_marks() > 0) as u32;
        }
        if !t.has_snapshot() {
            t.publish_snapshot();
            publications += 1;
        }
    }
    assert!(marked_checks >= 40, "checked with marks: {marked_checks}");
    assert!(
        publications >= 5,
        "withdrawn and published again: {publications}"
    );
}

#[test]
fn a_stalled_reader_delays_reuse_but_never_blocks_the_writer() {
    let mut t = Lpm::new();
    let mut rng = Rng(99);
    let r = t.reader().expect("reader");
    // The reader looks up once and then never reports a quiescent state.
    let p = prefix(&mut rng, false, 48);
    t.insert(p, 1);
    assert_eq!(r.lookup(&p.addr()), Some(1));
    for i in 0..2000 {
        t.insert(prefix(&mut rng, true, 64), i);
    }
    let held = t.memory().free;
    assert!(held > 0, "unlinked blocks wait for the stalled reader");
    // Going offline releases them; the next operations reuse them.
    r.offline();
    t.synchronize();
    let before = t.memory().arena_capacity;
    for i in 0..2000 {
        t.insert(prefix(&mut rng, true, 64), i);
    }
    assert_eq!(
        t.memory().arena_capacity,
        before,
        "freed blocks were reused"
    );
    // A reader that comes back online sees the current table.
    assert_eq!(r.lookup(&p.addr()), Some(1));
    r.quiescent();
}

#[test]
fn reader_slots_are_limited_and_returned() {
    let t = Lpm::with_config(Config {
        max_readers: 2,
        ..Default::default()
    });
    let a = t.reader().unwrap();
    let b = t.reader().unwrap();
    assert!(matches!(t.reader(), Err(Error::TooManyReaders(2))));
    drop(a);
    let c = t.reader().unwrap();
    drop((b, c));
    // Readers may outlive the writer: the table stays alive for them.
    let h = t.handle();
    let r = h.reader().unwrap();
    drop(t);
    assert_eq!(r.lookup(&Address::UNSPECIFIED), None);
}

#[test]
fn readers_are_send_handles_are_sync() {
    fn send<T: Send>() {}
    fn sync<T: Sync + Send + Clone>() {}
    send::<chainroute_lpm::Reader>();
    sync::<chainroute_lpm::Handle>();
    send::<Lpm>();
}
