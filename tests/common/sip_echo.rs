//! A running `threering sip-echo` on fresh loopback ports ([`SipEcho`], started from a
//! [`SipEchoConfig`]), killed by its own PID when dropped; its output is shown when a test
//! fails.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ports::{free_port, loopback, Transport};
use super::text::{read_lossy, tail};
use super::{PASSWORD, READY_TIMEOUT, REALM, THREERING, USER};

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
