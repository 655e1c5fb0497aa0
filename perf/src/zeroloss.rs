//! Zero-loss throughput search (RFC 2544 section 26.1, in the style of FD.io CSIT's
//! MLRsearch): find the highest offered rate with no loss (NDR) and the highest with
//! at most a small loss ratio (PDR, 0.5 % by default), from one series of trials.
//!
//! Each trial offers a fixed rate for a short time and reports its loss ratio. Both
//! searches keep an interval `[lo, hi]` (lo passed, hi failed); a trial's result
//! narrows both. The next rate halves the widest interval (relative width), until
//! both are narrower than the precision or the trial budget is spent. Then the NDR
//! is confirmed with a longer trial; a failure lowers it and confirms again
//! (short trials can miss rare losses, as MLRsearch's final-duration step knows).
//!
//! The trial itself is a closure, so the search is tested without DPDK.

use crate::stats::round3;
use serde_json::json;

/// What the search needs.
#[derive(Debug, Clone, Copy)]
pub struct SearchSpec {
    /// The highest rate to try (pps), e.g. what the generator reaches at max.
    pub max_rate: f64,
    /// The lowest rate worth telling apart (pps).
    pub min_rate: f64,
    /// Stop when (hi - lo) / hi is below this.
    pub precision: f64,
    /// PDR's loss ratio (NDR's is zero).
    pub pdr_loss: f64,
    pub trial_seconds: f64,
    pub final_seconds: f64,
    /// Trials before the final confirmation.
    pub max_trials: usize,
}

impl Default for SearchSpec {
    fn default() -> Self {
        SearchSpec {
            max_rate: 10e6,
            min_rate: 1e3,
            precision: 0.02,
            pdr_loss: 0.005,
            trial_seconds: 1.0,
            final_seconds: 3.0,
            max_trials: 14,
        }
    }
}

/// One trial as the search saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub rate: f64,
    pub seconds: f64,
    pub loss_ratio: f64,
    /// Rate the receiver saw (pps), for reports.
    pub rx_rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub ndr: f64,
    pub pdr: f64,
    /// Whether the final long trial at the NDR passed.
    pub ndr_confirmed: bool,
    /// The trial at which the device stopped forwarding altogether (nothing came
    /// back although earlier trials got through): the search ended there, and its
    /// NDR and PDR only hold what passed before.
    pub stalled_at: Option<usize>,
    pub trials: Vec<Trial>,
}

