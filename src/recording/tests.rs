//! End-to-end tests of the recorder: its own thread, the real clock, no sockets. Synthetic
//! RTP for both legs is fed through the tap channel as the relay would, with packets
//! reordered, duplicated and lost, and a pause in the middle.

use std::time::Duration;

use tokio::time::Instant;

use sha2::Digest;

use super::test_support::{alaw, goertzel, read_stereo, rtp, sine, ulaw};
use super::*;

const PACKET: usize = 160;
const CALLER_HZ: f64 = 400.0;
const AGENT_HZ: f64 = 1000.0;

/// Taps a packet now, as the relay would; the tap must have room.
fn put(tap: &TapSender, leg: Leg, data: bytes::Bytes) {
    assert_eq!(tap.offer(leg, Instant::now(), &data), tap::Offer::Taken);
}

/// Caller packet `k`: A-law 400 Hz, sequence wrapping at 65535 early on.
fn caller_packet(k: u64) -> bytes::Bytes {
    let payload = alaw(&sine(CALLER_HZ, k * PACKET as u64, PACKET));
    let seq = 65_500u16.wrapping_add(k as u16);
    let ts = 4_000_000_000u32.wrapping_add((k * PACKET as u64) as u32);
    rtp(8, seq, ts, 0xcafe_0001, &payload)
}

/// Agent packet `k`: µ-law 1000 Hz.
fn agent_packet(k: u64) -> bytes::Bytes {
    let payload = ulaw(&sine(AGENT_HZ, k * PACKET as u64, PACKET));
    let seq = 17u16.wrapping_add(k as u16);
    let ts = 99u32.wrapping_add((k * PACKET as u64) as u32);
    rtp(0, seq, ts, 0xbeef_0002, &payload)
}

