//! `threering serve` against hostile and odd input, and its life cycle: the RFC 4475
//! torture messages over UDP, an unknown number, `check-config`, the API's bearer-token
//! check, and SIGTERM during a connected call.
//!
//! Needs SIPp 3.6 (`apt-get install sip-tester`); without it the tests that place calls
//! fail, on purpose.

mod daemon_common;

use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_common::{
    assert_all_ok, check_config, check_options_ok, config_toml, free_port, http_get,
    invite_request, parse_response, reports, show_bytes, torture_files, udp_final_response,
    udp_recv, udp_socket, unique_token, AgentSpec, Checks, Daemon, DaemonSpec, Placement,
    PortBlock, QueueSpec, Sipp, SippRun, Transport, QUEUE_NUMBER, TORTURE_DIR,
};

fn one_agent_spec(agent_port: u16) -> DaemonSpec {
    DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    )
}

/// A SIPp call through the daemon that must complete (agent answers after 200 ms, the
/// caller hangs up after 500 ms).
fn assert_a_call_completes(daemon: &Daemon, ports: &PortBlock, agent_port: u16, context: &str) {
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, ports)
        .pause_ms(200)
        .spawn();
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), ports)
        .pause_ms(500)
        .run();
    let agent = agent.wait_at_most(Duration::from_secs(15));
    assert_all_ok(&[&caller, &agent], context);
}

// ---------------------------------------------------------------------------------------
// RFC 4475
// ---------------------------------------------------------------------------------------

/// What the daemon must answer first to a torture file (see shared/rfc4475/README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Responses (valid or not) and TC_TEST_I (no SIP-Version, no Via): nothing at all.
    Nothing,
    /// Requests the parser refuses.
    Status(u16),
    /// Requests that parse: some SIP response (a B2BUA answers them by its own rules:
    /// 404 for an unknown number, 401 for REGISTER, 400 for missing headers, ...).
    AnyResponse,
}

const NOTHING: &[&str] = &[
    "TC_BCAST_V.dat",
    "TC_BIGCODE_V.dat",
    "TC_NOREASON_V.dat",
    "TC_UNREASON_V.dat",
    "TC_SCALARLG_V.dat",
    "TC_TEST_I.dat",
];

/// RFC 4475 §3.1.2 requests: refused by the parser with 400.
const REFUSED_400: &[&str] = &[
    "TC_BADINV01_I.dat",
    "TC_CLERR_I.dat",
    "TC_NCL_I.dat",
    "TC_SCALAR02_V.dat",
    "TC_QUOTBAL_I.dat",
    "TC_LTGTRURI_I.dat",
    "TC_LWSRURI_I.dat",
    "TC_LWSSTART_V.dat",
    "TC_TRWS_I.dat",
    "TC_ESCRURI_V.dat",
    "TC_BADDATE_V.dat",
    "TC_REGBADCT_I.dat",
    "TC_BADASPEC_I.dat",
    "TC_BADDN_I.dat",
    "TC_MISMATCH01_V.dat",
    "TC_MISMATCH02_V.dat",
];

fn expect_for(file: &str) -> Expect {
    if NOTHING.contains(&file) {
        Expect::Nothing
    } else if REFUSED_400.contains(&file) {
        Expect::Status(400)
    } else if file == "TC_BADVERS_V.dat" {
        Expect::Status(505) // SIP/7.0: RFC 4475 §3.1.2.16
    } else {
        Expect::AnyResponse
    }
}

#[test]
fn rfc4475_torture_messages_over_udp_then_options_and_a_call_still_work() {
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let mut daemon = Daemon::start_with_ports(&one_agent_spec(agent_port), Arc::clone(&ports));
    let target = daemon.sip_addr();

    let files = torture_files();
    assert_eq!(
        files.len(),
        50,
        "expected the 50 RFC 4475 files in {TORTURE_DIR}"
    );
    // One socket per file, kept to the end: retransmitted final responses to the INVITEs
    // land on a live socket and never in another file's exchange.
    let mut kept: Vec<UdpSocket> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let expect = expect_for(&name);
        let socket = udp_socket();
        if let Err(e) = socket.send_to(&bytes, target) {
            problems.push(format!("{name}: send failed: {e}"));
            continue;
        }
        let wait = match expect {
            Expect::Nothing => Duration::from_secs(1),
            _ => Duration::from_secs(2),
        };
        let first = udp_recv(&socket, wait).map(|(data, _)| data);
        kept.push(socket);
        let verdict = match (expect, &first) {
            (Expect::Nothing, None) => Ok(()),
            (Expect::Nothing, Some(got)) => Err(format!(
                "expected no response, got {}",
                show_bytes(got, 200)
            )),
            (_, None) => Err(format!(
                "expected {expect:?}, got no response within {wait:?}"
            )),
            (Expect::Status(want), Some(got)) => match parse_response(got) {
                Some(resp) if resp.code == want => Ok(()),
                _ => Err(format!("expected {want}, got {}", show_bytes(got, 200))),
            },
            (Expect::AnyResponse, Some(got)) => match parse_response(got) {
                Some(_) => Ok(()),
                None => Err(format!(
                    "expected a SIP response, got {}",
                    show_bytes(got, 200)
                )),
            },
        };
        if let Err(e) = verdict {
            problems.push(format!("{name}: {e}"));
        }
        if let Err(e) = check_options_ok(Transport::Udp, target) {
            problems.push(format!("after {name}: {e}"));
        }
    }
    daemon.assert_running();
    assert!(
        problems.is_empty(),
        "{} problem(s) with the torture messages:\n  {}\n{}",
        problems.len(),
        problems.join("\n  "),
        daemon.report("daemon output:")
    );
    drop(kept);
    assert_a_call_completes(
        &daemon,
        &ports,
        agent_port,
        "a call after the 50 torture messages must still complete",
    );
}

