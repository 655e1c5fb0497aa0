//! The realistic 256-bit routing table the LPM benchmarks run on.
//!
//! **Data:** the real part is the RouteViews-derived IPv6 prefix list
//! (`routeviews-v6-prefixes.txt`: IP-to-ASN ranges from RouteViews via
//! @ip-location-db/asn, split into CIDR blocks). The RouteViews data is licensed
//! CC BY 4.0; attribution: **RouteViews, routeviews.org** (also DB-IP and NRO for
//! the range table). Every tool that prints numbers measured on it says so.
//!
//! The RouteViews ranges are disjoint, and a W3IP network has routes no IPv6 table
//! has, so [`realistic`] adds seeded synthetic routes around the real ones. For a
//! real list of `R` prefixes (`R` = 167,903 for the file in `shared/data`):
//!
//! | part | count | how |
//! |---|---|---|
//! | real IPv6 prefixes | `R` | as read, at bits 0-127, value = origin ASN |
//! | default route | 1 | `::/0`, value 0 |
//! | covering less-specifics | `R/16` | an aggregate 4-12 bits shorter than a random real prefix (not shorter than /12), the upstream's ASN |
//! | more-specifics | `0.6 R` | 1-3 under a random real prefix of length <= /56, 1-16 bits longer (at most /64): traffic engineering and customer /48-/64s; half keep the parent's ASN |
//! | /96 subnets | `0.9 R` | in clusters of 1-8 sharing a random /64-/88 inside a random real or more-specific prefix: W3IP routing prefixes handed to sites |
//! | /160 routes | `0.3 R` | under a random /96: a site's block of wallets sharing 64 interface-id bits |
//! | /256 host routes | `0.9 R` | a wallet (random 160 bits) under a random /96 (80 %) or /160 (20 %): hosts whose binding is announced as a route |
//! | anycast /256 | `R/16` | `::/96` + random wallet: anycast wallets served by a peer |
//!
//! That is about 3.8 R prefixes (~640,000), nested up to seven deep (default, real,
//! more-specific, /96, /160, /256), with every length class the dataplane sees.
//! Next hops of synthetic deep routes are small ids (0..4096: local ports and
//! peers); real and near-real routes keep ASNs. Duplicates collapse (first wins).

use crate::rng::Rng;
use chainroute_wire::{Address, Prefix};
use std::collections::HashSet;

/// Real RouteViews prefix file shipped in the shared data directory.
pub const ROUTEVIEWS_V6: &str = "/work/shared/data/routeviews-v6-prefixes.txt";

/// The attribution line every output that uses the RouteViews data carries.
pub const ATTRIBUTION: &str =
    "Data: RouteViews (routeviews.org), CC BY 4.0, via @ip-location-db/asn (with DB-IP and NRO); synthetic W3IP routes seeded on top.";

/// A random prefix of length `len` inside `parent` (host bits random, then cut).
pub fn random_inside(rng: &mut Rng, parent: &Prefix, len: u16) -> Prefix {
    Prefix::truncating(address_inside(rng, parent), len.max(parent.len()))
}

/// A random address inside `parent`.
pub fn address_inside(rng: &mut Rng, parent: &Prefix) -> Address {
    let mut b = rng.bytes32();
    let pa = parent.addr().0;
    let full = (parent.len() / 8) as usize;
    b[..full].copy_from_slice(&pa[..full]);
    let rem = parent.len() % 8;
    if rem != 0 {
        let m = 0xffu8 << (8 - rem);
        b[full] = (b[full] & !m) | (pa[full] & m);
    }
    Address(b)
}

