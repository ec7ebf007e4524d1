//! Scaling out: two threering nodes behind Kamailio's dispatcher
//! (`config/kamailio/threering-dispatcher.cfg`, as shipped), sharing one PostgreSQL
//! database, with SIPp callers in front and one SIPp standing in for 30 agents' phones.
//!
//! 200 calls in two halves of 100 at 10 calls/s; node B is killed (`kill -9`) half-way
//! through the first half. Then:
//! - every call of the second half (all placed after the fail-over window) is answered:
//!   0 calls lost;
//! - every call SIPp saw answered has exactly one call record in PostgreSQL, whichever
//!   node took it, and both nodes took calls before the kill;
//! - no agent was ever on two calls at once (the nodes share agent state through the
//!   database), checked on the records' answer and end times (a call of the killed node,
//!   whose end was never written, ends at the kill).
//!
//! Needs Kamailio (Debian package `kamailio`), SIPp, `psql` and the PostgreSQL server
//! (`THREERING_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/test`); each run gets
//! a fresh database, dropped at the end.

mod daemon_common;

use std::collections::BTreeMap;
use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_common::{
    free_port, reports, timing_exclusive, AgentSpec, Daemon, DaemonSpec, PgDatabase, PortBlock,
    QueueSpec, Sipp, SippOutcome,
};

const AGENTS: usize = 30;
const HALF: u32 = 100;
const RATE: &str = "10";
const TALK_MS: u64 = 1500;

