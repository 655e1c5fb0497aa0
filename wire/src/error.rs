//! The one error type of packet parsing: every malformed buffer maps to one of these.

use core::fmt;

/// Why a buffer is not a valid packet (or header) of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the fixed header or than a length field says.
    Truncated,
    /// The version field is not the one this parser reads.
    BadVersion(u8),
    /// A length field disagrees with the header layout (e.g. IPv4 IHL < 5,
    /// UDP length < 8, an extension header length not the one its type fixes).
    BadLength,
    /// A next-header value that names an extension W3IP does not define.
    UnknownExtension(u8),
    /// An extension header that appears twice, or after the payload started.
    DuplicateExtension(u8),
    /// A reserved field is not zero.
    ReservedNotZero,
    /// A checksum does not verify (IPv4 header, UDP; a zero UDP checksum over IPv6).
    BadChecksum,
    /// A fragmented outer IPv4/IPv6 packet: tunnels never fragment.
    Fragmented,
    /// The frame carries something other than W3IP (native or in UDP/5733).
    NotW3ip,
    /// The output buffer is too small for what is being emitted.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "buffer shorter than the header or a length field"),
            Error::BadVersion(v) => write!(f, "unsupported version {v}"),
            Error::BadLength => write!(f, "length field inconsistent with the header"),
            Error::UnknownExtension(n) => write!(f, "unknown extension header {n}"),
            Error::DuplicateExtension(n) => write!(f, "extension header {n} appears twice"),
            Error::ReservedNotZero => write!(f, "reserved field is not zero"),
            Error::BadChecksum => write!(f, "checksum does not verify"),
            Error::Fragmented => write!(f, "fragmented outer packet"),
            Error::NotW3ip => write!(f, "not a W3IP frame"),
            Error::BufferTooSmall => write!(f, "output buffer too small"),
        }
    }
}

impl std::error::Error for Error {}

/// Result of parsing or emitting a packet.
pub type Result<T> = core::result::Result<T, Error>;
