//! The pages in a real browser: headless Debian chromium driven by playwright-core
//! (`tests/e2e/qa_flow.mjs`) against the real binary, after a real SIPp call.
//! - qa: signs in, searches the call, opens it; the audio element loads over the Range
//!   endpoint and reports the recording's duration, the waveform shows two channels,
//!   the ring timeline each ring; a score is submitted on the form;
//! - agent: another agent's call page and recording answer 403;
//! - dashboard: the supervisor sees the call's rings for its agent, and the histogram;
//! - wallboard: a second call rings for 7 s and its ring count goes up without a reload.
//!
//! Then the audit log (read over the API) lists the qa user's playback.
//!
//! Needs `node`, `/usr/bin/chromium` and `tests/e2e/node_modules` (`npm ci` there);
//! `.ci/run` installs them.

mod daemon_common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use daemon_common::{
    assert_all_ok, free_port, int_field, str_field, timing_shared, AgentSpec, Daemon, DaemonSpec,
    PortBlock, QueueSpec, Sipp, THREERING,
};

const PASSWORD: &str = "correct horse battery 7";

/// `threering user add NAME --role ROLE` against the daemon's config, password on stdin.
fn add_user(daemon: &Daemon, name: &str, role: &str, agent_id: Option<&str>) {
    let mut cmd = Command::new(THREERING);
    cmd.args(["user", "add", name, "--role", role, "--config"])
        .arg(&daemon.config_path);
    if let Some(id) = agent_id {
        cmd.args(["--agent-id", id]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("threering user add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the browser script with `steps`; panics with its output if it fails.
fn browser(daemon: &Daemon, steps: &str, env: &[(&str, String)]) {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci` in tests/e2e (.ci/run does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: apt-get install chromium (.ci/run does)"
    );
    let shots = std::env::temp_dir().join(format!("threering-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&shots).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(e2e.join("qa_flow.mjs"))
        .current_dir(&e2e)
        .env("BASE", format!("http://{}", daemon.http_addr()))
        .env("PASSWORD", PASSWORD)
        .env("STEPS", steps)
        .env("SHOTS", &shots);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "browser ({steps}):\n{text}\nscreenshots in {}",
        shots.display()
    );
    assert!(
        out.status.success(),
        "the browser steps {steps} failed:\n{text}\n{}",
        daemon.report("")
    );
}

#[test]
fn qa_signs_in_finds_listens_and_scores_and_an_agent_is_refused() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let daemon = Daemon::start_with_ports(
        &DaemonSpec::new(
            vec![AgentSpec::at("1001", agent_port)],
            vec![QueueSpec::consult("longest-idle", &["1001"])],
        ),
        Arc::clone(&ports),
    );
    add_user(&daemon, "qa1", "qa", None);
    add_user(&daemon, "1002", "agent", None);
    add_user(&daemon, "boss", "supervisor", None);
    // The agent answers after 2.2 s: ring 3 at a 1 s cadence; 3 s of talk.
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(2200)
        .spawn();
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(3000)
        .run();
    let agent = agent.wait_at_most(Duration::from_secs(10));
    assert_all_ok(&[&caller, &agent], "one recorded call");
    let call = daemon.the_one_call();
    let id = str_field(&call, "id").unwrap().to_owned();
    // The recording is closed (and its length known) once the record says so.
    let mut recording_ms = None;
    for _ in 0..50 {
        let fresh = daemon.call(&call["id"]).unwrap();
        recording_ms = int_field(&fresh, "recording_ms");
        if recording_ms.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let recording_ms = recording_ms.expect("the recording's length in the record");
    let env = [
        ("CALL_ID", id.clone()),
        ("CALLER", "13800138000".to_owned()),
        ("RINGS", int_field(&call, "rings").unwrap().to_string()),
        ("DURATION_S", format!("{:.3}", recording_ms as f64 / 1000.0)),
        ("QA_USER", "qa1".to_owned()),
        ("AGENT_USER", "1002".to_owned()),
        ("SUP_USER", "boss".to_owned()),
    ];
    browser(&daemon, "qa,agent,dashboard", &env);
    // Every playback is in the audit log.
    let (status, audit) = daemon.get_json("/api/audit?action=recording.play").unwrap();
    assert_eq!(status, 200, "{audit}");
    let plays: Vec<&serde_json::Value> = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {audit}"))
        .iter()
        .filter(|e| e["target"] == id.as_str() && e["actor"] == "qa1")
        .collect();
    assert!(
        !plays.is_empty(),
        "the qa user's playback is audit-logged: {audit}"
    );
    // The wallboard: a call that rings for 7 s; its ring count goes up on the page.
    let agent = Sipp::agent(
        "agent 1001 (slow)",
        "daemon_uas_answer.xml",
        agent_port,
        &ports,
    )
    .pause_ms(7000)
    .spawn();
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(500)
        .spawn();
    browser(&daemon, "wallboard", &env);
    let caller = caller.wait_at_most(Duration::from_secs(20));
    let agent = agent.wait_at_most(Duration::from_secs(10));
    assert_all_ok(&[&caller, &agent], "the call shown on the wallboard");
    let (_, scored) = daemon.get_json("/api/audit?action=qa.score").unwrap();
    assert!(
        scored["entries"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["actor"] == "qa1" && e["target"] == id.as_str())),
        "the score is audit-logged: {scored}"
    );
    // The score the browser saved is there.
    let (_, scores) = daemon.get_json(&format!("/api/calls/{id}/scores")).unwrap();
    assert_eq!(scores["scores"][0]["author"], "qa1", "{scores}");
    assert_eq!(scores["scores"][0]["total"], 85.0, "{scores}");
}
