//! Every shipped config file loads, and bad configs are refused with the key named.

use std::path::{Path, PathBuf};

use threering::config::{Config, ConfigError, Secret};

fn toml_files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files_under(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

#[test]
fn every_file_in_config_loads_and_validates() {
    let mut files = Vec::new();
    toml_files_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        &mut files,
    );
    assert!(
        files.iter().any(|f| f.ends_with("config/threering.toml")),
        "{files:?}"
    );
    for file in &files {
        if let Err(e) = Config::load(file) {
            panic!("{}: {e}", file.display());
        }
    }
}

#[test]
fn the_embedded_default_is_as_documented() {
    let config = Config::embedded();
    assert_eq!(
        config.sip.listen,
        ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    );
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.store.database, "sqlite://threering.db");
    assert_eq!(config.rings.cadence_ms, 5000);
    assert_eq!(config.rings.target, 3);
    assert_eq!(config.rings.limit, 5);
    assert_eq!(config.agents.len(), 2);
    assert_eq!(
        config.queue_for_number("4008001234").unwrap().name,
        "consult"
    );
    assert!(config.queue_for_number("4008009999").is_none());
    assert_eq!(config.agent("1002").unwrap().name, "Li Na");
    assert_eq!(config.http.tokens.len(), 1);
    assert_eq!(config.sip_listen_specs().unwrap().len(), 2);
}

/// The smallest config that validates: what the acceptance tests start from.
const MINIMAL: &str = r#"
[sip]
listen = ["udp:127.0.0.1:5060"]
realm = "threering"
[media]
address = "127.0.0.1"
rtp_ports = [20000, 29999]
[http]
listen = "127.0.0.1:8080"
[store]
database = "sqlite::memory:"
recordings = "recordings"
[rings]
[[agents]]
id = "1001"
name = "Wang Fang"
password = "pw"
[[queues]]
name = "consult"
numbers = ["4008001234"]
agents = ["1001"]
"#;

#[test]
fn defaults_fill_what_a_minimal_config_leaves_out() {
    let config = Config::from_toml(MINIMAL).unwrap();
    assert!(config.sip.force_rport);
    assert_eq!(config.sip.t1_ms, 500);
    assert_eq!(config.sip.max_transactions, 5000);
    assert_eq!(config.sip.source_rps, 200);
    assert_eq!(config.sip.trusted_source_rps, 2000);
    assert_eq!(config.sip.source_pending_invites, 50);
    assert_eq!(config.daemon.node_id, "n1");
    assert_eq!(config.daemon.grace_ms, 30_000);
    assert_eq!(config.sip.auth_max_failures, 5);
    assert_eq!(config.sip.auth_failure_window_s, 300);
    assert_eq!(config.sip.auth_lockout_s, 600);
    let queue = &config.queues[0];
    assert_eq!(queue.strategy.as_str(), "longest-idle");
    assert_eq!(queue.ring_timeout_ms, 15_000);
    assert_eq!(queue.max_wait_ms, 120_000);
    assert_eq!(queue.wrap_up_ms, 5000);
    assert_eq!(queue.auto_pause_after, 3);
}

