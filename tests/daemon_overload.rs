//! Overload: a SIPp INVITE flood at five times the call-setup capacity measured by
//! `bench/setup_rate`, from two source addresses, against `threering serve` with a
//! moderate `[daemon] max_calls` and the default `[sip]` limits: most of it from a trunk
//! (which may call, with the trusted per-source limits), the rest from an unknown address
//! (which must authenticate, with the default per-source limits). The daemon must answer
//! the trunk only 200 (calls it took) or 503 (or drop), the unknown address only 407 or
//! 503 (or drop), stay up with bounded memory, and answer a normal call from a third
//! address within 5 s of the flood's end.
//!
//! Loopback only; the flood is bounded in rate, time and call count; every SIPp and the
//! daemon are stopped by their own PIDs. Needs SIPp 3.6 (`apt-get install sip-tester`).

mod daemon_common;

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_common::{
    free_port, http_get, parse_sipp_csv, read_lossy, sipp_binary, tail, timing_exclusive,
    AgentSpec, Daemon, DaemonSpec, PortBlock, QueueSpec, Sipp, SippFiles, SippOutcome, Transport,
    QUEUE_NUMBER, SCENARIO_DIR,
};

/// `setup_cps` that `bench/setup_rate` measured on this machine: 5× this is the flood
/// (release build, 2 shared cores, SIPp caller and agent on the same machine; see
/// bench/setup_rate.json).
const SETUP_CPS: f64 = 800.0;

/// The tests run the debug binary, which sets calls up slower: the same bench with
/// `THREERING_BIN=<target>/debug/threering` measured this `setup_cps` (so the flood is
/// scaled by DEBUG_SETUP_CPS / SETUP_CPS).
const DEBUG_SETUP_CPS: f64 = 250.0;

/// The flood: five times what the binary under test can set up, in calls per second.
fn flood_cps() -> u32 {
    let debug_factor = DEBUG_SETUP_CPS / SETUP_CPS;
    (5.0 * SETUP_CPS * debug_factor).round() as u32
}

/// How long the flood lasts (a bound on the test's load, with the call count).
const FLOOD_SECONDS: u32 = 10;

/// The trunk's share of the flood; the unknown source sends the rest.
const TRUNK_SHARE: f64 = 0.6;

/// `[daemon] max_calls` of the test daemon: moderate (the test port block holds RTP for
/// about 25 calls).
const MAX_CALLS: usize = 20;

/// Agents: more than `MAX_CALLS`, so every call the daemon takes finds one free.
const AGENTS: usize = MAX_CALLS + 10;

/// How long an answered call lasts before the agent hangs up.
const TALK_MS: u64 = 1000;

/// Memory the flood may add to the daemon's resident set.
const RSS_GROWTH_BOUND_KIB: u64 = 200 * 1024;

/// A normal call must be answered this soon after the flood stops.
const RECOVERY: Duration = Duration::from_secs(5);

/// A `[[trunks]]` address: calls without credentials, trusted per-source limits.
const TRUNK_SOURCE: &str = "127.0.0.2";
/// Neither trusted nor a trunk: challenged (407), default per-source limits.
const UNKNOWN_SOURCE: &str = "127.0.0.3";
/// Another trunk, placing the normal calls.
const NORMAL_SOURCE: &str = "127.0.0.4";

