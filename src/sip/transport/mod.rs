//! Transports: UDP sockets, TCP and TLS connections (IPv4 and IPv6) that move whole
//! messages.
//!
//! Inbound, every transport hands `Received` datagrams or framed stream messages to one
//! bounded channel; when it is full, UDP datagrams are dropped and counted (the sender
//! retransmits) and stream readers wait (back-pressure on that connection only).
//! Outbound, `Transports::send` writes to a UDP socket or to a connection's bounded
//! writer queue. TLS connections are TCP connections with a handshake in front: they
//! share the TCP framing, the connection cap and the idle timeout.

mod tcp;
mod tls;
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
pub use tls::TlsSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
}

impl Protocol {
    pub fn is_reliable(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Tls)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
        }
    }

    /// The `;transport=` URI parameter that makes a peer reach us over this protocol
    /// (None for UDP, the default of a `sip:` URI).
    pub fn uri_param(self) -> Option<&'static str> {
        match self {
            Protocol::Udp => None,
            Protocol::Tcp => Some("tcp"),
            Protocol::Tls => Some("tls"),
        }
    }

    /// The protocol a `transport` URI parameter or `[[trunks]] transport` names.
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name.to_ascii_lowercase().as_str() {
            "udp" => Some(Protocol::Udp),
            "tcp" => Some(Protocol::Tcp),
            "tls" => Some(Protocol::Tls),
            _ => None,
        }
    }

    /// The port a URI without one means: 5061 for TLS, 5060 otherwise (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Tls => 5061,
            Protocol::Udp | Protocol::Tcp => 5060,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls => "tls",
        })
    }
}

/// A listen entry such as `udp:127.0.0.1:5060`, `tcp:[::1]:5060` or
/// `tls:0.0.0.0:5061`.
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
        let protocol = Protocol::from_name(proto).ok_or_else(|| {
            format!(
                "{s:?}: unknown protocol {:?} (udp, tcp or tls)",
                proto.to_ascii_lowercase()
            )
        })?;
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
    /// How long a TLS handshake (accepted or opened by us) may take.
    pub tls_handshake_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tcp_connections: 1024,
            tcp_write_queue: 256,
            tcp_idle: std::time::Duration::from_secs(600),
            tls_handshake_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Counters for what the transports dropped, for logs and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub udp_dropped_queue_full: AtomicU64,
    pub tcp_rejected_connections: AtomicU64,
    pub tcp_closed_unframeable: AtomicU64,
    /// TLS handshakes that failed or timed out (both directions).
    pub tls_failed_handshakes: AtomicU64,
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
    #[error("TLS is not configured")]
    TlsNotConfigured,
    #[error("a tls: listener needs a certificate and key ([sip] tls_cert, tls_key)")]
    NoCertificate,
}

pub struct Transports {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// Plain clones of the UDP sockets, for sending without the reactor.
    udp_send: Vec<(SocketAddr, std::net::UdpSocket)>,
    tcp_listen: Vec<SocketAddr>,
    tls_listen: Vec<SocketAddr>,
    /// TCP and TLS connections by protocol and remote address.
    conns: Mutex<HashMap<(Protocol, SocketAddr), ConnHandle>>,
    inbound: mpsc::Sender<Received>,
    limits: Limits,
    tls: Option<TlsSettings>,
    /// TLS handshakes in progress on accepted connections (at most the connection cap).
    handshakes: Arc<tokio::sync::Semaphore>,
    pub counters: Counters,
    cancel: CancellationToken,
}

