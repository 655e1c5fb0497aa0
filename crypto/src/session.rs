//! Session keys for tunnels (and per-packet MACs later): an authenticated
//! ephemeral X25519 exchange in which both sides prove their Ed25519 device keys,
//! with no certificate authority: each side signs the transcript, and each checks
//! that the other's wallet authorised the key it signed with (a [`PeerPolicy`],
//! normally the device registry). Everything comes from `ring` except the
//! Ed25519 signatures, which use this crate's rules.
//!
//! ```text
//! I -> R  INIT  "CRS1" 1 0 0 0 | e_I (32) | A_I (32) | W_I (20)                 92 bytes
//! R -> I  RESP  "CRS1" 2 0 0 0 | e_R (32) | A_R (32) | W_R (20) | sig_R (64)    156 bytes
//! I -> R  FIN   "CRS1" 3 0 0 0 | sig_I (64)                                      72 bytes
//!
//! th2   = SHA-256("chainroute-session-v1" || INIT || RESP[..92])
//! sig_R = Ed25519_R("chainroute-session-v1 responder" || th2)
//! th3   = SHA-256(th2 || sig_R)
//! sig_I = Ed25519_I("chainroute-session-v1 initiator" || th3)
//! prk   = HKDF-Extract(salt = th2, ikm = X25519(e_I, e_R))
//! k_IR  = HKDF-Expand(prk, "chainroute-session-v1 i2r", 32)   ChaCha20-Poly1305
//! k_RI  = HKDF-Expand(prk, "chainroute-session-v1 r2i", 32)
//! id    = HKDF-Expand(prk, "chainroute-session-v1 id", 16)
//! ```
//!
//! Each signature covers both ephemeral shares and both identities (device key
//! and wallet), so a signature cannot be replayed into another exchange or
//! presented under another identity (no unknown-key-share), and the role labels
//! differ so one side's signature is never valid as the other's. Ephemeral keys
//! give forward secrecy. A low-order X25519 share makes ring return an error
//! (all-zero secret), which fails the handshake.
//!
//! Records: `counter (8, big-endian) || ciphertext || tag (16)`, nonce =
//! `0u32 || counter`, one key per direction, counters from 0; the receiver keeps a
//! 64-record replay window. [`Session::mac`] gives a per-packet tag (Poly1305 over
//! the packet as associated data, nothing encrypted).

use chainroute_wire::Wallet;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::digest::{Context, SHA256};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::rand::SystemRandom;

use crate::ed25519::{DeviceKey, PublicKey};
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"CRS1";
const LABEL: &[u8] = b"chainroute-session-v1";
const TYPE_INIT: u8 = 1;
const TYPE_RESP: u8 = 2;
const TYPE_FIN: u8 = 3;
/// Length of the INIT message.
pub const INIT_LEN: usize = 92;
/// Length of the RESP message.
pub const RESP_LEN: usize = 156;
/// Length of the FIN message.
pub const FIN_LEN: usize = 72;
/// Bytes a record adds to its plaintext (counter and tag).
pub const RECORD_OVERHEAD: usize = 8 + TAG_LEN;
/// Bytes of an AEAD / MAC tag.
pub const TAG_LEN: usize = 16;

/// Decides whether a peer's (wallet, device key) is acceptable; returns the
/// checked key. Implemented for closures; [`RegistryPolicy`] checks the device registry.
pub trait PeerPolicy {
    fn check(&self, wallet: &Wallet, key: &[u8; 32]) -> Result<PublicKey>;
}

impl<F: Fn(&Wallet, &[u8; 32]) -> Result<PublicKey>> PeerPolicy for F {
    fn check(&self, wallet: &Wallet, key: &[u8; 32]) -> Result<PublicKey> {
        self(wallet, key)
    }
}

/// Accepts a peer whose wallet authorised its device key, valid at `now`.
pub struct RegistryPolicy<'a> {
    pub registry: &'a crate::registry::DeviceReader,
    pub now: u64,
}

