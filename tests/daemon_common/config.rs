//! What a test config holds (agents, queues, ring and grace settings) and where one daemon
//! instance lives (ports, temp dir), written out as the daemon's TOML config.

use std::fmt::Write as _;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::tls::TestCerts;
use super::QUEUE_NUMBER;

// ---------------------------------------------------------------------------------------
// TOML text
// ---------------------------------------------------------------------------------------

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

// ---------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub id: String,
    pub name: String,
    pub contact: Option<String>,
    pub password: Option<String>,
}

impl AgentSpec {
    /// An agent reached at a fixed contact, a SIPp UAS on `port` (UDP).
    pub fn at(id: &str, port: u16) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            name: format!("Agent {id}"),
            contact: Some(format!("sip:{id}@127.0.0.1:{port}")),
            password: None,
        }
    }

    /// An agent reached at a fixed TCP contact.
    pub fn at_tcp(id: &str, port: u16) -> AgentSpec {
        AgentSpec {
            contact: Some(format!("sip:{id}@127.0.0.1:{port};transport=tcp")),
            ..AgentSpec::at(id, port)
        }
    }

    /// An agent that registers with digest auth (no fixed contact).
    pub fn registering(id: &str, password: &str) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            name: format!("Agent {id}"),
            contact: None,
            password: Some(password.into()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct QueueSpec {
    pub name: String,
    pub numbers: Vec<String>,
    pub strategy: String,
    pub agents: Vec<String>,
    pub ring_timeout_ms: u64,
    pub max_wait_ms: u64,
    pub wrap_up_ms: u64,
    /// Written only when set (the daemon's default applies otherwise).
    pub retry_ms: Option<u64>,
    pub overflow: Option<String>,
    /// `record = ...`, written only when set (the daemon records by default).
    pub record: Option<bool>,
}

impl QueueSpec {
    /// Queue "consult" on [`QUEUE_NUMBER`] with these agents, in this order.
    pub fn consult(strategy: &str, agents: &[&str]) -> QueueSpec {
        QueueSpec::named("consult", QUEUE_NUMBER, strategy, agents)
    }

    /// Any queue, on one number.
    pub fn named(name: &str, number: &str, strategy: &str, agents: &[&str]) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            numbers: vec![number.into()],
            strategy: strategy.into(),
            agents: agents.iter().map(|a| a.to_string()).collect(),
            ring_timeout_ms: 15_000,
            max_wait_ms: 120_000,
            wrap_up_ms: 0,
            retry_ms: None,
            overflow: None,
            record: None,
        }
    }

    pub fn overflow(mut self, queue: &str) -> Self {
        self.overflow = Some(queue.into());
        self
    }

    pub fn ring_timeout_ms(mut self, ms: u64) -> Self {
        self.ring_timeout_ms = ms;
        self
    }

    pub fn max_wait_ms(mut self, ms: u64) -> Self {
        self.max_wait_ms = ms;
        self
    }

    pub fn retry_ms(mut self, ms: u64) -> Self {
        self.retry_ms = Some(ms);
        self
    }

    /// `record = true|false` for this queue.
    pub fn record(mut self, on: bool) -> Self {
        self.record = Some(on);
        self
    }
}

/// What a test config holds besides ports and paths (which the daemon harness fills in).
#[derive(Clone, Debug)]
pub struct DaemonSpec {
    pub cadence_ms: u64,
    pub target: u32,
    pub limit: u32,
    pub grace_ms: u64,
    pub t1_ms: u64,
    pub agents: Vec<AgentSpec>,
    pub queues: Vec<QueueSpec>,
    /// `[sip] trusted_peers`, written only when set (the daemon trusts loopback by default).
    pub trusted_peers: Option<Vec<String>>,
    /// `[survey] timeout_ms`, written only when set.
    pub survey_timeout_ms: Option<u64>,
    /// More TOML, appended as is (e.g. `[[trunks]]`, `[calendar]`).
    pub extra_toml: String,
    /// Environment variables for the daemon process (e.g. libfaketime's).
    pub env: Vec<(String, String)>,
    /// More `[sip]` keys, written at the end of that section (e.g. `auth_max_failures`).
    pub sip_toml: String,
    /// More `[daemon]` keys (e.g. `node_id`, `max_calls`).
    pub daemon_toml: String,
    /// `[store] database` (e.g. a PostgreSQL database shared by several nodes); None: a
    /// SQLite file in the daemon's temp dir, or a fresh PostgreSQL schema when
    /// `THREERING_TEST_DB=postgres` (see [`super::Daemon::start`]).
    pub database: Option<String>,
    /// TLS: a `tls:` SIP listener, HTTPS, or both.
    pub tls: Option<TlsSpec>,
}

