//! Faults around a running daemon: the recordings volume fills up, and the wall clock
//! jumps. Real SIPp peers against the real binary.
//!
//! - **Recordings volume full** (a 1 MiB tmpfs mounted over the recordings root; needs
//!   root): a call whose recording runs out of space goes on to its normal end, its file
//!   is left a valid WAV holding the audio written so far (`interrupted`, checksum of the
//!   repaired file), `/healthz` says `degraded` with the `recordings_failing` alarm; a
//!   call on a completely full volume is answered and simply unrecorded; once space
//!   returns, the next call is recorded whole and the alarm clears.
//! - **Clock jump**: the daemon runs under libfaketime (Debian package `faketime`) with
//!   only the wall clock faked; the wall clock is moved an hour back while an agent
//!   rings. Ring times come from the monotonic clock, so the ring time and rings are
//!   exactly what the agent rang.
//!
//! The tests fail, not skip, when `mount`, libfaketime, SIPp or `soxi` is missing.

mod daemon_common;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_common::{
    assert_all_ok, free_port, int_field, pretty, reports, str_field, timing_exclusive,
    timing_shared, AgentSpec, Checks, Daemon, DaemonSpec, PortBlock, QueueSpec, Sipp,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bytes per second of a recording: 8 kHz, 16-bit, two channels.
const WAV_BYTES_PER_S: u64 = 32_000;

/// Agent SIPp runs end with the call; this bounds the wait once the caller is done.
const AGENT_WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Recordings volume full
// ---------------------------------------------------------------------------------------

/// A tmpfs mounted by the test; unmounted (lazily, so a daemon holding a file cannot keep
/// it) when dropped, also when the test fails.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount (the test needs root and mount(8))");
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} failed (the test needs root): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { at: at.to_owned() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Writes zeros into `path` until the volume is full; returns the bytes written.
fn fill_volume(path: &Path) -> u64 {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("create the filler file");
    let chunk = vec![0u8; 4096];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) || e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the volume: {e}"),
        }
    }
    written
}

/// Fills the volume, then frees `leave` bytes of the filler.
fn fill_leaving(filler: &Path, leave: u64) {
    let total = fill_volume(filler);
    let keep = total.saturating_sub(leave);
    File::options()
        .write(true)
        .open(filler)
        .and_then(|f| f.set_len(keep))
        .expect("shrink the filler");
}

fn healthz(daemon: &Daemon) -> Value {
    let resp = daemon
        .get("/healthz")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    assert_eq!(resp.status, 200, "/healthz: {}", resp.text());
    serde_json::from_slice(&resp.body).expect("/healthz is JSON")
}

fn alarm_names(health: &Value) -> Vec<String> {
    health
        .get("alarms")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| str_field(x, "name").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of an unlabelled counter or the sum of a labelled one in `/metrics`.
fn metric_sum(daemon: &Daemon, name: &str, label: &str) -> f64 {
    let resp = daemon
        .get("/metrics")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    resp.text()
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One quiet call of `talk_ms` to the queue; returns the ended record (the latest call).
fn quiet_call(daemon: &Daemon, ports: &Arc<PortBlock>, agent_port: u16, talk_ms: u64) -> Value {
    let before = daemon.calls().map(|c| c.len()).unwrap_or(0);
    let agent = Sipp::agent(
        "agent 1001 (quiet)",
        "daemon_rec_uas_quiet.xml",
        agent_port,
        ports,
    )
    .spawn();
    let caller = Sipp::caller("daemon_rec_uac_quiet.xml", daemon.sip_addr(), ports)
        .key("x_record", "yes")
        .pause_ms(talk_ms)
        .spawn();
    let sip_call_id = caller.call_id().to_owned();
    let caller = caller.wait();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(
        &[&caller, &agent],
        &format!(
            "a call of {talk_ms} ms must go on to its normal end whatever the recordings volume does\n{}",
            daemon.report("")
        ),
    );
    let ended = daemon.wait_for_ended_calls(before + 1, Duration::from_secs(15));
    let call = ended
        .iter()
        .find(|c| str_field(c, "sip_call_id") == Some(sip_call_id.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "no record for {sip_call_id}: {}",
                pretty(&Value::Array(ended.clone()))
            )
        })
        .clone();
    // The record is written once the recording is closed: read it by id.
    daemon
        .call(call.get("id").expect("id"))
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)))
}

