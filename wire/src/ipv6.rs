//! The IPv6 fixed header (RFC 8200), enough to carry and decapsulate W3IP-in-UDP.

use crate::error::{Error, Result};
use std::net::Ipv6Addr;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The Fragment extension header.
pub const NEXT_HEADER_FRAGMENT: u8 = 44;

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks version and payload length against the buffer (trailing padding allowed).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet { buffer };
        let d = p.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 6 {
            return Err(Error::BadVersion(p.version()));
        }
        if d.len() < HEADER_LEN + p.payload_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        let d = self.buffer.as_ref();
        (d[0] << 4) | (d[1] >> 4)
    }

    pub fn flow_label(&self) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_be_bytes([0, d[1] & 0xf, d[2], d[3]])
    }

    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[4], self.buffer.as_ref()[5]])
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        let o: [u8; 16] = self.buffer.as_ref()[8..24].try_into().expect("16-byte field");
        Ipv6Addr::from(o)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        let o: [u8; 16] = self.buffer.as_ref()[24..40].try_into().expect("16-byte field");
        Ipv6Addr::from(o)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }
}

/// The IPv6 fixed header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Repr {
    /// Reads a checked packet; fragments are refused.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let p = Packet::new_checked(p.buffer.as_ref())?;
        if p.next_header() == NEXT_HEADER_FRAGMENT {
            return Err(Error::Fragmented);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len() as usize,
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let plen = u16::try_from(self.payload_len).map_err(|_| Error::BadLength)?;
        if self.flow_label > 0xf_ffff {
            return Err(Error::BadLength);
        }
        let h = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
        let w0 = (6u32 << 28) | ((self.traffic_class as u32) << 20) | self.flow_label;
        h[0..4].copy_from_slice(&w0.to_be_bytes());
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        h[6] = self.next_header;
        h[7] = self.hop_limit;
        h[8..24].copy_from_slice(&self.src_addr.octets());
        h[24..40].copy_from_slice(&self.dst_addr.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let repr = Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: 17,
            payload_len: 8,
            hop_limit: 64,
            traffic_class: 0xab,
            flow_label: 0x12345,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), repr);
        assert_eq!(Packet::new_checked(&buf[..47]).unwrap_err(), Error::Truncated);
        buf[0] = 0x40;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::BadVersion(4));
        buf[0] = 0x6a;
        buf[6] = NEXT_HEADER_FRAGMENT;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&buf[..])), Err(Error::Fragmented));
    }
}
