//! TLS material: reads PEM certificates, keys and CA bundles named by the configuration and
//! builds the rustls configurations the node uses, all with the `ring` provider given
//! explicitly (no process-wide default provider is installed or needed):
//!
//! - [`server_config`]: the client listener (`--tls-cert`/`--tls-key`), no client certificates;
//! - [`peer_server_config`]: the peer listener with mutual TLS (`--peer-tls-*`): a client must
//!   present a certificate signed by `--peer-ca`, or the handshake fails;
//! - [`client_config`]: what awc trusts (only the given CA bundle; the OS roots are never used)
//!   and, for peer RPCs, the certificate it presents.
//!
//! I/O: reads files only. It never opens sockets, never logs key material, and never decides
//! which listener or link uses what (startup does).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS file that cannot be used, or a configuration rustls refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The file at fault (for a refused configuration: the certificate).
    pub path: PathBuf,
    /// What the file was meant to be ("certificate", "private key", "CA bundle").
    pub what: &'static str,
    pub why: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot use TLS {} {}: {}",
            self.what,
            self.path.display(),
            self.why
        )
    }
}

impl std::error::Error for TlsError {}

/// A certificate chain and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError {
        path: path.to_owned(),
        what,
        why: e.to_string(),
    })
}

/// Every certificate in the PEM file at `path` (at least one).
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, what)?;
    let err = |why: String| TlsError {
        path: path.to_owned(),
        what,
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate (BEGIN CERTIFICATE) in it".into()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError {
        path: path.to_owned(),
        what: "private key",
        why: format!("no usable PEM private key in it ({e})"),
    })
}

/// A root store holding every certificate of the CA bundle at `path`.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "CA bundle")? {
        roots.add(cert).map_err(|e| TlsError {
            path: path.to_owned(),
            what: "CA bundle",
            why: format!("not a usable CA certificate ({e})"),
        })?;
    }
    Ok(Arc::new(roots))
}

fn refused(id: &Identity, e: rustls::Error) -> TlsError {
    TlsError {
        path: id.cert.clone(),
        what: "certificate",
        why: format!("does not fit its key {} ({e})", id.key.display()),
    }
}

fn protocols_refused(path: &Path, e: rustls::Error) -> TlsError {
    TlsError {
        path: path.to_owned(),
        what: "certificate",
        why: format!("no TLS protocol version available ({e})"),
    }
}

/// The client listener's configuration: serves `id`, asks clients for no certificate.
pub fn server_config(id: &Identity) -> Result<ServerConfig, TlsError> {
    let (certs, key) = (load_certs(&id.cert, "certificate")?, load_key(&id.key)?);
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| protocols_refused(&id.cert, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| refused(id, e))
}

/// The peer listener's configuration with mutual TLS: serves `id` and completes a handshake
/// only with a client whose certificate chains to a CA in `ca`.
pub fn peer_server_config(id: &Identity, ca: &Path) -> Result<ServerConfig, TlsError> {
    let (certs, key) = (load_certs(&id.cert, "certificate")?, load_key(&id.key)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider())
        .build()
        .map_err(|e| TlsError {
            path: ca.to_owned(),
            what: "CA bundle",
            why: format!("cannot verify client certificates with it ({e})"),
        })?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| protocols_refused(&id.cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| refused(id, e))
}

/// What awc uses to reach `https://` nodes: trusts only the CAs in `ca`; presents `id` when
/// given (peer RPCs under mutual TLS). HTTP/1.1 only, like the listeners.
pub fn client_config(ca: &Path, id: Option<&Identity>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| protocols_refused(ca, e))?
        .with_root_certificates(load_roots(ca)?);
    let mut config = match id {
        Some(id) => builder
            .with_client_auth_cert(load_certs(&id.cert, "certificate")?, load_key(&id.key)?)
            .map_err(|e| refused(id, e))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An awc client that speaks TLS with `tls` to `https://` URLs (plain HTTP only without it),
/// follows no redirects, bounds connecting (TCP and TLS handshake) by `connect` and each
/// request by `timeout`. Make it on the thread that uses it.
pub fn awc_client(
    tls: Option<&Arc<ClientConfig>>,
    connect: Duration,
    timeout: Duration,
) -> awc::Client {
    awc_client_with_token(tls, connect, timeout, None)
}

/// [`awc_client`] whose every request carries `Authorization: Bearer TOKEN` when `token` is
/// given (the checker against nodes with client tokens).
pub fn awc_client_with_token(
    tls: Option<&Arc<ClientConfig>>,
    connect: Duration,
    timeout: Duration,
    token: Option<&str>,
) -> awc::Client {
    let connector = awc::Connector::new()
        .timeout(connect)
        .handshake_timeout(connect);
    let connector = match tls {
        Some(cfg) => connector.rustls_0_23(Arc::clone(cfg)),
        None => connector,
    };
    let mut builder = awc::Client::builder()
        .connector(connector)
        .timeout(timeout)
        .disable_redirects();
    if let Some(t) = token {
        builder = builder.bearer_auth(t);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = load_certs(&missing, "certificate").unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let e = load_certs(&junk, "certificate").unwrap_err();
        assert!(e.to_string().contains("junk.pem"), "{e}");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = load_key(&junk).unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
        let e = load_roots(&junk).unwrap_err();
        assert!(e.to_string().contains("CA bundle"), "{e}");
    }

    #[test]
    fn a_generated_certificate_makes_every_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("ca.pem"), ca.pem()).unwrap();
        std::fs::write(p("n.pem"), cert.pem()).unwrap();
        std::fs::write(p("n-key.pem"), key.serialize_pem()).unwrap();
        let id = Identity {
            cert: p("n.pem"),
            key: p("n-key.pem"),
        };
        server_config(&id).unwrap();
        peer_server_config(&id, &p("ca.pem")).unwrap();
        client_config(&p("ca.pem"), Some(&id)).unwrap();
        client_config(&p("ca.pem"), None).unwrap();
        // A key that is not the certificate's is refused, naming the certificate.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(p("other-key.pem"), other.serialize_pem()).unwrap();
        let wrong = Identity {
            cert: p("n.pem"),
            key: p("other-key.pem"),
        };
        let e = server_config(&wrong).unwrap_err();
        assert!(e.to_string().contains("n.pem"), "{e}");
    }
}
