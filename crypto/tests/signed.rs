//! AUTH and BIND: signed over exactly the wire crate's bytes, verified singly and
//! in batches, and every mutation of a covered byte is caught.

use chainroute_crypto::signed::{build_signed_packet, emit_signed_bind, find_auth, sign_bind, sign_packet, verify_bind, verify_bind_bytes, verify_packet, verify_packet_self};
use chainroute_crypto::{BatchVerifier, DeviceKey, Error, PublicKey};
use chainroute_wire::ext::{auth_message, next_header, AuthHeader, AuthRepr, BindHeader, BindRepr, AUTH_LEN, BIND_LEN};
use chainroute_wire::w3ip::{self, Packet, Repr};
use chainroute_wire::{Address, Wallet};

fn bind(wallet: Wallet) -> BindRepr {
    BindRepr {
        next_header: next_header::NO_NEXT,
        wallet,
        unicast: Address::unicast(&"2001:db8:1::".parse().unwrap(), wallet),
        expiry: 1_900_000_000,
        sequence: 7,
        device_key: [0; 32],
        signature: [0; 64],
    }
}

fn header() -> Repr {
    Repr {
        traffic_class: 0,
        flow_label: 0x12345,
        payload_len: 0,
        next_header: 0,
        hop_limit: 64,
        src_addr: "2001:db8:1::5aae:b605:3f3e:94c9:b9a0:9f33:6694:35e7".parse().unwrap(),
        dst_addr: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().unwrap(),
    }
}

#[test]
fn bind_signs_the_wire_message() {
    let key = DeviceKey::from_seed(&[1; 32]);
    let mut repr = bind(Wallet([0xab; 20]));
    sign_bind(&key, &mut repr);
    assert_eq!(repr.device_key, key.public().to_bytes());
    assert_eq!(key.public().verify(&repr.signed_message(), &repr.signature), Ok(()));
    let mut buf = [0u8; BIND_LEN];
    let emitted = emit_signed_bind(&key, bind(Wallet([0xab; 20])), &mut buf).unwrap();
    assert_eq!(emitted, repr);
    let h = BindHeader::new_checked(&buf[..]).unwrap();
    assert_eq!(verify_bind(&h, key.public()), Ok(()));
    assert_eq!(verify_bind_bytes(&buf).map(|(r, k)| (r, k.to_bytes())), Ok((repr, key.public().to_bytes())));
    // Every signed byte (4..104, including the device key) is covered; the
    // next-header byte and the length are not part of the message.
    for i in 4..BIND_LEN {
        let mut b = buf;
        b[i] ^= 0x20;
        assert!(verify_bind_bytes(&b).is_err(), "byte {i}");
    }
    // Another key in the header than the one authorised.
    let other = DeviceKey::from_seed(&[2; 32]);
    assert_eq!(verify_bind(&h, other.public()), Err(Error::KeyMismatch));
    // Malformed headers are typed errors.
    assert!(matches!(verify_bind_bytes(&buf[..100]), Err(Error::Wire(_))));
    let mut reserved = buf;
    reserved[2] = 1;
    assert!(matches!(verify_bind_bytes(&reserved), Err(Error::Wire(_))));
}

#[test]
fn auth_packet_round_trip_and_coverage() {
    let key = DeviceKey::from_seed(&[3; 32]);
    let payload = b"hello, wallet network";
    let mut buf = vec![0u8; 512];
    let mut scratch = Vec::new();
    let len = build_signed_packet(&key, &header(), next_header::UDP, payload, &mut buf, &mut scratch).unwrap();
    assert_eq!(len, w3ip::HEADER_LEN + AUTH_LEN + payload.len());
    let packet = &buf[..len];
    let (off, signer) = find_auth(packet).unwrap();
    assert_eq!((off, signer), (w3ip::HEADER_LEN, key.public().to_bytes()));
    // The signature is over exactly auth_message().
    let mut msg = Vec::new();
    auth_message(packet, off, &mut msg).unwrap();
    let sig = *AuthHeader::new_checked(&packet[off..]).unwrap().signature();
    assert_eq!(key.public().verify(&msg, &sig), Ok(()));
    assert_eq!(verify_packet(packet, key.public(), &mut scratch), Ok(off));
    assert_eq!(verify_packet_self(packet, &mut scratch).map(|(o, k)| (o, k.to_bytes())), Ok((off, key.public().to_bytes())));

    // Routers may change the hop limit and the destination locator.
    let mut routed = packet.to_vec();
    routed[7] = 3;
    routed[40..52].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 1]);
    assert_eq!(verify_packet(&routed, key.public(), &mut scratch), Ok(off));
    // Any other byte is covered (signature bytes break the signature itself).
    for i in 0..len {
        if i == 7 || (40..52).contains(&i) {
            continue;
        }
        let mut p = packet.to_vec();
        p[i] ^= 0x04;
        assert!(verify_packet(&p, key.public(), &mut scratch).is_err(), "byte {i}");
    }
    // Padding after the payload is ignored.
    let mut padded = packet.to_vec();
    padded.extend_from_slice(&[0xee; 9]);
    assert_eq!(verify_packet(&padded, key.public(), &mut scratch), Ok(off));
    // No AUTH: typed error.
    let mut plain = vec![0u8; w3ip::HEADER_LEN + 4];
    let r = Repr { payload_len: 4, next_header: next_header::UDP, ..header() };
    r.emit(&mut Packet::new_unchecked(&mut plain[..])).unwrap();
    assert_eq!(verify_packet(&plain, key.public(), &mut scratch), Err(Error::MissingHeader));
    assert_eq!(verify_packet(&plain[..10], key.public(), &mut scratch), Err(Error::Wire(chainroute_wire::Error::Truncated)));
}

