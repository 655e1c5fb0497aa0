//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers of UDP.

use std::net::IpAddr;

/// Adds `data` as big-endian 16-bit words to a running 64-bit sum (odd tail padded with zero).
pub fn accumulate(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four 16-bit words at a time; the 64-bit accumulator cannot overflow for any frame.
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        sum += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        sum += u16::from_be_bytes([p[0], p[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        sum += (*last as u64) << 8;
    }
    sum
}

/// Folds a running sum to the 16-bit one's-complement sum.
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The one's-complement of the folded sum of `data`: the value a checksum field gets.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(accumulate(0, data))
}

/// The pseudo-header sum for a transport segment of `length` bytes and protocol `proto`.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, proto: u8, length: u32) -> u64 {
    let mut sum = ip_sum(src) + ip_sum(dst);
    sum += proto as u64;
    sum += (length >> 16) as u64 + (length & 0xffff) as u64;
    sum
}

fn ip_sum(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => accumulate(0, &a.octets()),
        IpAddr::V6(a) => accumulate(0, &a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071, section 3: sum 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length pads with a zero byte.
        assert_eq!(fold(accumulate(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }
}
