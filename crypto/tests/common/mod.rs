#![allow(dead_code)]
//! Helpers shared by the integration tests: hex, and crafting signatures with
//! chosen R (torsion components, small-order points) from a known seed.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

pub fn hex(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

pub fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

/// The secret scalar a of an RFC 8032 seed.
pub fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h: [u8; 64] = Sha512::digest(seed).into();
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

pub fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// A signature of `msg` by `seed` whose R is `r B + extra` (s = r + k a), so the
/// cofactored equation holds exactly when `extra` is a torsion point.
pub fn sign_with_r(seed: &[u8; 32], msg: &[u8], r: Scalar, extra: EdwardsPoint) -> [u8; 64] {
    let a = secret_scalar(seed);
    let pk = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
    let big_r = (ED25519_BASEPOINT_POINT * r + extra).compress().to_bytes();
    let k = challenge(&big_r, &pk, msg);
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

pub fn torsion(i: usize) -> EdwardsPoint {
    EIGHT_TORSION[i % 8]
}

/// The canonical encodings of the 8 small-order points.
pub fn small_order_encodings() -> Vec<[u8; 32]> {
    EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect()
}

/// Non-canonical encodings: y + p for y < 19 (both signs), and y = 1 / y = p - 1
/// with the sign bit set (x = 0).
pub fn non_canonical_encodings() -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for y in 0u8..19 {
        let mut b = [0xffu8; 32];
        b[0] = 0xed + y;
        b[31] = 0x7f;
        out.push(b);
        b[31] |= 0x80;
        out.push(b);
    }
    let mut one = [0u8; 32];
    one[0] = 1;
    one[31] = 0x80;
    out.push(one);
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    out.push(minus_one);
    out
}

/// A canonical 32-byte string that is not a curve point.
pub fn not_on_curve() -> [u8; 32] {
    for y in 2u8.. {
        let mut b = [0u8; 32];
        b[0] = y;
        if CompressedEdwardsY(b).decompress().is_none() {
            return b;
        }
    }
    unreachable!()
}

/// The group order l, little-endian.
pub const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0x10,
];

/// x + l (little-endian, x < l so no carry out of 256 bits).
pub fn add_l(x: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = x[i] as u16 + L[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}
