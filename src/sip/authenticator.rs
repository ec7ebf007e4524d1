//! Digest authentication of incoming requests, with the brute-force lockout: the
//! registrar's REGISTERs (401 / `WWW-Authenticate`) and out-of-dialog INVITEs from
//! untrusted sources (407 / `Proxy-Authenticate`) go through one [`Authenticator`].
//!
//! ```text
//!  no credentials ─────────────────────────────────────────▶ challenge (401 / 407)
//!  credentials ─▶ source or user locked? ── yes ─▶ 403, password not checked
//!                      │ no
//!                      ▼
//!                 verify ─ ok ─▶ the user (its source becomes known for it)
//!                      ├─ wrong password or unknown user ─▶ 403, counted toward the lockout
//!                      └─ stale / foreign nonce ─▶ challenge again; malformed ─▶ 400
//! ```
//!
//! Every refusal that could depend on the user name is the same bare `403 Forbidden`,
//! whether the name exists, the password is wrong or a lockout is in force, and unknown
//! names cost the same hashing as known ones ([`DigestServer`]'s dummy password), so
//! neither the answer nor its timing tells an extension scanner which names exist.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::auth::lockout::Lockouts;
use super::auth::{parse_credentials, Algorithm, AuthError, DigestServer};
use super::header::HeaderName;
use super::message::{response_to, Request, Response};

/// How long a nonce we issue stays valid.
const NONCE_TTL: Duration = Duration::from_secs(300);

/// Who is asking for credentials: a registrar (RFC 3261 §22.2) or a proxy-like front
/// door for calls (§22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenger {
    /// 401 with `WWW-Authenticate`; credentials in `Authorization`.
    Registrar,
    /// 407 with `Proxy-Authenticate`; credentials in `Proxy-Authorization`.
    Proxy,
}

impl Challenger {
    fn status(self) -> u16 {
        match self {
            Challenger::Registrar => 401,
            Challenger::Proxy => 407,
        }
    }

    fn challenge_header(self) -> HeaderName {
        match self {
            Challenger::Registrar => HeaderName::WwwAuthenticate,
            Challenger::Proxy => HeaderName::ProxyAuthenticate,
        }
    }

    fn credentials_header(self) -> HeaderName {
        match self {
            Challenger::Registrar => HeaderName::Authorization,
            Challenger::Proxy => HeaderName::ProxyAuthorization,
        }
    }
}

/// Challenges and checks digest credentials for one realm. `Send + Sync`.
#[derive(Debug)]
pub struct Authenticator {
    digest: DigestServer,
    /// Offered in this order, one challenge header each (RFC 8760).
    algorithms: Vec<Algorithm>,
    lockouts: Arc<Lockouts>,
}

impl Authenticator {
    pub fn new(realm: &str, algorithms: Vec<Algorithm>, lockouts: Arc<Lockouts>) -> Self {
        Authenticator {
            digest: DigestServer::new(realm, rand::random(), NONCE_TTL),
            algorithms,
            lockouts,
        }
    }

    /// The lockout tables this authenticator counts failures in.
    pub fn lockouts(&self) -> &Arc<Lockouts> {
        &self.lockouts
    }

    /// A fresh challenge (401 or 407), with our To tag `tag`.
    pub fn challenge(&self, req: &Request, by: Challenger, tag: &str, stale: bool) -> Response {
        let mut resp = response_to(req, by.status(), None, Some(tag));
        let now = SystemTime::now();
        for alg in &self.algorithms {
            resp.headers.push(
                by.challenge_header(),
                self.digest.challenge(*alg, stale, now),
            );
        }
        resp
    }

    /// The user `req` authenticates as, coming from `source`; otherwise the answer to
    /// send (a challenge, 403 or 400), with our To tag `tag`. `password_for(user)` gives
    /// a user's password if the user exists.
    pub fn authenticate(
        &self,
        req: &Request,
        source: IpAddr,
        by: Challenger,
        tag: &str,
        password_for: impl Fn(&str) -> Option<String>,
    ) -> Result<String, Response> {
        let forbidden = || response_to(req, 403, None, Some(tag));
        let Some(value) = req.headers.get(&by.credentials_header()) else {
            return Err(self.challenge(req, by, tag, false));
        };
        let creds = match parse_credentials(value) {
            Ok(creds) => creds,
            // Another scheme: offer ours.
            Err(AuthError::NotDigest { .. }) => return Err(self.challenge(req, by, tag, false)),
            Err(e) => return Err(bad_credentials(req, by, tag, &e)),
        };
        let now = Instant::now();
        if let Err(kind) = self.lockouts.check(source, &creds.username, now) {
            tracing::debug!(%source, kind = kind.as_str(), method = %req.method, "credentials refused unchecked: locked out");
            return Err(forbidden());
        }
        let verified = self.digest.verify_credentials(
            req.method.as_str(),
            &creds,
            password_for,
            SystemTime::now(),
        );
        match verified {
            Ok(v) => {
                self.lockouts.succeeded(source, &v.username, now);
                Ok(v.username)
            }
            // A nonce from before a restart, another realm: challenge.
            Err(AuthError::BadNonce | AuthError::WrongRealm) => {
                Err(self.challenge(req, by, tag, false))
            }
            Err(AuthError::StaleNonce) => Err(self.challenge(req, by, tag, true)),
            Err(e @ AuthError::Malformed { .. }) => Err(bad_credentials(req, by, tag, &e)),
            Err(AuthError::Replay { .. }) => Err(response_to(
                req,
                403,
                Some("Forbidden: replayed nonce count"),
                Some(tag),
            )),
            // Unknown users and wrong passwords: the same answer (no enumeration), and
            // both count toward the lockout.
            Err(AuthError::UnknownUser | AuthError::WrongResponse) => {
                self.lockouts.failed(source, &creds.username, now);
                Err(forbidden())
            }
            Err(_) => Err(forbidden()),
        }
    }
}

/// 400 naming the credentials header and what is wrong with it.
fn bad_credentials(req: &Request, by: Challenger, tag: &str, error: &AuthError) -> Response {
    let reason = match error {
        AuthError::Malformed { reason } => reason.clone(),
        other => other.to_string(),
    };
    let reason = format!(
        "Bad Request: {}: {reason}",
        by.credentials_header().as_str()
    );
    response_to(req, 400, Some(&reason), Some(tag))
}
