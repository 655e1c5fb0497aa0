//! The measurements behind `lpm-bench bench`: lookups/s (single and bulk) for
//! every engine on the <=128-bit part of the table and for chainroute on the whole
//! table, update rate, lookups under continuous updates, and memory per prefix.
//! Benchmarks print numbers; they assert nothing about speed.

use crate::baselines::{dpdk, Chainroute, Engine, PrefixTrie};
use crate::ceiling::{self, Ceiling};
use crate::rng::Rng;
use crate::stats::{median, round3};
use crate::table;
use chainroute_lpm::{Lpm, Update};
use chainroute_wire::{Address, Prefix};
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Keys handed to a bulk call at a time (a dataplane burst).
pub const BURST: usize = 64;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Repetitions of each timed pass; the fastest counts (least disturbed).
    pub rounds: usize,
    /// Updates in the update-rate pass.
    pub update_ops: usize,
    /// Length of each phase of the lookups-under-updates pass.
    pub concurrent: Duration,
    /// A-B-B-A cycles (alone, with the writer, with, alone) of that pass.
    pub concurrent_cycles: usize,
    /// Run the DPDK baselines (needs the EAL).
    pub dpdk: bool,
    /// CPU for the lookup thread, and for the writer in the concurrent pass.
    pub cpus: (usize, usize),
    pub seed: u64,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            rounds: 5,
            update_ops: 200_000,
            concurrent: Duration::from_millis(1000),
            concurrent_cycles: 3,
            dpdk: true,
            cpus: (0, 1),
            seed: 1,
        }
    }
}

