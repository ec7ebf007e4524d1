//! A running `threering serve` ([`Daemon`]) in its own temp dir, started on fresh ports
//! and awaited until `/healthz` answers; stopped, restarted and killed by its own PID; its
//! call records read from the API. Also `threering check-config`.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use threering::store::testing::{backend_from_env, TestDb};
use threering::store::Backend;

use super::base::{free_port, loopback, read_lossy, tail, unique_token, THREERING};
use super::checks::pretty;
use super::config::{config_toml, DaemonSpec, Placement, RECORDINGS_DIR};
use super::http::{http_send_over, HttpResponse};
use super::ports::PortBlock;
use super::READY_TIMEOUT;

/// A running `threering serve` in its own temp dir (config, SQLite file, recordings,
/// logs), or with its own PostgreSQL schema when `THREERING_TEST_DB=postgres`. Killed by
/// its own PID when dropped (then the schema is dropped); its stderr is printed if the
/// test panics.
pub struct Daemon {
    child: Option<Child>,
    pub at: Placement,
    pub token: String,
    pub config_path: PathBuf,
    pub ports: Arc<PortBlock>,
    env: Vec<(String, String)>,
    /// Set when the daemon serves HTTPS: the client (trusting the test CA) that every
    /// request of this harness goes through.
    pub https: Option<Arc<rustls::ClientConfig>>,
    runs: u32,
    stderr_path: PathBuf,
    _dir: TempDir,
    /// The PostgreSQL schema the harness made for this daemon, if it made one.
    _db: Option<TestDb>,
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
        let mut spec = spec.clone();
        let mut db = None;
        if spec.database.is_none() && backend_from_env() == Backend::Postgres {
            let fresh = TestDb::new_blocking(Backend::Postgres);
            spec.database = Some(fresh.url.clone());
            db = Some(fresh);
        }
        let spec = &spec;
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
                env: spec.env.clone(),
                https: spec
                    .tls
                    .as_ref()
                    .filter(|tls| tls.https)
                    .map(|tls| tls.certs.client_config()),
                runs: 0,
                stderr_path: PathBuf::new(),
                _dir: dir,
                _db: None,
            };
            match daemon.spawn_and_wait_ready() {
                Ok(()) => {
                    daemon._db = db.take();
                    return daemon;
                }
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
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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
            if let Ok(resp) = self.request("GET", "/healthz", None, &[], None) {
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

    /// One request to this daemon, over HTTPS when it serves HTTPS.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<HttpResponse, String> {
        let https = self.https.as_ref();
        http_send_over(self.http_addr(), https, method, path, token, headers, body)
    }

    /// `GET path` with this daemon's bearer token.
    pub fn get(&self, path: &str) -> Result<HttpResponse, String> {
        self.request("GET", path, Some(&self.token), &[], None)
    }

    /// `GET path` with this daemon's bearer token and extra `headers` (e.g. `Range`).
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, String> {
        self.request("GET", path, Some(&self.token), headers, None)
    }

    /// `POST path` (no body) with this daemon's bearer token.
    pub fn post(&self, path: &str) -> Result<HttpResponse, String> {
        self.request("POST", path, Some(&self.token), &[], None)
    }

    /// `method path` with a JSON body and this daemon's bearer token; the answer parsed
    /// as JSON, with its status.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), String> {
        let body = body.to_string();
        let resp = self.request(method, path, Some(&self.token), &[], Some(&body))?;
        let json = serde_json::from_slice(&resp.body).map_err(|e| {
            format!(
                "{method} {path}: not JSON ({e}): {}",
                tail(&resp.text(), 2000)
            )
        })?;
        Ok((resp.status, json))
    }

    /// `GET path` parsed as JSON, with its status.
    pub fn get_json(&self, path: &str) -> Result<(u16, Value), String> {
        let resp = self.get(path)?;
        let json = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("GET {path}: not JSON ({e}): {}", tail(&resp.text(), 2000)))?;
        Ok((resp.status, json))
    }

    /// The recordings root of this daemon's config (`[store] recordings`).
    pub fn recordings_root(&self) -> PathBuf {
        self.at.dir.join(RECORDINGS_DIR)
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
