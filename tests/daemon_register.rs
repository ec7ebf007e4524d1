//! Agents registering to `threering serve` with digest authentication (SIPp's
//! `[authentication]`, MD5 qop=auth): right password 200, wrong password 403, and an agent
//! with only a password (no fixed contact) is rung at the Contact it registered.
//!
//! Needs SIPp 3.6 (`apt-get install sip-tester`); without it these tests fail, on purpose.

mod daemon_common;

use std::sync::Arc;
use std::time::Duration;

use daemon_common::{
    assert_all_ok, attempts, free_port, registered_phone, reports, timing_shared, AgentSpec,
    Checks, Daemon, DaemonSpec, PortBlock, QueueSpec, Sipp,
};

/// Agent 1001 registers with password "pw1001" (the scenarios carry it); no fixed contact.
fn registering_daemon(ports: &Arc<PortBlock>) -> Daemon {
    let spec = DaemonSpec::new(
        vec![AgentSpec::registering("1001", "pw1001")],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    Daemon::start_with_ports(&spec, Arc::clone(ports))
}

/// One REGISTER exchange by SIPp `scenario` against a fresh registering daemon; SIPp's
/// run must succeed (its scenario expects the final status; `expected` says which).
fn register_once(label: &str, scenario: &str, expected: &str) {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let daemon = registering_daemon(&ports);
    let run = Sipp::client(label, scenario, daemon.sip_addr(), &ports)
        .timeout(Duration::from_secs(15))
        .run();
    assert_all_ok(&[&run], expected);
}

#[test]
fn register_with_the_right_password_gets_200() {
    register_once(
        "REGISTER 1001, right password",
        "daemon_register_ok.xml",
        "REGISTER -> 401 -> REGISTER with credentials -> 200 expected",
    );
}

#[test]
fn register_with_a_wrong_password_gets_403() {
    register_once(
        "REGISTER 1001, wrong password",
        "daemon_register_wrong.xml",
        "REGISTER -> 401 -> REGISTER with a wrong password -> 403 expected",
    );
}

#[test]
fn a_registered_agent_is_rung_at_its_registered_contact() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let daemon = registering_daemon(&ports);

    // One SIPp process on port P: REGISTER with Contact sip:1001@127.0.0.1:P, then (out of
    // call) take the INVITE the daemon sends there: 180, 300 ms, 200, ACK, BYE.
    let agent_port = free_port();
    let agent = registered_phone(
        "agent 1001 (registers, then takes the call)",
        daemon.sip_addr(),
        &ports,
        agent_port,
    );

    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(1000)
        .run();
    // The registering scenario stays up 6 s after its 200, then ends.
    let agent = agent.wait_at_most(Duration::from_secs(20));
    assert_all_ok(
        &[&caller, &agent],
        "the call to the queue must reach the agent at the Contact it registered",
    );

    let invite_line = agent
        .messages
        .lines()
        .find(|l| l.starts_with("INVITE "))
        .unwrap_or("")
        .to_string();
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.that(
        invite_line.contains(&format!("127.0.0.1:{agent_port}")),
        format!(
            "the agent's SIPp (port {agent_port}) should have received an INVITE for its \
             registered Contact; first INVITE line it got: {invite_line:?}"
        ),
    );
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "agent", "1001");
    let list: Vec<(String, String)> = attempts(&call)
        .into_iter()
        .map(|(a, o, _)| (a, o))
        .collect();
    c.that(
        list == vec![("1001".to_string(), "answered".to_string())],
        format!("attempts: expected [1001 answered], got {list:?}"),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
}
