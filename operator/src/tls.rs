//! The gRPC server's TLS, swappable while it runs: a CA rotation changes the server
//! certificate and the client roots without closing the agents' streams (connections
//! keep the configuration they were accepted with; new ones get the current one).

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::pki::Issued;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; more connections wait in the accept queue.
const MAX_HANDSHAKES: usize = 256;

/// Why a server TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no certificate in the {0} PEM")]
    NoCertificate(&'static str),
    #[error("unreadable {0} PEM")]
    Pem(&'static str),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A TLS server configuration: `server` as identity, client certificates required and
/// verified against every certificate in `client_roots_pem` (a bundle), HTTP/2 only.
pub fn server_config(
    server: &Issued,
    client_roots_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_roots_pem.as_bytes()) {
        roots.add(cert.map_err(|_| TlsError::Pem("client CA"))?)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate("client CA"));
    }
    let chain = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem("server certificate"))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate("server certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
        .map_err(|_| TlsError::Pem("server key"))?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections on `listener` and completes their handshakes with the
/// configuration current at the time; established streams go to the returned receiver.
/// Stops when the receiver is dropped.
pub fn accept(
    listener: TcpListener,
    config: watch::Receiver<Arc<ServerConfig>>,
) -> mpsc::Receiver<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let conn = tokio::select! {
                c = listener.accept() => c,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match conn {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = TlsAcceptor::from(config.borrow().clone());
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pki::Ca;

    #[test]
    fn a_bundle_of_roots_and_bad_input() {
        let now = time::OffsetDateTime::now_utc();
        let (a, b) = (Ca::generate(now).unwrap(), Ca::generate(now).unwrap());
        let server = a.issue_server(&["localhost".into()], now).unwrap();
        let bundle = format!("{}{}", a.pem().cert_pem, b.pem().cert_pem);
        assert!(server_config(&server, &bundle).is_ok());
        assert!(matches!(
            server_config(&server, ""),
            Err(TlsError::NoCertificate("client CA"))
        ));
        let keyless = Issued {
            cert_pem: server.cert_pem.clone(),
            key_pem: String::new(),
        };
        assert!(server_config(&keyless, &bundle).is_err());
    }
}
