//! Relay tests: the latching state machine on its own, then whole sessions over loopback
//! with plain UDP sockets playing the caller's and the agent's phones.

use super::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::net::UdpSocket;

pub(super) const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Long enough for a loaded CI machine, short enough to fail fast.
pub(super) const ARRIVAL: Duration = Duration::from_secs(2);
/// How long "nothing arrives" is watched for.
pub(super) const SILENCE: Duration = Duration::from_millis(150);

fn sock(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

// ---- the latching state machine --------------------------------------------------------

#[test]
fn without_sdp_the_first_source_latches() {
    let mut target = Target::default();
    assert_eq!(target.destination(), None);
    assert_eq!(target.admit(sock("198.51.100.1:4000")), Admission::Latched);
    assert_eq!(target.destination(), Some(sock("198.51.100.1:4000")));
    assert_eq!(target.admit(sock("198.51.100.1:4000")), Admission::Known);
    assert_eq!(target.admit(sock("198.51.100.1:4002")), Admission::Rejected);
    assert_eq!(target.admit(sock("203.0.113.9:4000")), Admission::Rejected);
}

#[test]
fn sdp_address_bounds_latching_to_its_ip() {
    let mut target = Target::default();
    target.expect(Some(sock("198.51.100.1:4000")));
    assert_eq!(target.destination(), Some(sock("198.51.100.1:4000")));
    assert_eq!(target.admit(sock("203.0.113.9:4000")), Admission::Rejected);
    assert_eq!(target.destination(), Some(sock("198.51.100.1:4000")));
    // Same IP, NAT-rewritten port: latch and answer there.
    assert_eq!(target.admit(sock("198.51.100.1:61000")), Admission::Latched);
    assert_eq!(target.destination(), Some(sock("198.51.100.1:61000")));
    // Even the SDP port itself is a stranger now.
    assert_eq!(target.admit(sock("198.51.100.1:4000")), Admission::Rejected);
}

#[test]
fn only_a_new_sdp_address_reopens_latching() {
    let mut target = Target::default();
    target.expect(Some(sock("198.51.100.1:4000")));
    target.admit(sock("198.51.100.1:61000"));
    target.expect(Some(sock("198.51.100.1:4000")));
    assert_eq!(
        target.destination(),
        Some(sock("198.51.100.1:61000")),
        "same SDP keeps it"
    );
    target.expect(Some(sock("198.51.100.7:5000")));
    assert_eq!(target.destination(), Some(sock("198.51.100.7:5000")));
    assert_eq!(
        target.admit(sock("198.51.100.1:61000")),
        Admission::Rejected
    );
    assert_eq!(target.admit(sock("198.51.100.7:5002")), Admission::Latched);
    target.expect(None);
    assert_eq!(target.destination(), None, "hold: nothing is sent");
}

#[test]
fn mapped_ipv4_sources_match_plain_sdp_addresses() {
    let mut target = Target::default();
    target.expect(Some(sock("198.51.100.1:4000")));
    assert_eq!(
        target.admit(sock("[::ffff:198.51.100.1]:4000")),
        Admission::Latched
    );
    assert_eq!(
        fit_family(sock("198.51.100.1:4000"), "::".parse().expect("ip")),
        sock("[::ffff:198.51.100.1]:4000")
    );
    assert_eq!(
        fit_family(sock("[::ffff:198.51.100.1]:4000"), LOCALHOST),
        sock("198.51.100.1:4000")
    );
}

// ---- whole sessions over loopback ------------------------------------------------------

/// A pool of four port pairs in a range of the test's own, below the ephemeral ports.
pub(super) fn pool(first: u16) -> PortPool {
    PortPool::new(LOCALHOST, first, first + 7).expect("pool")
}

pub(super) async fn phone() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0)).await.expect("bind phone")
}

pub(super) fn addr(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().expect("local addr")
}

