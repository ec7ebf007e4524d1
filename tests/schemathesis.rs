//! schemathesis (PyPI; `.ci/run` installs the pinned version) against the running
//! daemon's `/api/openapi.json`: requests generated from the document for every operation
//! (examples, coverage, fuzzing, and stateful sequences following the document's links),
//! sent with the admin token and a signed-in session, and not one answer may be a 5xx
//! or a dropped connection (`--checks not_a_server_error`).
//!
//! Left out: the endless streams (`/api/events`, `/api/events/ws`, `/ui/wallboard/stream`).
//! Bounded: `--max-examples` per operation, a fixed seed (the same cases on every run;
//! `THREERING_SCHEMATHESIS_SEED` picks another), and a wall-clock limit after which
//! schemathesis is killed and the test fails.

mod daemon_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use daemon_common::{free_port, tail, AgentSpec, Daemon, DaemonSpec, QueueSpec};
use serde_json::json;

/// The version `.ci/run` installs (the one this test was written against).
const SCHEMATHESIS_VERSION: &str = "4.32.5";
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261124";
const TIME_LIMIT: Duration = Duration::from_secs(600);

/// A signed-in session's cookie (`threering_session=…`) for a new admin user.
fn session_cookie(daemon: &Daemon) -> String {
    let password = "schemathesis-pw-1";
    let (status, body) = daemon
        .send_json(
            "POST",
            "/api/users",
            &json!({ "name": "schemathesis", "role": "admin", "password": password }),
        )
        .expect("POST /api/users");
    assert_eq!(status, 201, "{body}");
    let resp = daemon_common::http_request(daemon.http_addr(), "GET", "/api/me", None, &[])
        .expect("GET /api/me");
    assert_eq!(resp.status, 401, "{}", resp.text());
    // POST /api/login by hand: the answer's Set-Cookie is what we want.
    let body = json!({ "name": "schemathesis", "password": password }).to_string();
    let mut stream = TcpStream::connect(daemon.http_addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        daemon.http_addr(),
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the login");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the login");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, value)| {
            value
                .trim()
                .split(';')
                .next()
                .filter(|c| c.starts_with("threering_session="))
        })
        .unwrap_or_else(|| panic!("no session cookie in {answer}"))
        .to_owned()
}

#[test]
fn schemathesis_finds_no_server_errors() {
    let _shared = daemon_common::timing_shared();
    let version = Command::new("schemathesis").arg("--version").output();
    let version = match version {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => panic!(
            "schemathesis is missing ({e}): `pip install schemathesis=={SCHEMATHESIS_VERSION}` \
             (.ci/run does)"
        ),
    };
    if !version.contains(SCHEMATHESIS_VERSION) {
        eprintln!("note: testing with {version:?}; .ci/run pins {SCHEMATHESIS_VERSION}");
    }
    let daemon = Daemon::start(&DaemonSpec::new(
        vec![AgentSpec::at("1001", free_port())],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    ));
    let cookie = session_cookie(&daemon);
    let seed = std::env::var("THREERING_SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.into());
    let url = format!("http://{}/api/openapi.json", daemon.http_addr());
    let work = tempfile::tempdir().expect("a directory for schemathesis's files");
    let mut command = Command::new("schemathesis");
    command
        .arg("run")
        .arg(&url)
        .args(["--checks", "not_a_server_error"])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", daemon.token),
        ])
        .args(["--header", &format!("Cookie: {cookie}")])
        // Our token and cookie, not generated ones.
        .args(["--generation-with-security-parameters", "false"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", &seed])
        .args(["--generation-database", "none"])
        .args(["--exclude-path", "/api/events"])
        .args(["--exclude-path", "/api/events/ws"])
        .args(["--exclude-path", "/ui/wallboard/stream"])
        .args(["--request-timeout", "10"])
        .args(["--max-redirects", "0"])
        .arg("--no-color")
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run schemathesis");
    // Read both pipes on threads so a full pipe never stalls it.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let output = format!(
        "{}\n{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    let Some(status) = status else {
        panic!(
            "schemathesis ran past {TIME_LIMIT:?} and was killed; its output:\n{}",
            tail(&output, 8000)
        );
    };
    let report = daemon.report("daemon under schemathesis");
    assert!(
        status.success(),
        "schemathesis found problems ({status}) in {:.0?}:\n{}\n{report}",
        started.elapsed(),
        tail(&output, 12000)
    );
    // It really ran: operations tested, test cases passed.
    assert!(
        output.contains("Test cases:") && output.contains("passed"),
        "no summary in:\n{}",
        tail(&output, 4000)
    );
    assert!(
        !daemon.stderr().contains("panicked"),
        "the daemon panicked:\n{report}"
    );
    eprintln!(
        "schemathesis ({}):\n{}",
        version.trim(),
        tail(&output, 1500)
    );
}
