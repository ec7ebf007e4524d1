//! The daemon's configuration: TOML read into plain structs, then checked as a whole.
//!
//! Parsing and checking are two steps on purpose. Serde rejects what cannot be read at
//! all (an unknown key, a wrong type), naming the key and line, because every struct
//! denies unknown fields: a misspelt `ring_timeout_ms` must not silently fall back to its
//! default. [`Config::validate`] then finds every problem that needs the whole picture (an
//! agent that does not exist, an overflow cycle) and reports all of them at once, each
//! with the key path that has it, so `threering check-config` can list them in one go.
//!
//! The key names are a contract (integrators and the acceptance tests write them); new
//! keys may be added, existing ones keep their names. `config/threering.toml` is the
//! embedded default and documents every key.

mod calls;
mod http;
mod tickets;
mod tls;
mod validate;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sip::transport::ListenSpec;

pub use calls::{AgentConfig, QueueConfig, RingsConfig, Strategy, SurveyConfig};
pub use http::{AuthConfig, HttpConfig, Role, Secret, TokenConfig, WebhookConfig};
pub use tickets::{ArchiveConfig, CallbacksConfig, DispatchRule, TicketsConfig, TrunkConfig};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub http: HttpConfig,
    pub store: StoreConfig,
    /// Optional as a section: every key in it has a default.
    #[serde(default)]
    pub rings: RingsConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub survey: SurveyConfig,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// Tickets: the form's lists and the survey threshold.
    #[serde(default)]
    pub tickets: TicketsConfig,
    /// The working calendar the SLA clocks run on.
    #[serde(default)]
    pub calendar: crate::tickets::calendar::CalendarConfig,
    /// Reply deadlines per ticket kind.
    #[serde(default)]
    pub sla: crate::tickets::sla::SlaConfig,
    #[serde(default)]
    pub archive: ArchiveConfig,
    /// Outbound trunks (callbacks to customers go out through them).
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// What callbacks may dial, and how many (toll fraud).
    #[serde(default)]
    pub callbacks: CallbacksConfig,
    /// Webhooks: URLs the CTI events are POSTed to (see `crate::events::webhooks`).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// QA: automatic flag thresholds and scoring forms.
    #[serde(default)]
    pub qa: crate::qa::QaConfig,
    /// Users' sign-in: sessions, the login rate limit, the cookie.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Supervisor reports: the service level threshold.
    #[serde(default)]
    pub reports: crate::reports::ReportsConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// `PROTOCOL:ADDRESS:PORT` entries, e.g. `udp:127.0.0.1:5060`; see [`ListenSpec`].
    pub listen: Vec<String>,
    /// Digest-authentication realm offered to registering agents.
    pub realm: String,
    /// Answer to the source address and port even without `;rport` (RFC 3581), because
    /// softphones behind NAT often advertise an address we cannot reach.
    #[serde(default = "default_force_rport")]
    pub force_rport: bool,
    /// RFC 3261 timer T1 (round-trip estimate); every other SIP timer derives from it.
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
    /// Longest registration we grant; longer requests are shortened to it.
    #[serde(default = "default_max_register_expires")]
    pub max_register_expires: u32,
    /// Addresses (IP or CIDR, e.g. `10.0.0.0/8`) of trusted trunks and IVRs: only their
    /// `X-Record: no` and `X-Ticket-ID` headers are honoured. Default: loopback.
    /// Also, their out-of-dialog INVITEs (and those of `[[trunks]]` addresses) are taken
    /// without credentials; anyone else is challenged (407) for an agent's.
    #[serde(default = "default_trusted_peers")]
    pub trusted_peers: Vec<String>,
    /// Wrong digest passwords within `auth_failure_window_s`, from one source address or
    /// against one user name, that lock it out.
    #[serde(default = "default_auth_max_failures")]
    pub auth_max_failures: u32,
    #[serde(default = "default_auth_failure_window_s")]
    pub auth_failure_window_s: u64,
    /// How long a lockout lasts: credentials from it are refused (403) unchecked.
    #[serde(default = "default_auth_lockout_s")]
    pub auth_lockout_s: u64,
    /// PEM certificate chain (leaf first) presented by the `tls:` listeners; required
    /// when `listen` has one.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates trusted for outbound TLS besides the system's roots (a
    /// private CA, a trunk's self-signed CA).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Most SIP transactions in progress (no final response yet) at once; past it new
    /// requests get a stateless 503. All held, answered ones lingering for
    /// retransmissions included, are kept under 8 times it.
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// Requests per second from one source address (burst twice that); past it 503,
    /// and far past it (a flood) dropped unanswered.
    #[serde(default = "default_source_rps")]
    pub source_rps: u32,
    /// `source_rps` for `trusted_peers` and trunks: each sends every call of a PBX or
    /// carrier from one address.
    #[serde(default = "default_trusted_source_rps")]
    pub trusted_source_rps: u32,
    /// Unanswered INVITEs from one source address other than a trusted peer or trunk;
    /// past it 503.
    #[serde(default = "default_source_pending_invites")]
    pub source_pending_invites: u32,
}

