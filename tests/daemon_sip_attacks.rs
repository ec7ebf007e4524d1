//! Attacks on `threering serve`'s SIP side over loopback, with the tools attackers use:
//! SIPVicious's `svwar` (extension enumeration) finds no user by REGISTER, OPTIONS or
//! INVITE; `svcrack` (digest password guessing) is stopped by the lockout before it reaches
//! the right password, which the same run finds when the lockout is out of reach; the
//! lockout shows in the metrics and the admin API, holds against the right password from
//! the attacker's address, spares other addresses and the agent's own phone, and is lifted
//! by an admin (audited). INVITEs from sources that are neither trusted peers nor trunks
//! are challenged (407) before routing and go through with an agent's credentials; a
//! trunk's are taken as they are. Unknown and known users get answers of the same shape.
//!
//! In these daemons loopback is not a trusted peer (`trusted_peers = ["192.0.2.0/24"]`).
//! Other sources are other loopback addresses (127.0.0.2, .3, .4), which Linux routes to
//! the daemon's 127.0.0.1 without any setup.
//!
//! Needs SIPp (`sip-tester`) and SIPVicious (`sipvicious`: /usr/bin/svwar,
//! /usr/bin/svcrack); without them these tests fail, on purpose.

mod daemon_common;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use daemon_common::{
    assert_all_ok, free_port, http_request, parse_response, read_lossy, reports, str_field,
    timing_shared, udp_recv, unique_token, AgentSpec, Checks, Daemon, DaemonSpec, PortBlock,
    QueueSpec, Sipp, QUEUE_NUMBER,
};
use serde_json::Value;
use threering::sip::auth::{authorization_for, parse_challenge};

const SVWAR: &str = "/usr/bin/svwar";
const SVCRACK: &str = "/usr/bin/svcrack";

/// A queue number inside the range svwar scans, so a scan that reached routing would
/// see it.
const SCANNED_QUEUE_NUMBER: &str = "1009";

/// The trunk's address in these configs: its calls need no credentials.
const TRUNK_IP: &str = "127.0.0.3";

/// Agents 1001 and 1002 register (passwords pw1001, pw1002); 1003 is a SIPp UAS at
/// `agent_port` and takes the queues' calls. Loopback is untrusted; 127.0.0.3 is a trunk.
fn attack_spec(agent_port: u16) -> DaemonSpec {
    DaemonSpec::new(
        vec![
            AgentSpec::registering("1001", "pw1001"),
            AgentSpec::registering("1002", "pw1002"),
            AgentSpec::at("1003", agent_port),
        ],
        vec![
            QueueSpec::consult("longest-idle", &["1003"]),
            QueueSpec::named("sales", SCANNED_QUEUE_NUMBER, "longest-idle", &["1003"]),
        ],
    )
    .trusted_peers(&["192.0.2.0/24"])
    .extra_toml(&format!(
        "[[trunks]]\nname = \"pbx\"\naddress = \"{TRUNK_IP}:5060\""
    ))
}

// ---------------------------------------------------------------------------------------
// SIPVicious
// ---------------------------------------------------------------------------------------

/// Runs a SIPVicious tool with `args`, for at most `bound` (then it is killed, by its
/// own PID). Returns its stdout and stderr together.
fn sipvicious(tool: &str, args: &[String], bound: Duration) -> String {
    assert!(
        Path::new(tool).exists(),
        "{tool} is missing: apt-get install sipvicious"
    );
    let dir = tempfile::TempDir::new().expect("temp dir for the tool's output");
    let out_path = dir.path().join("out.txt");
    let out = File::create(&out_path).expect("create the output file");
    let err = out.try_clone().expect("clone the output file handle");
    let mut child = Command::new(tool)
        .args(args)
        .current_dir(dir.path())
        // Its session files, if any, stay in the temp dir.
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {tool}: {e}"));
    let deadline = Instant::now() + bound;
    let finished = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    let text = read_lossy(&out_path);
    assert!(
        finished,
        "{tool} {} did not finish within {bound:?}:\n{text}",
        args.join(" ")
    );
    format!("$ {tool} {}\n{text}", args.join(" "))
}

