//! The optional HTTPS listener (spec §2 "TLS": the Java SDK requires an `https://` server
//! URL). A self-signed certificate is generated at start (rcgen, ECDSA P-256) for the names
//! asked (default `localhost`, `127.0.0.1`, `::1`); its PEM can be written where the user
//! asks so a client can trust it (e.g. `keytool -importcert` for the JVM). rustls with the
//! `ring` provider, TLS 1.2 and 1.3, ALPN `http/1.1`.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// A TLS setup that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed (e.g. an invalid DNS name). The cause is the error's
    /// `source()`, not repeated in its message.
    #[error("generating the self-signed certificate")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration (the cause is the `source()`).
    #[error("TLS configuration")]
    Config(#[from] rustls::Error),
}

/// A self-signed certificate and the server configuration that presents it.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate, PEM (give this to clients to trust).
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    pub(crate) config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Names the certificate covers by default.
pub const DEFAULT_TLS_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl TlsIdentity {
    /// Generates a self-signed certificate for `names` (DNS names or IP addresses; empty =
    /// [`DEFAULT_TLS_NAMES`]) and a rustls server configuration for it.
    pub fn self_signed(names: &[String]) -> Result<Self, TlsError> {
        let names: Vec<String> = if names.is_empty() {
            DEFAULT_TLS_NAMES.iter().map(|s| (*s).to_owned()).collect()
        } else {
            names.to_vec()
        };
        let certified = rcgen::generate_simple_self_signed(names)?;
        let cert_der = certified.cert.der().to_vec();
        let key_der = certified.key_pair.serialize_der();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_pem: certified.cert.pem(),
            key_pem: certified.key_pair.serialize_pem(),
            cert_der,
            config: Arc::new(config),
        })
    }

    /// The acceptor for incoming connections.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_certificate_for_loopback() {
        // spec §2 TLS: a cert a client can be told to trust
        let id = TlsIdentity::self_signed(&[]).unwrap();
        assert!(id.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(id.key_pem.contains("PRIVATE KEY"));
        assert_eq!(id.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