/// One engine's figures on one table.
#[derive(Debug, Clone)]
pub struct EngineResult {
    pub name: &'static str,
    pub single: f64,
    pub bulk: f64,
    pub bytes_per_prefix: f64,
    pub native_bulk: bool,
    /// Keys whose answer differs from chainroute's on the same table.
    pub mismatches: usize,
    /// Which implementation the figures are from ("avx512", "scalar", "").
    pub variant: &'static str,
    /// rte_fib6: its scalar lookup's (single, bulk) rates.
    pub scalar: Option<(f64, f64)>,
    /// chainroute's bulk rate over this engine's, per pair of back-to-back passes
    /// (chainroute, then this engine, on the same keys): drift between the two
    /// engines' own measurements cancels out of each pair.
    pub paired_bulk_ratios: Vec<f64>,
    /// chainroute-snapshot's bulk rate over this engine's, paired the same way.
    pub snapshot_paired: Vec<f64>,
    /// Seconds chainroute-snapshot took to publish its snapshot (which it does
    /// again after changes).
    pub publish_secs: Option<f64>,
    /// chainroute-snapshot-marked: the marks its changes left.
    pub snapshot_marks: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct TableResult {
    pub name: &'static str,
    pub prefixes: usize,
    pub engines: Vec<EngineResult>,
    /// Full table: what the memory system allows over the snapshot's size.
    pub ceiling: Option<Ceiling>,
}

impl TableResult {
    /// The `chainroute-snapshot` row's bulk rate (NaN without that row).
    fn snapshot_bulk(&self) -> f64 {
        self.engines
            .iter()
            .find(|e| e.name == "chainroute-snapshot")
            .map_or(f64::NAN, |e| e.bulk)
    }
}

#[derive(Debug, Clone)]
pub struct UpdateResult {
    /// The fastest pass (as for lookups: the least disturbed), one call per update.
    pub single_per_sec: f64,
    /// The fastest pass in batches of 64.
    pub batched_per_sec: f64,
    /// Every pass, in order (the first runs on the freshly built table).
    pub single_passes: Vec<f64>,
    pub batched_passes: Vec<f64>,
    pub lookups_alone: f64,
    pub lookups_under_updates: f64,
    /// Median over the A-B-B-A cycles of (lookups with the writer / alone).
    pub under_over_alone: f64,
    pub cycle_ratios: Vec<f64>,
    pub updates_during: f64,
}

/// Pins the calling thread to one CPU (best effort).
pub fn pin(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it and
    // sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % libc::CPU_SETSIZE as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// CPU time this thread has run, in seconds. Rates are per CPU-second of the
/// measuring thread, so time the thread spends descheduled (the bench machine is
/// shared) does not count against an engine.
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec that we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Lookups per CPU-second of `f`, which performs `n` lookups per call: the best of
/// `rounds` timed calls after one warm-up call.
pub fn rate(n: usize, rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..rounds.max(1) {
        let t = thread_cpu();
        f();
        best = best.min(thread_cpu() - t);
    }
    n as f64 / best
}

/// Times one engine on `keys`; returns its figures and its answers.
pub fn measure<E: Engine>(
    e: &E,
    keys: &[Address],
    prefixes: usize,
    rounds: usize,
) -> (EngineResult, Vec<Option<u32>>) {
    let native: Vec<E::Key> = keys.iter().map(|k| e.key(k)).collect();
    let mut out = vec![E::Out::default(); native.len()];
    let single = rate(native.len(), rounds, || {
        for (k, o) in native.iter().zip(out.iter_mut()) {
            *o = e.lookup(black_box(k));
        }
        black_box(&mut out);
    });
    let bulk = rate(native.len(), rounds, || {
        bulk_pass(e, &native, &mut out);
    });
    let answers = out.iter().map(|o| e.decode(*o)).collect();
    let r = EngineResult {
        name: e.name(),
        single,
        bulk,
        bytes_per_prefix: e.bytes() as f64 / prefixes.max(1) as f64,
        native_bulk: e.native_bulk(),
        mismatches: 0,
        variant: "",
        scalar: None,
        paired_bulk_ratios: Vec::new(),
        snapshot_paired: Vec::new(),
        publish_secs: None,
        snapshot_marks: None,
    };
    (r, answers)
}

/// One bulk pass of `e` over `native` (64-key batches); CPU seconds.
fn bulk_pass<E: Engine>(e: &E, native: &[E::Key], out: &mut [E::Out]) -> f64 {
    let t = thread_cpu();
    for (k, o) in native.chunks(BURST).zip(out.chunks_mut(BURST)) {
        e.lookup_bulk(black_box(k), o);
    }
    black_box(out);
    thread_cpu() - t
}

/// `cr`'s bulk rate over `e`'s in `rounds` pairs of back-to-back passes on the
/// same keys (after a warm-up pass of each).
fn paired_bulk<A: Engine, E: Engine>(cr: &A, e: &E, keys: &[Address], rounds: usize) -> Vec<f64> {
    let ck: Vec<A::Key> = keys.iter().map(|k| cr.key(k)).collect();
    let ek: Vec<E::Key> = keys.iter().map(|k| e.key(k)).collect();
    let mut co = vec![A::Out::default(); ck.len()];
    let mut eo = vec![E::Out::default(); ek.len()];
    bulk_pass(cr, &ck, &mut co);
    bulk_pass(e, &ek, &mut eo);
    (0..rounds.max(1))
        .map(|_| {
            let c = bulk_pass(cr, &ck, &mut co);
            let t = bulk_pass(e, &ek, &mut eo);
            t / c
        })
        .collect()
}

fn count_mismatches(a: &[Option<u32>], b: &[Option<u32>]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// What every engine of a table is measured against: chainroute's trie (its
/// answers are the reference) and, when published, its snapshot.
struct Pairing<'a> {
    cr: &'a Chainroute,
    snap: Option<&'a Chainroute>,
    keys: &'a [Address],
    prefixes: usize,
    rounds: usize,
    reference: &'a [Option<u32>],
}

impl Pairing<'_> {
    /// Measures `e` and pairs its bulk passes with chainroute's (and with the
    /// snapshot's).
    fn baseline<E: Engine>(&self, e: &E) -> EngineResult {
        let (keys, rounds) = (self.keys, self.rounds);
        let (mut r, ans) = measure(e, keys, self.prefixes, rounds);
        r.mismatches = count_mismatches(&ans, self.reference);
        r.paired_bulk_ratios = paired_bulk(self.cr, e, keys, rounds);
        eprint!(
            "  {:<12} {:>8.1} M/s single {:>8.1} M/s bulk; chainroute bulk / this, paired passes: {:.2}x (median of {})",
            r.name,
            r.single / 1e6,
            r.bulk / 1e6,
            median(&r.paired_bulk_ratios),
            r.paired_bulk_ratios.len()
        );
        if let Some(snap) = self.snap {
            r.snapshot_paired = paired_bulk(snap, e, keys, rounds);
            eprint!("; snapshot / this {:.2}x", median(&r.snapshot_paired));
        }
        eprintln!();
        r
    }

    /// Measures chainroute with its snapshot published (`Chainroute::with_snapshot`).
    fn snapshot_row(&self, snap: &Chainroute) -> EngineResult {
        let secs = snap.publish_secs.unwrap_or_default();
        eprint!("  (snapshot published in {secs:.2} s)");
        let mut r = self.baseline(snap);
        r.publish_secs = Some(secs);
        r
    }
}

/// The memory ceiling's longest chain, in lines per key (on the full table the
/// snapshot's average lookup reads one or two lines from beyond the L2 cache,
/// eight in all, and the longest of a 64-key batch four or five: `lpm-bench
/// stats`).
pub const CEILING_LINES: usize = 4;

/// The ceiling's rates, and the snapshot's bulk rate against each.
fn ceiling_text(c: &Ceiling, snapshot_bulk: f64) -> String {
    let rates: Vec<String> = c
        .keys_per_sec
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "{} line{} {:.1} M/s ({:.2}x)",
                i + 1,
                if i == 0 { "" } else { "s" },
                r / 1e6,
                snapshot_bulk / r
            )
        })
        .collect();
    let profile: Vec<String> = c
        .latency_by_size
        .iter()
        .map(|&(b, ns)| format!("{:.1} MB {ns:.0}", b as f64 / 1e6))
        .collect();
    let reach = match ceiling::cache_reach(&c.latency_by_size) {
        Some(b) => format!("the caches reach about {:.1} MB", b as f64 / 1e6),
        None => "no jump between the sizes measured".to_string(),
    };
    format!(
        "memory ceiling over {:.1} MB (the snapshot's size), keys per second by dependent random lines per key, and chainroute-snapshot's bulk rate over each: {}; one chain alone: {:.0} ns per line (by buffer size: {} ns; {reach})",
        c.bytes as f64 / 1e6,
        rates.join(", "),
        c.dependent_line_ns,
        profile.join(", "),
    )
}

