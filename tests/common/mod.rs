//! Helpers shared by the socket-level integration tests: free loopback ports, a running
//! `threering sip-echo`, a SIPp runner with parsed statistics, raw SIP over UDP and TCP,
//! and an OPTIONS liveness probe.
//!
//! Everything here talks to 127.0.0.1 only, and every wait is bounded.
//! Each test binary uses a different subset of these helpers.
//!
//! `tests/daemon_common/mod.rs` includes this module too and re-exports the helpers it
//! shares with the daemon tests (ports, text, SIPp binary and statistics, raw SIP over
//! UDP, the OPTIONS probe, the torture corpus), so each of those exists only here.
//!
//! Debugging aids: sip-echo inherits the environment (THREERING_LOG=debug makes it log
//! more; its stderr is shown when a test fails), and THREERING_SIPP_ARGS adds arguments
//! to every SIPp run (e.g. "-trace_msg -message_file /tmp/sipp.msg").
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary under test.
pub const THREERING: &str = env!("CARGO_BIN_EXE_threering");

/// Where the SIPp scenarios of these tests live.
pub const SCENARIO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

/// The RFC 4475 torture messages (`*.dat`).
pub const TORTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/rfc4475");

/// How long sip-echo may take to print its `listening` lines.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The one user every sip-echo started here knows.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";
pub const REALM: &str = "threering";

// ---------------------------------------------------------------------------------------
// Serialising load tests
// ---------------------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests of one binary run on parallel threads; timing-sensitive ones (SIPp load, "no
/// retransmissions") take this lock so that they do not compete for the machine's 2 cores.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port number that was free for both UDP and TCP a moment ago (both sockets
/// are released before returning). The same number is never handed out twice by one test
/// process, so parallel tests do not collide with each other.
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..200 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("UDP local_addr").port();
        if handed.contains(&port) {
            continue;
        }
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            drop(tcp);
            drop(udp);
            handed.insert(port);
            return port;
        }
    }
    panic!("could not find a loopback port free for both UDP and TCP in 200 tries");
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

// ---------------------------------------------------------------------------------------
// Small text helpers
// ---------------------------------------------------------------------------------------

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

pub fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Bytes shown as text for an assertion message: printable ASCII kept, the rest escaped.
pub fn show_bytes(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n\n"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        let _ = write!(out, "... ({} bytes in all)", bytes.len());
    }
    out
}

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A token unique within this test process (for branches, tags and Call-IDs).
pub fn unique_token() -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{}x{n}", std::process::id())
}

// ---------------------------------------------------------------------------------------
// The RFC 4475 torture corpus
// ---------------------------------------------------------------------------------------

/// The torture corpus (`TORTURE_DIR/*.dat`), sorted; fails unless all 50 files are there.
pub fn torture_files() -> Vec<PathBuf> {
    let dir = Path::new(TORTURE_DIR);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the torture corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("read_dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "expected the 50 RFC 4475 .dat files in {}, found {}",
        dir.display(),
        files.len()
    );
    files
}

// ---------------------------------------------------------------------------------------
// sip-echo
// ---------------------------------------------------------------------------------------

/// How to start `threering sip-echo`.
#[derive(Clone, Debug)]
pub struct SipEchoConfig {
    pub ring_ms: u64,
    pub t1_ms: u64,
    pub realm: String,
    /// `NAME:PASSWORD` pairs, one `--user` each.
    pub users: Vec<(String, String)>,
    /// Also listen on UDP [::1] (same port number as the IPv4 listeners).
    pub ipv6_udp: bool,
}

impl Default for SipEchoConfig {
    fn default() -> Self {
        SipEchoConfig {
            ring_ms: 0,
            t1_ms: 500,
            realm: REALM.to_string(),
            users: vec![(USER.to_string(), PASSWORD.to_string())],
            ipv6_udp: false,
        }
    }
}