/// Lengths of the runs of at least 10 ms of exact silence in `samples`, leaving out runs
/// at either end (before the first packet, after the last).
fn silent_runs(samples: &[i16]) -> Vec<usize> {
    let mut runs = Vec::new();
    let mut run = 0;
    for (i, &s) in samples.iter().enumerate() {
        if s == 0 {
            run += 1;
        } else {
            if run >= 80 && run < i {
                runs.push(run);
            }
            run = 0;
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn records_both_legs_aligned_with_wall_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("recordings/2024/06/07/call-1.wav");
    let before_start = Instant::now();
    let (recorder, tap) = Recorder::start(RecorderConfig::new(&path)).expect("start");
    assert_eq!(recorder.path(), path);

    // 100 packets a leg, one every 20 ms: 2 s.
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut held_back = None;
    for k in 0..100u64 {
        ticker.tick().await;
        if k == 50 {
            recorder.pause();
            assert!(recorder.is_paused());
        }
        if k == 70 {
            recorder.resume();
        }
        // Caller: 20 and 80 lost; 33 and 83 arrive after their successor; 45 duplicated;
        // 12 sent again (long too late) with 40.
        if k == 33 || k == 83 {
            held_back = Some(caller_packet(k));
        } else if k != 20 && k != 80 {
            put(&tap, Leg::Caller, caller_packet(k));
            if let Some(late) = held_back.take() {
                put(&tap, Leg::Caller, late);
            }
        }
        if k == 45 {
            put(&tap, Leg::Caller, caller_packet(k));
        }
        if k == 40 {
            put(&tap, Leg::Caller, caller_packet(12));
        }
        // Agent: 30 lost, 76 and 77 swapped, 88 duplicated.
        match k {
            30 | 76 => {}
            77 => {
                put(&tap, Leg::Agent, agent_packet(77));
                put(&tap, Leg::Agent, agent_packet(76));
            }
            _ => put(&tap, Leg::Agent, agent_packet(k)),
        }
        if k == 88 {
            put(&tap, Leg::Agent, agent_packet(88));
        }
    }
    ticker.tick().await;
    let before_stop = Instant::now();
    let summary = recorder.stop().await.expect("stop");
    let after_stop = Instant::now();

    // Channel time is wall time.
    let wall_ms = |from: Instant, to: Instant| to.duration_since(from).as_millis() as u64;
    assert!(
        summary.duration_ms + 100 >= wall_ms(before_start, before_stop)
            && summary.duration_ms <= wall_ms(before_start, after_stop) + 100,
        "duration {} ms, wall {}..{} ms",
        summary.duration_ms,
        wall_ms(before_start, before_stop),
        wall_ms(before_start, after_stop)
    );
    let (left, right) = read_stereo(&path);
    assert_eq!(left.len() as u64 / 8, summary.duration_ms);
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(summary.bytes, bytes.len() as u64);
    assert_eq!(summary.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(summarize(&path).expect("summarize").sha256, summary.sha256);

    // One closed pause of about 400 ms, silent in both channels.
    assert_eq!(summary.paused_spans.len(), 1);
    let (pause_from, pause_to) = match summary.paused_spans[0] {
        (from, Some(to)) => (from, to),
        other => panic!("span not closed: {other:?}"),
    };
    assert!(
        (300..=520).contains(&(pause_to - pause_from)),
        "{pause_from}..{pause_to}"
    );
    let (from, to) = ((pause_from * 8) as usize, (pause_to * 8) as usize);
    assert!(
        left[from..to].iter().all(|&s| s == 0),
        "left silent while paused"
    );
    assert!(
        right[from..to].iter().all(|&s| s == 0),
        "right silent while paused"
    );

    // The tones are on their own channels, in every 20 ms window that has sound.
    let mut voiced = [0usize; 2];
    for (side, (channel, own, other)) in
        [(&left, CALLER_HZ, AGENT_HZ), (&right, AGENT_HZ, CALLER_HZ)]
            .into_iter()
            .enumerate()
    {
        for window in channel.chunks_exact(PACKET) {
            if window.iter().filter(|&&s| s != 0).count() < PACKET / 2 {
                continue;
            }
            voiced[side] += 1;
            let (mine, theirs) = (goertzel(window, own), goertzel(window, other));
            assert!(mine > 20.0 * theirs, "side {side}: {mine} vs {theirs}");
        }
    }
    // 2 s of audio less 0.4 s paused and a few lost packets: well over 70 windows each.
    assert!(
        voiced[0] > 70 && voiced[1] > 70,
        "voiced windows {voiced:?}"
    );

    // The channels are aligned: both legs started in the same 20 ms.
    let onset = |channel: &[i16]| channel.iter().position(|&s| s != 0).expect("sound");
    assert!(
        onset(&left).abs_diff(onset(&right)) <= 80,
        "onsets differ by > 10 ms"
    );

    // Gaps inside the recording, outside the pause: the lost packets and nothing else.
    // Reordered packets filled their place, duplicates did not shift anything.
    let outside_pause = |channel: &[i16]| {
        let mut runs = silent_runs(&channel[..from]);
        runs.extend(silent_runs(&channel[to..]));
        runs
    };
    let (left_gaps, right_gaps) = (outside_pause(&left), outside_pause(&right));
    // Caller 20 and 80, agent 30: one packet (160 samples) each; on the right the µ-law
    // sine's own zero crossing next to the gap may add a sample. A badly stalled test
    // machine could add a gap where the recorder delayed a leg; allow one.
    let lost_sized = |runs: &[usize]| {
        runs.iter()
            .filter(|&&r| (PACKET..=PACKET + 1).contains(&r))
            .count()
    };
    assert_eq!(lost_sized(&left_gaps), 2, "left gaps {left_gaps:?}");
    assert_eq!(lost_sized(&right_gaps), 1, "right gaps {right_gaps:?}");
    assert!(
        left_gaps.len() <= 3 && right_gaps.len() <= 2,
        "{left_gaps:?} {right_gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn stop_while_paused_closes_the_span_and_a_dropped_handle_still_closes_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.wav");
    let config = RecorderConfig {
        checkpoint_every: Duration::from_millis(50),
        ..RecorderConfig::new(&path)
    };
    let (recorder, tap) = Recorder::start(config).expect("start");
    put(&tap, Leg::Caller, caller_packet(0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    recorder.pause();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let summary = recorder.stop().await.expect("stop");
    assert_eq!(summary.paused_spans.len(), 1);
    assert_eq!(summary.paused_spans[0].1, Some(summary.duration_ms));

    // Dropped without stop: the thread notices and finalizes the file.
    let other = dir.path().join("b.wav");
    let (recorder, _tap) = Recorder::start(RecorderConfig::new(&other)).expect("start");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(recorder);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let header = std::fs::read(&other).expect("read");
        let declared = u32::from_le_bytes([header[40], header[41], header[42], header[43]]);
        // At least the 100 ms before the drop, and a header that matches the length.
        if declared >= 3200 && u64::from(declared) + 44 == header.len() as u64 {
            assert!(repair(&other).expect("repair").is_none());
            break;
        }
        assert!(Instant::now() < deadline, "file not finalized after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Starting over an existing recording is refused.
    assert!(Recorder::start(RecorderConfig::new(&other)).is_err());
}

/// Eight recordings at once (four on each of two recorder threads or more): each thread
/// checkpoints its due files together, and every file's header keeps up with its audio
/// while the calls go on, not only when they end.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn many_recordings_are_all_checkpointed_while_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut running = Vec::new();
    for k in 0..8 {
        let path = dir.path().join(format!("r{k}.wav"));
        let config = RecorderConfig {
            checkpoint_every: Duration::from_millis(100),
            ..RecorderConfig::new(&path)
        };
        let (recorder, tap) = Recorder::start(config).expect("start");
        running.push((path, recorder, tap));
        // Staggered starts: their checkpoints fall due at different ticks.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let declared = |path: &std::path::Path| {
        let header = std::fs::read(path).expect("read");
        u32::from_le_bytes([header[40], header[41], header[42], header[43]])
    };
    let mut seen = [0u32; 8];
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        for (k, (path, _, tap)) in running.iter().enumerate() {
            put(tap, Leg::Caller, caller_packet(round));
            let now = declared(path);
            assert!(
                now > seen[k],
                "recording {k} not checkpointed in round {round}"
            );
            seen[k] = now;
        }
    }
    for (path, recorder, _) in running {
        let summary = recorder.stop().await.expect("stop");
        assert_eq!(u64::from(declared(&path)) + 44, summary.bytes);
    }
}

#[test]
fn the_handle_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Recorder>();
    shareable::<RecordingError>();
}

#[test]
fn recording_paths_are_dated_and_safe() {
    let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 9).expect("date");
    let root = std::path::Path::new("/var/lib/threering/recordings");
    assert_eq!(
        recording_path(root, date, "a84b4c76e66710@pc33.example.com"),
        root.join("2024/02/09/a84b4c76e66710@pc33.example.com.wav")
    );
    assert_eq!(
        recording_path(root, date, "../../etc/passwd"),
        root.join("2024/02/09/_.._.._etc_passwd.wav")
    );
    assert_eq!(
        recording_path(root, date, ""),
        root.join("2024/02/09/_.wav")
    );
    assert_eq!(Codec::from_encoding_name("pcma"), Some(Codec::Pcma));
    assert_eq!(Codec::from_encoding_name("PCMU"), Some(Codec::Pcmu));
    assert_eq!(Codec::from_encoding_name("telephone-event"), None);
}
