//! The fuzz target bodies over the seed inputs, without libFuzzer: the RFC 4475 messages,
//! the messages of the SIPp scenarios in `tests/sipp/`, the config files, WAVs from our
//! writer, and packet scripts from hand-made RTP and SIPp's pcap files. Each body panics
//! when an invariant breaks, so these fail on any regression a fuzz run would catch on
//! its seeds.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::media::dtmf::TelephoneEvent;
use crate::recording::test_support::{alaw, rtp as rtp_packet, sine, ulaw};
use crate::recording::WavWriter;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The files of `dir` whose name ends in `suffix`, sorted, with their contents.
fn files(dir: &Path, suffix: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect()
}

fn torture_messages() -> Vec<(PathBuf, Vec<u8>)> {
    files(&repo("../shared/rfc4475"), ".dat")
}

/// SIPp's keywords, filled in the way SIPp would for a call to the daemon.
const SIPP_KEYWORDS: &[(&str, &str)] = &[
    ("[service]", "4008001234"),
    ("[remote_ip]", "127.0.0.1"),
    ("[remote_port]", "5060"),
    ("[local_ip]", "127.0.0.1"),
    ("[local_port]", "5070"),
    ("[local_ip_type]", "4"),
    ("[media_ip]", "127.0.0.1"),
    ("[media_ip_type]", "4"),
    ("[media_port]", "6000"),
    ("[transport]", "UDP"),
    ("[branch]", "z9hG4bK-seed-1"),
    ("[call_number]", "1"),
    ("[call_id]", "seed-1@127.0.0.1"),
    ("[cseq]", "1"),
    ("[pid]", "4242"),
    (
        "[last_Via:]",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-seed-2",
    ),
    (
        "[last_From:]",
        "From: <sip:caller@127.0.0.1:5070>;tag=seed-from",
    ),
    (
        "[last_To:]",
        "To: <sip:4008001234@127.0.0.1:5060>;tag=seed-to",
    ),
    ("[last_Call-ID:]", "Call-ID: seed-1@127.0.0.1"),
    ("[last_CSeq:]", "CSeq: 1 INVITE"),
];

/// The messages the SIPp scenarios send, with CRLF line ends and Content-Length filled.
fn sipp_messages() -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    for (_, xml) in files(&repo("tests/sipp"), ".xml") {
        let xml = String::from_utf8_lossy(&xml);
        for block in xml.split("<send").skip(1) {
            let Some(start) = block.find("<![CDATA[") else {
                continue;
            };
            let Some(length) = block[start..].find("]]>") else {
                continue;
            };
            let mut text = block[start + 9..start + length].to_owned();
            for (keyword, value) in SIPP_KEYWORDS {
                text = text.replace(keyword, value);
            }
            let lines: Vec<&str> = text.trim_matches('\n').lines().map(str::trim).collect();
            let message = lines.join("\r\n");
            let (head, body) = message.split_once("\r\n\r\n").unwrap_or((&message, ""));
            let body = if body.trim().is_empty() {
                String::new()
            } else {
                format!("{}\r\n", body.trim_end())
            };
            let head = head.replace("[len]", &body.len().to_string());
            messages.push(format!("{head}\r\n\r\n{body}").into_bytes());
        }
    }
    messages
}

fn body_of(message: &[u8]) -> &[u8] {
    let at = message.windows(4).position(|w| w == b"\r\n\r\n");
    at.map_or(&[][..], |at| &message[at + 4..])
}

#[test]
fn sip_body_takes_every_torture_message_and_sipp_message() {
    let torture = torture_messages();
    assert_eq!(
        torture.len(),
        50,
        "the RFC 4475 messages are in ../shared/rfc4475"
    );
    for (path, data) in &torture {
        eprintln!("{}", path.display());
        sip(data);
    }
    let scenario_messages = sipp_messages();
    assert!(scenario_messages.len() > 50, "{}", scenario_messages.len());
    for message in &scenario_messages {
        sip(message);
    }
}

