//! Ethereum wallets: known keys -> addresses, a known personal_sign signature,
//! recovery, and the refusal rules.

mod common;

use chainroute_crypto::wallet::{address_from_public_key, eip191_hash, recover_hash, recover_personal, verify_personal, WalletKey};
use chainroute_crypto::Error;
use chainroute_wire::Wallet;
use common::{arr, hex};

fn wallet(s: &str) -> Wallet {
    s.parse().unwrap()
}

#[test]
fn known_keys_to_addresses() {
    // Secret key 1: the generator's address.
    let mut one = [0u8; 32];
    one[31] = 1;
    let k = WalletKey::from_bytes(&one).unwrap();
    assert_eq!(k.wallet(), wallet("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"));
    assert_eq!(k.wallet().to_checksum_string(), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    // Hardhat / anvil account 0.
    let k = WalletKey::from_bytes(&arr("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")).unwrap();
    assert_eq!(k.wallet().to_checksum_string(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    // The web3.js documentation key.
    let k = WalletKey::from_bytes(&arr("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")).unwrap();
    assert_eq!(k.wallet().to_checksum_string(), "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
    assert_eq!(address_from_public_key(&k.public_key_uncompressed()), Ok(k.wallet()));
    let compressed = k.public_key().to_encoded_point(true);
    assert_eq!(address_from_public_key(compressed.as_bytes()), Ok(k.wallet()));
}

#[test]
fn known_personal_sign() {
    // web3.eth.accounts.sign('Some data', '0x4c08...2318') from the web3.js docs.
    let k = WalletKey::from_bytes(&arr("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")).unwrap();
    assert_eq!(eip191_hash(b"Some data"), arr::<32>("1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"));
    let want = hex("b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a0291c");
    assert_eq!(k.personal_sign(b"Some data").unwrap().to_vec(), want);
    assert_eq!(recover_personal(b"Some data", &want), Ok(k.wallet()));
    assert_eq!(verify_personal(b"Some data", &want, &k.wallet()), Ok(()));
    assert_eq!(verify_personal(b"Some data!", &want, &k.wallet()), Err(Error::WrongWallet));
    // v as 0/1 works too.
    let mut v01 = want.clone();
    v01[64] -= 27;
    assert_eq!(recover_personal(b"Some data", &v01), Ok(k.wallet()));
}

#[test]
fn refusals_are_typed() {
    let k = WalletKey::from_bytes(&[0x11; 32]).unwrap();
    let sig = k.personal_sign(b"hello").unwrap();
    assert_eq!(recover_personal(b"hello", &sig), Ok(k.wallet()));
    // High-s twin: s' = n - s, v flipped. Valid for ecrecover, refused by EIP-2.
    let n = arr::<32>("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..64]);
    let mut twin = sig;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let v = n[i] as i16 - s[i] as i16 - borrow;
        twin[32 + i] = v.rem_euclid(256) as u8;
        borrow = (v < 0) as i16;
    }
    twin[64] = 55 - twin[64];
    assert_eq!(recover_personal(b"hello", &twin), Err(Error::SecpHighS));
    // v out of range, r = 0, s = 0, s >= n, wrong length.
    for v in [2u8, 26, 29, 255] {
        let mut bad = sig;
        bad[64] = v;
        assert_eq!(recover_personal(b"hello", &bad), Err(Error::SecpBadRecoveryId));
    }
    let mut r0 = sig;
    r0[..32].fill(0);
    assert_eq!(recover_personal(b"hello", &r0), Err(Error::SecpBadSignature));
    let mut s0 = sig;
    s0[32..64].fill(0);
    assert_eq!(recover_personal(b"hello", &s0), Err(Error::SecpBadSignature));
    let mut sn = sig;
    sn[32..64].copy_from_slice(&n);
    assert_eq!(recover_personal(b"hello", &sn), Err(Error::SecpBadSignature));
    assert_eq!(recover_personal(b"hello", &sig[..64]), Err(Error::BadLength));
    // An r that is no curve point's x: nothing recovers (about half of all r);
    // any other r recovers some unrelated wallet.
    let mut failed = 0;
    for x in 1u8..40 {
        let mut other = sig;
        other[..32].fill(0);
        other[31] = x;
        match recover_personal(b"hello", &other) {
            Err(Error::SecpRecoveryFailed) => failed += 1,
            Ok(w) => assert_ne!(w, k.wallet()),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(failed > 5, "{failed}");
    // Secret keys 0 and >= n are refused; public keys must be points.
    assert_eq!(WalletKey::from_bytes(&[0; 32]).unwrap_err(), Error::SecpBadSecretKey);
    assert_eq!(WalletKey::from_bytes(&n).unwrap_err(), Error::SecpBadSecretKey);
    assert_eq!(address_from_public_key(&[4; 65]), Err(Error::SecpBadPublicKey));
    assert_eq!(address_from_public_key(&[]), Err(Error::SecpBadPublicKey));
    // Random hashes sign and recover.
    let k = WalletKey::generate().unwrap();
    let h = [0x5a; 32];
    assert_eq!(recover_hash(&h, &k.sign_hash(&h).unwrap()), Ok(k.wallet()));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
        #[test]
        fn recovery_never_panics(hash in proptest::array::uniform32(any::<u8>()), sig in proptest::collection::vec(any::<u8>(), 0..70)) {
            let _ = recover_hash(&hash, &sig);
            let _ = address_from_public_key(&sig);
        }

        #[test]
        fn sign_then_recover(secret in proptest::array::uniform32(1u8..), msg in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(k) = WalletKey::from_bytes(&secret) {
                let sig = k.personal_sign(&msg).unwrap();
                prop_assert!(sig[64] == 27 || sig[64] == 28);
                prop_assert_eq!(recover_personal(&msg, &sig), Ok(k.wallet()));
            }
        }
    }
}
