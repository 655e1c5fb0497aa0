//! sig-bench: signature verification rates on one core.
//!
//! Ed25519 over 112-byte BIND messages (the exact `signed_message()` of the wire
//! crate), each signed by its own device key (256 distinct keys, so batches get no
//! help from shared keys): chainroute's single verify, batches of 1..256 with
//! chainroute's [`BatchVerifier`] (clean, and with one bad signature that must be
//! named exactly), ring's single verify, and secp256k1 public-key recovery
//! (k256, plus the keccak of the address). Keys are prepared (decompressed and
//! checked) ahead, as the dataplane's caches hold them.
//!
//! Usage: `sig-bench [--json] [--quick]`. Each rate is per CPU-second of the
//! benchmark thread (CLOCK_THREAD_CPUTIME_ID, so time given to other processes on
//! a shared machine does not count), best of 7 runs of 0.3 s (3 of 0.12 s with --quick).

use std::hint::black_box;
use std::time::Duration;

use chainroute_crypto::wallet::{recover_hash, WalletKey};
use chainroute_crypto::{verify, BatchVerifier, DeviceKey, PublicKey};
use chainroute_wire::ext::{next_header, BindRepr};
use chainroute_wire::{Address, Wallet};
use chainroute_perf::stats::median;

const KEYS: usize = 256;
const SIZES: [usize; 7] = [1, 4, 16, 32, 64, 128, 256];

struct Bench {
    target: Duration,
    rounds: usize,
}

/// CPU time this thread has used: rates are per CPU-second of the benchmark
/// thread, so time the scheduler gives to other processes does not count.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Bench {
    /// Best rate (items per CPU-second) over the rounds; `f` returns the items it did.
    fn rate(&self, mut f: impl FnMut() -> usize) -> f64 {
        f(); // warm up
        let mut best: f64 = 0.0;
        for _ in 0..self.rounds {
            let start = thread_cpu();
            let mut items = 0usize;
            let elapsed = loop {
                items += f();
                let e = thread_cpu() - start;
                if e >= self.target {
                    break e;
                }
            };
            best = best.max(items as f64 / elapsed.as_secs_f64());
        }
        best
    }
}

struct Corpus {
    keys: Vec<DeviceKey>,
    prepared: Vec<PublicKey>,
    msgs: Vec<Vec<u8>>,
    bad_msgs: Vec<Vec<u8>>,
    sigs: Vec<[u8; 64]>,
}

