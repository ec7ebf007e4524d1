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
    grow_receive_buffer(&std_socket, addr);
    let sender = std_socket.try_clone()?;
    Ok((UdpSocket::from_std(std_socket)?, sender))
}

/// The receive buffer asked for on SIP UDP sockets (Linux doubles it, up to twice
/// `net.core.rmem_max`). The kernel's default, about 208 KiB, holds only some 150
/// datagrams as the kernel counts them (each costs its buffer's true size, about 1.3 KiB
/// on loopback): at 2,000 calls a second that is 10 ms of traffic, and a burst while the
/// receive task waited its turn overflowed it. A lost 200 OK from an agent then cost
/// 500 ms (our INVITE retransmission), or the call where the agent's phone took that
/// retransmission for an error (bench/run, SIPp as the agent). 2 MiB holds about 100 ms
/// at that rate: enough for a scheduling hiccup, and well short of the 500 ms after
/// which a backlog only ages into retransmissions.
const RECEIVE_BUFFER: usize = 1 << 20;

/// Asks for [`RECEIVE_BUFFER`]; says what the kernel gave (below 1 MiB is worth
/// raising with `sysctl net.core.rmem_max` on a busy node).
fn grow_receive_buffer(socket: &std::net::UdpSocket, addr: SocketAddr) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(RECEIVE_BUFFER) {
        tracing::warn!(%addr, error = %e, "could not enlarge the SIP UDP receive buffer");
    }
    match sock.recv_buffer_size() {
        Ok(size) if size < 1 << 20 => tracing::info!(
            %addr, bytes = size,
            "SIP UDP receive buffer is small: raise net.core.rmem_max for high call rates"
        ),
        Ok(size) => tracing::debug!(%addr, bytes = size, "SIP UDP receive buffer"),
        Err(_) => {}
    }
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
