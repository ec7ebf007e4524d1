//! TLS for the tests: a private CA and a certificate for 127.0.0.1 made with the
//! `openssl` CLI in a temp dir ([`TestCerts`]), a rustls client that trusts that CA
//! ([`TestCerts::client_config`]), and SIP over one TLS connection ([`TlsSip`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tempfile::TempDir;

use super::base::{head_end, show_bytes};

/// A CA and a leaf certificate for `IP:127.0.0.1` / `DNS:localhost` signed by it, as PEM
/// files in a temp dir that lives as long as any clone.
#[derive(Clone, Debug)]
pub struct TestCerts {
    dir: Arc<TempDir>,
}

impl TestCerts {
    /// Makes the CA and the leaf (EC P-256, valid two days) with `openssl`.
    pub fn generate() -> TestCerts {
        let dir = TempDir::new().expect("temp dir for the certificates");
        let at = |name: &str| dir.path().join(name).display().to_string();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=threering test CA",
            "-keyout",
            &at("ca.key"),
            "-out",
            &at("ca.pem"),
        ]);
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &at("key.pem"),
            "-out",
            &at("leaf.csr"),
        ]);
        std::fs::write(
            dir.path().join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("write leaf.ext");
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-set_serial",
            "2",
            "-in",
            &at("leaf.csr"),
            "-CA",
            &at("ca.pem"),
            "-CAkey",
            &at("ca.key"),
            "-extfile",
            &at("leaf.ext"),
            "-out",
            &at("cert.pem"),
        ]);
        TestCerts { dir: Arc::new(dir) }
    }

    /// The leaf certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The leaf's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The CA certificate (PEM) that signed the leaf.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Where other test files (a Kamailio config) may go.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A rustls client that trusts only this CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        client_trusting(&self.ca())
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (Debian package openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A rustls client (ring provider) that trusts the CA certificates in `ca` only.
pub fn client_trusting(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA file") {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS client stream to `addr` (a blocking socket, handshake done lazily on first
/// use), the server checked for the IP address of `addr`.
pub fn tls_stream(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    Ok(StreamOwned::new(conn, tcp))
}

/// SIP over one TLS connection: write a request, read whole responses (framed by
/// Content-Length, as a SIP stream is).
pub struct TlsSip {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buffer: Vec<u8>,
}

impl TlsSip {
    /// Connects and completes the handshake.
    pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<TlsSip, String> {
        let mut stream = tls_stream(addr, config)?;
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        }
        Ok(TlsSip {
            stream,
            buffer: Vec::new(),
        })
    }

    /// Our end of the TCP connection (for Via).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.sock.local_addr().expect("local address")
    }

    pub fn send(&mut self, message: &str) -> Result<(), String> {
        self.stream
            .write_all(message.as_bytes())
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("TLS write: {e}"))
    }

    /// The next whole message, within `wait`.
    pub fn recv(&mut self, wait: Duration) -> Result<String, String> {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(len) = message_len(&self.buffer) {
                let message: Vec<u8> = self.buffer.drain(..len).collect();
                return Ok(String::from_utf8_lossy(&message).into_owned());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no whole SIP message within {wait:?}; got {}",
                    show_bytes(&self.buffer, 400)
                ));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed the TLS connection".into()),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("TLS read: {e}")),
            }
        }
    }
}

/// The length of the first whole message in `data` (head + Content-Length body).
fn message_len(data: &[u8]) -> Option<usize> {
    let head = head_end(data)?;
    let text = String::from_utf8_lossy(&data[..head]);
    let body = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case("content-length") || n == "l"
        })
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (data.len() >= head + body).then_some(head + body)
}