/// The WAV file of a call record, found under the recordings root by its id.
fn wav_of(root: &Path, call: &Value) -> Option<PathBuf> {
    let id = str_field(call, "id")?;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n == format!("{id}.wav").as_str())
            {
                return Some(path);
            }
        }
    }
    None
}

/// The file is a WAV whose RIFF and data sizes agree with its length, that `soxi` reads,
/// and whose SHA-256 is the one in the record; returns its audio duration in ms.
fn consistent_wav(c: &mut Checks, path: &Path, call: &Value) -> i64 {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let le32 =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    c.that(
        bytes.len() >= 44 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        format!("{} is not a RIFF/WAVE file", path.display()),
    );
    if bytes.len() >= 44 {
        c.that(
            le32(4) as usize + 8 == bytes.len(),
            format!("RIFF size {} + 8 != file length {}", le32(4), bytes.len()),
        );
        c.that(
            &bytes[36..40] == b"data" && le32(40) as usize + 44 == bytes.len(),
            format!(
                "data chunk size {} + 44 != file length {}",
                le32(40),
                bytes.len()
            ),
        );
    }
    let soxi = Command::new("soxi")
        .arg("-D")
        .arg(path)
        .output()
        .expect("run soxi (Debian package sox)");
    c.that(
        soxi.status.success(),
        format!(
            "soxi rejects {}: {}",
            path.display(),
            String::from_utf8_lossy(&soxi.stderr)
        ),
    );
    let sha = hex::encode(Sha256::digest(&bytes));
    c.str_eq(call, "recording_sha256", &sha);
    c.int_eq(call, "recording_bytes", bytes.len() as i64);
    (bytes.len().saturating_sub(44) as u64 * 1000 / WAV_BYTES_PER_S) as i64
}

#[test]
fn full_recordings_volume_leaves_calls_up_files_valid_and_recording_resumes() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let root = daemon.recordings_root();
    let _volume = Tmpfs::mount(&root, "1m");
    let filler = root.join("filler.bin");

    // 1: about 1.5 s of room for a 5 s call: the recording fails part-way.
    fill_leaving(&filler, WAV_BYTES_PER_S * 3 / 2);
    let cut = quiet_call(&daemon, &ports, agent_port, 5000);
    let health = healthz(&daemon);
    let mut c = Checks::new();
    c.str_eq(&cut, "outcome", "answered");
    c.int_in(&cut, "talk_ms", 4500, 7000);
    c.bool_eq(&cut, "interrupted", true);
    c.that(
        alarm_names(&health).contains(&"recordings_failing".to_owned())
            && str_field(&health, "status") == Some("degraded"),
        format!("/healthz during the outage: {health}"),
    );
    c.that(
        metric_sum(&daemon, "threering_recording_failures_total", "") >= 1.0,
        "threering_recording_failures_total did not count the failure",
    );
    c.that(
        metric_sum(&daemon, "threering_alarm", "recordings_failing") == 1.0,
        "threering_alarm{name=\"recordings_failing\"} is not 1",
    );
    match wav_of(&root, &cut) {
        Some(path) => {
            let ms = consistent_wav(&mut c, &path, &cut);
            c.that(
                (200..=2500).contains(&ms),
                format!("the cut recording holds {ms} ms; about 1.5 s of room was left"),
            );
            c.int_eq(&cut, "recording_ms", ms);
        }
        None => c.that(false, "the cut recording's file is gone"),
    }
    c.finish(&cut, "call 1: the volume fills up during the call");

    // 2: no room at all: answered, talked, hung up; nothing half-written is claimed.
    fill_volume(&filler);
    let unrecorded = quiet_call(&daemon, &ports, agent_port, 1500);
    let mut c = Checks::new();
    c.str_eq(&unrecorded, "outcome", "answered");
    c.int_in(&unrecorded, "talk_ms", 1300, 4000);
    if let Some(path) = wav_of(&root, &unrecorded) {
        consistent_wav(&mut c, &path, &unrecorded);
        c.bool_eq(&unrecorded, "interrupted", true);
    } else {
        c.null(&unrecorded, "recording_sha256");
    }
    c.finish(&unrecorded, "call 2: the volume is full from the start");

    // 3: space returns: the next call is recorded whole and the alarm clears.
    fs::remove_file(&filler).expect("remove the filler");
    let whole = quiet_call(&daemon, &ports, agent_port, 2000);
    let health = healthz(&daemon);
    let mut c = Checks::new();
    c.str_eq(&whole, "outcome", "answered");
    c.bool_eq(&whole, "interrupted", false);
    match wav_of(&root, &whole) {
        Some(path) => {
            let ms = consistent_wav(&mut c, &path, &whole);
            c.that(
                (1800..=3000).contains(&ms),
                format!("the recording after recovery holds {ms} ms of a 2 s call"),
            );
        }
        None => c.that(false, "the call after recovery was not recorded"),
    }
    c.that(
        str_field(&health, "status") == Some("ok") && alarm_names(&health).is_empty(),
        format!("/healthz after recovery: {health}"),
    );
    c.that(
        metric_sum(&daemon, "threering_alarm", "recordings_failing") == 0.0,
        "threering_alarm{name=\"recordings_failing\"} is not back to 0",
    );
    c.finish(&whole, "call 3: space is back");
}

