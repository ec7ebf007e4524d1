//! Survey mode over loopback: the caller's keys, a detached agent, prompts played to the
//! caller. Port ranges 31220..31290 (see the relay's and the pool's tests for the others).

use super::tests::{
    addr, assert_silent, phone, pool, receive, rtp_packet, send, stats_when, ARRIVAL, LOCALHOST,
    SILENCE,
};
use super::*;
use crate::media::dtmf::TelephoneEvent;
use crate::media::prompt::FRAME_SAMPLES;
use crate::media::Sdp;

/// The caller's offer: PCMA, and telephone-event on a payload type other than 101.
const CALLER_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
    t=0 0\r\nm=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n";

/// The telephone-event payload type the caller's SDP negotiated.
fn caller_event_type() -> u8 {
    let sdp = Sdp::parse(CALLER_SDP).expect("test SDP");
    sdp.audio_formats()
        .into_iter()
        .find(|(_, encoding)| {
            encoding
                .as_deref()
                .is_some_and(|e| e.to_ascii_lowercase().starts_with("telephone-event/"))
        })
        .map(|(pt, _)| pt)
        .expect("telephone-event in the SDP")
}

/// A telephone-event packet from the caller's phone.
fn event_packet(pt: u8, seq: u16, timestamp: u32, event: u8, end: bool) -> Vec<u8> {
    let mut packet = vec![0x80, pt];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&0x5eed_0001_u32.to_be_bytes());
    let duration = if end { 800 } else { 160 * (seq % 4 + 1) };
    packet.extend_from_slice(
        &TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes(),
    );
    packet
}

/// One key press as RFC 4733 §2.5.1 sends it: the first packet with the marker bit, two
/// updates, then the end packet three times. `ends` of the three end packets are sent.
fn press(pt: u8, first_seq: u16, timestamp: u32, event: u8, ends: usize) -> Vec<Vec<u8>> {
    let mut packets = vec![event_packet(pt | 0x80, first_seq, timestamp, event, false)];
    for i in 1..3 {
        packets.push(event_packet(pt, first_seq + i, timestamp, event, false));
    }
    for i in 0..ends {
        packets.push(event_packet(
            pt,
            first_seq + 3 + i as u16,
            timestamp,
            event,
            true,
        ));
    }
    packets
}

async fn next_key(keys: &mut mpsc::Receiver<char>) -> char {
    tokio::time::timeout(ARRIVAL, keys.recv())
        .await
        .expect("a key in time")
        .expect("sink open")
}

/// (marker, payload type, sequence, timestamp, SSRC) of an RTP packet.
fn header(packet: &[u8]) -> (bool, u8, u16, u32, u32) {
    let word =
        |i: usize| u32::from_be_bytes([packet[i], packet[i + 1], packet[i + 2], packet[i + 3]]);
    (
        packet[1] & 0x80 != 0,
        packet[1] & 0x7f,
        u16::from_be_bytes([packet[2], packet[3]]),
        word(4),
        word(8),
    )
}

/// Frame `i` is filled with `i`, so each packet says which frame it carries.
fn numbered_frames(count: usize) -> Arc<Vec<Frame>> {
    Arc::new((0..count).map(|i| [i as u8; FRAME_SAMPLES]).collect())
}

#[tokio::test]
async fn caller_keys_reach_the_sink_once_per_press_and_the_agent_untouched() {
    let pool = pool(31220);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let (caller, agent) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));
    session.set_agent_remote(Some(addr(&agent)));
    let pt = caller_event_type();
    assert_eq!(pt, 96);
    let (sink, mut keys) = mpsc::channel(8);
    session.set_caller_dtmf(Some(pt), Some(sink));

    // "4" twice (the same key, two presses: two timestamps), then "#" whose end packets are
    // all lost, then an event on 101, which this caller did not negotiate.
    let mut packets = press(pt, 10, 8000, 4, 3);
    packets.extend(press(pt, 20, 16000, 4, 3));
    packets.extend(press(pt, 30, 24000, 11, 0));
    packets.extend(press(101, 40, 32000, 7, 3));
    for packet in &packets {
        send(&caller, packet, session.caller_port()).await;
        // Relayed to the agent as they are, keys and all.
        assert_eq!(&receive(&agent).await.0, packet);
    }
    assert_eq!(next_key(&mut keys).await, '4');
    assert_eq!(next_key(&mut keys).await, '4');
    // No end packet: the key comes after the timeout.
    let started = Instant::now();
    assert_eq!(next_key(&mut keys).await, '#');
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "only after a timeout"
    );
    tokio::time::sleep(SILENCE).await;
    assert!(
        keys.try_recv().is_err(),
        "one key per press, none for PT 101"
    );
    assert_eq!(session.stats().caller_keys, 3);

    // Junk with the event payload type does not disturb detection.
    for len in 0..16 {
        let mut junk = vec![0x80, pt];
        junk.extend((0..len).map(|i| (i * 37) as u8));
        send(&caller, &junk, session.caller_port()).await;
    }
    for packet in press(pt, 50, 40000, 1, 3) {
        send(&caller, &packet, session.caller_port()).await;
    }
    assert_eq!(next_key(&mut keys).await, '1');

    // Turning detection off: keys are relayed, not reported.
    session.set_caller_dtmf(None, None);
    for packet in press(pt, 60, 48000, 2, 3) {
        send(&caller, &packet, session.caller_port()).await;
    }
    stats_when(&session, |s| s.caller_to_agent.packets_sent >= 30).await;
    tokio::time::sleep(SILENCE).await;
    assert!(keys.try_recv().is_err());
}