impl SipConfig {
    /// The digest brute-force lockout these keys describe.
    pub fn lockout_policy(&self) -> crate::sip::auth::lockout::LockoutPolicy {
        crate::sip::auth::lockout::LockoutPolicy {
            max_failures: self.auth_max_failures,
            window: std::time::Duration::from_secs(self.auth_failure_window_s),
            lockout: std::time::Duration::from_secs(self.auth_lockout_s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Address our RTP sockets bind to and that we write into SDP.
    pub address: IpAddr,
    /// First and last UDP port (inclusive) of the RTP pool; RTP takes even ports.
    pub rtp_ports: [u16; 2],
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path` (relative to the working directory), `sqlite::memory:`, or
    /// `postgres://user[:password]@host[:port]/database`.
    pub database: String,
    /// Root directory of the recordings.
    pub recordings: PathBuf,
    /// Connections in the pool; default 4 for SQLite, 10 for PostgreSQL.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Call records kept in memory while the database cannot be written; more go to the
    /// spool file. 0: every record waiting for the database is on disk at once.
    #[serde(default = "default_memory_queue")]
    pub memory_queue: usize,
    /// Directory of the spool: call records waiting for the database (`calls.jsonl`),
    /// replayed at the next start, and records it refused for good
    /// (`dead-letters.jsonl`). Default: `spool` beside the recordings root.
    #[serde(default)]
    pub spool: Option<PathBuf>,
}

impl StoreConfig {
    /// The spool directory: `spool`, or `spool` beside the recordings root.
    pub fn spool_dir(&self) -> PathBuf {
        match &self.spool {
            Some(dir) => dir.clone(),
            None => self
                .recordings
                .parent()
                .unwrap_or(std::path::Path::new(""))
                .join("spool"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// On SIGTERM, how long calls in progress may go on before they are ended.
    #[serde(default = "default_grace_ms")]
    pub grace_ms: u64,
    /// Names this node in call ids, so ids stay unique when several nodes share a store.
    #[serde(default = "default_node_id")]
    pub node_id: String,
    /// Concurrent calls; beyond it new INVITEs get 503 instead of growing memory.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            grace_ms: default_grace_ms(),
            node_id: default_node_id(),
            max_calls: default_max_calls(),
        }
    }
}

fn default_force_rport() -> bool {
    true
}
fn default_t1_ms() -> u64 {
    500
}
fn default_max_register_expires() -> u32 {
    3600
}
fn default_trusted_peers() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1".into()]
}
fn default_auth_max_failures() -> u32 {
    5
}
fn default_auth_failure_window_s() -> u64 {
    300
}
fn default_auth_lockout_s() -> u64 {
    600
}
fn default_max_transactions() -> usize {
    5000
}
fn default_source_rps() -> u32 {
    200
}
fn default_trusted_source_rps() -> u32 {
    2000
}
fn default_source_pending_invites() -> u32 {
    50
}
fn default_grace_ms() -> u64 {
    30_000
}
fn default_node_id() -> String {
    "n1".to_owned()
}
fn default_max_calls() -> usize {
    500
}
fn default_memory_queue() -> usize {
    1000
}

/// One thing wrong with a configuration, at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Path of the key, e.g. `queues[0].agents`.
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML, or a key or value serde cannot take; toml's message names the
    /// key and the line.
    #[error("{message}")]
    Parse { message: String },
    #[error("{} problem(s) in the configuration:\n{}", problems.len(), list_problems(problems))]
    Invalid { problems: Vec<ConfigProblem> },
}

fn list_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// The default configuration, compiled in so the daemon runs with no file at all.
    pub const EMBEDDED: &'static str = include_str!("../../config/threering.toml");

    /// Parses and validates.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            message: e.to_string(),
        })?;
        config.apply_defaults();
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// Fills in the defaults that depend on other keys: the session cookie is `Secure`
    /// unless the file says otherwise when the pages are served over HTTPS.
    pub(crate) fn apply_defaults(&mut self) {
        let https = self.https();
        self.auth.cookie_secure.get_or_insert(https);
    }

    /// Reads, parses and validates a file; parse errors are prefixed with its path.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message } => ConfigError::Parse {
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// The embedded default. A test checks that it is valid, so this cannot fail in a
    /// released binary.
    pub fn embedded() -> Config {
        match Config::from_toml(Config::EMBEDDED) {
            Ok(config) => config,
            Err(e) => panic!("the embedded config/threering.toml is invalid: {e}"),
        }
    }

    /// The trunk called `name`, or the first one when `name` is None.
    pub fn trunk(&self, name: Option<&str>) -> Option<&TrunkConfig> {
        match name {
            Some(name) => self.trunks.iter().find(|t| t.name == name),
            None => self.trunks.first(),
        }
    }

    /// The queue that a dialled number (Request-URI user part) routes to.
    pub fn queue_for_number(&self, number: &str) -> Option<&QueueConfig> {
        self.queues
            .iter()
            .find(|q| q.numbers.iter().any(|n| n == number))
    }

    pub fn agent(&self, id: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.id == id)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.name == name)
    }

    /// `[sip] listen` parsed for the transports; errors name the entry.
    pub fn sip_listen_specs(&self) -> Result<Vec<ListenSpec>, String> {
        self.sip.listen.iter().map(|l| l.parse()).collect()
    }

    /// Is `ip` one of `[sip] trusted_peers`?
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.sip
            .trusted_peers
            .iter()
            .any(|p| ip_matches(p, ip) == Some(true))
    }

    /// Is `ip` the address of one of the `[[trunks]]`?
    pub fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunks
            .iter()
            .any(|t| t.socket_addr().is_some_and(|a| a.ip() == ip))
    }

    /// May `ip` place calls without credentials: a trusted peer or a trunk.
    pub fn may_call_unauthenticated(&self, ip: IpAddr) -> bool {
        self.is_trusted(ip) || self.is_trunk(ip)
    }
}

/// Whether `ip` falls in `spec` (an address or `address/prefix`); None if `spec` is
/// malformed.
fn ip_matches(spec: &str, ip: IpAddr) -> Option<bool> {
    let (addr, prefix) = match spec.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (spec.parse::<IpAddr>().ok()?, None),
    };
    Some(match (addr, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let bits = prefix.unwrap_or(32);
            if bits > 32 {
                return None;
            }
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let bits = prefix.unwrap_or(128);
            if bits > 128 {
                return None;
            }
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    })
}

#[cfg(test)]
mod trust_tests {
    use super::*;

    #[test]
    fn trusted_peers_match_addresses_and_blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip_matches("127.0.0.0/8", ip("127.1.2.3")), Some(true));
        assert_eq!(ip_matches("10.0.0.5", ip("10.0.0.6")), Some(false));
        assert_eq!(ip_matches("::1", ip("::1")), Some(true));
        assert_eq!(ip_matches("::1", ip("127.0.0.1")), Some(false));
        assert_eq!(ip_matches("10.0.0.0/33", ip("10.0.0.1")), None);
        assert_eq!(ip_matches("nonsense", ip("10.0.0.1")), None);
    }
}
