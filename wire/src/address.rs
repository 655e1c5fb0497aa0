//! 256-bit W3IP addresses, prefixes and 160-bit wallets.
//!
//! Bit numbering is network order: bit 0 is the most significant bit of byte 0.
//! A unicast address is a 96-bit routing prefix followed by a 160-bit interface id
//! (for a host, its wallet); an anycast address is `::/96` followed by a wallet.

use core::fmt;

/// Bytes in an address.
pub const ADDRESS_LEN: usize = 32;
/// Bits in an address.
pub const ADDRESS_BITS: u16 = 256;
/// Bytes in a wallet (an Ethereum account address).
pub const WALLET_LEN: usize = 20;
/// Bits of routing prefix in front of the interface id.
pub const LOCATOR_BITS: u16 = 96;
const LOCATOR_LEN: usize = 12;

/// A 160-bit Ethereum wallet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Wallet(pub [u8; WALLET_LEN]);

/// A 256-bit W3IP address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; ADDRESS_LEN]);

/// An address block: `len` leading bits of `addr`, with every bit after them zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: Address,
    len: u16,
}

/// Why a prefix could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// The length is over 256.
    LengthTooLong(u16),
    /// Bits after the prefix length are set (`10.0.0.1/8` is not a prefix).
    HostBitsSet,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            PrefixError::LengthTooLong(l) => write!(f, "prefix length {l} is over 256"),
            PrefixError::HostBitsSet => write!(f, "bits after the prefix length are set"),
        }
    }
}

impl std::error::Error for PrefixError {}

impl Address {
    /// The all-zero address (`::`).
    pub const UNSPECIFIED: Address = Address([0; ADDRESS_LEN]);

    /// Builds an address from its network-order bytes.
    pub const fn from_bytes(bytes: [u8; ADDRESS_LEN]) -> Address {
        Address(bytes)
    }

    /// Reads an address from the first 32 bytes of `data`; `None` when shorter.
    pub fn from_slice(data: &[u8]) -> Option<Address> {
        let bytes: [u8; ADDRESS_LEN] = data.get(..ADDRESS_LEN)?.try_into().ok()?;
        Some(Address(bytes))
    }

    /// The network-order bytes.
    pub const fn as_bytes(&self) -> &[u8; ADDRESS_LEN] {
        &self.0
    }

    /// The anycast address of a wallet: `::/96` followed by the 160 wallet bits.
    pub fn anycast(wallet: Wallet) -> Address {
        let mut bytes = [0u8; ADDRESS_LEN];
        bytes[LOCATOR_LEN..].copy_from_slice(&wallet.0);
        Address(bytes)
    }

    /// The unicast address of a host: the top 96 bits of `locator`, then the wallet.
    pub fn unicast(locator: &Address, wallet: Wallet) -> Address {
        let mut bytes = locator.0;
        bytes[LOCATOR_LEN..].copy_from_slice(&wallet.0);
        Address(bytes)
    }

    /// True for addresses in the anycast space `::/96`.
    pub fn is_anycast(&self) -> bool {
        self.0[..LOCATOR_LEN].iter().all(|&b| b == 0)
    }

    /// The wallet of an anycast address, `None` for unicast ones.
    pub fn anycast_wallet(&self) -> Option<Wallet> {
        self.is_anycast().then(|| self.interface_id())
    }

    /// The low 160 bits: the interface id (for a host, its wallet).
    pub fn interface_id(&self) -> Wallet {
        let mut w = [0u8; WALLET_LEN];
        w.copy_from_slice(&self.0[LOCATOR_LEN..]);
        Wallet(w)
    }

    /// The top 16 bits: the area code, under which license roots are allocated.
    pub fn area_code(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }

    /// Bit `i` (0 = most significant), `i < 256`.
    pub fn bit(&self, i: u16) -> bool {
        debug_assert!(i < ADDRESS_BITS);
        self.0[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// The next address (all ones wraps to all zeros): the first one past a block's
    /// last address, where lookups change hands.
    pub fn wrapping_next(&self) -> Address {
        let mut bytes = self.0;
        for b in bytes.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        Address(bytes)
    }

    /// The address with every bit from `len` on cleared.
    pub fn masked(&self, len: u16) -> Address {
        let len = len.min(ADDRESS_BITS) as usize;
        let mut bytes = self.0;
        let full = len / 8;
        if full < ADDRESS_LEN {
            bytes[full] &= !(0xffu8.checked_shr((len % 8) as u32).unwrap_or(0));
            bytes[full + 1..].fill(0);
        }
        Address(bytes)
    }

    /// An IPv4 address placed at bits 0-31 (the cold-start mapping).
    pub fn from_ipv4(ip: std::net::Ipv4Addr) -> Address {
        let mut bytes = [0u8; ADDRESS_LEN];
        bytes[..4].copy_from_slice(&ip.octets());
        Address(bytes)
    }

    /// An IPv6 address placed at bits 0-127 (the cold-start mapping).
    pub fn from_ipv6(ip: std::net::Ipv6Addr) -> Address {
        let mut bytes = [0u8; ADDRESS_LEN];
        bytes[..16].copy_from_slice(&ip.octets());
        Address(bytes)
    }

    /// The top 128 bits as an IPv6 address (what 128-bit engines see of a key).
    pub fn top_ipv6(&self) -> std::net::Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.0[..16]);
        std::net::Ipv6Addr::from(o)
    }