/// Expands real prefixes into the realistic 256-bit table described above.
pub fn realistic(real: &[(Prefix, u32)], seed: u64) -> Vec<(Prefix, u32)> {
    let mut rng = Rng::new(seed);
    let r = real.len().max(1);
    let mut seen: HashSet<Prefix> = HashSet::with_capacity(4 * r);
    let mut out: Vec<(Prefix, u32)> = Vec::with_capacity(4 * r);
    let mut push = |out: &mut Vec<(Prefix, u32)>, p: Prefix, v: u32| {
        if seen.insert(p) {
            out.push((p, v));
        }
    };
    for &(p, v) in real {
        push(&mut out, p, v);
    }
    if real.is_empty() {
        return out;
    }
    let asns: Vec<u32> = real.iter().map(|&(_, v)| v).collect();
    push(&mut out, Prefix::DEFAULT, 0);

    // Covering less-specifics.
    for _ in 0..r / 16 {
        let (p, _) = real[rng.below(r as u64) as usize];
        let shorter = p
            .len()
            .saturating_sub(4 + rng.below(9) as u16)
            .max(12)
            .min(p.len());
        let up = asns[rng.below(r as u64) as usize];
        push(&mut out, Prefix::truncating(p.addr(), shorter), up);
    }

    // More-specifics under real prefixes up to /56.
    let short: Vec<(Prefix, u32)> = real
        .iter()
        .copied()
        .filter(|(p, _)| p.len() <= 56)
        .collect();
    let mut more: Vec<(Prefix, u32)> = Vec::new();
    if !short.is_empty() {
        while more.len() < r * 6 / 10 {
            let (parent, pv) = short[rng.below(short.len() as u64) as usize];
            for _ in 0..1 + rng.below(3) {
                let len = (parent.len() + 1 + rng.below(16) as u16).min(64);
                let v = if rng.chance(50) {
                    pv
                } else {
                    asns[rng.below(r as u64) as usize]
                };
                more.push((random_inside(&mut rng, &parent, len), v));
            }
        }
    }
    for &(p, v) in &more {
        push(&mut out, p, v);
    }

    // /96 subnets in clusters.
    let mut subnets: Vec<Prefix> = Vec::with_capacity(r);
    while subnets.len() < r * 9 / 10 {
        let parent = if rng.chance(70) || more.is_empty() {
            real[rng.below(r as u64) as usize].0
        } else {
            more[rng.below(more.len() as u64) as usize].0
        };
        if parent.len() > 88 {
            continue;
        }
        let site_len = (64 + 8 * rng.below(4) as u16).max(parent.len());
        let site = random_inside(&mut rng, &parent, site_len);
        for _ in 0..1 + rng.below(8) {
            let s = random_inside(&mut rng, &site, 96);
            subnets.push(s);
            push(&mut out, s, rng.below(4096) as u32);
        }
    }

    // /160 blocks under /96 subnets.
    let mut blocks: Vec<Prefix> = Vec::with_capacity(r * 3 / 10);
    for _ in 0..r * 3 / 10 {
        let s = subnets[rng.below(subnets.len() as u64) as usize];
        let b = random_inside(&mut rng, &s, 160);
        blocks.push(b);
        push(&mut out, b, rng.below(4096) as u32);
    }

    // /256 host routes.
    for _ in 0..r * 9 / 10 {
        let parent = if rng.chance(80) {
            subnets[rng.below(subnets.len() as u64) as usize]
        } else {
            blocks[rng.below(blocks.len() as u64) as usize]
        };
        push(
            &mut out,
            Prefix::host(address_inside(&mut rng, &parent)),
            rng.below(4096) as u32,
        );
    }

    // Anycast wallets.
    let anycast = Prefix::truncating(Address::UNSPECIFIED, 96);
    for _ in 0..r / 16 {
        push(
            &mut out,
            Prefix::host(address_inside(&mut rng, &anycast)),
            rng.below(4096) as u32,
        );
    }
    out
}

/// `n` routes spread evenly over `prefixes`, of the lengths a snapshot's marks
/// cover ([`chainroute_lpm::SHORTEST_MARKED`] and longer): the routes the
/// benchmarks change after publishing a snapshot, to measure it marked.
pub fn spread_markable(prefixes: &[(Prefix, u32)], n: usize) -> Vec<(Prefix, u32)> {
    let long: Vec<(Prefix, u32)> = prefixes
        .iter()
        .copied()
        .filter(|(p, _)| p.len() >= chainroute_lpm::SHORTEST_MARKED)
        .collect();
    let step = (long.len() / n.max(1)).max(1);
    long.into_iter().step_by(step).take(n).collect()
}

