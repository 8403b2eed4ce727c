//! TLS for PostgreSQL connections, with rustls, under libpq's `sslmode` rules:
//!
//! - `prefer`/`allow`/`require`: encrypted, the server not authenticated (libpq checks nothing
//!   either), except that `require` behaves as `verify-ca` when a root certificate is given or
//!   `~/.postgresql/root.crt` exists, as libpq does;
//! - `verify-ca`: the server's certificate must chain to a trusted root;
//! - `verify-full`: and it must name the host connected to.
//!
//! Trust anchors are `sslrootcert` (else `PGSSLROOTCERT`, else `~/.postgresql/root.crt`), and the
//! system's store only with `sslrootcert=system`, so it is read only when asked for. Unlike
//! OpenSSL, rustls (webpki) matches host names against the subjectAltName only, never the
//! common name, and refuses a CA certificate presented as the server's own.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::connect::{env, SslMode};
use crate::error::{Error, Result};

/// The connector for `mode`; `root_cert` is the URL's `sslrootcert`, else `PGSSLROOTCERT`;
/// `shown` the redacted URL for messages.
pub(super) fn connector(
    mode: SslMode,
    root_cert: Option<String>,
    shown: &str,
) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root = root_cert.or_else(|| {
        let default = PathBuf::from(env("HOME")?).join(".postgresql/root.crt");
        default
            .exists()
            .then(|| default.to_string_lossy().into_owned())
    });
    if root.as_deref() == Some("system") && mode != SslMode::VerifyFull {
        // As libpq 16: the system's store trusts every public CA, so only a check of the name
        // makes it mean anything.
        return Err(Error::Invalid(format!(
            "{shown}: sslrootcert=system needs sslmode=verify-full (with {}, any publicly \
             issued certificate for any name would do)",
            mode.name()
        )));
    }
    let mode = match (mode, &root) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        _ => mode,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            Arc::new(Unauthenticated(provider.clone()))
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let Some(root) = root else {
                return Err(Error::Invalid(format!(
                    "{shown}: sslmode {} needs a root certificate to verify the server with: \
                     give sslrootcert=FILE (or PGSSLROOTCERT, or ~/.postgresql/root.crt; \
                     sslrootcert=system for the system's store)",
                    mode.name()
                )));
            };
            let roots = Arc::new(trust_anchors(&root, shown)?);
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| Error::Invalid(format!("{shown}: sslrootcert {root}: {e}")))?;
            if mode == SslMode::VerifyCa {
                Arc::new(AnyName(chain))
            } else {
                chain
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("{shown}: cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of a PEM file, or the system's store for `system`.
fn trust_anchors(root: &str, shown: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    if root == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(Error::Invalid(format!(
                "{shown}: sslrootcert=system, but no certificate was found in the system's \
                 store ({:?})",
                found.errors
            )));
        }
        return Ok(store);
    }
    let certs = CertificateDer::pem_file_iter(root)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| match e {
            rustls::pki_types::pem::Error::Io(e) => {
                Error::io(format!("{shown}: cannot read sslrootcert {root}"), e)
            }
            e => Error::Invalid(format!(
                "{shown}: sslrootcert {root} is not a PEM certificate: {e}"
            )),
        })?;
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Invalid(format!(
            "{shown}: sslrootcert {root} holds no certificate"
        )));
    }
    Ok(store)
}

/// Encryption without authentication (`sslmode=require` and below): any certificate is taken,
/// but the handshake must still be signed by its key, so the session is with its holder.
#[derive(Debug)]
struct Unauthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not
/// checked. (webpki checks the chain before the name, so a name mismatch means the chain held.)
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