#[test]
fn bind_then_auth_in_one_packet() {
    // A host announces a binding (BIND signed by its device key) in a packet that
    // is also AUTH-signed: BIND first, AUTH after it.
    let key = DeviceKey::from_seed(&[4; 32]);
    let mut bind_buf = [0u8; BIND_LEN];
    let mut b = bind(Wallet([0x11; 20]));
    b.next_header = next_header::AUTH;
    emit_signed_bind(&key, b, &mut bind_buf).unwrap();
    let payload_len = BIND_LEN + AUTH_LEN;
    let mut pkt = vec![0u8; w3ip::HEADER_LEN + payload_len];
    let repr = Repr { payload_len: payload_len as u16, next_header: next_header::BIND, ..header() };
    repr.emit(&mut Packet::new_unchecked(&mut pkt[..])).unwrap();
    pkt[72..72 + BIND_LEN].copy_from_slice(&bind_buf);
    AuthRepr { next_header: next_header::NO_NEXT, signer_key: [0; 32], signature: [0; 64] }.emit(&mut pkt[72 + BIND_LEN..]).unwrap();
    let mut scratch = Vec::new();
    let off = sign_packet(&key, &mut pkt, &mut scratch).unwrap();
    assert_eq!(off, 72 + BIND_LEN);
    // Both verify, singly and as one batch.
    let h = BindHeader::new_checked(&pkt[72..]).unwrap();
    assert_eq!(verify_bind(&h, key.public()), Ok(()));
    assert_eq!(verify_packet(&pkt, key.public(), &mut scratch), Ok(off));
    let mut batch = BatchVerifier::with_seed([0; 32]);
    batch.push_bind(key.public(), &h);
    batch.push_auth(key.public(), &pkt, off);
    // Wrong key for the header, and a truncated packet: typed per-item errors.
    let other = DeviceKey::from_seed(&[5; 32]);
    batch.push_bind(other.public(), &h);
    batch.push_auth(other.public(), &pkt, off);
    batch.push_auth(key.public(), &pkt[..100], off);
    let results = batch.verify().to_vec();
    assert_eq!(results[..4], [Ok(()), Ok(()), Err(Error::KeyMismatch), Err(Error::KeyMismatch)]);
    assert!(matches!(results[4], Err(Error::Wire(_))));
}

#[test]
fn auth_batch_of_a_burst() {
    let keys: Vec<DeviceKey> = (0..8u8).map(|i| DeviceKey::from_seed(&[i + 50; 32])).collect();
    let mut packets = Vec::new();
    let mut scratch = Vec::new();
    for i in 0..48usize {
        let mut buf = vec![0u8; 400];
        let payload = vec![i as u8; 20 + i];
        let n = build_signed_packet(&keys[i % 8], &header(), next_header::UDP, &payload, &mut buf, &mut scratch).unwrap();
        buf.truncate(n);
        packets.push(buf);
    }
    packets[13][w3ip::HEADER_LEN + AUTH_LEN + 3] ^= 1; // payload changed after signing
    let mut batch = BatchVerifier::with_seed([8; 32]);
    for (i, p) in packets.iter().enumerate() {
        let (off, signer) = find_auth(p).unwrap();
        let key = PublicKey::from_bytes(&signer).unwrap();
        assert_eq!(key, *keys[i % 8].public());
        batch.push_auth(&key, p, off);
    }
    for (i, r) in batch.verify().iter().enumerate() {
        assert_eq!(r.is_err(), i == 13, "packet {i}");
    }
}