impl SearchResult {
    pub fn to_json(&self) -> serde_json::Value {
        let m = |x: f64| round3(x / 1e6);
        json!({
            "ndr_mpps": m(self.ndr),
            "pdr_mpps": m(self.pdr),
            "ndr_confirmed": self.ndr_confirmed,
            "dut_stalled_at_trial": self.stalled_at,
            "trials": self.trials.iter().map(|t| json!({"offered_mpps": m(t.rate), "seconds": t.seconds, "loss_ratio": (t.loss_ratio * 1e7).round() / 1e7, "rx_mpps": m(t.rx_rate)})).collect::<Vec<_>>(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Interval {
    lo: f64,
    hi: f64,
}

impl Interval {
    fn width(&self) -> f64 {
        if self.hi <= 0.0 {
            0.0
        } else {
            (self.hi - self.lo) / self.hi
        }
    }
    fn update(&mut self, rate: f64, pass: bool) {
        if pass {
            self.lo = self.lo.max(rate);
            if self.hi < self.lo {
                self.hi = self.lo;
            }
        } else {
            self.hi = self.hi.min(rate);
            if self.lo > self.hi {
                self.lo = 0.0;
            }
        }
    }
}

/// Runs the search. `trial(rate, seconds)` offers `rate` pps for `seconds` and
/// returns what it measured; `first` is a good first guess (e.g. the receive rate
/// of a max-rate trial), or 0 to start in the middle.
pub fn search(
    spec: &SearchSpec,
    first: f64,
    mut trial: impl FnMut(f64, f64) -> Trial,
) -> SearchResult {
    let mut ndr = Interval {
        lo: 0.0,
        hi: spec.max_rate,
    };
    let mut pdr = Interval {
        lo: 0.0,
        hi: spec.max_rate,
    };
    let mut trials = Vec::new();
    let mut next = if first > spec.min_rate && first <= spec.max_rate {
        first
    } else {
        spec.max_rate / 2.0
    };
    // A device that forwarded something once and then nothing at all has stopped (a
    // crash, a wedged link): bisecting further would only measure a dead device.
    let stalled = |trials: &[Trial], t: &Trial| {
        t.rx_rate <= 0.0 && t.rate > 0.0 && trials.iter().any(|e| e.rx_rate > 0.0)
    };
    let mut stalled_at = None;
    for _ in 0..spec.max_trials {
        let t = trial(next, spec.trial_seconds);
        if stalled(&trials, &t) {
            stalled_at = Some(trials.len());
            trials.push(t);
            break;
        }
        trials.push(t);
        ndr.update(t.rate, t.loss_ratio == 0.0);
        pdr.update(t.rate, t.loss_ratio <= spec.pdr_loss);
        let done = |i: &Interval| i.width() <= spec.precision || i.hi - i.lo <= spec.min_rate;
        if done(&ndr) && done(&pdr) {
            break;
        }
        // Halve the widest interval that is not done yet.
        let target = if !done(&ndr) && (done(&pdr) || ndr.width() >= pdr.width()) {
            ndr
        } else {
            pdr
        };
        next = if target.lo == 0.0 && target.hi > 0.0 {
            // Nothing passed yet: go down fast (a quarter), as a wide bracket would.
            target.hi * if t.loss_ratio > 0.5 { 0.25 } else { 0.5 }
        } else {
            (target.lo + target.hi) / 2.0
        };
        if next < spec.min_rate {
            break;
        }
    }
    // Final: confirm the NDR with a long trial; lower it by the precision step on failure.
    let mut confirmed = false;
    for _ in 0..3 {
        if ndr.lo < spec.min_rate || stalled_at.is_some() {
            break;
        }
        let t = trial(ndr.lo, spec.final_seconds);
        if stalled(&trials, &t) {
            stalled_at = Some(trials.len());
            trials.push(t);
            break;
        }
        trials.push(t);
        if t.loss_ratio == 0.0 {
            confirmed = true;
            break;
        }
        if t.loss_ratio <= spec.pdr_loss {
            pdr.lo = pdr.lo.max(t.rate);
        }
        ndr.hi = ndr.lo;
        ndr.lo *= 1.0 - 4.0 * spec.precision.max(0.01);
    }
    SearchResult {
        ndr: if confirmed {
            ndr.lo
        } else {
            0.0f64.max(ndr.lo)
        },
        pdr: pdr.lo.max(if confirmed { ndr.lo } else { 0.0 }),
        ndr_confirmed: confirmed,
        stalled_at,
        trials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that loses nothing up to `cap` pps, then the excess.
    fn device(cap: f64, flaky: f64) -> impl FnMut(f64, f64) -> Trial {
        move |rate, seconds| {
            let mut loss = if rate <= cap {
                0.0
            } else {
                (rate - cap) / rate
            };
            // Long trials see rare losses just below the cap.
            if seconds > 2.0 && rate > cap * (1.0 - flaky) && rate <= cap {
                loss = 1e-6;
            }
            Trial {
                rate,
                seconds,
                loss_ratio: loss,
                rx_rate: rate * (1.0 - loss),
            }
        }
    }

    #[test]
    fn finds_the_knee_within_the_precision() {
        let spec = SearchSpec {
            max_rate: 20e6,
            ..Default::default()
        };
        let r = search(&spec, 0.0, device(7.3e6, 0.0));
        assert!(r.ndr_confirmed);
        assert!(r.ndr <= 7.3e6 && r.ndr >= 7.3e6 * 0.97, "{r:?}");
        // PDR allows 0.5 % loss: slightly above the knee.
        assert!(r.pdr >= r.ndr && r.pdr <= 7.3e6 / 0.995 * 1.001, "{r:?}");
        assert!(r.trials.len() <= spec.max_trials + 3);
    }

    #[test]
    fn a_good_first_guess_saves_trials_and_the_final_trial_lowers_a_flaky_ndr() {
        let spec = SearchSpec {
            max_rate: 20e6,
            ..Default::default()
        };
        let blind = search(&spec, 0.0, device(5e6, 0.0)).trials.len();
        let guided = search(&spec, 5.1e6, device(5e6, 0.0)).trials.len();
        assert!(guided <= blind, "{guided} > {blind}");
        let r = search(&spec, 0.0, device(5e6, 0.03));
        assert!(r.ndr < 5e6 * 0.97 && r.ndr > 5e6 * 0.8, "{r:?}");
    }

    #[test]
    fn a_device_that_stops_forwarding_ends_the_search() {
        let spec = SearchSpec {
            max_rate: 20e6,
            ..Default::default()
        };
        // Forwards up to 5 Mpps; from its third trial on, an overload wedges it
        // for good (as a DUT whose link stalls under overload does).
        let (mut wedged, mut n) = (false, 0);
        let r = search(&spec, 0.0, |rate, seconds| {
            n += 1;
            wedged |= n >= 3 && rate > 5e6;
            let rx = if wedged { 0.0 } else { rate.min(5e6) };
            Trial {
                rate,
                seconds,
                loss_ratio: 1.0 - rx / rate,
                rx_rate: rx,
            }
        });
        let at = r.stalled_at.expect("the stall is reported");
        assert_eq!(at, r.trials.len() - 1, "no trial after the stall: {r:?}");
        assert!(r.trials[..at].iter().any(|t| t.rx_rate > 0.0));
        assert!(!r.ndr_confirmed && r.ndr <= 5e6, "{r:?}");
        // A device that never forwarded anything is not "stalled": it just loses.
        let r = search(&spec, 0.0, |rate, seconds| Trial {
            rate,
            seconds,
            loss_ratio: 1.0,
            rx_rate: 0.0,
        });
        assert_eq!((r.stalled_at, r.ndr), (None, 0.0));
    }

    #[test]
    fn a_device_that_always_loses_gets_zero() {
        let spec = SearchSpec {
            max_rate: 1e6,
            max_trials: 8,
            ..Default::default()
        };
        let r = search(&spec, 0.0, |rate, seconds| Trial {
            rate,
            seconds,
            loss_ratio: 0.5,
            rx_rate: rate / 2.0,
        });
        assert_eq!(r.ndr, 0.0);
        assert!(!r.ndr_confirmed);
    }
}
