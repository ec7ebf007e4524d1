//! TCP: accepted and outgoing connections, framed by Content-Length. TLS connections
//! (see `tls`) run on the same reader and writer tasks once their handshake is done.
//!
//! A message that is malformed but whose framing is intact is handed up like any other
//! (the endpoint answers it 400) and the connection goes on with the next one. A stream
//! that can no longer be framed (missing or conflicting Content-Length, oversized
//! headers) is answered 400 if its headers allow, then that one connection is closed.

use super::{Peer, Protocol, Received, TransportError, Transports};
use crate::sip::parse::{frame, reply_info, Frame, MAX_MESSAGE};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The sending side of one connection: a bounded queue to its writer task.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    tx: mpsc::Sender<Bytes>,
}

impl ConnHandle {
    /// Queues a message; `false` when the queue is full or the connection gone.
    pub fn send(&self, data: Bytes) -> bool {
        self.tx.try_send(data).is_ok()
    }

    pub fn same(&self, other: &ConnHandle) -> bool {
        self.tx.same_channel(&other.tx)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

pub(super) async fn accept_loop(transports: Arc<Transports>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = transports.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, remote)) => {
                if let Err(e) = accept(&transports, stream, remote) {
                    tracing::warn!(%remote, error = %e, "tcp connection refused");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

pub(super) async fn connect(
    transports: &Arc<Transports>,
    remote: SocketAddr,
) -> Result<ConnHandle, TransportError> {
    let stream = open(remote).await?;
    let local = stream
        .local_addr()
        .map_err(|source| TransportError::Connect { remote, source })?;
    let (reader, writer) = stream.into_split();
    start(transports, reader, writer, Protocol::Tcp, local, remote)
}

/// Opens a TCP connection within [`CONNECT_TIMEOUT`] (no delay on small writes: SIP
/// messages are written whole).
pub(super) async fn open(remote: SocketAddr) -> Result<TcpStream, TransportError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote))
        .await
        .map_err(|_| TransportError::Connect {
            remote,
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        })?
        .map_err(|source| TransportError::Connect { remote, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn accept(
    transports: &Arc<Transports>,
    stream: TcpStream,
    remote: SocketAddr,
) -> Result<ConnHandle, TransportError> {
    let local = stream
        .local_addr()
        .map_err(|source| TransportError::Connect { remote, source })?;
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    start(transports, reader, writer, Protocol::Tcp, local, remote)
}

/// Registers a connection (within the connection cap) and starts its reader and writer
/// tasks. Used for TCP and, with the halves of a TLS stream, for TLS.
pub(super) fn start<R, W>(
    transports: &Arc<Transports>,
    reader: R,
    writer: W,
    protocol: Protocol,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<ConnHandle, TransportError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(transports.limits.tcp_write_queue);
    let handle = ConnHandle { tx };
    transports.register(protocol, remote, handle.clone())?;
    let peer = Peer {
        protocol,
        local,
        remote,
    };
    tokio::spawn(write_loop(writer, rx, transports.cancel.clone()));
    tokio::spawn(read_loop(reader, peer, handle.clone(), transports.clone()));
    Ok(handle)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Bytes>,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let data = tokio::select! {
            _ = cancel.cancelled() => break,
            d = rx.recv() => d,
        };
        let Some(data) = data else { break };
        if writer.write_all(&data).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    peer: Peer,
    handle: ConnHandle,
    transports: Arc<Transports>,
) {
    let (inbound, idle, cancel) = (
        transports.inbound.clone(),
        transports.limits.tcp_idle,
        transports.cancel.clone(),
    );
    let mut buf = BytesMut::with_capacity(8192);
    let mut broken = false;
    'conn: loop {
        // Hand up every complete message in the buffer.
        loop {
            match frame(&buf) {
                Frame::Incomplete => break,
                Frame::KeepAlive { len, ping } => {
                    let _ = buf.split_to(len);
                    if ping {
                        handle.send(Bytes::from_static(b"\r\n"));
                    }
                }
                Frame::Message { len } => {
                    let data = buf.split_to(len).freeze();
                    let msg = Received {
                        data,
                        peer: peer.clone(),
                    };
                    tokio::select! {
                        _ = cancel.cancelled() => break 'conn,
                        sent = inbound.send(msg) => if sent.is_err() { break 'conn },
                    }
                }
                Frame::Broken { reason, head_len } => {
                    transports
                        .counters
                        .tcp_closed_unframeable
                        .fetch_add(1, Ordering::Relaxed);
                    answer_unframeable(&handle, &buf[..head_len.min(buf.len())], reason);
                    broken = true;
                    break 'conn;
                }
            }
        }
        if buf.len() > MAX_MESSAGE {
            answer_unframeable(&handle, &buf, "message too large");
            broken = true;
            break;
        }
        let read = tokio::select! {
            _ = cancel.cancelled() => break,
            r = tokio::time::timeout(idle, reader.read_buf(&mut buf)) => r,
        };
        match read {
            Ok(Ok(0)) => {
                if !buf.is_empty() {
                    answer_unframeable(&handle, &buf, "connection closed inside a message");
                }
                break;
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    // Answers to the messages read before the end are still being produced, so the
    // connection stays usable a little: one second after a stream broke (then it is
    // closed), 64·T1 after the peer's EOF (it may have half-closed and still wait for
    // responses).
    let linger = if broken { 1 } else { 32 };
    tokio::select! {
        _ = transports.cancel.cancelled() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(linger)) => {}
    }
    transports.unregister(peer.protocol, peer.remote, &handle);
}

/// Answers the head of a stream that cannot be framed with a 400, when it can be
/// addressed; the caller then closes the connection.
fn answer_unframeable(handle: &ConnHandle, head: &[u8], reason: &str) {
    if let Some(info) = reply_info(head) {
        let resp = info.response(400, &format!("Bad Request: {reason}"));
        handle.send(resp.to_bytes());
    }
}
