//! Text forms of addresses, prefixes and wallets.
//!
//! Output is canonical: sixteen lowercase hex groups without leading zeros, the
//! longest run of two or more zero groups written `::` (the first on ties), as
//! RFC 5952 does for eight groups.
//!
//! Input accepts, in this order:
//! - `0x` + 40 hex digits: the anycast address of that wallet (EIP-55 checked
//!   when the digits are mixed case);
//! - dotted IPv4 (`192.0.2.1`): placed at bits 0-31;
//! - W3IP text, compressed or fully expanded (sixteen groups);
//! - IPv6 text (eight groups, or `::` forms, or a dotted IPv4 tail): placed at
//!   bits 0-127.
//!
//! A `::` form with seven or fewer explicit groups (`2001:db8::1`) reads both as
//! W3IP and as IPv6. For an address the W3IP reading wins, so canonical output
//! always reads back to the same address. For a prefix at most one reading has
//! its host bits clear (an IPv6 prefix is at most /128, while the W3IP reading of
//! a nonzero group after `::` sits in groups 9-15, beyond bit 144), and that one
//! is taken: `2001:500:30ff::20/124` is the IPv6 block, as a RouteViews file means.

use crate::address::{keccak256, Address, Prefix, PrefixError, Wallet, ADDRESS_BITS};
use core::fmt;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a text form was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Nothing to parse.
    Empty,
    /// Not a W3IP, IPv6, IPv4 or wallet address.
    BadAddress(String),
    /// A `0x` wallet whose mixed-case digits fail the EIP-55 checksum.
    BadChecksum(String),
    /// The part after `/` is not a decimal length.
    BadLength(String),
    /// The length is too long for the family written (32, 128 or 256).
    LengthTooLong { text: String, max: u16 },
    /// Bits after the prefix length are set.
    HostBitsSet(String),
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            TextError::Empty => write!(f, "empty address"),
            TextError::BadAddress(s) => write!(f, "{s:?} is not a W3IP, IPv6, IPv4 or 0x wallet address"),
            TextError::BadChecksum(s) => write!(f, "{s:?} fails its EIP-55 checksum"),
            TextError::BadLength(s) => write!(f, "{s:?} has no valid decimal prefix length"),
            TextError::LengthTooLong { text, max } => {
                write!(f, "{text:?}: prefix length is over {max} for this address family")
            }
            TextError::HostBitsSet(s) => write!(f, "{s:?}: bits after the prefix length are set"),
        }
    }
}

impl std::error::Error for TextError {}

/// How an address text was read; decides the longest prefix it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    W3ip,
    Ipv6,
    Ipv4,
}

impl Family {
    fn max_len(self) -> u16 {
        match self {
            Family::W3ip => ADDRESS_BITS,
            Family::Ipv6 => 128,
            Family::Ipv4 => 32,
        }
    }
}

/// Parses W3IP group text: sixteen groups, or fewer around one `::`.
fn parse_w3ip_groups(s: &str) -> Option<Address> {
    let mut groups = [0u16; 16];
    let parse_side = |side: &str| -> Option<Vec<u16>> {
        if side.is_empty() {
            return Some(Vec::new());
        }
        side.split(':')
            .map(|g| {
                if g.is_empty() || g.len() > 4 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
                    None
                } else {
                    u16::from_str_radix(g, 16).ok()
                }
            })
            .collect()
    };
    match s.find("::") {
        Some(pos) => {
            let (head, tail) = (&s[..pos], &s[pos + 2..]);
            if tail.contains("::") {
                return None;
            }
            let head = parse_side(head)?;
            let tail = parse_side(tail)?;
            // `::` stands for at least one zero group.
            if head.len() + tail.len() > 15 {
                return None;
            }
            groups[..head.len()].copy_from_slice(&head);
            groups[16 - tail.len()..].copy_from_slice(&tail);
        }
        None => {
            let all = parse_side(s)?;
            if all.len() != 16 {
                return None;
            }
            groups.copy_from_slice(&all);
        }
    }
    Some(Address::from_groups(groups))
}

