//! Users, roles, sign-in sessions, per-user API tokens and the audit log.
//!
//! Recordings and customer data are confidential: nobody sees anything without signing
//! in, and every playback is written to the audit log. A user has a role (agent, qa,
//! supervisor, admin) and, for agents, the agent id (工号) whose calls they may see.
//!
//! - **Passwords** are stored as Argon2id PHC strings ([`password`]); never the password.
//! - **API tokens** are 32 random bytes (hex), shown once; only their SHA-256 is stored.
//! - **Sessions**: the cookie holds 32 random bytes (hex); the database keeps their
//!   SHA-256 as the session id, so a copy of the database opens no session. A session
//!   ends `[auth] session_ttl_minutes` after its last use, or at logout. Each has its own
//!   CSRF token, which cookie-authenticated changes must echo in `X-CSRF-Token`.
//! - **Logins** are rate-limited in memory per user name and per source IP ([`limiter`]).
//! - **Audit log**: who did what to which target, when and from where ([`audit`]).
//!
//! Tables: `migrations/{sqlite,postgres}/0004_users.sql`, in the store's database.

pub mod audit;
pub mod cli;
pub mod limiter;
pub mod password;
mod store;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, Role};
use crate::store::{Store, StoreError};

pub use audit::{AuditEntry, AuditFilter, NewAudit};
pub use limiter::LoginLimiter;

/// Longest user name, agent id or token label, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A session's `last_seen_at` (and so its expiry) is written at most this often, so that
/// a busy page does not write the database on every request.
const SLIDE_EVERY_MS: i64 = 60_000;

/// A token's `last_used_at` is written at most this often.
const TOUCH_TOKEN_EVERY_MS: i64 = 60_000;

/// A user as everyone but the password store sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct User {
    pub name: String,
    #[serde(serialize_with = "role_name")]
    pub role: Role,
    /// The agent id (工号) the user's calls are matched by (role agent).
    pub agent_id: String,
    pub disabled: bool,
    /// Epoch ms.
    pub created_at: i64,
}

impl User {
    /// The agent id to restrict calls to: only for the agent role.
    pub fn agent_scope(&self) -> Option<String> {
        (self.role == Role::Agent).then(|| self.agent_id.clone())
    }
}

fn role_name<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role.as_str())
}

/// A per-user API token, without the token (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ApiToken {
    pub id: i64,
    pub user: String,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
}

/// A sign-in session as stored (its id is the SHA-256 of the cookie secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

