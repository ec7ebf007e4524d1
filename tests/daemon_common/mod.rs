//! Helpers for the end-to-end tests of `threering serve`: a daemon in its own temp dir
//! with its own ports and config, raw HTTP/1.1 against its API, SIPp callers and agents
//! (with RTP sinks that count the media the daemon relays), raw SIP over UDP, and a
//! collector of check failures so one run reports every mismatch at once.
//!
//! Everything talks to 127.0.0.1 only, and every wait is bounded.
//!
//! Debugging aids: the daemon inherits the environment (THREERING_LOG=debug makes it log
//! more; its stderr is printed when a test fails), and every SIPp run keeps a message trace
//! whose tail is part of its report.
//!
//! The helpers that the sip-echo tests need too (ports, text, the SIPp binary and its
//! statistics, raw SIP over UDP, the OPTIONS probe, the torture corpus) live once, in
//! `tests/common/mod.rs`, and are re-exported from here.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

#[path = "../common/mod.rs"]
mod base;

use base::{head_end, write_stats, SippFiles};
// Each test binary uses a different subset of these.
#[allow(unused_imports)]
pub use base::{
    check_options_ok, free_port, loopback, parse_response, parse_sipp_stats, read_lossy,
    show_bytes, sipp_binary, tail, torture_files, udp_final_response, udp_recv, udp_socket,
    unique_token, SippStats, Transport, SCENARIO_DIR, THREERING, TORTURE_DIR,
};

/// The audio SIPp plays (Debian `sip-tester`); the scenarios name it too.
pub const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

/// How long the daemon may take to answer `GET /healthz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The queue number every test config routes to queue "consult".
pub const QUEUE_NUMBER: &str = "4008001234";

/// The caller's user part in every caller scenario.
pub const CALLER_NUMBER: &str = "13800138000";

// ---------------------------------------------------------------------------------------
// Timing isolation
// ---------------------------------------------------------------------------------------

static TIMING: RwLock<()> = RwLock::new(());

/// Tests that measure milliseconds take this: no other test of the binary runs meanwhile.
pub fn timing_exclusive() -> RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(|p| p.into_inner())
}

/// Every other daemon test takes this: they run in parallel with each other, never with a
/// timing test.
pub fn timing_shared() -> RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

/// Size of a port block: the daemon's RTP range is the first half, SIPp media the second.
const BLOCK: u16 = 200;
/// Blocks live below Linux's ephemeral range (32768+), so free_port() never lands in one.
const BLOCK_FIRST: u16 = 20_000;
const BLOCK_COUNT: u16 = 63; // 20000 ..= 32599

static BLOCKS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// 200 consecutive UDP ports, all free when checked, below the ephemeral range: the daemon
/// gets `rtp_ports = [base, base + 99]`, and SIPp media ports come from the rest.
#[derive(Debug)]
pub struct PortBlock {
    pub base: u16,
    next_media: AtomicU64,
}

impl PortBlock {
    pub fn new() -> PortBlock {
        let mut taken = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0) as u64
            + std::process::id() as u64;
        for i in 0..BLOCK_COUNT as u64 {
            let k = ((seed + i) % BLOCK_COUNT as u64) as u16;
            let base = BLOCK_FIRST + k * BLOCK;
            if taken.contains(&base) {
                continue;
            }
            let all_free =
                (base..base + BLOCK).all(|p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok());
            if all_free {
                taken.insert(base);
                return PortBlock {
                    base,
                    next_media: AtomicU64::new(0),
                };
            }
        }
        panic!("no free block of {BLOCK} UDP ports between {BLOCK_FIRST} and 32600");
    }

    /// The daemon's `[media] rtp_ports`.
    pub fn rtp_range(&self) -> (u16, u16) {
        (self.base, self.base + BLOCK / 2 - 1)
    }

    /// A SIPp `-mp` port M: SIPp binds M and M + 2, the test's RTP sink binds M + 4 (the
    /// port the daemon_* scenarios put in their SDP).
    pub fn media_port(&self) -> u16 {
        let n = self.next_media.fetch_add(1, Ordering::Relaxed) as u16;
        let port = self.base + BLOCK / 2 + n * 8;
        assert!(
            port + 4 < self.base + BLOCK,
            "a test asked for more than 12 SIPp media ports"
        );
        port
    }
}

impl Default for PortBlock {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------
// TOML text
// ---------------------------------------------------------------------------------------

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

// ---------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub id: String,
    pub name: String,
    pub contact: Option<String>,
    pub password: Option<String>,
}

