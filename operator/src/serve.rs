//! Serving `sluice.v1.Control` over TLS with client-certificate authentication.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use tokio::sync::watch;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::grpc::{ControlService, PeerAuth};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::pki::Issued;

/// Serves on `listener` until `shutdown`: TLS with `server` as identity; clients must
/// present a certificate signed by `ca_pem`.
pub async fn serve_tls(
    listener: TcpListener,
    server: &Issued,
    ca_pem: &str,
    hub: Arc<Hub>,
    leader: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&server.cert_pem, &server.key_pem))
        .client_ca_root(Certificate::from_pem(ca_pem));
    let (closing_tx, closing) = watch::channel(false);
    let svc =
        ControlService::new(hub, leader, PeerAuth::ClientCertificate, metrics).closing_on(closing);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    Server::builder()
        .tls_config(tls)?
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(svc.into_server())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
