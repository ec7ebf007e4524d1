//! The TLS transport on real loopback sockets, below the daemon: one `Transports`
//! listening on `tls:` and another connecting to it (outbound TLS, verified against the
//! test CA), the response going back on the same connection; a server nobody trusts is
//! refused; a silent client is dropped after the handshake timeout; the connection cap
//! counts TLS connections too. Certificates are made with the `openssl` CLI.

mod daemon_common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use daemon_common::{TestCerts, TlsSip};
use threering::sip::transport::{
    Limits, ListenSpec, Protocol, Received, TlsSettings, TransportError, Transports,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn options(call_id: &str) -> String {
    format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bK{call_id}\r\n\
         From: <sip:t@127.0.0.1>;tag=f\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// TLS settings: our certificate when `serve`, and a client trusting `ca`.
fn settings(certs: &TestCerts, serve: bool, ca: &std::path::Path) -> TlsSettings {
    let server = serve.then(|| {
        threering::tls::server_config(&certs.cert(), &certs.key(), &[]).expect("server config")
    });
    let client = threering::tls::client_config(Some(ca)).expect("client config");
    TlsSettings { server, client }
}

struct Side {
    transports: Arc<Transports>,
    inbound: mpsc::Receiver<Received>,
}

async fn bind(
    specs: &[&str],
    tls: TlsSettings,
    limits: Limits,
    cancel: &CancellationToken,
) -> Side {
    let specs: Vec<ListenSpec> = specs
        .iter()
        .map(|s| s.parse().expect("listen spec"))
        .collect();
    let (tx, inbound) = mpsc::channel(64);
    let transports = Transports::bind(&specs, Some(tls), tx, limits, cancel.clone())
        .await
        .expect("bind");
    Side {
        transports,
        inbound,
    }
}

fn tls_addr(side: &Side) -> SocketAddr {
    side.transports
        .listening()
        .iter()
        .find(|l| l.protocol == Protocol::Tls)
        .expect("a tls listener")
        .addr
}

async fn recv(side: &mut Side) -> Received {
    tokio::time::timeout(Duration::from_secs(5), side.inbound.recv())
        .await
        .expect("a message within 5 s")
        .expect("the channel is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_tls_is_verified_and_the_answer_comes_back_on_the_connection() {
    let certs = TestCerts::generate();
    let cancel = CancellationToken::new();
    let mut server = bind(
        &["tls:127.0.0.1:0"],
        settings(&certs, true, &certs.ca()),
        Limits::default(),
        &cancel,
    )
    .await;
    let mut client = bind(
        &["udp:127.0.0.1:0"],
        settings(&certs, false, &certs.ca()),
        Limits::default(),
        &cancel,
    )
    .await;
    let addr = tls_addr(&server);

    client
        .transports
        .send(Protocol::Tls, None, addr, Bytes::from(options("out-1")))
        .await
        .expect("send over a new TLS connection");
    let request = recv(&mut server).await;
    assert_eq!(request.peer.protocol, Protocol::Tls);
    assert!(request.data.starts_with(b"OPTIONS "));

    let answer = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    let sent = server
        .transports
        .send_now(Protocol::Tls, None, request.peer.remote, &answer)
        .expect("answer on the connection");
    assert!(sent, "the inbound connection was not found for the answer");
    let response = recv(&mut client).await;
    assert_eq!(response.peer.protocol, Protocol::Tls);
    assert_eq!(response.peer.remote, addr);
    assert!(response.data.starts_with(b"SIP/2.0 200"));

    // The next request reuses the connection: no second handshake, same source port.
    client
        .transports
        .send(Protocol::Tls, None, addr, Bytes::from(options("out-2")))
        .await
        .unwrap();
    assert_eq!(recv(&mut server).await.peer.remote, request.peer.remote);

    // A client that trusts another CA refuses our server.
    let other = TestCerts::generate();
    let suspicious = bind(
        &["udp:127.0.0.1:0"],
        settings(&other, false, &other.ca()),
        Limits::default(),
        &cancel,
    )
    .await;
    let refused = suspicious
        .transports
        .send(Protocol::Tls, None, addr, Bytes::from(options("out-3")))
        .await;
    assert!(
        matches!(refused, Err(TransportError::Connect { .. })),
        "{refused:?}"
    );
    assert_eq!(
        suspicious
            .transports
            .counters
            .tls_failed_handshakes
            .load(Ordering::Relaxed),
        1
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let certs = TestCerts::generate();
    let cancel = CancellationToken::new();
    let limits = Limits {
        tls_handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = bind(
        &["tls:127.0.0.1:0"],
        settings(&certs, true, &certs.ca()),
        limits,
        &cancel,
    )
    .await;
    let addr = tls_addr(&server);
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        let mut silent = TcpStream::connect(addr).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        // EOF (or a reset) once the server gives up on the handshake.
        matches!(silent.read(&mut buf), Ok(0) | Err(_))
    })
    .await
    .unwrap();
    let waited = started.elapsed();
    assert!(closed, "the silent connection was not closed");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(4),
        "closed after {waited:?}, the handshake timeout is 300 ms"
    );
    // The counter is bumped by the handshake task as it gives up, which may be just after
    // the client saw the close.
    let failed = || {
        server
            .transports
            .counters
            .tls_failed_handshakes
            .load(Ordering::Relaxed)
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while failed() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failed(), 1);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_counts_tls_connections() {
    let certs = TestCerts::generate();
    let cancel = CancellationToken::new();
    let limits = Limits {
        max_tcp_connections: 1,
        ..Limits::default()
    };
    let mut server = bind(
        &["tls:127.0.0.1:0"],
        settings(&certs, true, &certs.ca()),
        limits,
        &cancel,
    )
    .await;
    let addr = tls_addr(&server);
    let config = certs.client_config();
    let first_config = config.clone();
    let first = tokio::task::spawn_blocking(move || {
        let mut first = TlsSip::connect(addr, &first_config).expect("the first connection");
        first.send(&options("cap-1")).unwrap();
        first
    })
    .await
    .unwrap();
    // Registered once its first request has come through.
    assert_eq!(recv(&mut server).await.peer.protocol, Protocol::Tls);
    // The second handshake completes, then the connection is refused and closed.
    let second = tokio::task::spawn_blocking(move || {
        TlsSip::connect(addr, &config).and_then(|mut s| {
            s.send(&options("cap-2"))?;
            s.recv(Duration::from_secs(3))
        })
    })
    .await
    .unwrap();
    assert!(
        second.is_err(),
        "a second connection was served: {second:?}"
    );
    assert_eq!(
        server
            .transports
            .counters
            .tcp_rejected_connections
            .load(Ordering::Relaxed),
        1
    );
    drop(first);
    cancel.cancel();
}