/// TLS in a test config, with the files of [`TestCerts`]: `[sip] tls_cert`, `tls_key`
/// and `tls_ca` (the test CA) always; a `tls:` listener on `sip_port` when set;
/// `[http] tls_cert`/`tls_key` (HTTPS only) when `https`.
#[derive(Clone, Debug)]
pub struct TlsSpec {
    pub certs: TestCerts,
    pub sip_port: Option<u16>,
    pub https: bool,
}

impl DaemonSpec {
    pub fn new(agents: Vec<AgentSpec>, queues: Vec<QueueSpec>) -> DaemonSpec {
        DaemonSpec {
            cadence_ms: 1000,
            target: 3,
            limit: 5,
            grace_ms: 2000,
            t1_ms: 500,
            agents,
            queues,
            trusted_peers: None,
            survey_timeout_ms: None,
            extra_toml: String::new(),
            env: Vec::new(),
            sip_toml: String::new(),
            daemon_toml: String::new(),
            database: None,
            tls: None,
        }
    }

    /// Sets an environment variable of the daemon process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds `toml` (key lines) to the `[daemon]` section.
    pub fn daemon_toml(mut self, toml: &str) -> Self {
        self.daemon_toml.push_str(toml);
        self.daemon_toml.push('\n');
        self
    }

    /// `[store] database`, instead of a SQLite file in the daemon's own directory.
    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.to_owned());
        self
    }

    /// Adds `toml` (key lines) to the `[sip]` section.
    pub fn sip_toml(mut self, toml: &str) -> Self {
        self.sip_toml.push_str(toml);
        self.sip_toml.push('\n');
        self
    }

    /// TLS for this daemon (see [`TlsSpec`]).
    pub fn tls(mut self, tls: TlsSpec) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Appends `toml` to the config (sections the spec has no field for).
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(toml);
        self
    }

    pub fn survey_timeout_ms(mut self, ms: u64) -> Self {
        self.survey_timeout_ms = Some(ms);
        self
    }

    pub fn grace_ms(mut self, ms: u64) -> Self {
        self.grace_ms = ms;
        self
    }

    /// `[sip] trusted_peers` (IPs or CIDRs whose `X-Record` header is honoured).
    pub fn trusted_peers(mut self, peers: &[&str]) -> Self {
        self.trusted_peers = Some(peers.iter().map(|p| p.to_string()).collect());
        self
    }
}

/// The recordings root (`[store] recordings`), inside the daemon's temp dir.
pub const RECORDINGS_DIR: &str = "rec";

/// Ports and paths of one daemon instance.
#[derive(Clone, Debug)]
pub struct Placement {
    pub sip_port: u16,
    pub http_port: u16,
    pub rtp: (u16, u16),
    pub dir: PathBuf,
}