/// The extensions svwar says exist ("extension 'X' exists ..." and its result table).
fn svwar_found(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.split("extension '").nth(1)?.split('\'').next())
        .map(str::to_owned)
        .collect()
}

fn svwar(daemon: &Daemon, method: &str, force: bool) -> String {
    let mut args: Vec<String> = [
        "-v",
        "-e1000-1010",
        "-m",
        method,
        "-b",
        "127.0.0.1",
        "--maximumtime",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["-P".into(), free_port().to_string()]);
    if force {
        args.push("--force".into());
    }
    args.push(format!("udp://{}", daemon.sip_addr()));
    sipvicious(SVWAR, &args, Duration::from_secs(60))
}

#[test]
fn svwar_enumerates_no_extension() {
    let _shared = timing_shared();
    let daemon = Daemon::start(&attack_spec(free_port()));
    let mut c = Checks::new();
    let mut outputs = String::new();
    for method in ["REGISTER", "OPTIONS", "INVITE"] {
        for force in [false, true] {
            let out = svwar(&daemon, method, force);
            let found = svwar_found(&out);
            c.that(
                found.is_empty(),
                format!("svwar -m {method} (force {force}) found extensions {found:?}"),
            );
            c.that(
                out.contains("found nothing") && !out.contains("| Extension"),
                format!("svwar -m {method} (force {force}) should report \"found nothing\""),
            );
            // Not "found nothing" because nobody answered: svwar got our answers.
            let answered = out.contains("Ok SIP device found")
                || out.contains("replied with an authentication request for an unknown");
            c.that(
                answered && !out.contains("No server response"),
                format!("svwar -m {method} (force {force}) got no answer from the daemon"),
            );
            outputs.push_str(&out);
            outputs.push('\n');
        }
    }
    // The INVITE scan never got past the challenge: no call was routed.
    let calls = daemon
        .calls()
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    c.that(
        calls.is_empty(),
        format!("the INVITE scan made call records: {calls:?}"),
    );
    c.finish(&Value::Null, &outputs);
}

/// A password list: `wrong` wrong ones, the right one, then two more wrong ones.
fn wordlist(dir: &Path, wrong: usize, right: &str) -> String {
    let mut words: Vec<String> = (1..=wrong).map(|i| format!("guess{i}")).collect();
    words.push(right.to_owned());
    words.extend(["after1".to_owned(), "after2".to_owned()]);
    let path = dir.join("words.txt");
    std::fs::write(&path, words.join("\n") + "\n").expect("write the word list");
    path.display().to_string()
}

fn svcrack(daemon: &Daemon, user: &str, words: &str) -> String {
    let args: Vec<String> = vec![
        "-v".into(),
        "-u".into(),
        user.into(),
        "-d".into(),
        words.into(),
        "-b".into(),
        "127.0.0.1".into(),
        "-P".into(),
        free_port().to_string(),
        format!("udp://{}", daemon.sip_addr()),
    ];
    sipvicious(SVCRACK, &args, Duration::from_secs(90))
}

#[test]
fn svcrack_finds_the_password_when_the_lockout_is_out_of_reach() {
    // The control for the next test: the tool and the word list do crack agent 1001
    // when the lockout needs more failures than the list has.
    let _shared = timing_shared();
    let daemon = Daemon::start(&attack_spec(free_port()).sip_toml("auth_max_failures = 100"));
    let dir = tempfile::TempDir::new().expect("temp dir");
    let words = wordlist(dir.path(), 8, "pw1001");
    let out = svcrack(&daemon, "1001", &words);
    assert!(
        out.contains("The password for 1001 is pw1001"),
        "svcrack should have found pw1001 without a lockout:\n{out}"
    );
}

