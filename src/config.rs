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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sip::transport::ListenSpec;
use crate::sip::Uri;

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

/// `[auth]`: sign-in sessions and the login rate limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session ends this long after its last use (sliding).
    pub session_ttl_minutes: u64,
    /// Failed logins allowed per minute, per user name and per source IP; then 429.
    pub login_attempts_per_minute: u32,
    /// Mark the session cookie `Secure` (only sent over HTTPS). Off by default because
    /// the default listens on 127.0.0.1 over plain HTTP.
    pub cookie_secure: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl_minutes: 480,
            login_attempts_per_minute: 10,
            cookie_secure: false,
        }
    }
}

/// `[tickets]`: what the form offers and when a survey reopens a ticket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// Business areas (业务区域) a ticket is dispatched by.
    pub areas: Vec<String>,
    /// Inquiry types (咨询类型).
    pub inquiry_types: Vec<String>,
    /// Ticket ids are `<id_prefix>-YYYYMMDD-NNNN`.
    pub id_prefix: String,
    /// A reply call's survey score at or below this reopens the ticket.
    pub reopen_score: u8,
    /// Dispatch rules (按业务区域、咨询类型和内容下发工单): a new ticket with no team goes
    /// to the team of the first rule it matches.
    pub dispatch: Vec<DispatchRule>,
}

/// `[[tickets.dispatch]]`: every key given must match (content by substring).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRule {
    #[serde(default)]
    pub area: Option<String>,
    #[serde(default)]
    pub inquiry_type: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Matches when the ticket's content contains this text.
    #[serde(default)]
    pub content_contains: Option<String>,
    pub team: String,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        TicketsConfig {
            areas: strings(&["华南", "华东", "华北", "西南", "东北"]),
            inquiry_types: strings(&[
                "下单",
                "查单",
                "收送范围",
                "运输费用",
                "运送时效",
                "禁寄物品",
                "办理流程",
                "办理须知",
                "其他",
            ]),
            id_prefix: "T".into(),
            reopen_score: 2,
            dispatch: Vec::new(),
        }
    }
}

/// `[archive]`: where ticket bundles go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Root of `YYYY/MM/DD/<kind>/<ticket id>.tar`.
    pub root: PathBuf,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            root: PathBuf::from("archive"),
        }
    }
}

/// `[callbacks]`: which numbers callbacks may dial and how many a day, so a stolen
/// agent account cannot run up international calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// A number must start with one of these (empty: any).
    pub allowed_prefixes: Vec<String>,
    /// ...and with none of these (checked first).
    pub denied_prefixes: Vec<String>,
    /// Longest number, in characters.
    pub max_digits: usize,
    /// Callbacks one agent may start per local day (0 = no limit).
    pub per_agent_per_day: u32,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            // Mobile numbers (1…) and domestic numbers with an area code (0…); no
            // international (00…, +…) unless configured.
            allowed_prefixes: vec!["1".into(), "0".into()],
            denied_prefixes: vec!["00".into(), "+".into()],
            max_digits: 13,
            per_agent_per_day: 100,
        }
    }
}

impl CallbacksConfig {
    /// Why `number` may not be dialled, if it may not.
    pub fn refuse(&self, number: &str) -> Option<String> {
        if number.len() > self.max_digits {
            return Some(format!(
                "{number:?} is longer than [callbacks] max_digits ({})",
                self.max_digits
            ));
        }
        if let Some(p) = self
            .denied_prefixes
            .iter()
            .find(|p| number.starts_with(p.as_str()))
        {
            return Some(format!(
                "{number:?} starts with {p:?}, which [callbacks] denied_prefixes refuses"
            ));
        }
        let allowed = self.allowed_prefixes.is_empty()
            || self
                .allowed_prefixes
                .iter()
                .any(|p| number.starts_with(p.as_str()));
        (!allowed).then(|| {
            format!(
                "{number:?} starts with none of [callbacks] allowed_prefixes ({})",
                self.allowed_prefixes.join(", ")
            )
        })
    }
}