/// A running `threering sip-echo`, killed (by its own PID) when dropped.
pub struct SipEcho {
    child: Child,
    /// UDP listener, 127.0.0.1.
    pub udp: SocketAddr,
    /// TCP listener, 127.0.0.1 (same port number as `udp`).
    pub tcp: SocketAddr,
    /// UDP listener on [::1], when asked for.
    pub udp6: Option<SocketAddr>,
    stderr_path: PathBuf,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    args: Vec<String>,
    _dir: TempDir,
}

enum StartError {
    /// The port was taken between picking it and the binary binding it: try others.
    PortTaken(String),
    Fatal(String),
}

impl SipEcho {
    pub fn start() -> SipEcho {
        Self::start_with(&SipEchoConfig::default())
    }

    pub fn start_with(config: &SipEchoConfig) -> SipEcho {
        assert!(
            Path::new(THREERING).exists(),
            "the binary under test is missing: {THREERING}"
        );
        let mut last = String::new();
        for _attempt in 0..3 {
            match Self::try_start(config, free_port()) {
                Ok(echo) => return echo,
                Err(StartError::PortTaken(report)) => last = report,
                Err(StartError::Fatal(report)) => panic!("{report}"),
            }
        }
        panic!("sip-echo could not bind its ports in 3 attempts; last attempt:\n{last}");
    }

    fn try_start(config: &SipEchoConfig, port: u16) -> Result<SipEcho, StartError> {
        let dir = TempDir::new().expect("temp dir for sip-echo logs");
        let stderr_path = dir.path().join("sip-echo.stderr");
        let stderr = File::create(&stderr_path).expect("create sip-echo stderr file");

        let udp = loopback(port);
        let tcp = loopback(port);
        let mut listeners = vec![format!("udp:{udp}"), format!("tcp:{tcp}")];
        let udp6 = config
            .ipv6_udp
            .then(|| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        if let Some(addr) = udp6 {
            listeners.push(format!("udp:{addr}"));
        }

        let mut args: Vec<String> = vec!["sip-echo".into()];
        for l in &listeners {
            args.push("--listen".into());
            args.push(l.clone());
        }
        args.extend(["--ring-ms".into(), config.ring_ms.to_string()]);
        for (name, password) in &config.users {
            args.extend(["--user".into(), format!("{name}:{password}")]);
        }
        args.extend(["--realm".into(), config.realm.clone()]);
        args.extend(["--t1-ms".into(), config.t1_ms.to_string()]);

        let mut child = Command::new(THREERING)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {THREERING}: {e}"));

        // Drain stdout for the whole life of the process, keeping the lines for reports.
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let lines = Arc::clone(&stdout_lines);
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line.clone());
                    let mut kept = lines.lock().unwrap_or_else(|p| p.into_inner());
                    if kept.len() < 1000 {
                        kept.push(line);
                    }
                }
            });
        }

        let mut echo = SipEcho {
            child,
            udp,
            tcp,
            udp6,
            stderr_path,
            stdout_lines,
            args,
            _dir: dir,
        };

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut missing: Vec<String> = listeners.clone();
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim();
                    if let Some(rest) = line.strip_prefix("listening ") {
                        missing.retain(|want| rest.trim() != want);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let report = echo.report(&format!(
                        "sip-echo did not print `listening` for {missing:?} within {READY_TIMEOUT:?}"
                    ));
                    return Err(StartError::Fatal(report)); // echo dropped: killed
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting. Give it a moment to finish.
                    let exit_deadline = Instant::now() + Duration::from_secs(2);
                    let mut status = None;
                    while Instant::now() < exit_deadline {
                        if let Ok(Some(s)) = echo.child.try_wait() {
                            status = Some(s);
                            break;
                        }
                        thread::sleep(Duration::from_millis(20));
                    }
                    let report = echo.report(&format!(
                        "sip-echo closed stdout before printing `listening` for {missing:?} \
                         (exit status: {})",
                        status.map_or_else(|| "still running".to_string(), |s| s.to_string())
                    ));
                    let stderr = read_lossy(&echo.stderr_path).to_ascii_lowercase();
                    if stderr.contains("address already in use") || stderr.contains("addrinuse") {
                        return Err(StartError::PortTaken(report));
                    }
                    return Err(StartError::Fatal(report));
                }
            }
        }
        Ok(echo)
    }

    /// The 127.0.0.1 listener for `transport`.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
        }
    }

    /// The binary's PID (only ever used to signal this process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything sip-echo wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// A failure message with the command line, stdout and the end of stderr.
    pub fn report(&self, what: &str) -> String {
        let stdout = self
            .stdout_lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        let stderr = self.stderr();
        format!(
            "{what}\n--- command: {} {}\n--- sip-echo stdout:\n{}\n--- sip-echo stderr (last 16 KiB):\n{}\n---",
            THREERING,
            self.args.join(" "),
            tail(&stdout, 4096),
            tail(&stderr, 16 * 1024)
        )
    }

    /// Panics (with stderr) unless the process is still running.
    pub fn assert_running(&mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!(
                "{}",
                self.report(&format!("sip-echo is no longer running: {status}"))
            ),
            Err(e) => panic!("cannot query sip-echo (pid {}): {e}", self.pid()),
        }
    }
}