#[test]
fn sdp_body_takes_every_sdp_of_the_seeds() {
    let mut bodies: Vec<Vec<u8>> = torture_messages()
        .iter()
        .map(|(_, m)| body_of(m).to_vec())
        .collect();
    bodies.extend(sipp_messages().iter().map(|m| body_of(m).to_vec()));
    bodies.retain(|b| b.starts_with(b"v=0"));
    assert!(bodies.len() > 20, "{} SDP bodies", bodies.len());
    for body in &bodies {
        sdp(body);
        // The same with LF line ends, which the parser also takes.
        sdp(String::from_utf8_lossy(body)
            .replace("\r\n", "\n")
            .as_bytes());
    }
}

#[test]
fn config_body_takes_the_config_files() {
    let mut texts = files(&repo("config"), ".toml");
    texts.extend(files(&repo("config/examples"), ".toml"));
    assert!(texts.len() >= 2);
    for (path, text) in &texts {
        assert!(
            crate::config::Config::from_toml(&String::from_utf8_lossy(text)).is_ok(),
            "{} is valid",
            path.display()
        );
        config(text);
    }
}

#[test]
fn wav_repair_body_takes_our_files_whole_crashed_and_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let finished = dir.path().join("finished.wav");
    let mut writer = WavWriter::create(&finished).expect("create");
    writer.write_frames(&[1; 50], &[-1; 50]).expect("write");
    writer.finish().expect("finish");
    let crashed = dir.path().join("crashed.wav");
    let mut writer = WavWriter::create(&crashed).expect("create");
    writer.write_frames(&[300; 30], &[-300; 30]).expect("write");
    writer.checkpoint().expect("checkpoint");
    writer.write_frames(&[7; 20], &[-7; 20]).expect("write");
    writer.crash();

    let finished = fs::read(finished).expect("read");
    let crashed = fs::read(crashed).expect("read");
    wav_repair(&finished);
    let mut partial_frame = crashed.clone();
    partial_frame.extend_from_slice(&[1, 2, 3]);
    wav_repair(&partial_frame);
    for len in 0..=crashed.len() {
        wav_repair(&crashed[..len]);
    }
}

/// A call of `packets` 20 ms packets on each leg, caller in PCMA and agent in PCMU, with
/// the recorder's timer every 60 ms.
fn call_script(packets: u16, reorder: bool, pause_at: Option<u16>) -> Vec<u8> {
    let mut script = vec![96];
    for i in 0..packets {
        let seq = if reorder && i % 5 == 1 {
            i + 1
        } else if reorder && i % 5 == 2 {
            i - 1
        } else {
            i
        };
        let timestamp = u32::from(seq) * 160;
        let tone = sine(440.0, u64::from(timestamp), 160);
        let caller = rtp_packet(8, seq, timestamp, 0x1111, &alaw(&tone));
        let agent = rtp_packet(0, seq, timestamp, 0x2222, &ulaw(&tone));
        let tick = if i % 3 == 2 { TICK } else { 0 };
        let pause = if Some(i) == pause_at || pause_at.map(|p| p + 10) == Some(i) {
            PAUSE
        } else {
            0
        };
        script.extend(encode_step(tick | pause, 20, &caller));
        script.extend(encode_step(AGENT, 0, &agent));
    }
    script
}

/// UDP payloads of a classic pcap file (Ethernet, IPv4) with their times in ms.
fn pcap_payloads(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let data =
        fs::read(path).unwrap_or_else(|e| panic!("{}: {e} (package sip-tester)", path.display()));
    let u32_at =
        |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    assert_eq!(u32_at(0), 0xa1b2_c3d4, "a little-endian microsecond pcap");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let ms = u64::from(u32_at(at)) * 1000 + u64::from(u32_at(at + 4)) / 1000;
        let included = u32_at(at + 8) as usize;
        let frame = &data[at + 16..(at + 16 + included).min(data.len())];
        at += 16 + included;
        let Some(ip) = frame.get(14..) else { continue };
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let header = usize::from(ip[0] & 0x0f) * 4;
        if let Some(payload) = ip.get(header + 8..) {
            out.push((ms, payload.to_vec()));
        }
    }
    out
}