/// `[[trunks]]`: a SIP trunk (PBX, carrier, Kamailio) that outbound calls go through.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// `IP:PORT`, or an IP for port 5060 (host names are not resolved).
    pub address: String,
    /// udp | tcp
    #[serde(default = "default_trunk_transport")]
    pub transport: String,
    /// Digest credentials, when the trunk challenges our INVITEs.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The number customers see (From user); the queue's first number otherwise.
    #[serde(default)]
    pub caller_id: Option<String>,
}

fn default_trunk_transport() -> String {
    "udp".into()
}

/// `[[webhooks]]`: a receiver of the CTI events, POSTed as signed JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in dead letters and logs.
    pub name: String,
    /// `http://HOST[:PORT]/PATH` (https is not supported yet).
    pub url: String,
    /// HMAC-SHA256 key of `X-Threering-Signature`.
    pub secret: Secret,
    /// Event types sent (`call.answered`, ...); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// One attempt (connect, send, answer) within this long.
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts before the event becomes a dead letter.
    #[serde(default = "default_webhook_max_attempts")]
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one (at most
    /// 5 min, ± 20 % jitter).
    #[serde(default = "default_webhook_retry_base_ms")]
    pub retry_base_ms: u64,
}

fn default_webhook_timeout_ms() -> u64 {
    5000
}
fn default_webhook_max_attempts() -> u32 {
    8
}
fn default_webhook_retry_base_ms() -> u64 {
    1000
}

impl TrunkConfig {
    /// `address` as IP:PORT; a bare IP means port 5060.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let address = self.address.trim();
        address
            .parse()
            .ok()
            .or_else(|| {
                address
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 5060))
            })
            .or_else(|| {
                let bare = address.strip_prefix('[')?.strip_suffix(']')?;
                bare.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 5060))
            })
    }

    /// Where the trunk is, when `address` and `transport` are valid.
    pub fn target(&self) -> Option<(SocketAddr, crate::sip::transport::Protocol)> {
        let addr = self.socket_addr()?;
        let protocol = match self.transport.to_ascii_lowercase().as_str() {
            "udp" => crate::sip::transport::Protocol::Udp,
            "tcp" => crate::sip::transport::Protocol::Tcp,
            _ => return None,
        };
        Some((addr, protocol))
    }
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
    #[serde(default = "default_trusted_peers")]
    pub trusted_peers: Vec<String>,
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
pub struct HttpConfig {
    /// Where the API, `/healthz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// API bearer tokens. With none, every `/api` request is refused.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One API token. Only the SHA-256 of the token is stored, so a leaked config file does
/// not leak the token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token (shows in logs and the audit trail).
    pub name: String,
    pub role: Role,
    /// Lower- or upper-case hex SHA-256 of the token text.
    pub token_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Qa,
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Qa => "qa",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// The role named `text` (as [`Role::as_str`] writes it).
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "agent" => Some(Role::Agent),
            "qa" => Some(Role::Qa),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path` (relative to the working directory), `sqlite::memory:`, or later
    /// `postgres://…`.
    pub database: String,
    /// Root directory of the recordings.
    pub recordings: PathBuf,
}

/// The post-call satisfaction survey (`对客户进行满意度调查`): when the agent hangs up, the
/// caller stays on the line, hears `prompt`, and the first key 1–5 is the score.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyConfig {
    /// Survey callers when the agent hangs up first (queues may override). Default true.
    #[serde(default = "default_survey_enabled")]
    pub enabled: bool,
    /// How long to wait for a key after the prompt, in ms.
    #[serde(default = "default_survey_timeout_ms")]
    pub timeout_ms: u64,
    /// 8 kHz mono 16-bit WAV files; the built-in prompts when absent.
    #[serde(default)]
    pub prompt: Option<PathBuf>,
    #[serde(default)]
    pub invalid_prompt: Option<PathBuf>,
    #[serde(default)]
    pub thanks_prompt: Option<PathBuf>,
    /// An agent transfers the caller to the survey with a REFER to this user
    /// (`Refer-To: <sip:survey@…>`).
    #[serde(default = "default_survey_number")]
    pub number: String,
}

fn default_survey_number() -> String {
    "survey".into()
}

