//! TLS material for SIP over TLS and for HTTPS: PEM certificate chains and private keys
//! read from files, turned into rustls server and client configurations.
//!
//! rustls runs on the `ring` provider only, passed explicitly to every builder, so no
//! process-wide default provider has to be installed. Loading is done once at start-up
//! (and by `check-config`, which reports a missing or broken file under the key that
//! names it); the daemon never reloads certificates while running.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What went wrong with a certificate, a key or the configuration built from them.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM certificate file: {reason}", path.display())]
    BadCertificates { path: PathBuf, reason: String },
    #[error("{}: no certificate in it (expected \"-----BEGIN CERTIFICATE-----\")", path.display())]
    NoCertificates { path: PathBuf },
    #[error("{}: no private key in it (expected a PEM PKCS#8, PKCS#1 or SEC1 key): {reason}", path.display())]
    NoKey { path: PathBuf, reason: String },
    #[error("certificate {} and key {} do not fit together: {source}", cert.display(), key.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("{}: certificate not usable as a trust root: {source}", path.display())]
    BadRoot {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The one crypto provider every config is built with.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file, in file order (leaf first for a chain).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificates {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NoKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A server configuration presenting the chain in `cert` with the key in `key`, no
/// client certificates asked for; `alpn` lists the application protocols offered
/// (empty for SIP, `http/1.1` for HTTPS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certificates(cert)?;
    let private_key = load_private_key(key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|source| TlsError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration that verifies servers against the system's CA roots plus
/// every certificate in `extra_roots` (a private CA, or a peer's self-signed CA). The
/// system store is read once here; a system without one leaves only `extra_roots`.
pub fn client_config(extra_roots: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "a system CA certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!(added, ignored, "system CA roots for outbound TLS");
    if let Some(path) = extra_roots {
        for cert in load_certificates(path)? {
            roots.add(cert).map_err(|source| TlsError::BadRoot {
                path: path.to_owned(),
                source,
            })?;
        }
    }
    if roots.is_empty() {
        tracing::warn!("no CA roots for outbound TLS: every TLS server will be refused");
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let missing = Path::new("/nonexistent/threering/cert.pem");
        let err = server_config(missing, missing, &[]).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/threering/cert.pem"));
    }

    #[test]
    fn files_without_pem_content_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = load_certificates(&junk).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificates { .. }), "{err}");
        let err = load_private_key(&junk).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n@@@not base64@@@\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_certificates(&broken).unwrap_err();
        assert!(matches!(err, TlsError::BadCertificates { .. }), "{err}");
    }

    #[test]
    fn a_client_config_builds_without_extra_roots() {
        assert!(client_config(None).is_ok());
    }
}