#[tokio::test]
async fn after_detach_nothing_reaches_the_agent_and_the_caller_leg_goes_on() {
    let pool = pool(31230);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let (caller, agent) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));
    session.set_agent_remote(Some(addr(&agent)));
    let (tap, mut recorder) = crate::media::tap::channel(16);
    session.set_tap(Some(tap));
    let (sink, mut keys) = mpsc::channel(8);
    session.set_caller_dtmf(Some(96), Some(sink));

    let hello = rtp_packet(8, 1, b"hello");
    send(&caller, &hello, session.caller_port()).await;
    assert_eq!(receive(&agent).await.0, hello);
    assert_eq!(recorder.recv().await.expect("tapped").leg, Leg::Caller);

    session.detach_agent();
    let audio = rtp_packet(8, 2, b"still here");
    send(&caller, &audio, session.caller_port()).await;
    for packet in press(96, 10, 8000, 5, 3) {
        send(&caller, &packet, session.caller_port()).await;
    }
    send(&caller, &RTCP_RR_MUXED, session.caller_port()).await;
    send(&agent, &rtp_packet(8, 9, b"agent"), session.agent_port()).await;
    send(&agent, &RTCP_RR_MUXED, session.agent_port()).await;

    // The caller's audio and keys are still tapped and detected.
    assert_eq!(next_key(&mut keys).await, '5');
    let tapped = recorder.recv().await.expect("tapped");
    assert_eq!(
        (tapped.leg, tapped.data.as_ref()),
        (Leg::Caller, &audio[..])
    );
    let stats = stats_when(&session, |s| {
        s.caller_to_agent.dropped_detached == 8 && s.agent_to_caller.dropped_detached == 2
    })
    .await;
    assert_eq!(stats.caller_to_agent.packets_sent, 1);
    assert_eq!(stats.agent_to_caller.packets_sent, 0);
    assert_silent(&agent).await;
    assert_silent(&caller).await;
    for _ in 0..6 {
        let tapped = recorder.try_recv().expect("the key packets are tapped");
        assert_eq!(tapped.leg, Leg::Caller);
    }
    assert!(
        recorder.try_recv().is_err(),
        "nothing from the agent is tapped"
    );

    // A new agent address does not re-attach the leg.
    session.set_agent_remote(Some(addr(&phone().await)));
    send(&caller, &audio, session.caller_port()).await;
    stats_when(&session, |s| s.caller_to_agent.dropped_detached == 9).await;
}

/// An RTCP receiver report, multiplexed on the RTP port (RFC 5761).
const RTCP_RR_MUXED: [u8; 8] = [0x80, 201, 0, 1, 0xca, 0xfe, 0xba, 0xbe];

