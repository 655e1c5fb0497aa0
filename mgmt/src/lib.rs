//! chainrouted and the chainroute console: configuration, the gRPC/JSON-RPC
//! management plane and the chain reconciler that keeps the FIB equal to the
//! licenses held on chain.

pub mod api;
pub mod chain;
pub mod config;
pub mod jsonrpc;
pub mod log;
pub mod metrics;
pub mod state;
pub mod testbed;

/// The `chainroute.v1` protobuf messages and services (mgmt/proto).
pub mod pb {
    tonic::include_proto!("chainroute.v1");
    /// For gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("chainroute_descriptor");
}

/// The daemon's version, as Status and `chainroute_build_info` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