/// Parses `0x` + 40 hex digits into a wallet, checking EIP-55 on mixed case.
pub fn parse_wallet(s: &str) -> Result<Wallet, TextError> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| TextError::BadAddress(s.to_string()))?;
    let mut bytes = [0u8; 20];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| TextError::BadAddress(s.to_string()))?;
    }
    let wallet = Wallet(bytes);
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    if has_upper && has_lower {
        let lower = hex.to_ascii_lowercase();
        let hash = keccak256(lower.as_bytes());
        for (i, c) in hex.bytes().enumerate() {
            let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
            if c.is_ascii_alphabetic() && c.is_ascii_uppercase() != (nibble >= 8) {
                return Err(TextError::BadChecksum(s.to_string()));
            }
        }
    }
    Ok(wallet)
}

/// Every reading of an address text, the preferred one first.
fn readings(s: &str) -> Result<Vec<(Address, Family)>, TextError> {
    if s.is_empty() {
        return Err(TextError::Empty);
    }
    if s.starts_with("0x") || s.starts_with("0X") {
        return Ok(vec![(Address::anycast(parse_wallet(s)?), Family::W3ip)]);
    }
    if let Ok(v4) = Ipv4Addr::from_str(s) {
        return Ok(vec![(Address::from_ipv4(v4), Family::Ipv4)]);
    }
    let mut out = Vec::with_capacity(2);
    if let Some(a) = parse_w3ip_groups(s) {
        out.push((a, Family::W3ip));
    }
    if let Ok(v6) = Ipv6Addr::from_str(s) {
        let a = Address::from_ipv6(v6);
        if !out.iter().any(|(b, _)| *b == a) {
            out.push((a, Family::Ipv6));
        }
    }
    if out.is_empty() {
        Err(TextError::BadAddress(s.to_string()))
    } else {
        Ok(out)
    }
}

impl FromStr for Address {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Address, TextError> {
        Ok(readings(s.trim())?[0].0)
    }
}

impl FromStr for Wallet {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Wallet, TextError> {
        parse_wallet(s.trim())
    }
}

impl FromStr for Prefix {
    type Err = TextError;

