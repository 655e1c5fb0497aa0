//! The `chainroute.v1` gRPC service, grpc.health.v1 and reflection (v1 and v1alpha),
//! served on the Unix socket (access: file permissions) and optionally on TCP, where
//! TLS is mandatory and a client proves itself with a certificate from `client_ca`
//! or a bearer token (`authorization: Bearer ...`). Anything else gets
//! `UNAUTHENTICATED` (or no TLS handshake at all).

use crate::chain::{ens_resolve, is_own, peers, MAINNET_ENS_REGISTRY};
use crate::pb::{self, router_server::RouterServer};
use crate::state::{hex, Shared};
use chainroute_dataplane::{DropReason, NextHop};
use chainroute_wire::{Address, Prefix, Wallet};
use futures::Stream;
use std::os::unix::fs::PermissionsExt;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn stream_of<T: Send + 'static>(items: Vec<T>) -> Stream_<T> {
    Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
}

/// The service.
#[derive(Clone)]
pub struct Api {
    pub shared: Arc<Shared>,
}

/// Reports SERVING / NOT_SERVING on grpc.health.v1 ("" and chainroute.v1.Router)
/// when readiness changes (one task applies the changes in order).
pub fn update_health(shared: &Shared) {
    let ready = shared.ready();
    let changed = shared.health_ready.send_if_modified(|r| {
        let c = *r != Some(ready);
        *r = Some(ready);
        c
    });
    if changed {
        crate::log!(
            "info",
            "health: {}",
            if ready { "SERVING" } else { "NOT_SERVING" }
        );
    }
}