/// Changes made after publishing for the `chainroute-snapshot-marked` row.
pub const MARKED_CHANGES: usize = 100;

/// The lookup tables: `le128` (every engine, keys cut to 128 bits) and `full`
/// (chainroute only). Progress goes to stderr.
pub fn lookup_tables(
    prefixes: &[(Prefix, u32)],
    keys: &[Address],
    opts: &BenchOptions,
) -> Vec<TableResult> {
    let small = table::le128(prefixes);
    let keys128 = table::top128(keys);
    let mut le = TableResult {
        name: "le128",
        prefixes: small.len(),
        engines: Vec::new(),
        ceiling: None,
    };

    eprintln!("le128: {} prefixes, {} keys", small.len(), keys128.len());
    let cr = Chainroute::new(&small);
    let (r, reference) = measure(&cr, &keys128, small.len(), opts.rounds);
    eprintln!(
        "  {:<12} {:>8.1} M/s single {:>8.1} M/s bulk",
        r.name,
        r.single / 1e6,
        r.bulk / 1e6
    );
    le.engines.push(r);
    let snap = Chainroute::with_snapshot(&small);
    let mut pairing = Pairing {
        cr: &cr,
        snap: None,
        keys: &keys128,
        prefixes: small.len(),
        rounds: opts.rounds,
        reference: &reference,
    };
    le.engines.push(pairing.snapshot_row(&snap));
    pairing.snap = Some(&snap);

    if opts.dpdk {
        let mem = dpdk::eal_memory_mb(&small);
        match dpdk::start_eal(mem) {
            Ok(()) => {
                eprintln!(
                    "  EAL up (--no-huge, -m {mem}); {} tbl8 groups needed",
                    dpdk::tbl8_groups(&small)
                );
                match dpdk::Fib6::new(&small) {
                    Ok(mut e) => {
                        e.set_vector(false);
                        eprint!("  (scalar)");
                        let scalar = pairing.baseline(&e);
                        let mut r = scalar.clone();
                        if e.set_vector(true) {
                            eprint!("  (AVX-512)");
                            let v = pairing.baseline(&e);
                            if v.bulk > r.bulk {
                                r = v;
                                r.variant = "avx512";
                            }
                        } else {
                            eprintln!("  rte_fib6: no AVX-512 lookup on this CPU or DPDK build");
                        }
                        r.scalar = Some((scalar.single, scalar.bulk));
                        le.engines.push(r);
                    }
                    Err(err) => eprintln!("  rte_fib6 skipped: {err}"),
                }
                match dpdk::Lpm6::new(&small) {
                    Ok(e) => le.engines.push(pairing.baseline(&e)),
                    Err(err) => eprintln!("  rte_lpm6 skipped: {err}"),
                }
            }
            Err(err) => eprintln!("  DPDK baselines skipped: {err}"),
        }
    }

    let pt = PrefixTrie::new(&small);
    le.engines.push(pairing.baseline(&pt));
    drop(pt);
    drop(snap);
    drop(cr);

    eprintln!("full: {} prefixes, {} keys", prefixes.len(), keys.len());
    let cr = Chainroute::new(prefixes);
    let (r, reference) = measure(&cr, keys, prefixes.len(), opts.rounds);
    eprintln!(
        "  {:<12} {:>8.1} M/s single {:>8.1} M/s bulk",
        r.name,
        r.single / 1e6,
        r.bulk / 1e6
    );
    let snap = Chainroute::with_snapshot(prefixes);
    let ir = Pairing {
        cr: &cr,
        snap: None,
        keys,
        prefixes: prefixes.len(),
        rounds: opts.rounds,
        reference: &reference,
    }
    .snapshot_row(&snap);
    // The snapshot after routes changed: paired with the trie and with itself
    // before the changes.
    let marked = Chainroute::with_marked_snapshot(prefixes, MARKED_CHANGES);
    eprint!("  ({} marks)", marked.lpm.snapshot_marks());
    let mut mr = Pairing {
        cr: &cr,
        snap: Some(&snap),
        keys,
        prefixes: prefixes.len(),
        rounds: opts.rounds,
        reference: &reference,
    }
    .baseline(&marked);
    mr.snapshot_marks = Some(marked.lpm.snapshot_marks());
    let c = ceiling::measure(
        snap.lpm.memory().snapshot,
        CEILING_LINES,
        keys.len(),
        opts.rounds,
        opts.seed,
    );
    eprintln!("  {}", ceiling_text(&c, ir.bulk));
    let full = TableResult {
        name: "full",
        prefixes: prefixes.len(),
        engines: vec![r, ir, mr],
        ceiling: Some(c),
    };
    vec![le, full]
}

