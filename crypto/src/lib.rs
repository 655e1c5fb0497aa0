//! Wallets, Ed25519 device keys, AUTH/BIND signatures, batch verification for the
//! dataplane, and the session-key handshake.
//!
//! * [`wallet`]: secp256k1 wallets (k256): addresses, EIP-191 `personal_sign`, recovery.
//! * [`ed25519`]: device keys and **the verification rules** (strict encodings,
//!   small-order and torsion keys refused, cofactored equation) shared by every path.
//! * [`signed`]: sign/verify AUTH and BIND over exactly the bytes the wire crate names.
//! * [`batch`]: one multi-scalar equation per burst, bisection that names the bad items.
//! * [`shed`] and [`burst`]: per-source budgets and classes before verification.
//! * [`cache`] and [`registry`]: lock-free caches of checked keys and of
//!   wallet -> authorised device keys (single writer, arc-swap snapshots).
//! * [`session`]: X25519 + HKDF-SHA256 + ChaCha20-Poly1305 (ring), mutual proof of
//!   device keys.
//!
//! Every malformed key, signature, packet or handshake message is a typed
//! [`Error`]; nothing here panics on input.

pub mod batch;
pub mod burst;
pub mod cache;
pub mod ed25519;
mod error;
pub mod registry;
pub mod session;
pub mod shed;
pub mod signed;
pub mod wallet;

pub use batch::{BatchStats, BatchVerifier};
pub use burst::{BurstVerifier, Outcome};
pub use ed25519::{verify, DeviceKey, PublicKey};
pub use error::{Error, Result};
pub use wallet::WalletKey;