async fn health_task(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut rx = shared.health_ready.subscribe();
    loop {
        let ready = *rx.borrow_and_update();
        let status = if ready == Some(true) {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        shared.health.set_service_status("", status).await;
        shared
            .health
            .set_service_status("chainroute.v1.Router", status)
            .await;
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

fn parse_prefix(text: &str) -> Result<Prefix, Status> {
    text.trim()
        .parse::<Prefix>()
        .map_err(|e| Status::invalid_argument(format!("prefix {text:?}: {e}")))
}

impl Api {
    /// ENS (or a 0x wallet) -> wallet -> locators and device keys.
    pub async fn resolve(&self, name: &str) -> Result<pb::ResolveResponse, Status> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err(Status::invalid_argument("name is empty"));
        }
        let mut resp = pb::ResolveResponse {
            name: name.clone(),
            ..Default::default()
        };
        let wallet: Wallet = if let Ok(w) = name.parse::<Wallet>() {
            w
        } else {
            let chain = self.shared.config.chain.as_ref().ok_or_else(|| {
                Status::failed_precondition("no [chain] configured: cannot resolve ENS names")
            })?;
            let provider = crate::chain::http_provider(&chain.rpc_url, chain.rpc_timeout)
                .ok_or_else(|| Status::internal("bad rpc_url"))?;
            let registry = chain.ens_registry.unwrap_or(MAINNET_ENS_REGISTRY);
            let (node, resolver, addr) = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                ens_resolve(&provider, registry, &name),
            )
            .await
            .map_err(|_| Status::deadline_exceeded("ENS lookup timed out"))?
            .map_err(Status::not_found)?;
            resp.node = hex(&node);
            resp.resolver = Wallet(resolver).to_checksum_string();
            Wallet(addr)
        };
        resp.wallet = wallet.to_checksum_string();
        resp.anycast = Address::anycast(wallet).to_string();
        let view = self.shared.chain.read().unwrap();
        for l in view.licenses.values() {
            if l.holder == wallet.0 && view.valid.contains(&l.id) {
                resp.locators.push(pb::Locator {
                    kind: "license".into(),
                    address: l.prefix().map(|p| p.to_string()).unwrap_or_default(),
                    endpoints: l.endpoints.iter().map(|e| e.to_string()).collect(),
                });
            }
        }
        if let Some(keys) = view.device_keys.get(&wallet.0) {
            for (k, valid_to) in keys {
                if *valid_to > view.now {
                    resp.device_keys.push(pb::DeviceKey {
                        public_key: hex(k),
                        valid_to_unix: *valid_to,
                    });
                }
            }
        }
        Ok(resp)
    }

    pub fn lookup(&self, address: &str) -> Result<pb::LookupRouteResponse, Status> {
        let addr: Address = address
            .trim()
            .parse()
            .map_err(|e| Status::invalid_argument(format!("address {address:?}: {e}")))?;
        let route = self.shared.rib.lock().unwrap().lookup(&addr);
        Ok(pb::LookupRouteResponse {
            found: route.is_some(),
            route,
        })
    }

    pub fn stats(&self) -> pb::GetStatsResponse {
        let dp = self.shared.dataplane.read().unwrap();
        let mut resp = pb::GetStatsResponse {
            mbufs_free: dp.mbufs.0,
            mbufs_size: dp.mbufs.1,
            ..Default::default()
        };
        let mut total = chainroute_dataplane::CounterSnapshot::default();
        for (q, c) in dp.counters.iter().enumerate() {
            let s = c.snapshot();
            total.add(c);
            resp.cores.push(pb::CoreStats {
                lcore: dp.lcores.get(q).copied().unwrap_or(0),
                queue: q as u32,
                loops: s.loops,
                busy_loops: s.busy_loops,
                rx_packets: s.total_rx(),
                tx_packets: s.total_tx(),
                drops: s.total_drops(),
                verified: s.verified,
                batches: s.batches,
                stalls: s.stalls,
                longest_loop_ns: s.longest_loop_ns,
            });
        }
        for p in &dp.ports {
            let i = p.index as usize;
            resp.ports.push(pb::PortStats {
                index: p.index as u32,
                name: p.name.clone(),
                mac: p.mac.to_string(),
                link_up: p.link_up,
                rx_packets: total.rx_packets.get(i).copied().unwrap_or(0),
                rx_bytes: total.rx_bytes.get(i).copied().unwrap_or(0),
                tx_packets: total.tx_packets.get(i).copied().unwrap_or(0),
                tx_bytes: total.tx_bytes.get(i).copied().unwrap_or(0),
                hw_rx_packets: p.stats.ipackets,
                hw_tx_packets: p.stats.opackets,
                hw_rx_missed: p.stats.imissed,
                hw_rx_errors: p.stats.ierrors,
                hw_tx_errors: p.stats.oerrors,
                hw_rx_nombuf: p.stats.rx_nombuf,
            });
        }
        for r in DropReason::ALL {
            resp.drops.push(pb::DropCount {
                reason: r.name().into(),
                packets: total.drops_of(r),
            });
        }
        resp
    }
}

