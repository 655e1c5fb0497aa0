//! The key cache and the device registry: lock-free readers, one writer,
//! bounded memory, expiry, ERC-1056 attributes, and concurrent use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use chainroute_crypto::cache::key_cache;
use chainroute_crypto::registry::{device_key_from_attribute, DeviceRegistry, DEVICE_KEY_ATTRIBUTE};
use chainroute_crypto::{DeviceKey, Error, PublicKey};
use chainroute_wire::Wallet;

fn key(i: u32) -> DeviceKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    DeviceKey::from_seed(&seed)
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

#[test]
fn key_cache_misses_then_hits_and_stays_bounded() {
    let (mut writer, mut reader) = key_cache(4, 64);
    let k = key(1);
    assert_eq!(reader.get(k.public().as_bytes()), None);
    assert_eq!(reader.get_or_prepare(k.public().as_bytes()), Ok(*k.public()));
    assert_eq!(reader.stats().misses, 2);
    // Not visible until the writer publishes.
    assert_eq!(reader.get(k.public().as_bytes()), None);
    assert_eq!(writer.publish(), 1);
    assert_eq!(reader.get(k.public().as_bytes()), Some(Ok(*k.public())));
    assert_eq!(reader.version(), 1);
    // A bad key is cached as its error.
    let weak = [0u8; 32]; // y = 0: a point of order 4
    assert_eq!(reader.get_or_prepare(&weak), Err(Error::KeySmallOrder));
    writer.publish();
    assert_eq!(reader.get(&weak), Some(Err(Error::KeySmallOrder)));
    // Two generations of 4: never more than 8 keys, the oldest evicted first.
    for i in 10..30 {
        writer.insert(key(i).public().as_bytes()).unwrap();
        assert!(writer.len() <= 8);
    }
    writer.publish();
    assert_eq!(reader.get(key(10).public().as_bytes()), None);
    assert_eq!(reader.get(key(29).public().as_bytes()), Some(Ok(*key(29).public())));
    // Publishing with nothing new keeps the version.
    let v = writer.publish();
    assert_eq!(writer.publish(), v);
    // A full offer queue drops offers and counts them.
    let (_w, mut r) = key_cache(4, 1);
    r.get_or_prepare(key(100).public().as_bytes()).unwrap();
    r.get_or_prepare(key(101).public().as_bytes()).unwrap();
    assert_eq!(r.stats().offers_dropped, 1);
}

#[test]
fn key_cache_concurrent_readers() {
    let (mut writer, reader) = key_cache(64, 1024);
    let keys: Vec<DeviceKey> = (0..32).map(key).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..2 {
        let mut r = reader.clone();
        let ks: Vec<[u8; 32]> = keys.iter().map(|k| k.public().to_bytes()).collect();
        let stop = stop.clone();
        handles.push(thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 1000 {
                let k = &ks[(n as usize * 7 + t) % ks.len()];
                let pk = r.get_or_prepare(k).unwrap();
                assert_eq!(pk.as_bytes(), k);
                n += 1;
            }
            r.stats().hits
        }));
    }
    // Publish until every key the readers offered is in, then a few more versions.
    while writer.len() < keys.len() {
        writer.publish();
        thread::sleep(std::time::Duration::from_millis(1));
    }
    for _ in 0..20 {
        writer.publish();
        thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let hits: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    writer.publish();
    assert!(hits > 0);
    // Once the readers are gone, every replaced snapshot is reclaimed by the writer.
    drop(reader);
    writer.insert(key(999).public().as_bytes()).unwrap();
    writer.publish();
    assert_eq!(writer.retired(), 0);
}

