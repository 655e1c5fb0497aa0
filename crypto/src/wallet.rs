//! Ethereum wallets: secp256k1 keys, their 20-byte addresses (last 20 bytes of
//! keccak-256 of the uncompressed public key; EIP-55 text via
//! [`Wallet`]'s `Display`), EIP-191 `personal_sign` and public-key recovery, with k256.
//!
//! Rules: signatures are 65 bytes `r || s || v`; `v` may be 27/28 (what wallets
//! send) or 0/1; `r` and `s` must be in `[1, n)` and `s` in the lower half
//! (EIP-2: the high-s twin of a signature is refused, as Ethereum transactions do).

use chainroute_wire::{keccak256, Wallet};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};

use crate::error::{Error, Result};

/// Bytes in a recoverable signature: r (32), s (32), v (1).
pub const RECOVERABLE_SIGNATURE_LEN: usize = 65;

/// The wallet (address) of a secp256k1 public key.
pub fn address_of(key: &VerifyingKey) -> Wallet {
    let point = key.to_encoded_point(false);
    // 0x04 || x || y: the address hashes x || y.
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut w = [0u8; 20];
    w.copy_from_slice(&hash[12..]);
    Wallet(w)
}

/// The wallet of an untrusted SEC1 public key (33 bytes compressed or 65 uncompressed).
pub fn address_from_public_key(sec1: &[u8]) -> Result<Wallet> {
    let key = VerifyingKey::from_sec1_bytes(sec1).map_err(|_| Error::SecpBadPublicKey)?;
    Ok(address_of(&key))
}

/// The EIP-191 (version 0x45, `personal_sign`) hash of a message:
/// `keccak256("\x19Ethereum Signed Message:\n" || decimal(len) || msg)`.
pub fn eip191_hash(msg: &[u8]) -> [u8; 32] {
    let mut data = Vec::with_capacity(msg.len() + 48);
    data.extend_from_slice(b"\x19Ethereum Signed Message:\n");
    data.extend_from_slice(msg.len().to_string().as_bytes());
    data.extend_from_slice(msg);
    keccak256(&data)
}

/// A wallet's secp256k1 secret key.
#[derive(Clone)]
pub struct WalletKey {
    key: SigningKey,
    wallet: Wallet,
}

impl WalletKey {
    /// The key of a 32-byte secret (big-endian, in [1, n)).
    pub fn from_bytes(secret: &[u8; 32]) -> Result<WalletKey> {
        let key = SigningKey::from_slice(secret).map_err(|_| Error::SecpBadSecretKey)?;
        let wallet = address_of(key.verifying_key());
        Ok(WalletKey { key, wallet })
    }

    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Result<WalletKey> {
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut secret = [0u8; 32];
            ring::rand::SecureRandom::fill(&rng, &mut secret).map_err(|_| Error::Random)?;
            if let Ok(k) = WalletKey::from_bytes(&secret) {
                return Ok(k);
            }
        }
    }

    /// The wallet address.
    pub const fn wallet(&self) -> Wallet {
        self.wallet
    }

    /// The public key.
    pub fn public_key(&self) -> &VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key, SEC1 uncompressed (65 bytes, 0x04 first).
    pub fn public_key_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out.copy_from_slice(self.key.verifying_key().to_encoded_point(false).as_bytes());
        out
    }

    /// Signs a 32-byte hash (RFC 6979, low-s); returns `r || s || v` with v = 27/28.
    pub fn sign_hash(&self, hash: &[u8; 32]) -> Result<[u8; 65]> {
        let (sig, recid) = self.key.sign_prehash_recoverable(hash).map_err(|_| Error::SecpBadSignature)?;
        let (sig, recid) = match sig.normalize_s() {
            // k256 already signs low-s; keep the parity right if it ever did not.
            Some(low) => (low, RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced())),
            None => (sig, recid),
        };
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + recid.to_byte();
        Ok(out)
    }

    /// EIP-191 `personal_sign` of `msg`.
    pub fn personal_sign(&self, msg: &[u8]) -> Result<[u8; 65]> {
        self.sign_hash(&eip191_hash(msg))
    }
}

impl core::fmt::Debug for WalletKey {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.debug_struct("WalletKey").field("wallet", &self.wallet).finish_non_exhaustive()
    }
}

/// Recovers the public key that made `sig` (65 bytes, `r || s || v`) over `hash`.
pub fn recover_key(hash: &[u8; 32], sig: &[u8]) -> Result<VerifyingKey> {
    let sig: &[u8; 65] = sig.try_into().map_err(|_| Error::BadLength)?;
    let v = match sig[64] {
        0 | 1 => sig[64],
        27 | 28 => sig[64] - 27,
        _ => return Err(Error::SecpBadRecoveryId),
    };
    let recid = RecoveryId::from_byte(v).ok_or(Error::SecpBadRecoveryId)?;
    let signature = Signature::from_slice(&sig[..64]).map_err(|_| Error::SecpBadSignature)?;
    if signature.normalize_s().is_some() {
        return Err(Error::SecpHighS);
    }
    VerifyingKey::recover_from_prehash(hash, &signature, recid).map_err(|_| Error::SecpRecoveryFailed)
}

/// Recovers the wallet that signed `hash` (Ethereum `ecrecover`, with EIP-2's low-s rule).
pub fn recover_hash(hash: &[u8; 32], sig: &[u8]) -> Result<Wallet> {
    Ok(address_of(&recover_key(hash, sig)?))
}

/// Recovers the wallet that `personal_sign`ed `msg`.
pub fn recover_personal(msg: &[u8], sig: &[u8]) -> Result<Wallet> {
    recover_hash(&eip191_hash(msg), sig)
}

/// Checks that `wallet` `personal_sign`ed `msg`.
pub fn verify_personal(msg: &[u8], sig: &[u8], wallet: &Wallet) -> Result<()> {
    if recover_personal(msg, sig)? == *wallet {
        Ok(())
    } else {
        Err(Error::WrongWallet)
    }
}