#[tonic::async_trait]
impl pb::router_server::Router for Api {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.shared.status()))
    }

    type ListRoutesStream = Stream_<pb::Route>;
    async fn list_routes(
        &self,
        _: Request<pb::ListRoutesRequest>,
    ) -> Result<Response<Self::ListRoutesStream>, Status> {
        let routes = self.shared.rib.lock().unwrap().routes();
        Ok(Response::new(stream_of(routes)))
    }

    async fn lookup_route(
        &self,
        req: Request<pb::LookupRouteRequest>,
    ) -> Result<Response<pb::LookupRouteResponse>, Status> {
        self.lookup(&req.get_ref().address).map(Response::new)
    }

    async fn add_static_route(
        &self,
        req: Request<pb::AddStaticRouteRequest>,
    ) -> Result<Response<pb::AddStaticRouteResponse>, Status> {
        let r = req.into_inner();
        let prefix = parse_prefix(&r.prefix)?;
        let hop = match (
            r.next_hop.as_str(),
            self.shared.config.next_hops.get(&r.next_hop),
        ) {
            (_, Some(h)) => *h,
            ("blackhole", None) => NextHop::Blackhole,
            (name, None) => {
                let mut names: Vec<&String> = self.shared.config.next_hops.keys().collect();
                names.sort();
                return Err(Status::invalid_argument(format!("next hop {name:?} is not configured ([[next_hops]]: {names:?}, or \"blackhole\")")));
            }
        };
        let replaced = self
            .shared
            .rib
            .lock()
            .unwrap()
            .add_static(prefix, r.next_hop.clone(), hop);
        crate::log!(
            "info",
            "api: static route {prefix} -> {}{}",
            r.next_hop,
            if replaced { " (replaced)" } else { "" }
        );
        Ok(Response::new(pb::AddStaticRouteResponse { replaced }))
    }

    async fn delete_static_route(
        &self,
        req: Request<pb::DeleteStaticRouteRequest>,
    ) -> Result<Response<pb::DeleteStaticRouteResponse>, Status> {
        let prefix = parse_prefix(&req.get_ref().prefix)?;
        if !self.shared.rib.lock().unwrap().delete_static(&prefix) {
            return Err(Status::not_found(format!("no static route for {prefix}")));
        }
        crate::log!("info", "api: static route {prefix} deleted");
        Ok(Response::new(pb::DeleteStaticRouteResponse {}))
    }

    type ListBindingsStream = Stream_<pb::Binding>;
    async fn list_bindings(
        &self,
        _: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<Self::ListBindingsStream>, Status> {
        Ok(Response::new(stream_of(crate::state::bindings_pb(&self.shared))))
    }

    type ListLicensesStream = Stream_<pb::License>;
    async fn list_licenses(
        &self,
        req: Request<pb::ListLicensesRequest>,
    ) -> Result<Response<Self::ListLicensesStream>, Status> {
        let valid_only = req.get_ref().valid_only;
        let view = self.shared.chain.read().unwrap();
        let id = &self.shared.config.identity;
        let items: Vec<pb::License> = view
            .licenses
            .values()
            .filter(|l| !valid_only || view.valid.contains(&l.id))
            .map(|l| l.to_pb(view.valid.contains(&l.id), is_own(l, id)))
            .collect();
        Ok(Response::new(stream_of(items)))
    }

    type ListPeersStream = Stream_<pb::Peer>;
    async fn list_peers(
        &self,
        _: Request<pb::ListPeersRequest>,
    ) -> Result<Response<Self::ListPeersStream>, Status> {
        let view = self.shared.chain.read().unwrap();
        Ok(Response::new(stream_of(peers(&view.licenses, &view.valid))))
    }

    async fn get_stats(
        &self,
        _: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        Ok(Response::new(self.stats()))
    }

    type WatchEventsStream = Stream_<pb::Event>;
    async fn watch_events(
        &self,
        _: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let (mut rx, routes, serial) = self.shared.rib.lock().unwrap().subscribe_with_snapshot();
        let chain = self.shared.chain.read().unwrap().status.clone();
        let (tx, out) = tokio::sync::mpsc::channel::<Result<pb::Event, Status>>(1024);
        tokio::spawn(async move {
            for r in routes {
                if tx
                    .send(Ok(pb::Event {
                        r#type: "route_added".into(),
                        serial,
                        route: Some(r),
                        chain: None,
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if tx
                .send(Ok(pb::Event {
                    r#type: "sync".into(),
                    serial,
                    route: None,
                    chain: Some(chain),
                }))
                .await
                .is_err()
            {
                return;
            }
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::resource_exhausted(format!(
                                "watcher fell {n} events behind; watch again for a new snapshot"
                            ))))
                            .await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn resolve(
        &self,
        req: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        self.resolve(&req.get_ref().name).await.map(Response::new)
    }
}

/// Binds the Unix socket (and TCP when configured) and serves until `stop`.
/// Binding errors come back before anything is served.
pub async fn start(
    shared: Arc<Shared>,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let cfg = shared.config.api.clone();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| format!("reflection: {e}"))?;
    let api = RouterServer::new(Api {
        shared: shared.clone(),
    });
    let mut tasks = vec![tokio::spawn(health_task(shared.clone(), stop.clone()))];

    // Unix socket: created with the configured mode before anyone can connect.
    let path = cfg.socket.clone();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("api.socket: cannot create {}: {e}", dir.display()))?;
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        // A socket someone still answers on belongs to a running daemon: taking it
        // over would cut its operator off silently.
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(format!(
                "api.socket: {} is in use by a running chainrouted (stop it, or give this one its own api.socket)",
                path.display()
            ));
        }
        std::fs::remove_file(&path).map_err(|e| {
            format!(
                "api.socket: cannot remove the stale {}: {e}",
                path.display()
            )
        })?;
    }
    let old_umask = unsafe { umask(0o177) };
    let listener = tokio::net::UnixListener::bind(&path);
    unsafe { umask(old_umask) };
    let listener =
        listener.map_err(|e| format!("api.socket: cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(cfg.socket_mode))
        .map_err(|e| format!("api.socket: chmod {}: {e}", path.display()))?;
    crate::log!(
        "info",
        "api: gRPC on unix://{} (mode {:04o})",
        path.display(),
        cfg.socket_mode
    );
    let router = tonic::transport::Server::builder()
        .add_service(api.clone())
        .add_service(health.clone())
        .add_service(reflection_v1.clone())
        .add_service(reflection_v1alpha.clone());
    let mut s = stop.clone();
    tasks.push(tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = s.changed().await;
            })
            .await
        {
            crate::log!("error", "api: unix server: {e}");
        }
    }));

    if let Some(addr) = cfg.tcp {
        let read = |p: &Option<std::path::PathBuf>, key: &str| -> Result<Option<Vec<u8>>, String> {
            match p {
                None => Ok(None),
                Some(p) => std::fs::read(p)
                    .map(Some)
                    .map_err(|e| format!("{key}: cannot read {}: {e}", p.display())),
            }
        };
        let cert =
            read(&cfg.tls_cert, "api.tls_cert")?.ok_or("api.tls_cert is required with api.tcp")?;
        let key =
            read(&cfg.tls_key, "api.tls_key")?.ok_or("api.tls_key is required with api.tcp")?;
        let ca = read(&cfg.client_ca, "api.client_ca")?;
        let token = read(&cfg.token_file, "api.token_file")?
            .map(|t| String::from_utf8_lossy(&t).trim().to_string());
        if token.as_deref() == Some("") {
            return Err("api.token_file: the token is empty".into());
        }
        let mut tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key));
        if let Some(ca) = &ca {
            tls = tls
                .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                .client_auth_optional(token.is_some());
        }
        let has_ca = ca.is_some();
        let check = move |req: Request<()>| -> Result<Request<()>, Status> {
            // A client certificate verified against client_ca is enough.
            if has_ca && req.peer_certs().map(|c| !c.is_empty()).unwrap_or(false) {
                return Ok(req);
            }
            if let Some(t) = &token {
                let given = req
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                if let Some(g) = given {
                    if constant_time_eq(g.trim().as_bytes(), t.as_bytes()) {
                        return Ok(req);
                    }
                }
            }
            Err(Status::unauthenticated("the TCP API needs a client certificate from api.client_ca or `authorization: Bearer <token>`"))
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("api.tcp: cannot bind {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        crate::log!(
            "info",
            "api: gRPC on tcp://{local} (TLS{}{})",
            if has_ca { ", client certificates" } else { "" },
            if cfg.token_file.is_some() {
                ", token"
            } else {
                ""
            }
        );
        let router = tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(|e| format!("api.tls_cert/api.tls_key: {e}"))?
            .layer(tonic::service::InterceptorLayer::new(check))
            .add_service(api)
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let mut s = stop.clone();
        tasks.push(tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = s.changed().await;
                })
                .await
            {
                crate::log!("error", "api: tcp server: {e}");
            }
        }));
    }
    Ok(tasks)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

extern "C" {
    fn umask(mask: u32) -> u32;
}