/// `name{labels} value` from the daemon's `/metrics`; 0 when absent.
fn metric(daemon: &Daemon, series: &str) -> f64 {
    let resp = daemon
        .get("/metrics")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    resp.text()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn lockouts(daemon: &Daemon) -> Vec<Value> {
    let (status, json) = daemon
        .get_json("/api/security/lockouts")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    assert_eq!(status, 200, "GET /api/security/lockouts: {json}");
    json["lockouts"].as_array().cloned().unwrap_or_default()
}

fn lockout<'a>(list: &'a [Value], kind: &str, key: &str) -> Option<&'a Value> {
    list.iter()
        .find(|l| str_field(l, "kind") == Some(kind) && str_field(l, "key") == Some(key))
}

fn delete(daemon: &Daemon, path: &str) -> u16 {
    http_request(daemon.http_addr(), "DELETE", path, Some(&daemon.token), &[])
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)))
        .status
}

/// One REGISTER exchange of `user` with `password` from `ip`; `accepted` picks the
/// scenario expecting 200 (else 403).
fn register(
    daemon: &Daemon,
    ports: &PortBlock,
    ip: &str,
    user: &str,
    password: &str,
    accepted: bool,
) -> daemon_common::SippOutcome {
    let (scenario, want) = if accepted {
        ("daemon_register_as.xml", "200")
    } else {
        ("daemon_register_refused.xml", "403")
    };
    Sipp::client(
        &format!("REGISTER {user} from {ip}, expecting {want}"),
        scenario,
        daemon.sip_addr(),
        ports,
    )
    .local_ip(ip)
    .service(user)
    .arg("-au")
    .arg(user)
    .arg("-ap")
    .arg(password)
    .timeout(Duration::from_secs(10))
    .run()
}

