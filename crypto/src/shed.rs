//! Load shedding before verification: who gets to spend a worker's signature
//! budget. Per worker (no shared writes); sources are opaque `u64`s (a hash of the
//! W3IP source address, or of the outer IP/UDP endpoint for BINDs that arrive
//! before any binding exists).
//!
//! Every source is in one of three classes, each verified as its own sub-batch
//! (see [`crate::burst`]), so a bad signature only costs the class it lands in:
//!
//! * **Trusted**: has produced a good signature and no recent bad one. Up to
//!   `trusted_per_burst` items per burst.
//! * **Probation**: no good signature yet (new, or forgotten). Up to
//!   `probation_per_burst` items per source and `probation_slots` items for all
//!   such sources together per burst, so a flood of new (possibly spoofed)
//!   sources cannot crowd out trusted ones.
//! * **Suspect**: produced a bad or malformed signature less than
//!   `penalty_secs * 2^(strikes-1)` seconds ago (capped at 64x). One item per
//!   source and `suspect_slots` in all per burst, verified one by one, and each
//!   item costs it `suspect_rate_divisor` tokens (at most a full bucket).
//!
//! Strikes are remembered while the source is tracked (an idle source is swept
//! and forgotten when the table is full). Across bursts every source has a token bucket (`rate_per_sec`, depth
//! `bucket`). What is shed is counted in [`ShedCounters`] by reason.

use hashbrown::HashMap;

/// The class a source's items are verified in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Trusted = 0,
    Probation = 1,
    Suspect = 2,
}

/// Why an item was not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// The source used its per-burst allowance.
    SourceBurst,
    /// The source's token bucket is empty.
    SourceRate,
    /// The probation or suspect class used its per-burst slots.
    ClassFull,
    /// The burst's batch is full.
    BatchFull,
}

/// Tuning of the governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShedConfig {
    pub trusted_per_burst: u32,
    pub probation_per_burst: u32,
    pub suspect_per_burst: u32,
    pub probation_slots: u32,
    pub suspect_slots: u32,
    /// Sustained verifications per second per source.
    pub rate_per_sec: u32,
    /// Token bucket depth (items).
    pub bucket: u32,
    /// A suspect pays this many tokens per item (at most a full bucket).
    pub suspect_rate_divisor: u32,
    /// First penalty after a bad signature; doubles per strike, at most 64x.
    pub penalty_secs: u32,
    /// Sources tracked at most; past it, idle entries are swept, then unknown
    /// sources share one overflow entry (in probation).
    pub max_sources: usize,
    /// Entries idle this long (and not suspect) are swept when the table is full.
    pub idle_secs: u32,
}

impl Default for ShedConfig {
    fn default() -> ShedConfig {
        ShedConfig {
            trusted_per_burst: 8,
            probation_per_burst: 2,
            suspect_per_burst: 1,
            probation_slots: 16,
            suspect_slots: 4,
            rate_per_sec: 2_000,
            bucket: 64,
            suspect_rate_divisor: 16,
            penalty_secs: 10,
            max_sources: 65_536,
            idle_secs: 60,
        }
    }
}

/// What was admitted and shed, by class and reason. Per worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShedCounters {
    pub admitted: [u64; 3],
    pub shed_source_burst: u64,
    pub shed_source_rate: u64,
    pub shed_class_full: u64,
    pub shed_batch_full: u64,
    pub good: u64,
    pub bad: u64,
    /// Times a source turned suspect.
    pub sources_suspected: u64,
    /// Items of unknown sources accounted to the shared overflow entry.
    pub overflowed: u64,
    /// Entries removed by sweeps.
    pub swept: u64,
}

impl ShedCounters {
    /// Items shed, all reasons.
    pub fn shed(&self) -> u64 {
        self.shed_source_burst + self.shed_source_rate + self.shed_class_full + self.shed_batch_full
    }

    pub(crate) fn count(&mut self, reason: ShedReason) {
        match reason {
            ShedReason::SourceBurst => self.shed_source_burst += 1,
            ShedReason::SourceRate => self.shed_source_rate += 1,
            ShedReason::ClassFull => self.shed_class_full += 1,
            ShedReason::BatchFull => self.shed_batch_full += 1,
        }
    }
}

const NANO: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct SourceState {
    /// Tokens in units of 1e-9 token.
    tokens: u64,
    last_ns: u64,
    burst: u64,
    in_burst: u32,
    good: u32,
    strikes: u32,
    suspect_until_ns: u64,
}

impl SourceState {
    fn new(cfg: &ShedConfig, now: u64) -> SourceState {
        SourceState { tokens: cfg.bucket as u64 * NANO, last_ns: now, burst: 0, in_burst: 0, good: 0, strikes: 0, suspect_until_ns: 0 }
    }

    fn class(&self, now: u64) -> Class {
        if now < self.suspect_until_ns {
            Class::Suspect
        } else if self.good == 0 {
            Class::Probation
        } else {
            Class::Trusted
        }
    }
}

