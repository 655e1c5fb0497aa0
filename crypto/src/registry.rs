//! Wallet -> authorised Ed25519 device keys, with validity, read lock-free by
//! workers and maintained by the management plane (the chain reconciler applies
//! ERC-1056 `DIDAttributeChanged` events here).
//!
//! Same publication scheme as [`crate::cache`]: the single [`DeviceRegistry`]
//! writer edits its own map, then [`publish`](DeviceRegistry::publish)es an
//! immutable snapshot through arc-swap; [`DeviceReader`]s look up without locks.
//! A snapshot shares every wallet's key list (`Arc<[DeviceEntry]>`) with the
//! writer's map, so publishing after a batch of changes costs one pointer copy
//! per wallet, and old snapshots are freed on the writer's thread.
//!
//! Keys are checked ([`PublicKey::from_bytes`]) when they are inserted, so a
//! worker gets a ready (decompressed) key from a lookup. Expiry is checked by the
//! reader against the `now` it passes, so a key stops verifying at its
//! `valid_until` even before the writer prunes it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chainroute_wire::Wallet;
use hashbrown::HashMap;

use crate::cache::reclaim;
use crate::ed25519::PublicKey;
use crate::error::{Error, Result};

/// The ERC-1056 attribute name under which a wallet publishes an Ed25519 device
/// key: `did/pub/Ed25519/veriKey/base64`, as a `bytes32` (right-padded with zeros).
pub const DEVICE_KEY_ATTRIBUTE: [u8; 32] = {
    let name = b"did/pub/Ed25519/veriKey/base64";
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < name.len() {
        out[i] = name[i];
        i += 1;
    }
    out
};

/// The device key in an ERC-1056 attribute `(name, value)`: the name must be
/// [`DEVICE_KEY_ATTRIBUTE`]; the value the 32 key bytes, raw (what ethr-did
/// tools write) or as base64 text (standard alphabet, padding optional).
pub fn device_key_from_attribute(name: &[u8; 32], value: &[u8]) -> Result<PublicKey> {
    if *name != DEVICE_KEY_ATTRIBUTE {
        return Err(Error::BadAttribute);
    }
    let raw: [u8; 32] = match value.len() {
        32 => value.try_into().map_err(|_| Error::BadAttribute)?,
        43 | 44 => base64_32(value).ok_or(Error::BadAttribute)?,
        _ => return Err(Error::BadAttribute),
    };
    PublicKey::from_bytes(&raw)
}

/// Decodes the base64 text of exactly 32 bytes (43 characters, optionally "=").
fn base64_32(text: &[u8]) -> Option<[u8; 32]> {
    let text = match text {
        [body @ .., b'='] if text.len() == 44 => body,
        _ if text.len() == 43 => text,
        _ => return None,
    };
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = [0u8; 32];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut n = 0;
    for &c in text {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if n == 32 {
                return None;
            }
            out[n] = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // 43 characters carry 258 bits: the 2 left over must be zero (canonical text).
    (n == 32 && acc == 0).then_some(out)
}

/// One authorised device key of a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceEntry {
    pub key: PublicKey,
    /// Unix seconds; the key is valid while `now < valid_until`.
    pub valid_until: u64,
}

struct DeviceSnapshot {
    wallets: HashMap<Wallet, Arc<[DeviceEntry]>>,
    version: u64,
}

/// The single writer of the wallet -> device-key table.
pub struct DeviceRegistry {
    shared: Arc<ArcSwap<DeviceSnapshot>>,
    wallets: HashMap<Wallet, Arc<[DeviceEntry]>>,
    retired: Vec<Arc<DeviceSnapshot>>,
    version: u64,
    dirty: bool,
}

impl Default for DeviceRegistry {
    fn default() -> DeviceRegistry {
        DeviceRegistry::new()
    }
}

impl DeviceRegistry {
    /// An empty registry (version 0).
    pub fn new() -> DeviceRegistry {
        let snapshot = DeviceSnapshot { wallets: HashMap::new(), version: 0 };
        DeviceRegistry {
            shared: Arc::new(ArcSwap::from_pointee(snapshot)),
            wallets: HashMap::new(),
            retired: Vec::new(),
            version: 0,
            dirty: false,
        }
    }

    /// A handle for a worker.
    pub fn reader(&self) -> DeviceReader {
        DeviceReader { shared: self.shared.clone() }
    }

    /// Authorises `key` for `wallet` until `valid_until`, or updates its validity.
    /// Takes effect at the next [`publish`](Self::publish).
    pub fn upsert(&mut self, wallet: Wallet, key: PublicKey, valid_until: u64) {
        let current = self.wallets.get(&wallet).map(|e| &e[..]).unwrap_or(&[]);
        let mut list: Vec<DeviceEntry> = current.to_vec();
        match list.iter_mut().find(|e| e.key == key) {
            Some(e) if e.valid_until == valid_until => return,
            Some(e) => e.valid_until = valid_until,
            None => list.push(DeviceEntry { key, valid_until }),
        }
        self.wallets.insert(wallet, list.into());
        self.dirty = true;
    }

