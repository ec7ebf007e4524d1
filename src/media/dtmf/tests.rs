use super::*;
use proptest::prelude::*;

const PT: u8 = 96;
const SSRC: u32 = 0x1122_3344;

/// A telephone-event RTP packet as a phone sends it.
fn event_packet(
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    event: u8,
    end: bool,
    duration: u16,
) -> Vec<u8> {
    let mut packet = vec![0x80, payload_type];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&SSRC.to_be_bytes());
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

/// The packets of one key press: three in progress, then the end packet three times, all
/// with the event's start timestamp, 50 ms apart.
fn press(seq: u16, timestamp: u32, event: u8) -> Vec<Vec<u8>> {
    let mut packets: Vec<Vec<u8>> = (0..3u16)
        .map(|i| event_packet(PT, seq + i, timestamp, event, false, 400 * (i + 1)))
        .collect();
    for i in 3..6u16 {
        packets.push(event_packet(PT, seq + i, timestamp, event, true, 1600));
    }
    packets
}

/// Feeds packets 20 ms apart from `start`, collecting the keys reported.
fn feed(receiver: &mut DtmfReceiver, start: Instant, packets: &[Vec<u8>]) -> Vec<char> {
    let mut keys = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        let now = start + Duration::from_millis(20 * i as u64);
        keys.extend(receiver.on_packet(packet, now));
        keys.extend(receiver.on_tick(now));
    }
    keys
}

#[test]
fn event_codes_map_to_keys_and_back() {
    let keys = "0123456789*#ABCD";
    for (code, key) in keys.chars().enumerate() {
        assert_eq!(event_digit(code as u8), Some(key));
        assert_eq!(digit_event(key), Some(code as u8));
    }
    assert_eq!(event_digit(16), None, "flash is not a key");
    assert_eq!(digit_event('x'), None);
    assert_eq!(digit_event('b'), Some(13));
}

#[test]
fn one_press_with_three_end_packets_is_one_key() {
    let mut receiver = DtmfReceiver::new(PT);
    let start = Instant::now();
    let packets = press(1, 8000, 4);
    // Nothing while the key is held; the key at the first end packet.
    for (i, packet) in packets.iter().enumerate().take(3) {
        assert_eq!(
            receiver.on_packet(packet, start + Duration::from_millis(i as u64)),
            None
        );
    }
    assert_eq!(receiver.on_packet(&packets[3], start), Some('4'));
    assert_eq!(receiver.on_packet(&packets[4], start), None);
    assert_eq!(receiver.on_packet(&packets[5], start), None);
    assert_eq!(receiver.on_tick(start + Duration::from_secs(5)), None);
    assert_eq!(receiver.deadline(), None);
}

#[test]
fn two_presses_of_the_same_key_are_two_keys() {
    let mut receiver = DtmfReceiver::new(PT);
    let mut packets = press(1, 8000, 5);
    packets.extend(press(7, 8000 + 4000, 5));
    assert_eq!(
        feed(&mut receiver, Instant::now(), &packets),
        vec!['5', '5']
    );
}

#[test]
fn other_payload_types_are_ignored() {
    // The negotiated type is 96 here: a "classic" 101 is somebody else's payload.
    let mut receiver = DtmfReceiver::new(PT);
    let packets: Vec<Vec<u8>> = (0..4u16)
        .map(|i| event_packet(101, i, 160, 1, i == 3, 160))
        .collect();
    assert!(feed(&mut receiver, Instant::now(), &packets).is_empty());
    // A marker bit does not change the payload type.
    let marked = event_packet(PT | 0x80, 9, 320, 2, true, 160);
    assert_eq!(receiver.on_packet(&marked, Instant::now()), Some('2'));
    // Audio of the negotiated codec is not an event.
    let mut audio = event_packet(0, 10, 480, 3, true, 160);
    audio.extend_from_slice(&[0xff; 156]);
    assert_eq!(receiver.on_packet(&audio, Instant::now()), None);
    assert_eq!(receiver.deadline(), None);
}

