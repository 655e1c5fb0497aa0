//! The memory system's ceiling for a bulk lookup over a table of a given size:
//! keys per second on one core when each key is a chain of `n` dependent 64-byte
//! reads at random places in a buffer as large as the table, 64 keys in lockstep,
//! each key's next line prefetched as soon as it is known (what the snapshot's
//! bulk kernel does), and no work besides the loads. A lookup that reads `n` lines
//! per key from beyond the caches, `n` dependent fetches in this pattern, cannot
//! beat the rate for `n`; lpm-bench prints these rates beside the full table's in
//! the same run.
//! Beside it, the latency of one such line when a single chain runs alone
//! ([`dependent_line_ns`]): what each of a lookup's reads from beyond the caches
//! costs when it has to wait for the one before.
//! And that latency over buffers of growing size ([`Ceiling::latency_by_size`]):
//! where it jumps, the caches end ([`cache_reach`]); a table larger than that
//! pays the jump on its reads that miss.
//! The buffer lives in the same kind of memory as the snapshot's arrays (mapped
//! for transparent huge pages): on 4 KiB pages the ceiling measured 14-59 % lower
//! on the development VM (TLB misses), which would flatter the lookups.

use crate::lpmbench::rate;
use crate::rng::Rng;
use chainroute_lpm::{prefetch, HugeSlice};
use std::hint::black_box;

/// Keys in flight together, as in the lookups' bulk calls.
const LOCKSTEP: usize = 64;

/// One 64-byte line of the chase buffer: the index of the line after it. The
/// buffer's lines link into one random cycle through all of them ([`cycle`]), so
/// no chain comes back to a line before it has passed every other.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    next: u32,
}

#[derive(Debug, Clone)]
pub struct Ceiling {
    /// Size of the buffer the chains run through.
    pub bytes: usize,
    /// `keys_per_sec[n - 1]`: the rate with `n` dependent lines per key.
    pub keys_per_sec: Vec<f64>,
    /// Nanoseconds per line of one chain followed alone ([`dependent_line_ns`]).
    pub dependent_line_ns: f64,
    /// (buffer bytes, nanoseconds per line of one chain) from 1 MiB, doubling
    /// while under `bytes`, then `bytes` itself, whose latency is
    /// `dependent_line_ns`.
    pub latency_by_size: Vec<(usize, f64)>,
}

/// Measures chains of 1 to `max_lines` lines over `bytes` (best of `rounds`
/// passes over `keys` chains each, per CPU-second like the lookup rates).
pub fn measure(bytes: usize, max_lines: usize, keys: usize, rounds: usize, seed: u64) -> Ceiling {
    let mut rng = run_rng(seed);
    let buf = cycle_buffer(bytes, &mut rng);
    let n = buf.len();
    let starts: Vec<u32> = (0..keys).map(|_| rng.below(n as u64) as u32).collect();
    let keys_per_sec = (1..=max_lines)
        .map(|lines| {
            rate(keys, rounds, || {
                black_box(chase(&buf, &starts, lines));
            })
        })
        .collect();
    let steps = keys.min(1 << 18);
    let far_ns = latency_ns(&buf, steps, rounds);
    // Freed before the profile's smaller buffers are made.
    drop(buf);
    let sizes = profile_sizes(bytes);
    let mut latency_by_size: Vec<(usize, f64)> = sizes[..sizes.len() - 1]
        .iter()
        .map(|&b| (b, dependent_line_ns(b, steps, rounds, seed)))
        .collect();
    latency_by_size.push((bytes, far_ns));
    Ceiling {
        bytes,
        keys_per_sec,
        dependent_line_ns: far_ns,
        latency_by_size,
    }
}

/// The buffer sizes of the latency profile: 1 MiB, doubling while under
/// `bytes`, then `bytes` itself.
fn profile_sizes(bytes: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize << 20), |b| b.checked_mul(2))
        .take_while(|&b| b < bytes)
        .collect();
    sizes.push(bytes);
    sizes
}