/// The lookup key mix used when no key file is given: 70 % inside random prefixes
/// (random host bits), 15 % exactly on a prefix's first address, 15 % uniformly
/// random 256-bit addresses. Prefixes are drawn uniformly from the table.
pub fn key_mix(prefixes: &[(Prefix, u32)], n: usize, seed: u64) -> Vec<Address> {
    let mut rng = Rng::new(seed ^ 0x6b65_7973);
    (0..n)
        .map(|_| {
            let roll = rng.below(100);
            if prefixes.is_empty() || roll >= 85 {
                Address(rng.bytes32())
            } else {
                let p = prefixes[rng.below(prefixes.len() as u64) as usize].0;
                if roll < 70 {
                    address_inside(&mut rng, &p)
                } else {
                    p.addr()
                }
            }
        })
        .collect()
}

/// The part of a table that 128-bit engines can hold: prefixes of length <= 128.
pub fn le128(prefixes: &[(Prefix, u32)]) -> Vec<(Prefix, u32)> {
    prefixes
        .iter()
        .copied()
        .filter(|(p, _)| p.len() <= 128)
        .collect()
}

/// Keys cut to their top 128 bits (what 128-bit engines see), low bits zero.
pub fn top128(keys: &[Address]) -> Vec<Address> {
    keys.iter().map(|k| k.masked(128)).collect()
}

/// Counts per length class, for the bench header.
pub fn length_profile(prefixes: &[(Prefix, u32)]) -> Vec<(&'static str, usize)> {
    let classes: [(&str, u16, u16); 7] = [
        ("/0", 0, 0),
        ("/1-/32", 1, 32),
        ("/33-/64", 33, 64),
        ("/65-/128", 65, 128),
        ("/129-/160", 129, 160),
        ("/161-/255", 161, 255),
        ("/256", 256, 256),
    ];
    classes
        .iter()
        .map(|&(name, lo, hi)| {
            (
                name,
                prefixes
                    .iter()
                    .filter(|(p, _)| (lo..=hi).contains(&p.len()))
                    .count(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_shape() {
        let mut rng = Rng::new(1);
        let real: Vec<(Prefix, u32)> = (0..2000)
            .map(|i| {
                let base: Prefix = "2000::/3".parse().unwrap();
                (
                    random_inside(&mut rng, &base, [29, 32, 40, 44, 48][i % 5]),
                    i as u32,
                )
            })
            .collect();
        let t = realistic(&real, 9);
        assert_eq!(t, realistic(&real, 9), "seeded");
        assert!(t.len() > real.len() * 3, "{}", t.len());
        let prof = length_profile(&t);
        assert_eq!(prof[0].1, 1, "one default route");
        assert!(
            prof.iter()
                .filter(|(name, _)| *name != "/161-/255")
                .all(|(_, n)| *n > 0),
            "{prof:?}"
        );
        let set: HashSet<Prefix> = t.iter().map(|(p, _)| *p).collect();
        assert_eq!(set.len(), t.len(), "no duplicates");
        // Nesting: most /256 routes sit under a /96 or /160 of the table.
        let covered = t
            .iter()
            .filter(|(p, _)| p.len() == 256)
            .filter(|(p, _)| {
                set.contains(&Prefix::truncating(p.addr(), 96))
                    || set.contains(&Prefix::truncating(p.addr(), 160))
            })
            .count();
        assert!(covered * 10 > prof[6].1 * 8, "{covered} of {}", prof[6].1);
        let keys = key_mix(&t, 1000, 3);
        assert_eq!(keys.len(), 1000);
        assert!(top128(&keys)
            .iter()
            .all(|k| k.0[16..].iter().all(|&b| b == 0)));
        assert!(le128(&t).iter().all(|(p, _)| p.len() <= 128));
    }
}
