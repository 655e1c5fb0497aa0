//! chainrouted and the chainroute console: configuration, the gRPC/JSON-RPC
//! management plane and the chain reconciler that keeps the FIB equal to the
//! licenses held on chain.

pub mod config;
pub mod log;
