//! The Ed25519 rule set: RFC 8032 vectors, every crafted edge case, and proof
//! that single and batch verification agree on all of them.

mod common;

use chainroute_crypto::ed25519::{is_canonical_point, verify, verify_slices, DeviceKey, PublicKey};
use chainroute_crypto::{BatchVerifier, Error};
use common::*;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;

/// RFC 8032 section 7.1, TEST 1, 2, 3: (secret, public, message, signature).
const RFC8032: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

#[test]
fn rfc8032_vectors() {
    let mut batch = BatchVerifier::with_seed([1; 32]);
    for (secret, public, msg, sig) in RFC8032 {
        let key = DeviceKey::from_seed(&arr(secret));
        assert_eq!(key.public().as_bytes(), &arr::<32>(public));
        let msg = hex(msg);
        let sig: [u8; 64] = arr(sig);
        assert_eq!(key.sign(&msg), sig);
        let pk = PublicKey::from_bytes(&arr(public)).unwrap();
        assert_eq!(verify(&pk, &msg, &sig), Ok(()));
        assert_eq!(verify_slices(&hex(public), &msg, &sig), Ok(()));
        // Tampering: another message, a flipped bit in R and in S.
        let mut other = msg.clone();
        other.push(0);
        assert_eq!(verify(&pk, &other, &sig), Err(Error::BadSignature));
        let mut bad_r = sig;
        bad_r[0] ^= 1;
        assert!(verify(&pk, &msg, &bad_r).is_err());
        let mut bad_s = sig;
        bad_s[32] ^= 1;
        assert_eq!(verify(&pk, &msg, &bad_s), Err(Error::BadSignature));
        batch.push(&pk, &msg, &sig);
        batch.push(&pk, &other, &sig);
    }
    assert_eq!(
        batch.verify(),
        &[Ok(()), Err(Error::BadSignature), Ok(()), Err(Error::BadSignature), Ok(()), Err(Error::BadSignature)]
    );
}

#[test]
fn key_rules() {
    // Every small-order point is refused as a key (the 8 weak keys).
    for enc in small_order_encodings() {
        assert!(is_canonical_point(&enc));
        assert_eq!(PublicKey::from_bytes(&enc), Err(Error::KeySmallOrder), "{enc:02x?}");
    }
    // Non-canonical encodings are refused before anything else.
    for enc in non_canonical_encodings() {
        assert!(!is_canonical_point(&enc));
        assert_eq!(PublicKey::from_bytes(&enc), Err(Error::KeyNonCanonical), "{enc:02x?}");
    }
    assert_eq!(PublicKey::from_bytes(&not_on_curve()), Err(Error::KeyNotOnCurve));
    // A good key plus a torsion point: on the curve, not small, but mixed order.
    let good = DeviceKey::from_seed(&[7; 32]);
    let a = -(-ED25519_BASEPOINT_POINT * secret_scalar(&[7; 32]));
    assert_eq!(a.compress().to_bytes(), good.public().to_bytes());
    for i in 1..8 {
        let mixed = (a + torsion(i)).compress().to_bytes();
        assert_eq!(PublicKey::from_bytes(&mixed), Err(Error::KeyHasTorsion));
    }
    assert_eq!(PublicKey::from_slice(&[0; 31]), Err(Error::BadLength));
    assert_eq!(verify_slices(&[0; 33], b"", &[0; 64]), Err(Error::BadLength));
    assert!(PublicKey::from_bytes(good.public().as_bytes()).is_ok());
}

/// (key seed, message, signature, expected verdict).
type Case = ([u8; 32], Vec<u8>, [u8; 64], Result<(), Error>);

