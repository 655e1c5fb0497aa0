//! Property tests: text and emit/parse round trips, and no panic on any input.

use chainroute_wire::ext::{next_header, AuthHeader, AuthRepr, BindHeader, BindRepr, Extensions};
use chainroute_wire::tunnel::{Decap, UdpTunnel};
use chainroute_wire::{ipv4, ipv6, udp, w3ip, Address, MacAddr, Prefix, Wallet};
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};

/// Addresses with many zero groups, so `::` placement and ties are exercised.
fn address() -> impl Strategy<Value = Address> {
    prop::array::uniform16(prop_oneof![3 => Just(0u16), 1 => Just(1u16), 2 => any::<u16>()]).prop_map(Address::from_groups)
}

fn prefix() -> impl Strategy<Value = Prefix> {
    (address(), 0u16..=256).prop_map(|(a, l)| Prefix::truncating(a, l))
}

fn header() -> impl Strategy<Value = w3ip::Repr> {
    (any::<u8>(), 0u32..(1 << 20), any::<u8>(), any::<u8>(), address(), address(), 0u16..300).prop_map(|(tc, fl, nh, hl, s, d, len)| w3ip::Repr {
        traffic_class: tc,
        flow_label: fl,
        payload_len: len,
        next_header: nh,
        hop_limit: hl,
        src_addr: s,
        dst_addr: d,
    })
}

proptest! {
    #[test]
    fn address_text_round_trip(a in address()) {
        let text = a.to_string();
        prop_assert_eq!(text.parse::<Address>().unwrap(), a);
        // Canonical: lowercase, no leading zeros, at most one `::`.
        prop_assert!(text.split(':').all(|g| g == "0" || !g.starts_with('0')));
        prop_assert!(text.matches("::").count() <= 1);
        prop_assert_eq!(text.to_lowercase(), text.clone());
        // The fully expanded form reads back the same.
        let expanded: Vec<String> = a.groups().iter().map(|g| format!("{g:04x}")).collect();
        prop_assert_eq!(expanded.join(":").parse::<Address>().unwrap(), a);
    }

    #[test]
    fn prefix_text_round_trip(p in prefix()) {
        prop_assert_eq!(p.to_string().parse::<Prefix>().unwrap(), p);
    }

    #[test]
    fn ipv6_prefixes_map_to_the_top(bits in any::<u128>(), len in 0u8..=128) {
        let net = if len == 0 { 0 } else { bits & (u128::MAX << (128 - len as u32)) };
        let v6 = std::net::Ipv6Addr::from(net);
        let p: Prefix = format!("{v6}/{len}").parse().unwrap();
        prop_assert_eq!(p.len(), len as u16);
        prop_assert_eq!(p.addr(), Address::from_ipv6(v6));
    }

    #[test]
    fn wallet_text_round_trip(bytes in any::<[u8; 20]>()) {
        let w = Wallet(bytes);
        prop_assert_eq!(w.to_string().parse::<Wallet>().unwrap(), w);
        prop_assert_eq!(w.to_string().parse::<Address>().unwrap(), Address::anycast(w));
    }

    #[test]
    fn header_round_trip(repr in header()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut w3ip::Packet::new_unchecked(&mut buf[..])).unwrap();
        prop_assert_eq!(w3ip::Repr::parse(&w3ip::Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
    }

    #[test]
    fn extension_round_trip(nh in any::<u8>(), w in any::<[u8; 20]>(), u in address(), exp in any::<u64>(), seq in any::<u64>(), k in any::<[u8; 32]>(), s1 in any::<[u8; 32]>(), s2 in any::<[u8; 32]>()) {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&s1);
        sig[32..].copy_from_slice(&s2);
        let bind = BindRepr { next_header: nh, wallet: Wallet(w), unicast: u, expiry: exp, sequence: seq, device_key: k, signature: sig };
        let mut buf = [0u8; 168];
        bind.emit(&mut buf).unwrap();
        prop_assert_eq!(BindRepr::parse(&BindHeader::new_checked(&buf[..]).unwrap()).unwrap(), bind);
        let auth = AuthRepr { next_header: nh, signer_key: k, signature: sig };
        auth.emit(&mut buf).unwrap();
        prop_assert_eq!(AuthRepr::parse(&AuthHeader::new_checked(&buf[..104]).unwrap()).unwrap(), auth);
    }

    #[test]
    fn tunnel_round_trip(repr in header(), v6 in any::<bool>(), a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), sp in any::<u16>(), csum in any::<bool>()) {
        let repr = w3ip::Repr { next_header: next_header::NO_NEXT, ..repr };
        let mut inner = vec![0u8; repr.buffer_len()];
        repr.emit(&mut w3ip::Packet::new_unchecked(&mut inner[..])).unwrap();
        let (src, dst): (IpAddr, IpAddr) = if v6 { (a.into(), b.into()) } else { ([a[0], a[1], a[2], a[3]].into(), [b[0], b[1], b[2], b[3]].into()) };
        let t = UdpTunnel { eth_src: MacAddr([2; 6]), eth_dst: MacAddr([4; 6]), src: SocketAddr::new(src, sp), dst: SocketAddr::new(dst, 5733), outer_hop_limit: 64, ipv4_udp_checksum: csum };
        let mut frame = vec![0u8; t.header_len() + inner.len()];
        frame[t.header_len()..].copy_from_slice(&inner);
        t.emit(&mut frame, inner.len()).unwrap();
        let d = Decap::parse(&frame).unwrap();
        prop_assert_eq!(&frame[d.inner.clone()], &inner[..]);
    }

    #[test]
    fn parsers_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Decap::parse(&data);
        if let Ok(p) = w3ip::Packet::new_checked(&data[..]) {
            let _ = w3ip::Repr::parse(&p);
            if let Ok(ext) = Extensions::parse(&p) {
                let mut out = Vec::new();
                if let Some(off) = ext.auth { chainroute_wire::ext::auth_message(&data, off, &mut out).unwrap(); }
            }
        }
        if let Ok(p) = ipv4::Packet::new_checked(&data[..]) { let _ = ipv4::Repr::parse(&p); let _ = p.payload(); }
        if let Ok(p) = ipv6::Packet::new_checked(&data[..]) { let _ = ipv6::Repr::parse(&p); let _ = p.payload(); }
        if let Ok(p) = udp::Packet::new_checked(&data[..]) { let _ = p.payload(); let _ = p.verify_checksum(&IpAddr::from([0u8; 16]), &IpAddr::from([0u8; 16])); }
        let _ = String::from_utf8_lossy(&data).parse::<Prefix>();
    }

    #[test]
    fn text_parser_never_panics(s in "[0-9a-fA-FxX:./]{0,80}") {
        let _ = s.parse::<Prefix>();
        let _ = s.parse::<Address>();
    }
}