    /// The sixteen 16-bit groups of the text form.
    pub fn groups(&self) -> [u16; 16] {
        core::array::from_fn(|i| u16::from_be_bytes([self.0[2 * i], self.0[2 * i + 1]]))
    }

    /// Builds an address from sixteen 16-bit groups.
    pub fn from_groups(groups: [u16; 16]) -> Address {
        let mut bytes = [0u8; ADDRESS_LEN];
        for (i, g) in groups.iter().enumerate() {
            bytes[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
        }
        Address(bytes)
    }
}

impl From<[u8; ADDRESS_LEN]> for Address {
    fn from(bytes: [u8; ADDRESS_LEN]) -> Address {
        Address(bytes)
    }
}

impl Wallet {
    /// Reads a wallet from the first 20 bytes of `data`; `None` when shorter.
    pub fn from_slice(data: &[u8]) -> Option<Wallet> {
        Some(Wallet(data.get(..WALLET_LEN)?.try_into().ok()?))
    }

    /// The EIP-55 mixed-case checksummed text, `0x` included.
    pub fn to_checksum_string(&self) -> String {
        let lower = hex_lower(&self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0xf;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// Keccak-256, as Ethereum uses it (not NIST SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    use sha3::Digest;
    sha3::Keccak256::digest(data).into()
}

fn hex_lower(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

impl fmt::Display for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.to_checksum_string())
    }
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Wallet({self})")
    }
}

impl Prefix {
    /// The prefix `::/0`, which covers everything.
    pub const DEFAULT: Prefix = Prefix { addr: Address::UNSPECIFIED, len: 0 };

    /// A prefix; fails when `len > 256` or a bit after `len` is set.
    pub fn new(addr: Address, len: u16) -> Result<Prefix, PrefixError> {
        if len > ADDRESS_BITS {
            return Err(PrefixError::LengthTooLong(len));
        }
        if addr.masked(len) != addr {
            return Err(PrefixError::HostBitsSet);
        }
        Ok(Prefix { addr, len })
    }

    /// The prefix of length `len` that contains `addr` (host bits cleared).
    pub fn truncating(addr: Address, len: u16) -> Prefix {
        let len = len.min(ADDRESS_BITS);
        Prefix { addr: addr.masked(len), len }
    }

    /// The /256 host route of one address.
    pub fn host(addr: Address) -> Prefix {
        Prefix { addr, len: ADDRESS_BITS }
    }

    /// The first address of the block.
    pub fn addr(&self) -> Address {
        self.addr
    }

    /// The number of leading bits that are fixed.
    pub fn len(&self) -> u16 {
        self.len
    }

    /// True only for `::/0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `addr` lies inside the block.
    pub fn contains(&self, addr: &Address) -> bool {
        addr.masked(self.len) == self.addr
    }

    /// True when `other` lies inside (or equals) this block.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains(&other.addr)
    }

    /// The last address of the block.
    pub fn last(&self) -> Address {
        let mut bytes = self.addr.0;
        for i in self.len..ADDRESS_BITS {
            bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        }
        Address(bytes)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Prefix({self})")
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anycast_round_trip_and_area_code() {
        let w = Wallet([0xab; 20]);
        let a = Address::anycast(w);
        assert!(a.is_anycast());
        assert_eq!(a.anycast_wallet(), Some(w));
        let mut loc = [0u8; 32];
        loc[0] = 0x20;
        loc[1] = 0x01;
        loc[11] = 1;
        let u = Address::unicast(&Address(loc), w);
        assert!(!u.is_anycast());
        assert_eq!(u.anycast_wallet(), None);
        assert_eq!(u.interface_id(), w);
        assert_eq!(u.area_code(), 0x2001);
    }

    #[test]
    fn prefix_rules() {
        let mut b = [0u8; 32];
        b[0] = 0x80;
        assert_eq!(Prefix::new(Address(b), 0), Err(PrefixError::HostBitsSet));
        assert!(Prefix::new(Address(b), 1).is_ok());
        assert_eq!(Prefix::new(Address(b), 257), Err(PrefixError::LengthTooLong(257)));
        let p = Prefix::new(Address(b), 1).unwrap();
        assert!(p.contains(&p.last()));
        assert!(!p.contains(&Address::UNSPECIFIED));
        assert!(Prefix::DEFAULT.covers(&p));
        assert!(!p.covers(&Prefix::DEFAULT));
        assert_eq!(Prefix::host(p.last()).len(), 256);
        assert_eq!(p.last().masked(256), p.last());
        assert_eq!(p.last().masked(0), Address::UNSPECIFIED);
        // 8000::/1 ends at all ones, which wraps; the block before it ends at 7fff...
        assert_eq!(p.last().wrapping_next(), Address::UNSPECIFIED);
        let lower = Prefix::new(Address::UNSPECIFIED, 1).unwrap();
        assert_eq!(lower.last().wrapping_next(), p.addr());
    }

    #[test]
    fn eip55_known_vectors() {
        // Test vectors from the EIP-55 specification.
        for s in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let mut bytes = [0u8; 20];
            for i in 0..20 {
                bytes[i] = u8::from_str_radix(&s[2 + 2 * i..4 + 2 * i], 16).unwrap();
            }
            assert_eq!(Wallet(bytes).to_checksum_string(), s);
        }
    }
}
