//! `[http]`, `[auth]` and `[[webhooks]]`: the HTTP side, its tokens and roles, and secrets.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[auth]`: sign-in sessions and the login rate limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session ends this long after its last use (sliding).
    pub session_ttl_minutes: u64,
    /// Failed logins allowed per minute, per user name and per source IP; then 429.
    pub login_attempts_per_minute: u32,
    /// Mark the session cookie `Secure` (only sent over HTTPS). When not set: on when
    /// `[http]` serves HTTPS (`tls_cert`), off otherwise (the default listens on
    /// 127.0.0.1 over plain HTTP). Set it to true behind a reverse proxy that terminates
    /// HTTPS. [`Config::from_toml`](super::Config::from_toml) fills it in.
    pub cookie_secure: Option<bool>,
}

impl AuthConfig {
    /// Whether the session cookie carries `Secure`.
    pub fn secure_cookie(&self) -> bool {
        self.cookie_secure.unwrap_or(false)
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl_minutes: 480,
            login_attempts_per_minute: 10,
            cookie_secure: None,
        }
    }
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the API, `/healthz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// API bearer tokens. With none, every `/api` request is refused.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// PEM certificate chain (leaf first): with `tls_key`, `listen` serves HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
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