impl Drop for SipEcho {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.report("sip-echo output for the failing test:"));
        }
        // Child::kill signals exactly this child's PID (SIGKILL); nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// SIPp's `-t` value: one socket for all calls.
    pub fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    /// The Via transport token.
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// The SIPp executable, or a failure that says how to get it. Never a skip: CI installs it.
pub fn sipp_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("sipp"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/bin/sipp")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "SIPp is not installed (no `sipp` on PATH nor /usr/bin/sipp). These tests need \
                 SIPp 3.6 with pcap play (Debian package `sip-tester`: apt-get install -y \
                 sip-tester); they fail rather than skip without it."
            )
        })
}

/// The files of one SIPp run, in a temp dir of its own that is also SIPp's working
/// directory (removed on drop).
pub struct SippFiles {
    /// `-trace_stat` CSV.
    pub stat: PathBuf,
    /// `-trace_screen`.
    pub screen: PathBuf,
    /// `-trace_err`.
    pub errors: PathBuf,
    /// SIPp's stdout and stderr.
    pub out: PathBuf,
    dir: TempDir,
}

impl SippFiles {
    pub fn new() -> SippFiles {
        let dir = TempDir::new().expect("temp dir for SIPp files");
        SippFiles {
            stat: dir.path().join("stat.csv"),
            screen: dir.path().join("screen.log"),
            errors: dir.path().join("errors.log"),
            out: dir.path().join("sipp.out"),
            dir,
        }
    }

    /// Another file in the same directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The options every run shares: the scenario, `-m calls`, one `transport` socket on
    /// 127.0.0.1:`local_port`, giving up (failing) after `timeout_s`, no stdin, and the
    /// statistics, screen and error files. The remote host, if any, goes before these.
    pub fn args(
        &self,
        scenario: &Path,
        calls: u32,
        transport: Transport,
        local_port: u16,
        timeout_s: u64,
    ) -> Vec<String> {
        vec![
            "-sf".into(),
            scenario.display().to_string(),
            "-m".into(),
            calls.to_string(),
            "-t".into(),
            transport.sipp_flag().into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            local_port.to_string(),
            "-timeout".into(),
            format!("{timeout_s}s"),
            "-timeout_error".into(),
            "-nostdin".into(),
            "-trace_stat".into(),
            "-stf".into(),
            self.stat.display().to_string(),
            "-trace_screen".into(),
            "-screen_file".into(),
            self.screen.display().to_string(),
            "-trace_err".into(),
            "-error_file".into(),
            self.errors.display().to_string(),
        ]
    }

