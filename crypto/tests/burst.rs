//! Load shedding and per-class sub-batches: one source cannot fill a burst, new
//! sources share a few slots, a source with bad signatures is isolated, and
//! outcomes are one per push.

use chainroute_crypto::shed::{Class, ShedConfig, ShedReason, SourceGovernor};
use chainroute_crypto::{BurstVerifier, DeviceKey, Error, Outcome};

const MS: u64 = 1_000_000;

fn keys(n: u8) -> Vec<DeviceKey> {
    (0..n).map(|i| DeviceKey::from_seed(&[i.wrapping_add(77); 32])).collect()
}

#[test]
fn governor_budgets() {
    let cfg = ShedConfig { trusted_per_burst: 3, probation_per_burst: 2, probation_slots: 3, suspect_slots: 1, bucket: 5, rate_per_sec: 1000, ..ShedConfig::default() };
    let mut g = SourceGovernor::new(cfg);
    g.begin_burst(0);
    // A new source: probation, 2 per burst.
    assert_eq!(g.admit(1), Ok(Class::Probation));
    assert_eq!(g.admit(1), Ok(Class::Probation));
    assert_eq!(g.admit(1), Err(ShedReason::SourceBurst));
    // Probation slots are shared: 3 per burst for all new sources.
    assert_eq!(g.admit(2), Ok(Class::Probation));
    assert_eq!(g.admit(3), Err(ShedReason::ClassFull));
    // A good signature makes source 1 trusted.
    g.report(1, true);
    g.begin_burst(MS);
    assert_eq!(g.class_of(1), Class::Trusted);
    assert_eq!(g.admit(1), Ok(Class::Trusted));
    assert_eq!(g.admit(1), Ok(Class::Trusted));
    // The bucket (5 tokens, 1 more per ms) runs dry before the per-burst limit:
    // 5 - 2 + 1 - 3 = 1 token left, + 1 at 2 ms = 2.
    assert_eq!(g.admit(1), Ok(Class::Trusted));
    g.begin_burst(2 * MS);
    assert_eq!(g.admit(1), Ok(Class::Trusted));
    assert_eq!(g.admit(1), Ok(Class::Trusted));
    assert_eq!(g.admit(1), Err(ShedReason::SourceRate));
    // A bad signature: suspect, one per burst, suspect slots shared.
    g.report(1, false);
    g.begin_burst(3 * MS);
    assert_eq!(g.class_of(1), Class::Suspect);
    g.report(2, false);
    g.begin_burst(200 * MS);
    assert_eq!(g.admit(1), Ok(Class::Suspect));
    assert_eq!(g.admit(1), Err(ShedReason::SourceBurst));
    assert_eq!(g.admit(2), Err(ShedReason::ClassFull));
    // Penalty ends (10 s); trust must be earned again in probation.
    g.begin_burst(11_000 * MS);
    assert_eq!(g.class_of(1), Class::Probation);
    let c = g.counters();
    assert_eq!(c.sources_suspected, 2);
    assert_eq!((c.shed(), c.shed_source_burst, c.shed_source_rate), (5, 2, 1), "{c:?}");
    assert_eq!(c.admitted, [5, 3, 1]);
    assert_eq!(c.shed_class_full, 2);
}

#[test]
fn governor_table_is_bounded() {
    let cfg = ShedConfig { max_sources: 8, idle_secs: 1, probation_slots: 1000, ..ShedConfig::default() };
    let mut g = SourceGovernor::new(cfg);
    g.begin_burst(0);
    for s in 0..100 {
        let _ = g.admit(s);
    }
    assert_eq!(g.tracked(), 8);
    assert!(g.counters().overflowed >= 92);
    // After the idle time, sweeping makes room.
    g.begin_burst(5_000 * MS);
    assert!(g.admit(1000).is_ok());
    assert!(g.counters().swept >= 7);
}

