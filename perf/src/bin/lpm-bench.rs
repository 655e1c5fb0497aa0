//! lpm-bench: correctness output and benchmarks for chainroute-lpm.
//!
//! ```text
//! lpm-bench lookup --prefixes FILE --keys FILE
//!     one line per key: the value of the longest matching prefix, or `-`
//! lpm-bench bench --prefixes FILE [--keys FILE] [--realistic] [--json]
//!                 [--seed N] [--nkeys N] [--rounds N] [--updates N] [--no-dpdk]
//!     lookups/s (single, bulk) of chainroute and the baselines, updates/s,
//!     lookups/s under updates, bytes per prefix
//! lpm-bench table --prefixes FILE [--seed N]
//!     the realistic 256-bit table built from a RouteViews prefix file, to stdout
//! lpm-bench stats --prefixes FILE [--realistic] [--nkeys N]
//!     diagnostics: memory, node census, cache lines a lookup touches, the
//!     longest chain of them beyond L2 per 64-key batch and what it costs here
//! ```
//!
//! File formats: see `chainroute_perf::prefixes` (a prefix line without a value
//! gets its line number). `--realistic` expands the prefix file with the table
//! builder first (`chainroute_perf::table`). Without `--keys`, `bench` draws a
//! seeded mix: 70 % inside random prefixes, 15 % on prefix starts, 15 % random.

use chainroute_lpm::{IntervalTable, Lpm, INTERVAL_BATCH};
use chainroute_perf::lpmbench::{self, BenchOptions};
use chainroute_perf::{ceiling, prefixes, table};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  lpm-bench lookup --prefixes FILE --keys FILE
  lpm-bench bench --prefixes FILE [--keys FILE] [--realistic] [--json] [--seed N] [--nkeys N] [--rounds N] [--updates N] [--no-dpdk]
  lpm-bench table --prefixes FILE [--seed N]
  lpm-bench stats --prefixes FILE [--realistic] [--nkeys N]";