#[test]
fn svcrack_is_stopped_by_the_lockout() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let daemon = Daemon::start_with_ports(&attack_spec(free_port()), Arc::clone(&ports));

    // Agent 1001's phone registers from 127.0.0.2 before the attack.
    let phone = register(&daemon, &ports, "127.0.0.2", "1001", "pw1001", true);
    assert_all_ok(&[&phone], "the agent's phone registers before the attack");

    // Five wrong guesses lock 127.0.0.1 (and the name 1001); the right password is 9th.
    let dir = tempfile::TempDir::new().expect("temp dir");
    let words = wordlist(dir.path(), 8, "pw1001");
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let out = svcrack(&daemon, "1001", &words);
    let mut c = Checks::new();
    c.that(
        !out.contains("The password for") && out.contains("found nothing"),
        "svcrack must not find the password",
    );
    c.that(
        out.contains("no more passwords"),
        "svcrack should have gone through its whole list (each guess answered)",
    );

    // Metrics and the admin API show it.
    c.that(
        metric(&daemon, "threering_sip_auth_failures_total") == 5.0,
        format!(
            "threering_sip_auth_failures_total = {} (want 5: the guesses after the lock are not checked)",
            metric(&daemon, "threering_sip_auth_failures_total")
        ),
    );
    for kind in ["source", "user"] {
        let total = metric(
            &daemon,
            &format!("threering_sip_auth_lockouts_total{{kind=\"{kind}\"}}"),
        );
        let active = metric(
            &daemon,
            &format!("threering_sip_auth_lockouts_active{{kind=\"{kind}\"}}"),
        );
        c.that(
            total == 1.0 && active == 1.0,
            format!("{kind} lockouts: total {total}, active {active} (want 1 and 1)"),
        );
    }
    let list = lockouts(&daemon);
    let source = lockout(&list, "source", "127.0.0.1");
    c.that(
        source.is_some_and(|l| l["failures"] == 5 && l["refused"] == 6),
        format!("source 127.0.0.1: want 5 failures and 6 refused guesses in {list:?}"),
    );
    let until = source.and_then(|l| l["locked_until"].as_i64()).unwrap_or(0);
    c.that(
        (started_ms + 590_000..started_ms + 700_000).contains(&until),
        format!("locked_until {until}: want about 600 s after {started_ms}"),
    );
    c.that(
        lockout(&list, "user", "1001").is_some(),
        format!("user 1001 should be locked too: {list:?}"),
    );

    // The right password from the attacker's address is refused while locked; the
    // agent's phone (a known source) and another agent elsewhere still register; a new
    // address gets nowhere with the locked name.
    let attacker = register(&daemon, &ports, "127.0.0.1", "1001", "pw1001", false);
    let phone = register(&daemon, &ports, "127.0.0.2", "1001", "pw1001", true);
    let other_agent = register(&daemon, &ports, "127.0.0.2", "1002", "pw1002", true);
    let new_source = register(&daemon, &ports, "127.0.0.4", "1001", "pw1001", false);
    let runs = [&attacker, &phone, &other_agent, &new_source];
    for run in runs {
        c.that(run.ok(), format!("{}: did not get its status", run.label));
    }

    // An admin lifts both locks (audited); then the attacker's address may try again.
    c.that(
        delete(&daemon, "/api/security/lockouts/source/127.0.0.1") == 200,
        "DELETE the source lockout: want 200",
    );
    c.that(
        delete(&daemon, "/api/security/lockouts/source/127.0.0.1") == 404,
        "DELETE it again: want 404",
    );
    let still = register(&daemon, &ports, "127.0.0.1", "1001", "pw1001", false);
    c.that(
        still.ok(),
        "the user lock still holds at 127.0.0.1: want 403",
    );
    c.that(
        delete(&daemon, "/api/security/lockouts/user/1001") == 200,
        "DELETE the user lockout: want 200",
    );
    c.that(
        delete(&daemon, "/api/security/lockouts/robot/1001") == 404,
        "DELETE an unknown kind: want 404",
    );
    let after = register(&daemon, &ports, "127.0.0.1", "1001", "pw1001", true);
    c.that(
        after.ok(),
        "after lifting, the right password registers: want 200",
    );
    c.that(lockouts(&daemon).is_empty(), "no lockout left");
    c.that(
        metric(
            &daemon,
            "threering_sip_auth_lockouts_active{kind=\"source\"}",
        ) == 0.0,
        "the active source lockouts gauge is back to 0",
    );
    let (_, audit) = daemon
        .get_json("/api/audit?action=sip.lockout.lift")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)));
    let targets: Vec<String> = audit["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| str_field(e, "target").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    c.that(
        targets.len() == 2
            && targets.contains(&"source:127.0.0.1".to_owned())
            && targets.contains(&"user:1001".to_owned()),
        format!("audit entries sip.lockout.lift: {targets:?}"),
    );
    c.finish(
        &Value::Array(list),
        &format!(
            "{out}\n{}",
            reports(&[&attacker, &phone, &other_agent, &new_source, &still, &after])
        ),
    );
}

// ---------------------------------------------------------------------------------------
// INVITEs
// ---------------------------------------------------------------------------------------

#[test]
fn invites_need_a_trunk_a_trusted_peer_or_an_agents_credentials() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let daemon = Daemon::start_with_ports(&attack_spec(agent_port), Arc::clone(&ports));
    // Agent 1003 answers the two calls that get through.
    let agent = Sipp::agent("agent 1003", "daemon_uas_answer.xml", agent_port, &ports)
        .calls(2)
        .spawn();

    let challenged = Sipp::caller("daemon_uac_407.xml", daemon.sip_addr(), &ports).run();
    let wrong = Sipp::caller("daemon_uac_agent_auth.xml", daemon.sip_addr(), &ports)
        .arg("-au")
        .arg("1001")
        .arg("-ap")
        .arg("not-pw1001")
        .timeout(Duration::from_secs(10))
        .run();
    let authenticated = Sipp::caller("daemon_uac_agent_auth.xml", daemon.sip_addr(), &ports)
        .arg("-au")
        .arg("1001")
        .arg("-ap")
        .arg("pw1001")
        .pause_ms(500)
        .run();
    let trunk = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .local_ip(TRUNK_IP)
        .pause_ms(500)
        .run();
    let agent = agent.wait_at_most(Duration::from_secs(30));
    let all = reports(&[&challenged, &wrong, &authenticated, &trunk, &agent]);

    let mut c = Checks::new();
    c.that(
        challenged.ok() && challenged.messages.contains("Proxy-Authenticate: Digest"),
        "an INVITE without credentials from an untrusted source: want 407 with a challenge",
    );
    c.that(
        !wrong.ok() && wrong.messages.contains("SIP/2.0 403"),
        "an INVITE with a wrong agent password: want 403",
    );
    c.that(
        authenticated.ok(),
        "an INVITE with agent 1001's credentials: want the call answered",
    );
    c.that(
        trunk.ok(),
        "an INVITE from the trunk's address: want the call answered",
    );
    c.that(agent.ok_with(2), "agent 1003 should have taken both calls");
    let calls = daemon.wait_for_ended_calls(2, Duration::from_secs(10));
    c.that(
        calls.len() == 2
            && calls.iter().all(|call| {
                str_field(call, "outcome") == Some("answered")
                    && str_field(call, "agent") == Some("1003")
            }),
        format!("want two answered calls by 1003 (the challenged ones make no record): {calls:?}"),
    );
    c.finish(&Value::Array(calls), &all);
}

