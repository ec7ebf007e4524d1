//! Transports: UDP sockets and TCP connections (IPv4 and IPv6) that move whole messages.
//!
//! Inbound, every transport hands `Received` datagrams or framed stream messages to one
//! bounded channel; when it is full, UDP datagrams are dropped and counted (the sender
//! retransmits) and TCP readers wait (back-pressure on that connection only). Outbound,
//! `Transports::send` writes to a UDP socket or to a connection's bounded writer queue.
//! TLS is a later seam: a third `Protocol` whose connections reuse the TCP framing.

mod tcp;
mod udp;

use bytes::Bytes;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use tcp::ConnHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    pub fn is_reliable(self) -> bool {
        matches!(self, Protocol::Tcp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        })
    }
}

/// A listen entry such as `udp:127.0.0.1:5060` or `tcp:[::1]:5060`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSpec {
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

impl FromStr for ListenSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (proto, addr) = s.split_once(':').ok_or_else(|| {
            format!("{s:?}: expected PROTOCOL:ADDRESS:PORT, e.g. udp:127.0.0.1:5060")
        })?;
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "udp" => Protocol::Udp,
            "tcp" => Protocol::Tcp,
            "tls" => return Err(format!("{s:?}: TLS is not supported yet")),
            other => return Err(format!("{s:?}: unknown protocol {other:?} (udp or tcp)")),
        };
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|e| format!("{s:?}: bad address {addr:?}: {e}"))?;
        Ok(ListenSpec { protocol, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.protocol, self.addr)
    }
}

/// Where a message came from, and so where its responses go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub protocol: Protocol,
    /// Our local address it arrived on.
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// One message as it arrived.
#[derive(Debug)]
pub struct Received {
    pub data: Bytes,
    pub peer: Peer,
}

/// Limits that keep memory bounded.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_tcp_connections: usize,
    /// Messages queued to one TCP connection's writer before the connection is dropped.
    pub tcp_write_queue: usize,
    pub tcp_idle: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tcp_connections: 1024,
            tcp_write_queue: 256,
            tcp_idle: std::time::Duration::from_secs(600),
        }
    }
}

/// Counters for what the transports dropped, for logs and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub udp_dropped_queue_full: AtomicU64,
    pub tcp_rejected_connections: AtomicU64,
    pub tcp_closed_unframeable: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no {protocol} listener for {remote}")]
    NoListener {
        protocol: Protocol,
        remote: SocketAddr,
    },
    #[error("connection to {remote} failed: {source}")]
    Connect {
        remote: SocketAddr,
        source: std::io::Error,
    },
    #[error("send to {remote} failed: {source}")]
    Send {
        remote: SocketAddr,
        source: std::io::Error,
    },
    #[error("connection to {remote} is congested or closed")]
    Congested { remote: SocketAddr },
    #[error("too many TCP connections")]
    TooManyConnections,
}

pub struct Transports {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// Plain clones of the UDP sockets, for sending without the reactor.
    udp_send: Vec<(SocketAddr, std::net::UdpSocket)>,
    tcp_listen: Vec<SocketAddr>,
    conns: Mutex<HashMap<SocketAddr, ConnHandle>>,
    inbound: mpsc::Sender<Received>,
    limits: Limits,
    pub counters: Counters,
    cancel: CancellationToken,
}

impl Transports {
    /// Binds every listen entry and starts its tasks. Port 0 binds an ephemeral port;
    /// `listening()` tells which.
    pub async fn bind(
        specs: &[ListenSpec],
        inbound: mpsc::Sender<Received>,
        limits: Limits,
        cancel: CancellationToken,
    ) -> std::io::Result<Arc<Transports>> {
        let mut udp = Vec::new();
        let mut udp_send = Vec::new();
        let mut tcp_listeners = Vec::new();
        for spec in specs {
            match spec.protocol {
                Protocol::Udp => {
                    let (socket, sender) = udp::bind(spec.addr)?;
                    let local = socket.local_addr()?;
                    udp.push((local, Arc::new(socket)));
                    udp_send.push((local, sender));
                }
                Protocol::Tcp => {
                    let listener = tokio::net::TcpListener::bind(spec.addr).await?;
                    tcp_listeners.push(listener);
                }
            }
        }
        let transports = Arc::new(Transports {
            tcp_listen: tcp_listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect(),
            udp,
            udp_send,
            conns: Mutex::new(HashMap::new()),
            inbound,
            limits,
            counters: Counters::default(),
            cancel,
        });
        for (local, socket) in &transports.udp {
            tokio::spawn(udp::recv_loop(transports.clone(), socket.clone(), *local));
        }
        for listener in tcp_listeners {
            tokio::spawn(tcp::accept_loop(transports.clone(), listener));
        }
        Ok(transports)
    }

