//! The null ext_authz server: answers every `Check` with OK at once.
//!
//! Built on the same stack as cedar-gate (tonic server, `tcp_nodelay`, a multi-threaded
//! tokio runtime with default worker count, release profile when run by
//! `scripts/bench.sh`), so cedar-gate / null is what identity, classification and policy
//! cost on top of the gRPC floor.
//!
//! ```text
//! cargo run --release --example null-authz -- --listen 127.0.0.1:9292
//! ```

use std::net::SocketAddr;

use anyhow::bail;
use cedar_gate::wire::conn::Coalescing;
use clap::Parser;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use envoy_types::pb::envoy::service::auth::v3::OkHttpResponse;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

/// Answer every ext_authz Check with OK.
#[derive(Debug, Parser)]
#[command(name = "null-authz")]
struct Args {
    /// Listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:9292")]
    listen: SocketAddr,
    /// Wrap connections as cedar-gate does (`wire::conn::Coalescing`): for a side
    /// measurement only; the benchmark's floor is the stock tonic server.
    #[arg(long)]
    coalesce: bool,
}

#[derive(Debug, Default)]
struct NullAuthz;

#[tonic::async_trait]
impl Authorization for NullAuthz {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(CheckResponse {
            status: Some(RpcStatus {
                code: 0,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..Default::default()
        }))
    }
}

/// The same allocator as cedar-gate, so the ratio measures the work, not malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!("refusing to listen on {}: loopback only", args.listen);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        eprintln!("null-authz listening on {}", listener.local_addr()?);
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(AuthorizationServer::new(NullAuthz));
        let stopped = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        // As in cedar-gate's app.rs: the builder's tcp_nodelay does not reach this listener.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        if args.coalesce {
            let incoming = incoming.map(|conn| conn.map(Coalescing));
            router
                .serve_with_incoming_shutdown(incoming, stopped)
                .await?;
        } else {
            router
                .serve_with_incoming_shutdown(incoming, stopped)
                .await?;
        }
        anyhow::Ok(())
    })
}