    /// `addr/len`; a bare address is its host route (/32, /128 or /256 by family).
    fn from_str(s: &str) -> Result<Prefix, TextError> {
        let s = s.trim();
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let len = match len_text {
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                Some(l.parse::<u16>().map_err(|_| TextError::BadLength(s.to_string()))?)
            }
            Some(_) => return Err(TextError::BadLength(s.to_string())),
            None => None,
        };
        let mut first_error = None;
        for (addr, family) in readings(addr_text)? {
            let len = len.unwrap_or(family.max_len());
            if len > family.max_len() {
                first_error.get_or_insert(TextError::LengthTooLong { text: s.to_string(), max: family.max_len() });
                continue;
            }
            match Prefix::new(addr, len) {
                Ok(p) => return Ok(p),
                Err(PrefixError::HostBitsSet) => {
                    first_error.get_or_insert(TextError::HostBitsSet(s.to_string()));
                }
                Err(PrefixError::LengthTooLong(max)) => {
                    first_error.get_or_insert(TextError::LengthTooLong { text: s.to_string(), max });
                }
            }
        }
        Err(first_error.unwrap_or_else(|| TextError::BadAddress(s.to_string())))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let groups = self.groups();
        // Longest run of two or more zero groups; the first one on ties.
        let (mut best_start, mut best_len) = (0usize, 0usize);
        let mut i = 0;
        while i < 16 {
            if groups[i] == 0 {
                let start = i;
                while i < 16 && groups[i] == 0 {
                    i += 1;
                }
                if i - start > best_len {
                    best_start = start;
                    best_len = i - start;
                }
            } else {
                i += 1;
            }
        }
        let write_groups = |f: &mut fmt::Formatter, gs: &[u16]| -> fmt::Result {
            for (n, g) in gs.iter().enumerate() {
                if n > 0 {
                    f.write_str(":")?;
                }
                write!(f, "{g:x}")?;
            }
            Ok(())
        };
        if best_len >= 2 {
            write_groups(f, &groups[..best_start])?;
            f.write_str("::")?;
            write_groups(f, &groups[best_start + best_len..])
        } else {
            write_groups(f, &groups)
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[test]
    fn canonical_output() {
        assert_eq!(Address::UNSPECIFIED.to_string(), "::");
        let mut g = [0u16; 16];
        g[15] = 1;
        assert_eq!(Address::from_groups(g).to_string(), "::1");
        g = [0xffff; 16];
        g[3] = 0; // a single zero group is never compressed
        assert_eq!(
            Address::from_groups(g).to_string(),
            "ffff:ffff:ffff:0:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        // Two runs of equal length: the first is compressed.
        let g = [1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        assert_eq!(Address::from_groups(g).to_string(), "1::1:0:0:1:1:1:1:1:1:1:1:1:1");
        // The longer run wins over an earlier shorter one.
        let g = [0xab, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0x0db8];
        assert_eq!(Address::from_groups(g).to_string(), "ab:0:0:1::1:1:1:1:1:1:1:1:db8");
    }

    #[test]
    fn expanded_and_compressed_agree() {
        let full = "2001:0db8:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001";
        assert_eq!(a(full), a("2001:DB8::1"));
        assert_eq!(a(full).to_string(), "2001:db8::1");
    }

    #[test]
    fn ipv4_and_ipv6_mapping() {
        assert_eq!(a("192.0.2.1").to_string(), "c000:201::");
        // Eight explicit groups can only be IPv6.
        assert_eq!(a("2001:db8:0:0:0:0:0:1").to_string(), "2001:db8:0:0:0:0:0:1::");
        assert_eq!(a("::ffff:192.0.2.1").groups()[5..8], [0xffff, 0xc000, 0x201]);
        let p: Prefix = "10.0.0.0/8".parse().unwrap();
        assert_eq!((p.addr().as_bytes()[0], p.len()), (10, 8));
        assert_eq!("10.0.0.1/8".parse::<Prefix>(), Err(TextError::HostBitsSet("10.0.0.1/8".into())));
        assert!(matches!("10.0.0.0/33".parse::<Prefix>(), Err(TextError::LengthTooLong { max: 32, .. })));
        // A RouteViews line: only the IPv6 reading is a valid prefix.
        let p: Prefix = "2001:500:30ff::20/124".parse().unwrap();
        assert_eq!(p.addr().top_ipv6(), "2001:500:30ff::20".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.len(), 124);
        // The W3IP reading of the same text as a host route.
        let p: Prefix = "2001:500:30ff::20/256".parse().unwrap();
        assert_eq!(p.addr().groups()[15], 0x20);
        assert_eq!("2001:db8::/32".parse::<Prefix>().unwrap().to_string(), "2001:db8::/32");
    }

    #[test]
    fn wallets() {
        let s = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let addr = a(s);
        assert!(addr.is_anycast());
        assert_eq!(addr.anycast_wallet().unwrap().to_string(), s);
        assert_eq!(a(&s.to_lowercase()), addr);
        assert_eq!(a(&s.to_uppercase().replace("0X", "0x")), addr);
        let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert_eq!(bad.parse::<Address>(), Err(TextError::BadChecksum(bad.into())));
        assert_eq!(addr.to_string(), "::5aae:b605:3f3e:94c9:b9a0:9f33:6694:35e7:ef1b:eaed");
    }

    #[test]
    fn rejects() {
        for bad in [
            "", ":::", "1:::2", "1::2::3", "12345::", "g::", "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17",
            "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15", "0x1234", "::/", "::/abc", "::/257", "::/-1", "::/1000",
            "1:2:3:4:5:6:7:8:9:a:b:c:d:e:f::1",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad:?} parsed");
        }
        assert!("::/0".parse::<Prefix>().unwrap().is_empty());
        assert_eq!("::/256".parse::<Prefix>().unwrap().len(), 256);
    }
}