#[test]
fn lost_end_packets_give_the_key_on_timeout() {
    let mut receiver = DtmfReceiver::new(PT);
    let start = Instant::now();
    let packets = press(1, 8000, 9);
    for packet in &packets[..3] {
        assert_eq!(receiver.on_packet(packet, start), None);
    }
    let deadline = receiver.deadline().expect("an event is under way");
    assert_eq!(deadline, start + DEFAULT_TIMEOUT);
    assert_eq!(receiver.on_tick(start + Duration::from_millis(499)), None);
    assert_eq!(receiver.on_tick(deadline), Some('9'));
    assert_eq!(receiver.on_tick(deadline + DEFAULT_TIMEOUT), None);
    // The end packets arriving after all do not repeat it.
    for packet in &packets[3..] {
        assert_eq!(receiver.on_packet(packet, deadline), None);
    }
    let short = DtmfReceiver::new(PT).with_timeout(Duration::from_millis(100));
    assert_eq!(short.timeout(), Duration::from_millis(100));
}

#[test]
fn a_new_event_ends_one_whose_end_was_lost() {
    let mut receiver = DtmfReceiver::new(PT);
    let start = Instant::now();
    let first = press(1, 8000, 1);
    let second = press(7, 9600, 2);
    assert_eq!(receiver.on_packet(&first[0], start), None);
    assert_eq!(receiver.on_packet(&second[0], start), Some('1'));
    assert_eq!(feed(&mut receiver, start, &second[1..]), vec!['2']);
}

#[test]
fn two_keys_finished_by_one_packet_are_both_reported() {
    let mut receiver = DtmfReceiver::new(PT);
    let start = Instant::now();
    // The first press lost its ends, the second lost all but its ends.
    assert_eq!(
        receiver.on_packet(&event_packet(PT, 1, 160, 3, false, 160), start),
        None
    );
    assert_eq!(
        receiver.on_packet(&event_packet(PT, 2, 1760, 6, true, 800), start),
        Some('3')
    );
    assert!(receiver.deadline().is_some_and(|d| d <= start));
    assert_eq!(receiver.on_tick(start), Some('6'));
    assert_eq!(receiver.on_tick(start), None);
    assert_eq!(receiver.deadline(), None);
}

#[test]
fn duplicates_and_reordering_do_not_repeat_keys() {
    let mut receiver = DtmfReceiver::new(PT);
    let first = press(1, 8000, 7);
    let second = press(7, 12000, 8);
    // End packets before the in-progress ones, everything twice, and the first press's
    // last end packet after the second press started.
    let order = [
        &first[3], &first[0], &first[3], &first[1], &first[4], &second[0], &first[5], &first[2],
        &second[1], &second[3], &second[1], &second[4], &second[5], &second[5],
    ];
    let packets: Vec<Vec<u8>> = order.iter().map(|p| p.to_vec()).collect();
    assert_eq!(
        feed(&mut receiver, Instant::now(), &packets),
        vec!['7', '8']
    );
}

#[test]
fn a_new_ssrc_is_a_new_event_even_with_the_same_timestamp() {
    let mut receiver = DtmfReceiver::new(PT);
    let start = Instant::now();
    let packet = event_packet(PT, 1, 160, 0, true, 160);
    assert_eq!(receiver.on_packet(&packet, start), Some('0'));
    let mut other_stream = packet.clone();
    other_stream[8..12].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    assert_eq!(receiver.on_packet(&other_stream, start), Some('0'));
    assert_eq!(receiver.on_packet(&packet, start), None);
}

#[test]
fn a_long_event_continued_under_a_new_timestamp_is_one_key() {
    let mut receiver = DtmfReceiver::new(PT);
    let start = Instant::now();
    let ts = 1000u32;
    assert_eq!(
        receiver.on_packet(&event_packet(PT, 1, ts, 11, false, 0xFFFF), start),
        None
    );
    let next = ts.wrapping_add(0xFFFF);
    assert_eq!(
        receiver.on_packet(&event_packet(PT, 2, next, 11, false, 800), start),
        None
    );
    assert_eq!(
        receiver.on_packet(&event_packet(PT, 3, next, 11, true, 1600), start),
        Some('#')
    );
    // A straggler of the first segment is not a new press.
    assert_eq!(
        receiver.on_packet(&event_packet(PT, 1, ts, 11, false, 0xFFFF), start),
        None
    );
}

#[test]
fn events_that_are_not_keys_report_nothing() {
    let mut receiver = DtmfReceiver::new(PT);
    let start = Instant::now();
    assert_eq!(
        receiver.on_packet(&event_packet(PT, 1, 160, 16, false, 160), start),
        None
    );
    assert_eq!(receiver.on_tick(start + DEFAULT_TIMEOUT), None);
    assert_eq!(receiver.deadline(), None);
    receiver.reset();
    assert_eq!(receiver.payload_type(), PT);
}

