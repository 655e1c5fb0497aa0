//! W3IP extension headers: AUTH (a signed packet) and BIND (a host announcing where
//! its wallet is reachable), and the walk over the extension chain.
//!
//! Every extension header starts with `Next Header (8) | Hdr Ext Len (8)`; its
//! length is `(Hdr Ext Len + 1) * 8` bytes, as in IPv6. Both headers defined here
//! have a fixed length, and their reserved bytes must be zero.
//!
//! ```text
//! AUTH (104 bytes, Hdr Ext Len = 12)       BIND (168 bytes, Hdr Ext Len = 20)
//!   0 Next Header                             0 Next Header
//!   1 Hdr Ext Len = 12                        1 Hdr Ext Len = 20
//!   2 Reserved (6 bytes, zero)                2 Reserved (2 bytes, zero)
//!   8 Signer key (Ed25519, 32 bytes)          4 Wallet (20 bytes)
//!  40 Signature (Ed25519, 64 bytes)          24 Unicast address (32 bytes)
//!                                            56 Expiry (u64, Unix seconds)
//!                                            64 Sequence (u64)
//!                                            72 Device key (Ed25519, 32 bytes)
//!                                           104 Signature (Ed25519, 64 bytes)
//! ```

use crate::address::{Address, Wallet};
use crate::error::{Error, Result};
use crate::w3ip::{self, Packet, DST_OFFSET, HOP_LIMIT_OFFSET};

/// Next-header values of W3IP (the experimental range of RFC 3692, plus IANA's).
pub mod next_header {
    /// AUTH: an Ed25519 signature over the packet.
    pub const AUTH: u8 = 253;
    /// BIND: wallet W is reachable at unicast U via this ingress until T, sequence S.
    pub const BIND: u8 = 254;
    /// No payload follows.
    pub const NO_NEXT: u8 = 59;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;

    /// IPv6's extension headers and reserved values, which W3IP does not define:
    /// a parser cannot know their length, so it must not skip them.
    pub const fn is_undefined_extension(nh: u8) -> bool {
        matches!(nh, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 255)
    }
}

/// Length of the AUTH header.
pub const AUTH_LEN: usize = 104;
/// Length of the BIND header.
pub const BIND_LEN: usize = 168;
/// Domain separation for AUTH signatures.
pub const AUTH_CONTEXT: &[u8; 12] = b"W3IP-AUTH-v1";
/// Domain separation for BIND signatures.
pub const BIND_CONTEXT: &[u8; 12] = b"W3IP-BIND-v1";
/// Length of the message a BIND signature covers.
pub const BIND_MESSAGE_LEN: usize = BIND_CONTEXT.len() + 100;

mod auth_field {
    use core::ops::Range;
    pub const RESERVED: Range<usize> = 2..8;
    pub const KEY: Range<usize> = 8..40;
    pub const SIGNATURE: Range<usize> = 40..104;
}

mod bind_field {
    use core::ops::Range;
    pub const RESERVED: Range<usize> = 2..4;
    pub const WALLET: Range<usize> = 4..24;
    pub const UNICAST: Range<usize> = 24..56;
    pub const EXPIRY: Range<usize> = 56..64;
    pub const SEQUENCE: Range<usize> = 64..72;
    pub const KEY: Range<usize> = 72..104;
    pub const SIGNATURE: Range<usize> = 104..168;
    /// What the signature covers (after the context string).
    pub const SIGNED: Range<usize> = 4..104;
}

fn check_ext(data: &[u8], len: usize) -> Result<()> {
    if data.len() < len {
        return Err(Error::Truncated);
    }
    if (data[1] as usize + 1) * 8 != len {
        return Err(Error::BadLength);
    }
    Ok(())
}

/// A zero-copy view of an AUTH header.
#[derive(Debug, Clone)]
pub struct AuthHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AuthHeader<T> {
    pub const fn new_unchecked(buffer: T) -> AuthHeader<T> {
        AuthHeader { buffer }
    }

