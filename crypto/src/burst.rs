//! One burst of signed packets, from admission to per-item verdicts: the
//! [`SourceGovernor`] decides what is verified, each class is verified as its own
//! sub-batch (trusted and probation with a [`BatchVerifier`] each, suspects one by
//! one), and every outcome is reported back to the governor.
//!
//! ```text
//! begin(now) -> push*(source, key, ...) -> finish() -> &[Outcome] (one per push)
//! ```
//!
//! Cost bound for an attacker: bad signatures from a trusted source land in the
//! trusted batch at most `trusted_per_burst` at a time, and cost O(k log n)
//! sub-checks there (never all-singles); the source then turns suspect and its
//! further items are verified alone, at most `suspect_slots` per burst.
//! Items from sources without history share `probation_slots` in their own batch.

use chainroute_wire::ext::BindHeader;

use crate::batch::{BatchStats, BatchVerifier};
use crate::ed25519::PublicKey;
use crate::error::{Error, Result};
use crate::shed::{Class, ShedConfig, ShedCounters, ShedReason, SourceGovernor};

/// The verdict on one pushed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The signature verified.
    Valid,
    /// Refused: malformed, wrong key, or the equation failed.
    Invalid(Error),
    /// Not verified this burst (the packet should be dropped and counted).
    Shed(ShedReason),
}

#[derive(Debug, Clone, Copy)]
struct Ticket {
    source: u64,
    class: Class,
    slot: u32,
}

/// Per-worker verifier of bursts.
#[derive(Debug)]
pub struct BurstVerifier {
    gov: SourceGovernor,
    batches: [BatchVerifier; 3],
    tickets: Vec<Option<Ticket>>,
    outcomes: Vec<Outcome>,
    capacity: usize,
    admitted: usize,
    finished: bool,
}

impl BurstVerifier {
    /// `capacity`: items verified per burst at most (all classes).
    pub fn new(cfg: ShedConfig, capacity: usize) -> Result<BurstVerifier> {
        Ok(BurstVerifier {
            gov: SourceGovernor::new(cfg),
            batches: [BatchVerifier::new()?, BatchVerifier::new()?, BatchVerifier::new()?],
            tickets: Vec::with_capacity(capacity),
            outcomes: Vec::with_capacity(capacity),
            capacity,
            admitted: 0,
            finished: false,
        })
    }

    /// Starts a burst at monotonic time `now_ns`.
    pub fn begin(&mut self, now_ns: u64) {
        self.gov.begin_burst(now_ns);
        for b in &mut self.batches {
            b.clear();
        }
        self.tickets.clear();
        self.outcomes.clear();
        self.admitted = 0;
        self.finished = false;
    }

    fn admit(&mut self, source: u64) -> core::result::Result<Class, usize> {
        // Pushing after finish starts nothing new: the late item is shed.
        if self.finished {
            self.gov.counters_mut().count(ShedReason::BatchFull);
            self.tickets.push(None);
            self.outcomes.push(Outcome::Shed(ShedReason::BatchFull));
            return Err(self.tickets.len() - 1);
        }
        let reason = if self.admitted >= self.capacity {
            self.gov.counters_mut().count(ShedReason::BatchFull);
            ShedReason::BatchFull
        } else {
            match self.gov.admit(source) {
                Ok(class) => {
                    self.admitted += 1;
                    return Ok(class);
                }
                Err(r) => r,
            }
        };
        self.tickets.push(None);
        self.outcomes.push(Outcome::Shed(reason));
        Err(self.tickets.len() - 1)
    }

    fn record(&mut self, source: u64, class: Class, slot: usize) -> usize {
        self.tickets.push(Some(Ticket { source, class, slot: slot as u32 }));
        self.outcomes.push(Outcome::Valid);
        self.tickets.len() - 1
    }

    /// Pushes a (key, message, signature) item of `source`; returns its index in
    /// the outcomes of [`finish`](Self::finish).
    pub fn push(&mut self, source: u64, key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> usize {
        match self.admit(source) {
            Err(i) => i,
            Ok(class) => {
                let slot = self.batches[class as usize].push(key, msg, sig);
                self.record(source, class, slot)
            }
        }
    }

    /// Pushes the AUTH signature of `packet` (see [`BatchVerifier::push_auth`]).
    pub fn push_auth(&mut self, source: u64, key: &PublicKey, packet: &[u8], auth_offset: usize) -> usize {
        match self.admit(source) {
            Err(i) => i,
            Ok(class) => {
                let slot = self.batches[class as usize].push_auth(key, packet, auth_offset);
                self.record(source, class, slot)
            }
        }
    }

    /// Pushes the signature of a BIND header (see [`BatchVerifier::push_bind`]).
    pub fn push_bind<T: AsRef<[u8]>>(&mut self, source: u64, key: &PublicKey, header: &BindHeader<T>) -> usize {
        match self.admit(source) {
            Err(i) => i,
            Ok(class) => {
                let slot = self.batches[class as usize].push_bind(key, header);
                self.record(source, class, slot)
            }
        }
    }

    /// Verifies what was admitted; one outcome per push, in push order.
    pub fn finish(&mut self) -> &[Outcome] {
        if self.finished {
            return &self.outcomes;
        }
        self.finished = true;
        let [trusted, probation, suspect] = &mut self.batches;
        trusted.verify();
        probation.verify();
        suspect.verify_singly();
        for (ticket, outcome) in self.tickets.iter().zip(self.outcomes.iter_mut()) {
            let Some(t) = ticket else { continue };
            let r = self.batches[t.class as usize].results()[t.slot as usize];
            *outcome = match r {
                Ok(()) => Outcome::Valid,
                Err(e) => Outcome::Invalid(e),
            };
            self.gov.report(t.source, r.is_ok());
        }
        &self.outcomes
    }

    /// The governor (classes, counters).
    pub fn governor(&self) -> &SourceGovernor {
        &self.gov
    }

    /// What was admitted and shed.
    pub fn counters(&self) -> &ShedCounters {
        self.gov.counters()
    }

    /// Verification counters of one class's sub-batch.
    pub fn batch_stats(&self, class: Class) -> &BatchStats {
        self.batches[class as usize].stats()
    }
}
