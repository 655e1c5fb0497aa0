//! Ed25519 device keys and the one rule set every verification in chainroute uses.
//!
//! # Verification rules
//!
//! A signature `(R, S)` by public key `A` over message `M` is accepted if and only if:
//!
//! 1. **A** is a canonical encoding (y < p, and the sign bit clear when x = 0),
//!    decompresses to a curve point, is **not of small order** (not one of the 8
//!    "weak" keys) and is **torsion-free** (in the prime-order subgroup). These
//!    checks run once, when a key is prepared ([`PublicKey::from_bytes`]), and the
//!    result is cached with the key, so they cost nothing per packet.
//! 2. **S** is canonical: `S < l` (no malleable `S + l`).
//! 3. **R** is a canonical encoding, decompresses to a curve point and is not of
//!    small order.
//! 4. The **cofactored** equation holds: `[8]([S]B - [k]A - R) = 0`, with
//!    `k = SHA-512(R || A || M) mod l`.
//!
//! Rules 2-3 are checked for every item *before* it enters a batch (`prepare`),
//! by the same function for the single and the batch path, so a malformed item is
//! reported with its own typed error and never reaches (or poisons) a batch.
//! ed25519-dalek's `verify_batch` skips the weak-key test; here it cannot be
//! skipped, because a [`PublicKey`] only exists once rule 1 holds.
//!
//! Why cofactored: a batch checks `sum z_i [8](S_i B - k_i A_i - R_i) = 0` for
//! secret random 128-bit `z_i`. Without the factor 8 a torsion component in some
//! `R_i` vanishes from the sum with probability 1/2 to 1/8, so a cofactorless batch
//! cannot agree with a cofactorless single check. With the factor in both, single
//! and batch agree on every input, except that a batch holding a bad item passes
//! with probability at most 2^-128 (z_i is secret and odd, hence non-zero mod l).
//!
//! Compared with other rule sets: this is ZIP-215's equation with *stricter*
//! encodings (ZIP-215 accepts non-canonical A and R and small-order keys). Against
//! ed25519-dalek's `verify_strict` (cofactorless) the only difference is that we
//! accept an `R` carrying a torsion component, which no honest RFC 8032 signer
//! produces (it costs a scalar multiplication per signature to refuse). Every
//! signature an RFC 8032 signer makes is accepted by all of them.
//! Because `(R + T, S)` may then also verify for a torsion point `T` after
//! re-signing, caches must key verified results by (key, message), never by the
//! signature bytes.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha512};

use crate::error::{Error, Result};

/// Bytes in an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes in an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes in an Ed25519 secret seed.
pub const SEED_LEN: usize = 32;

/// y = 1 (the identity, x = 0).
const Y_ONE: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};
/// y = p - 1 = 2^255 - 20 (the point of order 2, x = 0).
const Y_MINUS_ONE: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xec;
    b[31] = 0x7f;
    b
};

/// True when `bytes` is the canonical encoding of a point: y < p = 2^255 - 19, and
/// the sign bit is clear when x = 0 (x = 0 exactly when y = 1 or y = p - 1).
/// Says nothing about whether the point exists (decompression tells).
pub fn is_canonical_point(bytes: &[u8; 32]) -> bool {
    let y_ge_p = bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed;
    if y_ge_p {
        return false;
    }
    if bytes[31] & 0x80 != 0 {
        let mut y = *bytes;
        y[31] &= 0x7f;
        if y == Y_ONE || y == Y_MINUS_ONE {
            return false;
        }
    }
    true
}

/// True when `[l]P = 0`, i.e. `P` is in the prime-order subgroup. Variable time
/// (keys are public): `[l - 1]P + P` with the double-scalar ladder, ~3x cheaper
/// than curve25519-dalek's constant-time `is_torsion_free`. Correct because
/// `l = 5 mod 8`: for `P = Q + T` with `T` of order 2, 4 or 8, `[l]P = [5]T != 0`.
pub(crate) fn is_torsion_free(point: &EdwardsPoint) -> bool {
    let l_minus_one = -Scalar::ONE;
    let lp = EdwardsPoint::vartime_double_scalar_mul_basepoint(&l_minus_one, point, &Scalar::ZERO) + point;
    lp.is_identity()
}

/// A checked Ed25519 public key, ready for verification: its point is decompressed
/// (which costs ~3 us, so keep these in a cache) and satisfies rule 1 of the
/// [module rules](self).
#[derive(Clone, Copy)]
pub struct PublicKey {
    bytes: [u8; 32],
    /// -A: the equations subtract [k]A.
    neg_point: EdwardsPoint,
}

