//! The UDP header (RFC 768) and its checksum over IPv4/IPv6 pseudo-headers.

use crate::checksum;
use crate::error::{Error, Result};
use std::net::IpAddr;

pub const HEADER_LEN: usize = 8;
/// IP protocol number of UDP.
pub const PROTOCOL: u8 = 17;

/// A zero-copy view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Checks the length field: at least 8, at most the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet { buffer };
        let d = p.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = p.len() as usize;
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if d.len() < len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[0], self.buffer.as_ref()[1]])
    }

    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[2], self.buffer.as_ref()[3]])
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[4], self.buffer.as_ref()[5]])
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.buffer.as_ref()[6], self.buffer.as_ref()[7]])
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }

    /// Verifies the checksum. Zero means "none" over IPv4 and is an error over IPv6.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let len = self.len();
        let sum = checksum::accumulate(checksum::pseudo_header(src, dst, PROTOCOL, len as u32), &self.buffer.as_ref()[..len as usize]);
        checksum::fold(sum) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and writes the checksum over header, payload and pseudo-header.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        let len = self.len();
        self.buffer.as_mut()[6..8].fill(0);
        let sum = checksum::accumulate(checksum::pseudo_header(src, dst, PROTOCOL, len as u32), &self.buffer.as_ref()[..len as usize]);
        // A computed zero is sent as 0xffff (zero means "no checksum").
        let c = match !checksum::fold(sum) {
            0 => 0xffff,
            c => c,
        };
        self.buffer.as_mut()[6..8].copy_from_slice(&c.to_be_bytes());
    }
}

/// The UDP header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Reads a datagram, verifying its checksum against the outer addresses.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, src: &IpAddr, dst: &IpAddr) -> Result<Repr> {
        let p = Packet::new_checked(p.buffer.as_ref())?;
        if !p.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(Repr { src_port: p.src_port(), dst_port: p.dst_port(), payload_len: p.len() as usize - HEADER_LEN })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header over a buffer whose payload is already in place; the
    /// checksum is filled when `with_checksum` (always do so over IPv6).
    pub fn emit(&self, buf: &mut [u8], src: &IpAddr, dst: &IpAddr, with_checksum: bool) -> Result<()> {
        let len = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::BadLength)?;
        let buf = buf.get_mut(..len as usize).ok_or(Error::BufferTooSmall)?;
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..6].copy_from_slice(&len.to_be_bytes());
        buf[6..8].fill(0);
        if with_checksum || src.is_ipv6() {
            Packet::new_unchecked(buf).fill_checksum(src, dst);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_over_both_families() {
        let v4 = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        let v6: (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        for (src, dst) in [v4, v6] {
            let mut buf = vec![0u8; 13];
            buf[8..].copy_from_slice(b"hello");
            let repr = Repr { src_port: 5733, dst_port: 5733, payload_len: 5 };
            repr.emit(&mut buf, &src, &dst, true).unwrap();
            let p = Packet::new_checked(&buf[..]).unwrap();
            assert!(p.verify_checksum(&src, &dst));
            assert_eq!(Repr::parse(&p, &src, &dst).unwrap(), repr);
            buf[9] ^= 1;
            assert_eq!(Repr::parse(&Packet::new_unchecked(&buf[..]), &src, &dst), Err(Error::BadChecksum));
            buf[6..8].fill(0);
            // Zero means "no checksum" over IPv4 only.
            assert_eq!(Packet::new_unchecked(&buf[..]).verify_checksum(&src, &dst), src.is_ipv4());
        }
        assert_eq!(Packet::new_checked(&[0u8, 1, 2, 3, 0, 7, 0, 0][..]).unwrap_err(), Error::BadLength);
        assert_eq!(Packet::new_checked(&[0u8, 1, 2, 3, 0, 9, 0, 0][..]).unwrap_err(), Error::Truncated);
    }
}