#[test]
fn a_flood_at_five_times_capacity_gets_only_503s_or_drops_and_calls_work_again_within_5_s() {
    let _exclusive = timing_exclusive();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let agent_ids: Vec<String> = (1..=AGENTS).map(|i| format!("{}", 2000 + i)).collect();
    let agent_refs: Vec<&str> = agent_ids.iter().map(String::as_str).collect();
    let mut queue = QueueSpec::consult("longest-idle", &agent_refs)
        .record(false)
        .max_wait_ms(20_000);
    queue.wrap_up_ms = 0;
    let spec = DaemonSpec::new(
        agent_ids
            .iter()
            .map(|id| AgentSpec::at(id, agent_port))
            .collect(),
        vec![queue],
    )
    .daemon_toml(&format!("max_calls = {MAX_CALLS}"))
    // Only the agents' SIPp is a trusted peer; the flooding trunk and the normal caller
    // are trunks; the unknown source is neither.
    .trusted_peers(&["127.0.0.1"])
    .extra_toml(&format!(
        "[survey]\nenabled = false\n\n[[trunks]]\nname = \"flooding\"\n\
         address = \"{TRUNK_SOURCE}\"\n\n[[trunks]]\nname = \"pbx\"\naddress = \"{NORMAL_SOURCE}\""
    ));
    let mut daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let pid = daemon.pid().expect("the daemon's pid");

    // One SIPp plays every agent: answers at once, hangs up after TALK_MS.
    let agent = Sipp::agent("agents", "flood_uas_hangup.xml", agent_port, &ports)
        .pause_ms(TALK_MS)
        .calls(1_000_000)
        .timeout(Duration::from_secs(180))
        .arg("-l")
        .arg("10000")
        .spawn();

    // A normal call works before the flood (so a failure after it is the flood's doing).
    let before = normal_call(&daemon, &ports);
    assert!(
        before.ok(),
        "{}",
        daemon.report(&format!(
            "a normal call failed before any flood\n{}",
            before.report
        ))
    );
    let baseline_kib = proc_status_kib(pid, "VmRSS").expect("the daemon's VmRSS");
    let sampler = RssSampler::start(pid);

    let total = flood_cps();
    assert!(total > 0, "SETUP_CPS and DEBUG_SETUP_CPS must be measured");
    let trunk_rate = (f64::from(total) * TRUNK_SHARE).round() as u32;
    let unknown_rate = total - trunk_rate;
    let started = Instant::now();
    let floods = [
        Flood::start(daemon.sip_addr(), TRUNK_SOURCE, trunk_rate, &ports),
        Flood::start(daemon.sip_addr(), UNKNOWN_SOURCE, unknown_rate, &ports),
    ];
    let flood_end = started + Duration::from_secs(u64::from(FLOOD_SECONDS));
    thread::sleep(flood_end.saturating_duration_since(Instant::now()));
    daemon.assert_running();

    // Within RECOVERY of the flood's end, a call from a third address is answered.
    let mut attempts = Vec::new();
    let answered_after = loop {
        let attempt_at = Instant::now();
        let outcome = normal_call(&daemon, &ports);
        let after = attempt_at.saturating_duration_since(flood_end) + response_time(&outcome);
        let ok = outcome.ok();
        attempts.push(outcome);
        if ok {
            break Some(after);
        }
        if Instant::now() >= flood_end + RECOVERY || attempts.len() >= 5 {
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };

    let counts: Vec<FloodCounts> = floods.into_iter().map(Flood::finish).collect();
    daemon.assert_running();
    let rss = sampler.stop();
    let peak_kib = proc_status_kib(pid, "VmHWM")
        .unwrap_or(0)
        .max(rss.iter().copied().max().unwrap_or(0));
    let metrics = sip_overload_metrics(&daemon);
    let agent = agent.kill();

    let summary = format!(
        "flood: {total} calls/s for {FLOOD_SECONDS} s (5 x {SETUP_CPS} setup_cps x debug \
         factor {:.2}), {trunk_rate}/s from the trunk {TRUNK_SOURCE} and {unknown_rate}/s \
         from the unknown {UNKNOWN_SOURCE}\n{}\n{}\ndaemon metrics: {metrics:?}\nRSS: baseline {} KiB, peak \
         {} KiB (+{} KiB), samples each second: {rss:?}\nnormal call from \
         {NORMAL_SOURCE}: {} attempt(s) (final responses: {:?}), answered {:?} after the \
         flood's end",
        DEBUG_SETUP_CPS / SETUP_CPS,
        counts[0].describe(),
        counts[1].describe(),
        baseline_kib,
        peak_kib,
        peak_kib.saturating_sub(baseline_kib),
        attempts.len(),
        attempts.iter().map(first_final).collect::<Vec<_>>(),
        answered_after,
    );
    eprintln!("{summary}");
    let fail = |what: &str| -> String {
        let attempt_reports: Vec<&str> = attempts.iter().map(|o| o.report.as_str()).collect();
        daemon.report(&format!(
            "{what}\n{summary}\n--- normal call attempts:\n{}\n--- agents:\n{}",
            attempt_reports.join("\n"),
            tail(&agent.report, 4000)
        ))
    };

    for c in &counts {
        assert_eq!(
            c.invites,
            c.planned,
            "{}",
            fail("the flood was not sent in full")
        );
        assert_eq!(
            c.unexpected,
            0,
            "{}",
            fail("a flooder got a response other than 100/180/183, 200, 407 or 503")
        );
        assert_eq!(
            c.ok + c.refused + c.challenged + c.no_final,
            c.invites,
            "{}",
            fail("the flood's INVITEs do not add up")
        );
        assert_eq!(
            c.byes,
            c.ok,
            "{}",
            fail("an answered flood call was not ended by the agent's BYE")
        );
    }
    let (trunk, unknown) = (&counts[0], &counts[1]);
    assert_eq!(
        trunk.challenged,
        0,
        "{}",
        fail("the trunk was challenged: it may call without credentials")
    );
    assert_eq!(
        unknown.ok,
        0,
        "{}",
        fail("the unknown source got a call without credentials")
    );
    assert!(
        unknown.refused + unknown.no_final > 0,
        "{}",
        fail("the unknown source's flood was not limited (503 or dropped)")
    );
    let refused: u64 = counts.iter().map(|c| c.refused).sum();
    let not_answered: u64 = counts.iter().map(|c| c.refused + c.no_final).sum();
    assert!(
        refused > 0 && not_answered > counts.iter().map(|c| c.ok).sum::<u64>(),
        "{}",
        fail("the flood did not overload the daemon: few 503s or drops")
    );
    let metric = |name: &str| metrics.get(name).copied().unwrap_or(0);
    assert!(
        metric("rejected/max_calls") > 0
            && metric("rejected/source_rate") + metric("dropped/source_rate") > 0,
        "{}",
        fail("both max_calls and the per-source rate should have refused requests")
    );
    assert!(
        peak_kib <= baseline_kib + RSS_GROWTH_BOUND_KIB,
        "{}",
        fail("the daemon's memory grew past the bound")
    );
    match answered_after {
        Some(after) if after <= RECOVERY => {}
        _ => panic!(
            "{}",
            fail("no normal call was answered within 5 s of the flood's end")
        ),
    }
}

/// One call from [`NORMAL_SOURCE`]: answered, then ended by the agent's BYE.
fn normal_call(daemon: &Daemon, ports: &PortBlock) -> SippOutcome {
    Sipp::caller("daemon_uac_wait_bye.xml", daemon.sip_addr(), ports)
        .arg("-i")
        .arg(NORMAL_SOURCE)
        .timeout(Duration::from_secs(4))
        .run()
}

/// The status line of the first final response in a SIPp caller's message trace.
fn first_final(outcome: &SippOutcome) -> Option<String> {
    outcome
        .messages
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SIP/2.0 "))
        .find(|rest| {
            rest.as_bytes()
                .first()
                .is_some_and(|c| (b'2'..=b'6').contains(c))
        })
        .map(str::to_owned)
}

/// The INVITE's response time SIPp measured (`ResponseTime1(C)`, `hh:mm:ss:micros`).
fn response_time(outcome: &SippOutcome) -> Duration {
    let Ok(stats) = &outcome.stats else {
        return Duration::ZERO;
    };
    let Some(value) = stats.columns.get("ResponseTime1(C)") else {
        return Duration::ZERO;
    };
    let parts: Vec<u64> = value.split(':').filter_map(|p| p.parse().ok()).collect();
    match parts[..] {
        [h, m, s, micros] => {
            Duration::from_secs(h * 3600 + m * 60 + s) + Duration::from_micros(micros)
        }
        _ => Duration::ZERO,
    }
}

/// A flooding SIPp (tests/sipp/flood_uac.xml) from one source address.
struct Flood {
    source: &'static str,
    rate: u32,
    planned: u64,
    child: Option<Child>,
    files: SippFiles,
    command: String,
    bound: Duration,
    started: Instant,
}

impl Flood {
    fn start(target: SocketAddr, source: &'static str, rate: u32, ports: &PortBlock) -> Flood {
        let sipp = sipp_binary();
        let files = SippFiles::new();
        let planned = u64::from(rate) * u64::from(FLOOD_SECONDS);
        let scenario = Path::new(SCENARIO_DIR).join("flood_uac.xml");
        // Calls: FLOOD_SECONDS of sending, then at most 10 s for a final response and
        // 20 s for the agent's BYE.
        let timeout_s = u64::from(FLOOD_SECONDS) + 45;
        let mut args = vec![target.to_string()];
        args.extend(files.args(
            &scenario,
            planned as u32,
            Transport::Udp,
            free_port(),
            timeout_s,
        ));
        args.extend(
            [
                "-i",
                source,
                "-s",
                QUEUE_NUMBER,
                "-r",
                &rate.to_string(),
                "-l",
                &planned.to_string(),
                "-mp",
                &ports.media_port().to_string(),
                "-trace_counts",
            ]
            .map(String::from),
        );
        let child = files.spawn(&sipp, &args);
        Flood {
            source,
            rate,
            planned,
            child: Some(child),
            files,
            command: format!("{} {}", sipp.display(), args.join(" ")),
            bound: Duration::from_secs(timeout_s + 15),
            started: Instant::now(),
        }
    }

    /// Waits for SIPp to end (killing it past its bound) and reads its counts.
    fn finish(mut self) -> FloodCounts {
        let mut child = self.child.take().expect("the flooder's SIPp");
        let finished = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if self.started.elapsed() < self.bound => {
                    thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
            }
        };
        let counts_file = fs::read_dir(self.files.path(""))
            .ok()
            .and_then(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.to_string_lossy().ends_with("_counts.csv"))
            })
            .map(|p| read_lossy(&p))
            .unwrap_or_default();
        let mut report = format!("--- command: {}\n", self.command);
        self.files.write_logs(&mut report, 3000);
        assert!(
            finished,
            "the flood from {} did not end within {:?}\n{report}",
            self.source, self.bound
        );
        let columns = parse_sipp_csv(&counts_file)
            .unwrap_or_else(|e| panic!("the flooder's -trace_counts file: {e}\n{report}"));
        FloodCounts::from_columns(self.source, self.rate, self.planned, &columns, &report)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one flooder saw, from its per-step counts (step numbers of flood_uac.xml).