impl Default for SurveyConfig {
    fn default() -> Self {
        SurveyConfig {
            enabled: default_survey_enabled(),
            timeout_ms: default_survey_timeout_ms(),
            prompt: None,
            invalid_prompt: None,
            thanks_prompt: None,
            number: default_survey_number(),
        }
    }
}

fn default_survey_enabled() -> bool {
    true
}

fn default_survey_timeout_ms() -> u64 {
    10_000
}

/// The three-ring rule (DESIGN.md "Ring timing").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingsConfig {
    /// One ring burst every `cadence_ms` (China: 1 s on, 4 s off = 5000).
    #[serde(default = "default_cadence_ms")]
    pub cadence_ms: u64,
    /// Answer within this many rings.
    #[serde(default = "default_ring_target")]
    pub target: u32,
    /// Never more than this many rings.
    #[serde(default = "default_ring_limit")]
    pub limit: u32,
}

impl Default for RingsConfig {
    fn default() -> Self {
        RingsConfig {
            cadence_ms: default_cadence_ms(),
            target: default_ring_target(),
            limit: default_ring_limit(),
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The employee number; also the SIP user the agent registers as.
    pub id: String,
    pub name: String,
    /// Digest password for REGISTER.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A fixed contact (e.g. a PBX extension) rung when the agent has not registered.
    #[serde(default)]
    pub contact: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// Request-URI user parts routed to this queue.
    pub numbers: Vec<String>,
    #[serde(default)]
    pub strategy: Strategy,
    /// Agent ids, in order (the order matters for round-robin and ties).
    pub agents: Vec<String>,
    /// How long one agent attempt rings before we cancel it and try the next agent.
    #[serde(default = "default_ring_timeout_ms")]
    pub ring_timeout_ms: u64,
    /// How long a caller may wait for any agent before overflow (or 480).
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Queue that takes the call after `max_wait_ms`.
    #[serde(default)]
    pub overflow: Option<String>,
    /// After a call, the agent is not rung for this long.
    #[serde(default = "default_wrap_up_ms")]
    pub wrap_up_ms: u64,
    /// Ring-no-answers in a row after which the agent is paused (0 = never).
    #[serde(default = "default_auto_pause_after")]
    pub auto_pause_after: u32,
    /// After an agent answers busy, rejects, or cannot be reached, it is not rung again
    /// for this long (without it, a busy phone would be re-rung in a tight loop).
    #[serde(default = "default_retry_ms")]
    pub retry_ms: u64,
    /// Record this queue's calls (both sides, stereo WAV). Default true.
    #[serde(default = "default_record")]
    pub record: bool,
    /// Survey this queue's callers after the agent hangs up; `[survey] enabled` if absent.
    #[serde(default)]
    pub survey: Option<bool>,
    /// This queue's own survey prompts (8 kHz mono 16-bit WAV); `[survey]`'s otherwise.
    #[serde(default)]
    pub survey_prompt: Option<PathBuf>,
    #[serde(default)]
    pub survey_invalid_prompt: Option<PathBuf>,
    #[serde(default)]
    pub survey_thanks_prompt: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Ring every available agent at once; the first to answer wins.
    RingAll,
    /// The agent idle longest since their last call.
    #[default]
    LongestIdle,
    /// Agents in turn, continuing after the last one rung.
    RoundRobin,
    /// The agent with the fewest answered calls so far.
    FewestCalls,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring-all",
            Strategy::LongestIdle => "longest-idle",
            Strategy::RoundRobin => "round-robin",
            Strategy::FewestCalls => "fewest-calls",
        }
    }
}

