//! SIPp callers and agents against the daemon: [`Sipp`] builds one run (ports, media,
//! message trace), [`SippRun`] is a running SIPp, [`SippOutcome`] what it left (exit,
//! counters, RTP received, report); plus assertions over several outcomes.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::base::{
    free_port, read_lossy, sipp_binary, tail, unique_token, write_stats, SippFiles, SippStats,
    Transport, SCENARIO_DIR,
};
use super::ports::PortBlock;
use super::rtp_sink::RtpSink;
use super::QUEUE_NUMBER;

/// One SIPp process: a caller (client mode, `target` set) or an agent (server mode).
/// Every run gets its own `-mp` port from the test's [`PortBlock`] (SIPp binds media
/// ports even when it plays nothing, and picking them itself races with other SIPps),
/// and an RTP sink on that port + 4, the port the daemon_* scenarios put in their SDP.
#[derive(Clone, Debug)]
pub struct Sipp {
    label: String,
    scenario: PathBuf,
    target: Option<SocketAddr>,
    transport: Transport,
    local_port: u16,
    media_port: Option<u16>,
    pause_ms: Option<u64>,
    service: Option<String>,
    calls: u32,
    timeout: Duration,
    extra: Vec<String>,
    call_id_prefix: Option<String>,
    /// Bind the RTP sink on `media_port + 4` (true unless [`Sipp::without_sink`]).
    sink: bool,
    /// `-i`: the address SIPp sends from (127.0.0.1 unless [`Sipp::local_ip`]).
    local_ip: Option<String>,
}

impl Sipp {
    fn new(label: &str, scenario: &str, ports: &PortBlock) -> Sipp {
        let path = Path::new(SCENARIO_DIR).join(scenario);
        assert!(path.is_file(), "no SIPp scenario at {}", path.display());
        Sipp {
            label: label.to_string(),
            scenario: path,
            target: None,
            transport: Transport::Udp,
            local_port: free_port(),
            media_port: Some(ports.media_port()),
            pause_ms: None,
            service: None,
            calls: 1,
            timeout: Duration::from_secs(30),
            extra: Vec::new(),
            call_id_prefix: None,
            sink: true,
            local_ip: None,
        }
    }

    /// A caller: `scenario` run against `target`, calling [`QUEUE_NUMBER`] unless
    /// `service` says otherwise, with a Call-ID this harness knows (see
    /// [`SippRun::call_id`]).
    pub fn caller(scenario: &str, target: SocketAddr, ports: &PortBlock) -> Sipp {
        let mut s = Sipp::new("caller", scenario, ports);
        s.target = Some(target);
        s.service = Some(QUEUE_NUMBER.to_string());
        s.call_id_prefix = Some(format!("tr-{}", unique_token()));
        s
    }

    /// An agent: a server-mode scenario on `port` (its contact in the config).
    pub fn agent(label: &str, scenario: &str, port: u16, ports: &PortBlock) -> Sipp {
        let mut s = Sipp::new(label, scenario, ports);
        s.local_port = port;
        s
    }

    /// A client-mode scenario that is not a call (REGISTER), against `target`.
    pub fn client(label: &str, scenario: &str, target: SocketAddr, ports: &PortBlock) -> Sipp {
        let mut s = Sipp::new(label, scenario, ports);
        s.target = Some(target);
        s
    }

