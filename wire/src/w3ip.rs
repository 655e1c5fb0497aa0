//! The fixed 72-byte W3IP v1 header.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |  0
//! +-------+---------------+-------+---------------+---------------+
//! |        Payload Length         |  Next Header  |   Hop Limit   |  4
//! +-------------------------------+---------------+---------------+
//! |                 Source Address (32 bytes)                     |  8
//! +---------------------------------------------------------------+
//! |              Destination Address (32 bytes)                   | 40
//! +---------------------------------------------------------------+
//! |           extension headers, then payload                     | 72
//! ```
//!
//! `Payload Length` counts every byte after the fixed header, extension headers
//! included (as in IPv6).

use crate::address::Address;
use crate::error::{Error, Result};

/// The version this module reads and writes.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 72;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..40;
    pub const DST: Range<usize> = 40..72;
}

/// Offset of the hop limit byte (zeroed in what an AUTH signature covers).
pub const HOP_LIMIT_OFFSET: usize = field::HOP_LIMIT;
/// Offset of the destination address.
pub const DST_OFFSET: usize = field::DST.start;

/// A zero-copy view of a W3IP packet in a buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without any check: accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted input: the accessors will not panic afterwards.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds the fixed header, version 1 and the whole payload.
    /// Bytes after the payload (Ethernet padding) are allowed and ignored.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != VERSION {
            return Err(Error::BadVersion(self.version()));
        }
        if data.len() < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The whole underlying buffer (trailing padding included).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn word0(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    pub fn version(&self) -> u8 {
        (self.word0() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::PAYLOAD_LEN];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Header plus payload: the bytes the packet occupies.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Address {
        Address(self.buffer.as_ref()[field::SRC].try_into().expect("32-byte field"))
    }

    pub fn dst_addr(&self) -> Address {
        Address(self.buffer.as_ref()[field::DST].try_into().expect("32-byte field"))
    }

    /// Extension headers and payload (without trailing padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_word0(&mut self, w: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    pub fn set_version(&mut self, v: u8) {
        let w = (self.word0() & 0x0fff_ffff) | ((v as u32 & 0xf) << 28);
        self.set_word0(w);
    }

    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.word0() & 0xf00f_ffff) | ((tc as u32) << 20);
        self.set_word0(w);
    }

    /// Sets the 20-bit flow label (higher bits are dropped).
    pub fn set_flow_label(&mut self, label: u32) {
        let w = (self.word0() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_word0(w);
    }

    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = nh;
    }

    pub fn set_hop_limit(&mut self, hops: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hops;
    }

    pub fn set_src_addr(&mut self, a: &Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }

    pub fn set_dst_addr(&mut self, a: &Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fixed header's fields, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub traffic_class: u8,
    pub flow_label: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src_addr: Address,
    pub dst_addr: Address,
}

impl Repr {
    /// Reads the header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
            payload_len: packet.payload_len(),
            next_header: packet.next_header(),
            hop_limit: packet.hop_limit(),
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
        })
    }

    /// Bytes the header plus payload need.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Writes the fixed header; the payload is the caller's.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        if self.flow_label > 0x000f_ffff {
            return Err(Error::BadLength);
        }
        packet.set_word0(0);
        packet.set_version(VERSION);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(&self.src_addr);
        packet.set_dst_addr(&self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Repr {
        Repr {
            traffic_class: 0xa5,
            flow_label: 0xbcdef,
            payload_len: 4,
            next_header: 59,
            hop_limit: 64,
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().unwrap(),
        }
    }

    #[test]
    fn emit_then_parse() {
        let repr = sample();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(&buf[..8], &[0x1a, 0x5b, 0xcd, 0xef, 0, 4, 59, 64]);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), repr);
        assert_eq!(packet.payload().len(), 4);
    }

    #[test]
    fn typed_errors() {
        let repr = sample();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(Packet::new_checked(&buf[..71]).unwrap_err(), Error::Truncated);
        // Payload length says 4; only 3 bytes are there.
        assert_eq!(Packet::new_checked(&buf[..75]).unwrap_err(), Error::Truncated);
        let mut v6 = buf.clone();
        v6[0] = 0x60;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::BadVersion(6));
        // Trailing padding is fine and not part of the payload.
        buf.extend_from_slice(&[0; 10]);
        assert_eq!(Packet::new_checked(&buf[..]).unwrap().payload().len(), 4);
        let mut bad = sample();
        bad.flow_label = 1 << 20;
        assert_eq!(bad.emit(&mut Packet::new_unchecked(&mut buf[..])), Err(Error::BadLength));
        assert_eq!(sample().emit(&mut Packet::new_unchecked(&mut [0u8; 8][..])), Err(Error::BufferTooSmall));
    }
}