// ---------------------------------------------------------------------------------------
// Clock jump
// ---------------------------------------------------------------------------------------

/// Debian's libfaketime (package `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[test]
fn wall_clock_jump_while_ringing_does_not_change_ring_times() {
    let _timing = timing_exclusive();
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing (apt-get install faketime)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let offset_file = dir.path().join("faketime");
    fs::write(&offset_file, "+0\n").expect("write the faketime offset");
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    )
    .env("LD_PRELOAD", LIBFAKETIME)
    .env(
        "FAKETIME_TIMESTAMP_FILE",
        &offset_file.display().to_string(),
    )
    // Re-read the offset file at most every second; fake the wall clock only.
    .env("FAKETIME_CACHE_DURATION", "1")
    .env("DONT_FAKE_MONOTONIC", "1");
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));

    let ring_ms: i64 = 4500;
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(ring_ms as u64)
        .spawn();
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(1000)
        .spawn();
    // While the agent rings: the wall clock goes back an hour.
    let rang_at = Instant::now();
    thread::sleep(Duration::from_millis(1500));
    fs::write(&offset_file, "-3600\n").expect("move the fake clock");
    let caller = caller.wait();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(&[&caller, &agent], "the call across the clock jump");
    assert!(rang_at.elapsed() >= Duration::from_millis(ring_ms as u64));

    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.int_in(&call, "caller_ring_ms", ring_ms - 100, ring_ms + 300);
    c.int_eq(&call, "rings", 5);
    c.bool_eq(&call, "three_ring_ok", false);
    c.int_in(&call, "talk_ms", 800, 2000);
    let attempt_ring = call
        .get("attempts")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|a| int_field(a, "ring_ms"));
    c.that(
        attempt_ring.is_some_and(|ms| (ring_ms - 100..=ring_ms + 300).contains(&ms)),
        format!("attempts[0].ring_ms is {attempt_ring:?}, want about {ring_ms}"),
    );
    // The jump really happened: the wall-clock stamps after it are an hour earlier.
    let stamp = |key: &str| {
        str_field(&call, key)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis())
    };
    let (started, ended) = (stamp("started_at"), stamp("ended_at"));
    c.that(
        matches!((started, ended), (Some(s), Some(e)) if s - e > 3_000_000),
        format!("the fake clock did not jump: started_at {started:?}, ended_at {ended:?}"),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
}