/// How far the caches reach in a latency profile (ascending sizes): the
/// largest size whose latency is under half the largest size's. `None` when
/// no smaller size is (the latency does not jump within the sizes measured:
/// all of them are within the caches, or all beyond) or there is one size.
pub fn cache_reach(profile: &[(usize, f64)]) -> Option<usize> {
    let &(_, far) = profile.last()?;
    profile[..profile.len() - 1]
        .iter()
        .rev()
        .find(|&&(_, ns)| ns < far / 2.0)
        .map(|&(b, _)| b)
}

/// Nanoseconds per line when a single chain runs through a buffer of `bytes`
/// (one random cycle through all its lines, so every line is as cold as the
/// buffer allows), each address read from the line before, nothing else in
/// flight: the latency that a lookup's dependent reads from beyond the caches
/// pay one after another. A bulk call cannot end before its lookup with the
/// most such reads has made them (best of `rounds` passes of `steps` lines).
pub fn dependent_line_ns(bytes: usize, steps: usize, rounds: usize, seed: u64) -> f64 {
    latency_ns(&cycle_buffer(bytes, &mut run_rng(seed)), steps, rounds)
}

/// The generator a run's buffers and chain starts are drawn from.
fn run_rng(seed: u64) -> Rng {
    Rng::new(seed ^ 0x6365_696c)
}

/// A buffer of `bytes` (one line at least) in huge-page memory, its lines
/// linked into one random cycle ([`cycle`]).
fn cycle_buffer(bytes: usize, rng: &mut Rng) -> HugeSlice<Line> {
    HugeSlice::from_vec(cycle((bytes / 64).max(1), rng))
}

/// Nanoseconds per line of one chain of `steps` lines through `buf`.
fn latency_ns(buf: &[Line], steps: usize, rounds: usize) -> f64 {
    let lines_per_sec = rate(steps, rounds, || {
        black_box(follow(buf, 0, steps));
    });
    1e9 / lines_per_sec
}

/// What a lookup's reads alone allow ([`replay`]), in keys per second.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// The reads from their lines.
    pub keys_per_sec: f64,
    /// The same chains with every read folded onto 64 lines (all in L1): the
    /// replay's own cost, which the first rate includes.
    pub in_l1_keys_per_sec: f64,
}

/// Keys per second when each key reads the lines of its own chain (`chains[k]`:
/// line ids, in the order a lookup read them) one after another, each read's
/// address waiting for the line before, 64 keys in lockstep, each key's next line
/// prefetched as soon as its address is known, and no other work: what the
/// memory system allows a lookup that makes exactly these reads in this order
/// (best of `rounds` passes, per CPU-second). The distinct lines are laid out in
/// their order, gaps dropped, in huge-page memory.
pub fn replay(chains: &[Vec<usize>], rounds: usize) -> Replay {
    let mut ids: Vec<usize> = chains.iter().flatten().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let slot = |l: &usize| ids.binary_search(l).expect("a chain's line") as u32;
    let slots: Vec<Vec<u32>> = chains
        .iter()
        .map(|c| c.iter().map(slot).collect())
        .collect();
    let folded: Vec<Vec<u32>> = slots
        .iter()
        .map(|c| c.iter().map(|s| s % 64).collect())
        .collect();
    let run = |slots: &[Vec<u32>], lines: usize| {
        let steps = Steps::of(slots);
        // Every line links to 0: a read's value, added to the next slot, makes
        // that read wait for it without changing where it goes.
        let buf = HugeSlice::from_vec(vec![Line { next: 0 }; lines.max(1)]);
        rate(chains.len(), rounds, || {
            black_box(follow_steps(&buf, &steps));
        })
    };
    Replay {
        keys_per_sec: run(&slots, ids.len()),
        in_l1_keys_per_sec: run(&folded, 64),
    }
}

/// Chains batch by batch, each batch's chains longest first and step-major:
/// row `s` holds the `s`-th slot of the batch's chains that are longer than
/// `s`, a prefix of them, so a replay reads its slots in one stream (as a
/// lookup reads its keys) and never tests whether a chain has ended.
struct Steps {
    slots: Vec<u32>,
    /// Per row: where its slots start, how many.
    rows: Vec<(usize, usize)>,
    /// Per batch: its first row, its rows (the longest chain).
    batches: Vec<(usize, usize)>,
}