// ---------------------------------------------------------------------------------------
// The same answer for every user name
// ---------------------------------------------------------------------------------------

/// Status line, header names in order, and the values that may not depend on the user
/// name (challenges with their nonces blanked).
fn shape(bytes: &[u8]) -> String {
    let resp = parse_response(bytes)
        .unwrap_or_else(|| panic!("not a SIP response: {:?}", String::from_utf8_lossy(bytes)));
    let mut out = resp.status_line();
    for (name, value) in &resp.headers {
        out.push_str(&format!("\n{name}"));
        let lower = name.to_ascii_lowercase();
        if lower.ends_with("-authenticate") || lower == "content-length" || lower == "server" {
            let blanked: Vec<String> = value
                .split(", ")
                .map(|p| {
                    if p.starts_with("nonce=") {
                        "nonce=…".to_owned()
                    } else {
                        p.to_owned()
                    }
                })
                .collect();
            out.push_str(&format!(": {}", blanked.join(", ")));
        }
    }
    out
}

fn request(
    method: &str,
    user: &str,
    local: SocketAddr,
    target: SocketAddr,
    auth: Option<(&str, &str)>,
) -> String {
    let token = unique_token();
    let (uri, body) = match method {
        "REGISTER" => (format!("sip:{target}"), String::new()),
        _ => {
            let sdp = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                       m=audio 9 RTP/AVP 0\r\n";
            (format!("sip:{user}@{target}"), sdp.to_owned())
        }
    };
    let auth_line = auth
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .unwrap_or_default();
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{target}>;tag=f-{token}\r\n\
         To: <sip:{user}@{target}>\r\n\
         Call-ID: {token}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         {auth_line}{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The value of header `name` in the request text `req`.
fn request_header<'a>(req: &'a str, name: &str) -> &'a str {
    req.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or("")
}

/// Sends `req` and returns its final response (others, e.g. retransmissions of earlier
/// answers, are skipped) and how long it took. A final answer to an INVITE is ACKed.
fn exchange(socket: &UdpSocket, target: SocketAddr, req: &str) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    socket.send_to(req.as_bytes(), target).expect("send");
    let call_id = request_header(req, "Call-ID");
    let deadline = started + Duration::from_secs(5);
    let resp = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (data, _) =
            udp_recv(socket, left).unwrap_or_else(|| panic!("no final response to:\n{req}"));
        match parse_response(&data) {
            Some(r) if r.code >= 200 && r.header("Call-ID") == Some(call_id) => break r,
            _ => continue,
        }
    };
    let took = started.elapsed();
    if req.starts_with("INVITE ") {
        // RFC 3261 17.1.1.3: the ACK of a non-2xx answer, on the INVITE's branch.
        let uri = req.split(' ').nth(1).unwrap_or_default();
        let ack = format!(
            "ACK {uri} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            request_header(req, "Via"),
            request_header(req, "From"),
            resp.header("To").unwrap_or_default(),
        );
        socket
            .send_to(ack.as_bytes(), target)
            .expect("send the ACK");
    }
    (resp.raw, took)
}

