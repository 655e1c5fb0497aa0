//! JSON-RPC 2.0 (jsonrpsee, HTTP and WebSocket on one port) for wallets and dapps:
//! `chainroute_resolve(name)`, `chainroute_lookupRoute(address)`, `chainroute_status()`.
//! Read-only; the answers are the gRPC messages as JSON.

use crate::api::Api;
use crate::state::Shared;
use jsonrpsee::server::{RpcModule, Server, ServerHandle};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use std::sync::Arc;

fn status_error(s: tonic::Status) -> ErrorObjectOwned {
    let code = match s.code() {
        tonic::Code::InvalidArgument => -32602,
        tonic::Code::NotFound => 404,
        _ => -32000,
    };
    ErrorObjectOwned::owned(code, s.message().to_string(), None::<()>)
}

/// The first parameter, positional (`["x"]`) or named (`{"<key>": "x"}`).
fn one(params: &Params, key: &str) -> Result<String, ErrorObjectOwned> {
    if let Ok(v) = params.parse::<(String,)>() {
        return Ok(v.0);
    }
    let obj: serde_json::Map<String, serde_json::Value> = params.parse().map_err(|_| {
        ErrorObjectOwned::owned(
            -32602,
            format!("expected [\"{key}\"] or {{\"{key}\": ...}}"),
            None::<()>,
        )
    })?;
    obj.get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| ErrorObjectOwned::owned(-32602, format!("missing {key}"), None::<()>))
}

pub async fn start(
    shared: Arc<Shared>,
    addr: std::net::SocketAddr,
) -> Result<ServerHandle, String> {
    let server = Server::builder()
        .build(addr)
        .await
        .map_err(|e| format!("jsonrpc.listen: cannot bind {addr}: {e}"))?;
    let local = server.local_addr().map_err(|e| e.to_string())?;
    let mut module = RpcModule::new(Api { shared });
    module
        .register_async_method("chainroute_resolve", |params, api, _| async move {
            let name = one(&params, "name")?;
            api.resolve(&name).await.map_err(status_error)
        })
        .map_err(|e| e.to_string())?;
    module
        .register_method("chainroute_lookupRoute", |params, api, _| {
            let address = one(&params, "address")?;
            api.lookup(&address).map_err(status_error)
        })
        .map_err(|e| e.to_string())?;
    module
        .register_method("chainroute_status", |_, api, _| {
            Ok::<_, ErrorObjectOwned>(api.shared.status())
        })
        .map_err(|e| e.to_string())?;
    crate::log!(
        "info",
        "jsonrpc: http://{local} (chainroute_resolve, chainroute_lookupRoute, chainroute_status)"
    );
    Ok(server.start(module))
}