/// Kamailio with the shipped dispatcher config, killed by its PID when dropped.
struct Kamailio {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    fn start(nodes: &[&Daemon]) -> Kamailio {
        let dir = tempfile::tempdir().expect("temp dir");
        let list = dir.path().join("dispatcher.list");
        let lines: String = nodes
            .iter()
            .map(|n| format!("1 sip:{}\n", n.sip_addr()))
            .collect();
        fs::write(&list, lines).expect("write the dispatcher list");
        let config =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kamailio/threering-dispatcher.cfg");
        let port = free_port();
        let log = dir.path().join("kamailio.log");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&config)
            .args(["-l", &format!("udp:127.0.0.1:{port}"), "-DD", "-E"])
            .arg("-A")
            .arg(format!("DS_LIST=\"{}\"", list.display()))
            .arg("-w")
            .arg(dir.path())
            .arg("-Y")
            .arg(dir.path())
            .args(["-m", "64", "-M", "8"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&log).expect("log file")))
            .stderr(Stdio::from(
                fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            ))
            .spawn()
            .expect("start kamailio (Debian package kamailio)");
        let kamailio = Kamailio {
            child,
            port,
            log,
            _dir: dir,
        };
        kamailio.wait_answering();
        kamailio
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn log(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Until Kamailio answers an OPTIONS to itself.
    fn wait_answering(&self) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let local = socket.local_addr().expect("local addr");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while Instant::now() < deadline {
            n += 1;
            let options = format!(
                "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-probe{n}\r\n\
                 From: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: probe-{n}@{local}\r\n\
                 CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                port = self.port
            );
            let _ = socket.send_to(options.as_bytes(), self.addr());
            let mut buf = [0u8; 2048];
            if let Ok((len, _)) = socket.recv_from(&mut buf) {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!(
            "Kamailio did not answer OPTIONS within 10 s:\n{}",
            self.log()
        );
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // Kamailio's main process stops its children on SIGTERM.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn calls_answered(outcome: &SippOutcome) -> (u64, u64) {
    match &outcome.stats {
        Ok(s) => (s.successful, s.failed),
        Err(e) => panic!("SIPp stats unreadable: {e}\n{}", outcome.report),
    }
}

#[test]
fn two_nodes_behind_kamailio_lose_no_call_when_one_is_killed() {
    let _timing = timing_exclusive();
    let db = PgDatabase::create();
    let agent_port = free_port();
    let ids: Vec<String> = (1..=AGENTS).map(|i| format!("{}", 2000 + i)).collect();
    let agents: Vec<AgentSpec> = ids.iter().map(|id| AgentSpec::at(id, agent_port)).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let queue = QueueSpec::consult("longest-idle", &id_refs);
    let spec = |node: &str| {
        DaemonSpec::new(agents.clone(), vec![queue.clone()])
            .database(&db.url())
            .daemon_toml(&format!("node_id = \"{node}\""))
    };
    let ports_a = Arc::new(PortBlock::new());
    let ports_b = Arc::new(PortBlock::new());
    let node_a = Daemon::start_with_ports(&spec("na"), Arc::clone(&ports_a));
    let mut node_b = Daemon::start_with_ports(&spec("nb"), Arc::clone(&ports_b));
    let kamailio = Kamailio::start(&[&node_a, &node_b]);

    let phones = Sipp::agent(
        "30 agents' phones",
        "daemon_rec_uas_quiet.xml",
        agent_port,
        &ports_a,
    )
    .calls(2 * HALF)
    .timeout(Duration::from_secs(120))
    .spawn();

    // First half; node B dies half-way through it.
    let first = Sipp::caller("daemon_rec_uac_quiet.xml", kamailio.addr(), &ports_a)
        .key("x_record", "yes")
        .calls(HALF)
        .arg("-r")
        .arg(RATE)
        .pause_ms(TALK_MS)
        .timeout(Duration::from_secs(90))
        .spawn();
    let first_prefix = first.call_id().trim_end_matches("-1@127.0.0.1").to_owned();
    thread::sleep(Duration::from_secs(5));
    let before_kill = db.rows("SELECT DISTINCT split_part(id, '-', 1) FROM calls");
    node_b.kill();
    let killed_at = Instant::now();
    let killed_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let first = first.wait();

    // Second half: placed after the fail-over window, every call must be answered.
    let window = Duration::from_secs(3);
    if let Some(rest) = window.checked_sub(killed_at.elapsed()) {
        thread::sleep(rest);
    }
    let second = Sipp::caller("daemon_rec_uac_quiet.xml", kamailio.addr(), &ports_b)
        .key("x_record", "yes")
        .calls(HALF)
        .arg("-r")
        .arg(RATE)
        .pause_ms(TALK_MS)
        .timeout(Duration::from_secs(90))
        .spawn();
    let second_prefix = second.call_id().trim_end_matches("-1@127.0.0.1").to_owned();
    let second = second.wait();
    let phones = phones.kill();
    let context = format!(
        "{}\n--- kamailio log:\n{}\n--- node A:\n{}",
        reports(&[&first, &second, &phones]),
        kamailio.log(),
        node_a.report("")
    );

    let (first_ok, first_failed) = calls_answered(&first);
    let (second_ok, second_failed) = calls_answered(&second);
    eprintln!(
        "first half: {first_ok} answered, {first_failed} failed (node B killed after 5 s); \
         second half: {second_ok} answered, {second_failed} failed"
    );
    assert_eq!(
        (second_ok, second_failed),
        (u64::from(HALF), 0),
        "calls placed after the fail-over window were lost\n{context}"
    );
    assert!(
        before_kill.len() == 2,
        "both nodes should have taken calls before the kill; node id prefixes seen: {before_kill:?}\n{context}"
    );

    // Records: every answered call once, in the shared database.
    let wait_until = Instant::now() + Duration::from_secs(15);
    let count = |prefix: &str| -> (u64, u64) {
        let row = db.rows(&format!(
            "SELECT count(*), count(DISTINCT sip_call_id) FROM calls \
             WHERE sip_call_id LIKE '{prefix}-%' AND outcome = 'answered'"
        ));
        (row[0][0].parse().unwrap(), row[0][1].parse().unwrap())
    };
    loop {
        let (n2, d2) = count(&second_prefix);
        let (n1, d1) = count(&first_prefix);
        if (n2 == u64::from(HALF) && n1 >= first_ok) || Instant::now() > wait_until {
            assert_eq!(n2, d2, "a call of the second half has two records");
            assert_eq!(n1, d1, "a call of the first half has two records");
            assert_eq!(
                n2,
                u64::from(HALF),
                "second half: answered records in PostgreSQL\n{context}"
            );
            assert!(
                n1 >= first_ok,
                "first half: {n1} answered records for {first_ok} calls SIPp saw answered\n{context}"
            );
            break;
        }
        thread::sleep(Duration::from_millis(300));
    }

    // No agent on two calls at once, across both nodes.
    let rows = db.rows(
        "SELECT agent, answered_at, ended_at, id FROM calls \
         WHERE outcome = 'answered' AND agent IS NOT NULL ORDER BY agent, answered_at",
    );
    let mut by_agent: BTreeMap<String, Vec<(i64, i64, String)>> = BTreeMap::new();
    for r in rows {
        // A call of the killed node never got its end written: it ended with the node.
        let end = r[2].parse().unwrap_or(killed_at_ms);
        by_agent
            .entry(r[0].clone())
            .or_default()
            .push((r[1].parse().unwrap(), end, r[3].clone()));
    }
    let mut double = Vec::new();
    for (agent, calls) in &by_agent {
        for pair in calls.windows(2) {
            if pair[1].0 < pair[0].1 {
                double.push(format!("agent {agent}: {} and {}", pair[0].2, pair[1].2));
            }
        }
    }
    assert!(
        double.is_empty(),
        "agents double-booked across the nodes:\n{}",
        double.join("\n")
    );
    assert!(by_agent.len() > 1, "the calls went to one agent only");
}
