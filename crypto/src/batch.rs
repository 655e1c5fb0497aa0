//! Batch verification of Ed25519 signatures, built for a poll-mode dataplane.
//!
//! A worker pushes the (key, message, signature) items of one burst, then calls
//! [`BatchVerifier::verify`] once and reads one result per item.
//!
//! * **Checks before batching.** [`push`](BatchVerifier::push) applies the encoding
//!   rules (canonical S, canonical non-small-order R; keys were checked when the
//!   [`PublicKey`] was made), so a malformed item gets its own typed error at once.
//!   The work done here (R decompressed, `k = H(R||A||M)`, the random weight `z`)
//!   is kept, so re-checking a sub-batch never hashes or decompresses again.
//! * **One equation.** A set `S` of items passes when
//!   `[8]( (sum z_i s_i) B + sum z_i (-R_i) + sum_A (sum_{i: A_i = A} z_i k_i) (-A) ) = 0`.
//!   R_i and A are stored negated so that every R term keeps its short 128-bit
//!   weight (a weight `-z` would be the full-size `l - z`, doubling its cost).
//!   Items that share a key share one term (one point in the multi-scalar
//!   multiplication), which makes a burst from few senders cheaper.
//!   The `z_i` are odd 128-bit numbers from a keyed PRF (SHA-512 over a secret seed
//!   from the OS and a counter), unknown to whoever chose the signatures.
//! * **Finding the bad ones.** The weights of an item never change, so the
//!   weighted sum over a failing set is exactly the sum of the sums over its two
//!   halves: bisection computes the left half's sum with one multi-scalar
//!   multiplication and gets the right half's by one point subtraction, and
//!   descends into whichever half does not vanish. One bad item among n costs
//!   multi-scalar multiplications of sizes n, n/2, n/4, ..., 1: about 2n item-terms
//!   in all, ~2x a clean batch, wherever the bad item sits; k bad items cost
//!   O(k log n) and never all-singles. The inference is exact (no probability
//!   beyond the batch's own 2^-128), so single and batch name exactly the same
//!   items (see the rules in [`crate::ed25519`]).

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use hashbrown::HashMap;
use sha2::{Digest, Sha512};

use crate::ed25519::{equation_holds, prepare, PublicKey, BASEPOINT};
use crate::error::{Error, Result};

/// What a verifier did, for counters and benchmarks (never shared between workers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Calls to [`BatchVerifier::verify`] with at least one item.
    pub batches: u64,
    /// Items pushed.
    pub items: u64,
    /// Items refused by the encoding rules before any equation.
    pub malformed: u64,
    /// Items whose equation failed.
    pub bad: u64,
    /// Weighted multi-scalar sums: one per batch of two or more, plus one per
    /// bisection step.
    pub batch_equations: u64,
    /// Plain single-signature equations (a batch of one, `verify_singly`).
    pub single_equations: u64,
}

/// Secret, odd 128-bit weights: SHA-512(seed || counter), four per hash.
struct Weights {
    seed: [u8; 32],
    counter: u64,
    buf: [u8; 64],
    used: usize,
}

impl Weights {
    fn new(seed: [u8; 32]) -> Weights {
        Weights { seed, counter: 0, buf: [0; 64], used: 64 }
    }

    fn next(&mut self) -> Scalar {
        if self.used == 64 {
            let mut h = Sha512::new();
            h.update(b"chainroute batch weights v1");
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            self.counter = self.counter.wrapping_add(1);
            self.buf = h.finalize().into();
            self.used = 0;
        }
        let mut z = [0u8; 16];
        z.copy_from_slice(&self.buf[self.used..self.used + 16]);
        self.used += 16;
        // Odd, hence non-zero mod l (l > 2^252 > z): a bad item always moves the sum.
        Scalar::from(u128::from_le_bytes(z) | 1)
    }
}

#[derive(Clone, Copy)]
struct Item {
    /// -R
    neg_r: EdwardsPoint,
    /// The weight: odd, 128 bits, so the R term costs half a full-size one.
    z: Scalar,
    /// z * s
    zs: Scalar,
    /// z * k
    zk: Scalar,
    s: Scalar,
    k: Scalar,
    key: u32,
    slot: u32,
}

