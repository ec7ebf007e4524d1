//! Input paths from files: the start-up repair of recordings, and the configuration.

use std::fs;
use std::net::IpAddr;

use super::ScratchFile;
use crate::config::Config;
use crate::recording::wav::{header, repair, summarize};
use crate::recording::RecordingError;
use crate::sip::transaction::TimerConfig;
use crate::sip::Uri;

/// The bytes are a file in the recordings tree at start-up. `repair` either leaves it
/// untouched (a consistent file, or one it refuses as not a WAV, with a clear error), or
/// rewrites it into a consistent file: repairing again changes nothing and its summary is
/// the file's. A file with our own header (the one the writer makes, sizes aside) must
/// come out readable by hound, every sample it declares.
pub fn wav_repair(data: &[u8]) {
    let file = ScratchFile::new("wav");
    let path = file.path();
    fs::write(path, data).expect("a scratch file in the temp directory");
    let _ = summarize(path);
    let read_back = || fs::read(path).expect("the scratch file reads back");
    match repair(path) {
        Err(RecordingError::NotWav { .. }) => {
            assert_eq!(
                read_back(),
                data,
                "a file refused as not a WAV is left untouched"
            );
        }
        Err(other) => panic!("repair failed on a readable file: {other}"),
        Ok(None) => assert_eq!(read_back(), data, "a consistent file is left untouched"),
        Ok(Some(summary)) => {
            let repaired = read_back();
            assert_eq!(summary.bytes, repaired.len() as u64, "summary of the file");
            assert!(
                matches!(repair(path), Ok(None)),
                "a repaired file is consistent"
            );
            assert_eq!(summarize(path).ok(), Some(summary), "summary is stable");
            // Ours: the writer's canonical header (fmt, then data at once), sizes aside.
            // Anything else (float, 24-bit, a frame size that does not match the
            // channels, odd-sized chunks before data, which hound does not pad) is only
            // vouched for as far as its sizes go.
            let ours = data.is_empty() || data.get(8..40) == header(0).get(8..40);
            if ours {
                hound_reads_all(path);
            }
        }
    }
}

/// hound reads every sample the (repaired) header of one of our recordings declares.
fn hound_reads_all(path: &std::path::Path) {
    let mut reader = match hound::WavReader::open(path) {
        Ok(reader) => reader,
        Err(e) => panic!("hound refuses a repaired recording of ours: {e}"),
    };
    let declared = u64::from(reader.len());
    let (read, failure) = tally(reader.samples::<i16>());
    if let Some(e) = failure {
        panic!("hound fails on sample {read} of a repaired recording: {e}");
    }
    assert_eq!(read, declared, "hound reads what the header declares");
}

/// Samples read up to the first failure, and that failure.
fn tally<T>(samples: impl Iterator<Item = hound::Result<T>>) -> (u64, Option<hound::Error>) {
    let mut read = 0;
    for sample in samples {
        if let Err(e) = sample {
            return (read, Some(e));
        }
        read += 1;
    }
    (read, None)
}

/// TOML text into the configuration, as `threering serve` and `check-config` read it.
/// What validation accepts, the daemon must be able to use: listen addresses, trunk
/// targets, agent contacts, timers.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    config
        .sip_listen_specs()
        .expect("validated listen specs parse");
    for trunk in &config.trunks {
        assert!(trunk.target().is_some(), "validated trunk {:?}", trunk.name);
    }
    for agent in &config.agents {
        if let Some(contact) = &agent.contact {
            assert!(
                Uri::parse(contact).is_ok_and(|uri| uri.as_sip().is_some()),
                "validated contact {contact:?}"
            );
        }
    }
    let timers = TimerConfig {
        t1: std::time::Duration::from_millis(config.sip.t1_ms),
        ..TimerConfig::default()
    }
    .normalized();
    let _ = timers.timeout();
    for ip in ["127.0.0.1", "::1", "10.1.2.3"] {
        let _ = config.is_trusted(ip.parse::<IpAddr>().expect("a literal address"));
    }
    for number in ["4008001234", "008613800138000", "+8613800138000", "1"] {
        let _ = config.queue_for_number(number);
        let _ = config.callbacks.refuse(number);
    }
    assert!(
        config.calendar.compile().is_ok(),
        "validated calendar compiles"
    );
    let _ = format!("{config:?}");
}