#[derive(Default)]
struct Args {
    cmd: String,
    prefixes: Option<PathBuf>,
    keys: Option<PathBuf>,
    json: bool,
    realistic: bool,
    no_dpdk: bool,
    seed: u64,
    nkeys: usize,
    rounds: usize,
    updates: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        seed: 1,
        nkeys: 1 << 20,
        rounds: 5,
        updates: 200_000,
        ..Default::default()
    };
    a.cmd = it.next().ok_or("missing command")?;
    while let Some(flag) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let num = |s: String, name: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{name}: {s:?} is not a number"))
        };
        // Counts of keys, passes and updates: zero would measure nothing (and divide by it).
        let count = |s: String, name: &str| match num(s, name)? {
            0 => Err(format!("{name}: must be at least 1")),
            n => Ok(n as usize),
        };
        match flag.as_str() {
            "--prefixes" => a.prefixes = Some(val("--prefixes")?.into()),
            "--keys" => a.keys = Some(val("--keys")?.into()),
            "--json" => a.json = true,
            "--realistic" => a.realistic = true,
            "--no-dpdk" => a.no_dpdk = true,
            "--seed" => a.seed = num(val("--seed")?, "--seed")?,
            "--nkeys" => a.nkeys = count(val("--nkeys")?, "--nkeys")?,
            "--rounds" => a.rounds = count(val("--rounds")?, "--rounds")?,
            "--updates" => a.updates = count(val("--updates")?, "--updates")?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lpm-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.cmd.as_str() {
        "lookup" => lookup(&args),
        "bench" => bench(&args),
        "table" => make_table(&args),
        "stats" => stats(&args),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_prefixes(args: &Args) -> Result<Vec<(chainroute_wire::Prefix, u32)>, String> {
    let path = args
        .prefixes
        .as_ref()
        .ok_or("--prefixes FILE is required")?;
    let ps = prefixes::read_prefixes(path).map_err(|e| e.to_string())?;
    Ok(if args.realistic {
        table::realistic(&ps, args.seed)
    } else {
        ps
    })
}

fn lookup(args: &Args) -> Result<(), String> {
    let ps = load_prefixes(args)?;
    let keys = prefixes::read_keys(args.keys.as_ref().ok_or("--keys FILE is required")?)
        .map_err(|e| e.to_string())?;
    let t = Lpm::from_prefixes(ps);
    let mut out = vec![None; keys.len()];
    t.lookup_bulk(&keys, &mut out);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for o in out {
        let r = match o {
            Some(v) => writeln!(w, "{v}"),
            None => writeln!(w, "-"),
        };
        r.map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// Diagnostics: cache lines a lookup touches, and how many fall outside the
/// hottest 1 MiB and 2 MiB of lines (a proxy for misses beyond a small L2 and
/// this VM's 2 MiB one), for the trie and for the interval snapshot.
fn stats(args: &Args) -> Result<(), String> {
    let ps = load_prefixes(args)?;
    let keys = table::key_mix(&ps, args.nkeys.min(200_000), args.seed);
    for (name, ps, keys) in [
        ("le128", table::le128(&ps), table::top128(&keys)),
        ("full", ps.clone(), keys.clone()),
    ] {
        let t = Lpm::from_prefixes(ps.iter().copied());
        // The trie's trace tags each line with its step's kind and depth above bit 40.
        let traces: Vec<Vec<usize>> = keys
            .iter()
            .map(|k| {
                let mut l: Vec<usize> = t.trace(k).iter().map(|x| x & ((1 << 40) - 1)).collect();
                l.dedup();
                l
            })
            .collect();
        let trie = LineProfile::of(&traces);
        let m = t.memory();
        println!(
            "{name}: {} prefixes, {:.1} B/prefix ({:?}); trie: {trie}",
            t.len(),
            m.total() as f64 / t.len() as f64,
            m,
        );
        let c = t.census();
        println!("  nodes: dense8 {}, range8 {}, range16 {}, range32 {}, range64 {} ({} of them one line), skip {}, tail {}, dense16 {}", c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]);
        drop(t);
        let snap = IntervalTable::from_prefixes(ps.iter().copied());
        let traces: Vec<Vec<usize>> = keys.iter().map(|k| snap.trace(k)).collect();
        let lines = LineProfile::of(&traces);
        println!(
            "  snapshot: {:.1} B/prefix, {} tables, {} intervals; {lines}",
            snap.memory_bytes() as f64 / snap.len() as f64,
            snap.tables(),
            snap.intervals(),
        );
        // What the batch's longest lookup costs if each of its reads from beyond
        // L2 waits for the one before, at the latency of one chain alone over a
        // buffer of the snapshot's size.
        let ns = ceiling::dependent_line_ns(snap.memory_bytes(), 1 << 18, 3, args.seed);
        let wait = lines.batch_longest_2mib * ns;
        println!(
            "  one dependent line beyond L2 over {:.1} MB: {ns:.0} ns; a {INTERVAL_BATCH}-key batch's longest lookup reads {:.2} such lines one after another: >= {wait:.0} ns per batch, at most {:.1} M keys/s from that alone",
            snap.memory_bytes() as f64 / 1e6,
            lines.batch_longest_2mib,
            INTERVAL_BATCH as f64 / wait * 1e3,
        );
        // The same reads in the same order with the lookup's work taken away,
        // beside the lookup itself: how much of its time the reads account for.
        let reads = ceiling::replay(&traces, 5);
        let mut out = vec![None; INTERVAL_BATCH];
        let lookups = lpmbench::rate(keys.len(), 5, || {
            for c in keys.chunks(INTERVAL_BATCH) {
                snap.lookup_bulk(c, &mut out);
                std::hint::black_box(&out);
            }
        });
        println!(
            "  its reads alone (each lookup's lines in its order, one after another, {INTERVAL_BATCH} keys in lockstep, no other work): {:.1} M keys/s ({:.1} with every read in L1: the replay's own cost); the bulk lookup making them: {:.1} M keys/s ({:.2}x of its reads' rate)",
            reads.keys_per_sec / 1e6,
            reads.in_l1_keys_per_sec / 1e6,
            lookups / 1e6,
            lookups / reads.keys_per_sec,
        );
    }
    Ok(())
}

/// Lines per lookup over a set of traces (each a lookup's line ids, in order),
/// and those outside the most used 1 MiB and 2 MiB of lines; per batch of
/// [`INTERVAL_BATCH`] lookups (in order), the most any one of them reads outside
/// the hottest 2 MiB, averaged over the batches.
struct LineProfile {
    per_lookup: f64,
    outside_1mib: f64,
    outside_2mib: f64,
    batch_longest_2mib: f64,
    distinct: usize,
}

/// 64-byte lines in 1 MiB.
const LINES_PER_MIB: usize = 1 << 14;

impl LineProfile {
    fn of(traces: &[Vec<usize>]) -> LineProfile {
        let [cold_1mib, cold_2mib] = cold_reads(traces, [LINES_PER_MIB, 2 * LINES_PER_MIB]);
        let n = traces.len().max(1) as f64;
        let per = |v: &[usize]| v.iter().sum::<usize>() as f64 / n;
        LineProfile {
            per_lookup: traces.iter().map(Vec::len).sum::<usize>() as f64 / n,
            outside_1mib: per(&cold_1mib),
            outside_2mib: per(&cold_2mib),
            batch_longest_2mib: mean_batch_max(&cold_2mib),
            distinct: traces.iter().flatten().collect::<HashSet<_>>().len(),
        }
    }
}

/// The most of `counts` in each batch of [`INTERVAL_BATCH`], averaged over the
/// batches.
fn mean_batch_max(counts: &[usize]) -> f64 {
    let batches = counts.chunks(INTERVAL_BATCH);
    let n = batches.len().max(1) as f64;
    batches
        .map(|b| b.iter().max().copied().unwrap_or(0))
        .sum::<usize>() as f64
        / n
}

/// For each count `h` in `hot` and each trace, how many of the trace's reads
/// fall outside the `h` lines read most over all traces (ties broken by line
/// id, so the result is reproducible).
fn cold_reads<const N: usize>(traces: &[Vec<usize>], hot: [usize; N]) -> [Vec<usize>; N] {
    let mut freq: HashMap<usize, usize> = HashMap::new();
    for l in traces.iter().flatten() {
        *freq.entry(*l).or_default() += 1;
    }
    let mut by: Vec<(usize, usize)> = freq.into_iter().map(|(l, c)| (c, l)).collect();
    by.sort_unstable_by(|a, b| b.cmp(a));
    // Each line's rank: 0 for the most read.
    let rank: HashMap<usize, usize> = by.iter().enumerate().map(|(r, &(_, l))| (l, r)).collect();
    hot.map(|h| {
        traces
            .iter()
            .map(|t| t.iter().filter(|l| rank[l] >= h).count())
            .collect()
    })
}

impl std::fmt::Display for LineProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "per lookup {:.2} lines, {:.2} outside the hottest 1 MiB, {:.2} outside the hottest 2 MiB (the longest per {}-key batch: {:.2}); {} distinct lines",
            self.per_lookup,
            self.outside_1mib,
            self.outside_2mib,
            INTERVAL_BATCH,
            self.batch_longest_2mib,
            self.distinct
        )
    }
}

