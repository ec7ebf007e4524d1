use super::*;
use crate::recording::g711;

/// A WAV in memory with the given format.
fn wav(spec: hound::WavSpec, samples: usize) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    {
        let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("writer");
        for i in 0..samples * usize::from(spec.channels) {
            match spec.sample_format {
                hound::SampleFormat::Float => writer.write_sample(0.0f32).expect("sample"),
                hound::SampleFormat::Int if spec.bits_per_sample == 8 => {
                    writer.write_sample(i as i8).expect("sample")
                }
                hound::SampleFormat::Int => writer.write_sample(i as i16).expect("sample"),
            }
        }
        writer.finalize().expect("finalize");
    }
    bytes.into_inner()
}

fn spec(sample_rate: u32, channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

const GOOD: hound::WavSpec = hound::WavSpec {
    channels: 1,
    sample_rate: 8000,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

fn reason(result: Result<Prompt, MediaError>) -> String {
    match result {
        Err(MediaError::PromptFormat { reason, .. }) => reason,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn reads_8khz_mono_16_bit() {
    let prompt = Prompt::from_wav_bytes(&wav(GOOD, 8000)).expect("valid");
    assert_eq!(prompt.samples().len(), 8000);
    assert_eq!(prompt.samples()[..3], [0, 1, 2]);
    assert_eq!(prompt.duration(), Duration::from_secs(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.wav");
    std::fs::write(&path, wav(GOOD, 400)).expect("write");
    let loaded = Prompt::load_wav(&path).expect("loads");
    assert_eq!(loaded.samples().len(), 400);
    assert_eq!(
        format!("{loaded:?}"),
        "Prompt { samples: 400, duration: 50ms }"
    );
}

#[test]
fn other_formats_are_refused_clearly() {
    use hound::SampleFormat::{Float, Int};
    let stereo = reason(Prompt::from_wav_bytes(&wav(spec(8000, 2, 16, Int), 10)));
    assert!(stereo.contains("2 channel(s)"), "{stereo}");
    assert!(stereo.contains("sox"), "says how to convert: {stereo}");
    let wideband = reason(Prompt::from_wav_bytes(&wav(spec(16000, 1, 16, Int), 10)));
    assert!(wideband.contains("16000 Hz"), "{wideband}");
    let eight_bit = reason(Prompt::from_wav_bytes(&wav(spec(8000, 1, 8, Int), 10)));
    assert!(eight_bit.contains("8-bit"), "{eight_bit}");
    let float = reason(Prompt::from_wav_bytes(&wav(spec(8000, 1, 32, Float), 10)));
    assert!(float.contains("float"), "{float}");
    let garbage = reason(Prompt::from_wav_bytes(b"RIFF\x04\0\0\0WAVEjunk"));
    assert!(garbage.starts_with("not a WAV"), "{garbage}");
    reason(Prompt::from_wav_bytes(b""));
    // Truncated: the data chunk promises more than there is.
    let mut truncated = wav(GOOD, 100);
    truncated.truncate(truncated.len() - 51);
    reason(Prompt::from_wav_bytes(&truncated));
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let error = Prompt::load_wav("/nonexistent/prompt.wav").expect_err("missing");
    assert!(matches!(error, MediaError::PromptIo { .. }));
    assert!(
        error.to_string().contains("/nonexistent/prompt.wav"),
        "{error}"
    );
}

#[test]
fn the_shipped_prompts_are_valid_and_small() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prompts");
    for name in ["survey.wav", "thanks.wav", "invalid.wav"] {
        let path = dir.join(name);
        let size = std::fs::metadata(&path).expect("shipped").len();
        assert!(size < 100 * 1024, "{name} is {size} bytes");
        let prompt = Prompt::load_wav(&path).expect("valid prompt");
        assert!(prompt.duration() > Duration::from_secs(1), "{name}");
        let loud = prompt
            .samples()
            .iter()
            .filter(|s| s.unsigned_abs() > 1000)
            .count();
        assert!(
            loud > prompt.samples().len() / 10,
            "{name} is mostly silent"
        );
    }
}

#[test]
fn frames_are_20_ms_of_g711_with_the_last_one_padded() {
    let samples: Vec<i16> = (0..161).map(|i| (i * 200 - 16000) as i16).collect();
    let prompt = Prompt::from_samples(samples.clone());
    for codec in [PromptCodec::Pcmu, PromptCodec::Pcma] {
        let frames = prompt.frames(codec);
        assert_eq!(frames.len(), 2);
        let encode = |s: i16| match codec {
            PromptCodec::Pcmu => g711::linear_to_ulaw(s),
            PromptCodec::Pcma => g711::linear_to_alaw(s),
        };
        for (i, &sample) in samples.iter().enumerate() {
            assert_eq!(frames[i / 160][i % 160], encode(sample));
        }
        assert!(frames[1][1..].iter().all(|&c| c == codec.silence()));
    }
    assert_eq!(PromptCodec::Pcmu.silence(), 0xff);
    assert_eq!(PromptCodec::Pcma.silence(), 0xd5);
    assert!(Prompt::from_samples(Vec::new())
        .frames(PromptCodec::Pcmu)
        .is_empty());
    assert_eq!(
        Prompt::from_samples(vec![0; 320])
            .frames(PromptCodec::Pcma)
            .len(),
        2
    );
}

#[test]
fn codecs_from_sdp() {
    assert_eq!(
        PromptCodec::from_encoding("PCMU/8000"),
        Some(PromptCodec::Pcmu)
    );
    assert_eq!(
        PromptCodec::from_encoding("pcma/8000/1"),
        Some(PromptCodec::Pcma)
    );
    assert_eq!(PromptCodec::from_encoding("PCMA"), Some(PromptCodec::Pcma));
    assert_eq!(PromptCodec::from_encoding("PCMU/16000"), None);
    assert_eq!(PromptCodec::from_encoding("PCMU/8000/2"), None);
    assert_eq!(PromptCodec::from_encoding("G722/8000"), None);
    assert_eq!(PromptCodec::from_encoding("telephone-event/8000"), None);
    assert_eq!(
        PromptCodec::from_static_payload_type(0),
        Some(PromptCodec::Pcmu)
    );
    assert_eq!(
        PromptCodec::from_static_payload_type(8),
        Some(PromptCodec::Pcma)
    );
    assert_eq!(PromptCodec::from_static_payload_type(18), None);
    assert_eq!(PromptCodec::Pcma.static_payload_type(), 8);
}

/// (marker, payload type, sequence, timestamp, SSRC) of a packet.
fn header(packet: &[u8; PACKET_LEN]) -> (bool, u8, u16, u32, u32) {
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

#[test]
fn packets_continue_sequence_and_timestamp_across_the_wrap() {
    let mut player = PromptPlayer::with_start(0xabcd, 65534, u32::MAX - 159);
    let frame = [0x55; FRAME_SAMPLES];
    let first = player.next_packet(8, &frame);
    assert_eq!(first[0], 0x80, "version 2, no padding, extension or CSRC");
    assert_eq!(header(&first), (true, 8, 65534, u32::MAX - 159, 0xabcd));
    assert_eq!(&first[12..], &frame[..]);
    assert_eq!(
        header(&player.next_packet(8, &frame)),
        (false, 8, 65535, 0, 0xabcd)
    );
    assert_eq!(
        header(&player.next_packet(8, &frame)),
        (false, 8, 0, 160, 0xabcd)
    );
    assert_eq!((player.next_sequence(), player.next_timestamp()), (1, 320));
    assert_eq!(player.ssrc(), 0xabcd);
}

#[test]
fn a_talkspurt_after_a_pause_jumps_by_the_elapsed_samples() {
    let start = Instant::now();
    let frame = [0xff; FRAME_SAMPLES];
    let mut player = PromptPlayer::with_start(7, 100, 1000);
    player.start_talkspurt(start);
    for i in 0..50u16 {
        let (marker, _, seq, ts, _) = header(&player.next_packet(0, &frame));
        assert_eq!(
            (marker, seq, ts),
            (i == 0, 100 + i, 1000 + 160 * u32::from(i))
        );
    }
    // The first prompt took 1 s; the next one starts 2.5 s after the first began.
    player.start_talkspurt(start + Duration::from_millis(2500));
    assert_eq!(
        header(&player.next_packet(0, &frame)),
        (true, 0, 150, 1000 + 20_000, 7)
    );
    assert_eq!(
        header(&player.next_packet(0, &frame)),
        (false, 0, 151, 1000 + 20_160, 7)
    );
    // A spurt started right away (the clock ran behind the frames sent): never backwards.
    player.start_talkspurt(start + Duration::from_millis(2500));
    assert_eq!(
        header(&player.next_packet(0, &frame)),
        (true, 0, 152, 1000 + 20_320, 7)
    );
    // Random starting points differ between legs.
    let (a, b) = (PromptPlayer::new(), PromptPlayer::default());
    assert!(a.ssrc() != b.ssrc() || a.next_sequence() != b.next_sequence());
}
