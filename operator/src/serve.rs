//! Serving `sluice.v1.Control` over TLS with client-certificate authentication.

use std::future::Future;
use std::sync::Arc;

use rustls::server::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::grpc::{ControlService, PeerAuth};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::pki::Issued;
use crate::tls;

/// Why the control channel could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves on `listener` until `shutdown`: TLS with `server` as identity; clients must
/// present a certificate signed by a CA of `ca_pem` (one certificate or a bundle).
pub async fn serve_tls(
    listener: TcpListener,
    server: &Issued,
    ca_pem: &str,
    hub: Arc<Hub>,
    leader: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (_keep, config) = watch::channel(tls::server_config(server, ca_pem)?);
    serve_tls_dynamic(listener, config, hub, leader, metrics, shutdown).await
}

/// [`serve_tls`] with a TLS configuration that may change while serving (CA rotation):
/// new connections get the current one, open streams stay.
pub async fn serve_tls_dynamic(
    listener: TcpListener,
    config: watch::Receiver<Arc<ServerConfig>>,
    hub: Arc<Hub>,
    leader: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (closing_tx, closing) = watch::channel(false);
    let svc =
        ControlService::new(hub, leader, PeerAuth::ClientCertificate, metrics).closing_on(closing);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let incoming = ReceiverStream::new(tls::accept(listener, config));
    Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(svc.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
