//! The session handshake (mutual proof of device keys, no CA) and its records.

use chainroute_crypto::registry::DeviceRegistry;
use chainroute_crypto::session::{Initiator, RegistryPolicy, Responder, Session, FIN_LEN, INIT_LEN, RESP_LEN};
use chainroute_crypto::{DeviceKey, Error, PublicKey};
use chainroute_wire::Wallet;

struct Side {
    key: DeviceKey,
    wallet: Wallet,
}

fn sides() -> (Side, Side, DeviceRegistry) {
    let a = Side { key: DeviceKey::from_seed(&[1; 32]), wallet: Wallet([0xa1; 20]) };
    let b = Side { key: DeviceKey::from_seed(&[2; 32]), wallet: Wallet([0xb2; 20]) };
    let mut reg = DeviceRegistry::new();
    reg.upsert(a.wallet, *a.key.public(), 1_000);
    reg.upsert(b.wallet, *b.key.public(), 1_000);
    reg.publish();
    (a, b, reg)
}

fn handshake(a: &Side, b: &Side, reg: &DeviceRegistry) -> (Session, Session) {
    let reader = reg.reader();
    let policy = RegistryPolicy { registry: &reader, now: 500 };
    let (init_state, init) = Initiator::start(&a.key, &a.wallet).unwrap();
    let (resp_state, resp) = Responder::respond(&b.key, &b.wallet, &init, &policy).unwrap();
    let (sa, fin, peer_b) = init_state.finish(&a.key, &resp, &policy).unwrap();
    let (sb, peer_a) = resp_state.finish(&fin).unwrap();
    assert_eq!((peer_b.wallet, peer_b.device_key), (b.wallet, *b.key.public()));
    assert_eq!((peer_a.wallet, peer_a.device_key), (a.wallet, *a.key.public()));
    assert_eq!(sa.id(), sb.id());
    (sa, sb)
}

#[test]
fn handshake_and_records() {
    let (a, b, reg) = sides();
    let (mut sa, mut sb) = handshake(&a, &b, &reg);
    let mut rec = Vec::new();
    assert_eq!(sa.seal(b"hdr", b"hello b", &mut rec).unwrap(), 0);
    let mut out = Vec::new();
    assert_eq!(sb.open(b"hdr", &rec, &mut out), Ok(0));
    assert_eq!(out, b"hello b");
    // Replay refused; tampering refused; wrong AAD refused.
    assert_eq!(sb.open(b"hdr", &rec, &mut out), Err(Error::Replay));
    let mut rec2 = Vec::new();
    sa.seal(b"hdr", b"second", &mut rec2).unwrap();
    let mut t = rec2.clone();
    t[10] ^= 1;
    assert_eq!(sb.open(b"hdr", &t, &mut out), Err(Error::Decrypt));
    assert_eq!(sb.open(b"HDR", &rec2, &mut out), Err(Error::Decrypt));
    assert_eq!(sb.open(b"hdr", &rec2[..10], &mut out), Err(Error::Decrypt));
    out.clear();
    assert_eq!(sb.open(b"hdr", &rec2, &mut out), Ok(1));
    assert_eq!(out, b"second");
    // The other direction has its own key: a record cannot be reflected.
    let mut back = Vec::new();
    sb.seal(b"", b"hello a", &mut back).unwrap();
    assert!(sb.open(b"", &back, &mut out).is_err());
    let (mut fresh_a, _) = handshake(&a, &b, &reg);
    let mut own = Vec::new();
    fresh_a.seal(b"", b"mirror", &mut own).unwrap();
    assert_eq!(fresh_a.open(b"", &own, &mut out), Err(Error::Decrypt));
    out.clear();
    assert_eq!(sa.open(b"", &back, &mut out), Ok(0));
    assert_eq!(out, b"hello a");
    // Out of order within the window is accepted once; older than 64 is refused.
    let recs: Vec<Vec<u8>> = (0..70).map(|_| {
        let mut r = Vec::new();
        sa.seal(b"", b"x", &mut r).unwrap();
        r
    }).collect();
    assert!(sb.open(b"", &recs[69], &mut out).is_ok());
    assert!(sb.open(b"", &recs[30], &mut out).is_ok());
    assert_eq!(sb.open(b"", &recs[30], &mut out), Err(Error::Replay));
    assert_eq!(sb.open(b"", &recs[2], &mut out), Err(Error::Replay));
    // Per-packet MACs.
    let (ctr, tag) = sa.mac(b"a whole packet").unwrap();
    assert_eq!(sb.verify_mac(ctr, b"a whole packet", &tag), Ok(()));
    assert_eq!(sb.verify_mac(ctr, b"a whole packet", &tag), Err(Error::Replay));
    let (ctr, tag) = sa.mac(b"another").unwrap();
    assert_eq!(sb.verify_mac(ctr, b"anothe!", &tag), Err(Error::Decrypt));
}

#[test]
fn sessions_are_fresh() {
    let (a, b, reg) = sides();
    let (s1, _) = handshake(&a, &b, &reg);
    let (s2, _) = handshake(&a, &b, &reg);
    assert_ne!(s1.id(), s2.id());
}