/// One crafted case per rule.
fn edge_cases() -> Vec<Case> {
    let seed = [42u8; 32];
    let key = DeviceKey::from_seed(&seed);
    let msg = b"edge case".to_vec();
    let good = key.sign(&msg);
    let mut cases = vec![(seed, msg.clone(), good, Ok(()))];

    // S + l: the same S modulo l, refused as non-canonical.
    let mut s_plus_l = good;
    let s: [u8; 32] = good[32..].try_into().unwrap();
    s_plus_l[32..].copy_from_slice(&add_l(&s));
    cases.push((seed, msg.clone(), s_plus_l, Err(Error::SigNonCanonicalS)));
    let mut s_max = good;
    s_max[32..].fill(0xff);
    cases.push((seed, msg.clone(), s_max, Err(Error::SigNonCanonicalS)));
    // S = l exactly.
    let mut s_l = good;
    s_l[32..].copy_from_slice(&L);
    cases.push((seed, msg.clone(), s_l, Err(Error::SigNonCanonicalS)));

    // Non-canonical R encodings.
    for enc in non_canonical_encodings() {
        let mut sig = good;
        sig[..32].copy_from_slice(&enc);
        cases.push((seed, msg.clone(), sig, Err(Error::SigNonCanonicalR)));
    }
    // R not on the curve.
    let mut sig = good;
    sig[..32].copy_from_slice(&not_on_curve());
    cases.push((seed, msg.clone(), sig, Err(Error::SigRNotOnCurve)));
    // Small-order R, with S = 0 and with the real S.
    for enc in small_order_encodings() {
        let mut sig = good;
        sig[..32].copy_from_slice(&enc);
        cases.push((seed, msg.clone(), sig, Err(Error::SigRSmallOrder)));
        let mut zero_s = [0u8; 64];
        zero_s[..32].copy_from_slice(&enc);
        cases.push((seed, msg.clone(), zero_s, Err(Error::SigRSmallOrder)));
    }
    // R with a torsion component, S made for it: the cofactored equation holds.
    let r = Scalar::from(123_456_789u64);
    for i in 1..8 {
        cases.push((seed, msg.clone(), sign_with_r(&seed, &msg, r, torsion(i)), Ok(())));
    }
    // The same R but S made for R without its torsion: fails.
    for i in 1..8 {
        let mut sig = sign_with_r(&seed, &msg, r, EdwardsPoint::identity());
        let twisted = sign_with_r(&seed, &msg, r, torsion(i));
        sig[..32].copy_from_slice(&twisted[..32]);
        cases.push((seed, msg.clone(), sig, Err(Error::BadSignature)));
    }
    // Honest signature with a chosen nonce, and a wrong message / wrong key.
    cases.push((seed, msg.clone(), sign_with_r(&seed, &msg, r, EdwardsPoint::identity()), Ok(())));
    cases.push((seed, b"other".to_vec(), good, Err(Error::BadSignature)));
    cases.push(([43; 32], msg.clone(), good, Err(Error::BadSignature)));
    cases.push((seed, msg, [0; 64], Err(Error::SigRSmallOrder)));
    cases
}

#[test]
fn single_and_batch_agree_on_every_edge_case() {
    let cases = edge_cases();
    // Singles.
    for (i, (seed, msg, sig, want)) in cases.iter().enumerate() {
        let key = DeviceKey::from_seed(seed);
        assert_eq!(verify(key.public(), msg, sig), *want, "case {i}");
    }
    // One batch with all of them (mixed good and bad), in two orders, and each
    // case alone in a batch of one.
    for reverse in [false, true] {
        let mut batch = BatchVerifier::with_seed([9; 32]);
        let mut order: Vec<usize> = (0..cases.len()).collect();
        if reverse {
            order.reverse();
        }
        for &i in &order {
            let (seed, msg, sig, _) = &cases[i];
            assert_eq!(batch.push(DeviceKey::from_seed(seed).public(), msg, sig), batch.len() - 1);
        }
        let results = batch.verify().to_vec();
        for (slot, &i) in order.iter().enumerate() {
            assert_eq!(results[slot], cases[i].3, "case {i} in a batch");
        }
    }
    for (i, (seed, msg, sig, want)) in cases.iter().enumerate() {
        let mut one = BatchVerifier::with_seed([3; 32]);
        one.push(DeviceKey::from_seed(seed).public(), msg, sig);
        assert_eq!(one.verify(), &[*want], "case {i} alone");
    }
    // A batch of only the good cases passes as one equation.
    let mut clean = BatchVerifier::with_seed([5; 32]);
    for (seed, msg, sig, want) in &cases {
        if want.is_ok() {
            clean.push(DeviceKey::from_seed(seed).public(), msg, sig);
        }
    }
    assert!(clean.verify().iter().all(|r| r.is_ok()));
    assert_eq!(clean.stats().batch_equations, 1);
}