impl AgentSpec {
    /// An agent reached at a fixed contact, a SIPp UAS on `port` (UDP).
    pub fn at(id: &str, port: u16) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            name: format!("Agent {id}"),
            contact: Some(format!("sip:{id}@127.0.0.1:{port}")),
            password: None,
        }
    }

    /// An agent reached at a fixed TCP contact.
    pub fn at_tcp(id: &str, port: u16) -> AgentSpec {
        AgentSpec {
            contact: Some(format!("sip:{id}@127.0.0.1:{port};transport=tcp")),
            ..AgentSpec::at(id, port)
        }
    }

    /// An agent that registers with digest auth (no fixed contact).
    pub fn registering(id: &str, password: &str) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            name: format!("Agent {id}"),
            contact: None,
            password: Some(password.into()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct QueueSpec {
    pub name: String,
    pub numbers: Vec<String>,
    pub strategy: String,
    pub agents: Vec<String>,
    pub ring_timeout_ms: u64,
    pub max_wait_ms: u64,
    pub wrap_up_ms: u64,
    /// Written only when set (the daemon's default applies otherwise).
    pub retry_ms: Option<u64>,
    pub overflow: Option<String>,
}

impl QueueSpec {
    /// Queue "consult" on [`QUEUE_NUMBER`] with these agents, in this order.
    pub fn consult(strategy: &str, agents: &[&str]) -> QueueSpec {
        QueueSpec::named("consult", QUEUE_NUMBER, strategy, agents)
    }

    /// Any queue, on one number.
    pub fn named(name: &str, number: &str, strategy: &str, agents: &[&str]) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            numbers: vec![number.into()],
            strategy: strategy.into(),
            agents: agents.iter().map(|a| a.to_string()).collect(),
            ring_timeout_ms: 15_000,
            max_wait_ms: 120_000,
            wrap_up_ms: 0,
            retry_ms: None,
            overflow: None,
        }
    }

    pub fn overflow(mut self, queue: &str) -> Self {
        self.overflow = Some(queue.into());
        self
    }

    pub fn ring_timeout_ms(mut self, ms: u64) -> Self {
        self.ring_timeout_ms = ms;
        self
    }

    pub fn max_wait_ms(mut self, ms: u64) -> Self {
        self.max_wait_ms = ms;
        self
    }

    pub fn retry_ms(mut self, ms: u64) -> Self {
        self.retry_ms = Some(ms);
        self
    }
}

/// What a test config holds besides ports and paths (which the daemon harness fills in).
#[derive(Clone, Debug)]
pub struct DaemonSpec {
    pub cadence_ms: u64,
    pub target: u32,
    pub limit: u32,
    pub grace_ms: u64,
    pub t1_ms: u64,
    pub agents: Vec<AgentSpec>,
    pub queues: Vec<QueueSpec>,
}

impl DaemonSpec {
    pub fn new(agents: Vec<AgentSpec>, queues: Vec<QueueSpec>) -> DaemonSpec {
        DaemonSpec {
            cadence_ms: 1000,
            target: 3,
            limit: 5,
            grace_ms: 2000,
            t1_ms: 500,
            agents,
            queues,
        }
    }

    pub fn grace_ms(mut self, ms: u64) -> Self {
        self.grace_ms = ms;
        self
    }
}

/// Ports and paths of one daemon instance.
#[derive(Clone, Debug)]
pub struct Placement {
    pub sip_port: u16,
    pub http_port: u16,
    pub rtp: (u16, u16),
    pub dir: PathBuf,
}