#[test]
fn registry_authorises_expires_and_withdraws() {
    let mut reg = DeviceRegistry::new();
    let reader = reg.reader();
    let w = Wallet([0x42; 20]);
    let (k1, k2) = (key(1), key(2));
    reg.upsert(w, *k1.public(), 1_000);
    reg.upsert_bytes(w, k2.public().as_bytes(), 2_000).unwrap();
    // Not published yet.
    assert_eq!(reader.authorised(&w, k1.public().as_bytes(), 10), Err(Error::NotAuthorised));
    assert_eq!(reg.publish(), 1);
    assert_eq!(reader.authorised(&w, k1.public().as_bytes(), 999), Ok(*k1.public()));
    assert_eq!(reader.authorised(&w, k1.public().as_bytes(), 1_000), Err(Error::Expired));
    assert_eq!(reader.authorised(&w, k2.public().as_bytes(), 1_500), Ok(*k2.public()));
    assert_eq!(reader.authorised(&Wallet([0; 20]), k2.public().as_bytes(), 1), Err(Error::NotAuthorised));
    let mut live = Vec::new();
    reader.valid_keys(&w, 1_500, &mut live);
    assert_eq!(live.len(), 1);
    // Update validity; no change means no new version.
    reg.upsert(w, *k1.public(), 5_000);
    reg.upsert(w, *k2.public(), 2_000);
    assert_eq!(reg.publish(), 2);
    assert_eq!(reg.publish(), 2);
    assert_eq!(reader.authorised(&w, k1.public().as_bytes(), 4_000), Ok(*k1.public()));
    // Remove one key, prune, remove the wallet.
    assert!(reg.remove(&w, k1.public().as_bytes()));
    assert!(!reg.remove(&w, k1.public().as_bytes()));
    reg.publish();
    assert_eq!(reader.authorised(&w, k1.public().as_bytes(), 4_000), Err(Error::NotAuthorised));
    assert_eq!(reg.prune_expired(2_000), 1);
    assert_eq!(reg.wallets(), 0);
    reg.upsert(w, *k1.public(), 9_000);
    assert_eq!(reg.remove_wallet(&w), 1);
    reg.publish();
    assert_eq!(reader.authorised(&w, k1.public().as_bytes(), 1), Err(Error::NotAuthorised));
    // Weak keys never enter.
    assert_eq!(reg.upsert_bytes(w, &[0; 32], 10).unwrap_err(), Error::KeySmallOrder);
}

#[test]
fn erc1056_attributes() {
    assert_eq!(&DEVICE_KEY_ATTRIBUTE[..30], b"did/pub/Ed25519/veriKey/base64");
    assert_eq!(DEVICE_KEY_ATTRIBUTE[30..], [0, 0]);
    let k = key(7);
    let raw = k.public().to_bytes();
    let text = base64(&raw);
    assert_eq!(text.len(), 44);
    assert_eq!(device_key_from_attribute(&DEVICE_KEY_ATTRIBUTE, &raw), Ok(*k.public()));
    assert_eq!(device_key_from_attribute(&DEVICE_KEY_ATTRIBUTE, text.as_bytes()), Ok(*k.public()));
    assert_eq!(device_key_from_attribute(&DEVICE_KEY_ATTRIBUTE, text.trim_end_matches('=').as_bytes()), Ok(*k.public()));
    let mut other_name = DEVICE_KEY_ATTRIBUTE;
    other_name[8] = b'X';
    assert_eq!(device_key_from_attribute(&other_name, &raw), Err(Error::BadAttribute));
    for bad in [&raw[..31], b"not base64 at all, but forty-four chars!!!!", &[b'A'; 45][..]] {
        assert_eq!(device_key_from_attribute(&DEVICE_KEY_ATTRIBUTE, bad), Err(Error::BadAttribute), "{bad:?}");
    }
    // Non-canonical base64: the last character's 2 unused low bits set.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut sloppy = text.clone().into_bytes();
    let v = A.iter().position(|&c| c == sloppy[42]).unwrap();
    assert_eq!(v & 3, 0);
    sloppy[42] = A[v | 1];
    assert_eq!(device_key_from_attribute(&DEVICE_KEY_ATTRIBUTE, &sloppy), Err(Error::BadAttribute));
    let mut reg = DeviceRegistry::new();
    let reader = reg.reader();
    let w = Wallet([9; 20]);
    assert_eq!(reg.apply_attribute(w, &DEVICE_KEY_ATTRIBUTE, &raw, 500, 100), Ok(Some(*k.public())));
    assert_eq!(reg.apply_attribute(w, &other_name, b"whatever", 500, 100), Ok(None));
    reg.publish();
    assert_eq!(reader.authorised(&w, &raw, 200), Ok(*k.public()));
    // Revocation: validTo = 0.
    reg.apply_attribute(w, &DEVICE_KEY_ATTRIBUTE, text.as_bytes(), 0, 300).unwrap();
    reg.publish();
    assert_eq!(reader.authorised(&w, &raw, 300), Err(Error::NotAuthorised));
    let _ = PublicKey::from_bytes(&raw).unwrap();
}