impl PeerPolicy for RegistryPolicy<'_> {
    fn check(&self, wallet: &Wallet, key: &[u8; 32]) -> Result<PublicKey> {
        self.registry.authorised(wallet, key, self.now)
    }
}

/// Who the other side proved to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub wallet: Wallet,
    pub device_key: PublicKey,
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn header(msg: &[u8], ty: u8, len: usize) -> Result<()> {
    if msg.len() != len || &msg[..4] != MAGIC || msg[4] != ty || msg[5..8] != [0, 0, 0] {
        return Err(Error::BadHandshake);
    }
    Ok(())
}

fn identity(msg: &[u8]) -> ([u8; 32], [u8; 32], Wallet) {
    let mut e = [0u8; 32];
    let mut a = [0u8; 32];
    let mut w = [0u8; 20];
    e.copy_from_slice(&msg[8..40]);
    a.copy_from_slice(&msg[40..72]);
    w.copy_from_slice(&msg[72..92]);
    (e, a, Wallet(w))
}

fn write_identity(out: &mut [u8], ty: u8, eph: &[u8], device: &DeviceKey, wallet: &Wallet) {
    out[..4].copy_from_slice(MAGIC);
    out[4] = ty;
    out[8..40].copy_from_slice(eph);
    out[40..72].copy_from_slice(device.public().as_bytes());
    out[72..92].copy_from_slice(&wallet.0);
}

fn th2(init: &[u8], resp_body: &[u8]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(LABEL);
    c.update(init);
    c.update(resp_body);
    c.finish().as_ref().try_into().unwrap_or([0; 32])
}

fn th3(th2: &[u8; 32], sig_r: &[u8]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(th2);
    c.update(sig_r);
    c.finish().as_ref().try_into().unwrap_or([0; 32])
}

fn role_message(role: &[u8], th: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(LABEL.len() + role.len() + 33);
    m.extend_from_slice(LABEL);
    m.push(b' ');
    m.extend_from_slice(role);
    m.extend_from_slice(th);
    m
}

fn ephemeral() -> Result<(EphemeralPrivateKey, [u8; 32])> {
    let rng = SystemRandom::new();
    let private = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| Error::Random)?;
    let public = private.compute_public_key().map_err(|_| Error::Random)?;
    let public: [u8; 32] = public.as_ref().try_into().map_err(|_| Error::KeyAgreement)?;
    Ok((private, public))
}

struct Keys {
    i2r: [u8; 32],
    r2i: [u8; 32],
    id: [u8; 16],
}

fn derive(private: EphemeralPrivateKey, peer_share: &[u8; 32], th2: &[u8; 32]) -> Result<Keys> {
    let peer = UnparsedPublicKey::new(&X25519, peer_share);
    agree_ephemeral(private, &peer, |secret| -> Result<Keys> {
        let prk = Salt::new(HKDF_SHA256, th2).extract(secret);
        let mut keys = Keys { i2r: [0; 32], r2i: [0; 32], id: [0; 16] };
        let expand = |info: &[u8], out: &mut [u8]| {
            prk.expand(&[LABEL, info], Len(out.len())).and_then(|okm| okm.fill(out)).map_err(|_| Error::KeyAgreement)
        };
        expand(b" i2r", &mut keys.i2r)?;
        expand(b" r2i", &mut keys.r2i)?;
        expand(b" id", &mut keys.id)?;
        Ok(keys)
    })
    .map_err(|_| Error::KeyAgreement)?
}

/// The initiator between INIT and RESP.
pub struct Initiator {
    private: EphemeralPrivateKey,
    init: [u8; INIT_LEN],
}

impl Initiator {
    /// Starts a handshake as `device` of `wallet`; send the returned INIT.
    pub fn start(device: &DeviceKey, wallet: &Wallet) -> Result<(Initiator, [u8; INIT_LEN])> {
        let (private, share) = ephemeral()?;
        let mut init = [0u8; INIT_LEN];
        write_identity(&mut init, TYPE_INIT, &share, device, wallet);
        Ok((Initiator { private, init }, init))
    }