/// A session just opened: `secret` goes into the cookie and nowhere else.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub session: Session,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub agent_id: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Every problem with the input, each naming its key.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("user {user:?} has no token {id}")]
    NoSuchToken { user: String, id: i64 },
    /// A stored value this version cannot read (e.g. an unknown role).
    #[error("user {user:?}: column {column} holds {value:?}, which this version cannot read")]
    Corrupt {
        user: String,
        column: &'static str,
        value: String,
    },
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for UsersError {
    fn from(e: sqlx::Error) -> UsersError {
        UsersError::Store(StoreError::Database(e))
    }
}

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefused {
    /// Unknown name, wrong password or a disabled user: the same answer for all three.
    #[error("wrong name or password")]
    Wrong,
    /// Too many failures for this name or from this address: try again after this many
    /// seconds (no password was checked).
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Failed(#[from] UsersError),
}

/// The users service: users, tokens, sessions, the login limiter and the audit log, over
/// the store's database. Cheap to clone.
#[derive(Clone)]
pub struct Users {
    store: Store,
    config: AuthConfig,
    limiter: Arc<LoginLimiter>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Users {
    pub fn new(store: &Store, config: &AuthConfig) -> Users {
        Users {
            store: store.clone(),
            config: config.clone(),
            limiter: Arc::new(LoginLimiter::new(config.login_attempts_per_minute)),
        }
    }

    /// The `[auth]` settings in force.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn session_ttl_ms(&self) -> i64 {
        i64::try_from(self.config.session_ttl_minutes)
            .unwrap_or(i64::MAX / 120_000)
            .saturating_mul(60_000)
    }

    /// Creates a user; `agent_id` defaults to the name.
    pub async fn create_user(
        &self,
        name: &str,
        role: Role,
        agent_id: Option<&str>,
        password: &str,
    ) -> Result<User, UsersError> {
        let name = name.trim();
        let agent_id = agent_id.map(str::trim).unwrap_or(name);
        let mut problems = name_problems("name", name);
        problems.extend(name_problems("agent_id", agent_id));
        problems.extend(password::problems(password));
        if !problems.is_empty() {
            return Err(UsersError::Invalid(problems));
        }
        let hash = hash_password(password).await?;
        let user = User {
            name: name.to_owned(),
            role,
            agent_id: agent_id.to_owned(),
            disabled: false,
            created_at: now_ms(),
        };
        if store::insert_user(&self.store, &user, &hash).await? {
            Ok(user)
        } else {
            Err(UsersError::Exists(user.name))
        }
    }

    pub async fn get_user(&self, name: &str) -> Result<Option<User>, UsersError> {
        Ok(store::user_with_hash(&self.store, name)
            .await?
            .map(|(user, _)| user))
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<User>, UsersError> {
        store::list_users(&self.store).await
    }

    /// Changes a user. A disabled user's sessions end at once (their tokens stop
    /// working too: every use checks the user).
    pub async fn update_user(&self, name: &str, change: &UserChange) -> Result<User, UsersError> {
        let mut problems = Vec::new();
        if let Some(agent_id) = &change.agent_id {
            problems.extend(name_problems("agent_id", agent_id.trim()));
        }
        if let Some(password) = &change.password {
            problems.extend(password::problems(password));
        }
        if !problems.is_empty() {
            return Err(UsersError::Invalid(problems));
        }
        let hash = match &change.password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let agent_id = change.agent_id.as_deref().map(str::trim);
        let changed = store::update_user(
            &self.store,
            name,
            change.role,
            agent_id,
            change.disabled,
            hash.as_deref(),
        )
        .await?;
        if !changed {
            return Err(UsersError::NoSuchUser(name.to_owned()));
        }
        if change.disabled == Some(true) || change.password.is_some() {
            // A new password or a disabled account signs every browser out.
            store::delete_sessions_of(&self.store, name).await?;
        }
        self.get_user(name)
            .await?
            .ok_or_else(|| UsersError::NoSuchUser(name.to_owned()))
    }

    pub async fn set_password(&self, name: &str, password: &str) -> Result<User, UsersError> {
        self.update_user(
            name,
            &UserChange {
                password: Some(password.to_owned()),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<User, UsersError> {
        self.update_user(
            name,
            &UserChange {
                disabled: Some(disabled),
                ..Default::default()
            },
        )
        .await
    }

    /// Checks a name and password, under the rate limit. Unknown names, wrong passwords
    /// and disabled users all get [`LoginRefused::Wrong`] after the same work.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<User, LoginRefused> {
        let keys = LoginLimiter::keys(name, ip);
        if let Err(wait) = self.limiter.check(&keys, Instant::now()) {
            return Err(LoginRefused::Throttled {
                retry_after_secs: limiter::retry_after_secs(wait),
            });
        }
        let found = store::user_with_hash(&self.store, name).await?;
        let password = password.to_owned();
        let (found, matches) = tokio::task::spawn_blocking(move || match found {
            Some((user, hash)) => {
                let matches = password::verify(&password, &hash);
                (Some(user), matches)
            }
            None => {
                password::verify_dummy(&password);
                (None, false)
            }
        })
        .await
        .map_err(|e| UsersError::Hash(e.to_string()))?;
        match found {
            Some(user) if matches && !user.disabled => {
                self.limiter.succeeded(name);
                Ok(user)
            }
            _ => {
                self.limiter.failed(&keys, Instant::now());
                Err(LoginRefused::Wrong)
            }
        }
    }

    /// Opens a session for `user` (expired sessions of everyone are swept out first).
    pub async fn create_session(&self, user: &str) -> Result<NewSession, UsersError> {
        let now = now_ms();
        store::delete_expired_sessions(&self.store, now).await?;
        let secret = random_hex();
        let session = Session {
            id: sha256_hex(&secret),
            user: user.to_owned(),
            csrf_token: random_hex(),
            created_at: now,
            expires_at: now.saturating_add(self.session_ttl_ms()),
            last_seen_at: now,
        };
        store::insert_session(&self.store, &session).await?;
        Ok(NewSession { secret, session })
    }

    /// The live session whose cookie secret is `secret`, and its user; None when there
    /// is none, it expired, or the user is disabled. Using a session moves its expiry.
    pub async fn session(&self, secret: &str) -> Result<Option<(User, Session)>, UsersError> {
        if !is_secret_shaped(secret) {
            return Ok(None);
        }
        let id = sha256_hex(secret);
        let Some((user, mut session)) = store::session_with_user(&self.store, &id).await? else {
            return Ok(None);
        };
        let now = now_ms();
        if session.expires_at <= now {
            store::delete_session(&self.store, &id).await?;
            return Ok(None);
        }
        if user.disabled {
            return Ok(None);
        }
        let ttl = self.session_ttl_ms();
        if now - session.last_seen_at >= SLIDE_EVERY_MS.min(ttl / 4) {
            session.last_seen_at = now;
            session.expires_at = now.saturating_add(ttl);
            store::slide_session(&self.store, &id, now, session.expires_at).await?;
        }
        Ok(Some((user, session)))
    }

    /// Ends the session whose cookie secret is `secret` (nothing if there is none).
    pub async fn end_session(&self, secret: &str) -> Result<(), UsersError> {
        if is_secret_shaped(secret) {
            store::delete_session(&self.store, &sha256_hex(secret)).await?;
        }
        Ok(())
    }

    /// A new API token for `user`: the token (shown once) and its stored description.
    pub async fn create_token(
        &self,
        user: &str,
        label: &str,
    ) -> Result<(String, ApiToken), UsersError> {
        let label = label.trim();
        if label.chars().count() > MAX_NAME_CHARS || label.chars().any(char::is_control) {
            return Err(UsersError::Invalid(vec![format!(
                "label: at most {MAX_NAME_CHARS} characters, no control characters"
            )]));
        }
        if self.get_user(user).await?.is_none() {
            return Err(UsersError::NoSuchUser(user.to_owned()));
        }
        let token = random_hex();
        let now = now_ms();
        let id = store::insert_token(&self.store, user, label, &sha256_hex(&token), now).await?;
        Ok((
            token,
            ApiToken {
                id,
                user: user.to_owned(),
                label: label.to_owned(),
                created_at: now,
                last_used_at: None,
                revoked: false,
            },
        ))
    }

    /// The user of a per-user API token; None for an unknown or revoked token or a
    /// disabled user.
    pub async fn token_user(&self, token: &str) -> Result<Option<(User, ApiToken)>, UsersError> {
        if !is_secret_shaped(token) {
            return Ok(None);
        }
        let Some((user, mut found)) =
            store::token_with_user(&self.store, &sha256_hex(token)).await?
        else {
            return Ok(None);
        };
        if found.revoked || user.disabled {
            return Ok(None);
        }
        let now = now_ms();
        if found
            .last_used_at
            .is_none_or(|at| now - at >= TOUCH_TOKEN_EVERY_MS)
        {
            store::touch_token(&self.store, found.id, now).await?;
            found.last_used_at = Some(now);
        }
        Ok(Some((user, found)))
    }

    /// A user's tokens (revoked ones too), oldest first.
    pub async fn list_tokens(&self, user: &str) -> Result<Vec<ApiToken>, UsersError> {
        if self.get_user(user).await?.is_none() {
            return Err(UsersError::NoSuchUser(user.to_owned()));
        }
        store::list_tokens(&self.store, user).await
    }

    /// Revokes one of `user`'s tokens; it stops working at once.
    pub async fn revoke_token(&self, user: &str, id: i64) -> Result<ApiToken, UsersError> {
        store::revoke_token(&self.store, user, id)
            .await?
            .ok_or_else(|| UsersError::NoSuchToken {
                user: user.to_owned(),
                id,
            })
    }

    /// Writes one audit entry.
    pub async fn audit(&self, entry: NewAudit) -> Result<AuditEntry, UsersError> {
        store::insert_audit(&self.store, entry, now_ms()).await
    }

    /// Audit entries, newest first.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, UsersError> {
        store::list_audit(&self.store, filter).await
    }
}

/// Problems with a user name or agent id (empty when it will do). Names appear in URL
/// paths and logs: letters (any script), digits and `. _ - @`.
pub fn name_problems(key: &str, name: &str) -> Vec<String> {
    let count = name.chars().count();
    if count == 0 {
        return vec![format!("{key}: must not be empty")];
    }
    let mut problems = Vec::new();
    if count > MAX_NAME_CHARS {
        problems.push(format!("{key}: at most {MAX_NAME_CHARS} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        problems.push(format!(
            "{key}: {name:?} may hold only letters, digits and . _ - @"
        ));
    }
    problems
}

async fn hash_password(password: &str) -> Result<String, UsersError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| UsersError::Hash(e.to_string()))?
        .map_err(UsersError::Hash)
}

/// 32 random bytes as 64 lowercase hex characters (tokens, cookie secrets, CSRF tokens).
pub fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `text` could be one of our secrets (64 hex digits); anything else is refused
/// before it reaches the database.
fn is_secret_shaped(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests;
