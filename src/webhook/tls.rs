//! TLS for the API (rustls): a certificate chain and a private key from PEM files, read again
//! when either file changes, so a renewed certificate is served without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How often the files are looked at for a change, at most.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The certificate chain and key files (`--tls-cert-file`, `--tls-key-file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("cannot read the TLS private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(String),
}

/// The acceptor for the files as they are now.
pub struct Tls {
    files: TlsFiles,
    current: Mutex<Current>,
}

struct Current {
    acceptor: TlsAcceptor,
    stamps: [Option<SystemTime>; 2],
    checked: Instant,
}

impl Tls {
    /// Loads the files; a failure here stops the server from starting.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let stamps = stamps(&files);
        let acceptor = acceptor(&files)?;
        Ok(Self {
            files,
            current: Mutex::new(Current {
                acceptor,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for the next connection, after reading the files again if they changed. A
    /// changed pair that does not load is logged and the previous one kept, so a half-written
    /// renewal never takes the API down.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.checked.elapsed() >= RELOAD_CHECK {
            current.checked = Instant::now();
            let now = stamps(&self.files);
            if now != current.stamps {
                current.stamps = now;
                match acceptor(&self.files) {
                    Ok(acceptor) => {
                        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                        current.acceptor = acceptor;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the changed TLS files do not load; serving the previous certificate")
                    }
                }
            }
        }
        current.acceptor.clone()
    }
}

fn stamps(files: &TlsFiles) -> [Option<SystemTime>; 2] {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    [modified(&files.cert), modified(&files.key)]
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_error = |message: String| TlsError::Cert {
        path: files.cert.clone(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| cert_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE block in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| TlsError::Key {
        path: files.key.clone(),
        message: error.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|error| TlsError::Config(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
