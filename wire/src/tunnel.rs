//! The two ways W3IP travels in a frame: natively over Ethernet (EtherType 0x88B5)
//! and in UDP (port 5733) over IPv4 or IPv6, the tunnel of the cold-start phase.
//!
//! [`Decap::parse`] reads a whole Ethernet frame and says where the W3IP packet is;
//! [`UdpTunnel::emit`] writes the outer Ethernet + IP + UDP headers in front of one.

use crate::error::{Error, Result};
use crate::ethernet::{self, ethertype, MacAddr};
use crate::{ipv4, ipv6, udp, w3ip};
use core::ops::Range;
use std::net::{IpAddr, SocketAddr};

/// The UDP port of the W3IP tunnel.
pub const UDP_PORT: u16 = 5733;

/// How a frame carried its W3IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Native: Ethernet with EtherType 0x88B5.
    Native,
    /// In UDP: the outer source and destination endpoints (the source is the NAT'd
    /// public endpoint of a host behind NAT, or a peer router's endpoint).
    Udp { src: SocketAddr, dst: SocketAddr },
}

/// A decapsulated frame: where the W3IP packet lies and how it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decap {
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub carrier: Carrier,
    /// The W3IP packet's bytes within the frame (no trailing padding).
    pub inner: Range<usize>,
}

impl Decap {
    /// Classifies and decapsulates an Ethernet frame. Anything that is neither
    /// native W3IP nor UDP to port 5733 is [`Error::NotW3ip`]; outer headers are
    /// checked (lengths, IPv4 header checksum, UDP checksum) and the inner W3IP
    /// header's lengths are checked too.
    #[inline(always)]
    pub fn parse(frame: &[u8]) -> Result<Decap> {
        let eth = ethernet::Frame::new_checked(frame)?;
        let (eth_src, eth_dst) = (eth.src_addr(), eth.dst_addr());
        let l3 = ethernet::HEADER_LEN;
        let (carrier, start) = match eth.ethertype() {
            ethertype::W3IP => (Carrier::Native, l3),
            ethertype::IPV4 => {
                let ip = ipv4::Packet::new_checked(&frame[l3..])?;
                if ip.protocol() != udp::PROTOCOL {
                    return Err(Error::NotW3ip);
                }
                let repr = ipv4::Repr::parse(&ip)?;
                let hl = ip.header_len();
                Self::udp(&frame[l3 + hl..l3 + hl + repr.payload_len], repr.src_addr.into(), repr.dst_addr.into(), l3 + hl)?
            }
            ethertype::IPV6 => {
                let ip = ipv6::Packet::new_checked(&frame[l3..])?;
                if ip.next_header() != udp::PROTOCOL {
                    return Err(Error::NotW3ip);
                }
                let repr = ipv6::Repr::parse(&ip)?;
                let hl = ipv6::HEADER_LEN;
                Self::udp(&frame[l3 + hl..l3 + hl + repr.payload_len], repr.src_addr.into(), repr.dst_addr.into(), l3 + hl)?
            }
            _ => return Err(Error::NotW3ip),
        };
        let end = match carrier {
            Carrier::Native => frame.len(),
            // The UDP length bounds the inner packet.
            Carrier::Udp { .. } => start + udp::Packet::new_unchecked(&frame[start - udp::HEADER_LEN..]).len() as usize - udp::HEADER_LEN,
        };
        let packet = w3ip::Packet::new_checked(&frame[start..end])?;
        Ok(Decap { eth_src, eth_dst, carrier, inner: start..start + packet.total_len() })
    }

    fn udp(datagram: &[u8], src: IpAddr, dst: IpAddr, offset: usize) -> Result<(Carrier, usize)> {
        let p = udp::Packet::new_checked(datagram)?;
        if p.dst_port() != UDP_PORT {
            return Err(Error::NotW3ip);
        }
        let repr = udp::Repr::parse(&p, &src, &dst)?;
        let carrier = Carrier::Udp { src: SocketAddr::new(src, repr.src_port), dst: SocketAddr::new(dst, repr.dst_port) };
        Ok((carrier, offset + udp::HEADER_LEN))
    }
}

/// A prebuilt outer header set for one tunnel next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpTunnel {
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// TTL / hop limit of the outer header.
    pub outer_hop_limit: u8,
    /// Fill the UDP checksum over IPv4 too (always filled over IPv6).
    pub ipv4_udp_checksum: bool,
}

impl UdpTunnel {
    /// Bytes of Ethernet + IP + UDP in front of the W3IP packet.
    pub fn header_len(&self) -> usize {
        ethernet::HEADER_LEN
            + match self.dst {
                SocketAddr::V4(_) => ipv4::HEADER_LEN,
                SocketAddr::V6(_) => ipv6::HEADER_LEN,
            }
            + udp::HEADER_LEN
    }