    /// Checks RESP (the responder's identity with `policy`, then its signature),
    /// derives the keys and returns the session, the FIN to send, and the peer.
    pub fn finish(self, device: &DeviceKey, resp: &[u8], policy: &impl PeerPolicy) -> Result<(Session, [u8; FIN_LEN], Peer)> {
        header(resp, TYPE_RESP, RESP_LEN)?;
        let (share, key, wallet) = identity(resp);
        let device_key = policy.check(&wallet, &key)?;
        if device_key.as_bytes() != &key {
            return Err(Error::KeyMismatch);
        }
        let th2 = th2(&self.init, &resp[..92]);
        let sig_r: &[u8; 64] = resp[92..156].try_into().map_err(|_| Error::BadHandshake)?;
        device_key.verify(&role_message(b"responder", &th2), sig_r)?;
        let keys = derive(self.private, &share, &th2)?;
        let th3 = th3(&th2, sig_r);
        let mut fin = [0u8; FIN_LEN];
        fin[..4].copy_from_slice(MAGIC);
        fin[4] = TYPE_FIN;
        fin[8..72].copy_from_slice(&device.sign(&role_message(b"initiator", &th3)));
        let session = Session::new(&keys.i2r, &keys.r2i, keys.id)?;
        Ok((session, fin, Peer { wallet, device_key }))
    }
}

/// The responder between RESP and FIN: keys derived, not usable until FIN checks.
pub struct Responder {
    peer: Peer,
    th3: [u8; 32],
    keys: Keys,
}

impl Responder {
    /// Answers an INIT as `device` of `wallet` (after `policy` accepted the
    /// initiator's claimed identity); send the returned RESP.
    pub fn respond(device: &DeviceKey, wallet: &Wallet, init: &[u8], policy: &impl PeerPolicy) -> Result<(Responder, [u8; RESP_LEN])> {
        header(init, TYPE_INIT, INIT_LEN)?;
        let (share_i, key_i, wallet_i) = identity(init);
        let device_key = policy.check(&wallet_i, &key_i)?;
        if device_key.as_bytes() != &key_i {
            return Err(Error::KeyMismatch);
        }
        let (private, share) = ephemeral()?;
        let mut resp = [0u8; RESP_LEN];
        write_identity(&mut resp, TYPE_RESP, &share, device, wallet);
        let th2 = th2(init, &resp[..92]);
        let sig_r = device.sign(&role_message(b"responder", &th2));
        resp[92..156].copy_from_slice(&sig_r);
        let keys = derive(private, &share_i, &th2)?;
        let th3 = th3(&th2, &sig_r);
        Ok((Responder { peer: Peer { wallet: wallet_i, device_key }, th3, keys }, resp))
    }

    /// Checks FIN (the initiator's signature) and returns the session.
    pub fn finish(self, fin: &[u8]) -> Result<(Session, Peer)> {
        header(fin, TYPE_FIN, FIN_LEN)?;
        let sig_i: &[u8; 64] = fin[8..72].try_into().map_err(|_| Error::BadHandshake)?;
        self.peer.device_key.verify(&role_message(b"initiator", &self.th3), sig_i)?;
        let session = Session::new(&self.keys.r2i, &self.keys.i2r, self.keys.id)?;
        Ok((session, self.peer))
    }
}