impl Steps {
    fn of(chains: &[Vec<u32>]) -> Steps {
        let mut st = Steps {
            slots: Vec::new(),
            rows: Vec::new(),
            batches: Vec::new(),
        };
        for batch in chains.chunks(LOCKSTEP) {
            let mut batch: Vec<&Vec<u32>> = batch.iter().collect();
            batch.sort_by_key(|c| std::cmp::Reverse(c.len()));
            let longest = batch.first().map_or(0, |c| c.len());
            st.batches.push((st.rows.len(), longest));
            for s in 0..longest {
                let from = st.slots.len();
                st.slots.extend(batch.iter().map_while(|c| c.get(s)));
                st.rows.push((from, st.slots.len() - from));
            }
        }
        st
    }

    fn row(&self, r: usize) -> &[u32] {
        let (from, n) = self.rows[r];
        &self.slots[from..from + n]
    }
}

/// Reads every chain's slots in order, a batch's chains in lockstep; the sum of
/// the values read last (0 with `replay`'s buffer).
fn follow_steps(buf: &[Line], steps: &Steps) -> u64 {
    let mut sum = 0u64;
    for &(first, longest) in &steps.batches {
        let mut carry = [0u32; LOCKSTEP];
        if longest > 0 {
            for &at in steps.row(first) {
                prefetch(&buf[at as usize] as *const Line as *const u64);
            }
        }
        for r in first..first + longest {
            let row = steps.row(r);
            let next = if r + 1 < first + longest {
                steps.row(r + 1)
            } else {
                &[]
            };
            let (with_next, last) = row.split_at(next.len());
            for ((&at, &nx), c) in with_next.iter().zip(next).zip(carry.iter_mut()) {
                *c = buf[(at + *c) as usize].next;
                prefetch(&buf[(nx + *c) as usize] as *const Line as *const u64);
            }
            for (&at, c) in last.iter().zip(carry[next.len()..].iter_mut()) {
                *c = buf[(at + *c) as usize].next;
            }
        }
        sum += carry.iter().map(|&c| c as u64).sum::<u64>();
    }
    sum
}

/// Lines that link into one cycle through all `n` of them, in random order.
fn cycle(n: usize, rng: &mut Rng) -> Vec<Line> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut lines = vec![Line { next: 0 }; n];
    for (i, &at) in order.iter().enumerate() {
        lines[at as usize].next = order[(i + 1) % n];
    }
    lines
}

/// The line `steps` links after `start`.
fn follow(buf: &[Line], start: u32, steps: usize) -> u32 {
    (0..steps).fold(start, |at, _| buf[at as usize].next)
}