/// A random insert/delete mix over `prefixes`: alternately removes a present
/// prefix and inserts a new one shaped like the table's (a random prefix's length
/// plus 0-8 bits, inside it). Also returns the ops that undo it (in order), so a
/// long run can replay mix, undo, mix, ... and keep the table realistic.
pub fn update_mix(prefixes: &[(Prefix, u32)], n: usize, seed: u64) -> (Vec<Update>, Vec<Update>) {
    let mut rng = Rng::new(seed ^ 0x7570_6474);
    let mut present: Vec<(Prefix, u32)> = prefixes.to_vec();
    let mut ops = Vec::with_capacity(n);
    let mut undo = Vec::with_capacity(n);
    while ops.len() < n && !present.is_empty() {
        if ops.len() % 2 == 0 {
            let i = rng.below(present.len() as u64) as usize;
            let (p, v) = present.swap_remove(i);
            ops.push(Update::Remove(p));
            undo.push(Update::Insert(p, v));
        } else {
            let parent = prefixes[rng.below(prefixes.len() as u64) as usize].0;
            let len = (parent.len() + rng.below(9) as u16).min(256);
            let p = table::random_inside(&mut rng, &parent, len);
            let v = prefixes[rng.below(prefixes.len() as u64) as usize].1;
            present.push((p, v));
            ops.push(Update::Insert(p, v));
            undo.push(Update::Remove(p));
        }
    }
    undo.reverse();
    (ops, undo)
}