    /// Like [`upsert`](Self::upsert) for untrusted key bytes (checked by the key rules).
    pub fn upsert_bytes(&mut self, wallet: Wallet, key: &[u8; 32], valid_until: u64) -> Result<PublicKey> {
        let key = PublicKey::from_bytes(key)?;
        self.upsert(wallet, key, valid_until);
        Ok(key)
    }

    /// Applies an ERC-1056 `DIDAttributeChanged(identity, name, value, validTo)`:
    /// a device-key attribute with `valid_to > now` authorises the key, otherwise
    /// (a revocation sets validTo to 0) it removes it. Other attributes are ignored
    /// (`Ok(None)`).
    pub fn apply_attribute(&mut self, wallet: Wallet, name: &[u8; 32], value: &[u8], valid_to: u64, now: u64) -> Result<Option<PublicKey>> {
        if *name != DEVICE_KEY_ATTRIBUTE {
            return Ok(None);
        }
        let key = device_key_from_attribute(name, value)?;
        if valid_to > now {
            self.upsert(wallet, key, valid_to);
        } else {
            self.remove(&wallet, key.as_bytes());
        }
        Ok(Some(key))
    }

    /// Withdraws one key of a wallet; true if it was there.
    pub fn remove(&mut self, wallet: &Wallet, key: &[u8; 32]) -> bool {
        let Some(current) = self.wallets.get(wallet) else { return false };
        if !current.iter().any(|e| e.key.as_bytes() == key) {
            return false;
        }
        let list: Vec<DeviceEntry> = current.iter().filter(|e| e.key.as_bytes() != key).copied().collect();
        if list.is_empty() {
            self.wallets.remove(wallet);
        } else {
            self.wallets.insert(*wallet, list.into());
        }
        self.dirty = true;
        true
    }

    /// Withdraws every key of a wallet; returns how many.
    pub fn remove_wallet(&mut self, wallet: &Wallet) -> usize {
        let n = self.wallets.remove(wallet).map_or(0, |l| l.len());
        self.dirty |= n > 0;
        n
    }

    /// Drops keys whose validity ended at or before `now`; returns how many.
    pub fn prune_expired(&mut self, now: u64) -> usize {
        let mut removed = 0;
        self.wallets.retain(|_, list| {
            let live = list.iter().filter(|e| now < e.valid_until).count();
            if live != list.len() {
                removed += list.len() - live;
                *list = list.iter().filter(|e| now < e.valid_until).copied().collect::<Vec<_>>().into();
            }
            live > 0
        });
        self.dirty |= removed > 0;
        removed
    }

    /// Publishes the changes made since the last publish as one new version.
    pub fn publish(&mut self) -> u64 {
        if self.dirty {
            self.version += 1;
            let snapshot = DeviceSnapshot { wallets: self.wallets.clone(), version: self.version };
            self.retired.push(self.shared.swap(Arc::new(snapshot)));
            self.dirty = false;
        }
        reclaim(&mut self.retired);
        self.version
    }

    /// The writer's view of a wallet's keys (including unpublished changes).
    pub fn devices(&self, wallet: &Wallet) -> &[DeviceEntry] {
        self.wallets.get(wallet).map(|l| &l[..]).unwrap_or(&[])
    }

    /// Wallets with at least one key.
    pub fn wallets(&self) -> usize {
        self.wallets.len()
    }

    /// Replaced snapshots some reader still holds.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }
}

/// A worker's lock-free view of the registry.
#[derive(Clone)]
pub struct DeviceReader {
    shared: Arc<ArcSwap<DeviceSnapshot>>,
}

impl DeviceReader {
    /// The ready key if `wallet` authorised the device key `key` and it is valid at `now`.
    pub fn authorised(&self, wallet: &Wallet, key: &[u8; 32], now: u64) -> Result<PublicKey> {
        let snapshot = self.shared.load();
        let entry = snapshot
            .wallets
            .get(wallet)
            .and_then(|list| list.iter().find(|e| e.key.as_bytes() == key).copied())
            .ok_or(Error::NotAuthorised)?;
        if now < entry.valid_until {
            Ok(entry.key)
        } else {
            Err(Error::Expired)
        }
    }

    /// A wallet's keys valid at `now` (appended to `out`).
    pub fn valid_keys(&self, wallet: &Wallet, now: u64, out: &mut Vec<DeviceEntry>) {
        if let Some(list) = self.shared.load().wallets.get(wallet) {
            out.extend(list.iter().filter(|e| now < e.valid_until).copied());
        }
    }

    /// The published version.
    pub fn version(&self) -> u64 {
        self.shared.load().version
    }
}