/// A password. Its `Debug` prints `***` so that logging a config (or an agent) never
/// writes the password to a log file; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The password itself; named so that every use stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
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
fn default_record() -> bool {
    true
}
fn default_cadence_ms() -> u64 {
    5000
}
fn default_ring_target() -> u32 {
    3
}
fn default_ring_limit() -> u32 {
    5
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
fn default_ring_timeout_ms() -> u64 {
    15_000
}
fn default_max_wait_ms() -> u64 {
    120_000
}
fn default_wrap_up_ms() -> u64 {
    5000
}
fn default_retry_ms() -> u64 {
    5000
}

fn default_auto_pause_after() -> u32 {
    3
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
    pub const EMBEDDED: &'static str = include_str!("../config/threering.toml");

    /// Parses and validates.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            message: e.to_string(),
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { problems })
        }
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

    /// Every problem, each naming its key path, e.g. `queues[0].agents: unknown agent
    /// "9999"`. Empty when the configuration is usable.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        self.check_sip(&mut problems);
        self.check_media(&mut problems);
        self.check_http(&mut problems);
        self.check_store(&mut problems);
        self.check_rings(&mut problems);
        self.check_daemon(&mut problems);
        self.check_agents(&mut problems);
        self.check_queues(&mut problems);
        self.check_tickets(&mut problems);
        for (key, message) in crate::events::webhooks::validate(&self.webhooks) {
            problems.push(ConfigProblem::new(key, message));
        }
        for (key, message) in self.qa.validate() {
            problems.push(ConfigProblem::new(format!("qa.{key}"), message));
        }
        for (key, message) in self.reports.validate() {
            problems.push(ConfigProblem::new(format!("reports.{key}"), message));
        }
        self.check_auth(&mut problems);
        problems
    }

    fn check_auth(&self, problems: &mut Vec<ConfigProblem>) {
        let auth = &self.auth;
        if !(1..=43_200).contains(&auth.session_ttl_minutes) {
            problems.push(ConfigProblem::new(
                "auth.session_ttl_minutes",
                "must be from 1 to 43200 (30 days)",
            ));
        }
        if auth.login_attempts_per_minute == 0 {
            problems.push(ConfigProblem::new(
                "auth.login_attempts_per_minute",
                "must be at least 1",
            ));
        }
    }

    /// The trunk called `name`, or the first one when `name` is None.
    pub fn trunk(&self, name: Option<&str>) -> Option<&TrunkConfig> {
        match name {
            Some(name) => self.trunks.iter().find(|t| t.name == name),
            None => self.trunks.first(),
        }
    }

    fn check_callbacks(&self, problems: &mut Vec<ConfigProblem>) {
        let callbacks = &self.callbacks;
        if callbacks.max_digits == 0 || callbacks.max_digits > 32 {
            problems.push(ConfigProblem::new("callbacks.max_digits", "1 to 32"));
        }
        for (key, list) in [
            ("allowed_prefixes", &callbacks.allowed_prefixes),
            ("denied_prefixes", &callbacks.denied_prefixes),
        ] {
            for (i, prefix) in list.iter().enumerate() {
                let ok = !prefix.is_empty()
                    && prefix
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'));
                if !ok {
                    problems.push(ConfigProblem::new(
                        format!("callbacks.{key}[{i}]"),
                        format!("{prefix:?}: digits, +, * and # only"),
                    ));
                }
            }
        }
    }

    fn check_tickets(&self, problems: &mut Vec<ConfigProblem>) {
        self.check_callbacks(problems);
        let tickets = &self.tickets;
        if tickets.areas.is_empty() {
            problems.push(ConfigProblem::new("tickets.areas", "must not be empty"));
        }
        if tickets.inquiry_types.is_empty() {
            problems.push(ConfigProblem::new(
                "tickets.inquiry_types",
                "must not be empty",
            ));
        }
        let prefix_ok = !tickets.id_prefix.is_empty()
            && tickets.id_prefix.len() <= 8
            && tickets.id_prefix.chars().all(|c| c.is_ascii_alphanumeric());
        if !prefix_ok {
            problems.push(ConfigProblem::new(
                "tickets.id_prefix",
                "1 to 8 ASCII letters or digits, e.g. \"T\"",
            ));
        }
        for (i, rule) in tickets.dispatch.iter().enumerate() {
            let key = format!("tickets.dispatch[{i}]");
            if rule.team.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("{key}.team"),
                    "must not be empty",
                ));
            }
            if let Some(area) = &rule.area {
                if !tickets.areas.contains(area) {
                    problems.push(ConfigProblem::new(
                        format!("{key}.area"),
                        format!("{area:?} is not in tickets.areas"),
                    ));
                }
            }
            if let Some(inquiry) = &rule.inquiry_type {
                if !tickets.inquiry_types.contains(inquiry) {
                    problems.push(ConfigProblem::new(
                        format!("{key}.inquiry_type"),
                        format!("{inquiry:?} is not in tickets.inquiry_types"),
                    ));
                }
            }
            if let Some(kind) = &rule.kind {
                if crate::tickets::TicketKind::parse(kind).is_none() {
                    problems.push(ConfigProblem::new(
                        format!("{key}.kind"),
                        "consultation, query, problem, complaint or order",
                    ));
                }
            }
        }
        if tickets.reopen_score > 5 {
            problems.push(ConfigProblem::new(
                "tickets.reopen_score",
                "survey scores are 1-5 (0 = never reopen)",
            ));
        }
        if let Err(list) = self.calendar.compile() {
            for (key, message) in list {
                problems.push(ConfigProblem::new(format!("calendar.{key}"), message));
            }
        }
        for (key, message) in self.sla.validate() {
            problems.push(ConfigProblem::new(format!("sla.{key}"), message));
        }
        let mut names = HashSet::new();
        for (i, trunk) in self.trunks.iter().enumerate() {
            if !names.insert(trunk.name.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("trunks[{i}].name"),
                    format!("trunk {:?} is defined twice", trunk.name),
                ));
            }
            if trunk.socket_addr().is_none() {
                problems.push(ConfigProblem::new(
                    format!("trunks[{i}].address"),
                    format!(
                        "{:?} is not IP:PORT or IP (host names are not resolved)",
                        trunk.address
                    ),
                ));
            }
            if !matches!(trunk.transport.to_ascii_lowercase().as_str(), "udp" | "tcp") {
                problems.push(ConfigProblem::new(
                    format!("trunks[{i}].transport"),
                    "udp or tcp",
                ));
            }
            if trunk.username.is_some() != trunk.password.is_some() {
                problems.push(ConfigProblem::new(
                    format!("trunks[{i}]"),
                    "username and password go together",
                ));
            }
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

    fn check_sip(&self, problems: &mut Vec<ConfigProblem>) {
        for (i, peer) in self.sip.trusted_peers.iter().enumerate() {
            if ip_matches(peer, IpAddr::from([0, 0, 0, 0])).is_none() {
                problems.push(ConfigProblem::new(
                    format!("sip.trusted_peers[{i}]"),
                    format!("{peer:?} is not an IP address or CIDR block"),
                ));
            }
        }
        if self.sip.listen.is_empty() {
            problems.push(ConfigProblem::new(
                "sip.listen",
                "at least one entry is needed, e.g. \"udp:127.0.0.1:5060\"",
            ));
        }
        for entry in &self.sip.listen {
            if let Err(message) = entry.parse::<ListenSpec>() {
                problems.push(ConfigProblem::new("sip.listen", message));
            }
        }
        if self.sip.realm.trim().is_empty() {
            problems.push(ConfigProblem::new("sip.realm", "must not be empty"));
        }
        if self.sip.t1_ms == 0 {
            problems.push(ConfigProblem::new("sip.t1_ms", "must be greater than 0"));
        }
        if self.sip.max_register_expires == 0 {
            problems.push(ConfigProblem::new(
                "sip.max_register_expires",
                "must be greater than 0",
            ));
        }
    }

    fn check_media(&self, problems: &mut Vec<ConfigProblem>) {
        let [first, last] = self.media.rtp_ports;
        if first == 0 {
            problems.push(ConfigProblem::new(
                "media.rtp_ports",
                "port 0 is not a port (use e.g. [20000, 29999])",
            ));
        } else if first >= last {
            problems.push(ConfigProblem::new(
                "media.rtp_ports",
                format!("first port {first} must be lower than last port {last}"),
            ));
        } else {
            // RTP takes an even port and leaves the odd one above it for RTCP, so the
            // range must hold at least one such pair.
            let first_even = u32::from(first) + u32::from(first) % 2;
            if first_even + 1 > u32::from(last) {
                problems.push(ConfigProblem::new(
                    "media.rtp_ports",
                    format!("[{first}, {last}] holds no even/odd port pair for RTP/RTCP"),
                ));
            }
        }
    }

    fn check_http(&self, problems: &mut Vec<ConfigProblem>) {
        let mut names = HashSet::new();
        for (i, token) in self.http.tokens.iter().enumerate() {
            if token.name.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("http.tokens[{i}].name"),
                    "must not be empty",
                ));
            } else if !names.insert(token.name.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("http.tokens[{i}].name"),
                    format!("token name {:?} is used twice", token.name),
                ));
            }
            let hash = &token.token_sha256;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push(ConfigProblem::new(
                    format!("http.tokens[{i}].token_sha256"),
                    "must be 64 hex characters (e.g. the output of `printf %s TOKEN | sha256sum`)",
                ));
            }
        }
    }

    fn check_store(&self, problems: &mut Vec<ConfigProblem>) {
        let url = self.store.database.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            problems.push(ConfigProblem::new(
                "store.database",
                "PostgreSQL is not supported yet; use sqlite://FILE",
            ));
        } else if !url.starts_with("sqlite:") || url.len() <= "sqlite:".len() {
            problems.push(ConfigProblem::new(
                "store.database",
                format!("{url:?}: expected sqlite://FILE or sqlite::memory:"),
            ));
        }
        if self.store.recordings.as_os_str().is_empty() {
            problems.push(ConfigProblem::new("store.recordings", "must not be empty"));
        }
    }

    fn check_rings(&self, problems: &mut Vec<ConfigProblem>) {
        let rings = &self.rings;
        if rings.cadence_ms == 0 {
            problems.push(ConfigProblem::new(
                "rings.cadence_ms",
                "must be greater than 0",
            ));
        }
        if rings.target == 0 {
            problems.push(ConfigProblem::new("rings.target", "must be at least 1"));
        }
        if rings.limit < rings.target {
            problems.push(ConfigProblem::new(
                "rings.limit",
                format!(
                    "limit {} is lower than target {}",
                    rings.limit, rings.target
                ),
            ));
        }
    }

    fn check_daemon(&self, problems: &mut Vec<ConfigProblem>) {
        if self.daemon.node_id.trim().is_empty() {
            problems.push(ConfigProblem::new("daemon.node_id", "must not be empty"));
        }
        if self.daemon.max_calls == 0 {
            problems.push(ConfigProblem::new(
                "daemon.max_calls",
                "must be greater than 0",
            ));
        }
    }

    fn check_agents(&self, problems: &mut Vec<ConfigProblem>) {
        let mut ids = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if agent.id.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("agents[{i}].id"),
                    "must not be empty",
                ));
            } else if !ids.insert(agent.id.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("agents[{i}].id"),
                    format!("agent id {:?} is used twice", agent.id),
                ));
            }
            if agent.password.is_none() && agent.contact.is_none() {
                problems.push(ConfigProblem::new(
                    format!("agents[{i}]"),
                    format!(
                        "agent {:?} needs a password (to register) or a contact, or both",
                        agent.id
                    ),
                ));
            }
            if let Some(contact) = &agent.contact {
                if let Some(message) = contact_problem(contact) {
                    problems.push(ConfigProblem::new(format!("agents[{i}].contact"), message));
                }
            }
        }
    }

    fn check_queues(&self, problems: &mut Vec<ConfigProblem>) {
        let agent_ids: HashSet<&str> = self.agents.iter().map(|a| a.id.as_str()).collect();
        let mut queue_index: HashMap<&str, usize> = HashMap::new();
        for (i, queue) in self.queues.iter().enumerate() {
            if queue.name.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("queues[{i}].name"),
                    "must not be empty",
                ));
            } else if queue_index.contains_key(queue.name.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("queues[{i}].name"),
                    format!("queue name {:?} is used twice", queue.name),
                ));
            } else {
                queue_index.insert(queue.name.as_str(), i);
            }
        }
        let mut number_owner: HashMap<&str, &str> = HashMap::new();
        for (i, queue) in self.queues.iter().enumerate() {
            for number in &queue.numbers {
                if number.trim().is_empty() {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].numbers"),
                        "a number must not be empty",
                    ));
                } else if let Some(owner) = number_owner.insert(number, &queue.name) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].numbers"),
                        format!("number {number:?} is already routed to queue {owner:?}"),
                    ));
                }
            }
            let mut listed = HashSet::new();
            for agent in &queue.agents {
                if !agent_ids.contains(agent.as_str()) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].agents"),
                        format!("unknown agent {agent:?}"),
                    ));
                } else if !listed.insert(agent.as_str()) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].agents"),
                        format!("agent {agent:?} is listed twice"),
                    ));
                }
            }
            if queue.ring_timeout_ms == 0 {
                problems.push(ConfigProblem::new(
                    format!("queues[{i}].ring_timeout_ms"),
                    "must be greater than 0",
                ));
            }
            if let Some(overflow) = &queue.overflow {
                if overflow == &queue.name {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].overflow"),
                        "a queue cannot overflow into itself",
                    ));
                } else if !queue_index.contains_key(overflow.as_str()) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].overflow"),
                        format!("unknown queue {overflow:?}"),
                    ));
                } else if let Some(cycle) = self.overflow_cycle(i, &queue_index) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].overflow"),
                        format!("overflow cycle: {}", cycle.join(" -> ")),
                    ));
                }
            }
        }
    }

    /// Follows overflows from queue `start`; if they come back to it, the names on the
    /// way round. A call caught in a cycle would bounce between queues for ever.
    fn overflow_cycle(
        &self,
        start: usize,
        queue_index: &HashMap<&str, usize>,
    ) -> Option<Vec<String>> {
        let mut path = vec![self.queues[start].name.clone()];
        let mut seen = HashSet::from([start]);
        let mut at = start;
        while let Some(next) = self.queues[at]
            .overflow
            .as_deref()
            .and_then(|name| queue_index.get(name).copied())
        {
            path.push(self.queues[next].name.clone());
            if next == start {
                return Some(path);
            }
            if !seen.insert(next) {
                // A cycle further on that does not include `start`: reported there.
                return None;
            }
            at = next;
        }
        None
    }
}

