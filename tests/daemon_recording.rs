//! Call recording end to end: SIPp callers → threering → SIPp agents over loopback, then
//! the WAV file on disk, the call record and `GET /api/calls/{id}/recording`.
//!
//! - Both channels carry the right party: caller and agent play the same pcap, the agent
//!   one second later; the left channel must match the decoded pcap where the caller
//!   started, the right where the agent did (A-law, and µ-law from a pcap made here).
//! - A test sender that reorders (within 60 ms windows), drops and duplicates packets:
//!   every packet's samples land where its timestamp says, dropped ones are silence, and
//!   the two channels stay aligned.
//! - `kill -9` during 20 recorded calls: after a restart every file is a valid WAV that
//!   `sox` reads, holds the audio up to about the kill, and its call is `interrupted` with
//!   the file's SHA-256.
//! - Byte ranges, pause/resume, and the recording policy (queue and `X-Record`).
//!
//! Needs SIPp with pcap play (`sip-tester`, run as root) and, for the crash test, `sox`
//! (Debian package `sox`): the tests fail, not skip, without them.

mod daemon_common;

#[path = "daemon_recording/audio.rs"]
mod audio;
#[path = "daemon_recording/files.rs"]
mod files;
#[path = "daemon_recording/sender.rs"]
mod sender;

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use audio::{best_lag, corr_in, decode_stream, rms, Pcap, G711};
use daemon_common::{
    assert_all_ok, free_port, http_request, int_field, pretty, reports, str_field,
    timing_exclusive, timing_shared, AgentSpec, Checks, Daemon, DaemonSpec, PortBlock, QueueSpec,
    Sipp, SippOutcome, PCAP, SCENARIO_DIR,
};
use files::{
    duration_is_talk_time, epoch_ms, id_of, recording_basics, recording_of, sha256_hex,
    sox_program, sox_verdict, wav_files,
};
use sender::{check_leg, send_plan, wait_sdp_address, ToneLeg, DROPPED, STREAM_PACKETS};
use serde_json::Value;

/// Agent SIPp runs end with the call; this bounds the wait once the caller is done.
const AGENT_WAIT: Duration = Duration::from_secs(15);

/// A channel must correlate at least this well with the audio its party sent.
const MIN_CORRELATION: f64 = 0.8;

// ---------------------------------------------------------------------------------------
// Helpers: daemons, scenarios, calls in progress
// ---------------------------------------------------------------------------------------

/// A daemon with one agent, 1001 at a fixed UDP contact, in `queue`.
fn one_agent_daemon(
    ports: &Arc<PortBlock>,
    queue: QueueSpec,
    spec: impl Fn(DaemonSpec) -> DaemonSpec,
) -> (Daemon, u16) {
    let agent_port = free_port();
    let base = DaemonSpec::new(vec![AgentSpec::at("1001", agent_port)], vec![queue]);
    let daemon = Daemon::start_with_ports(&spec(base), Arc::clone(ports));
    (daemon, agent_port)
}

/// Queue "consult" with agent 1001.
fn consult() -> QueueSpec {
    QueueSpec::consult("longest-idle", &["1001"])
}