    pub fn transport(mut self, t: Transport) -> Self {
        self.transport = t;
        self
    }

    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = port;
        self
    }

    /// `-d ms`: the length of every `<pause/>` without attributes.
    pub fn pause_ms(mut self, ms: u64) -> Self {
        self.pause_ms = Some(ms);
        self
    }

    /// `-s`: the Request-URI user of the INVITE.
    pub fn service(mut self, s: &str) -> Self {
        self.service = Some(s.to_string());
        self
    }

    /// `-m`.
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n;
        self
    }

    /// `-timeout` (with `-timeout_error`).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// `-key name value` (a `[name]` keyword in the scenario).
    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.extra
            .extend(["-key".to_string(), name.to_string(), value.to_string()]);
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }

    /// The `-mp` port M of this run: its SDP names M + 4.
    pub fn media_port(&self) -> Option<u16> {
        self.media_port
    }

    /// `-i ip`: send from another loopback address (e.g. 127.0.0.2), which the daemon
    /// sees as another source.
    pub fn local_ip(mut self, ip: &str) -> Self {
        self.local_ip = Some(ip.to_string());
        self
    }

    /// Binds no RTP sink on `media_port + 4`: the test binds that port itself, to send
    /// media from the address the SDP names (and receive what the daemon relays there).
    pub fn without_sink(mut self) -> Self {
        self.sink = false;
        self
    }

    /// Starts SIPp (after binding its RTP sink). Agents: returns once SIPp listens.
    pub fn spawn(self) -> SippRun {
        let sipp = sipp_binary();
        let files = SippFiles::new();
        let messages = files.path("messages.log");
        let timeout_s = self.timeout.as_secs().max(1);

        let mut args: Vec<String> = Vec::new();
        if let Some(target) = self.target {
            args.push(target.to_string());
        }
        args.extend(files.args(
            &self.scenario,
            self.calls,
            self.transport,
            self.local_port,
            timeout_s,
        ));
        if let Some(ip) = &self.local_ip {
            if let Some(at) = args.iter().position(|a| a == "-i") {
                args[at + 1] = ip.clone();
            }
        }
        args.extend([
            "-trace_msg".into(),
            "-message_file".into(),
            messages.display().to_string(),
        ]);
        let mut sink = None;
        if let Some(m) = self.media_port {
            args.extend(["-mp".into(), m.to_string()]);
            if self.sink {
                sink = Some(RtpSink::bind(m + 4));
            }
        }
        if let Some(d) = self.pause_ms {
            args.extend(["-d".into(), d.to_string()]);
        }
        if let Some(s) = &self.service {
            args.extend(["-s".into(), s.clone()]);
        }
        if let Some(prefix) = &self.call_id_prefix {
            args.extend(["-cid_str".into(), format!("{prefix}-%u@%s")]);
        }
        args.extend(self.extra.iter().cloned());

        let child = files.spawn(&sipp, &args);

        let mut run = SippRun {
            label: self.label.clone(),
            child: Some(child),
            command: format!("{} {}", sipp.display(), args.join(" ")),
            timeout: Duration::from_secs(timeout_s),
            started: Instant::now(),
            call_id: self
                .call_id_prefix
                .as_ref()
                .map(|p| format!("{p}-1@127.0.0.1")),
            local_port: self.local_port,
            sink,
            messages,
            files,
        };
        if self.target.is_none() {
            run.wait_listening(self.transport);
        }
        run
    }

    /// Spawns and waits for the end (SIPp's own `-timeout` bounds it).
    pub fn run(self) -> SippOutcome {
        self.spawn().wait()
    }
}

/// Is something listening on 127.0.0.1:port (UDP bound, or TCP in LISTEN)? Read from
/// /proc/net so that checking never takes the port away from SIPp.
fn listening(transport: Transport, port: u16) -> bool {
    let (file, want_state) = match transport {
        Transport::Udp => ("/proc/net/udp", None),
        Transport::Tcp => ("/proc/net/tcp", Some("0A")),
    };
    let Ok(text) = fs::read_to_string(file) else {
        return false;
    };
    let needle = format!(":{port:04X}");
    text.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() > 3 && cols[1].ends_with(&needle) && want_state.is_none_or(|s| cols[3] == s)
    })
}

pub struct SippRun {
    label: String,
    child: Option<Child>,
    command: String,
    timeout: Duration,
    started: Instant,
    call_id: Option<String>,
    local_port: u16,
    sink: Option<RtpSink>,
    /// `-trace_msg`.
    messages: PathBuf,
    files: SippFiles,
}