#[test]
fn burst_isolates_a_bad_source() {
    let ks = keys(6);
    let cfg = ShedConfig { trusted_per_burst: 16, probation_per_burst: 16, probation_slots: 64, ..ShedConfig::default() };
    let mut v = BurstVerifier::new(cfg, 64).unwrap();
    // Burst 1: all new sources (probation); source 5 sends one bad signature.
    v.begin(0);
    let mut expect = Vec::new();
    for i in 0..24u64 {
        let src = i % 6;
        let k = &ks[src as usize];
        let msg = i.to_be_bytes();
        let mut sig = k.sign(&msg);
        if src == 5 && i == 5 {
            sig[50] ^= 4;
        }
        let idx = v.push(src, k.public(), &msg, &sig);
        assert_eq!(idx, i as usize);
        expect.push(if src == 5 && i == 5 { Outcome::Invalid(Error::BadSignature) } else { Outcome::Valid });
    }
    assert_eq!(v.finish(), &expect[..]);
    assert_eq!(v.governor().class_of(0), Class::Trusted);
    assert_eq!(v.governor().class_of(5), Class::Suspect);
    // Burst 2: trusted sources in one batch, source 5 alone, one item only.
    v.begin(MS);
    let mut outcomes = Vec::new();
    for i in 0..12u64 {
        let src = i % 6;
        let k = &ks[src as usize];
        let msg = (100 + i).to_be_bytes();
        let mut sig = k.sign(&msg);
        if src == 5 {
            sig[50] ^= 4;
        }
        outcomes.push((src, v.push(src, k.public(), &msg, &sig)));
    }
    let res = v.finish().to_vec();
    for (src, idx) in outcomes {
        match src {
            5 if idx == 5 => assert_eq!(res[idx], Outcome::Invalid(Error::BadSignature)),
            5 => assert_eq!(res[idx], Outcome::Shed(ShedReason::SourceBurst)),
            _ => assert_eq!(res[idx], Outcome::Valid),
        }
    }
    // The trusted batch stayed clean: one equation, no bisection.
    let t = *v.batch_stats(Class::Trusted);
    assert_eq!((t.batches, t.batch_equations, t.bad), (1, 1, 0));
    let s = *v.batch_stats(Class::Suspect);
    assert_eq!((s.single_equations, s.bad), (1, 1));
    // finish is idempotent; a push after finish is shed.
    assert_eq!(v.finish(), &res[..]);
    let late = v.push(0, ks[0].public(), b"late", &ks[0].sign(b"late"));
    assert_eq!(v.finish()[late], Outcome::Shed(ShedReason::BatchFull));
}

#[test]
fn burst_capacity_and_one_source_flood() {
    let ks = keys(2);
    let cfg = ShedConfig { trusted_per_burst: 8, probation_per_burst: 8, probation_slots: 64, bucket: 1000, ..ShedConfig::default() };
    let mut v = BurstVerifier::new(cfg, 16).unwrap();
    v.begin(0);
    // Earn trust for source 1 and 2.
    for src in [1u64, 2] {
        v.push(src, ks[src as usize - 1].public(), b"hi", &ks[src as usize - 1].sign(b"hi"));
    }
    v.finish();
    v.begin(MS);
    // Source 1 floods 40 items; source 2 sends 4 after it: source 2 still gets in.
    let mut idx2 = Vec::new();
    for i in 0..40u32 {
        v.push(1, ks[0].public(), &i.to_be_bytes(), &ks[0].sign(&i.to_be_bytes()));
    }
    for i in 0..4u32 {
        idx2.push(v.push(2, ks[1].public(), &i.to_be_bytes(), &ks[1].sign(&i.to_be_bytes())));
    }
    let res = v.finish().to_vec();
    assert_eq!(res.iter().filter(|o| **o == Outcome::Valid).count(), 12);
    assert!(idx2.iter().all(|&i| res[i] == Outcome::Valid));
    assert_eq!(v.counters().shed_source_burst, 32);
    // Capacity: 16 items per burst in all.
    v.begin(2 * MS);
    for i in 0..3u64 {
        for j in 0..8u32 {
            let k = &ks[(i % 2) as usize];
            v.push(1 + (i % 2), k.public(), &j.to_be_bytes(), &k.sign(&j.to_be_bytes()));
        }
    }
    let res = v.finish().to_vec();
    assert_eq!(res.iter().filter(|o| **o == Outcome::Valid).count(), 16);
    assert!(v.counters().shed_batch_full + v.counters().shed_source_burst >= 8);
}