    /// What is bound, as listen entries with real ports.
    pub fn listening(&self) -> Vec<ListenSpec> {
        let udp = self.udp.iter().map(|(addr, _)| ListenSpec {
            protocol: Protocol::Udp,
            addr: *addr,
        });
        let tcp = self.tcp_listen.iter().map(|addr| ListenSpec {
            protocol: Protocol::Tcp,
            addr: *addr,
        });
        udp.chain(tcp).collect()
    }

    /// Our address for `protocol` in the remote's address family (for Via and Contact).
    pub fn local_addr_for(&self, protocol: Protocol, remote: SocketAddr) -> Option<SocketAddr> {
        let candidates: Vec<SocketAddr> = match protocol {
            Protocol::Udp => self.udp.iter().map(|(a, _)| *a).collect(),
            Protocol::Tcp => self.tcp_listen.clone(),
        };
        candidates
            .iter()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            .or(candidates.first())
            .copied()
    }

    /// Sends one message. UDP goes out of the socket bound to `local` (or one of the
    /// remote's family); TCP reuses a connection to `remote` or opens one.
    pub async fn send(
        self: &Arc<Self>,
        protocol: Protocol,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        data: Bytes,
    ) -> Result<(), TransportError> {
        match protocol {
            // A datagram never waits: the same path as `send_now`.
            Protocol::Udp => self.send_now(protocol, local, remote, &data).map(drop),
            Protocol::Tcp => {
                let existing = self.conns.lock().expect("conns lock").get(&remote).cloned();
                let conn = match existing {
                    Some(c) if !c.is_closed() => c,
                    _ => tcp::connect(self, remote).await?,
                };
                conn.send(data)
                    .then_some(())
                    .ok_or(TransportError::Congested { remote })
            }
        }
    }

    /// Sends without waiting when that is possible: always for UDP (a full socket buffer
    /// drops the datagram like the network would), and for TCP when a connection to
    /// `remote` is open. `Ok(false)`: a connection must be opened first; use `send`.
    pub fn send_now(
        &self,
        protocol: Protocol,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        data: &Bytes,
    ) -> Result<bool, TransportError> {
        match protocol {
            Protocol::Udp => {
                let socket = self
                    .udp_send
                    .iter()
                    .find(|(a, _)| Some(*a) == local)
                    .or_else(|| {
                        self.udp_send
                            .iter()
                            .find(|(a, _)| a.is_ipv4() == remote.is_ipv4())
                    })
                    .map(|(_, s)| s)
                    .ok_or(TransportError::NoListener { protocol, remote })?;
                match socket.send_to(data, remote) {
                    Ok(_) => Ok(true),
                    // A full socket buffer drops the datagram, as the network may.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
                    Err(source) => Err(TransportError::Send { remote, source }),
                }
            }
            Protocol::Tcp => {
                let existing = self.conns.lock().expect("conns lock").get(&remote).cloned();
                match existing {
                    Some(c) if !c.is_closed() => c
                        .send(data.clone())
                        .then_some(true)
                        .ok_or(TransportError::Congested { remote }),
                    _ => Ok(false),
                }
            }
        }
    }

    fn register(&self, remote: SocketAddr, conn: ConnHandle) -> Result<(), TransportError> {
        let mut conns = self.conns.lock().expect("conns lock");
        conns.retain(|_, c| !c.is_closed());
        if conns.len() >= self.limits.max_tcp_connections {
            self.counters
                .tcp_rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::TooManyConnections);
        }
        conns.insert(remote, conn);
        Ok(())
    }

    /// Forgets a connection so that its writer, once it has flushed what is queued,
    /// ends and the socket closes. Only removes the entry if it is still `conn`.
    fn unregister(&self, remote: SocketAddr, conn: &ConnHandle) {
        let mut conns = self.conns.lock().expect("conns lock");
        if conns.get(&remote).is_some_and(|c| c.same(conn)) {
            conns.remove(&remote);
        }
    }
}