/// An RTP packet: version 2, the given payload type and sequence number, then `payload`.
pub(super) fn rtp_packet(payload_type: u8, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let [s0, s1] = sequence.to_be_bytes();
    let mut packet = vec![
        0x80,
        payload_type,
        s0,
        s1,
        0,
        0,
        0x03,
        0x20,
        0xca,
        0xfe,
        0xba,
        0xbe,
    ];
    packet.extend_from_slice(payload);
    packet
}

/// An RTCP receiver report with no report blocks.
const RTCP_RR: [u8; 8] = [0x80, 201, 0, 1, 0xca, 0xfe, 0xba, 0xbe];

pub(super) async fn send(from: &UdpSocket, packet: &[u8], to_port: u16) {
    from.send_to(packet, (LOCALHOST, to_port))
        .await
        .expect("send");
}

pub(super) async fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buffer = [0u8; 4096];
    let (len, from) = tokio::time::timeout(ARRIVAL, socket.recv_from(&mut buffer))
        .await
        .expect("a packet arrives in time")
        .expect("receive");
    (buffer[..len].to_vec(), from)
}

pub(super) async fn assert_silent(socket: &UdpSocket) {
    let mut buffer = [0u8; 4096];
    if let Ok(received) = tokio::time::timeout(SILENCE, socket.recv_from(&mut buffer)).await {
        panic!("expected nothing, got {received:?}");
    }
}

/// Polls the stats until `done` holds (the relay counts asynchronously to the test).
pub(super) async fn stats_when(
    session: &MediaSession,
    done: impl Fn(&MediaStats) -> bool,
) -> MediaStats {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let stats = session.stats();
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never got there: {stats:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn relays_both_ways_with_payload_unchanged() {
    let pool = pool(31300);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    assert_eq!(pool.in_use(), 2);
    assert_eq!(session.local_ip(), LOCALHOST);
    assert_ne!(session.caller_port(), session.agent_port());
    let (caller, agent) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));
    session.set_agent_remote(Some(addr(&agent)));

    let pcmu = rtp_packet(0, 1, &[0xff; 160]);
    let dtmf = rtp_packet(101 | 0x80, 2, &[5, 0x8a, 0x03, 0x20]);
    for packet in [&pcmu, &dtmf, &RTCP_RR.to_vec()] {
        send(&caller, packet, session.caller_port()).await;
        let (received, from) = receive(&agent).await;
        assert_eq!(&received, packet);
        assert_eq!(from, SocketAddr::new(LOCALHOST, session.agent_port()));
    }
    let pcma = rtp_packet(8, 7, &[0xd5; 160]);
    send(&agent, &pcma, session.agent_port()).await;
    let (received, from) = receive(&caller).await;
    assert_eq!(received, pcma);
    assert_eq!(from, SocketAddr::new(LOCALHOST, session.caller_port()));

    let stats = session.stats();
    let caller_bytes = (pcmu.len() + dtmf.len() + RTCP_RR.len()) as u64;
    assert_eq!(stats.caller_to_agent.packets_received, 3);
    assert_eq!(stats.caller_to_agent.packets_sent, 3);
    assert_eq!(stats.caller_to_agent.bytes_received, caller_bytes);
    assert_eq!(stats.caller_to_agent.bytes_sent, caller_bytes);
    assert_eq!(stats.agent_to_caller.packets_sent, 1);
    assert_eq!(stats.agent_to_caller.bytes_sent, pcma.len() as u64);
    assert_eq!(
        stats.caller_to_agent.dropped() + stats.agent_to_caller.dropped(),
        0
    );
}

#[tokio::test]
async fn latches_to_the_real_source_port() {
    let pool = pool(31310);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    // The caller's SDP names one port (behind NAT), its packets come from another.
    let (announced, caller, agent) = (phone().await, phone().await, phone().await);
    session.set_caller_remote(Some(addr(&announced)));
    session.set_agent_remote(Some(addr(&agent)));

    // Before the caller speaks, its audio goes where the SDP says.
    let early = rtp_packet(0, 1, b"early");
    send(&agent, &early, session.agent_port()).await;
    assert_eq!(receive(&announced).await.0, early);

    let hello = rtp_packet(0, 1, b"hello");
    send(&caller, &hello, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, hello);

    // From now on the caller hears the agent at its real source port only.
    let reply = rtp_packet(0, 2, b"reply");
    send(&agent, &reply, session.agent_port()).await;
    assert_eq!(receive(&caller).await.0, reply);
    assert_silent(&announced).await;
}