/// Follows every chain for `lines` lines, `LOCKSTEP` chains at a time.
fn chase(buf: &[Line], starts: &[u32], lines: usize) -> u64 {
    let mut sum = 0u64;
    let mut cur = [0u32; LOCKSTEP];
    for batch in starts.chunks(LOCKSTEP) {
        let cur = &mut cur[..batch.len()];
        cur.copy_from_slice(batch);
        for &c in cur.iter() {
            prefetch(&buf[c as usize] as *const Line as *const u64);
        }
        for step in 0..lines {
            for c in cur.iter_mut() {
                *c = buf[*c as usize].next;
                if step + 1 < lines {
                    prefetch(&buf[*c as usize] as *const Line as *const u64);
                }
            }
        }
        sum += cur.iter().map(|&c| c as u64).sum::<u64>();
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_follow_the_buffer() {
        // Line i links to i + 1 (mod 4): a chain of n lines from s ends at s + n.
        let buf: Vec<Line> = (0..4u32).map(|i| Line { next: (i + 1) % 4 }).collect();
        assert_eq!(chase(&buf, &[0, 1, 2], 1), 1 + 2 + 3);
        assert_eq!(chase(&buf, &[0, 1, 2], 3), 3 + 0 + 1);
        let c = measure(1 << 16, 3, 1000, 1, 7);
        assert_eq!(c.keys_per_sec.len(), 3);
        assert!(c.keys_per_sec.iter().all(|r| r.is_finite() && *r > 0.0));
        assert!(c.dependent_line_ns.is_finite() && c.dependent_line_ns > 0.0);
        assert_eq!(c.latency_by_size, vec![(1 << 16, c.dependent_line_ns)]);
        let c = measure(5 << 19, 1, 1000, 1, 7);
        let sizes: Vec<usize> = c.latency_by_size.iter().map(|&(b, _)| b).collect();
        assert_eq!(sizes, [1 << 20, 2 << 20, 5 << 19]);
        assert_eq!(c.latency_by_size[2].1, c.dependent_line_ns);
    }

    #[test]
    fn chains_are_followed_through_their_own_slots() {
        // Line i holds i: each read adds its slot's value to the next slot, so
        // the last value read is the chain's slots summed (each step from the
        // running sum), which shows every read happened, in order.
        let buf: Vec<Line> = (0..8u32).map(|i| Line { next: i }).collect();
        // 1 -> 1 + 1 = 2 -> 2 + 2 = 4: ends having read line 4, value 4.
        let follow = |chains: &[Vec<u32>]| follow_steps(&buf, &Steps::of(chains));
        assert_eq!(follow(&[vec![1, 1, 2]]), 4);
        // Two chains in lockstep, of different lengths: 3, and 0 -> 0 + 5 = 5.
        assert_eq!(follow(&[vec![3], vec![0, 5]]), 3 + 5);
        assert_eq!(follow(&[vec![], vec![7]]), 7);
        // More chains than one batch holds: each batch on its own.
        let many: Vec<Vec<u32>> = (0..LOCKSTEP as u32 + 3).map(|k| vec![k % 2, 1]).collect();
        // Chains from 0 end on line 1 (1), from 1 on line 2 (2).
        let want: u64 = (0..LOCKSTEP as u64 + 3).map(|k| 1 + k % 2).sum();
        assert_eq!(follow(&many), want);
        let chains: Vec<Vec<usize>> = (0..200).map(|k| vec![k * 1000, k * 1000 + 64, 5]).collect();
        let r = replay(&chains, 1);
        assert!(r.keys_per_sec.is_finite() && r.keys_per_sec > 0.0);
        assert!(r.in_l1_keys_per_sec.is_finite() && r.in_l1_keys_per_sec > 0.0);
    }

    #[test]
    fn profile_sizes_double_up_to_the_buffer() {
        assert_eq!(profile_sizes(5 << 20), [1 << 20, 2 << 20, 4 << 20, 5 << 20]);
        assert_eq!(profile_sizes(4 << 20), [1 << 20, 2 << 20, 4 << 20]);
        assert_eq!(profile_sizes(1000), [1000]);
    }

    #[test]
    fn the_caches_reach_to_the_last_size_under_half_the_far_latency() {
        let mib = 1 << 20;
        let p = [
            (mib, 13.0),
            (2 * mib, 15.0),
            (4 * mib, 17.0),
            (8 * mib, 130.0),
            (16 * mib, 155.0),
        ];
        assert_eq!(cache_reach(&p), Some(4 * mib));
        // The largest size under half the far latency, not the first over it.
        let q = [(mib, 13.0), (2 * mib, 90.0), (4 * mib, 150.0)];
        assert_eq!(cache_reach(&q), Some(mib));
        assert_eq!(cache_reach(&[(mib, 100.0), (2 * mib, 150.0)]), None);
        assert_eq!(cache_reach(&[(mib, 10.0)]), None);
        assert_eq!(cache_reach(&[]), None);
    }

    #[test]
    fn the_latency_chain_visits_every_line_once() {
        let buf = cycle(1000, &mut Rng::new(3));
        let mut seen = vec![false; 1000];
        let mut at = 17;
        for _ in 0..1000 {
            assert!(!seen[at as usize], "line {at} twice");
            seen[at as usize] = true;
            at = follow(&buf, at, 1);
        }
        assert_eq!(at, 17);
        assert_eq!(follow(&buf, 17, 1000), 17);
    }
}