// ---------------------------------------------------------------------------------------
// Unknown number
// ---------------------------------------------------------------------------------------

#[test]
fn a_call_to_an_unknown_number_gets_404() {
    let ports = Arc::new(PortBlock::new());
    let daemon = Daemon::start_with_ports(&one_agent_spec(free_port()), Arc::clone(&ports));
    let caller = Sipp::caller("daemon_uac_404.xml", daemon.sip_addr(), &ports)
        .service("4009999999")
        .timeout(Duration::from_secs(15))
        .run();
    assert_all_ok(
        &[&caller],
        "INVITE to 4009999999 (no queue has it) must get 404",
    );
}

// ---------------------------------------------------------------------------------------
// check-config
// ---------------------------------------------------------------------------------------

/// A config file for `spec` in `dir` (ports are only written, never bound).
fn write_config(
    dir: &Path,
    spec: &DaemonSpec,
    edit: impl Fn(String) -> String,
) -> std::path::PathBuf {
    let at = Placement {
        sip_port: free_port(),
        http_port: free_port(),
        rtp: (30_000, 30_099),
        dir: dir.to_path_buf(),
    };
    let text = edit(config_toml(spec, &at, "check-config-token"));
    let path = dir.join(format!("threering-{}.toml", unique_token()));
    fs::write(&path, text).expect("write the config");
    path
}

fn two_agents() -> Vec<AgentSpec> {
    vec![AgentSpec::at("1001", 15071), AgentSpec::at("1002", 15072)]
}

fn run_check(path: &Path) -> (bool, String) {
    let out = check_config(path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = format!(
        "--- `threering check-config {}` exited {}; output:\n{text}\n--- file:\n{}",
        path.display(),
        out.status,
        fs::read_to_string(path).unwrap_or_default()
    );
    (out.status.success(), shown)
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::TempDir::new().unwrap();
    let spec = DaemonSpec::new(
        two_agents(),
        vec![QueueSpec::consult("ring-all", &["1001", "1002"])],
    );
    let (ok, shown) = run_check(&write_config(dir.path(), &spec, |t| t));
    assert!(ok, "a good config must pass\n{shown}");
}

#[test]
fn check_config_rejects_an_unknown_key_and_names_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let spec = DaemonSpec::new(
        two_agents(),
        vec![QueueSpec::consult("ring-all", &["1001", "1002"])],
    );
    let path = write_config(dir.path(), &spec, |t| {
        t.replacen("[rings]\n", "[rings]\ncadense_ms = 1000\n", 1)
    });
    let (ok, shown) = run_check(&path);
    assert!(!ok, "an unknown key must make check-config fail\n{shown}");
    assert!(
        shown.contains("cadense_ms"),
        "the output must name the unknown key `cadense_ms`\n{shown}"
    );
}

#[test]
fn check_config_names_a_queue_agent_that_does_not_exist() {
    let dir = tempfile::TempDir::new().unwrap();
    let spec = DaemonSpec::new(
        two_agents(),
        vec![QueueSpec::consult("ring-all", &["1001", "9999"])],
    );
    let (ok, shown) = run_check(&write_config(dir.path(), &spec, |t| t));
    assert!(!ok, "a queue naming an unknown agent must fail\n{shown}");
    let text = shown.split("\n--- file:").next().unwrap_or_default();
    assert!(
        text.contains("queues[0].agents") && text.contains("9999"),
        "the output must name the key `queues[0].agents` and the agent \"9999\"\n{shown}"
    );
}