fn apply_one(t: &mut Lpm, u: &Update) {
    match *u {
        Update::Insert(p, v) => {
            t.insert(p, v);
        }
        Update::Remove(p) => {
            t.remove(&p);
        }
        Update::Replace(p, v) => {
            t.replace(&p, v);
        }
    }
}

/// Update rates (one call per update, and batches of 64), each the fastest of
/// `rounds` timed passes over the mix (like the lookup rates; the mix's undo runs
/// untimed between passes, so every pass starts from the same prefixes), then the
/// lookups-under-updates pass: a reader pinned to one CPU does bulk lookups, reporting a
/// quiescent state after every burst, first alone and then while a writer pinned
/// to another CPU applies updates without pause. Rates are per CPU-second of the
/// thread doing the work (the machine is shared).
pub fn updates(prefixes: &[(Prefix, u32)], keys: &[Address], opts: &BenchOptions) -> UpdateResult {
    let (ops, undo) = update_mix(prefixes, opts.update_ops, opts.seed);
    let passes = |batch: usize| -> Vec<f64> {
        let mut t = Lpm::from_prefixes(prefixes.iter().copied());
        let run = |t: &mut Lpm, ops: &[Update]| {
            if batch == 1 {
                ops.iter().for_each(|u| apply_one(t, u));
            } else {
                ops.chunks(batch).for_each(|b| {
                    t.apply(b);
                });
            }
        };
        (0..opts.rounds.max(1))
            .map(|_| {
                let start = thread_cpu();
                run(&mut t, &ops);
                let rate = ops.len() as f64 / (thread_cpu() - start);
                run(&mut t, &undo);
                rate
            })
            .collect()
    };
    let single_passes = passes(1);
    let batched_passes = passes(64);
    let fastest = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (single_per_sec, batched_per_sec) = (fastest(&single_passes), fastest(&batched_passes));
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{:.2}", r / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "updates: {:.2} M/s one by one, {:.2} M/s in batches of 64 (fastest of {} passes: {}; {})",
        single_per_sec / 1e6,
        batched_per_sec / 1e6,
        single_passes.len(),
        list(&single_passes),
        list(&batched_passes)
    );

    let mut t = Lpm::from_prefixes(prefixes.iter().copied());
    let handle = t.handle();
    // The reader asks for the writer (`want`), the writer says when it runs
    // (`writing`); phases go alone, with, with, alone per cycle (A-B-B-A), so drift
    // on a shared machine falls on both alike, and the loss is the median of the
    // cycles' ratios.
    let want = Arc::new(AtomicBool::new(false));
    let writing = Arc::new(AtomicBool::new(false));
    let keys: Arc<Vec<Address>> = Arc::new(keys.to_vec());
    let window = opts.concurrent;
    let cycles = opts.concurrent_cycles.max(1);
    let reader = {
        let (want, writing, keys) = (want.clone(), writing.clone(), keys.clone());
        let cpu = opts.cpus.0;
        std::thread::spawn(move || {
            pin(cpu);
            let r = handle.reader().expect("reader slot");
            let mut out = vec![None; BURST];
            let mut phase = |with_writer: bool| -> f64 {
                want.store(with_writer, Ordering::Release);
                while writing.load(Ordering::Acquire) != with_writer {
                    r.quiescent();
                    std::hint::spin_loop();
                }
                let mut n = 0u64;
                let t0 = thread_cpu();
                'outer: loop {
                    for chunk in keys.chunks(BURST) {
                        r.lookup_bulk(chunk, &mut out);
                        r.quiescent();
                        n += chunk.len() as u64;
                        if n % (BURST as u64 * 256) == 0
                            && thread_cpu() - t0 >= window.as_secs_f64()
                        {
                            break 'outer;
                        }
                    }
                }
                black_box(&out);
                n as f64 / (thread_cpu() - t0)
            };
            let mut runs = Vec::with_capacity(cycles);
            for _ in 0..cycles {
                let a1 = phase(false);
                let b1 = phase(true);
                let b2 = phase(true);
                let a2 = phase(false);
                runs.push(((a1 + a2) / 2.0, (b1 + b2) / 2.0));
            }
            want.store(false, Ordering::Release);
            runs
        })
    };
    // Update without pause whenever the reader asks for it, until it is done.
    pin(opts.cpus.1);
    let cycle: Vec<Update> = ops.iter().chain(undo.iter()).copied().collect();
    let mut busy = 0.0;
    let mut i = 0usize;
    while !reader.is_finished() {
        if !want.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        writing.store(true, Ordering::Release);
        let t0 = thread_cpu();
        while want.load(Ordering::Acquire) {
            apply_one(&mut t, &cycle[i % cycle.len()]);
            i += 1;
        }
        busy += thread_cpu() - t0;
        writing.store(false, Ordering::Release);
    }
    let updates_during = i as f64 / busy.max(1e-9);
    let runs = reader.join().expect("reader thread");
    let ratios: Vec<f64> = runs.iter().map(|(a, b)| b / a).collect();
    let loss = median(&ratios);
    let alone = median(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let under = median(&runs.iter().map(|r| r.1).collect::<Vec<_>>());
    eprintln!(
        "lookups under updates: {:.1} M/s alone, {:.1} M/s with a writer at {:.2} M updates/s ({:+.1} %, median of {} A-B-B-A cycles: {})",
        alone / 1e6,
        under / 1e6,
        updates_during / 1e6,
        (loss - 1.0) * 100.0,
        ratios.len(),
        ratios.iter().map(|r| format!("{:+.1} %", (r - 1.0) * 100.0)).collect::<Vec<_>>().join(", ")
    );
    UpdateResult {
        single_per_sec,
        batched_per_sec,
        single_passes,
        batched_passes,
        lookups_alone: alone,
        lookups_under_updates: under,
        under_over_alone: loss,
        cycle_ratios: ratios,
        updates_during,
    }
}