#[test]
fn unauthorised_or_tampered_handshakes_fail() {
    let (a, b, reg) = sides();
    let reader = reg.reader();
    let policy = RegistryPolicy { registry: &reader, now: 500 };
    // An initiator whose wallet did not authorise its key.
    let mallory = Side { key: DeviceKey::from_seed(&[9; 32]), wallet: a.wallet };
    let (_, init) = Initiator::start(&mallory.key, &mallory.wallet).unwrap();
    assert_eq!(Responder::respond(&b.key, &b.wallet, &init, &policy).err(), Some(Error::NotAuthorised));
    // Expired authorisation.
    let late = RegistryPolicy { registry: &reader, now: 1_000 };
    let (_, init) = Initiator::start(&a.key, &a.wallet).unwrap();
    assert_eq!(Responder::respond(&b.key, &b.wallet, &init, &late).err(), Some(Error::Expired));

    // Tampering with any byte of RESP after the header breaks the initiator's check.
    for i in [8usize, 39, 40, 71, 72, 91, 92, 155] {
        let (init_state, init) = Initiator::start(&a.key, &a.wallet).unwrap();
        let (_, mut resp) = Responder::respond(&b.key, &b.wallet, &init, &policy).unwrap();
        resp[i] ^= 1;
        let r = init_state.finish(&a.key, &resp, &policy);
        assert!(r.is_err(), "byte {i}");
    }
    // A responder substituting its ephemeral share (a MITM) fails.
    let (init_state, init) = Initiator::start(&a.key, &a.wallet).unwrap();
    let (_, resp1) = Responder::respond(&b.key, &b.wallet, &init, &policy).unwrap();
    let (_, resp2) = Responder::respond(&b.key, &b.wallet, &init, &policy).unwrap();
    let mut spliced = resp1;
    spliced[8..40].copy_from_slice(&resp2[8..40]);
    assert_eq!(init_state.finish(&a.key, &spliced, &policy).err(), Some(Error::BadSignature));
    // FIN tampered, or FIN from another handshake.
    let (i1, init1) = Initiator::start(&a.key, &a.wallet).unwrap();
    let (r1, resp1) = Responder::respond(&b.key, &b.wallet, &init1, &policy).unwrap();
    let (i2, init2) = Initiator::start(&a.key, &a.wallet).unwrap();
    let (_r2, resp2) = Responder::respond(&b.key, &b.wallet, &init2, &policy).unwrap();
    let (_, _fin1, _) = i1.finish(&a.key, &resp1, &policy).unwrap();
    let (_, fin2, _) = i2.finish(&a.key, &resp2, &policy).unwrap();
    assert_eq!(r1.finish(&fin2).err(), Some(Error::BadSignature));
    // Responder's signature replayed as the initiator's (reflection) fails: the
    // role labels differ.
    let (_, init) = Initiator::start(&b.key, &b.wallet).unwrap();
    let (r, resp) = Responder::respond(&b.key, &b.wallet, &init, &policy).unwrap();
    let mut fin = [0u8; FIN_LEN];
    fin[..5].copy_from_slice(b"CRS1\x03");
    fin[8..].copy_from_slice(&resp[92..156]);
    assert_eq!(r.finish(&fin).err(), Some(Error::BadSignature));
}

#[test]
fn malformed_messages_are_typed() {
    let (a, b, reg) = sides();
    let reader = reg.reader();
    let policy = RegistryPolicy { registry: &reader, now: 500 };
    let (_, init) = Initiator::start(&a.key, &a.wallet).unwrap();
    for bad in [&init[..INIT_LEN - 1], &[0u8; INIT_LEN][..], &[][..]] {
        assert_eq!(Responder::respond(&b.key, &b.wallet, bad, &policy).err(), Some(Error::BadHandshake));
    }
    let mut wrong_type = init;
    wrong_type[4] = 2;
    assert_eq!(Responder::respond(&b.key, &b.wallet, &wrong_type, &policy).err(), Some(Error::BadHandshake));
    let mut reserved = init;
    reserved[6] = 1;
    assert_eq!(Responder::respond(&b.key, &b.wallet, &reserved, &policy).err(), Some(Error::BadHandshake));
    let (i, _) = Initiator::start(&a.key, &a.wallet).unwrap();
    assert_eq!(i.finish(&a.key, &[0u8; RESP_LEN], &policy).err(), Some(Error::BadHandshake));
    // A policy closure: accept any well-formed key (e.g. a pinned peer check).
    let any = |_: &Wallet, k: &[u8; 32]| PublicKey::from_bytes(k);
    let (i, init) = Initiator::start(&a.key, &a.wallet).unwrap();
    let (r, resp) = Responder::respond(&b.key, &b.wallet, &init, &any).unwrap();
    let (_, fin, _) = i.finish(&a.key, &resp, &any).unwrap();
    assert!(r.finish(&fin).is_ok());
    // A weak key in INIT is refused by the key rules.
    let mut weak = init;
    weak[40..72].fill(0);
    assert_eq!(Responder::respond(&b.key, &b.wallet, &weak, &any).err(), Some(Error::KeySmallOrder));
    // A low-order X25519 share (all zero) makes the key agreement fail.
    let (i, init) = Initiator::start(&a.key, &a.wallet).unwrap();
    let mut zero_share = init;
    zero_share[8..40].fill(0);
    assert_eq!(Responder::respond(&b.key, &b.wallet, &zero_share, &any).err(), Some(Error::KeyAgreement));
    let _ = i;
}