fn pcap_script(parameter: u8, packets: &[(u64, Vec<u8>)], flags: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut script = vec![parameter];
    let mut last = packets.first().map_or(0, |(ms, _)| *ms);
    for (i, (ms, payload)) in packets.iter().enumerate() {
        let advance = u8::try_from(ms.saturating_sub(last)).unwrap_or(u8::MAX);
        last = *ms;
        script.extend(encode_step(flags(i), advance, payload));
    }
    script
}

#[test]
fn rtp_body_records_calls_from_scripts_and_pcap() {
    rtp(&call_script(100, false, None));
    rtp(&call_script(100, true, Some(20)));
    rtp(&[]);
    rtp(&[8]);
    let audio = pcap_payloads(Path::new("/usr/share/sip-tester/g711a.pcap"));
    assert!(audio.len() > 100, "{} packets", audio.len());
    rtp(&pcap_script(8, &audio[..100], |i| {
        if i % 3 == 2 {
            TICK
        } else {
            0
        }
    }));
}

#[test]
fn dtmf_body_takes_key_presses_and_pcap() {
    // Two presses of 5 and one of #, the second without its end packets.
    let mut script = vec![101];
    for (press, event, ends) in [(0u32, 5u8, true), (1, 5, false), (2, 11, true)] {
        for i in 0..6u16 {
            let end = ends && i >= 3;
            let payload = TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: 400 * (i + 1),
            };
            let packet = rtp_packet(
                101,
                10 * press as u16 + i,
                8000 * press,
                0x3333,
                &payload.to_bytes(),
            );
            script.extend(encode_step(TICK, 50, &packet));
        }
        script.extend(encode_step(TICK, 255, &[]));
        script.extend(encode_step(TICK, 255, &[]));
    }
    assert_eq!(dtmf(&script), "55#");
    let pcaps = files(Path::new("/usr/share/sip-tester"), ".pcap");
    let presses: Vec<_> = pcaps
        .iter()
        .filter(|(path, _)| path.to_string_lossy().contains("dtmf_2833"))
        .collect();
    assert!(
        presses.len() >= 12,
        "SIPp's DTMF pcaps (package sip-tester)"
    );
    for (path, _) in presses {
        let name = path.to_string_lossy();
        let key = match name.rsplit('_').next() {
            Some("star.pcap") => "*",
            Some("pound.pcap") => "#",
            Some(digit) => &digit[..1],
            None => panic!("{name}"),
        };
        let packets = pcap_payloads(path);
        assert_eq!(dtmf(&pcap_script(101, &packets, |_| TICK)), key, "{name}");
        let no_end: Vec<_> = packets
            .into_iter()
            .filter(|(_, p)| p.get(13).is_some_and(|b| b & 0x80 == 0))
            .collect();
        assert_eq!(
            dtmf(&pcap_script(101, &no_end, |_| 0)),
            key,
            "{name} without end packets"
        );
    }
    dtmf(b"Signal=5\r\nDuration=160\r\n");
}

#[test]
fn scripts_round_trip_through_their_encoding() {
    let mut script = encode_step(AGENT | TICK, 20, &[1, 2, 3]);
    script.extend(encode_step(PAUSE, 255, &[]));
    script.extend([0, 7, 9, 4]); // a last step cut short by the end of the input
    let parsed: Vec<Step> = steps(&script).collect();
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[0].packet, &[1, 2, 3]);
    assert!(parsed[0].has(AGENT) && parsed[0].has(TICK) && !parsed[0].has(PAUSE));
    assert_eq!(parsed[1].advance, Duration::from_millis(255));
    assert!(parsed[1].packet.is_empty());
    assert_eq!(parsed[2].packet, &[4]);
    assert_eq!(steps(&[1, 2]).count(), 0);
}
