//! Feeds arbitrary frames to every W3IP entry point that reads untrusted input.
//! Any panic (index, overflow, unwrap) is a finding; parsed packets must re-emit
//! to the same bytes.
#![no_main]

use chainroute_wire::ext::{auth_message, AuthHeader, AuthRepr, BindHeader, BindRepr, Extensions};
use chainroute_wire::tunnel::Decap;
use chainroute_wire::{w3ip, Address, Prefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A whole Ethernet frame, as the dataplane sees it.
    if let Ok(d) = Decap::parse(data) {
        check_packet(&data[d.inner]);
    }
    // A bare W3IP packet.
    check_packet(data);
    // Text forms.
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(a) = s.parse::<Address>() {
            assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        }
        if let Ok(p) = s.parse::<Prefix>() {
            assert_eq!(p.to_string().parse::<Prefix>().unwrap(), p);
        }
    }
});

fn check_packet(bytes: &[u8]) {
    let Ok(packet) = w3ip::Packet::new_checked(bytes) else { return };
    let repr = w3ip::Repr::parse(&packet).expect("checked packet parses");
    let mut again = vec![0u8; repr.buffer_len()];
    repr.emit(&mut w3ip::Packet::new_unchecked(&mut again[..])).expect("emit");
    assert_eq!(&again[..w3ip::HEADER_LEN], &bytes[..w3ip::HEADER_LEN]);
    let Ok(ext) = Extensions::parse(&packet) else { return };
    if let Some(off) = ext.auth {
        let auth = AuthRepr::parse(&AuthHeader::new_checked(&bytes[off..]).unwrap()).unwrap();
        let mut buf = [0u8; 104];
        auth.emit(&mut buf).unwrap();
        assert_eq!(&buf[..], &bytes[off..off + 104]);
        let mut msg = Vec::new();
        auth_message(bytes, off, &mut msg).unwrap();
    }
    if let Some(off) = ext.bind {
        let bind = BindRepr::parse(&BindHeader::new_checked(&bytes[off..]).unwrap()).unwrap();
        let mut buf = [0u8; 168];
        bind.emit(&mut buf).unwrap();
        assert_eq!(&buf[..], &bytes[off..off + 168]);
    }
}
