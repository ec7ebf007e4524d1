//! TLS (RFC 3261 §26.2, RFC 5630 for `sips:`): accepted and outgoing connections that
//! carry the same framed stream as TCP once their handshake is done.
//!
//! An accepted connection handshakes in its own task, bounded by the handshake timeout
//! and by a semaphore as large as the connection cap, so a peer that connects and stays
//! silent holds neither the accept loop nor more than one slot. Only a finished handshake
//! registers the connection (and counts against the cap). Outgoing connections verify
//! the server's certificate against the configured roots; since the daemon does not
//! resolve names (see `target_for_uri`), the name checked is the peer's IP address, which
//! its certificate must carry as a subjectAltName.

use super::{tcp, Protocol, TransportError, Transports};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS for the `tls:` listeners (server side) and for the connections we open.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Our certificate and key, presented by every `tls:` listener; None when there is
    /// no `tls:` listener (outbound TLS needs no certificate of ours).
    pub server: Option<Arc<rustls::ServerConfig>>,
    /// How the servers we connect to are verified.
    pub client: Arc<rustls::ClientConfig>,
}

pub(super) async fn accept_loop(
    transports: Arc<Transports>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
) {
    loop {
        let accepted = tokio::select! {
            _ = transports.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "tls accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = transports.handshakes.clone().try_acquire_owned() else {
            // As many handshakes in progress as connections allowed: refuse this one.
            transports
                .counters
                .tcp_rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%remote, "tls connection refused: too many handshakes in progress");
            continue;
        };
        let transports = transports.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = handshake_inbound(&transports, acceptor, stream, remote).await {
                transports
                    .counters
                    .tls_failed_handshakes
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%remote, error = %e, "tls connection refused");
            }
        });
    }
}

async fn handshake_inbound(
    transports: &Arc<Transports>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    remote: SocketAddr,
) -> Result<(), TransportError> {
    let failed = |source| TransportError::Connect { remote, source };
    let local = stream.local_addr().map_err(failed)?;
    let _ = stream.set_nodelay(true);
    let timeout = transports.limits.tls_handshake_timeout;
    let tls = tokio::select! {
        _ = transports.cancel.cancelled() => return Ok(()),
        done = tokio::time::timeout(timeout, acceptor.accept(stream)) => {
            done.map_err(|_| failed(timed_out()))?.map_err(failed)?
        }
    };
    let (reader, writer) = tokio::io::split(tls);
    tcp::start(transports, reader, writer, Protocol::Tls, local, remote).map(drop)
}

/// Opens a TLS connection to `remote`, verifying that its certificate is valid for the
/// remote's IP address.
pub(super) async fn connect(
    transports: &Arc<Transports>,
    remote: SocketAddr,
) -> Result<tcp::ConnHandle, TransportError> {
    let settings = transports
        .tls
        .as_ref()
        .ok_or(TransportError::TlsNotConfigured)?;
    let connector = TlsConnector::from(settings.client.clone());
    let stream = tcp::open(remote).await?;
    let failed = |source| TransportError::Connect { remote, source };
    let local = stream.local_addr().map_err(failed)?;
    let name = rustls_pki_types::ServerName::IpAddress(remote.ip().into());
    let tls = tokio::time::timeout(
        transports.limits.tls_handshake_timeout,
        connector.connect(name, stream),
    )
    .await
    .map_err(|_| failed(timed_out()))?
    .map_err(|e| {
        transports
            .counters
            .tls_failed_handshakes
            .fetch_add(1, Ordering::Relaxed);
        failed(e)
    })?;
    let (reader, writer) = tokio::io::split(tls);
    tcp::start(transports, reader, writer, Protocol::Tls, local, remote)
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
}