impl SippRun {
    /// The Call-ID of the caller's (first) call.
    pub fn call_id(&self) -> &str {
        self.call_id
            .as_deref()
            .expect("call_id: only callers have a known Call-ID")
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIPp's message trace so far.
    pub fn messages_so_far(&self) -> String {
        read_lossy(&self.messages)
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn wait_listening(&mut self, transport: Transport) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !listening(transport, self.local_port) {
            if !self.running() {
                let report = self.collect(None).report;
                panic!(
                    "SIPp ({}) exited before listening on port {}\n{report}",
                    self.label, self.local_port
                );
            }
            if Instant::now() >= deadline {
                let report = self.collect(None).report;
                panic!(
                    "SIPp ({}) did not listen on port {} within 5 s\n{report}",
                    self.label, self.local_port
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for SIPp to exit: its `-timeout` plus 30 s at most, then it is killed and
    /// the outcome says so.
    pub fn wait(self) -> SippOutcome {
        let bound = self.timeout + Duration::from_secs(30);
        self.wait_at_most(bound)
    }

    /// Waits up to `bound` (from now); kills SIPp (its own PID) after that.
    pub fn wait_at_most(mut self, bound: Duration) -> SippOutcome {
        let deadline = Instant::now() + bound;
        let mut child = self.child.take().expect("SIPp child");
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Err(e) => panic!("waiting for SIPp: {e}"),
            }
        };
        self.collect(status)
    }

    /// Kills SIPp now (its own PID) and collects what it left.
    pub fn kill(mut self) -> SippOutcome {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.collect(None)
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> SippOutcome {
        let elapsed = self.started.elapsed();
        if let Some(sink) = &mut self.sink {
            sink.stop();
        }
        let stats = self.files.stats();
        let messages = read_lossy(&self.messages);
        let (rtp_received, rtp_sources) = match &self.sink {
            Some(s) => (Some(s.rtp_count()), s.sources()),
            None => (None, Vec::new()),
        };
        let mut report = String::new();
        let _ = writeln!(report, "=== SIPp {} ===", self.label);
        let _ = writeln!(report, "--- command: {}", self.command);
        let _ = writeln!(
            report,
            "--- exit: {} after {elapsed:?}",
            status.map_or_else(
                || "killed (did not finish in time)".into(),
                |s| s.to_string()
            )
        );
        write_stats(&mut report, &stats);
        if let Some(n) = rtp_received {
            let _ = writeln!(
                report,
                "--- RTP received at the SDP port: {n} from {rtp_sources:?}"
            );
        }
        let _ = writeln!(report, "--- messages (tail):\n{}", tail(&messages, 6000));
        self.files.write_logs(&mut report, 4000);
        SippOutcome {
            label: self.label.clone(),
            status,
            stats,
            rtp_received,
            messages,
            elapsed,
            report,
        }
    }
}

impl Drop for SippRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug)]
pub struct SippOutcome {
    pub label: String,
    /// None: killed because it did not finish in time.
    pub status: Option<ExitStatus>,
    pub stats: Result<SippStats, String>,
    /// RTP packets that reached the port this SIPp's SDP named (None: no media).
    pub rtp_received: Option<u64>,
    /// SIPp's message trace (`-trace_msg`).
    pub messages: String,
    pub elapsed: Duration,
    /// Command, exit, counters, screen, errors, messages: for failure messages.
    pub report: String,
}

impl SippOutcome {
    /// Exited 0 with `n` successful calls and none failed.
    pub fn ok_with(&self, n: u64) -> bool {
        self.status.is_some_and(|s| s.success())
            && matches!(&self.stats, Ok(s) if s.successful == n && s.failed == 0)
    }

    pub fn ok(&self) -> bool {
        self.ok_with(1)
    }

    pub fn rtp(&self) -> u64 {
        self.rtp_received.unwrap_or(0)
    }
}

/// Asserts every SIPp run succeeded (one successful call each), printing all their reports
/// (and `context`) if any did not.
pub fn assert_all_ok(runs: &[&SippOutcome], context: &str) {
    let bad: Vec<&&SippOutcome> = runs.iter().filter(|r| !r.ok()).collect();
    if bad.is_empty() {
        return;
    }
    let names: Vec<&str> = bad.iter().map(|r| r.label.as_str()).collect();
    let mut text = String::new();
    for r in runs {
        text.push_str(&r.report);
        text.push('\n');
    }
    panic!(
        "SIPp run(s) {names:?} did not complete their call (exit 0, SuccessfulCall(C)=1, \
         FailedCall(C)=0)\n{context}\n{text}"
    );
}

/// All reports, for failure messages of later checks.
pub fn reports(runs: &[&SippOutcome]) -> String {
    runs.iter()
        .map(|r| r.report.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Agent 1001's phone (`daemon_register_agent.xml`, password "pw1001") on UDP port
/// `agent_port`: it REGISTERs with `registrar`, then stays up 6 s and takes (out of call,
/// `daemon_uas_answer.xml`: 180, 300 ms, 200) the INVITE sent to its Contact. Returns once
/// the 200 to the REGISTER came; panics if it does not within 10 s.
pub fn registered_phone(
    label: &str,
    registrar: SocketAddr,
    ports: &PortBlock,
    agent_port: u16,
) -> SippRun {
    let flag_dir = tempfile::TempDir::new().expect("temp dir for the registered flag");
    let flag = flag_dir.path().join("registered");
    let ooc = Path::new(SCENARIO_DIR).join("daemon_uas_answer.xml");
    let mut phone = Sipp::client(label, "daemon_register_agent.xml", registrar, ports)
        .local_port(agent_port)
        .pause_ms(300)
        .key("registered_flag", &flag.display().to_string())
        .arg("-oocsf")
        .arg(&ooc.display().to_string())
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flag.exists() {
        if !phone.running() || Instant::now() >= deadline {
            let outcome = phone.wait_at_most(Duration::from_secs(1));
            panic!(
                "{label}: no REGISTER completed (401, then 200) within 10 s\n{}",
                outcome.report
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    phone
}