#[test]
fn header_extensions_and_csrcs_are_skipped() {
    let mut receiver = DtmfReceiver::new(PT);
    let plain = event_packet(PT, 1, 160, 5, true, 160);
    // One CSRC and a one-word header extension between header and payload.
    let mut packet = plain[..12].to_vec();
    packet[0] = 0x80 | 0x10 | 1;
    packet.extend_from_slice(&[0, 0, 0, 1]);
    packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
    packet.extend_from_slice(&plain[12..]);
    assert_eq!(receiver.on_packet(&packet, Instant::now()), Some('5'));
}

#[test]
fn short_and_broken_packets_are_ignored() {
    let mut receiver = DtmfReceiver::new(PT);
    let now = Instant::now();
    let full = event_packet(PT, 1, 160, 5, true, 160);
    for len in 0..full.len() {
        assert_eq!(receiver.on_packet(&full[..len], now), None, "len {len}");
    }
    let mut version_one = full.clone();
    version_one[0] = 0x40;
    assert_eq!(receiver.on_packet(&version_one, now), None);
    assert_eq!(receiver.deadline(), None);
    assert_eq!(receiver.on_packet(&full, now), Some('5'));
}

proptest! {
    #[test]
    fn garbage_never_panics(
        packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..64),
        ticks in proptest::collection::vec(0u64..2000, 0..64),
    ) {
        let mut receiver = DtmfReceiver::new(PT);
        let start = Instant::now();
        let mut reported = 0usize;
        for (i, packet) in packets.iter().enumerate() {
            let mut packet = packet.clone();
            if i % 2 == 0 && packet.len() >= 2 {
                // Half of them look like our events, to reach the state machine.
                packet[0] = 0x80;
                packet[1] = PT;
            }
            let now = start + Duration::from_millis(ticks.get(i).copied().unwrap_or(0));
            reported += usize::from(receiver.on_packet(&packet, now).is_some());
            reported += usize::from(receiver.on_tick(now).is_some());
            let _ = receiver.deadline();
        }
        while receiver.on_tick(start + Duration::from_secs(10)).is_some() {
            reported += 1;
        }
        // At most one key per packet.
        prop_assert!(reported <= packets.len());
    }

    #[test]
    fn every_press_gives_exactly_one_key(
        events in proptest::collection::vec(0u8..16, 1..20),
        keep_ends in proptest::collection::vec(0usize..4, 20),
    ) {
        let mut receiver = DtmfReceiver::new(PT);
        let mut packets = Vec::new();
        for (n, &event) in events.iter().enumerate() {
            let ts = 160 + 4000 * n as u32;
            let seq = 6 * n as u16;
            let mut one = press(seq, ts, event);
            // Between zero and all three end packets arrive.
            one.truncate(3 + keep_ends[n]);
            packets.extend(one);
        }
        let start = Instant::now();
        let mut keys = feed(&mut receiver, start, &packets);
        keys.extend(receiver.on_tick(start + Duration::from_secs(3600)));
        let expected: Vec<char> = events.iter().filter_map(|&e| event_digit(e)).collect();
        prop_assert_eq!(keys, expected);
    }
}

#[test]
fn sip_info_bodies() {
    assert_eq!(parse_dtmf_relay("Signal=4\r\nDuration=160\r\n"), Some('4'));
    assert_eq!(parse_dtmf_relay("Signal=4\r\nDuration=160"), Some('4'));
    assert_eq!(parse_dtmf_relay("signal = *\nduration = 250\n"), Some('*'));
    assert_eq!(parse_dtmf_relay("Duration=160\r\nSignal=#\r\n"), Some('#'));
    assert_eq!(parse_dtmf_relay("Signal=11\r\nDuration=100"), Some('#'));
    assert_eq!(parse_dtmf_relay("Signal=d\r\n"), Some('D'));
    // application/dtmf: the body is the key.
    assert_eq!(parse_dtmf_relay("5"), Some('5'));
    assert_eq!(parse_dtmf_relay("5\r\n"), Some('5'));
    assert_eq!(parse_dtmf_relay(" 0 "), Some('0'));
    for bad in [
        "",
        "\r\n",
        "Signal=\r\n",
        "Signal=x",
        "Signal=16",
        "Signal=45",
        "Duration=160",
        "x",
        "hello",
        "Signal=é",
        "é",
    ] {
        assert_eq!(parse_dtmf_relay(bad), None, "{bad:?}");
    }
}