#[tokio::test]
async fn a_prompt_is_paced_numbered_and_recorded_as_the_agent() {
    let pool = pool(31240);
    let session = Arc::new(MediaSession::start(&pool, CancellationToken::new()).expect("start"));
    let (caller, agent) = (phone().await, phone().await);
    session.set_caller_remote(Some(addr(&caller)));
    session.set_agent_remote(Some(addr(&agent)));
    let (tap, mut recorder) = crate::media::tap::channel(128);
    session.set_tap(Some(tap));
    // The agent latches its leg before the prompt.
    send(&agent, &rtp_packet(8, 1, b"bridged"), session.agent_port()).await;
    receive(&caller).await;
    recorder.recv().await.expect("tapped");

    let frames = numbered_frames(50);
    let player = {
        let session = Arc::clone(&session);
        let frames = Arc::clone(&frames);
        tokio::spawn(async move {
            let started = Instant::now();
            let result = session.play_to_caller(frames, 8).await;
            (result, started.elapsed())
        })
    };
    let mut arrivals = Vec::new();
    for i in 0..50 {
        let (packet, from) = receive(&caller).await;
        arrivals.push((Instant::now(), packet));
        assert_eq!(from, SocketAddr::new(LOCALHOST, session.caller_port()));
        if i == 10 {
            // The agent talks over the prompt: not relayed, not recorded.
            send(
                &agent,
                &rtp_packet(8, 2, b"talking over"),
                session.agent_port(),
            )
            .await;
        }
    }
    let (result, took) = player.await.expect("player task");
    result.expect("played");

    let first = header(&arrivals[0].1);
    for (i, (_, packet)) in arrivals.iter().enumerate() {
        let (marker, pt, seq, ts, ssrc) = header(packet);
        assert_eq!(packet.len(), 12 + FRAME_SAMPLES);
        assert_eq!(packet[12..], frames[i][..], "frame {i} in order");
        assert_eq!(marker, i == 0, "marker on the first packet only");
        assert_eq!(pt, 8);
        assert_eq!(seq, first.2.wrapping_add(i as u16));
        assert_eq!(ts, first.3.wrapping_add(160 * i as u32));
        assert_eq!(ssrc, first.4);
    }
    // 50 frames at 20 ms: the last is sent 980 ms after the first.
    let span = arrivals[49].0 - arrivals[0].0;
    assert!(
        span >= Duration::from_millis(920) && span <= Duration::from_millis(1040),
        "first to last took {span:?}"
    );
    assert!(
        took >= Duration::from_millis(940) && took <= Duration::from_millis(1060),
        "play_to_caller took {took:?}"
    );
    // Steady: never more than a few packets close together.
    let mut run = 0;
    for pair in arrivals.windows(2) {
        run = if pair[1].0 - pair[0].0 < Duration::from_millis(5) {
            run + 1
        } else {
            0
        };
        assert!(run < 3, "burst of {} packets", run + 1);
    }

    // The recording got the same packets, as the agent's side.
    for (i, (_, packet)) in arrivals.iter().enumerate() {
        let tapped = recorder.try_recv().expect("prompt tapped");
        assert_eq!(tapped.leg, Leg::Agent);
        assert_eq!(tapped.data.as_ref(), &packet[..], "tapped packet {i}");
    }
    assert!(
        recorder.try_recv().is_err(),
        "the agent's talk-over was not tapped"
    );
    let stats = session.stats();
    assert_eq!(stats.prompt_to_caller.frames, 50);
    assert_eq!(stats.prompt_to_caller.packets_sent, 50);
    assert_eq!(stats.prompt_to_caller.bytes_sent, 50 * 172);
    assert_eq!(stats.agent_to_caller.dropped_during_prompt, 1);
    assert_silent(&caller).await;

    // After the prompt the agent is heard again.
    let after = rtp_packet(8, 3, b"after");
    send(&agent, &after, session.agent_port()).await;
    assert_eq!(receive(&caller).await.0, after);
}

#[tokio::test]
async fn prompts_take_turns_and_continue_one_stream() {
    let pool = pool(31250);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let caller = phone().await;
    session.set_caller_remote(Some(addr(&caller)));
    session.detach_agent();

    let (a, b) = (numbered_frames(5), Arc::new(vec![[0xaa; FRAME_SAMPLES]; 5]));
    let (first, second) = tokio::join!(
        session.play_to_caller(Arc::clone(&a), 8),
        session.play_to_caller(Arc::clone(&b), 8)
    );
    first.expect("first prompt");
    second.expect("second prompt");
    let mut packets = Vec::new();
    for _ in 0..10 {
        packets.push(receive(&caller).await.0);
    }
    // One waited for the other: never interleaved.
    let (order_a, order_b) = if packets[0][12] == 0 { (0, 5) } else { (5, 0) };
    for i in 0..5 {
        assert_eq!(packets[order_a + i][12..], a[i][..]);
        assert_eq!(packets[order_b + i][12..], b[i][..]);
    }
    let headers: Vec<_> = packets.iter().map(|p| header(p)).collect();
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h.0, i == 0 || i == 5, "a marker starts each prompt");
        assert_eq!(
            h.2,
            headers[0].2.wrapping_add(i as u16),
            "sequence continues"
        );
        assert_eq!(h.4, headers[0].4, "one SSRC for the leg");
    }
    // The second prompt started right after the first: at least one frame on.
    let step = headers[5].3.wrapping_sub(headers[4].3);
    assert!((160..160 * 4).contains(&step), "timestamp step {step}");

    // After a pause, the timestamp has moved on with the wall clock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    session
        .play_to_caller(numbered_frames(1), 8)
        .await
        .expect("third prompt");
    let third = header(&receive(&caller).await.0);
    assert!(third.0, "marker");
    assert_eq!(third.2, headers[9].2.wrapping_add(1));
    let gap = third.3.wrapping_sub(headers[9].3);
    // 300 ms is 2400 samples; allow for a slow scheduler but not for a standstill.
    assert!((2400..2400 + 8 * 200).contains(&gap), "timestamp gap {gap}");
    // Nothing to play is done at once.
    session
        .play_to_caller(Arc::new(Vec::new()), 8)
        .await
        .expect("empty prompt");
    assert_silent(&caller).await;
}