    /// Writes the outer headers into `frame[..header_len()]`, for the W3IP packet
    /// of `inner_len` bytes already at `frame[header_len()..]`. Lengths and
    /// checksums are filled in.
    pub fn emit(&self, frame: &mut [u8], inner_len: usize) -> Result<usize> {
        let hl = self.header_len();
        let total = hl + inner_len;
        if frame.len() < total {
            return Err(Error::BufferTooSmall);
        }
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err(Error::BadVersion(if self.src.is_ipv4() { 4 } else { 6 }));
        }
        let udp_len = udp::HEADER_LEN + inner_len;
        let l3 = ethernet::HEADER_LEN;
        let (ethertype, ip_len) = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                ipv4::Repr { src_addr: s, dst_addr: d, protocol: udp::PROTOCOL, payload_len: udp_len, ttl: self.outer_hop_limit, dscp_ecn: 0 }.emit(&mut frame[l3..])?;
                (ethertype::IPV4, ipv4::HEADER_LEN)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                ipv6::Repr { src_addr: s, dst_addr: d, next_header: udp::PROTOCOL, payload_len: udp_len, hop_limit: self.outer_hop_limit, traffic_class: 0, flow_label: 0 }
                    .emit(&mut frame[l3..])?;
                (ethertype::IPV6, ipv6::HEADER_LEN)
            }
            _ => unreachable!("families checked above"),
        };
        udp::Repr { src_port: self.src.port(), dst_port: self.dst.port(), payload_len: inner_len }.emit(
            &mut frame[l3 + ip_len..total],
            &self.src.ip(),
            &self.dst.ip(),
            self.ipv4_udp_checksum,
        )?;
        ethernet::Repr { src_addr: self.eth_src, dst_addr: self.eth_dst, ethertype }.emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]))?;
        Ok(total)
    }
}

/// Writes the Ethernet header of a native frame in front of a W3IP packet at `frame[14..]`.
pub fn emit_native(frame: &mut [u8], eth_src: MacAddr, eth_dst: MacAddr) -> Result<()> {
    ethernet::Repr { src_addr: eth_src, dst_addr: eth_dst, ethertype: ethertype::W3IP }.emit(&mut ethernet::Frame::new_unchecked(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Vec<u8> {
        let repr = w3ip::Repr {
            traffic_class: 0,
            flow_label: 7,
            payload_len: 3,
            next_header: 59,
            hop_limit: 5,
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut w3ip::Packet::new_unchecked(&mut buf[..])).unwrap();
        buf[72..].copy_from_slice(b"abc");
        buf
    }

    #[test]
    fn tunnel_round_trips() {
        let w = inner();
        for (src, dst) in [("192.0.2.1:5733", "198.51.100.2:5733"), ("[2001:db8::a]:40000", "[2001:db8::b]:5733")] {
            let t = UdpTunnel {
                eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
                eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                outer_hop_limit: 64,
                ipv4_udp_checksum: true,
            };
            let mut frame = vec![0u8; t.header_len() + w.len() + 6]; // + Ethernet padding
            frame[t.header_len()..t.header_len() + w.len()].copy_from_slice(&w);
            assert_eq!(t.emit(&mut frame, w.len()).unwrap(), t.header_len() + w.len());
            let d = Decap::parse(&frame).unwrap();
            assert_eq!(d.carrier, Carrier::Udp { src: t.src, dst: t.dst });
            assert_eq!(&frame[d.inner.clone()], &w[..]);
            // A flipped payload bit breaks the UDP checksum.
            let last = t.header_len() + w.len() - 1;
            frame[last] ^= 0x40;
            assert_eq!(Decap::parse(&frame).unwrap_err(), Error::BadChecksum);
        }
    }

    #[test]
    fn native_and_not_w3ip() {
        let w = inner();
        let mut frame = vec![0u8; 14 + w.len()];
        frame[14..].copy_from_slice(&w);
        emit_native(&mut frame, MacAddr([2; 6]), MacAddr([4; 6])).unwrap();
        let d = Decap::parse(&frame).unwrap();
        assert_eq!((d.carrier, d.inner.clone()), (Carrier::Native, 14..14 + w.len()));
        frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
        assert_eq!(Decap::parse(&frame).unwrap_err(), Error::NotW3ip);
        // UDP to another port.
        let t = UdpTunnel { eth_src: MacAddr([2; 6]), eth_dst: MacAddr([4; 6]), src: "10.0.0.1:53".parse().unwrap(), dst: "10.0.0.2:53".parse().unwrap(), outer_hop_limit: 1, ipv4_udp_checksum: false };
        let mut frame = vec![0u8; t.header_len() + w.len()];
        frame[t.header_len()..].copy_from_slice(&w);
        t.emit(&mut frame, w.len()).unwrap();
        assert_eq!(Decap::parse(&frame).unwrap_err(), Error::NotW3ip);
    }
}