    /// Starts `sipp` with `args` in this directory, stdout and stderr to [`SippFiles::out`].
    pub fn spawn(&self, sipp: &Path, args: &[String]) -> Child {
        let out = File::create(&self.out).expect("create the SIPp output file");
        let err = out.try_clone().expect("clone the SIPp output file handle");
        Command::new(sipp)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", sipp.display()))
    }

    /// The statistics file, parsed.
    pub fn stats(&self) -> Result<SippStats, String> {
        parse_sipp_stats(&fs::read_to_string(&self.stat).unwrap_or_default())
    }

    /// Appends the tails of the screen and the error log (`max` bytes each; the error log
    /// only if SIPp wrote one) and of the output (`max / 2`) to `report`.
    pub fn write_logs(&self, report: &mut String, max: usize) {
        let _ = writeln!(
            report,
            "--- screen (tail):\n{}",
            tail(&read_lossy(&self.screen), max)
        );
        if self.errors.exists() {
            let _ = writeln!(
                report,
                "--- error log (tail):\n{}",
                tail(&read_lossy(&self.errors), max)
            );
        }
        let _ = writeln!(
            report,
            "--- output (tail):\n{}",
            tail(&read_lossy(&self.out), max / 2)
        );
    }
}

impl Default for SippFiles {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends the final counters and every non-zero failure counter to `report`, or why the
/// statistics are unusable.
pub fn write_stats(report: &mut String, stats: &Result<SippStats, String>) {
    match stats {
        Ok(s) => {
            let _ = writeln!(
                report,
                "--- SuccessfulCall(C)={} FailedCall(C)={} Retransmissions(C)={}",
                s.successful, s.failed, s.retransmissions
            );
            let mut failures: Vec<_> = s
                .columns
                .iter()
                .filter(|(k, v)| {
                    (k.starts_with("Failed") || k.starts_with("DeadCall"))
                        && k.ends_with("(C)")
                        && v.trim() != "0"
                })
                .collect();
            failures.sort();
            for (k, v) in failures {
                let _ = writeln!(report, "    {k}={v}");
            }
        }
        Err(e) => {
            let _ = writeln!(report, "--- statistics: {e}");
        }
    }
}

/// One SIPp run (SIPp is the UAC, the target the UAS).
#[derive(Clone, Debug)]
pub struct Sipp {
    scenario: PathBuf,
    target: SocketAddr,
    transport: Transport,
    calls: u32,
    rate: u32,
    timeout: Duration,
    extra: Vec<String>,
}

/// Cumulative counters from SIPp's `-trace_stat` CSV (the last line of the file).
#[derive(Clone, Debug, Default)]
pub struct SippStats {
    /// `SuccessfulCall(C)`
    pub successful: u64,
    /// `FailedCall(C)`
    pub failed: u64,
    /// `Retransmissions(C)`
    pub retransmissions: u64,
    /// Every column of the last line, by its header name.
    pub columns: HashMap<String, String>,
}

#[derive(Debug)]
pub struct SippOutcome {
    pub stats: SippStats,
    pub status: ExitStatus,
    /// Command line, exit status, counters and the tails of SIPp's screen, error log and
    /// output: for assertion messages.
    pub report: String,
}

impl Sipp {
    /// `scenario` is a file name in `tests/sipp/`.
    pub fn new(scenario: &str, target: SocketAddr) -> Sipp {
        let path = Path::new(SCENARIO_DIR).join(scenario);
        assert!(path.is_file(), "no SIPp scenario at {}", path.display());
        Sipp {
            scenario: path,
            target,
            transport: Transport::Udp,
            calls: 1,
            rate: 10,
            timeout: Duration::from_secs(60),
            extra: Vec::new(),
        }
    }

    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// `-m`: stop after this many calls.
    pub fn calls(mut self, calls: u32) -> Self {
        self.calls = calls;
        self
    }

    /// `-r`: new calls per second.
    pub fn rate(mut self, rate: u32) -> Self {
        self.rate = rate;
        self
    }

    /// `-timeout` (with `-timeout_error`): SIPp gives up, failing, after this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_string());
        self
    }

