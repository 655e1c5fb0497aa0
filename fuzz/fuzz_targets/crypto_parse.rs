//! Feeds arbitrary bytes to every chainroute-crypto entry point that reads
//! untrusted input: Ed25519 keys and signatures (single and batch, which must
//! agree), secp256k1 recovery and public keys, signed BIND headers and AUTH
//! packets, ERC-1056 attribute values, handshake messages and session records.
//! Any panic is a finding; so is a batch verdict that differs from the single one.
#![no_main]

use std::sync::{Mutex, OnceLock};

use chainroute_crypto::ed25519::{verify, verify_slices};
use chainroute_crypto::registry::{device_key_from_attribute, DEVICE_KEY_ATTRIBUTE};
use chainroute_crypto::session::{Initiator, Responder, Session};
use chainroute_crypto::signed::{find_auth, verify_bind_bytes, verify_packet_self};
use chainroute_crypto::wallet::{address_from_public_key, recover_hash};
use chainroute_crypto::{BatchVerifier, DeviceKey, PublicKey};
use chainroute_wire::Wallet;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    key: DeviceKey,
    peer: DeviceKey,
    session: Mutex<Session>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = DeviceKey::from_seed(&[1; 32]);
        let peer = DeviceKey::from_seed(&[2; 32]);
        let any = |_: &Wallet, k: &[u8; 32]| PublicKey::from_bytes(k);
        let (i, init) = Initiator::start(&key, &Wallet([1; 20])).unwrap();
        let (r, resp) = Responder::respond(&peer, &Wallet([2; 20]), &init, &any).unwrap();
        let (_, fin, _) = i.finish(&key, &resp, &any).unwrap();
        let (session, _) = r.finish(&fin).unwrap();
        Fixture { key, peer, session: Mutex::new(session) }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let any = |_: &Wallet, k: &[u8; 32]| PublicKey::from_bytes(k);

    // Ed25519: key parsing, and single vs batch on the same (key, msg, sig).
    let _ = PublicKey::from_slice(data);
    if data.len() >= 64 {
        let sig: [u8; 64] = data[..64].try_into().unwrap();
        let msg = &data[64..];
        let mut keys = vec![*f.key.public()];
        if data.len() >= 96 {
            if let Ok(k) = PublicKey::from_slice(&data[64..96]) {
                keys.push(k);
            }
        }
        let mut batch = BatchVerifier::with_seed([7; 32]);
        let mut singles = Vec::new();
        for k in &keys {
            singles.push(verify(k, msg, &sig));
            batch.push(k, msg, &sig);
            // A valid item beside it, so the batch path (not only singles) runs.
            let good = f.peer.sign(msg);
            singles.push(Ok(()));
            batch.push(f.peer.public(), msg, &good);
        }
        assert_eq!(batch.verify(), &singles[..]);
        let _ = verify_slices(&data[..32], msg, &data[..64]);
    }

    // secp256k1.
    let _ = address_from_public_key(data);
    if data.len() >= 32 {
        let hash: [u8; 32] = data[..32].try_into().unwrap();
        let _ = recover_hash(&hash, &data[32..]);
    }

    // Signed headers and packets.
    let _ = verify_bind_bytes(data);
    let _ = find_auth(data);
    let mut scratch = Vec::new();
    let _ = verify_packet_self(data, &mut scratch);

    // ERC-1056 attribute values.
    let _ = device_key_from_attribute(&DEVICE_KEY_ATTRIBUTE, data);

    // Handshake messages in every position, and session records.
    let _ = Responder::respond(&f.peer, &Wallet([2; 20]), data, &any);
    if let Ok((i, _)) = Initiator::start(&f.key, &Wallet([1; 20])) {
        let _ = i.finish(&f.key, data, &any);
    }
    let mut session = f.session.lock().unwrap();
    let mut out = Vec::new();
    let _ = session.open(b"aad", data, &mut out);
    if data.len() >= 24 {
        let tag: [u8; 16] = data[8..24].try_into().unwrap();
        let ctr = u64::from_be_bytes(data[..8].try_into().unwrap());
        let _ = session.verify_mac(ctr, &data[24..], &tag);
    }
});