#[test]
fn check_config_prints_every_problem() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut second = QueueSpec::consult("ring-all", &["8888"]);
    second.name = "complaints".into();
    second.numbers = vec!["4008005678".into()];
    let spec = DaemonSpec::new(
        two_agents(),
        vec![QueueSpec::consult("ring-all", &["1001", "9999"]), second],
    );
    let (ok, shown) = run_check(&write_config(dir.path(), &spec, |t| t));
    assert!(!ok, "unknown agents in two queues must fail\n{shown}");
    let text = shown.split("\n--- file:").next().unwrap_or_default();
    for want in ["queues[0].agents", "9999", "queues[1].agents", "8888"] {
        assert!(
            text.contains(want),
            "the output must report both problems; `{want}` is missing\n{shown}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// API access
// ---------------------------------------------------------------------------------------

#[test]
fn api_calls_need_a_valid_bearer_token() {
    let daemon = Daemon::start(&one_agent_spec(free_port()));
    let addr = daemon.http_addr();
    let health = http_get(addr, "/healthz", None).expect("GET /healthz");
    assert_eq!(health.status, 200, "/healthz needs no token");
    let none = http_get(addr, "/api/calls", None).expect("GET /api/calls");
    assert_eq!(none.status, 401, "no token: {}", none.text());
    let wrong = http_get(addr, "/api/calls", Some("not-the-token")).expect("GET /api/calls");
    assert_eq!(wrong.status, 401, "wrong token: {}", wrong.text());
    let calls = daemon.calls().expect("GET /api/calls with the token");
    assert!(calls.is_empty(), "a fresh daemon has no calls: {calls:?}");
}

// ---------------------------------------------------------------------------------------
// SIGTERM
// ---------------------------------------------------------------------------------------

/// Starts a call that only ends when someone sends BYE to both SIPps (the agent answers
/// after 200 ms), and waits until the caller has sent its ACK.
fn connected_call(daemon: &Daemon, ports: &PortBlock, agent_port: u16) -> (SippRun, SippRun) {
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, ports)
        .pause_ms(200)
        .timeout(Duration::from_secs(40))
        .spawn();
    let mut caller = Sipp::caller("daemon_uac_wait_bye.xml", daemon.sip_addr(), ports)
        .timeout(Duration::from_secs(40))
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caller
        .messages_so_far()
        .lines()
        .any(|l| l.starts_with("ACK "))
    {
        if !caller.running() || Instant::now() >= deadline {
            let caller = caller.wait_at_most(Duration::from_secs(1));
            let agent = agent.kill();
            panic!(
                "the call was not connected (no ACK from the caller) within 10 s\n{}\n{}",
                reports(&[&caller, &agent]),
                daemon.report("daemon output:")
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    // Let media start and the answer settle.
    thread::sleep(Duration::from_millis(500));
    (caller, agent)
}

const GRACE_MS: u64 = 2000;

#[test]
fn sigterm_during_a_call_ends_it_after_the_grace_period_and_keeps_its_record() {
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = one_agent_spec(agent_port).grace_ms(GRACE_MS);
    let mut daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let (caller, agent) = connected_call(&daemon, &ports, agent_port);

    let bound = Duration::from_millis(GRACE_MS) + Duration::from_secs(5);
    let stopped = daemon.terminate(bound);
    let caller = caller.wait_at_most(Duration::from_secs(5));
    let agent = agent.wait_at_most(Duration::from_secs(5));
    let Some((status, took)) = stopped else {
        panic!(
            "{}",
            daemon.report(&format!(
                "the daemon did not exit within grace_ms {GRACE_MS} + 5 s of SIGTERM \
                 (killed)\n{}",
                reports(&[&caller, &agent])
            ))
        );
    };
    eprintln!("the daemon exited {took:?} after SIGTERM: {status}");
    assert_all_ok(
        &[&caller, &agent],
        "when the grace period is over the daemon must end the call: a BYE to each leg",
    );

    // Same config, same database: the call's row must be there.
    daemon.start_again();
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "agent", "1001");
    c.present(&call, "answered_at");
    c.present(&call, "ended_at");
    c.str_eq(&call, "hangup_side", "system");
    c.int_in(&call, "talk_ms", 1000, 15_000);
    c.finish(&call, &reports(&[&caller, &agent]));
}

#[test]
fn sigterm_refuses_new_invites_with_503_while_draining() {
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = one_agent_spec(agent_port).grace_ms(4000);
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let (caller, agent) = connected_call(&daemon, &ports, agent_port);

    let pid = daemon.pid().expect("daemon pid");
    let sent = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert!(
        matches!(sent, Ok(s) if s.success()),
        "kill -TERM {pid}: {sent:?}"
    );
    thread::sleep(Duration::from_millis(300));

    let socket = udp_socket();
    let local = socket.local_addr().unwrap();
    let invite = invite_request(local, daemon.sip_addr(), QUEUE_NUMBER, &unique_token());
    socket
        .send_to(invite.as_bytes(), daemon.sip_addr())
        .expect("send INVITE");
    let answer = udp_final_response(&socket, Duration::from_secs(2));

    let caller = caller.kill();
    let agent = agent.kill();
    let shown = answer.as_deref().map_or_else(
        || "no final response within 2 s".to_string(),
        |b| show_bytes(b, 400),
    );
    assert!(
        answer.as_deref().and_then(parse_response).map(|r| r.code) == Some(503),
        "{}",
        daemon.report(&format!(
            "a new INVITE while draining after SIGTERM must get 503; got: {shown}\n{}",
            reports(&[&caller, &agent])
        ))
    );
}