#[test]
fn comparison_with_dalek() {
    // Honest signatures: dalek's strict single and its batch accept what we accept.
    // A torsion component in R: dalek's cofactorless verify_strict refuses, its
    // (cofactored) batch accepts, and we accept in both paths: the one documented
    // difference from verify_strict.
    let seed = [42u8; 32];
    let key = DeviceKey::from_seed(&seed);
    let vk = key.public().to_dalek();
    let msg = b"compare";
    let honest = key.sign(msg);
    assert!(vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&honest)).is_ok());
    let twisted = sign_with_r(&seed, msg, Scalar::from(99u64), torsion(3));
    let dsig = ed25519_dalek::Signature::from_bytes(&twisted);
    assert!(vk.verify_strict(msg, &dsig).is_err());
    assert!(ed25519_dalek::verify_batch(&[&msg[..], &msg[..]], &[dsig, dsig], &[vk, vk]).is_ok());
    assert_eq!(verify(key.public(), msg, &twisted), Ok(()));
    // dalek's batch accepts a weak key (it skips that test); we never build one.
    let weak = small_order_encodings()[0];
    let weak_vk = ed25519_dalek::VerifyingKey::from_bytes(&weak).unwrap();
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&weak); // R = identity, S = 0: [0]B = R + [k]A
    let fsig = ed25519_dalek::Signature::from_bytes(&forged);
    assert!(ed25519_dalek::verify_batch(&[b"anything"], &[fsig], &[weak_vk]).is_ok());
    assert_eq!(PublicKey::from_bytes(&weak), Err(Error::KeySmallOrder));
}

#[test]
fn bisection_names_exactly_the_bad_ones() {
    let keys: Vec<DeviceKey> = (0..64u8).map(|i| DeviceKey::from_seed(&[i; 32])).collect();
    let msgs: Vec<Vec<u8>> = (0..64u32).map(|i| format!("message {i}").into_bytes()).collect();
    let sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    for bad_set in [vec![], vec![0], vec![63], vec![31], vec![32], vec![5, 40], vec![1, 2, 3, 60], (0..64).step_by(3).collect()] {
        let mut batch = BatchVerifier::with_seed([11; 32]);
        for i in 0..64 {
            let mut sig = sigs[i];
            if bad_set.contains(&i) {
                sig[40] ^= 0x01;
            }
            batch.push(keys[i].public(), &msgs[i], &sig);
        }
        let results = batch.verify().to_vec();
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_err(), bad_set.contains(&i), "item {i} of {bad_set:?}");
        }
        let stats = *batch.stats();
        assert_eq!(stats.bad as usize, bad_set.len());
        // One multi-scalar multiplication per level per bad item, at most.
        let levels = 7; // 64 = 2^6, plus the whole batch
        assert!(stats.batch_equations as usize <= 1 + bad_set.len() * (levels - 1), "{stats:?}");
        if bad_set.len() == 1 {
            // Sizes 64, 32, 16, 8, 4, 2, 1: seven, wherever the bad item is.
            assert_eq!(stats.batch_equations, 7, "{bad_set:?}");
        }
        assert_eq!(stats.single_equations, 0);
    }
}

#[test]
fn shared_keys_share_one_term() {
    // Many items by few keys (a burst from few senders) verify, and a bad one is found.
    let keys: Vec<DeviceKey> = (0..3u8).map(|i| DeviceKey::from_seed(&[i + 100; 32])).collect();
    let mut batch = BatchVerifier::with_seed([2; 32]);
    for i in 0..40usize {
        let k = &keys[i % 3];
        let msg = (i as u32).to_be_bytes();
        let mut sig = k.sign(&msg);
        if i == 17 {
            sig = keys[(i + 1) % 3].sign(&msg); // signed by another key
        }
        batch.push(k.public(), &msg, &sig);
    }
    let results = batch.verify();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_err(), i == 17, "item {i}");
    }
}