#[test]
fn an_unknown_key_is_rejected_by_name() {
    let text = MINIMAL.replace("[rings]", "[rings]\nring_cadence = 1000");
    match Config::from_toml(&text) {
        Err(ConfigError::Parse { message }) => {
            assert!(message.contains("ring_cadence"), "{message}");
            assert!(message.contains("line"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_queue_naming_an_unknown_agent_is_a_problem_at_its_key() {
    let text = MINIMAL.replace(r#"agents = ["1001"]"#, r#"agents = ["1001", "9999"]"#);
    match Config::from_toml(&text) {
        Err(ConfigError::Invalid { problems }) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].key, "queues[0].agents");
            assert!(problems[0].message.contains("9999"), "{}", problems[0]);
            assert_eq!(
                problems[0].to_string(),
                r#"queues[0].agents: unknown agent "9999""#
            );
        }
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = MINIMAL
        .replace(r#"agents = ["1001"]"#, r#"agents = ["9999"]"#)
        .replace("[rings]", "[rings]\ncadence_ms = 0\ntarget = 4\nlimit = 3")
        .replace("rtp_ports = [20000, 29999]", "rtp_ports = [29999, 20000]")
        .replace(r#""udp:127.0.0.1:5060""#, r#""sctp:127.0.0.1:5061""#)
        .replace(
            r#"numbers = ["4008001234"]"#,
            "numbers = [\"4008001234\"]\noverflow = \"consult\"\nring_timeout_ms = 0",
        )
        .replace(r#"password = "pw""#, "contact = \"mailto:x@example.com\"");
    let problems = match Config::from_toml(&text) {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "sip.listen",
        "media.rtp_ports",
        "rings.cadence_ms",
        "rings.limit",
        "agents[0].contact",
        "queues[0].agents",
        "queues[0].ring_timeout_ms",
        "queues[0].overflow",
    ] {
        assert!(keys.contains(&key), "no problem at {key}: {problems:#?}");
    }
    let listed = ConfigError::Invalid { problems }.to_string();
    assert!(listed.contains("udp, tcp or tls"), "{listed}");
}

#[test]
fn duplicates_and_bad_tokens_are_problems() {
    let text = format!(
        "{MINIMAL}\n{}",
        r#"
[[http.tokens]]
name = "crm"
role = "admin"
token_sha256 = "not-hex"
[[agents]]
id = "1001"
name = "Twin"
[[queues]]
name = "consult"
numbers = ["4008001234"]
agents = []
"#
    );
    // The appended [[http.tokens]] sits after [[queues]] in the text, but TOML tables
    // are addressed by name, so it still lands in [http].
    let problems = match Config::from_toml(&text) {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for expected in [
        "http.tokens[0].token_sha256",
        "agents[1].id: agent id \"1001\" is used twice",
        "agents[1]: agent \"1001\" needs a password",
        "queues[1].name: queue name \"consult\" is used twice",
        "queues[1].numbers: number \"4008001234\" is already routed to queue \"consult\"",
    ] {
        assert!(
            shown.iter().any(|s| s.starts_with(expected)),
            "missing {expected:?} in {shown:#?}"
        );
    }
}

#[test]
fn a_missing_file_names_its_path() {
    let err = Config::load(Path::new("/nonexistent/threering.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/threering.toml"));
}

#[test]
fn passwords_do_not_show_in_debug_output() {
    let config = Config::embedded();
    let shown = format!("{config:?}");
    assert!(!shown.contains("change-me-1001"), "{shown}");
    assert!(shown.contains("***"));
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "\"***\"");
    let password = config.agent("1001").unwrap().password.as_ref().unwrap();
    assert_eq!(password.expose(), "change-me-1001");
}

#[test]
fn ticket_calendar_sla_and_trunk_problems_are_reported_with_their_keys() {
    let text = format!(
        "{MINIMAL}\n[tickets]\nareas = []\nid_prefix = \"T-X\"\nreopen_score = 9\n\
         [[tickets.dispatch]]\narea = \"火星\"\nteam = \"\"\n\
         [calendar]\nutc_offset = \"+8\"\nwork_start = \"18:00\"\nwork_end = \"09:00\"\n\
         holidays = [\"2026-13-01\"]\n\
         [sla]\nreply_working_days = 0\n\
         [[trunks]]\nname = \"a\"\naddress = \"pbx.example.com:5060\"\ntransport = \"sctp\"\n\
         username = \"u\"\n\
         [[trunks]]\nname = \"a\"\naddress = \"127.0.0.1\"\n"
    );
    let problems = match Config::from_toml(&text) {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "tickets.areas",
        "tickets.id_prefix",
        "tickets.reopen_score",
        "tickets.dispatch[0].team",
        "tickets.dispatch[0].area",
        "calendar.utc_offset",
        "calendar.work_end",
        "calendar.holidays[0]",
        "sla.reply_working_days",
        "trunks[0].address",
        "trunks[0].transport",
        "trunks[0]",
        "trunks[1].name",
    ] {
        assert!(keys.contains(&key), "no problem at {key}: {problems:#?}");
    }
}

#[test]
fn a_trunk_given_as_a_bare_ip_uses_port_5060() {
    let text = format!("{MINIMAL}\n[[trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1\"\n");
    let config = Config::from_toml(&text).unwrap();
    let (addr, _) = config.trunk(None).unwrap().target().unwrap();
    assert_eq!(addr, "127.0.0.1:5060".parse().unwrap());
    assert!(config.trunk(Some("nope")).is_none());
}

#[test]
fn sip_lockout_keys_are_checked() {
    let text = MINIMAL.replace(
        "realm = \"threering\"",
        "realm = \"threering\"\nauth_max_failures = 0\nauth_failure_window_s = 0\nauth_lockout_s = 99999999",
    );
    let problems = match Config::from_toml(&text) {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "sip.auth_max_failures",
            "sip.auth_failure_window_s",
            "sip.auth_lockout_s"
        ],
        "{problems:?}"
    );
    let fine = MINIMAL.replace(
        "realm = \"threering\"",
        "realm = \"threering\"\nauth_max_failures = 3\nauth_failure_window_s = 60\nauth_lockout_s = 900",
    );
    let policy = Config::from_toml(&fine).unwrap().sip.lockout_policy();
    assert_eq!(policy.max_failures, 3);
    assert_eq!(policy.window.as_secs(), 60);
    assert_eq!(policy.lockout.as_secs(), 900);
}