/// The JSON document of `lpm-bench bench --json`.
pub fn to_json(
    tables: &[TableResult],
    upd: &UpdateResult,
    keys: usize,
    header: &[String],
) -> Value {
    let tables: Vec<Value> = tables
        .iter()
        .map(|t| {
            let mut v = json!({
                "name": t.name,
                "prefixes": t.prefixes,
                "engines": t.engines.iter().map(|e| {
                    let mut v = json!({
                        "name": e.name,
                        "lookups_per_sec": e.single.round(),
                        "bulk_lookups_per_sec": e.bulk.round(),
                        "bytes_per_prefix": (e.bytes_per_prefix * 10.0).round() / 10.0,
                        "native_bulk": e.native_bulk,
                        "mismatches_vs_chainroute": e.mismatches,
                    });
                    if !e.variant.is_empty() {
                        v["variant"] = json!(e.variant);
                    }
                    if let Some((s, b)) = e.scalar {
                        v["scalar_lookups_per_sec"] = json!(s.round());
                        v["scalar_bulk_lookups_per_sec"] = json!(b.round());
                    }
                    if !e.paired_bulk_ratios.is_empty() {
                        v["chainroute_bulk_ratio_paired"] = json!(round3(median(&e.paired_bulk_ratios)));
                        v["chainroute_bulk_ratios_paired"] =
                            json!(e.paired_bulk_ratios.iter().map(|&x| round3(x)).collect::<Vec<_>>());
                    }
                    if !e.snapshot_paired.is_empty() {
                        v["snapshot_bulk_ratio_paired"] = json!(round3(median(&e.snapshot_paired)));
                    }
                    if let Some(b) = e.publish_secs {
                        v["publish_seconds"] = json!(round3(b));
                    }
                    if let Some(m) = e.snapshot_marks {
                        v["snapshot_changes"] = json!(MARKED_CHANGES);
                        v["snapshot_marks"] = json!(m);
                    }
                    v
                }).collect::<Vec<_>>(),
            });
            if let Some(c) = &t.ceiling {
                let snapshot_bulk = t.snapshot_bulk();
                v["memory_ceiling"] = json!({
                    "bytes": c.bytes,
                    "keys_per_sec_by_lines": c.keys_per_sec.iter().map(|r| r.round()).collect::<Vec<_>>(),
                    "snapshot_bulk_over_ceiling": c.keys_per_sec.iter().map(|r| round3(snapshot_bulk / r)).collect::<Vec<_>>(),
                    "dependent_line_ns": round3(c.dependent_line_ns),
                    "dependent_line_ns_by_size": c.latency_by_size.iter().map(|&(b, ns)| json!({"bytes": b, "ns": round3(ns)})).collect::<Vec<_>>(),
                    "cache_reach_bytes": ceiling::cache_reach(&c.latency_by_size),
                });
            }
            v
        })
        .collect();
    json!({
        "tables": tables,
        "updates_per_sec": upd.single_per_sec.round(),
        "lookups_per_sec_under_updates": upd.lookups_under_updates.round(),
        "batched_updates_per_sec": upd.batched_per_sec.round(),
        "updates_per_sec_passes": upd.single_passes.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "batched_updates_per_sec_passes": upd.batched_passes.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "lookups_per_sec_without_updates": upd.lookups_alone.round(),
        "updates_per_sec_during_lookups": upd.updates_during.round(),
        "lookups_under_updates_ratio": round3(upd.under_over_alone),
        "lookups_under_updates_cycle_ratios": upd.cycle_ratios.iter().map(|&r| round3(r)).collect::<Vec<_>>(),
        "ratios": ratios(tables_ref(&tables)),
        "keys": keys,
        "notes": header,
    })
}