/// A copy of `scenario` in `dir` that plays `pcap` instead of [`PCAP`]; its path, for
/// [`Sipp`] (which takes absolute paths as they are).
fn scenario_playing(dir: &Path, scenario: &str, pcap: &Path) -> String {
    let source = Path::new(SCENARIO_DIR).join(scenario);
    let text =
        fs::read_to_string(&source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    assert!(
        text.contains(PCAP),
        "{} does not play {PCAP}",
        source.display()
    );
    let copy = dir.join(scenario);
    fs::write(&copy, text.replace(PCAP, &pcap.display().to_string()))
        .unwrap_or_else(|e| panic!("write {}: {e}", copy.display()));
    copy.display().to_string()
}

/// Polls `GET /api/calls` until the call with this SIP Call-ID is answered and not ended;
/// returns its record.
fn wait_answered(daemon: &Daemon, sip_call_id: &str, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let calls = daemon
            .calls()
            .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
        if let Some(call) = calls.iter().find(|c| {
            str_field(c, "sip_call_id") == Some(sip_call_id)
                && c.get("answered_at").is_some_and(|v| !v.is_null())
                && c.get("ended_at").is_none_or(Value::is_null)
        }) {
            return call.clone();
        }
        if Instant::now() >= deadline {
            panic!(
                "{}",
                daemon.report(&format!(
                    "no answered call in progress with Call-ID {sip_call_id} after {wait:?}; calls: {}",
                    pretty(&Value::Array(calls))
                ))
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sample index of a time in ms.
fn at_ms(ms: f64) -> usize {
    (ms * 8.0).round().max(0.0) as usize
}

// ---------------------------------------------------------------------------------------
// 1, 2: both parties' audio, each on its own channel (A-law, µ-law)
// ---------------------------------------------------------------------------------------

/// The agent starts talking this long after its ACK; the caller at once.
const AGENT_DELAY_MS: u64 = 1000;

/// Caller plays the pcap from its ACK and hangs up after `TALK_MS`; the agent plays the
/// same pcap `AGENT_DELAY_MS` after its ACK. The WAV must be stereo 8 kHz 16-bit, its left
/// channel the caller's audio near the start, its right the agent's about a second later,
/// neither channel holding the other party, and last as long as the talk time.
fn both_parties_on_their_channels(codec: G711) {
    const TALK_MS: u64 = 4000;
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let (daemon, agent_port) = one_agent_daemon(&ports, consult(), |s| s);

    // The audio both sides play, and the scenarios that play it.
    let scratch = tempfile::TempDir::new().expect("temp dir");
    let (uac, uas, pcap) = match codec {
        G711::Alaw => (
            "daemon_rec_uac.xml".to_string(),
            "daemon_rec_uas.xml".to_string(),
            PathBuf::from(PCAP),
        ),
        G711::Ulaw => {
            let path = scratch.path().join("g711u.pcap");
            Pcap::read(Path::new(PCAP)).alaw_to_ulaw().write(&path);
            (
                scenario_playing(scratch.path(), "daemon_rec_uac.xml", &path),
                scenario_playing(scratch.path(), "daemon_rec_uas.xml", &path),
                path,
            )
        }
    };
    let packets = Pcap::read(&pcap).rtp();
    assert!(
        packets
            .iter()
            .all(|p| p.payload_type == codec.payload_type()),
        "{} holds packets of another payload type than {}",
        pcap.display(),
        codec.payload_type()
    );
    let reference = decode_stream(&packets, codec);
    assert!(
        reference.len() > 8000 * 5,
        "the pcap holds less than 5 s of audio"
    );

    let pt = codec.payload_type().to_string();
    let agent = Sipp::agent("agent 1001", &uas, agent_port, &ports)
        .key("pt", &pt)
        .key("codec", codec.sdp_name())
        .pause_ms(AGENT_DELAY_MS)
        .spawn();
    let caller = Sipp::caller(&uac, daemon.sip_addr(), &ports)
        .key("pt", &pt)
        .key("codec", codec.sdp_name())
        .pause_ms(TALK_MS)
        .run();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(&[&caller, &agent], &format!("{codec:?} call"));
    let call = daemon.the_one_call();
    let rec = recording_of(&daemon, &call);

    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.bool_eq(&call, "interrupted", false);
    recording_basics(&mut c, &call, &rec);
    duration_is_talk_time(&mut c, &call, &rec);

    // Where the pcap's audio sits in each channel. The overlap must hold 1 s at least.
    let (left, right) = (&rec.wav.left, &rec.wav.right);
    let max_lag = at_ms(2500.0);
    let l = best_lag(left, &reference, max_lag, 8000);
    let r = best_lag(right, &reference, max_lag, 8000);
    // Each channel against the other party's placement: nothing of it may be there.
    let left_at_agent = corr_in(left, &reference, r.lag, r.lag, left.len());
    let right_at_caller = corr_in(right, &reference, l.lag, l.lag, right.len());
    let summary = format!(
        "left (caller): best correlation {:.3} at {:.1} ms; right (agent): {:.3} at {:.1} ms; \
         left at the agent's lag {left_at_agent:.3}; right at the caller's lag \
         {right_at_caller:.3}; file {} ms, RMS left {:.0}, right {:.0}",
        l.corr,
        l.lag_ms(),
        r.corr,
        r.lag_ms(),
        rec.wav.duration_ms(),
        rms(left),
        rms(right)
    );
    eprintln!("{codec:?}: {summary}");
    c.that(
        l.corr > MIN_CORRELATION,
        format!("left channel: the caller's audio is not there (want correlation > {MIN_CORRELATION}): {summary}"),
    );
    c.that(
        r.corr > MIN_CORRELATION,
        format!("right channel: the agent's audio is not there (want correlation > {MIN_CORRELATION}): {summary}"),
    );
    // The caller plays on its ACK (just after the answer), the agent 1 s after its own.
    c.that(
        l.lag_ms() < 500.0,
        format!(
            "left channel: the caller's audio should start within 500 ms of the answer: {summary}"
        ),
    );
    let gap = r.lag_ms() - l.lag_ms();
    c.that(
        (700.0..=1400.0).contains(&gap),
        format!(
            "the agent's audio (right) should start about {AGENT_DELAY_MS} ms after the caller's (left), got {gap:.1} ms: {summary}"
        ),
    );
    c.that(
        left_at_agent.abs() < 0.3 && right_at_caller.abs() < 0.3,
        format!("a channel also holds the other party's audio: {summary}"),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
}

#[test]
fn alaw_call_is_recorded_caller_left_agent_right() {
    both_parties_on_their_channels(G711::Alaw);
}

#[test]
fn ulaw_call_is_recorded_caller_left_agent_right() {
    both_parties_on_their_channels(G711::Ulaw);
}

// ---------------------------------------------------------------------------------------
// 3: reordered, dropped and duplicated packets
// ---------------------------------------------------------------------------------------

/// The test sends both legs' RTP itself, from the addresses in the caller's and the
/// agent's SDP to the daemon's ports from its 200 OK and its INVITE: the agent's stream in
/// order, the caller's shuffled within 60 ms windows, 5 % dropped, two duplicated, with
/// sequence numbers and timestamps wrapping around. Every packet must be in the file
/// exactly where its timestamp puts it, each dropped one 20 ms of silence, and packet k of
/// both legs (sent at the same instant) at the same place.
#[test]
fn reordered_dropped_and_duplicated_packets_keep_the_channels_aligned() {
    const TALK_MS: u64 = 4500;
    let _exclusive = timing_exclusive();
    let ports = Arc::new(PortBlock::new());
    let (daemon, agent_port) = one_agent_daemon(&ports, consult(), |s| s);

    let agent_sipp = Sipp::agent(
        "agent 1001 (quiet)",
        "daemon_rec_uas_quiet.xml",
        agent_port,
        &ports,
    )
    .without_sink();
    let caller_sipp = Sipp::caller("daemon_rec_uac_quiet.xml", daemon.sip_addr(), &ports)
        .key("x_record", "yes")
        .pause_ms(TALK_MS)
        .without_sink();
    let bind = |sipp: &Sipp| {
        let port = sipp.media_port().expect("a media port") + 4;
        UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("bind the sender's socket 127.0.0.1:{port}: {e}"))
    };
    let (caller_socket, agent_socket) = (bind(&caller_sipp), bind(&agent_sipp));
    let mut agent_run = agent_sipp.spawn();
    let mut caller_run = caller_sipp.spawn();
    let call_id = caller_run.call_id().to_string();
    let to_caller_side = wait_sdp_address(&mut caller_run, "SIP/2.0 200", "200 OK to the caller");
    let to_agent_side = wait_sdp_address(&mut agent_run, "INVITE ", "INVITE to the agent");

    let (caller, agent) = (ToneLeg::caller(), ToneLeg::agent());
    let plan = send_plan(&caller, &agent);

    // The call is answered (the caller has its 200): send from 200 ms on.
    thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let mut late = Duration::ZERO;
    for (at, from_caller, packet) in &plan {
        let when = start + Duration::from_millis(*at);
        let now = Instant::now();
        if when > now {
            thread::sleep(when - now);
        } else {
            late = late.max(now - when);
        }
        let (socket, to) = if *from_caller {
            (&caller_socket, to_caller_side)
        } else {
            (&agent_socket, to_agent_side)
        };
        socket
            .send_to(packet, to)
            .unwrap_or_else(|e| panic!("send RTP to {to}: {e}"));
    }
    let caller_run = caller_run.wait();
    let agent_run = agent_run.wait_at_most(AGENT_WAIT);
    let runs: [&SippOutcome; 2] = [&caller_run, &agent_run];
    assert_all_ok(&runs, "quiet caller and agent; the test sends the media");
    let call = daemon.the_one_call();
    let rec = recording_of(&daemon, &call);

    let mut c = Checks::new();
    c.str_eq(&call, "sip_call_id", &call_id);
    recording_basics(&mut c, &call, &rec);
    duration_is_talk_time(&mut c, &call, &rec);
    let caller_sent: Vec<bool> = (0..STREAM_PACKETS).map(|k| !DROPPED.contains(&k)).collect();
    let (mut left_line, mut right_line) = (String::new(), String::new());
    let p0 = check_leg(
        &mut c,
        "left (caller)",
        &rec.wav.left,
        &caller,
        &caller_sent,
        &mut left_line,
    );
    let q0 = check_leg(
        &mut c,
        "right (agent)",
        &rec.wav.right,
        &agent,
        &[true; STREAM_PACKETS],
        &mut right_line,
    );
    if let (Some(p0), Some(q0)) = (p0, q0) {
        c.that(
            p0.abs_diff(q0) <= 160,
            format!(
                "the legs' first packets, sent together, are {} ms apart in the file (left at \
                 sample {p0}, right at {q0})",
                p0.abs_diff(q0) as f64 / 8.0
            ),
        );
    }
    let summary = format!(
        "sender: caller's RTP from {} to {to_caller_side}, agent's from {} to \
         {to_agent_side}, at most {late:?} behind schedule\nleft  (caller, 1 char per 20 ms \
         packet): {left_line}\nright (agent): {right_line}",
        caller_socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        agent_socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    );
    eprintln!("{summary}");
    let context = format!("{summary}\n{}", reports(&runs));
    c.finish(&call, &context);
}

// ---------------------------------------------------------------------------------------
// 4: kill -9 during 20 recorded calls
// ---------------------------------------------------------------------------------------

/// 20 calls, each caller and agent talking (the pcap both ways) and holding 6 s; the
/// daemon gets SIGKILL 3 s after the last one was answered and is started again on the
/// same config and database. Every call must have a row marked `interrupted` whose
/// `recording_sha256` is its file's; every file must be a WAV whose header matches its
/// length, that soxi and sox accept, holding the talk up to the kill less 1 s at most, both
/// parties' audio in it.
#[test]
fn kill_9_during_20_recorded_calls_leaves_playable_files_and_interrupted_rows() {
    const CALLS: usize = 20;
    const HOLD_MS: u64 = 6000;
    // Fail before any call if sox is missing.
    sox_program("soxi");
    sox_program("sox");
    let _exclusive = timing_exclusive();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let ids: Vec<String> = (0..CALLS).map(|i| format!("{}", 2001 + i)).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let spec = DaemonSpec::new(
        ids.iter().map(|id| AgentSpec::at(id, agent_port)).collect(),
        vec![QueueSpec::consult("longest-idle", &id_refs)],
    );
    let mut daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));

    // One SIPp serves all 20 agents (their contacts differ in the user part only).
    let agents = Sipp::agent("agents 2001-2020", "daemon_rec_uas.xml", agent_port, &ports)
        .key("pt", "8")
        .key("codec", "PCMA")
        .pause_ms(AGENT_DELAY_MS)
        .calls(CALLS as u32)
        .spawn();
    let callers = Sipp::caller("daemon_rec_uac.xml", daemon.sip_addr(), &ports)
        .key("pt", "8")
        .key("codec", "PCMA")
        .pause_ms(HOLD_MS)
        .calls(CALLS as u32)
        .arg("-r")
        .arg("40")
        .arg("-l")
        .arg(&CALLS.to_string())
        .spawn();
    let prefix = callers
        .call_id()
        .strip_suffix("-1@127.0.0.1")
        .expect("caller Call-IDs are PREFIX-N@127.0.0.1")
        .to_string();
    let ours = |calls: &[Value]| -> Vec<Value> {
        calls
            .iter()
            .filter(|c| str_field(c, "sip_call_id").is_some_and(|s| s.starts_with(&prefix)))
            .cloned()
            .collect()
    };

    // All 20 answered and in progress.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let calls = ours(
            &daemon
                .calls()
                .unwrap_or_else(|e| panic!("{}", daemon.report(&e))),
        );
        let talking = calls
            .iter()
            .filter(|c| {
                c.get("answered_at").is_some_and(|v| !v.is_null())
                    && c.get("ended_at").is_none_or(Value::is_null)
            })
            .count();
        if talking == CALLS {
            break;
        }
        if Instant::now() >= deadline {
            let callers = callers.kill();
            let agents = agents.kill();
            panic!(
                "{}\n{}",
                daemon.report(&format!(
                    "{talking} of {CALLS} calls answered and in progress after 15 s: {}",
                    pretty(&Value::Array(calls))
                )),
                reports(&[&callers, &agents])
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(3000));
    let pid = daemon.pid();
    let killed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    daemon.kill();
    let callers = callers.kill();
    let agents = agents.kill();
    let runs = [&callers, &agents];
    let left_behind = wav_files(&daemon.recordings_root()).len();

    daemon.start_again();
    let calls = ours(
        &daemon
            .calls()
            .unwrap_or_else(|e| panic!("{}", daemon.report(&e))),
    );
    let mut c = Checks::new();
    c.that(
        calls.len() == CALLS,
        format!(
            "{} of the {CALLS} calls have a row after the restart ({left_behind} WAV files were \
             left by the killed daemon)",
            calls.len()
        ),
    );
    let mut lines = Vec::new();
    for listed in &calls {
        let call = daemon
            .call(&listed["id"])
            .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
        let id = id_of(&call);
        let mut one = Checks::new();
        one.bool_eq(&call, "interrupted", true);
        let rec = recording_of(&daemon, &call);
        recording_basics(&mut one, &call, &rec);
        let answered = epoch_ms(&call, "answered_at").unwrap_or(killed_at);
        let talked = killed_at - answered;
        match sox_verdict(&rec.path, rec.wav.frames()) {
            Ok(said) => lines.push(format!(
                "{id}: talked {talked} ms before the kill, file {} ms; {said}",
                rec.wav.duration_ms()
            )),
            Err(e) => one.that(
                false,
                format!("sox does not accept {}: {e}", rec.path.display()),
            ),
        }
        one.that(
            rec.wav.duration_ms() >= talked - 1000,
            format!(
                "the file holds {} ms; the call talked {talked} ms before the kill (want at \
                 least {} ms)",
                rec.wav.duration_ms(),
                talked - 1000
            ),
        );
        // Both parties talk (the agent from 1 s in): neither channel may be empty. Half a
        // second each is asked, below what a file of the minimum length above holds.
        for (name, channel) in [("left", &rec.wav.left), ("right", &rec.wav.right)] {
            let sounding = channel.iter().filter(|&&s| s != 0).count();
            one.that(
                sounding >= 4000,
                format!("{name} channel: only {sounding} non-zero samples (want 0.5 s at least)"),
            );
        }
        for failure in one.into_failures() {
            c.that(
                false,
                format!("call {id} ({}): {failure}", rec.path.display()),
            );
        }
    }
    eprintln!(
        "killed pid {pid:?} at {killed_at}; {left_behind} files left; after restart:\n{}",
        lines.join("\n")
    );
    c.finish(
        &Value::Array(calls.clone()),
        &format!("{}\n{}", daemon.report("daemon output"), reports(&runs)),
    );
}

// ---------------------------------------------------------------------------------------
// 5: byte ranges
// ---------------------------------------------------------------------------------------

/// A short recorded call, fetched whole and in ranges.
#[test]
fn recording_is_served_whole_and_in_byte_ranges() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let (daemon, agent_port) = one_agent_daemon(&ports, consult(), |s| s);
    let agent = Sipp::agent("agent 1001", "daemon_rec_uas.xml", agent_port, &ports)
        .key("pt", "8")
        .key("codec", "PCMA")
        .spawn();
    let caller = Sipp::caller("daemon_rec_uac.xml", daemon.sip_addr(), &ports)
        .key("pt", "8")
        .key("codec", "PCMA")
        .pause_ms(1500)
        .run();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(&[&caller, &agent], "");
    let call = daemon.the_one_call();
    let rec = recording_of(&daemon, &call);
    let (file, len) = (&rec.bytes, rec.bytes.len());
    let url = format!("/api/calls/{}/recording", id_of(&call));
    let get = |headers: &[(&str, &str)]| {
        daemon
            .get_with(&url, headers)
            .unwrap_or_else(|e| panic!("{}", daemon.report(&e)))
    };

    let mut c = Checks::new();
    recording_basics(&mut c, &call, &rec);
    c.that(len > 1000, format!("the file has only {len} bytes"));

    let whole = get(&[]);
    c.that(
        whole.status == 200,
        format!("GET {url}: status {}, want 200", whole.status),
    );
    c.that(
        whole.body == *file,
        format!(
            "GET {url}: {} bytes that are not the file's {len}",
            whole.body.len()
        ),
    );
    c.str_eq(&call, "recording_sha256", &sha256_hex(&whole.body));
    c.that(
        whole.header("content-type") == Some("audio/wav"),
        format!(
            "GET {url}: Content-Type {:?}, want audio/wav",
            whole.header("content-type")
        ),
    );

    let mut range = |spec: &str, status: u16, content_range: &str, bytes: Option<&[u8]>| {
        let resp = get(&[("Range", spec)]);
        c.that(
            resp.status == status,
            format!("Range: {spec}: status {}, want {status}", resp.status),
        );
        c.that(
            resp.header("content-range") == Some(content_range),
            format!(
                "Range: {spec}: Content-Range {:?}, want {content_range:?}",
                resp.header("content-range")
            ),
        );
        if let Some(bytes) = bytes {
            c.that(
                resp.body == bytes,
                format!(
                    "Range: {spec}: got {} bytes {:02x?}…, want the file's {} bytes {:02x?}…",
                    resp.body.len(),
                    &resp.body[..resp.body.len().min(16)],
                    bytes.len(),
                    &bytes[..bytes.len().min(16)]
                ),
            );
        }
    };
    range(
        "bytes=0-99",
        206,
        &format!("bytes 0-99/{len}"),
        Some(&file[..100]),
    );
    range(
        "bytes=1000-1999",
        206,
        &format!("bytes 1000-1999/{len}"),
        Some(&file[1000..2000]),
    );
    range(
        "bytes=-100",
        206,
        &format!("bytes {}-{}/{len}", len - 100, len - 1),
        Some(&file[len - 100..]),
    );
    range(
        &format!("bytes={len}-"),
        416,
        &format!("bytes */{len}"),
        None,
    );

    let anonymous = http_request(daemon.http_addr(), "GET", &url, None, &[])
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    c.that(
        anonymous.status == 401,
        format!(
            "GET {url} without a token: status {}, want 401",
            anonymous.status
        ),
    );
    let unknown = daemon
        .get("/api/calls/no-such-call/recording")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    c.that(
        unknown.status == 404,
        format!(
            "GET the recording of an unknown call: status {}, want 404",
            unknown.status
        ),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
}

// ---------------------------------------------------------------------------------------
// 6: pause and resume
// ---------------------------------------------------------------------------------------

/// Pauses a call's recording about 2 s after the answer for about 1 s. The span is listed
/// on the call and is digital silence in both channels, while the pcap's audio of each
/// party is in the file just before and just after it.
#[test]
fn paused_span_is_listed_and_silent_in_both_channels() {
    const TALK_MS: u64 = 5000;
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let (daemon, agent_port) = one_agent_daemon(&ports, consult(), |s| s);
    let agent = Sipp::agent("agent 1001", "daemon_rec_uas.xml", agent_port, &ports)
        .key("pt", "8")
        .key("codec", "PCMA")
        .pause_ms(AGENT_DELAY_MS)
        .spawn();
    let caller = Sipp::caller("daemon_rec_uac.xml", daemon.sip_addr(), &ports)
        .key("pt", "8")
        .key("codec", "PCMA")
        .pause_ms(TALK_MS)
        .spawn();
    let live = wait_answered(&daemon, caller.call_id(), Duration::from_secs(10));
    let id = id_of(&live);
    let post = |what: &str| {
        daemon
            .post(&format!("/api/calls/{id}/recording/{what}"))
            .unwrap_or_else(|e| panic!("{}", daemon.report(&e)))
    };
    thread::sleep(Duration::from_millis(2000));
    let paused = post("pause");
    thread::sleep(Duration::from_millis(1000));
    let resumed = post("resume");
    let unknown = daemon
        .post("/api/calls/no-such-call/recording/pause")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    let caller = caller.wait();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(&[&caller, &agent], "");
    let call = daemon.the_one_call();
    let rec = recording_of(&daemon, &call);

    let mut c = Checks::new();
    c.that(
        paused.status == 200,
        format!("POST pause: status {}: {}", paused.status, paused.text()),
    );
    c.that(
        resumed.status == 200,
        format!("POST resume: status {}: {}", resumed.status, resumed.text()),
    );
    c.that(
        unknown.status == 404,
        format!(
            "POST pause for an unknown call: status {}, want 404",
            unknown.status
        ),
    );
    recording_basics(&mut c, &call, &rec);
    duration_is_talk_time(&mut c, &call, &rec);
    let spans: Vec<(i64, Option<i64>)> = call
        .get("paused_spans")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|s| {
                    (
                        int_field(s, "start_ms").unwrap_or(-1),
                        int_field(s, "end_ms"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let reference = decode_stream(&Pcap::read(Path::new(PCAP)).rtp(), G711::Alaw);
    let (left, right) = (&rec.wav.left, &rec.wav.right);
    let mut found = String::new();
    match spans.as_slice() {
        [(start, Some(end))] => {
            c.that(
                (900..=1400).contains(&(end - start)) && (1500..=3000).contains(start),
                format!(
                    "paused_spans: one span of about 1000 ms starting about 2000 ms in \
                     expected, got {start}..{end}"
                ),
            );
            let (a, b) = (*start as usize * 8, (*end as usize * 8).min(left.len()));
            for (name, channel) in [("left", left), ("right", right)] {
                let loud = channel[a..b].iter().filter(|&&s| s != 0).count();
                c.that(
                    loud == 0,
                    format!("{name} channel: {loud} non-zero samples in the paused span {start}..{end} ms"),
                );
            }
            // The party's audio is there in the 400 ms before and after the span.
            for (name, channel) in [("left (caller)", left), ("right (agent)", right)] {
                let at = best_lag(channel, &reference, at_ms(2500.0), 8000);
                let before = corr_in(
                    channel,
                    &reference,
                    at.lag,
                    a.saturating_sub(at_ms(400.0)),
                    a,
                );
                let after = corr_in(channel, &reference, at.lag, b, b + at_ms(400.0));
                found.push_str(&format!(
                    "{name}: pcap at {:.1} ms (correlation {:.3}); 400 ms before the span \
                     {before:.3}, after {after:.3}\n",
                    at.lag_ms(),
                    at.corr
                ));
                c.that(
                    before > MIN_CORRELATION && after > MIN_CORRELATION,
                    format!(
                        "{name}: the pcap's audio is not there around the paused span \
                         (correlation before {before:.3}, after {after:.3}, want > {MIN_CORRELATION})"
                    ),
                );
            }
        }
        other => c.that(
            false,
            format!("paused_spans: expected exactly one closed span, got {other:?}"),
        ),
    }
    eprintln!(
        "pause: {} / resume: {}\n{found}",
        paused.text(),
        resumed.text()
    );
    c.finish(&call, &format!("{found}{}", reports(&[&caller, &agent])));
}

// ---------------------------------------------------------------------------------------
// 7: policy
// ---------------------------------------------------------------------------------------

/// One quiet call to `service` with `X-Record: x_record`; while it is up, POST pause must
/// answer `pause_status`. Returns the daemon (for its recordings root) and the call.
fn policy_call(
    queue: QueueSpec,
    service: &str,
    x_record: &str,
    spec: impl Fn(DaemonSpec) -> DaemonSpec,
    pause_status: u16,
) -> (Daemon, Value, String) {
    let ports = Arc::new(PortBlock::new());
    let (daemon, agent_port) = one_agent_daemon(&ports, queue, spec);
    let agent = Sipp::agent(
        "agent 1001 (quiet)",
        "daemon_rec_uas_quiet.xml",
        agent_port,
        &ports,
    )
    .spawn();
    let caller = Sipp::caller("daemon_rec_uac_quiet.xml", daemon.sip_addr(), &ports)
        .service(service)
        .key("x_record", x_record)
        .pause_ms(1500)
        .spawn();
    let live = wait_answered(&daemon, caller.call_id(), Duration::from_secs(10));
    let pause = daemon
        .post(&format!("/api/calls/{}/recording/pause", id_of(&live)))
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    let caller = caller.wait();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(&[&caller, &agent], "");
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.that(
        pause.status == pause_status,
        format!(
            "POST pause during the call: status {} ({}), want {pause_status}",
            pause.status,
            pause.text()
        ),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
    let context = reports(&[&caller, &agent]);
    (daemon, call, context)
}

/// The call has no recording: no URL, no details, no file, and the recording endpoint
/// answers 404.
fn not_recorded(daemon: &Daemon, call: &Value, context: &str) {
    let mut c = Checks::new();
    for key in [
        "recording",
        "recording_sha256",
        "recording_ms",
        "recording_bytes",
    ] {
        c.null(call, key);
    }
    let files = wav_files(&daemon.recordings_root());
    c.that(
        files.is_empty(),
        format!("WAV files were written: {files:?}"),
    );
    let resp = daemon
        .get(&format!("/api/calls/{}/recording", id_of(call)))
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    c.that(
        resp.status == 404,
        format!(
            "GET the recording of an unrecorded call: status {}, want 404",
            resp.status
        ),
    );
    c.finish(call, context);
}

#[test]
fn queue_with_record_false_records_nothing() {
    let _shared = timing_shared();
    let (daemon, call, context) = policy_call(
        consult().record(false),
        daemon_common::QUEUE_NUMBER,
        "yes",
        |s| s,
        409,
    );
    not_recorded(&daemon, &call, &context);
}

#[test]
fn x_record_no_from_a_trusted_peer_records_nothing() {
    let _shared = timing_shared();
    // Loopback is trusted by default.
    let (daemon, call, context) =
        policy_call(consult(), daemon_common::QUEUE_NUMBER, "no", |s| s, 409);
    not_recorded(&daemon, &call, &context);
}

#[test]
fn x_record_no_from_an_untrusted_peer_is_ignored() {
    let _shared = timing_shared();
    // Only a documentation address is trusted: loopback's X-Record is not honoured.
    // Loopback is a trunk, so its calls are still taken without credentials.
    let (daemon, call, context) = policy_call(
        consult(),
        daemon_common::QUEUE_NUMBER,
        "no",
        |s| {
            s.trusted_peers(&["192.0.2.1"])
                .extra_toml("[[trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1\"")
        },
        200,
    );
    let rec = recording_of(&daemon, &call);
    let mut c = Checks::new();
    recording_basics(&mut c, &call, &rec);
    c.finish(&call, &context);
}