/// An established session: one ChaCha20-Poly1305 key per direction.
pub struct Session {
    send: LessSafeKey,
    recv: LessSafeKey,
    id: [u8; 16],
    next_send: u64,
    /// Highest counter received + 1 (0: none yet).
    recv_top: u64,
    /// Bit i set: counter `recv_top - 1 - i` was received.
    recv_window: u64,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.debug_struct("Session").field("next_send", &self.next_send).field("recv_top", &self.recv_top).finish_non_exhaustive()
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl Session {
    fn new(send: &[u8; 32], recv: &[u8; 32], id: [u8; 16]) -> Result<Session> {
        let key = |k: &[u8; 32]| UnboundKey::new(&CHACHA20_POLY1305, k).map(LessSafeKey::new).map_err(|_| Error::KeyAgreement);
        Ok(Session { send: key(send)?, recv: key(recv)?, id, next_send: 0, recv_top: 0, recv_window: 0 })
    }

    /// An identifier both sides derive from the exchange (equal on both ends).
    pub fn id(&self) -> &[u8; 16] {
        &self.id
    }

    fn next_counter(&mut self) -> Result<u64> {
        if self.next_send == u64::MAX {
            return Err(Error::CounterExhausted);
        }
        let c = self.next_send;
        self.next_send += 1;
        Ok(c)
    }

    /// Encrypts `plaintext` with associated data `aad`; appends the record to `out`.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<u64> {
        let counter = self.next_counter()?;
        let start = out.len();
        out.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(plaintext);
        let tag = self
            .send
            .seal_in_place_separate_tag(nonce(counter), Aad::from(aad), &mut out[start + 8..])
            .map_err(|_| Error::CounterExhausted)?;
        out.extend_from_slice(tag.as_ref());
        Ok(counter)
    }

    fn replay_check(&self, counter: u64) -> Result<()> {
        if counter >= self.recv_top {
            return Ok(());
        }
        let age = self.recv_top - 1 - counter;
        if age >= 64 || self.recv_window & (1 << age) != 0 {
            return Err(Error::Replay);
        }
        Ok(())
    }

    fn replay_accept(&mut self, counter: u64) {
        if counter >= self.recv_top {
            let shift = counter - self.recv_top + 1;
            self.recv_window = if shift >= 64 { 0 } else { self.recv_window << shift };
            self.recv_window |= 1;
            self.recv_top = counter + 1;
        } else {
            self.recv_window |= 1 << (self.recv_top - 1 - counter);
        }
    }

    /// Decrypts and authenticates a record; appends the plaintext to `out`.
    /// Replayed or too old (over 64 behind) records are refused.
    pub fn open(&mut self, aad: &[u8], record: &[u8], out: &mut Vec<u8>) -> Result<u64> {
        if record.len() < RECORD_OVERHEAD {
            return Err(Error::Decrypt);
        }
        let counter = u64::from_be_bytes(record[..8].try_into().map_err(|_| Error::Decrypt)?);
        self.replay_check(counter)?;
        let start = out.len();
        out.extend_from_slice(&record[8..]);
        let plain_len = match self.recv.open_in_place(nonce(counter), Aad::from(aad), &mut out[start..]) {
            Ok(p) => p.len(),
            Err(_) => {
                out.truncate(start);
                return Err(Error::Decrypt);
            }
        };
        out.truncate(start + plain_len);
        self.replay_accept(counter);
        Ok(counter)
    }

    /// A per-packet tag: Poly1305 over `data` (nothing encrypted). Send the
    /// counter with the packet.
    pub fn mac(&mut self, data: &[u8]) -> Result<(u64, [u8; TAG_LEN])> {
        let counter = self.next_counter()?;
        let tag = self
            .send
            .seal_in_place_separate_tag(nonce(counter), Aad::from(data), &mut [])
            .map_err(|_| Error::CounterExhausted)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok((counter, out))
    }

    /// Checks a per-packet tag made by the peer's [`mac`](Self::mac).
    pub fn verify_mac(&mut self, counter: u64, data: &[u8], tag: &[u8; TAG_LEN]) -> Result<()> {
        self.replay_check(counter)?;
        let mut t = *tag;
        self.recv.open_in_place(nonce(counter), Aad::from(data), &mut t).map_err(|_| Error::Decrypt)?;
        self.replay_accept(counter);
        Ok(())
    }
}
