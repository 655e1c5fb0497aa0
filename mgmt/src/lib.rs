//! chainrouted and the chainroute console: configuration, the gRPC/JSON-RPC management plane and the chain reconciler.