/// SHA-256 of `token`, lower-case hex: what `[[http.tokens]] token_sha256` holds.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The TOML config, with the key names of the contract.
pub fn config_toml(spec: &DaemonSpec, at: &Placement, token: &str) -> String {
    let dir = at.dir.display().to_string();
    let mut t = String::new();
    let _ = writeln!(t, "[sip]");
    let mut listen = vec![
        format!("udp:127.0.0.1:{}", at.sip_port),
        format!("tcp:127.0.0.1:{}", at.sip_port),
    ];
    if let Some(port) = spec.tls.as_ref().and_then(|tls| tls.sip_port) {
        listen.push(format!("tls:127.0.0.1:{port}"));
    }
    let _ = writeln!(t, "listen = {}", toml_list(&listen));
    if let Some(tls) = &spec.tls {
        let path = |p: PathBuf| toml_str(&p.display().to_string());
        if tls.sip_port.is_some() {
            let _ = writeln!(t, "tls_cert = {}", path(tls.certs.cert()));
            let _ = writeln!(t, "tls_key = {}", path(tls.certs.key()));
        }
        let _ = writeln!(t, "tls_ca = {}", path(tls.certs.ca()));
    }
    let _ = writeln!(t, "realm = \"threering\"");
    let _ = writeln!(t, "t1_ms = {}", spec.t1_ms);
    if let Some(peers) = &spec.trusted_peers {
        let _ = writeln!(t, "trusted_peers = {}", toml_list(peers));
    }
    t.push_str(&spec.sip_toml);
    let _ = writeln!(t, "\n[media]");
    let _ = writeln!(t, "address = \"127.0.0.1\"");
    let _ = writeln!(t, "rtp_ports = [{}, {}]", at.rtp.0, at.rtp.1);
    let _ = writeln!(t, "\n[http]");
    let _ = writeln!(t, "listen = \"127.0.0.1:{}\"", at.http_port);
    if let Some(tls) = spec.tls.as_ref().filter(|tls| tls.https) {
        let path = |p: PathBuf| toml_str(&p.display().to_string());
        let _ = writeln!(t, "tls_cert = {}", path(tls.certs.cert()));
        let _ = writeln!(t, "tls_key = {}", path(tls.certs.key()));
    }
    let _ = writeln!(t, "\n[[http.tokens]]");
    let _ = writeln!(t, "name = \"test\"");
    let _ = writeln!(t, "role = \"admin\"");
    let _ = writeln!(t, "token_sha256 = {}", toml_str(&token_sha256(token)));
    let _ = writeln!(t, "\n[store]");
    let database = spec
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{dir}/t.db"));
    let _ = writeln!(t, "database = {}", toml_str(&database));
    let _ = writeln!(
        t,
        "recordings = {}",
        toml_str(&format!("{dir}/{RECORDINGS_DIR}"))
    );
    let _ = writeln!(t, "\n[rings]");
    let _ = writeln!(t, "cadence_ms = {}", spec.cadence_ms);
    let _ = writeln!(t, "target = {}", spec.target);
    let _ = writeln!(t, "limit = {}", spec.limit);
    let _ = writeln!(t, "\n[daemon]");
    let _ = writeln!(t, "grace_ms = {}", spec.grace_ms);
    t.push_str(&spec.daemon_toml);
    if let Some(ms) = spec.survey_timeout_ms {
        let _ = writeln!(t, "\n[survey]\ntimeout_ms = {ms}");
    }
    for a in &spec.agents {
        let _ = writeln!(t, "\n[[agents]]");
        let _ = writeln!(t, "id = {}", toml_str(&a.id));
        let _ = writeln!(t, "name = {}", toml_str(&a.name));
        if let Some(c) = &a.contact {
            let _ = writeln!(t, "contact = {}", toml_str(c));
        }
        if let Some(p) = &a.password {
            let _ = writeln!(t, "password = {}", toml_str(p));
        }
    }
    for q in &spec.queues {
        let _ = writeln!(t, "\n[[queues]]");
        let _ = writeln!(t, "name = {}", toml_str(&q.name));
        let _ = writeln!(t, "numbers = {}", toml_list(&q.numbers));
        let _ = writeln!(t, "strategy = {}", toml_str(&q.strategy));
        let _ = writeln!(t, "agents = {}", toml_list(&q.agents));
        let _ = writeln!(t, "ring_timeout_ms = {}", q.ring_timeout_ms);
        let _ = writeln!(t, "max_wait_ms = {}", q.max_wait_ms);
        if let Some(retry) = q.retry_ms {
            let _ = writeln!(t, "retry_ms = {retry}");
        }
        if let Some(overflow) = &q.overflow {
            let _ = writeln!(t, "overflow = {}", toml_str(overflow));
        }
        let _ = writeln!(t, "wrap_up_ms = {}", q.wrap_up_ms);
        if let Some(record) = q.record {
            let _ = writeln!(t, "record = {record}");
        }
    }
    t.push_str(&spec.extra_toml);
    t
}