/// Verifies the signatures of one burst as one batch. Reuse it across bursts:
/// [`clear`](Self::clear) keeps its buffers.
pub struct BatchVerifier {
    items: Vec<Item>,
    results: Vec<Result<()>>,
    /// Distinct keys of this batch, and their ids.
    keys: Vec<PublicKey>,
    key_ids: HashMap<[u8; 32], u32>,
    key_coeff: Vec<Scalar>,
    key_mark: Vec<u32>,
    mark: u32,
    touched: Vec<u32>,
    weights: Weights,
    msg: Vec<u8>,
    order: Vec<u32>,
    verified: bool,
    stats: BatchStats,
}

impl BatchVerifier {
    /// A verifier whose weights are keyed by a fresh secret from the OS.
    pub fn new() -> Result<BatchVerifier> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).map_err(|_| Error::Random)?;
        Ok(BatchVerifier::with_seed(seed))
    }

    /// A verifier with a given weight seed. The seed must be secret from whoever
    /// chooses the signatures; a fixed seed is for tests only.
    pub fn with_seed(seed: [u8; 32]) -> BatchVerifier {
        BatchVerifier {
            items: Vec::with_capacity(64),
            results: Vec::with_capacity(64),
            keys: Vec::with_capacity(64),
            key_ids: HashMap::with_capacity(64),
            key_coeff: Vec::with_capacity(64),
            key_mark: Vec::with_capacity(64),
            mark: 0,
            touched: Vec::with_capacity(64),
            weights: Weights::new(seed),
            msg: Vec::with_capacity(2048),
            order: Vec::with_capacity(64),
            verified: false,
            stats: BatchStats::default(),
        }
    }

    /// Forgets the items (not the counters) for the next burst.
    pub fn clear(&mut self) {
        self.items.clear();
        self.results.clear();
        self.keys.clear();
        self.key_ids.clear();
        self.key_coeff.clear();
        self.key_mark.clear();
        self.mark = 0;
        self.verified = false;
    }

    /// Items pushed since the last clear.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// True when no item was pushed since the last clear.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Counters since creation.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Adds one item and returns its index in [`results`](Self::results). An item
    /// that breaks the encoding rules gets its error now and is left out of the batch.
    pub fn push(&mut self, key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> usize {
        let slot = self.results.len();
        self.verified = false;
        self.stats.items += 1;
        match prepare(key, msg, sig) {
            Err(e) => {
                self.stats.malformed += 1;
                self.results.push(Err(e));
            }
            Ok(p) => {
                let key_id = self.key_id(key);
                let z = self.weights.next();
                self.items.push(Item {
                    neg_r: p.neg_r,
                    z,
                    zs: z * p.s,
                    zk: z * p.k,
                    s: p.s,
                    k: p.k,
                    key: key_id,
                    slot: slot as u32,
                });
                self.results.push(Ok(()));
            }
        }
        slot
    }

    /// Records an item refused before verification (e.g. a header naming another
    /// key than the one authorised), so that results stay one per pushed item.
    pub fn push_error(&mut self, e: Error) -> usize {
        self.stats.items += 1;
        self.stats.malformed += 1;
        self.results.push(Err(e));
        self.results.len() - 1
    }

    /// Pushes the AUTH signature of a W3IP packet: the message is exactly
    /// [`chainroute_wire::ext::auth_message`]; the header's signer key must be `key`.
    pub fn push_auth(&mut self, key: &PublicKey, packet: &[u8], auth_offset: usize) -> usize {
        let mut msg = core::mem::take(&mut self.msg);
        let slot = match crate::signed::auth_parts(packet, auth_offset, &mut msg) {
            Err(e) => self.push_error(e),
            Ok((signer, sig)) if signer != *key.as_bytes() => {
                let _ = sig;
                self.push_error(Error::KeyMismatch)
            }
            Ok((_, sig)) => self.push(key, &msg, &sig),
        };
        self.msg = msg;
        slot
    }

    /// Pushes the signature of a BIND header (over `signed_message()`); the
    /// header's device key must be `key`.
    pub fn push_bind<T: AsRef<[u8]>>(&mut self, key: &PublicKey, header: &chainroute_wire::ext::BindHeader<T>) -> usize {
        if header.device_key() != key.as_bytes() {
            return self.push_error(Error::KeyMismatch);
        }
        self.push(key, &header.signed_message(), header.signature())
    }

    /// Verifies every pushed item; returns one result per item, in push order.
    pub fn verify(&mut self) -> &[Result<()>] {
        if self.verified || self.items.is_empty() {
            self.verified = true;
            return &self.results;
        }
        self.stats.batches += 1;
        if self.items.len() == 1 {
            if !self.single(0) {
                self.mark_bad(0);
            }
        } else {
            let mut all = core::mem::take(&mut self.order);
            all.clear();
            all.extend(0..self.items.len() as u32);
            let sum = self.sum(&all);
            if !holds(&sum) {
                self.find_bad(&all, sum);
            }
            self.order = all;
        }
        self.verified = true;
        &self.results
    }

    /// Verifies every pushed item one by one (no batch): the same results as
    /// [`verify`](Self::verify). For tiny or isolated groups, and for tests.
    pub fn verify_singly(&mut self) -> &[Result<()>] {
        if !self.verified {
            for i in 0..self.items.len() as u32 {
                if !self.single(i) {
                    self.mark_bad(i);
                }
            }
            self.verified = true;
        }
        &self.results
    }

    /// Results of the last [`verify`](Self::verify) (all `Ok` for well-formed items
    /// before it runs).
    pub fn results(&self) -> &[Result<()>] {
        &self.results
    }

    fn key_id(&mut self, key: &PublicKey) -> u32 {
        let next = self.keys.len() as u32;
        let id = *self.key_ids.entry(key.to_bytes()).or_insert(next);
        if id == next {
            self.keys.push(*key);
            self.key_coeff.push(Scalar::ZERO);
            self.key_mark.push(0);
        }
        id
    }

    fn mark_bad(&mut self, i: u32) {
        let slot = self.items[i as usize].slot as usize;
        self.results[slot] = Err(Error::BadSignature);
        self.stats.bad += 1;
    }

    /// `set`, whose weighted sum `sum` is known not to vanish: names its bad items.
    /// One multi-scalar multiplication per split: the right half's sum is the
    /// difference of two sums already known.
    fn find_bad(&mut self, set: &[u32], sum: EdwardsPoint) {
        if set.len() == 1 {
            self.mark_bad(set[0]);
            return;
        }
        let (left, right) = set.split_at(set.len() / 2);
        let left_sum = self.sum(left);
        let right_sum = sum - left_sum;
        if !holds(&left_sum) {
            self.find_bad(left, left_sum);
        }
        if !holds(&right_sum) {
            self.find_bad(right, right_sum);
        }
    }

    /// The plain equation for item `i` alone (no weight).
    fn single(&mut self, i: u32) -> bool {
        self.stats.single_equations += 1;
        let it = &self.items[i as usize];
        let p = crate::ed25519::Prepared { neg_r: it.neg_r, s: it.s, k: it.k };
        equation_holds(&self.keys[it.key as usize], &p)
    }

    /// `sum_i z_i (s_i B - k_i A_i - R_i)` over `set`, one multi-scalar multiplication.
    fn sum(&mut self, set: &[u32]) -> EdwardsPoint {
        self.stats.batch_equations += 1;
        self.mark = self.mark.wrapping_add(1);
        if self.mark == 0 {
            self.key_mark.fill(0);
            self.mark = 1;
        }
        self.touched.clear();
        let mut b_coeff = Scalar::ZERO;
        for &i in set {
            let it = &self.items[i as usize];
            b_coeff += it.zs;
            let k = it.key as usize;
            if self.key_mark[k] != self.mark {
                self.key_mark[k] = self.mark;
                self.key_coeff[k] = it.zk;
                self.touched.push(k as u32);
            } else {
                self.key_coeff[k] += it.zk;
            }
        }
        let items = &self.items;
        let keys = &self.keys;
        let coeff = &self.key_coeff;
        let scalars = core::iter::once(b_coeff)
            .chain(set.iter().map(|&i| items[i as usize].z))
            .chain(self.touched.iter().map(|&k| coeff[k as usize]));
        let points = core::iter::once(&BASEPOINT)
            .chain(set.iter().map(|&i| &items[i as usize].neg_r))
            .chain(self.touched.iter().map(|&k| keys[k as usize].neg_point()));
        EdwardsPoint::vartime_multiscalar_mul(scalars, points)
    }
}

/// A weighted sum passes when its cofactor multiple is the identity.
fn holds(sum: &EdwardsPoint) -> bool {
    sum.mul_by_cofactor().is_identity()
}

impl core::fmt::Debug for BatchVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.debug_struct("BatchVerifier").field("items", &self.results.len()).field("stats", &self.stats).finish()
    }
}