/// Why a fixed agent contact cannot be rung, if it cannot.
fn contact_problem(contact: &str) -> Option<String> {
    match Uri::parse(contact) {
        Ok(Uri::Sip(uri)) if uri.secure => Some(format!(
            "{contact:?}: sips: needs TLS, which is not supported yet"
        )),
        Ok(Uri::Sip(_)) => None,
        Ok(other) => Some(format!(
            "{contact:?}: expected a sip: URI, not {}:",
            other.scheme()
        )),
        Err(e) => Some(format!("{contact:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_cycles_are_found() {
        let mut config = Config::embedded();
        let mut second = config.queues[0].clone();
        second.name = "complaints".into();
        second.numbers = vec!["4008005678".into()];
        second.overflow = Some("consult".into());
        config.queues[0].overflow = Some("complaints".into());
        config.queues.push(second);
        let problems = config.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0]
            .to_string()
            .contains("queues[0].overflow: overflow cycle: consult -> complaints -> consult"));
    }

    #[test]
    fn an_overflow_chain_without_cycle_is_fine() {
        let mut config = Config::embedded();
        let mut second = config.queues[0].clone();
        second.name = "complaints".into();
        second.numbers = vec![];
        config.queues[0].overflow = Some("complaints".into());
        config.queues.push(second);
        assert_eq!(config.validate(), vec![]);
    }

    #[test]
    fn rtp_range_needs_an_even_odd_pair() {
        let mut config = Config::embedded();
        config.media.rtp_ports = [20001, 20002];
        assert_eq!(config.validate()[0].key, "media.rtp_ports");
        config.media.rtp_ports = [20001, 20003];
        assert_eq!(config.validate(), vec![]);
        config.media.rtp_ports = [20000, 20000];
        assert_eq!(config.validate()[0].key, "media.rtp_ports");
    }

    #[test]
    fn contacts_must_be_plain_sip_uris() {
        assert_eq!(contact_problem("sip:1001@127.0.0.1:5071"), None);
        assert!(contact_problem("tel:+861012345").is_some());
        assert!(contact_problem("sips:1001@example.com").is_some());
        assert!(contact_problem("1001@127.0.0.1").is_some());
    }

    #[test]
    fn tls_listen_is_refused_for_now() {
        let mut config = Config::embedded();
        config.sip.listen.push("tls:127.0.0.1:5061".into());
        let problems = config.validate();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "sip.listen");
        assert!(problems[0].message.contains("not supported yet"));
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
