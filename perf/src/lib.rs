//! Benchmarks and traffic tools: table builders, lpm-bench, sig-bench, fwd-bench and chainroute-pktgen.
