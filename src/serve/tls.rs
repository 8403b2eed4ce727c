//! `--tls-cert`/`--tls-key`: HTTPS with rustls (ring), the same TLS the PostgreSQL client uses.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracker::{Error, Result};

/// The acceptor for the certificate chain at `cert` and the private key at `key` (PEM).
///
/// # Errors
///
/// [`Error::Invalid`] naming the file for one that cannot be read, holds no certificate or key,
/// or a key that does not fit the certificate.
pub(super) fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let bad = |path: &Path, what: String| Error::Invalid(format!("{}: {what}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, format!("cannot read the certificate ({e})")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(bad(
            cert,
            "holds no certificate (PEM, BEGIN CERTIFICATE)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, format!("not a PEM private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(cert, format!("the key does not fit the certificate ({e})")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