/// SHA-256 of `token`, lower-case hex: what `[[http.tokens]] token_sha256` holds.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The TOML config, with the key names of the contract.
pub fn config_toml(spec: &DaemonSpec, at: &Placement, token: &str) -> String {
    let dir = at.dir.display().to_string();
    let mut t = String::new();
    let _ = writeln!(t, "[sip]");
    let _ = writeln!(
        t,
        "listen = {}",
        toml_list(&[
            format!("udp:127.0.0.1:{}", at.sip_port),
            format!("tcp:127.0.0.1:{}", at.sip_port)
        ])
    );
    let _ = writeln!(t, "realm = \"threering\"");
    let _ = writeln!(t, "t1_ms = {}", spec.t1_ms);
    let _ = writeln!(t, "\n[media]");
    let _ = writeln!(t, "address = \"127.0.0.1\"");
    let _ = writeln!(t, "rtp_ports = [{}, {}]", at.rtp.0, at.rtp.1);
    let _ = writeln!(t, "\n[http]");
    let _ = writeln!(t, "listen = \"127.0.0.1:{}\"", at.http_port);
    let _ = writeln!(t, "\n[[http.tokens]]");
    let _ = writeln!(t, "name = \"test\"");
    let _ = writeln!(t, "role = \"admin\"");
    let _ = writeln!(t, "token_sha256 = {}", toml_str(&token_sha256(token)));
    let _ = writeln!(t, "\n[store]");
    let _ = writeln!(
        t,
        "database = {}",
        toml_str(&format!("sqlite://{dir}/t.db"))
    );
    let _ = writeln!(t, "recordings = {}", toml_str(&format!("{dir}/rec")));
    let _ = writeln!(t, "\n[rings]");
    let _ = writeln!(t, "cadence_ms = {}", spec.cadence_ms);
    let _ = writeln!(t, "target = {}", spec.target);
    let _ = writeln!(t, "limit = {}", spec.limit);
    let _ = writeln!(t, "\n[daemon]");
    let _ = writeln!(t, "grace_ms = {}", spec.grace_ms);
    for a in &spec.agents {
        let _ = writeln!(t, "\n[[agents]]");
        let _ = writeln!(t, "id = {}", toml_str(&a.id));
        let _ = writeln!(t, "name = {}", toml_str(&a.name));
        if let Some(c) = &a.contact {
            let _ = writeln!(t, "contact = {}", toml_str(c));
        }
        if let Some(p) = &a.password {
            let _ = writeln!(t, "password = {}", toml_str(p));
        }
    }
    for q in &spec.queues {
        let _ = writeln!(t, "\n[[queues]]");
        let _ = writeln!(t, "name = {}", toml_str(&q.name));
        let _ = writeln!(t, "numbers = {}", toml_list(&q.numbers));
        let _ = writeln!(t, "strategy = {}", toml_str(&q.strategy));
        let _ = writeln!(t, "agents = {}", toml_list(&q.agents));
        let _ = writeln!(t, "ring_timeout_ms = {}", q.ring_timeout_ms);
        let _ = writeln!(t, "max_wait_ms = {}", q.max_wait_ms);
        if let Some(retry) = q.retry_ms {
            let _ = writeln!(t, "retry_ms = {retry}");
        }
        if let Some(overflow) = &q.overflow {
            let _ = writeln!(t, "overflow = {}", toml_str(overflow));
        }
        let _ = writeln!(t, "wrap_up_ms = {}", q.wrap_up_ms);
    }
    t
}

// ---------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------

/// A running `threering serve` in its own temp dir (config, SQLite file, recordings,
/// logs). Killed by its own PID when dropped; its stderr is printed if the test panics.
pub struct Daemon {
    child: Option<Child>,
    pub at: Placement,
    pub token: String,
    pub config_path: PathBuf,
    pub ports: Arc<PortBlock>,
    runs: u32,
    stderr_path: PathBuf,
    _dir: TempDir,
}

enum StartError {
    PortTaken(String),
    Fatal(String),
}

impl Daemon {
    /// Starts a daemon for `spec` with fresh ports (new ones tried if a port was taken in
    /// the meantime) and waits until `/healthz` answers 200.
    pub fn start(spec: &DaemonSpec) -> Daemon {
        Self::start_with_ports(spec, Arc::new(PortBlock::new()))
    }

    /// Like [`Daemon::start`], with a port block the test already uses for SIPp media.
    pub fn start_with_ports(spec: &DaemonSpec, ports: Arc<PortBlock>) -> Daemon {
        assert!(
            Path::new(THREERING).exists(),
            "the binary under test is missing: {THREERING}"
        );
        let mut last = String::new();
        for _ in 0..3 {
            let dir = TempDir::new().expect("temp dir for the daemon");
            let at = Placement {
                sip_port: free_port(),
                http_port: free_port(),
                rtp: ports.rtp_range(),
                dir: dir.path().to_path_buf(),
            };
            let token = format!("tr-test-token-{}", unique_token());
            let config_path = dir.path().join("threering.toml");
            fs::write(&config_path, config_toml(spec, &at, &token)).expect("write the config");
            let mut daemon = Daemon {
                child: None,
                at,
                token,
                config_path,
                ports: Arc::clone(&ports),
                runs: 0,
                stderr_path: PathBuf::new(),
                _dir: dir,
            };
            match daemon.spawn_and_wait_ready() {
                Ok(()) => return daemon,
                Err(StartError::PortTaken(report)) => last = report,
                Err(StartError::Fatal(report)) => {
                    daemon.runs = 0; // the report is in the panic message already
                    panic!("{report}")
                }
            }
        }
        panic!("the daemon could not bind its ports in 3 attempts; last attempt:\n{last}");
    }

