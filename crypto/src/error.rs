//! The one error type of the crate: every malformed key, signature or message and
//! every failed check maps to one of these. Nothing in this crate panics on input.

use core::fmt;

/// Why a key, a signature, a message or a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    // --- Ed25519 public keys (checked once, when a key is prepared) ---
    /// The key's y coordinate is not reduced (y >= p), or x = 0 with the sign bit set.
    KeyNonCanonical,
    /// The 32 bytes are not the encoding of a curve point.
    KeyNotOnCurve,
    /// The key is one of the 8 points of small order (a "weak" key that verifies
    /// signatures on almost any message).
    KeySmallOrder,
    /// The key has a torsion component (it is not in the prime-order subgroup).
    KeyHasTorsion,

    // --- Ed25519 signatures ---
    /// S is not reduced modulo the group order l.
    SigNonCanonicalS,
    /// R's encoding is not canonical.
    SigNonCanonicalR,
    /// R is not the encoding of a curve point.
    SigRNotOnCurve,
    /// R is a point of small order.
    SigRSmallOrder,
    /// The verification equation does not hold: the signature is not one of this
    /// key over this message.
    BadSignature,
    /// A length is wrong (key not 32 bytes, signature not 64 bytes, ...).
    BadLength,

    // --- secp256k1 / Ethereum ---
    /// A secp256k1 secret key that is zero or not below the group order.
    SecpBadSecretKey,
    /// A secp256k1 public key that is not a valid SEC1 point.
    SecpBadPublicKey,
    /// r or s is zero or not below the group order.
    SecpBadSignature,
    /// s is in the upper half of the order (EIP-2 forbids such malleable signatures).
    SecpHighS,
    /// The recovery byte v is not 0, 1, 27 or 28.
    SecpBadRecoveryId,
    /// No public key can be recovered from this signature and hash.
    SecpRecoveryFailed,
    /// The recovered wallet is not the expected one.
    WrongWallet,

    // --- device-key authorisation ---
    /// The wallet has not authorised this device key.
    NotAuthorised,
    /// The device key's authorisation has expired.
    Expired,
    /// A DID attribute that is not an Ed25519 verification key, or whose value is
    /// not a 32-byte key (raw or base64).
    BadAttribute,

    // --- packets ---
    /// The packet has no AUTH (or BIND) header where one was required.
    MissingHeader,
    /// The key in the header is not the key the caller expected.
    KeyMismatch,
    /// The packet itself is malformed.
    Wire(chainroute_wire::Error),

    // --- session handshake and records ---
    /// A handshake message that is malformed or of the wrong version or type.
    BadHandshake,
    /// The operating system's random generator failed.
    Random,
    /// Key agreement failed (e.g. a low-order X25519 share gave a zero secret).
    KeyAgreement,
    /// A record that does not authenticate (tampered, wrong key, truncated).
    Decrypt,
    /// A record counter that was already seen or is too old (replay).
    Replay,
    /// The send counter is exhausted: the session must be re-keyed.
    CounterExhausted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = match self {
            Error::KeyNonCanonical => "Ed25519 key: non-canonical encoding",
            Error::KeyNotOnCurve => "Ed25519 key: not a curve point",
            Error::KeySmallOrder => "Ed25519 key: small-order (weak) key",
            Error::KeyHasTorsion => "Ed25519 key: not in the prime-order subgroup",
            Error::SigNonCanonicalS => "Ed25519 signature: S is not reduced",
            Error::SigNonCanonicalR => "Ed25519 signature: non-canonical R",
            Error::SigRNotOnCurve => "Ed25519 signature: R is not a curve point",
            Error::SigRSmallOrder => "Ed25519 signature: R has small order",
            Error::BadSignature => "signature does not verify",
            Error::BadLength => "wrong length",
            Error::SecpBadSecretKey => "secp256k1: invalid secret key",
            Error::SecpBadPublicKey => "secp256k1: invalid public key",
            Error::SecpBadSignature => "secp256k1: r or s out of range",
            Error::SecpHighS => "secp256k1: high-s signature (EIP-2)",
            Error::SecpBadRecoveryId => "secp256k1: recovery id not 0/1/27/28",
            Error::SecpRecoveryFailed => "secp256k1: no key recovers from this signature",
            Error::WrongWallet => "signature is from another wallet",
            Error::NotAuthorised => "device key not authorised by the wallet",
            Error::Expired => "device key authorisation expired",
            Error::BadAttribute => "not an Ed25519 DID verification key attribute",
            Error::MissingHeader => "required extension header missing",
            Error::KeyMismatch => "header names another key",
            Error::Wire(e) => return write!(f, "malformed packet: {e}"),
            Error::BadHandshake => "malformed handshake message",
            Error::Random => "random generator failed",
            Error::KeyAgreement => "key agreement failed",
            Error::Decrypt => "record does not authenticate",
            Error::Replay => "replayed or too old record",
            Error::CounterExhausted => "record counter exhausted",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {}

impl From<chainroute_wire::Error> for Error {
    fn from(e: chainroute_wire::Error) -> Error {
        Error::Wire(e)
    }
}

/// Result of this crate's operations.
pub type Result<T> = core::result::Result<T, Error>;