    /// Runs SIPp to completion. SIPp's own `-timeout` bounds the run; should SIPp not honour
    /// it, the process is killed 30 s later and the test fails.
    pub fn run(&self) -> SippOutcome {
        let sipp = sipp_binary();
        let files = SippFiles::new();
        let timeout_s = self.timeout.as_secs().max(1);

        let mut args = vec![self.target.to_string()];
        args.extend(files.args(
            &self.scenario,
            self.calls,
            self.transport,
            free_port(),
            timeout_s,
        ));
        args.extend(["-r".into(), self.rate.to_string()]);
        args.extend(self.extra.iter().cloned());
        // Debugging aid, e.g. THREERING_SIPP_ARGS="-trace_msg -message_file /tmp/sipp.msg"
        if let Ok(more) = std::env::var("THREERING_SIPP_ARGS") {
            args.extend(more.split_whitespace().map(str::to_string));
        }

        let mut child = files.spawn(&sipp, &args);
        let deadline = Instant::now() + Duration::from_secs(timeout_s + 30);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = child.kill(); // this SIPp's own PID
                    let _ = child.wait();
                    panic!(
                        "SIPp ran past its -timeout {timeout_s}s by 30 s and was killed\n\
                         --- command: {} {}\n--- output:\n{}",
                        sipp.display(),
                        args.join(" "),
                        tail(&read_lossy(&files.out), 8192)
                    );
                }
                Err(e) => panic!("waiting for SIPp: {e}"),
            }
        };

        let parsed = files.stats();
        let mut report = String::new();
        let _ = writeln!(report, "--- command: {} {}", sipp.display(), args.join(" "));
        let _ = writeln!(report, "--- exit status: {status}");
        write_stats(&mut report, &parsed);
        files.write_logs(&mut report, 6000);

        let stats = parsed.unwrap_or_else(|e| panic!("SIPp statistics unusable: {e}\n{report}"));
        SippOutcome {
            stats,
            status,
            report,
        }
    }
}

/// Parses SIPp's statistics CSV: a header line of `;`-separated column names, then one
/// line per dump; the last line holds the final cumulative `(C)` counters.
pub fn parse_sipp_stats(text: &str) -> Result<SippStats, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("the stat file is empty or missing")?;
    let last = lines.next_back().ok_or("the stat file has no data line")?;
    let names: Vec<&str> = header.split(';').collect();
    let values: Vec<&str> = last.split(';').collect();
    let columns: HashMap<String, String> = names
        .iter()
        .zip(values.iter())
        .filter(|(n, _)| !n.is_empty())
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let counter = |name: &str| -> Result<u64, String> {
        let v = columns
            .get(name)
            .ok_or_else(|| format!("no column {name:?} in the stat file header"))?;
        v.parse::<u64>()
            .map_err(|e| format!("column {name:?} = {v:?}: {e}"))
    };
    Ok(SippStats {
        successful: counter("SuccessfulCall(C)")?,
        failed: counter("FailedCall(C)")?,
        retransmissions: counter("Retransmissions(C)")?,
        columns,
    })
}

// ---------------------------------------------------------------------------------------
// Raw SIP over sockets
// ---------------------------------------------------------------------------------------

/// A response's start line and header fields (the body is ignored).
#[derive(Clone, Debug)]
pub struct SipResponse {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub raw: Vec<u8>,
}

impl SipResponse {
    /// The first value of header `name` (case-insensitive; `compact` is its one-letter form).
    pub fn header(&self, name: &str) -> Option<&str> {
        let compact = compact_form(name);
        self.headers
            .iter()
            .find(|(n, _)| {
                n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
            })
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Status line for messages: "400 Bad Request: CSeq".
    pub fn status_line(&self) -> String {
        format!("{} {}", self.code, self.reason)
    }
}

fn compact_form(name: &str) -> Option<&'static str> {
    const FORMS: &[(&str, &str)] = &[
        ("Call-ID", "i"),
        ("Contact", "m"),
        ("Content-Encoding", "e"),
        ("Content-Length", "l"),
        ("Content-Type", "c"),
        ("From", "f"),
        ("Subject", "s"),
        ("Supported", "k"),
        ("To", "t"),
        ("Via", "v"),
    ];
    FORMS
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|(_, short)| *short)
}