    /// Starts the same config again (same ports, same database) after a stop.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again: the daemon is still running"
        );
        if let Err(StartError::PortTaken(r) | StartError::Fatal(r)) = self.spawn_and_wait_ready() {
            self.runs = 0; // the report is in the panic message already
            panic!("restarting the daemon on the same config failed:\n{r}");
        }
    }

    fn spawn_and_wait_ready(&mut self) -> Result<(), StartError> {
        self.runs += 1;
        self.stderr_path = self.at.dir.join(format!("daemon.{}.stderr", self.runs));
        let stderr = File::create(&self.stderr_path).expect("create the daemon's stderr file");
        let stdout = stderr.try_clone().expect("clone the stderr file handle");
        let child = Command::new(THREERING)
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(&self.at.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {THREERING}: {e}"));
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                let report = self.report(&format!(
                    "`threering serve` exited ({status}) before /healthz answered 200"
                ));
                let text = self.stderr().to_ascii_lowercase();
                self.child = None;
                if text.contains("address already in use") || text.contains("addrinuse") {
                    return Err(StartError::PortTaken(report));
                }
                return Err(StartError::Fatal(report));
            }
            if let Ok(resp) = http_get(self.http_addr(), "/healthz", None) {
                if resp.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let report = self.report(&format!(
                    "/healthz did not answer 200 within {READY_TIMEOUT:?}"
                ));
                self.kill();
                return Err(StartError::Fatal(report));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn sip_addr(&self) -> SocketAddr {
        loopback(self.at.sip_port)
    }

    pub fn http_addr(&self) -> SocketAddr {
        loopback(self.at.http_port)
    }

    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// A failure message with the command and the end of the daemon's output.
    pub fn report(&self, what: &str) -> String {
        format!(
            "{what}\n--- command: {THREERING} serve --config {}\n--- config:\n{}\n--- daemon output (last 16 KiB):\n{}\n---",
            self.config_path.display(),
            read_lossy(&self.config_path),
            tail(&self.stderr(), 16 * 1024)
        )
    }

    /// Panics (with the daemon's output) unless it is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exit_status() {
            panic!(
                "{}",
                self.report(&format!("the daemon is no longer running: {status}"))
            );
        }
    }

    /// Sends SIGTERM to the daemon's own PID and waits up to `bound` for it to exit.
    /// Returns the exit status and how long it took, or None (and SIGKILLs it) if it did
    /// not exit in time.
    pub fn terminate(&mut self, bound: Duration) -> Option<(ExitStatus, Duration)> {
        let pid = self.pid().expect("terminate: the daemon is not running");
        let started = Instant::now();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            matches!(sent, Ok(s) if s.success()),
            "kill -TERM {pid} failed: {sent:?}"
        );
        let deadline = started + bound;
        loop {
            if let Some(status) = self.exit_status() {
                self.child = None;
                return Some((status, started.elapsed()));
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (the child's own PID) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET path` with this daemon's bearer token.
    pub fn get(&self, path: &str) -> Result<HttpResponse, String> {
        http_get(self.http_addr(), path, Some(&self.token))
    }

    /// `GET /api/calls` → the `calls` array.
    pub fn calls(&self) -> Result<Vec<Value>, String> {
        let resp = self.get("/api/calls")?;
        if resp.status != 200 {
            return Err(format!(
                "GET /api/calls answered {}: {}",
                resp.status,
                tail(&resp.text(), 2000)
            ));
        }
        let json: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            format!(
                "GET /api/calls: body is not JSON ({e}): {}",
                tail(&resp.text(), 2000)
            )
        })?;
        json.get("calls")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| format!("GET /api/calls: no \"calls\" array in {json}"))
    }

    /// `GET /api/calls/{id}`.
    pub fn call(&self, id: &Value) -> Result<Value, String> {
        let id = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let resp = self.get(&format!("/api/calls/{id}"))?;
        if resp.status != 200 {
            return Err(format!(
                "GET /api/calls/{id} answered {}: {}",
                resp.status,
                tail(&resp.text(), 2000)
            ));
        }
        serde_json::from_slice(&resp.body)
            .map_err(|e| format!("GET /api/calls/{id}: not JSON ({e}): {}", resp.text()))
    }

    /// Polls `/api/calls` until at least `n` calls have a non-null `ended_at` (the store
    /// writes asynchronously), for up to `wait`. Returns the ended calls, newest first.
    pub fn wait_for_ended_calls(&self, n: usize, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let last = match self.calls() {
                Ok(calls) => {
                    let ended: Vec<Value> = calls
                        .iter()
                        .filter(|c| c.get("ended_at").is_some_and(|v| !v.is_null()))
                        .cloned()
                        .collect();
                    if ended.len() >= n {
                        return ended;
                    }
                    format!(
                        "{} call(s) listed, {} ended: {}",
                        calls.len(),
                        ended.len(),
                        pretty(&Value::Array(calls))
                    )
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "{}",
                    self.report(&format!(
                        "fewer than {n} ended call(s) in GET /api/calls after {wait:?}; last: {}",
                        tail(&last, 6000)
                    ))
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The one ended call of a test that made one call, fetched again by its id from
    /// `GET /api/calls/{id}` (both endpoints are exercised).
    pub fn the_one_call(&self) -> Value {
        let ended = self.wait_for_ended_calls(1, Duration::from_secs(10));
        assert_eq!(
            ended.len(),
            1,
            "expected exactly one ended call, got: {}",
            pretty(&Value::Array(ended.clone()))
        );
        let listed = &ended[0];
        let id = listed
            .get("id")
            .unwrap_or_else(|| panic!("the call has no id: {}", pretty(listed)));
        self.call(id)
            .unwrap_or_else(|e| panic!("{}", self.report(&e)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if thread::panicking() && self.runs > 0 {
            eprintln!("{}", self.report("daemon output for the failing test:"));
        }
        self.kill();
    }
}

/// `threering check-config FILE`.
pub fn check_config(path: &Path) -> Output {
    Command::new(THREERING)
        .arg("check-config")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {THREERING} check-config: {e}"))
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 over a plain TcpStream
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const HTTP_WAIT: Duration = Duration::from_secs(5);

/// `GET path` (Connection: close), optionally with `Authorization: Bearer token`.
pub fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<HttpResponse, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("HTTP connect to {addr}: {e}"))?;
    stream
        .set_write_timeout(Some(HTTP_WAIT))
        .map_err(|e| e.to_string())?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        let _ = write!(req, "Authorization: Bearer {token}\r\n");
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("HTTP write to {addr}: {e}"))?;
    let deadline = Instant::now() + HTTP_WAIT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "GET {path}: no complete answer within {HTTP_WAIT:?} (got {})",
                show_bytes(&raw, 300)
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if raw.is_empty() => return Err(format!("GET {path}: read: {e}")),
            Err(_) => break,
        }
    }
    parse_http_response(&raw).map_err(|e| format!("GET {path}: {e}"))
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let body_start =
        head_end(raw).ok_or_else(|| format!("no header block in {}", show_bytes(raw, 300)))?;
    let head = String::from_utf8_lossy(&raw[..body_start - 4]);
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut parts = start.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {start:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {start:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[body_start..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if rest.len() < len {
            return Err(format!(
                "body shorter ({}) than Content-Length {len}",
                rest.len()
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// JSON helpers and collected checks
// ---------------------------------------------------------------------------------------

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

pub fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub fn int_field(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// The call's `attempts`, as (agent, outcome, ring_ms) in the order the API gives them.
pub fn attempts(call: &Value) -> Vec<(String, String, Option<i64>)> {
    call.get("attempts")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| {
                    (
                        str_field(a, "agent").unwrap_or("<none>").to_string(),
                        str_field(a, "outcome").unwrap_or("<none>").to_string(),
                        int_field(a, "ring_ms"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Collects failed checks; `finish` panics with all of them and the context.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    pub fn that(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// `call[key]` is the string `want`.
    pub fn str_eq(&mut self, call: &Value, key: &str, want: &str) {
        let got = call.get(key);
        if got.and_then(Value::as_str) != Some(want) {
            self.failures
                .push(format!("{key}: expected {want:?}, got {}", show_json(got)));
        }
    }

    /// `call[key]` is the boolean `want`.
    pub fn bool_eq(&mut self, call: &Value, key: &str, want: bool) {
        let got = call.get(key);
        if got.and_then(Value::as_bool) != Some(want) {
            self.failures
                .push(format!("{key}: expected {want}, got {}", show_json(got)));
        }
    }

    /// `call[key]` is the integer `want`.
    pub fn int_eq(&mut self, call: &Value, key: &str, want: i64) {
        let got = call.get(key);
        if got.and_then(Value::as_i64) != Some(want) {
            self.failures
                .push(format!("{key}: expected {want}, got {}", show_json(got)));
        }
    }

    /// `call[key]` is an integer in `lo..=hi`.
    pub fn int_in(&mut self, call: &Value, key: &str, lo: i64, hi: i64) {
        let got = call.get(key);
        match got.and_then(Value::as_i64) {
            Some(v) if (lo..=hi).contains(&v) => {}
            _ => self.failures.push(format!(
                "{key}: expected {lo}..={hi}, got {}",
                show_json(got)
            )),
        }
    }

    /// `call[key]` is present and not null.
    pub fn present(&mut self, call: &Value, key: &str) {
        let got = call.get(key);
        if got.is_none_or(Value::is_null) {
            self.failures
                .push(format!("{key}: expected a value, got {}", show_json(got)));
        }
    }

    /// `call[key]` is null (or absent).
    pub fn null(&mut self, call: &Value, key: &str) {
        let got = call.get(key);
        if got.is_some_and(|v| !v.is_null()) {
            self.failures
                .push(format!("{key}: expected null, got {}", show_json(got)));
        }
    }

    /// Panics with every failed check, the call record and `context`.
    pub fn finish(self, call: &Value, context: &str) {
        if self.failures.is_empty() {
            return;
        }
        panic!(
            "{} check(s) failed:\n  {}\n--- call record:\n{}\n{}",
            self.failures.len(),
            self.failures.join("\n  "),
            pretty(call),
            context
        );
    }
}

fn show_json(v: Option<&Value>) -> String {
    match v {
        None => "<absent>".into(),
        Some(v) => v.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// RTP sink
// ---------------------------------------------------------------------------------------

/// A UDP socket on 127.0.0.1:port counting the datagrams that arrive (the media the
/// daemon relays to a SIPp endpoint, whose SDP names this port).
pub struct RtpSink {
    pub port: u16,
    count: Arc<AtomicU64>,
    rtp_like: Arc<AtomicU64>,
    sources: Arc<Mutex<BTreeSet<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpSink {
    pub fn bind(port: u16) -> RtpSink {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("bind the RTP sink 127.0.0.1:{port}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set the sink's read timeout");
        let count = Arc::new(AtomicU64::new(0));
        let rtp_like = Arc::new(AtomicU64::new(0));
        let sources = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (count, rtp_like, sources, stop) = (
                count.clone(),
                rtp_like.clone(),
                sources.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    match socket.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            // RTP version 2, at least the 12-byte fixed header.
                            if n >= 12 && buf[0] >> 6 == 2 {
                                rtp_like.fetch_add(1, Ordering::Relaxed);
                            }
                            let mut s = sources.lock().unwrap_or_else(|p| p.into_inner());
                            if s.len() < 16 {
                                s.insert(from);
                            }
                        }
                        Err(_) => continue,
                    }
                }
            })
        };
        RtpSink {
            port,
            count,
            rtp_like,
            sources,
            stop,
            thread: Some(thread),
        }
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Of those, how many look like RTP version 2.
    pub fn rtp_count(&self) -> u64 {
        self.rtp_like.load(Ordering::Relaxed)
    }

    pub fn sources(&self) -> Vec<SocketAddr> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------------------

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
        args.extend([
            "-trace_msg".into(),
            "-message_file".into(),
            messages.display().to_string(),
        ]);
        let mut sink = None;
        if let Some(m) = self.media_port {
            args.extend(["-mp".into(), m.to_string()]);
            sink = Some(RtpSink::bind(m + 4));
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

// ---------------------------------------------------------------------------------------
// Raw SIP over UDP
// ---------------------------------------------------------------------------------------

/// A well-formed INVITE with an SDP offer to `user` at the daemon.
pub fn invite_request(local: SocketAddr, target: SocketAddr, user: &str, token: &str) -> String {
    let sdp = format!(
        "v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n",
        local.port() + 2
    );
    format!(
        "INVITE sip:{user}@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-inv-{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{CALLER_NUMBER}@{local}>;tag=inv-{token}\r\n\
         To: <sip:{user}@{target}>\r\n\
         Call-ID: inv-{token}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{CALLER_NUMBER}@{local}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\
         \r\n{sdp}",
        sdp.len()
    )
}