/// The Authorization (or Proxy-Authorization) answering the first challenge in `resp`.
fn credentials(resp: &[u8], method: &str, uri: &str, user: &str, password: &str) -> String {
    let parsed = parse_response(resp).expect("a response");
    let value = parsed
        .header("WWW-Authenticate")
        .or_else(|| parsed.header("Proxy-Authenticate"))
        .expect("a challenge");
    let challenge = parse_challenge(value).expect("our challenge parses");
    authorization_for(&challenge, method, uri, user, password, "0a4f113b", 1)
}

#[test]
fn unknown_and_known_users_get_the_same_answers() {
    let _shared = timing_shared();
    // Enough room for the timing samples below without a lockout.
    let daemon = Daemon::start(&attack_spec(free_port()).sip_toml("auth_max_failures = 1000"));
    let target = daemon.sip_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = socket.local_addr().expect("local addr");
    let mut c = Checks::new();
    let mut context = String::new();

    // REGISTER: the challenge, then a wrong password / an unknown user.
    let mut refusals = Vec::new();
    let mut challenges = Vec::new();
    for user in ["1001", "7777"] {
        let (challenge, _) = exchange(
            &socket,
            target,
            &request("REGISTER", user, local, target, None),
        );
        let auth = credentials(
            &challenge,
            "REGISTER",
            &format!("sip:{target}"),
            user,
            "guess",
        );
        let (refusal, _) = exchange(
            &socket,
            target,
            &request(
                "REGISTER",
                user,
                local,
                target,
                Some(("Authorization", &auth)),
            ),
        );
        context.push_str(&format!(
            "{}\n{}\n",
            String::from_utf8_lossy(&challenge),
            String::from_utf8_lossy(&refusal)
        ));
        challenges.push(shape(&challenge));
        refusals.push(shape(&refusal));
    }
    c.that(
        challenges[0] == challenges[1] && challenges[0].starts_with("401"),
        format!("REGISTER challenges differ: {challenges:#?}"),
    );
    c.that(
        refusals[0] == refusals[1] && refusals[0].starts_with("403"),
        format!("REGISTER refusals differ: {refusals:#?}"),
    );

    // INVITE from an untrusted source: an agent's number, a queue number and nothing at
    // all are challenged alike.
    let invites: Vec<String> = ["1001", QUEUE_NUMBER, "7777"]
        .iter()
        .map(|user| {
            let (resp, _) = exchange(
                &socket,
                target,
                &request("INVITE", user, local, target, None),
            );
            context.push_str(&format!("{}\n", String::from_utf8_lossy(&resp)));
            shape(&resp)
        })
        .collect();
    c.that(
        invites.iter().all(|s| s == &invites[0]) && invites[0].starts_with("407"),
        format!("INVITE challenges differ: {invites:#?}"),
    );

    // Timing: wrong password vs unknown user, interleaved, medians compared.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        for (user, times) in [("1001", &mut known), ("7777", &mut unknown)] {
            let (challenge, _) = exchange(
                &socket,
                target,
                &request("REGISTER", user, local, target, None),
            );
            let auth = credentials(
                &challenge,
                "REGISTER",
                &format!("sip:{target}"),
                user,
                "guess",
            );
            let (_, took) = exchange(
                &socket,
                target,
                &request(
                    "REGISTER",
                    user,
                    local,
                    target,
                    Some(("Authorization", &auth)),
                ),
            );
            times.push(took);
        }
    }
    known.sort();
    unknown.sort();
    let (known_median, unknown_median) = (known[20], unknown[20]);
    println!("REGISTER refusal round trip, median of 40: wrong password {known_median:?}, unknown user {unknown_median:?}");
    let ratio = unknown_median.as_secs_f64() / known_median.as_secs_f64();
    c.that(
        (0.5..2.0).contains(&ratio),
        format!("refusal time: unknown user {unknown_median:?} vs wrong password {known_median:?}"),
    );
    c.finish(&Value::Null, &context);
}
