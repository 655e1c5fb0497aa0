//! W3IP v1, the wire format of chainroute: 256-bit addresses and prefixes with their
//! text forms, the 72-byte header, the AUTH and BIND extension headers, and the
//! Ethernet / IPv4 / IPv6 / UDP encapsulations. Every crate of the workspace uses it.
//!
//! Packet code follows smoltcp's `wire` module: a zero-copy `Packet<T: AsRef<[u8]>>`
//! view with `new_checked` for untrusted input, and a `Repr` that parses and emits.
//! No input can make it panic; every malformed buffer is a typed [`Error`].
//!
//! IPv4/IPv6/UDP are our own small views rather than a crate (etherparse,
//! smoltcp): the tunnel needs only fixed headers, checksum verification and
//! emission into a prebuilt buffer, which fits in a few hundred lines with no
//! allocation and no dependency to audit; the full protocol is in `docs/w3ip.md`.

pub mod address;
pub mod checksum;
mod error;
pub mod ethernet;
pub mod ext;
pub mod ipv4;
pub mod ipv6;
pub mod text;
pub mod tunnel;
pub mod udp;
pub mod w3ip;

pub use address::{keccak256, Address, Prefix, PrefixError, Wallet};
pub use error::{Error, Result};
pub use ethernet::MacAddr;
pub use text::TextError;