impl PublicKey {
    /// Parses and checks a key: canonical, on the curve, not small-order, torsion-free.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey> {
        if !is_canonical_point(bytes) {
            return Err(Error::KeyNonCanonical);
        }
        let point = CompressedEdwardsY(*bytes).decompress().ok_or(Error::KeyNotOnCurve)?;
        if point.is_small_order() {
            return Err(Error::KeySmallOrder);
        }
        if !is_torsion_free(&point) {
            return Err(Error::KeyHasTorsion);
        }
        Ok(PublicKey { bytes: *bytes, neg_point: -point })
    }

    /// Like [`from_bytes`](Self::from_bytes) for a slice that must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| Error::BadLength)?;
        PublicKey::from_bytes(bytes)
    }

    /// The 32-byte encoding.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The 32-byte encoding, by value.
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The key as ed25519-dalek's type (for interoperability and tests).
    pub fn to_dalek(&self) -> ed25519_dalek::VerifyingKey {
        ed25519_dalek::VerifyingKey::from(-self.neg_point)
    }

    pub(crate) fn neg_point(&self) -> &EdwardsPoint {
        &self.neg_point
    }

    /// Verifies `sig` over `msg` under the [module rules](self).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> Result<()> {
        verify(self, msg, sig)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state)
    }
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.bytes {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// An Ed25519 device key: the secret a host or router signs AUTH/BIND with, and
/// that a wallet authorises on chain (ERC-1056).
#[derive(Clone)]
pub struct DeviceKey {
    signing: SigningKey,
    public: PublicKey,
}

impl DeviceKey {
    /// The key of a 32-byte secret seed (RFC 8032).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> DeviceKey {
        let signing = SigningKey::from_bytes(seed);
        let vk = signing.verifying_key();
        // A key derived from a seed is a clamped multiple of B: prime order and
        // never small, so rule 1 holds without re-checking it.
        let public = PublicKey { bytes: vk.to_bytes(), neg_point: -vk.to_edwards() };
        DeviceKey { signing, public }
    }

    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Result<DeviceKey> {
        let mut seed = [0u8; SEED_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).map_err(|_| Error::Random)?;
        let key = DeviceKey::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// The secret seed (to persist the key).
    pub fn seed(&self) -> &[u8; SEED_LEN] {
        self.signing.as_bytes()
    }

    /// The public key.
    pub const fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `msg` (RFC 8032 Ed25519, deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(msg).to_bytes()
    }
}

impl core::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.debug_struct("DeviceKey").field("public", &self.public).finish_non_exhaustive()
    }
}

/// A signature that passed rules 2-3, with its challenge computed: what single
/// and batch verification both work on.
#[derive(Clone, Copy)]
pub(crate) struct Prepared {
    /// -R: the equations subtract R, and a negated point lets the batch give R
    /// its short 128-bit weight `z` rather than the full-size `l - z`.
    pub neg_r: EdwardsPoint,
    pub s: Scalar,
    pub k: Scalar,
}

/// Checks rules 2-3 on `sig` and computes `k = SHA-512(R || A || M) mod l`.
pub(crate) fn prepare(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> Result<Prepared> {
    let r_bytes: [u8; 32] = sig[..32].try_into().map_err(|_| Error::BadLength)?;
    let s_bytes: [u8; 32] = sig[32..].try_into().map_err(|_| Error::BadLength)?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(Error::SigNonCanonicalS)?;
    if !is_canonical_point(&r_bytes) {
        return Err(Error::SigNonCanonicalR);
    }
    let r = CompressedEdwardsY(r_bytes).decompress().ok_or(Error::SigRNotOnCurve)?;
    if r.is_small_order() {
        return Err(Error::SigRSmallOrder);
    }
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key.as_bytes());
    h.update(msg);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Ok(Prepared { neg_r: -r, s, k })
}

/// Rule 4 for one prepared signature: `[8]([S]B - [k]A - R) = 0`.
pub(crate) fn equation_holds(key: &PublicKey, p: &Prepared) -> bool {
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, key.neg_point(), &p.s);
    (sb_minus_ka + p.neg_r).mul_by_cofactor().is_identity()
}

/// Verifies one signature under the [module rules](self).
pub fn verify(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> Result<()> {
    let p = prepare(key, msg, sig)?;
    if equation_holds(key, &p) {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

/// Verifies with the key and signature as untrusted slices (any length).
pub fn verify_slices(key: &[u8], msg: &[u8], sig: &[u8]) -> Result<()> {
    let key = PublicKey::from_slice(key)?;
    let sig: &[u8; 64] = sig.try_into().map_err(|_| Error::BadLength)?;
    verify(&key, msg, sig)
}

/// The base point, for the batch equation.
pub(crate) const BASEPOINT: EdwardsPoint = ED25519_BASEPOINT_POINT;

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    #[test]
    fn vartime_torsion_check_matches_dalek() {
        for seed in 0u8..16 {
            let a = -*DeviceKey::from_seed(&[seed; 32]).public().neg_point();
            assert!(is_torsion_free(&a));
            for t in EIGHT_TORSION.iter() {
                let p = a + t;
                assert_eq!(is_torsion_free(&p), p.is_torsion_free());
                assert_eq!(is_torsion_free(t), t.is_torsion_free());
            }
        }
    }

    #[test]
    fn canonical_encodings() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!is_canonical_point(&p)); // y = p
        p[0] = 0xec;
        assert!(is_canonical_point(&p)); // y = p - 1, sign 0
        p[31] = 0xff;
        assert!(!is_canonical_point(&p)); // y = p - 1, sign 1: x = 0 with a sign
        assert!(is_canonical_point(&Y_ONE));
        let mut neg_one = Y_ONE;
        neg_one[31] |= 0x80;
        assert!(!is_canonical_point(&neg_one));
        let mut y2 = Y_ONE;
        y2[0] = 2;
        y2[31] |= 0x80;
        assert!(is_canonical_point(&y2)); // x != 0: the sign bit is meaningful
    }
}
