//! Benchmarks and traffic tools: table builders, lpm-bench, sig-bench, fwd-bench and chainroute-pktgen.
//!
//! For the LPM: [`prefixes`] reads and writes prefix/key files, [`table`] builds the
//! realistic 256-bit table from the RouteViews IPv6 prefixes (data: RouteViews,
//! routeviews.org, CC BY 4.0) and the lookup key mix, [`lpmbench`] measures
//! chainroute-lpm against the baselines in [`baselines`].

pub mod baselines;
pub mod ceiling;
pub mod lpmbench;
pub mod pktgen;
pub mod prefixes;
pub mod rng;
pub mod stats;
pub mod table;
pub mod traffic;
pub mod zeroloss;
