//! The post-call satisfaction survey against the real binary: the agent hangs up, the
//! daemon keeps the caller on the line and plays the survey prompt, the caller presses 4
//! (RFC 4733 telephone-event from SIPp's `dtmf_2833_4.pcap`), and the call's
//! `survey_score` is 4. The agent's hang-up stays `hangup_side: agent`, talk time ends at
//! the agent's BYE, and the caller's media socket receives the prompts' RTP.

mod daemon_common;

use std::sync::Arc;
use std::time::Duration;

use daemon_common::{
    assert_all_ok, free_port, int_field, pretty, reports, timing_shared, AgentSpec, Checks, Daemon,
    DaemonSpec, PortBlock, QueueSpec, Sipp,
};

/// Runs one survey call: `agent_scenario` answers after 300 ms and leaves the call after
/// talking 1.5 s; `caller_scenario` answers the survey. Checks the score and the rest.
fn survey_call(agent_scenario: &str, caller_scenario: &str, want_score: i64) {
    let call = survey_call_with(agent_scenario, caller_scenario, None, 250);
    let mut c = Checks::new();
    c.that(
        int_field(&call, "survey_score") == Some(want_score),
        format!(
            "survey_score: expected {want_score}, got {:?}",
            int_field(&call, "survey_score")
        ),
    );
    c.finish(&call, "");
}

/// The survey call itself; checks what every survey call shows and returns the record.
/// `min_rtp`: packets the caller's socket must get (prompts are ~50 packets a second).
fn survey_call_with(
    agent_scenario: &str,
    caller_scenario: &str,
    survey_timeout_ms: Option<u64>,
    min_rtp: u64,
) -> serde_json::Value {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let mut spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    if let Some(ms) = survey_timeout_ms {
        spec = spec.survey_timeout_ms(ms);
    }
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let agent = Sipp::agent("agent 1001 (leaves)", agent_scenario, agent_port, &ports)
        .pause_ms(300)
        .spawn();
    // The caller answers three seconds after the answer: while the prompt plays.
    let caller = Sipp::caller(caller_scenario, daemon.sip_addr(), &ports)
        .pause_ms(3000)
        .timeout(Duration::from_secs(45))
        .run();
    let agent = agent.wait_at_most(Duration::from_secs(15));
    assert_all_ok(
        &[&caller, &agent],
        "agent leaves after 1.5 s, the caller answers the survey, BYE from the daemon after the thank-you",
    );
    let call = daemon.the_one_call();
    eprintln!(
        "survey call: {}\ncaller RTP packets: {}",
        pretty(&call),
        caller.rtp()
    );
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "hangup_side", "agent");
    let talk = int_field(&call, "talk_ms");
    c.that(
        talk.is_some_and(|ms| (1200..=2500).contains(&ms)),
        format!("talk_ms: expected the agent's 1.5 s, got {talk:?} (the survey is not talk time)"),
    );
    // g711a.pcap from the agent is 51 packets; the survey prompt alone is about 300.
    c.that(
        caller.rtp() >= min_rtp,
        format!(
            "the caller's socket got {} RTP packets (want >= {min_rtp}): the prompts did not arrive",
            caller.rtp()
        ),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
    call
}

/// RFC 4733: the caller presses 4 (SIPp's dtmf_2833_4.pcap) after the agent's BYE.
#[test]
fn caller_scores_the_call_with_a_key_after_the_agent_hangs_up() {
    survey_call("daemon_uas_bye.xml", "daemon_uac_survey.xml", 4);
}

/// The key as SIP INFO (application/dtmf-relay, Signal=2).
#[test]
fn a_sip_info_key_scores_the_call() {
    survey_call("daemon_uas_bye.xml", "daemon_uac_survey_info.xml", 2);
}

/// The agent transfers the caller to the survey with REFER (Refer-To: sip:survey@…):
/// 202, a NOTIFY, then the daemon's BYE to the agent; the caller then scores with 4.
#[test]
fn an_agent_refer_to_the_survey_number_hands_the_caller_over() {
    survey_call("daemon_uas_refer.xml", "daemon_uac_survey.xml", 4);
}

/// No key within `[survey] timeout_ms`: the thank-you, BYE, and no score.
#[test]
fn no_key_ends_the_survey_without_a_score() {
    let call = survey_call_with(
        "daemon_uas_bye.xml",
        "daemon_uac_wait_bye.xml",
        Some(2000),
        250,
    );
    let mut c = Checks::new();
    c.null(&call, "survey_score");
    c.bool_eq(&call, "survey_offered", true);
    c.finish(&call, "");
}

/// A key that is not 1-5 (#) plays the apology and asks once more; then, with no key,
/// the survey ends without a score. Survey (6 s) + apology (4 s) + survey again: the
/// caller gets far more prompt packets than one question.
#[test]
fn an_invalid_key_replays_the_question_once() {
    let call = survey_call_with(
        "daemon_uas_bye.xml",
        "daemon_uac_survey_invalid.xml",
        Some(2000),
        700,
    );
    let mut c = Checks::new();
    c.null(&call, "survey_score");
    c.finish(&call, "");
}

/// The agent's desktop hands the caller to the survey through the API while both are
/// still on the line: the daemon sends the agent a BYE, the caller hears the survey and
/// scores with 4. An unknown call id is 404.
#[test]
fn the_api_hands_a_connected_caller_to_the_survey() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    // The agent answers after 300 ms and waits for a BYE (which the daemon sends).
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(300)
        .spawn();
    let caller = Sipp::caller("daemon_uac_survey.xml", daemon.sip_addr(), &ports)
        .pause_ms(3000)
        .timeout(Duration::from_secs(45))
        .spawn();
    // Once the call is answered (its record is written at the answer), ask for the survey.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let id = loop {
        let answered = daemon.calls().ok().and_then(|calls| {
            calls
                .into_iter()
                .find(|c| c.get("answered_at").is_some_and(|a| !a.is_null()))
                .and_then(|c| c.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        });
        if let Some(id) = answered {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the call was never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(1000));
    let resp = daemon
        .post(&format!("/api/calls/{id}/survey"))
        .expect("POST survey");
    assert_eq!(
        resp.status,
        200,
        "POST /api/calls/{id}/survey: {}",
        resp.text()
    );
    let missing = daemon
        .post("/api/calls/no-such-call/survey")
        .expect("POST survey");
    assert_eq!(missing.status, 404, "unknown call: {}", missing.text());
    let caller = caller.wait();
    let agent = agent.wait_at_most(Duration::from_secs(15));
    assert_all_ok(&[&caller, &agent], "survey asked for through the API");
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.that(
        int_field(&call, "survey_score") == Some(4),
        format!(
            "survey_score: expected 4, got {:?}",
            int_field(&call, "survey_score")
        ),
    );
    c.str_eq(&call, "hangup_side", "agent");
    c.finish(&call, &reports(&[&caller, &agent]));
}