#[tokio::test]
async fn strangers_are_dropped_and_counted() {
    let pool = pool(31320);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let (caller, agent) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));
    session.set_agent_remote(Some(addr(&agent)));

    // Another IP than the SDP's cannot latch, even first.
    let far_stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .expect("bind 127.0.0.2");
    send(
        &far_stranger,
        &rtp_packet(0, 1, b"inject"),
        session.caller_port(),
    )
    .await;

    let first = rtp_packet(0, 1, b"caller");
    send(&caller, &first, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, first);

    // Same IP, other port, after the caller latched: dropped too.
    let near_stranger = phone().await;
    send(
        &near_stranger,
        &rtp_packet(0, 2, b"hijack"),
        session.caller_port(),
    )
    .await;
    let second = rtp_packet(0, 2, b"caller again");
    send(&caller, &second, session.caller_port()).await;
    assert_eq!(
        receive(&agent).await.0,
        second,
        "the hijack packet was not relayed"
    );

    let stats = session.stats();
    assert_eq!(stats.caller_to_agent.dropped_unknown_source, 2);
    assert_eq!(stats.caller_to_agent.packets_received, 4);
    assert_eq!(stats.caller_to_agent.packets_sent, 2);

    // A new SDP address (the caller moved) re-opens latching.
    let moved = phone().await;
    session.set_caller_remote(Some(addr(&moved)));
    let third = rtp_packet(0, 3, b"moved");
    send(&moved, &third, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, third);
    send(&caller, &rtp_packet(0, 4, b"old"), session.caller_port()).await;
    stats_when(&session, |s| s.caller_to_agent.dropped_unknown_source == 3).await;
    assert_silent(&agent).await;
}

#[tokio::test]
async fn nothing_is_sent_to_a_leg_without_destination() {
    let pool = pool(31330);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let (caller, agent) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));

    // No agent has answered: the caller's audio goes nowhere.
    send(
        &caller,
        &rtp_packet(0, 1, b"anyone?"),
        session.caller_port(),
    )
    .await;
    let stats = stats_when(&session, |s| s.caller_to_agent.packets_received == 1).await;
    assert_eq!(stats.caller_to_agent.dropped_no_destination, 1);
    assert_eq!(stats.caller_to_agent.packets_sent, 0);
    assert_silent(&agent).await;

    session.set_agent_remote(Some(addr(&agent)));
    let packet = rtp_packet(0, 2, b"now");
    send(&caller, &packet, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, packet);

    // The agent puts the call on hold the RFC 2543 way: nothing to send to.
    session.set_agent_remote(None);
    send(&caller, &rtp_packet(0, 3, b"held"), session.caller_port()).await;
    stats_when(&session, |s| s.caller_to_agent.dropped_no_destination == 2).await;
    assert_silent(&agent).await;
}

#[tokio::test]
async fn invalid_packets_are_dropped_and_do_not_latch() {
    let pool = pool(31340);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let (caller, agent, noise) = (phone().await, phone().await, phone().await);
    session.set_agent_remote(Some(addr(&agent)));

    // No caller SDP yet, so any source could latch, but garbage must not.
    send(&noise, b"GET / HTTP/1.1\r\n\r\n", session.caller_port()).await;
    send(&noise, &[0x80, 0, 0, 1], session.caller_port()).await;
    send(&noise, &[0u8; MAX_PACKET + 100], session.caller_port()).await;
    let mut version_one = rtp_packet(0, 1, b"v1");
    version_one[0] = 0x40;
    send(&noise, &version_one, session.caller_port()).await;
    stats_when(&session, |s| s.caller_to_agent.dropped_invalid == 4).await;
    assert_silent(&agent).await;

    let packet = rtp_packet(0, 1, b"real");
    send(&caller, &packet, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, packet);
    // The caller latched (no SDP address: first valid source), so the agent reaches it.
    let reply = rtp_packet(0, 1, b"reply");
    send(&agent, &reply, session.agent_port()).await;
    assert_eq!(receive(&caller).await.0, reply);
}

