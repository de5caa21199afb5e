//! A client's TLS settings from CoreDNS's `tls [CERT KEY] [CA]` arguments (its `pkg/tls`
//! `NewTLSConfigFromArgs`): the plugins that reach a peer over TLS (`etcd`, `grpc`, `trace`)
//! read them alike; and how such a client's failures are told.

use std::path::PathBuf;
use std::sync::Arc;

/// The TLS files of `tls CERT KEY CA` (each optional, as CoreDNS takes 0 to 3 arguments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub ca: Option<std::path::PathBuf>,
}

impl TlsFiles {
    /// Settings for a mirror with no `https://` endpoint: they are never used.
    pub fn plain() -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth())
    }

    /// The client's TLS settings: the CA's certificates (or the system's), and the client
    /// certificate when one is given. Errors name the file.
    pub fn config(&self) -> Result<rustls::ClientConfig, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};

        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                let certs = CertificateDer::pem_file_iter(ca)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
                if certs.is_empty() {
                    return Err(format!("{}: no certificate", ca.display()));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system certificate rustls cannot read is left out, as Go leaves it.
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("{}: {e}", cert.display()))
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }
}

impl TlsFiles {
    /// The files of `tls` with 0 to 3 arguments: none (the system's CAs), CA, CERT KEY, or
    /// CERT KEY CA. `None` for any other count.
    pub fn from_args(files: &[PathBuf]) -> Option<Self> {
        Some(match files {
            [] => Self::default(),
            [ca] => Self {
                ca: Some(ca.clone()),
                ..Self::default()
            },
            [cert, key] => Self {
                cert: Some(cert.clone()),
                key: Some(key.clone()),
                ca: None,
            },
            [cert, key, ca] => Self {
                cert: Some(cert.clone()),
                key: Some(key.clone()),
                ca: Some(ca.clone()),
            },
            _ => return None,
        })
    }
}

/// An HTTP client's error with its causes, `outer: inner: ...`: the cause says what happened
/// (connection refused, reset, a TLS alert).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}