/// The per-worker source governor.
#[derive(Debug)]
pub struct SourceGovernor {
    cfg: ShedConfig,
    sources: HashMap<u64, SourceState>,
    overflow: SourceState,
    now: u64,
    burst: u64,
    class_used: [u32; 3],
    swept_this_burst: bool,
    counters: ShedCounters,
}

impl SourceGovernor {
    pub fn new(cfg: ShedConfig) -> SourceGovernor {
        SourceGovernor {
            sources: HashMap::with_capacity(cfg.max_sources.min(4096)),
            overflow: SourceState::new(&cfg, 0),
            cfg,
            now: 0,
            burst: 0,
            class_used: [0; 3],
            swept_this_burst: false,
            counters: ShedCounters::default(),
        }
    }

    pub fn config(&self) -> &ShedConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &ShedCounters {
        &self.counters
    }

    pub(crate) fn counters_mut(&mut self) -> &mut ShedCounters {
        &mut self.counters
    }

    /// Sources tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Starts a burst at monotonic time `now_ns`.
    pub fn begin_burst(&mut self, now_ns: u64) {
        self.now = now_ns.max(self.now);
        self.burst += 1;
        self.class_used = [0; 3];
        self.swept_this_burst = false;
    }

    /// The class `source` is in now (without admitting anything).
    pub fn class_of(&self, source: u64) -> Class {
        self.sources.get(&source).map_or(Class::Probation, |s| s.class(self.now))
    }

    fn sweep(&mut self) {
        let now = self.now;
        let idle = self.cfg.idle_secs as u64 * NANO;
        let before = self.sources.len();
        self.sources.retain(|_, s| now < s.suspect_until_ns || now.saturating_sub(s.last_ns) < idle);
        self.counters.swept += (before - self.sources.len()) as u64;
        self.swept_this_burst = true;
    }

    /// Decides whether an item of `source` is verified in this burst, and in which class.
    pub fn admit(&mut self, source: u64) -> Result<Class, ShedReason> {
        let cfg = self.cfg;
        let (now, burst) = (self.now, self.burst);
        if !self.sources.contains_key(&source) && self.sources.len() >= cfg.max_sources && !self.swept_this_burst {
            self.sweep();
        }
        let overflow = !self.sources.contains_key(&source) && self.sources.len() >= cfg.max_sources;
        let state = if overflow {
            self.counters.overflowed += 1;
            &mut self.overflow
        } else {
            self.sources.entry(source).or_insert_with(|| SourceState::new(&cfg, now))
        };
        // Refill.
        let elapsed = now.saturating_sub(state.last_ns);
        state.tokens = state.tokens.saturating_add(elapsed.saturating_mul(cfg.rate_per_sec as u64)).min(cfg.bucket as u64 * NANO);
        state.last_ns = now;
        if state.burst != burst {
            state.burst = burst;
            state.in_burst = 0;
        }
        let class = if overflow { Class::Probation } else { state.class(now) };
        let (per_burst, slots, cost) = match class {
            Class::Trusted => (cfg.trusted_per_burst, u32::MAX, NANO),
            Class::Probation => (cfg.probation_per_burst, cfg.probation_slots, NANO),
            Class::Suspect => (cfg.suspect_per_burst, cfg.suspect_slots, NANO * cfg.suspect_rate_divisor.clamp(1, cfg.bucket.max(1)) as u64),
        };
        let verdict = if state.in_burst >= per_burst {
            Err(ShedReason::SourceBurst)
        } else if self.class_used[class as usize] >= slots {
            Err(ShedReason::ClassFull)
        } else if state.tokens < cost {
            Err(ShedReason::SourceRate)
        } else {
            state.tokens -= cost;
            state.in_burst += 1;
            Ok(class)
        };
        match verdict {
            Ok(c) => {
                self.class_used[c as usize] += 1;
                self.counters.admitted[c as usize] += 1;
            }
            Err(r) => self.counters.count(r),
        }
        verdict
    }

    /// Reports the outcome of an admitted item of `source`.
    pub fn report(&mut self, source: u64, good: bool) {
        let now = self.now;
        let cfg = self.cfg;
        if good {
            self.counters.good += 1;
        } else {
            self.counters.bad += 1;
        }
        let Some(state) = self.sources.get_mut(&source) else { return };
        if good {
            state.good = state.good.saturating_add(1);
        } else {
            if now >= state.suspect_until_ns {
                self.counters.sources_suspected += 1;
            }
            state.strikes = state.strikes.saturating_add(1);
            // Trust is earned again, in probation, once the penalty is over.
            state.good = 0;
            let factor = 1u64 << (state.strikes - 1).min(6);
            state.suspect_until_ns = now.saturating_add(cfg.penalty_secs as u64 * NANO * factor);
        }
    }
}