#[test]
fn verify_singly_matches_verify() {
    let cases = edge_cases();
    let mut a = BatchVerifier::with_seed([4; 32]);
    let mut b = BatchVerifier::with_seed([4; 32]);
    for (seed, msg, sig, _) in &cases {
        let k = DeviceKey::from_seed(seed);
        a.push(k.public(), msg, sig);
        b.push(k.public(), msg, sig);
    }
    assert_eq!(a.verify(), b.verify_singly());
    // Reuse after clear.
    a.clear();
    assert!(a.is_empty());
    assert_eq!(a.verify(), &[]);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// Kinds: 0 good, 1 wrong message, 2 S + l, 3 small-order R, 4 torsion R (valid),
    /// 5 torsion R (invalid), 6 random bytes, 7 another key's signature.
    fn build(kind: u8, key: u8, msg: &[u8], noise: [u8; 64]) -> (DeviceKey, Vec<u8>, [u8; 64]) {
        let seed = [key; 32];
        let k = DeviceKey::from_seed(&seed);
        let good = k.sign(msg);
        let sig = match kind {
            0 => good,
            1 => k.sign(&[msg, b"x"].concat()),
            2 => {
                let mut s = good;
                let sc: [u8; 32] = good[32..].try_into().unwrap();
                s[32..].copy_from_slice(&add_l(&sc));
                s
            }
            3 => {
                let mut s = good;
                s[..32].copy_from_slice(&small_order_encodings()[noise[0] as usize % 8]);
                s
            }
            4 => sign_with_r(&seed, msg, Scalar::from(noise[1] as u64 + 1), torsion(noise[2] as usize % 7 + 1)),
            5 => {
                let mut s = sign_with_r(&seed, msg, Scalar::from(noise[1] as u64 + 1), EdwardsPoint::identity());
                let t = sign_with_r(&seed, msg, Scalar::from(noise[1] as u64 + 1), torsion(noise[2] as usize % 7 + 1));
                s[..32].copy_from_slice(&t[..32]);
                s
            }
            6 => noise,
            _ => DeviceKey::from_seed(&[key.wrapping_add(1); 32]).sign(msg),
        };
        (k, msg.to_vec(), sig)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
        #[test]
        fn batch_equals_singles(items in proptest::collection::vec(
            (0u8..8, 0u8..5, proptest::collection::vec(any::<u8>(), 0..40), proptest::array::uniform32(any::<u8>()), proptest::array::uniform32(any::<u8>())),
            1..24), seed in proptest::array::uniform32(any::<u8>())) {
            let mut batch = BatchVerifier::with_seed(seed);
            let mut singles = Vec::new();
            for (kind, key, msg, n1, n2) in &items {
                let mut noise = [0u8; 64];
                noise[..32].copy_from_slice(n1);
                noise[32..].copy_from_slice(n2);
                let (k, m, s) = build(*kind, *key, msg, noise);
                singles.push(verify(k.public(), &m, &s));
                batch.push(k.public(), &m, &s);
                if *kind == 0 || *kind == 4 {
                    prop_assert_eq!(singles.last().unwrap(), &Ok(()));
                }
            }
            prop_assert_eq!(batch.verify(), &singles[..]);
        }

        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = PublicKey::from_slice(&bytes);
            let key = DeviceKey::from_seed(&[1; 32]);
            if bytes.len() >= 64 {
                let sig: [u8; 64] = bytes[..64].try_into().unwrap();
                let r = verify(key.public(), &bytes[64..], &sig);
                prop_assert!(r.is_err());
                let mut b = BatchVerifier::with_seed([0; 32]);
                b.push(key.public(), &bytes[64..], &sig);
                prop_assert_eq!(b.verify(), &[r]);
            }
            if bytes.len() >= 32 {
                let k: [u8; 32] = bytes[..32].try_into().unwrap();
                if let Ok(pk) = PublicKey::from_bytes(&k) {
                    prop_assert_eq!(pk.as_bytes(), &k);
                    prop_assert!(is_canonical_point(&k));
                }
            }
            let _ = verify_slices(&bytes, &bytes, &bytes);
        }
    }
}