#[tokio::test]
async fn a_dropped_prompt_stops_and_a_stopped_session_fails_it() {
    let pool = pool(31260);
    let session = Arc::new(MediaSession::start(&pool, CancellationToken::new()).expect("start"));
    let caller = phone().await;
    session.set_caller_remote(Some(addr(&caller)));

    // Given up on after 100 ms: a handful of frames, then nothing.
    let cut = tokio::time::timeout(
        Duration::from_millis(100),
        session.play_to_caller(numbered_frames(100), 0),
    )
    .await;
    assert!(cut.is_err(), "still playing when dropped");
    let mut received = 0;
    let mut buffer = [0u8; 512];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(100), caller.recv_from(&mut buffer)).await
    {
        received += 1;
    }
    assert!(
        (2..=12).contains(&received),
        "{received} frames before the cut"
    );

    // The next prompt is not held up by the dropped one.
    session
        .play_to_caller(numbered_frames(2), 0)
        .await
        .expect("plays after a cut");

    // A session that stops mid-prompt fails it.
    let playing = {
        let session = Arc::clone(&session);
        tokio::spawn(async move { session.play_to_caller(numbered_frames(100), 0).await })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    session.stop();
    let result = tokio::time::timeout(ARRIVAL, playing)
        .await
        .expect("returns")
        .expect("task");
    assert!(matches!(result, Err(MediaError::Stopped)), "{result:?}");
    session.finished().await;
    assert!(matches!(
        session.play_to_caller(numbered_frames(1), 0).await,
        Err(MediaError::Stopped)
    ));
}

#[tokio::test]
async fn a_prompt_without_a_caller_address_is_counted_not_sent() {
    let pool = pool(31270);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let (tap, mut recorder) = crate::media::tap::channel(8);
    session.set_tap(Some(tap));
    session
        .play_to_caller(numbered_frames(3), 0)
        .await
        .expect("plays to nobody");
    let stats = session.stats().prompt_to_caller;
    assert_eq!((stats.frames, stats.dropped_no_destination), (3, 3));
    assert_eq!(stats.packets_sent, 0);
    // The recording still has what was played.
    for _ in 0..3 {
        assert_eq!(recorder.try_recv().expect("tapped").leg, Leg::Agent);
    }
}

#[tokio::test]
async fn a_new_sink_does_not_get_a_press_already_reported() {
    let pool = pool(31280);
    let session = MediaSession::start(&pool, CancellationToken::new()).expect("start");
    let caller = phone().await;
    session.set_caller_remote(Some(addr(&caller)));
    session.detach_agent();
    let (first_sink, mut first) = mpsc::channel(8);
    session.set_caller_dtmf(Some(96), Some(first_sink));
    let packets = press(96, 10, 8000, 3, 3);
    for packet in &packets[..4] {
        send(&caller, packet, session.caller_port()).await;
    }
    assert_eq!(next_key(&mut first).await, '3');

    // The survey starts listening; the press's repeated end packets are still coming.
    let (second_sink, mut second) = mpsc::channel(8);
    session.set_caller_dtmf(Some(96), Some(second_sink));
    for packet in &packets[4..] {
        send(&caller, packet, session.caller_port()).await;
    }
    for packet in press(96, 20, 16000, 4, 3) {
        send(&caller, &packet, session.caller_port()).await;
    }
    assert_eq!(next_key(&mut second).await, '4');
    tokio::time::sleep(SILENCE).await;
    assert!(second.try_recv().is_err());
    assert!(first.try_recv().is_err());
    // A sink that went away ends detection quietly.
    drop(second);
    for packet in press(96, 30, 24000, 5, 3) {
        send(&caller, &packet, session.caller_port()).await;
    }
    stats_when(&session, |s| s.caller_to_agent.packets_received == 18).await;
    assert_eq!(session.stats().caller_keys, 2);
}
