//! UDP: one socket per listen entry, one receive loop per socket.

use super::{Peer, Protocol, Received, Transports};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Binds a socket; returns the tokio socket for receiving and a clone of the plain
/// socket for sending. Sending on the plain non-blocking socket is one syscall that
/// needs no readiness from the reactor (tokio's `try_send_to` reports WouldBlock until
/// the socket was first polled, which would drop the first datagram).
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, std::net::UdpSocket)> {
    let std_socket = std::net::UdpSocket::bind(addr)?;
    std_socket.set_nonblocking(true)?;
    let sender = std_socket.try_clone()?;
    Ok((UdpSocket::from_std(std_socket)?, sender))
}

pub(super) async fn recv_loop(
    transports: Arc<Transports>,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
) {
    // One datagram is at most 64 KiB; larger ones are truncated by the kernel and then
    // refused by the parser for their short body.
    let mut buf = vec![0u8; 65_535];
    loop {
        let received = tokio::select! {
            _ = transports.cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, remote) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP port-unreachable surfaces here on some systems; keep serving.
                tracing::debug!(%local, error = %e, "udp receive error");
                continue;
            }
        };
        if len == 0
            || buf[..len]
                .iter()
                .all(|&c| c == b'\r' || c == b'\n' || c == 0)
        {
            continue; // keep-alive
        }
        let msg = Received {
            data: Bytes::copy_from_slice(&buf[..len]),
            peer: Peer {
                protocol: Protocol::Udp,
                local,
                remote,
            },
        };
        if transports.inbound.try_send(msg).is_err() {
            transports
                .counters
                .udp_dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            crate::metrics::sip_dropped("udp_queue_full");
        }
    }
}
