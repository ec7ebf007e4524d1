//! TLS against the running binary, with real TLS peers over real sockets: a call placed
//! by SIPp through Kamailio, which speaks TLS to the daemon both ways (the caller's
//! INVITE in, the INVITE to the agent out); SIP requests over a rustls connection; HTTPS
//! checked with curl; `check-config` on missing certificate keys. Certificates are made
//! per test with the `openssl` CLI.
//!
//! Needs SIPp (`sip-tester`), Kamailio with its TLS module (`kamailio`,
//! `kamailio-tls-modules`), `openssl` and `curl`; without them these tests fail, on
//! purpose.

mod daemon_common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use daemon_common::{
    assert_all_ok, check_config, check_options_ok, client_trusting, config_toml, free_port,
    https_request, loopback, parse_response, reports, str_field, AgentSpec, Checks, Daemon,
    DaemonSpec, Kamailio, Placement, PortBlock, QueueSpec, Sipp, TestCerts, TlsSip, TlsSpec,
    Transport,
};

/// A SIP request over TLS from `from` (our end of the connection).
fn request(method: &str, from: SocketAddr, call_id: &str, extra: &str) -> String {
    format!(
        "{method} sip:4008001234@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TLS {from};branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:1001@127.0.0.1>;tag=tls-{call_id}\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:1001@{from};transport=tls>\r\n\
         Max-Forwards: 70\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

fn status_of(message: &str) -> u16 {
    parse_response(message.as_bytes()).map_or(0, |r| r.code)
}

// ---------------------------------------------------------------------------------------
// SIP over TLS through Kamailio
// ---------------------------------------------------------------------------------------

#[test]
fn a_call_through_kamailio_reaches_the_daemon_and_the_agent_over_tls() {
    let certs = TestCerts::generate();
    let ports = Arc::new(PortBlock::new());
    let (daemon_tls, kamailio_udp, kamailio_tls, agent_port) =
        (free_port(), free_port(), free_port(), free_port());
    // The agent is reached through Kamailio's TLS port; Kamailio passes the INVITE on
    // to the SIPp agent over UDP.
    let agent = AgentSpec {
        contact: Some(format!("sip:1001@127.0.0.1:{kamailio_tls};transport=tls")),
        ..AgentSpec::at("1001", agent_port)
    };
    let spec = DaemonSpec::new(
        vec![agent],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    )
    .tls(TlsSpec {
        certs: certs.clone(),
        sip_port: Some(daemon_tls),
        https: false,
    });
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let kamailio = Kamailio::start(
        kamailio_udp,
        kamailio_tls,
        loopback(daemon_tls),
        loopback(agent_port),
        &certs,
    );
    // Kamailio relays an OPTIONS to the daemon over TLS: the whole path is up.
    let mut ready = Err(String::new());
    for _ in 0..20 {
        ready = check_options_ok(Transport::Udp, loopback(kamailio_udp));
        if ready.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Err(e) = ready {
        panic!(
            "{}",
            daemon.report(&format!("OPTIONS via Kamailio over TLS: {e}"))
        );
    }

    let agent = Sipp::agent("agent 1001", "daemon_uas_answer_rr.xml", agent_port, &ports)
        .pause_ms(200)
        .spawn();
    let caller = Sipp::caller("daemon_uac.xml", loopback(kamailio_udp), &ports)
        .pause_ms(1000)
        .run();
    let agent = agent.wait_at_most(Duration::from_secs(15));
    assert_all_ok(
        &[&caller, &agent],
        "SIPp → Kamailio → TLS → threering → TLS → Kamailio → SIPp",
    );

    let call = daemon.the_one_call();
    let mut checks = Checks::new();
    checks.str_eq(&call, "agent", "1001");
    checks.str_eq(&call, "hangup_side", "caller");
    checks.that(
        caller.rtp() > 0 && agent.rtp() > 0,
        "media flowed both ways",
    );
    // The INVITE to the agent left the daemon over TLS (its Via, under Kamailio's).
    checks.that(
        agent
            .messages
            .contains(&format!("SIP/2.0/TLS 127.0.0.1:{daemon_tls}")),
        "the agent's INVITE carries the daemon's TLS Via",
    );
    // The caller sees our TLS Contact and Kamailio's Record-Route (copied into the 200),
    // so its ACK and BYE went back through Kamailio over TLS.
    checks.that(
        caller
            .messages
            .contains(&format!("127.0.0.1:{daemon_tls};transport=tls")),
        "the 200 to the caller has the daemon's Contact with ;transport=tls",
    );
    checks.that(
        caller.messages.contains("Record-Route:") && caller.messages.contains("r2=on"),
        "the 200 to the caller carries Kamailio's Record-Route",
    );
    // Kamailio logs every request it routes: how it came in tells which way it went.
    let log = kamailio.log_tail();
    let arrived = |method: &str, over: &str| {
        log.lines()
            .any(|l| l.contains(&format!("in: {method} ")) && l.contains(&format!("over {over} ")))
    };
    for (method, over, what) in [
        (
            "INVITE",
            "tls",
            "the daemon's INVITE to the agent came to Kamailio over TLS",
        ),
        (
            "ACK",
            "tls",
            "the daemon's ACK to the agent followed the route set over TLS",
        ),
        (
            "BYE",
            "tls",
            "the daemon's BYE to the agent followed the route set over TLS",
        ),
        ("BYE", "udp", "the caller's BYE went through Kamailio"),
    ] {
        checks.that(arrived(method, over), what);
    }
    checks.finish(
        &call,
        &format!("--- kamailio log:\n{log}\n{}", reports(&[&caller, &agent])),
    );
}

// ---------------------------------------------------------------------------------------
// SIP over TLS, raw
// ---------------------------------------------------------------------------------------

#[test]
fn sip_requests_over_tls_are_answered_on_their_connection() {
    let certs = TestCerts::generate();
    let tls_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::registering("1001", "pw1001")],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    )
    .tls(TlsSpec {
        certs: certs.clone(),
        sip_port: Some(tls_port),
        https: false,
    });
    let mut daemon = Daemon::start(&spec);
    let tls_addr = loopback(tls_port);

    // A client that connects and says nothing holds no one else up.
    let silent = TcpStream::connect(tls_addr).expect("connect to the TLS port");

    let client = certs.client_config();
    let mut sip = TlsSip::connect(tls_addr, &client).unwrap_or_else(|e| panic!("{e}"));
    let from = sip.local_addr();
    sip.send(&request("OPTIONS", from, "tls-options-1", ""))
        .unwrap();
    let answer = sip.recv(Duration::from_secs(5)).unwrap();
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.contains("Via: SIP/2.0/TLS"), "{answer}");

    // The same connection carries the next request: a REGISTER is challenged.
    sip.send(&request(
        "REGISTER",
        from,
        "tls-register-1",
        "Expires: 60\r\n",
    ))
    .unwrap();
    let answer = sip.recv(Duration::from_secs(5)).unwrap();
    assert_eq!(status_of(&answer), 401, "{answer}");
    assert!(answer.contains("WWW-Authenticate: Digest"), "{answer}");
    drop(silent);

    // A client that does not trust our certificate gets no TLS session.
    let other = TestCerts::generate();
    let refused = TlsSip::connect(tls_addr, &other.client_config());
    assert!(
        refused.is_err(),
        "a client with another CA completed a handshake"
    );

    // Plain SIP on the TLS port: the connection is closed, nothing is answered.
    let mut plain = TcpStream::connect(tls_addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(request("OPTIONS", from, "tls-plain-1", "").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("SIP/2.0 200"),
        "plain SIP was answered on the TLS port"
    );

    // The daemon goes on serving TLS.
    daemon.assert_running();
    let mut again = TlsSip::connect(tls_addr, &client).unwrap_or_else(|e| panic!("{e}"));
    let from = again.local_addr();
    again
        .send(&request("OPTIONS", from, "tls-options-2", ""))
        .unwrap();
    assert_eq!(status_of(&again.recv(Duration::from_secs(5)).unwrap()), 200);
}

// ---------------------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------------------

/// `curl -s` with `args`; (exit code, body).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn https_serves_health_and_the_api_and_refuses_plain_http_clearly() {
    let certs = TestCerts::generate();
    let spec = DaemonSpec::new(vec![], vec![]).tls(TlsSpec {
        certs: certs.clone(),
        sip_port: None,
        https: true,
    });
    // The harness itself waits for /healthz over HTTPS (rustls, trusting the test CA).
    let mut daemon = Daemon::start(&spec);
    let base = format!("https://127.0.0.1:{}", daemon.at.http_port);
    let ca = certs.ca().display().to_string();

    let (code, body) = curl(&["--cacert", &ca, &format!("{base}/healthz")]);
    assert_eq!(code, 0, "curl /healthz over HTTPS: {body}");
    assert!(body.contains("\"ok\""), "{body}");

    let auth = format!("Authorization: Bearer {}", daemon.token);
    let (code, body) = curl(&[
        "--cacert",
        &ca,
        "-H",
        &auth,
        "-w",
        "\n%{http_code}",
        &format!("{base}/api/calls"),
    ]);
    assert_eq!(code, 0, "{body}");
    assert!(body.ends_with("\n200"), "{body}");
    assert!(body.contains("\"calls\""), "{body}");

    // Without the CA, curl refuses our certificate (60: peer certificate not trusted).
    let (code, _) = curl(&[&format!("{base}/healthz")]);
    assert_eq!(
        code, 60,
        "curl trusted the test certificate without --cacert"
    );

    // Plain HTTP to the HTTPS port: a 400 with a JSON message, not a crash.
    let plain = format!("http://127.0.0.1:{}/healthz", daemon.at.http_port);
    let (code, body) = curl(&["-w", "\n%{http_code}", &plain]);
    assert_eq!(code, 0, "{body}");
    assert!(body.ends_with("\n400"), "{body}");
    let json: serde_json::Value =
        serde_json::from_str(body.trim_end_matches("\n400")).expect("a JSON error body");
    assert!(
        str_field(&json, "error").is_some_and(|e| e.contains("HTTPS")),
        "{json}"
    );

    // Garbage that is neither HTTP nor TLS: the connection is closed.
    let mut junk = TcpStream::connect(daemon.http_addr()).unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    junk.write_all(&[0u8; 64]).unwrap();
    let mut got = Vec::new();
    let _ = junk.read_to_end(&mut got);
    assert!(got.is_empty(), "answered junk with {got:?}");

    daemon.assert_running();
    let resp = daemon.get("/healthz").expect("HTTPS after the bad clients");
    assert_eq!(resp.status, 200);
    // Signing in over HTTPS: the session cookie is Secure by default.
    let mut add = Command::new(daemon_common::THREERING)
        .args(["user", "add", "qa1", "--role", "qa", "--config"])
        .arg(&daemon.config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("threering user add");
    add.stdin
        .take()
        .unwrap()
        .write_all(b"qa1-password-long\n")
        .unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let login = https_request(
        daemon.http_addr(),
        &client_trusting(&certs.ca()),
        "POST",
        "/api/login",
        None,
        &[],
        Some(r#"{"name":"qa1","password":"qa1-password-long"}"#),
    )
    .expect("POST /api/login over HTTPS");
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login.header("set-cookie").unwrap_or_default();
    assert!(
        cookie.starts_with("threering_session=") && cookie.ends_with("; Secure"),
        "{cookie}"
    );
}

// ---------------------------------------------------------------------------------------
// check-config
// ---------------------------------------------------------------------------------------

fn checked(path: &Path) -> (bool, String) {
    let out = check_config(path);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_config_names_missing_and_broken_tls_files() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = TestCerts::generate();
    let at = Placement {
        sip_port: free_port(),
        http_port: free_port(),
        rtp: (30_000, 30_099),
        dir: dir.path().to_path_buf(),
    };
    let spec = DaemonSpec::new(vec![], vec![]).tls(TlsSpec {
        certs: certs.clone(),
        sip_port: Some(free_port()),
        https: true,
    });
    let good = config_toml(&spec, &at, "token");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path
    };

    let (ok, out) = checked(&write("good.toml", &good));
    assert!(ok, "{out}");

    // A tls: listener without its certificate and key.
    let cert_line = format!("tls_cert = \"{}\"\n", certs.cert().display());
    let key_line = format!("tls_key = \"{}\"\n", certs.key().display());
    let bare = good.replacen(&cert_line, "", 1).replacen(&key_line, "", 1);
    let (ok, out) = checked(&write("bare.toml", &bare));
    assert!(!ok, "{out}");
    assert!(
        out.contains("sip.tls_cert: required by the tls: entry"),
        "{out}"
    );
    assert!(out.contains("sip.tls_key"), "{out}");

    // A key file that is not a key, named under its key.
    let junk = write("junk.pem", "not a key\n");
    let broken = good.replacen(&key_line, &format!("tls_key = \"{}\"\n", junk.display()), 1);
    let (ok, out) = checked(&write("broken.toml", &broken));
    assert!(!ok, "{out}");
    assert!(
        out.contains("sip.tls_key:") && out.contains("no private key"),
        "{out}"
    );

    // HTTPS with a missing certificate file.
    let missing = good.replace(
        &format!(
            "[http]\nlisten = \"127.0.0.1:{}\"\n{cert_line}",
            at.http_port
        ),
        &format!(
            "[http]\nlisten = \"127.0.0.1:{}\"\ntls_cert = \"/nonexistent/cert.pem\"\n",
            at.http_port
        ),
    );
    assert_ne!(missing, good, "the [http] block was not found to edit");
    let (ok, out) = checked(&write("missing.toml", &missing));
    assert!(!ok, "{out}");
    assert!(
        out.contains("http.tls_cert: cannot read /nonexistent/cert.pem"),
        "{out}"
    );
}