fn tables_ref(v: &[Value]) -> &[Value] {
    v
}

/// chainroute's bulk and single rates over each baseline's, on the le128 table.
fn ratios(tables: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(le) = tables.iter().find(|t| t["name"] == "le128") {
        let engines = le["engines"].as_array().cloned().unwrap_or_default();
        let cr = engines.iter().find(|e| e["name"] == "chainroute");
        if let Some(cr) = cr {
            for e in engines.iter().filter(|e| e["name"] != "chainroute") {
                let name = e["name"].as_str().unwrap_or("?");
                let r = |k: &str| {
                    (cr[k].as_f64().unwrap_or(0.0) / e[k].as_f64().unwrap_or(f64::NAN) * 100.0)
                        .round()
                        / 100.0
                };
                out.insert(format!("bulk_vs_{name}"), json!(r("bulk_lookups_per_sec")));
                if let Some(p) = e["chainroute_bulk_ratio_paired"].as_f64() {
                    out.insert(format!("bulk_vs_{name}_paired"), json!(p));
                }
                if let Some(p) = e["snapshot_bulk_ratio_paired"].as_f64() {
                    out.insert(format!("snapshot_bulk_vs_{name}_paired"), json!(p));
                }
                out.insert(format!("single_vs_{name}"), json!(r("lookups_per_sec")));
                if let Some(sb) = e["scalar_bulk_lookups_per_sec"].as_f64() {
                    let cb = cr["bulk_lookups_per_sec"].as_f64().unwrap_or(0.0);
                    out.insert(
                        format!("bulk_vs_{name}_scalar"),
                        json!((cb / sb * 100.0).round() / 100.0),
                    );
                }
            }
        }
    }
    Value::Object(out)
}

