//! Loopback addresses: port numbers free for both UDP and TCP (never handed out twice
//! in one test process), `127.0.0.1:port`, and the transport (UDP or TCP) a test uses.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port number that was free for both UDP and TCP a moment ago (both sockets
/// are released before returning). The same number is never handed out twice by one test
/// process, so parallel tests do not collide with each other.
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..200 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("UDP local_addr").port();
        if handed.contains(&port) {
            continue;
        }
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            drop(tcp);
            drop(udp);
            handed.insert(port);
            return port;
        }
    }
    panic!("could not find a loopback port free for both UDP and TCP in 200 tries");
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// How a test reaches its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// SIPp's `-t` value: one socket for all calls.
    pub fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    /// The Via transport token.
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}
