//! HTTPS: an [`axum::serve::Listener`] whose connections are TLS streams.
//!
//! A background task accepts TCP connections and runs each handshake in its own task,
//! bounded in number ([`MAX_HANDSHAKES`]) and in time ([`HANDSHAKE_TIMEOUT`]), so a slow
//! or silent client never holds up the others; finished handshakes queue (bounded) for
//! axum to take. A client that speaks plain HTTP to the HTTPS port is told so in a 400
//! with a JSON body instead of a TLS alert it cannot read, and its connection closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::AbortOnDrop;

/// Longest a client may take from connecting to a finished handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; connections beyond it are closed at once.
pub const MAX_HANDSHAKES: usize = 256;

/// The first byte of a TLS handshake record (RFC 8446 §5.1, content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to plain HTTP on the HTTPS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: application/json\r\n\
Content-Length: 53\r\n\
Connection: close\r\n\
\r\n\
{\"error\":\"this port serves HTTPS only; use https://\"}";

/// Accepted, handshaken TLS connections, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _acceptor: AbortOnDrop,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config` (certificate, key, ALPN).
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener {
            ready,
            local,
            _acceptor: AbortOnDrop(task),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "https accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "https connection refused: too many handshakes in progress");
            continue;
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(acceptor, stream)).await;
            match done {
                Ok(Ok(Some(tls))) => {
                    let _ = ready.send((tls, remote)).await;
                }
                Ok(Ok(None)) => tracing::debug!(%remote, "plain HTTP on the HTTPS port"),
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "https handshake failed"),
                Err(_) => tracing::debug!(%remote, "https handshake timed out"),
            }
        });
    }
}

/// The handshake, or None when the client spoke something else (answered for plain
/// HTTP, closed otherwise).
async fn handshake(
    acceptor: TlsAcceptor,
    mut stream: TcpStream,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        if first[0].is_ascii_uppercase() {
            // Read the request first: closing with unread data would reset the
            // connection and could lose the answer. Then wait (within the handshake
            // timeout) for the client to close.
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await?;
            stream.write_all(PLAIN_HTTP_ANSWER).await?;
            stream.shutdown().await?;
            while stream.read(&mut request).await? > 0 {}
        }
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_http_answer_is_well_formed() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("HTTPS"));
    }
}