fn make_table(args: &Args) -> Result<(), String> {
    let path = args
        .prefixes
        .as_ref()
        .ok_or("--prefixes FILE is required")?;
    let real = prefixes::read_prefixes(path).map_err(|e| e.to_string())?;
    let t = table::realistic(&real, args.seed);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let header = format!(
        "# Realistic 256-bit W3IP table: {} prefixes, seed {}, built by lpm-bench table from {} ({} real prefixes).\n# {}\n# Format: <prefix> <value>\n",
        t.len(),
        args.seed,
        path.display(),
        real.len(),
        table::ATTRIBUTION
    );
    w.write_all(header.as_bytes()).map_err(|e| e.to_string())?;
    w.write_all(prefixes::format_prefixes(&t).as_bytes())
        .map_err(|e| e.to_string())?;
    w.flush().map_err(|e| e.to_string())
}

fn bench(args: &Args) -> Result<(), String> {
    let ps = load_prefixes(args)?;
    let keys = match &args.keys {
        Some(k) => prefixes::read_keys(k).map_err(|e| e.to_string())?,
        None => table::key_mix(&ps, args.nkeys, args.seed),
    };
    if keys.is_empty() {
        return Err("no keys".into());
    }
    let opts = BenchOptions {
        rounds: args.rounds,
        update_ops: args.updates,
        dpdk: !args.no_dpdk,
        seed: args.seed,
        ..Default::default()
    };
    let mut header = vec![
        format!(
            "lpm-bench: {} prefixes from {}{}",
            ps.len(),
            args.prefixes.as_ref().unwrap().display(),
            if args.realistic {
                format!(
                    " expanded by the realistic-table builder (seed {})",
                    args.seed
                )
            } else {
                String::new()
            }
        ),
        table::ATTRIBUTION.to_string(),
        format!(
            "keys: {} ({}); one core per measurement, best of {} passes; bulk = {}-key batches",
            keys.len(),
            if args.keys.is_some() {
                "from file".to_string()
            } else {
                format!("seeded mix 70/15/15, seed {}", args.seed)
            },
            opts.rounds,
            lpmbench::BURST
        ),
        format!(
            "lengths: {}",
            table::length_profile(&ps)
                .iter()
                .map(|(n, c)| format!("{n}: {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
    });
    if let Some(cpu) = cpu {
        header.push(format!("cpu: {cpu}"));
    }
    for h in &header {
        eprintln!("{h}");
    }
    lpmbench::pin(opts.cpus.0);
    let tables = lpmbench::lookup_tables(&ps, &keys, &opts);
    let upd = lpmbench::updates(&ps, &keys, &opts);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&lpmbench::to_json(&tables, &upd, keys.len(), &header))
                .map_err(|e| e.to_string())?
        );
    } else {
        for h in &header {
            println!("{h}");
        }
        print!("{}", lpmbench::to_text(&tables, &upd));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_outside_the_hottest_lines() {
        // Line 1 read 3 times, 2 twice, 3 and 4 once (3 before 4: ties go to the
        // higher id): 7 reads.
        let traces = vec![vec![1, 2], vec![1, 3], vec![1, 2, 4]];
        assert_eq!(
            cold_reads(&traces, [0, 1, 2, 3, 4, 9]),
            [
                vec![2, 2, 3],
                vec![1, 1, 2],
                vec![0, 1, 1],
                vec![0, 1, 0],
                vec![0, 0, 0],
                vec![0, 0, 0]
            ]
        );
        let p = LineProfile::of(&traces);
        assert_eq!((p.distinct, p.outside_1mib), (4, 0.0));
        assert!((p.per_lookup - 7.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_longest_cold_lookup_of_each_batch() {
        // A full batch whose longest reads 3, then a batch of one reading 2.
        let mut cold = vec![0; INTERVAL_BATCH];
        (cold[5], cold[9]) = (1, 3);
        cold.push(2);
        assert_eq!(mean_batch_max(&cold), 2.5);
        assert_eq!(mean_batch_max(&[]), 0.0);
        // Lookups of one line each, all different, three times the hottest
        // 2 MiB: ties go to the higher ids, so the first third are cold, and
        // their batches' longest reads one.
        let many: Vec<Vec<usize>> = (0..3 * LINES_PER_MIB).map(|i| vec![i]).collect();
        let p = LineProfile::of(&many);
        assert!((p.outside_2mib - 1.0 / 3.0).abs() < 1e-9);
        assert!((p.batch_longest_2mib - 1.0 / 3.0).abs() < 1e-9);
    }
}