    /// Checks length, the length field and the reserved bytes.
    pub fn new_checked(buffer: T) -> Result<AuthHeader<T>> {
        check_ext(buffer.as_ref(), AUTH_LEN)?;
        if buffer.as_ref()[auth_field::RESERVED].iter().any(|&b| b != 0) {
            return Err(Error::ReservedNotZero);
        }
        Ok(AuthHeader { buffer })
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn signer_key(&self) -> &[u8; 32] {
        self.buffer.as_ref()[auth_field::KEY].try_into().expect("32-byte field")
    }

    pub fn signature(&self) -> &[u8; 64] {
        self.buffer.as_ref()[auth_field::SIGNATURE].try_into().expect("64-byte field")
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AuthHeader<T> {
    pub fn set_signature(&mut self, sig: &[u8; 64]) {
        self.buffer.as_mut()[auth_field::SIGNATURE].copy_from_slice(sig);
    }
}

/// The AUTH header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRepr {
    pub next_header: u8,
    pub signer_key: [u8; 32],
    pub signature: [u8; 64],
}

impl AuthRepr {
    pub fn parse<T: AsRef<[u8]>>(header: &AuthHeader<T>) -> Result<AuthRepr> {
        AuthHeader::new_checked(header.buffer.as_ref())?;
        Ok(AuthRepr { next_header: header.next_header(), signer_key: *header.signer_key(), signature: *header.signature() })
    }

    pub const fn buffer_len(&self) -> usize {
        AUTH_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let buf = buf.get_mut(..AUTH_LEN).ok_or(Error::BufferTooSmall)?;
        buf[0] = self.next_header;
        buf[1] = (AUTH_LEN / 8 - 1) as u8;
        buf[auth_field::RESERVED].fill(0);
        buf[auth_field::KEY].copy_from_slice(&self.signer_key);
        buf[auth_field::SIGNATURE].copy_from_slice(&self.signature);
        Ok(())
    }
}

/// A zero-copy view of a BIND header.
#[derive(Debug, Clone)]
pub struct BindHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BindHeader<T> {
    pub const fn new_unchecked(buffer: T) -> BindHeader<T> {
        BindHeader { buffer }
    }

    /// Checks length, the length field and the reserved bytes.
    pub fn new_checked(buffer: T) -> Result<BindHeader<T>> {
        check_ext(buffer.as_ref(), BIND_LEN)?;
        if buffer.as_ref()[bind_field::RESERVED].iter().any(|&b| b != 0) {
            return Err(Error::ReservedNotZero);
        }
        Ok(BindHeader { buffer })
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn wallet(&self) -> Wallet {
        Wallet(self.buffer.as_ref()[bind_field::WALLET].try_into().expect("20-byte field"))
    }

    pub fn unicast(&self) -> Address {
        Address(self.buffer.as_ref()[bind_field::UNICAST].try_into().expect("32-byte field"))
    }

    pub fn expiry(&self) -> u64 {
        u64::from_be_bytes(self.buffer.as_ref()[bind_field::EXPIRY].try_into().expect("8-byte field"))
    }

    pub fn sequence(&self) -> u64 {
        u64::from_be_bytes(self.buffer.as_ref()[bind_field::SEQUENCE].try_into().expect("8-byte field"))
    }

    pub fn device_key(&self) -> &[u8; 32] {
        self.buffer.as_ref()[bind_field::KEY].try_into().expect("32-byte field")
    }

    pub fn signature(&self) -> &[u8; 64] {
        self.buffer.as_ref()[bind_field::SIGNATURE].try_into().expect("64-byte field")
    }

    /// The exact bytes the BIND signature covers: context, then bytes 4..104.
    pub fn signed_message(&self) -> [u8; BIND_MESSAGE_LEN] {
        let mut msg = [0u8; BIND_MESSAGE_LEN];
        msg[..BIND_CONTEXT.len()].copy_from_slice(BIND_CONTEXT);
        msg[BIND_CONTEXT.len()..].copy_from_slice(&self.buffer.as_ref()[bind_field::SIGNED]);
        msg
    }
}

/// The BIND header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindRepr {
    pub next_header: u8,
    pub wallet: Wallet,
    pub unicast: Address,
    pub expiry: u64,
    pub sequence: u64,
    pub device_key: [u8; 32],
    pub signature: [u8; 64],
}

impl BindRepr {
    pub fn parse<T: AsRef<[u8]>>(header: &BindHeader<T>) -> Result<BindRepr> {
        BindHeader::new_checked(header.buffer.as_ref())?;
        Ok(BindRepr {
            next_header: header.next_header(),
            wallet: header.wallet(),
            unicast: header.unicast(),
            expiry: header.expiry(),
            sequence: header.sequence(),
            device_key: *header.device_key(),
            signature: *header.signature(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        BIND_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let buf = buf.get_mut(..BIND_LEN).ok_or(Error::BufferTooSmall)?;
        buf[0] = self.next_header;
        buf[1] = (BIND_LEN / 8 - 1) as u8;
        buf[bind_field::RESERVED].fill(0);
        buf[bind_field::WALLET].copy_from_slice(&self.wallet.0);
        buf[bind_field::UNICAST].copy_from_slice(&self.unicast.0);
        buf[bind_field::EXPIRY].copy_from_slice(&self.expiry.to_be_bytes());
        buf[bind_field::SEQUENCE].copy_from_slice(&self.sequence.to_be_bytes());
        buf[bind_field::KEY].copy_from_slice(&self.device_key);
        buf[bind_field::SIGNATURE].copy_from_slice(&self.signature);
        Ok(())
    }

    /// The exact bytes the signature covers (the signature field itself is not included).
    pub fn signed_message(&self) -> [u8; BIND_MESSAGE_LEN] {
        let mut header = [0u8; BIND_LEN];
        self.emit(&mut header).expect("fixed-size buffer");
        BindHeader::new_unchecked(&header[..]).signed_message()
    }
}

/// Where the extension headers of a packet sit, as offsets from the W3IP header start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extensions {
    pub auth: Option<usize>,
    pub bind: Option<usize>,
    /// The upper-layer protocol after the last extension header.
    pub upper_protocol: u8,
    /// Where the upper-layer payload starts.
    pub upper_offset: usize,
}

impl Extensions {
    /// Walks the extension chain of a checked packet. AUTH and BIND may each
    /// appear once, in either order; IPv6's extension numbers are refused.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Extensions> {
        packet.check_len()?;
        let bytes = &packet.as_bytes()[..packet.total_len()];
        let mut ext = Extensions { auth: None, bind: None, upper_protocol: packet.next_header(), upper_offset: w3ip::HEADER_LEN };
        loop {
            let rest = &bytes[ext.upper_offset..];
            let (slot, len) = match ext.upper_protocol {
                next_header::AUTH => {
                    AuthHeader::new_checked(rest)?;
                    (&mut ext.auth, AUTH_LEN)
                }
                next_header::BIND => {
                    BindHeader::new_checked(rest)?;
                    (&mut ext.bind, BIND_LEN)
                }
                nh if next_header::is_undefined_extension(nh) => return Err(Error::UnknownExtension(nh)),
                _ => return Ok(ext),
            };
            if slot.is_some() {
                return Err(Error::DuplicateExtension(ext.upper_protocol));
            }
            *slot = Some(ext.upper_offset);
            ext.upper_protocol = rest[0];
            ext.upper_offset += len;
        }
    }
}

/// The exact message an AUTH signature covers, written into `out` (cleared first):
/// [`AUTH_CONTEXT`], then the W3IP packet (header, extensions, payload; no padding)
/// with the hop limit, the destination's top 96 bits (the locator, which routers
/// rewrite for anycast delivery) and the AUTH signature field set to zero.
pub fn auth_message(packet: &[u8], auth_offset: usize, out: &mut Vec<u8>) -> Result<()> {
    let p = Packet::new_checked(packet)?;
    let total = p.total_len();
    if auth_offset < w3ip::HEADER_LEN || auth_offset + AUTH_LEN > total {
        return Err(Error::Truncated);
    }
    out.clear();
    out.extend_from_slice(AUTH_CONTEXT);
    let base = out.len();
    out.extend_from_slice(&packet[..total]);
    out[base + HOP_LIMIT_OFFSET] = 0;
    out[base + DST_OFFSET..base + DST_OFFSET + 12].fill(0);
    out[base + auth_offset + auth_field::SIGNATURE.start..base + auth_offset + auth_field::SIGNATURE.end].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::w3ip::Repr;

    fn build(exts: &[u8], upper: u8) -> Vec<u8> {
        // exts: sequence of AUTH/BIND to chain, in order.
        let mut body = Vec::new();
        for (i, &kind) in exts.iter().enumerate() {
            let nh = exts.get(i + 1).copied().unwrap_or(upper);
            let mut h = vec![0u8; if kind == next_header::AUTH { AUTH_LEN } else { BIND_LEN }];
            if kind == next_header::AUTH {
                AuthRepr { next_header: nh, signer_key: [7; 32], signature: [9; 64] }.emit(&mut h).unwrap();
            } else {
                BindRepr {
                    next_header: nh,
                    wallet: Wallet([1; 20]),
                    unicast: "2001:db8::1".parse().unwrap(),
                    expiry: 1_900_000_000,
                    sequence: 42,
                    device_key: [3; 32],
                    signature: [5; 64],
                }
                .emit(&mut h)
                .unwrap();
            }
            body.extend_from_slice(&h);
        }
        body.extend_from_slice(b"data");
        let repr = Repr {
            traffic_class: 0,
            flow_label: 0,
            payload_len: body.len() as u16,
            next_header: exts.first().copied().unwrap_or(upper),
            hop_limit: 9,
            src_addr: "2001:db8::2".parse().unwrap(),
            dst_addr: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().unwrap(),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        buf[w3ip::HEADER_LEN..].copy_from_slice(&body);
        buf
    }

    #[test]
    fn chain_walk() {
        let buf = build(&[next_header::BIND, next_header::AUTH], next_header::UDP);
        let ext = Extensions::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(ext.bind, Some(72));
        assert_eq!(ext.auth, Some(72 + BIND_LEN));
        assert_eq!(ext.upper_protocol, next_header::UDP);
        assert_eq!(&buf[ext.upper_offset..], b"data");
        let bind = BindRepr::parse(&BindHeader::new_checked(&buf[72..]).unwrap()).unwrap();
        assert_eq!(bind.sequence, 42);
        assert_eq!(BindHeader::new_checked(&buf[72..]).unwrap().signed_message(), bind.signed_message());
    }

    #[test]
    fn chain_errors() {
        let buf = build(&[next_header::AUTH, next_header::AUTH], 59);
        assert_eq!(Extensions::parse(&Packet::new_checked(&buf[..]).unwrap()), Err(Error::DuplicateExtension(253)));
        let buf = build(&[], 43);
        assert_eq!(Extensions::parse(&Packet::new_checked(&buf[..]).unwrap()), Err(Error::UnknownExtension(43)));
        let mut buf = build(&[next_header::AUTH], 59);
        buf[73] = 11;
        assert_eq!(Extensions::parse(&Packet::new_checked(&buf[..]).unwrap()), Err(Error::BadLength));
        buf[73] = 12;
        buf[74] = 1;
        assert_eq!(Extensions::parse(&Packet::new_checked(&buf[..]).unwrap()), Err(Error::ReservedNotZero));
        // Payload length cuts the AUTH header short.
        let mut buf = build(&[next_header::AUTH], 59);
        buf[4..6].copy_from_slice(&50u16.to_be_bytes());
        assert_eq!(Extensions::parse(&Packet::new_checked(&buf[..]).unwrap()), Err(Error::Truncated));
    }

    #[test]
    fn auth_message_zeroes_mutable_fields() {
        let buf = build(&[next_header::AUTH], 59);
        let mut msg = Vec::new();
        auth_message(&buf, 72, &mut msg).unwrap();
        assert_eq!(&msg[..12], AUTH_CONTEXT);
        let m = &msg[12..];
        assert_eq!(m.len(), buf.len());
        assert_eq!(m[7], 0);
        assert!(m[40..52].iter().all(|&b| b == 0));
        assert_eq!(&m[52..72], &buf[52..72]);
        assert!(m[72 + 40..72 + 104].iter().all(|&b| b == 0));
        assert_eq!(&m[72 + 8..72 + 40], &[7; 32]);
        // A changed hop limit or locator does not change the message; the payload does.
        let mut other = buf.clone();
        other[7] = 1;
        other[40] = 0x20;
        let mut msg2 = Vec::new();
        auth_message(&other, 72, &mut msg2).unwrap();
        assert_eq!(msg, msg2);
        other[buf.len() - 1] ^= 1;
        auth_message(&other, 72, &mut msg2).unwrap();
        assert_ne!(msg, msg2);
        assert_eq!(auth_message(&buf, 80, &mut msg2), Err(Error::Truncated));
    }
}
