//! The per-core forwarding pipeline (classify, check, validate, look up, encapsulate) and its DPDK I/O layer and workers.