#[derive(Debug)]
struct FloodCounts {
    source: &'static str,
    rate: u32,
    planned: u64,
    invites: u64,
    /// 200 OK: calls the daemon took.
    ok: u64,
    /// 503.
    refused: u64,
    /// 407: this source must authenticate.
    challenged: u64,
    /// No final response within 10 s: dropped.
    no_final: u64,
    /// Any response a step did not expect (a 500, a 480...).
    unexpected: u64,
    /// BYEs from the agent hanging up an answered call.
    byes: u64,
}

impl FloodCounts {
    fn from_columns(
        source: &'static str,
        rate: u32,
        planned: u64,
        columns: &HashMap<String, String>,
        report: &str,
    ) -> FloodCounts {
        let n = |name: &str| -> u64 {
            columns
                .get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no count {name:?} in {columns:?}\n{report}"))
        };
        let no_final = ["1_100", "2_180", "3_183", "4_503", "5_407", "6_200"]
            .iter()
            .map(|step| n(&format!("{step}_Timeout")))
            .sum();
        let unexpected = columns
            .iter()
            .filter(|(k, _)| k.ends_with("_Unexp"))
            .map(|(k, _)| n(k))
            .sum();
        FloodCounts {
            source,
            rate,
            planned,
            invites: n("0_INVITE_Sent"),
            ok: n("6_200_Recv"),
            refused: n("4_503_Recv"),
            challenged: n("5_407_Recv"),
            no_final,
            unexpected,
            byes: n("8_BYE_Recv"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} at {}/s: {} INVITEs ({} planned): {} answered 200, {} refused 503, {} \
             challenged 407, {} unanswered (dropped), {} unexpected, {} ended by the \
             agent's BYE",
            self.source,
            self.rate,
            self.invites,
            self.planned,
            self.ok,
            self.refused,
            self.challenged,
            self.no_final,
            self.unexpected,
            self.byes
        )
    }
}

/// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Samples the daemon's VmRSS once a second on a thread of its own.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut samples = Vec::new();
            // Bounded: the test stops it, and it never runs past 5 minutes.
            for _ in 0..300 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(kib) = proc_status_kib(pid, "VmRSS") {
                    samples.push(kib);
                }
                thread::sleep(Duration::from_secs(1));
            }
            samples
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// `threering_sip_rejected_total` and `threering_sip_dropped_total` from `/metrics`, as
/// `rejected/REASON` and `dropped/REASON`.
fn sip_overload_metrics(daemon: &Daemon) -> HashMap<String, u64> {
    let text = http_get(daemon.http_addr(), "/metrics", None)
        .map(|r| r.text())
        .unwrap_or_default();
    let mut found = HashMap::new();
    for line in text.lines() {
        for (metric, kind) in [
            ("threering_sip_rejected_total{reason=\"", "rejected"),
            ("threering_sip_dropped_total{reason=\"", "dropped"),
        ] {
            let Some(rest) = line.strip_prefix(metric) else {
                continue;
            };
            let Some((reason, value)) = rest.split_once("\"} ") else {
                continue;
            };
            if let Ok(v) = value.trim().parse::<f64>() {
                found.insert(format!("{kind}/{reason}"), v as u64);
            }
        }
    }
    found
}