impl Transports {
    /// Binds every listen entry and starts its tasks. Port 0 binds an ephemeral port;
    /// `listening()` tells which. `tls` is needed for `tls:` entries (with a server
    /// certificate) and for sending over TLS.
    pub async fn bind(
        specs: &[ListenSpec],
        tls: Option<TlsSettings>,
        inbound: mpsc::Sender<Received>,
        limits: Limits,
        cancel: CancellationToken,
    ) -> std::io::Result<Arc<Transports>> {
        let mut udp = Vec::new();
        let mut udp_send = Vec::new();
        let mut tcp_listeners = Vec::new();
        let mut tls_listeners = Vec::new();
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
                Protocol::Tls => {
                    let server = tls.as_ref().and_then(|t| t.server.clone()).ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            TransportError::NoCertificate,
                        )
                    })?;
                    let listener = tokio::net::TcpListener::bind(spec.addr).await?;
                    tls_listeners.push((listener, tokio_rustls::TlsAcceptor::from(server)));
                }
            }
        }
        let local_addrs = |listeners: Vec<&tokio::net::TcpListener>| -> Vec<SocketAddr> {
            listeners
                .into_iter()
                .filter_map(|l| l.local_addr().ok())
                .collect()
        };
        let transports = Arc::new(Transports {
            tcp_listen: local_addrs(tcp_listeners.iter().collect()),
            tls_listen: local_addrs(tls_listeners.iter().map(|(l, _)| l).collect()),
            udp,
            udp_send,
            conns: Mutex::new(HashMap::new()),
            inbound,
            handshakes: Arc::new(tokio::sync::Semaphore::new(limits.max_tcp_connections)),
            limits,
            tls,
            counters: Counters::default(),
            cancel,
        });
        for (local, socket) in &transports.udp {
            tokio::spawn(udp::recv_loop(transports.clone(), socket.clone(), *local));
        }
        for listener in tcp_listeners {
            tokio::spawn(tcp::accept_loop(transports.clone(), listener));
        }
        for (listener, acceptor) in tls_listeners {
            tokio::spawn(tls::accept_loop(transports.clone(), listener, acceptor));
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
        let tls = self.tls_listen.iter().map(|addr| ListenSpec {
            protocol: Protocol::Tls,
            addr: *addr,
        });
        udp.chain(tcp).chain(tls).collect()
    }

    /// Our address for `protocol` in the remote's address family (for Via and Contact).
    pub fn local_addr_for(&self, protocol: Protocol, remote: SocketAddr) -> Option<SocketAddr> {
        let candidates: Vec<SocketAddr> = match protocol {
            Protocol::Udp => self.udp.iter().map(|(a, _)| *a).collect(),
            Protocol::Tcp => self.tcp_listen.clone(),
            Protocol::Tls => self.tls_listen.clone(),
        };
        candidates
            .iter()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            .or(candidates.first())
            .copied()
    }

    /// Sends one message. UDP goes out of the socket bound to `local` (or one of the
    /// remote's family); TCP and TLS reuse a connection to `remote` or open one.
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
            Protocol::Tcp | Protocol::Tls => {
                let conn = match self.connection(protocol, remote) {
                    Some(c) => c,
                    None if protocol == Protocol::Tls => tls::connect(self, remote).await?,
                    None => tcp::connect(self, remote).await?,
                };
                conn.send(data)
                    .then_some(())
                    .ok_or(TransportError::Congested { remote })
            }
        }
    }

    /// Sends without waiting when that is possible: always for UDP (a full socket buffer
    /// drops the datagram like the network would), and for TCP and TLS when a connection
    /// to `remote` is open. `Ok(false)`: a connection must be opened first; use `send`.
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
            Protocol::Tcp | Protocol::Tls => match self.connection(protocol, remote) {
                Some(c) => c
                    .send(data.clone())
                    .then_some(true)
                    .ok_or(TransportError::Congested { remote }),
                None => Ok(false),
            },
        }
    }

    /// The open connection to `remote` over `protocol`, if any.
    fn connection(&self, protocol: Protocol, remote: SocketAddr) -> Option<ConnHandle> {
        let conns = self.conns.lock().expect("conns lock");
        conns
            .get(&(protocol, remote))
            .filter(|c| !c.is_closed())
            .cloned()
    }

    fn register(
        &self,
        protocol: Protocol,
        remote: SocketAddr,
        conn: ConnHandle,
    ) -> Result<(), TransportError> {
        let mut conns = self.conns.lock().expect("conns lock");
        conns.retain(|_, c| !c.is_closed());
        if conns.len() >= self.limits.max_tcp_connections {
            self.counters
                .tcp_rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::TooManyConnections);
        }
        conns.insert((protocol, remote), conn);
        Ok(())
    }

    /// Forgets a connection so that its writer, once it has flushed what is queued,
    /// ends and the socket closes. Only removes the entry if it is still `conn`.
    fn unregister(&self, protocol: Protocol, remote: SocketAddr, conn: &ConnHandle) {
        let key = (protocol, remote);
        let mut conns = self.conns.lock().expect("conns lock");
        if conns.get(&key).is_some_and(|c| c.same(conn)) {
            conns.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_entries_name_udp_tcp_or_tls() {
        let spec = |s: &str| s.parse::<ListenSpec>();
        let tls = spec("tls:127.0.0.1:5061").unwrap();
        assert_eq!(tls.protocol, Protocol::Tls);
        assert_eq!(tls.addr, SocketAddr::from(([127, 0, 0, 1], 5061)));
        assert_eq!(tls.to_string(), "tls:127.0.0.1:5061");
        assert_eq!(spec("TLS:[::1]:5061").unwrap().protocol, Protocol::Tls);
        assert_eq!(spec("tcp:0.0.0.0:5060").unwrap().protocol, Protocol::Tcp);
        let unknown = spec("sctp:127.0.0.1:5060").unwrap_err();
        assert!(unknown.contains("udp, tcp or tls"), "{unknown}");
        assert!(spec("tls:127.0.0.1").unwrap_err().contains("bad address"));
        assert!(spec("127.0.0.1:5061").is_err());
    }

    #[test]
    fn tls_is_reliable_with_its_own_tokens() {
        assert!(Protocol::Tls.is_reliable());
        assert_eq!(Protocol::Tls.via_token(), "TLS");
        assert_eq!(Protocol::Tls.uri_param(), Some("tls"));
        assert_eq!(Protocol::Udp.uri_param(), None);
        assert_eq!(Protocol::Tls.default_port(), 5061);
        assert_eq!(Protocol::from_name("Tls"), Some(Protocol::Tls));
        assert_eq!(Protocol::from_name("ws"), None);
    }
}