#[tokio::test]
async fn rtcp_is_relayed_between_the_rtcp_ports() {
    let pool = pool(31350);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    // The agent's phone uses the classic pair (RTCP on RTP + 1), on ports just above the
    // pool's range and below the next test's, so no stray packet reaches anyone else.
    let agent = UdpSocket::bind((LOCALHOST, 31358)).await.expect("bind");
    let agent_rtcp = UdpSocket::bind((LOCALHOST, 31359)).await.expect("bind");
    // The caller's RTCP comes from an arbitrary port of its IP and latches.
    let (caller, caller_rtcp) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));
    session.set_agent_remote(Some(addr(&agent)));

    // Before the agent sends any RTCP, ours goes to its SDP port + 1.
    send(&caller_rtcp, &RTCP_RR, session.caller_port() + 1).await;
    let (received, from) = receive(&agent_rtcp).await;
    assert_eq!(received, RTCP_RR);
    assert_eq!(from, SocketAddr::new(LOCALHOST, session.agent_port() + 1));

    let mut sender_report = vec![0x80, 200, 0, 6];
    sender_report.extend_from_slice(&[7; 24]);
    send(&agent_rtcp, &sender_report, session.agent_port() + 1).await;
    let (received, from) = receive(&caller_rtcp).await;
    assert_eq!(received, sender_report);
    assert_eq!(from, SocketAddr::new(LOCALHOST, session.caller_port() + 1));

    // RTCP does not disturb the RTP legs.
    assert_silent(&caller).await;
    assert_silent(&agent).await;
    let stats = session.stats();
    assert_eq!(stats.caller_to_agent.packets_received, 0);
    assert_eq!(stats.caller_to_agent_rtcp.packets_sent, 1);
    assert_eq!(stats.agent_to_caller_rtcp.packets_sent, 1);
}

#[tokio::test]
async fn tap_gets_accepted_rtp_of_both_legs_and_never_blocks() {
    let pool = pool(31360);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let (caller, agent) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));
    session.set_agent_remote(Some(addr(&agent)));
    let (tap, mut recorder) = crate::media::tap::channel(2);
    session.set_tap(Some(tap));

    let from_caller = rtp_packet(0, 1, b"caller");
    let from_agent = rtp_packet(0, 1, b"agent");
    send(&caller, &from_caller, session.caller_port()).await;
    receive(&agent).await;
    send(&caller, &RTCP_RR, session.caller_port()).await;
    receive(&agent).await;
    send(&agent, &from_agent, session.agent_port()).await;
    receive(&caller).await;
    // The channel is full now; a third RTP packet is relayed but not tapped.
    let overflow = rtp_packet(0, 2, b"overflow");
    send(&caller, &overflow, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, overflow);

    let first = recorder.recv().await.expect("tapped");
    assert_eq!(
        (first.leg, first.data.as_ref()),
        (Leg::Caller, &from_caller[..])
    );
    let second = recorder.recv().await.expect("tapped");
    assert_eq!(
        (second.leg, second.data.as_ref()),
        (Leg::Agent, &from_agent[..])
    );
    assert!(second.arrival >= first.arrival);
    assert!(
        recorder.try_recv().is_err(),
        "RTCP and the overflow were not tapped"
    );
    assert_eq!(session.stats().caller_to_agent.tap_dropped, 1);

    // A recorder that goes away does not disturb the call.
    drop(recorder);
    send(&caller, &from_caller, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, from_caller);
}