/// The human-readable report.
pub fn to_text(tables: &[TableResult], upd: &UpdateResult) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for t in tables {
        let _ = writeln!(s, "table {} ({} prefixes)", t.name, t.prefixes);
        let _ = writeln!(
            s,
            "  {:<20} {:>14} {:>14} {:>10}",
            "engine", "single M/s", "bulk M/s", "B/prefix"
        );
        for e in &t.engines {
            let _ = writeln!(
                s,
                "  {:<20} {:>14.1} {:>14.1} {:>10.1}{}{}{}",
                e.name,
                e.single / 1e6,
                e.bulk / 1e6,
                e.bytes_per_prefix,
                match e.publish_secs {
                    Some(b) => format!("  (published in {b:.2} s)"),
                    None => String::new(),
                },
                if e.native_bulk {
                    ""
                } else {
                    "  (bulk = loop of single lookups)"
                },
                if e.mismatches > 0 {
                    format!("  ({} answers differ from chainroute)", e.mismatches)
                } else {
                    String::new()
                }
            );
        }
        if let Some(cr) = t.engines.iter().find(|e| e.name == "chainroute") {
            for e in t.engines.iter().filter(|e| e.name != "chainroute") {
                let _ = writeln!(
                    s,
                    "  chainroute / {:<12} bulk {:>6.2}x   single {:>6.2}x   bulk, paired passes {:>6.2}x",
                    e.name,
                    cr.bulk / e.bulk,
                    cr.single / e.single,
                    median(&e.paired_bulk_ratios)
                );
                if !e.snapshot_paired.is_empty() {
                    let _ = writeln!(
                        s,
                        "  chainroute-snapshot / {:<12} bulk, paired passes {:>6.2}x",
                        e.name,
                        median(&e.snapshot_paired)
                    );
                }
                if let Some((ss, sb)) = e.scalar {
                    let _ = writeln!(
                        s,
                        "  ({} above is its {} lookup; its scalar lookup: {:.1} M/s single, {:.1} M/s bulk: chainroute is {:.2}x / {:.2}x)",
                        e.name,
                        if e.variant.is_empty() { "scalar" } else { e.variant },
                        ss / 1e6,
                        sb / 1e6,
                        cr.single / ss,
                        cr.bulk / sb
                    );
                }
            }
        }
        if let Some(c) = &t.ceiling {
            let _ = writeln!(s, "  {}", ceiling_text(c, t.snapshot_bulk()));
        }
    }
    let _ = writeln!(s, "updates (random insert/delete mix, full table): {:.2} M/s one call per update, {:.2} M/s in batches of 64", upd.single_per_sec / 1e6, upd.batched_per_sec / 1e6);
    let _ = writeln!(
        s,
        "bulk lookups, full table: {:.1} M/s alone, {:.1} M/s while a writer applies {:.2} M updates/s ({:+.1} %: median of {} A-B-B-A cycles)",
        upd.lookups_alone / 1e6,
        upd.lookups_under_updates / 1e6,
        upd.updates_during / 1e6,
        (upd.under_over_alone - 1.0) * 100.0,
        upd.cycle_ratios.len()
    );
    s
}
