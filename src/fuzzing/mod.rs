//! The bodies of the fuzz targets in `fuzz/`, kept in the crate so that `cargo test` runs
//! them over the seed inputs (`src/fuzzing/tests.rs`) without libFuzzer, and so that they
//! reach crate-private entry points the way the daemon does. Not an API: hidden from the
//! documentation, used only by `fuzz/fuzz_targets/*.rs` and the tests.
//!
//! Each function takes whatever bytes the fuzzer made, drives one input path of the
//! daemon with them, and panics only when an invariant of that path is broken (a parsed
//! message that does not serialize back, a repaired WAV that hound cannot read, a DTMF
//! receiver that is due again at once after being drained, ...). Any other panic inside
//! them is a bug in the code under test.
//!
//! # Timed packet scripts (`rtp`, `dtmf`)
//! Media is a stream of packets over time, so those two targets read their input as a
//! script: one *parameter* byte, then steps of
//!
//! ```text
//! +-------+------------+--------+-----------------+
//! | flags | advance_ms | length | length bytes... |
//! +-------+------------+--------+-----------------+
//! ```
//!
//! `advance_ms` moves the clock before the step; the packet is cut short if the input
//! ends first; an empty packet is no packet. The flags are [`AGENT`], [`TICK`], [`PAUSE`],
//! and for the relay's latching [`SOURCE`] and [`NEW_SDP`]. `fuzz/seed` writes the same
//! format from SIPp's pcap files.

mod files;
mod media;
mod sip;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use files::{config, wav_repair};
pub use media::{dtmf, rtp, sdp};
pub use sip::sip;

/// Step flag: the packet arrived on the agent's leg (the caller's otherwise).
pub const AGENT: u8 = 0x01;
/// Step flag: after the packet, the timers run (the recorder writes, the DTMF receiver
/// reports keys whose end was lost).
pub const TICK: u8 = 0x02;
/// Step flag: the recording is paused here, or resumed if it was paused.
pub const PAUSE: u8 = 0x04;
/// Step flags (two bits): where the datagram came from. 0 is the address the leg's SDP
/// gave, 1 the same IP from another port (a NAT), 2 a stranger, 3 the SDP address as an
/// IPv4-mapped IPv6 address (a dual-stack socket).
pub const SOURCE: u8 = 0x18;
/// Step flag: before the packet, call control hands the leg a new SDP address (a
/// re-INVITE), alternating between two.
pub const NEW_SDP: u8 = 0x20;

/// One step of a timed packet script; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    pub flags: u8,
    pub advance: Duration,
    pub packet: &'a [u8],
}

impl Step<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The [`SOURCE`] bits: 0 to 3.
    pub fn source(&self) -> u8 {
        (self.flags & SOURCE) >> SOURCE.trailing_zeros()
    }
}

/// The steps of a script (without its parameter byte).
pub fn steps(mut script: &[u8]) -> impl Iterator<Item = Step<'_>> {
    std::iter::from_fn(move || {
        let [flags, advance_ms, length, rest @ ..] = script else {
            return None;
        };
        let (packet, rest) = rest.split_at(usize::from(*length).min(rest.len()));
        script = rest;
        Some(Step {
            flags: *flags,
            advance: Duration::from_millis(u64::from(*advance_ms)),
            packet,
        })
    })
}

/// One step in the script format (the packet is cut at 255 bytes).
pub fn encode_step(flags: u8, advance_ms: u8, packet: &[u8]) -> Vec<u8> {
    let packet = &packet[..packet.len().min(255)];
    let mut step = vec![flags, advance_ms, packet.len() as u8];
    step.extend_from_slice(packet);
    step
}

/// A file in the temporary directory (`TMPDIR`; `fuzz/run` points it at a RAM disk when
/// there is one), removed when dropped.
struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    fn new(extension: &str) -> ScratchFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "threering-fuzz-{}-{}.{extension}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        // Left behind by an earlier run that crashed: the writer refuses to overwrite.
        let _ = std::fs::remove_file(&path);
        ScratchFile { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests;
