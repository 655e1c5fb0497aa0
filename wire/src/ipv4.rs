//! The IPv4 header (RFC 791), enough to carry and decapsulate W3IP-in-UDP.

use crate::checksum;
use crate::error::{Error, Result};
use std::net::Ipv4Addr;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks version, IHL, total length against the buffer (trailing padding allowed).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet { buffer };
        let d = p.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 4 {
            return Err(Error::BadVersion(p.version()));
        }
        let hl = p.header_len();
        let total = p.total_len() as usize;
        if hl < HEADER_LEN || total < hl {
            return Err(Error::BadLength);
        }
        if d.len() < total {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[0] & 0xf) as usize * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[2], self.buffer.as_ref()[3]])
    }

    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[4], self.buffer.as_ref()[5]])
    }

    /// More-fragments set or a nonzero fragment offset.
    pub fn is_fragment(&self) -> bool {
        let v = u16::from_be_bytes([self.buffer.as_ref()[6], self.buffer.as_ref()[7]]);
        v & 0x3fff != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[10], self.buffer.as_ref()[11]])
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[12], d[13], d[14], d[15])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[16], d[17], d[18], d[19])
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::accumulate(0, &self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }

    /// The bytes after the header, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

/// The IPv4 header's fields (options are not emitted; a parsed header's are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub dscp_ecn: u8,
}

impl Repr {
    /// Reads a checked packet; the header checksum must verify and fragments are refused.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let p = Packet::new_checked(p.buffer.as_ref())?;
        if !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if p.is_fragment() {
            return Err(Error::Fragmented);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header with DF set and its checksum.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let total = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::BadLength)?;
        let h = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
        h[0] = 0x45;
        h[1] = self.dscp_ecn;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].fill(0);
        h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].fill(0);
        h[12..16].copy_from_slice(&self.src_addr.octets());
        h[16..20].copy_from_slice(&self.dst_addr.octets());
        let sum = checksum::checksum(h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let repr = Repr { src_addr: Ipv4Addr::new(192, 0, 2, 1), dst_addr: Ipv4Addr::new(198, 51, 100, 7), protocol: 17, payload_len: 8, ttl: 64, dscp_ecn: 0 };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap(), repr);
        let mut bad = buf.clone();
        bad[8] = 63;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bad[..])), Err(Error::BadChecksum));
        bad = buf.clone();
        bad[0] = 0x44;
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::BadLength);
        bad[0] = 0x65;
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::BadVersion(6));
        assert_eq!(Packet::new_checked(&buf[..27]).unwrap_err(), Error::Truncated);
        bad = buf.clone();
        bad[6] = 0x20; // more fragments
        bad[10..12].fill(0);
        let sum = checksum::checksum(&bad[..20]);
        bad[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bad[..])), Err(Error::Fragmented));
    }
}