#[tokio::test]
async fn stop_frees_the_ports() {
    let pool = pool(31370);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let ports = [session.caller_port(), session.agent_port()];
    assert_eq!(pool.in_use(), 2);
    session.stop();
    tokio::time::timeout(ARRIVAL, session.finished())
        .await
        .expect("relay ends");
    assert!(session.is_finished());
    assert_eq!(pool.in_use(), 0);
    for port in ports {
        std::net::UdpSocket::bind((LOCALHOST, port)).expect("RTP port closed");
        std::net::UdpSocket::bind((LOCALHOST, port + 1)).expect("RTCP port closed");
    }
}

#[tokio::test]
async fn drop_and_parent_cancel_stop_the_relay_too() {
    let pool = pool(31380);
    let shutdown = CancellationToken::new();
    let first = MediaSession::start(&pool, shutdown.clone()).expect("start");
    let one_pair = pool.bind().expect("bind");
    // Three of four pairs are lent: the caller port binds, the agent port does not.
    assert!(matches!(
        MediaSession::start(&pool, shutdown.clone()),
        Err(MediaError::NoPortsLeft { .. })
    ));
    assert_eq!(pool.in_use(), 3, "a failed start gives back what it bound");
    drop(one_pair);
    let second = MediaSession::start(&pool, shutdown.clone()).expect("start");
    assert_eq!(pool.in_use(), 4);

    // Stopping one call leaves the other running.
    first.stop();
    tokio::time::timeout(ARRIVAL, first.finished())
        .await
        .expect("first ends");
    assert!(!second.is_finished());
    shutdown.cancel();
    tokio::time::timeout(ARRIVAL, second.finished())
        .await
        .expect("second ends on shutdown");
    assert_eq!(pool.in_use(), 0);

    let third = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    assert_eq!(pool.in_use(), 2);
    drop(third);
    let deadline = Instant::now() + ARRIVAL;
    while pool.in_use() != 0 {
        assert!(Instant::now() < deadline, "drop did not free the ports");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let pool = pool(31390);
    assert!(matches!(
        MediaSession::start(&pool, CancellationToken::new()),
        Err(MediaError::NoRuntime)
    ));
}

#[tokio::test]
async fn sessions_run_on_the_media_threads_and_give_their_seat_back() {
    let threads = crate::media::MediaThreads::start(2).expect("media threads");
    let pool = pool(31210).with_media_threads(threads.clone());
    let first = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let second = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    assert_eq!(threads.sessions(), [1, 1], "one session per thread");

    // The sockets belong to the media threads' reactors: relaying works although the
    // test's own runtime never polls them.
    for session in [&first, &second] {
        let (caller, agent) = (phone().await, phone().await);
        session.set_caller_remote(Some(addr(&caller)));
        session.set_agent_remote(Some(addr(&agent)));
        let hello = rtp_packet(0, 1, b"hello");
        send(&caller, &hello, session.caller_port()).await;
        assert_eq!(receive(&agent).await.0, hello);
        let reply = rtp_packet(0, 1, b"reply");
        send(&agent, &reply, session.agent_port()).await;
        assert_eq!(receive(&caller).await.0, reply);
    }

    first.stop();
    tokio::time::timeout(ARRIVAL, first.finished())
        .await
        .expect("first ends");
    let deadline = Instant::now() + ARRIVAL;
    while threads.sessions().iter().sum::<usize>() != 1 {
        assert!(Instant::now() < deadline, "the seat was not given back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.in_use(), 2);

    // Shutting the threads down ends the sessions still on them and frees their ports.
    tokio::time::timeout(ARRIVAL, threads.shutdown())
        .await
        .expect("threads stop");
    assert!(second.is_finished());
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn sessions_on_media_threads_start_from_outside_a_runtime() {
    let threads = crate::media::MediaThreads::start(1).expect("media threads");
    let pool = pool(31290).with_media_threads(threads);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    assert_eq!(pool.in_use(), 2);
    drop(session);
    let deadline = std::time::Instant::now() + ARRIVAL;
    while pool.in_use() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "drop did not free the ports"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