/// The end of the header block (index just past the empty line), if complete.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Parses the start line and headers of a SIP response (`SIP/2.0 CODE REASON`). Folded
/// header lines are joined. None if it is not a response.
pub fn parse_response(bytes: &[u8]) -> Option<SipResponse> {
    let end = head_end(bytes).unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let rest = start.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = match rest.split_once(' ') {
        Some((code, reason)) => (code, reason),
        None => (rest, ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Some(SipResponse {
        code,
        reason: reason.to_string(),
        headers,
        raw: bytes.to_vec(),
    })
}

/// A UDP socket on 127.0.0.1, any port.
pub fn udp_socket() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP 127.0.0.1:0")
}

/// Waits up to `wait` for one datagram on `socket`.
pub fn udp_recv(socket: &UdpSocket, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        socket
            .set_read_timeout(Some(left))
            .expect("set UDP read timeout");
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            // e.g. ECONNREFUSED from an ICMP error: keep listening until the deadline.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Waits up to `wait` for the first datagram that is not a provisional (1xx) response;
/// provisional ones are skipped. Returns its bytes (a final response, or whatever else
/// came that is not a provisional).
pub fn udp_final_response(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (data, _) = udp_recv(socket, left)?;
        match parse_response(&data) {
            Some(resp) if resp.code < 200 => continue,
            _ => return Some(data),
        }
    }
}

/// Sends `bytes` as one datagram from `socket` to `target`, then waits up to `wait` for
/// the first datagram back.
pub fn udp_exchange(
    socket: &UdpSocket,
    target: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> io::Result<Option<Vec<u8>>> {
    let sent = socket.send_to(bytes, target)?;
    if sent != bytes.len() {
        return Err(io::Error::other(format!(
            "short UDP send: {sent} of {} bytes",
            bytes.len()
        )));
    }
    Ok(udp_recv(socket, wait).map(|(data, _)| data))
}

/// What came back on one TCP connection.
#[derive(Debug, Default)]
pub struct TcpExchange {
    /// Everything read, in order.
    pub received: Vec<u8>,
    /// Writing failed part-way (the peer may have closed early after answering).
    pub write_error: Option<String>,
    /// The peer closed (EOF or reset) before the deadline.
    pub closed: bool,
}

/// Opens a fresh connection to `target`, writes `bytes`, shuts down the write half when
/// `half_close`, then reads until EOF, a reset, `wait`, or (when `stop_at_first_head`) as
/// soon as a complete header block has arrived.
pub fn tcp_exchange(
    target: SocketAddr,
    bytes: &[u8],
    half_close: bool,
    wait: Duration,
    stop_at_first_head: bool,
) -> io::Result<TcpExchange> {
    let deadline = Instant::now() + wait;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut result = TcpExchange::default();
    if let Err(e) = stream.write_all(bytes) {
        result.write_error = Some(e.to_string());
    }
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut buf = [0u8; 16384];
    loop {
        if stop_at_first_head && head_end(&result.received).is_some() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => {
                result.closed = true;
                break;
            }
            Ok(n) => result.received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                result.closed = true;
                break;
            }
        }
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// OPTIONS liveness probe
// ---------------------------------------------------------------------------------------

/// A well-formed OPTIONS request from `local` to `target`.
pub fn options_request(
    transport: Transport,
    local: SocketAddr,
    target: SocketAddr,
    token: &str,
) -> String {
    format!(
        "OPTIONS sip:echo@{target} SIP/2.0\r\n\
         Via: SIP/2.0/{via} {local};branch=z9hG4bK-probe-{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe-{token}\r\n\
         To: <sip:echo@{target}>\r\n\
         Call-ID: probe-{token}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{local};transport={lower}>\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\
         \r\n",
        via = transport.via(),
        lower = transport.via().to_ascii_lowercase(),
    )
}

const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Sends a normal OPTIONS (fresh socket or connection) and returns its final response, or
/// says what went wrong. Provisional responses are skipped.
pub fn options_probe(transport: Transport, target: SocketAddr) -> Result<SipResponse, String> {
    let token = unique_token();
    let call_id = format!("probe-{token}@127.0.0.1");
    let check = |resp: SipResponse| -> Result<SipResponse, String> {
        match resp.header("Call-ID") {
            Some(id) if id == call_id => Ok(resp),
            other => Err(format!(
                "OPTIONS answered with a foreign Call-ID {other:?}: {}",
                show_bytes(&resp.raw, 600)
            )),
        }
    };
    match transport {
        Transport::Udp => {
            let socket = udp_socket();
            let local = socket.local_addr().map_err(|e| e.to_string())?;
            let msg = options_request(transport, local, target, &token);
            socket
                .send_to(msg.as_bytes(), target)
                .map_err(|e| format!("OPTIONS send over UDP: {e}"))?;
            let Some(data) = udp_final_response(&socket, PROBE_WAIT) else {
                return Err(format!(
                    "no final response to OPTIONS over UDP within {PROBE_WAIT:?}"
                ));
            };
            match parse_response(&data) {
                Some(resp) => check(resp),
                None => Err(format!(
                    "OPTIONS over UDP got a non-response: {}",
                    show_bytes(&data, 400)
                )),
            }
        }
        Transport::Tcp => {
            let deadline = Instant::now() + PROBE_WAIT;
            let mut stream = TcpStream::connect_timeout(&target, PROBE_WAIT)
                .map_err(|e| format!("OPTIONS: TCP connect to {target}: {e}"))?;
            let local = stream.local_addr().map_err(|e| e.to_string())?;
            let msg = options_request(transport, local, target, &token);
            stream
                .write_all(msg.as_bytes())
                .map_err(|e| format!("OPTIONS write over TCP: {e}"))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                // Take every complete message off the front of the buffer.
                while let Some(end) = head_end(&buf) {
                    let resp = parse_response(&buf[..end]).ok_or_else(|| {
                        format!(
                            "OPTIONS over TCP got a non-response: {}",
                            show_bytes(&buf, 400)
                        )
                    })?;
                    let body = resp
                        .header("Content-Length")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if resp.code >= 200 {
                        return check(resp);
                    }
                    if buf.len() < end + body {
                        break; // the rest of this provisional's body is still on its way
                    }
                    buf.drain(..end + body);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "no final response to OPTIONS over TCP within {PROBE_WAIT:?} (got {})",
                        show_bytes(&buf, 400)
                    ));
                }
                stream
                    .set_read_timeout(Some(left))
                    .map_err(|e| e.to_string())?;
                match stream.read(&mut chunk) {
                    Ok(0) => {
                        return Err(format!(
                        "connection closed before a final response to OPTIONS over TCP (got {})",
                        show_bytes(&buf, 400)
                    ))
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(format!(
                            "OPTIONS over TCP: read failed: {e} (got {})",
                            show_bytes(&buf, 400)
                        ))
                    }
                }
            }
        }
    }
}

/// Like [`options_probe`], but requires a 200 (returned as Err otherwise).
pub fn check_options_ok(transport: Transport, target: SocketAddr) -> Result<(), String> {
    let resp = options_probe(transport, target)?;
    if resp.code == 200 {
        Ok(())
    } else {
        Err(format!(
            "OPTIONS over {transport:?} answered {} instead of 200",
            resp.status_line()
        ))
    }
}

/// Sends a normal OPTIONS and asserts a 200 comes back.
pub fn assert_options_ok(transport: Transport, target: SocketAddr) {
    if let Err(e) = check_options_ok(transport, target) {
        panic!("liveness check failed: {e}");
    }
}