fn corpus() -> Corpus {
    let mut c = Corpus { keys: Vec::new(), prepared: Vec::new(), msgs: Vec::new(), bad_msgs: Vec::new(), sigs: Vec::new() };
    for i in 0..KEYS {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let key = DeviceKey::from_seed(&seed);
        let mut w = [0u8; 20];
        w[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let wallet = Wallet(w);
        let bind = BindRepr {
            next_header: next_header::NO_NEXT,
            wallet,
            unicast: Address::unicast(&Address([0x20; 32]), wallet),
            expiry: 1_900_000_000,
            sequence: i as u64,
            device_key: key.public().to_bytes(),
            signature: [0; 64],
        };
        let msg = bind.signed_message().to_vec();
        let mut bad = msg.clone();
        bad[60] ^= 0x01;
        c.sigs.push(key.sign(&msg));
        c.prepared.push(PublicKey::from_bytes(key.public().as_bytes()).expect("honest key"));
        c.msgs.push(msg);
        c.bad_msgs.push(bad);
        c.keys.push(key);
    }
    c
}

struct BatchRow {
    size: usize,
    clean: f64,
    one_bad: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(a) = args.iter().find(|a| *a != "--json" && *a != "--quick") {
        eprintln!("sig-bench: unknown argument {a}\nusage: sig-bench [--json] [--quick]");
        std::process::exit(2);
    }
    let bench = if quick { Bench { target: Duration::from_millis(120), rounds: 3 } } else { Bench { target: Duration::from_millis(300), rounds: 7 } };
    let c = corpus();

    // Single verify, chainroute rules.
    let mut i = 0usize;
    let single = bench.rate(|| {
        let j = i % KEYS;
        i += 1;
        verify(&c.prepared[j], &c.msgs[j], &c.sigs[j]).expect("valid signature");
        1
    });

    // Reference single verifies: ed25519-dalek verify_strict and ring.
    let dalek_keys: Vec<ed25519_dalek::VerifyingKey> = c.prepared.iter().map(|k| k.to_dalek()).collect();
    let dalek_sigs: Vec<ed25519_dalek::Signature> = c.sigs.iter().map(ed25519_dalek::Signature::from_bytes).collect();
    let mut i = 0usize;
    let dalek_single = bench.rate(|| {
        let j = i % KEYS;
        i += 1;
        dalek_keys[j].verify_strict(&c.msgs[j], &dalek_sigs[j]).expect("valid signature");
        1
    });
    let mut i = 0usize;
    let ring_single = bench.rate(|| {
        let j = i % KEYS;
        i += 1;
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, c.keys[j].public().as_bytes());
        key.verify(&c.msgs[j], &c.sigs[j]).expect("valid signature");
        1
    });

    // Key preparation (decompression + small-order and subgroup checks): what a
    // cache miss costs.
    let mut i = 0usize;
    let prepare = bench.rate(|| {
        let j = i % KEYS;
        i += 1;
        black_box(PublicKey::from_bytes(c.keys[j].public().as_bytes()).expect("honest key"));
        1
    });

    // secp256k1 recovery (ecrecover + keccak of the address).
    let wallets: Vec<WalletKey> = (1..=64u8).map(|i| WalletKey::from_bytes(&[i; 32]).expect("valid secret")).collect();
    let hashes: Vec<[u8; 32]> = (0..64u8).map(|i| chainroute_wire::keccak256(&[i])).collect();
    let secp_sigs: Vec<[u8; 65]> = wallets.iter().zip(&hashes).map(|(w, h)| w.sign_hash(h).expect("sign")).collect();
    let mut i = 0usize;
    let ecrecover = bench.rate(|| {
        let j = i % 64;
        i += 1;
        let w = recover_hash(&hashes[j], &secp_sigs[j]).expect("recovers");
        debug_assert_eq!(w, wallets[j].wallet());
        black_box(w);
        1
    });

    // Batches: clean, and with one bad signature at a moving position.
    let mut verifier = BatchVerifier::new().expect("OS random");
    let mut rows = Vec::new();
    for &size in &SIZES {
        let mut offset = 0usize;
        let clean = bench.rate(|| {
            verifier.clear();
            for j in 0..size {
                let k = (offset + j) % KEYS;
                verifier.push(&c.prepared[k], &c.msgs[k], &c.sigs[k]);
            }
            offset = (offset + 1) % KEYS;
            assert!(verifier.verify().iter().all(|r| r.is_ok()), "clean batch failed");
            size
        });
        let mut offset = 0usize;
        let mut round = 0usize;
        let one_bad = bench.rate(|| {
            let bad = (round * 7919) % size;
            round += 1;
            verifier.clear();
            for j in 0..size {
                let k = (offset + j) % KEYS;
                let msg = if j == bad { &c.bad_msgs[k] } else { &c.msgs[k] };
                verifier.push(&c.prepared[k], msg, &c.sigs[k]);
            }
            offset = (offset + 1) % KEYS;
            let results = verifier.verify();
            for (j, r) in results.iter().enumerate() {
                assert_eq!(r.is_err(), j == bad, "batch of {size}: item {j} misjudged (bad one is {bad})");
            }
            size
        });
        rows.push(BatchRow { size, clean, one_bad });
    }

    // Paired ratios at 64, robust to slow changes in machine load: single and
    // batch (and clean and one-bad) measured back to back, 9 times; the median.
    let pair = Bench { target: Duration::from_millis(if quick { 40 } else { 120 }), rounds: 1 };
    let mut i = 0usize;
    let mut single_fn = || {
        let j = i % KEYS;
        i += 1;
        verify(&c.prepared[j], &c.msgs[j], &c.sigs[j]).expect("valid signature");
        1
    };
    let mut offset = 0usize;
    let mut batch64 = |bad: Option<usize>| {
        verifier.clear();
        for j in 0..64 {
            let k = (offset + j) % KEYS;
            let msg = if Some(j) == bad { &c.bad_msgs[k] } else { &c.msgs[k] };
            verifier.push(&c.prepared[k], msg, &c.sigs[k]);
        }
        offset = (offset + 1) % KEYS;
        for (j, r) in verifier.verify().iter().enumerate() {
            assert_eq!(r.is_err(), Some(j) == bad);
        }
        64
    };
    let (mut speedups, mut bad_costs) = (Vec::new(), Vec::new());
    for round in 0..9 {
        let single_rate = pair.rate(&mut single_fn);
        let clean_rate = pair.rate(|| batch64(None));
        let bad = Some((round * 13 + 5) % 64);
        let bad_rate = pair.rate(|| batch64(bad));
        speedups.push(clean_rate / single_rate);
        bad_costs.push(clean_rate / bad_rate);
    }
    let paired_speedup = median(&speedups);
    let paired_bad_cost = median(&bad_costs);

    // A burst from few senders: 64 items by 8 keys share 8 key terms.
    let shared_sigs: Vec<[u8; 64]> = (0..KEYS).map(|j| c.keys[j % 8].sign(&c.msgs[j])).collect();
    let mut offset = 0usize;
    let shared64 = bench.rate(|| {
        verifier.clear();
        for j in 0..64 {
            let k = (offset + j) % KEYS;
            verifier.push(&c.prepared[k % 8], &c.msgs[k], &shared_sigs[k]);
        }
        offset = (offset + 8) % KEYS;
        assert!(verifier.verify().iter().all(|r| r.is_ok()), "shared-key batch failed");
        64
    });

    // ed25519-dalek's own verify_batch at 64, for reference (it skips the
    // weak-key test and re-hashes on every call).
    let mut offset = 0usize;
    let dalek_batch64 = bench.rate(|| {
        let idx: Vec<usize> = (0..64).map(|j| (offset + j) % KEYS).collect();
        offset = (offset + 1) % KEYS;
        let msgs: Vec<&[u8]> = idx.iter().map(|&k| &c.msgs[k][..]).collect();
        let sigs: Vec<ed25519_dalek::Signature> = idx.iter().map(|&k| dalek_sigs[k]).collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> = idx.iter().map(|&k| dalek_keys[k]).collect();
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).expect("valid batch");
        64
    });

    if json {
        // Written by hand to keep the documented key order (serde_json's Map sorts keys).
        let batch: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"size\":{},\"verifies_per_sec\":{:.0},\"with_one_bad_verifies_per_sec\":{:.0}}}",
                    r.size, r.clean, r.one_bad
                )
            })
            .collect();
        let out = format!(
            "{{\"single_verify_per_sec\":{single:.0},\"ring_verify_per_sec\":{ring_single:.0},\"ecrecover_per_sec\":{ecrecover:.0},\"batch\":[{}]}}",
            batch.join(",")
        );
        debug_assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
        println!("{out}");
        return;
    }

    let us = |rate: f64| 1e6 / rate;
    println!("sig-bench: Ed25519 over 112-byte BIND messages, {KEYS} distinct prepared keys, one thread,");
    println!("per CPU-second of the thread, best of {} x {} ms per figure\n", bench.rounds, bench.target.as_millis());
    println!("{:<44} {:>12} {:>9}", "", "per second", "us each");
    for (name, rate) in [
        ("single verify (chainroute rules)", single),
        ("single verify (ed25519-dalek verify_strict)", dalek_single),
        ("single verify (ring)", ring_single),
        ("key prepare (decompress + order checks)", prepare),
        ("secp256k1 recovery + address (k256)", ecrecover),
        ("ed25519-dalek verify_batch, 64 (reference)", dalek_batch64),
        ("batch of 64 signed by 8 keys (chainroute)", shared64),
    ] {
        println!("{name:<44} {rate:>12.0} {:>9.2}", us(rate));
    }
    println!(
        "\npaired at 64 (median of 9 back-to-back pairs): batch/single {paired_speedup:.2}x, one-bad/clean cost {paired_bad_cost:.2}x\n"
    );
    println!(
        "{:>5} {:>12} {:>9} {:>9}   {:>14} {:>9} {:>14}",
        "batch", "verifies/s", "us/sig", "x single", "one bad: ver/s", "us/sig", "cost x clean"
    );
    for r in &rows {
        println!(
            "{:>5} {:>12.0} {:>9.2} {:>9.2}   {:>14.0} {:>9.2} {:>14.2}",
            r.size,
            r.clean,
            us(r.clean),
            r.clean / single,
            r.one_bad,
            us(r.one_bad),
            r.clean / r.one_bad
        );
    }
}
