//! SIPp: finding the binary, the files of one run (statistics CSV, screen, error log,
//! output) and their tails for reports, the statistics parsed, and [`Sipp`], a UAC run
//! against a target to completion.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ports::{free_port, Transport};
use super::text::{read_lossy, tail};
use super::SCENARIO_DIR;

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

/// The last line of a SIPp CSV (`-trace_stat`, `-trace_counts`): a header line of
/// `;`-separated column names, then one line per dump, the last one holding the final
/// cumulative counters. Column name → value.
pub fn parse_sipp_csv(text: &str) -> Result<HashMap<String, String>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("the CSV file is empty or missing")?;
    let last = lines.next_back().ok_or("the CSV file has no data line")?;
    let names: Vec<&str> = header.split(';').collect();
    let values: Vec<&str> = last.split(';').collect();
    Ok(names
        .iter()
        .zip(values.iter())
        .filter(|(n, _)| !n.is_empty())
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// Parses SIPp's statistics CSV (see [`parse_sipp_csv`]).
pub fn parse_sipp_stats(text: &str) -> Result<SippStats, String> {
    let columns = parse_sipp_csv(text)?;
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
