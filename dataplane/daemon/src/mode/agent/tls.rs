//! Client TLS of the control channel: the agent presents the certificate the
//! operator issued for its gateway and trusts only the operator's CA.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Why the TLS files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// mTLS settings from PEM: the CA that signs the operator's certificate, this
/// agent's certificate chain and private key, and the name the operator's
/// certificate must carry. The PEM is parsed when the agent connects.
pub fn client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    server_name: &str,
) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(cert_pem, key_pem))
        .domain_name(server_name)
}

/// [`client_config`] from a directory holding `ca.crt`, `tls.crt` and `tls.key`
/// (the layout of a Kubernetes TLS Secret with its CA, mounted as files).
pub fn load_dir(dir: &Path, server_name: &str) -> Result<ClientTlsConfig, TlsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    Ok(client_config(
        &read("ca.crt")?,
        &read("tls.crt")?,
        &read("tls.key")?,
        server_name,
    ))
}

/// The host part of an endpoint URL (the default TLS server name).
pub fn url_host(url: &str) -> Option<String> {
    let endpoint = Endpoint::from_shared(url.to_owned()).ok()?;
    endpoint
        .uri()
        .host()
        .map(|h| h.trim_matches(['[', ']']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_urls() {
        assert_eq!(
            url_host("https://sluice-operator.sluice-system.svc:9443").as_deref(),
            Some("sluice-operator.sluice-system.svc")
        );
        assert_eq!(
            url_host("https://127.0.0.1:9443").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("not a url"), None);
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = load_dir(Path::new("/nonexistent-sluice-tls"), "x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent-sluice-tls/ca.crt"), "{err}");
    }
}
