//! TLS for the test API server: a generated cluster PKI (a CA, a server certificate for
//! 127.0.0.1 and localhost, a client certificate, a service account token), written as PEM files
//! for the clients under test, and the rustls server configuration made from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// Tells apart the PKIs one process generates.
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// The credentials of one test cluster, as PEM files in a temporary directory (removed when
/// this is dropped): `ca.crt`, `server.crt`/`server.key` (SANs 127.0.0.1, ::1 and localhost),
/// `client.crt`/`client.key` (signed by the CA, for client certificate authentication) and
/// `token` (a service account token).
pub struct TestPki {
    /// Holds the files; removed on drop.
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM), which signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// The client certificate (PEM), CN `clusterdns`.
    pub client_cert: PathBuf,
    /// The client's private key (PKCS#8 PEM).
    pub client_key: PathBuf,
    /// A file holding [`Self::token`] (no newline), as a service account token file does.
    pub token_file: PathBuf,
    /// The bearer token.
    pub token: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl TestPki {
    /// Generates a fresh CA and certificates (each call a different CA).
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        // Unique per PKI, so that one CA is never taken for another's issuer by its name.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let unique = format!("{}-{serial}-{nanos:x}", std::process::id());

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("clusterdns test CA {unique}"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let names = ["127.0.0.1", "::1", "localhost"].map(str::to_owned);
        let mut server_params = CertificateParams::new(names).expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        // Client authentication too: etcd's HTTP gateway dials its own gRPC server with it.
        server_params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "clusterdns");
        client_params
            .distinguished_name
            .push(DnType::OrganizationName, "system:serviceaccounts");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &issuer)
            .expect("client certificate");

        let token = format!("test-token-{unique}");

        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {name}: {e}"));
            path
        };
        let ca_cert = write("ca.crt", &ca.pem());
        write("server.crt", &server.pem());
        write("server.key", &server_key.serialize_pem());
        let client_cert = write("client.crt", &client.pem());
        let client_key_path = write("client.key", &client_key.serialize_pem());
        let token_file = write("token", &token);
        TestPki {
            ca_cert,
            client_cert,
            client_key: client_key_path,
            token_file,
            token,
            ca_der: ca.der().clone(),
            server_der: server.der().clone(),
            server_key_der: server_key.serialize_der(),
            _dir: dir,
        }
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.to_vec()
    }

    /// A rustls acceptor serving the server certificate (HTTP/1.1 by ALPN), requiring a client
    /// certificate signed by the CA when `client_cert`. Built with an explicit ring provider,
    /// not the process-wide default.
    pub(super) fn acceptor(&self, client_cert: bool) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("CA as a root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let mut config = builder
            .with_single_cert(vec![self.server_der.clone()], key)
            .expect("server certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// How a TLS server authenticates its clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsOptions {
    /// Require a client certificate signed by the CA (the handshake fails without one).
    pub client_cert: bool,
    /// Require `Authorization: Bearer <token>` with the PKI's token (401 otherwise).
    pub bearer_token: bool,
}
