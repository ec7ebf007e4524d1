//! Authentication for `/api`, three ways:
//!
//! 1. `Authorization: Bearer <token>` with a token of `[[http.tokens]]`: the config keeps
//!    only each token's SHA-256, so we hash what the client sends and compare hashes, in
//!    constant time so response timing tells nothing about how close a guess was;
//! 2. `Authorization: Bearer <token>` with a user's own API token (`POST
//!    /api/users/{name}/tokens`), looked up by its SHA-256;
//! 3. the session cookie [`SESSION_COOKIE`] set by `/login` or `POST /api/login`. A
//!    request so authenticated that is not GET or HEAD must carry `X-CSRF-Token` with the
//!    session's CSRF token (403 otherwise): a cookie is sent by the browser whoever made
//!    the page that sends the request, a header only by our own scripts.
//!
//! A disabled user, a revoked token or an expired session is 401. The layer leaves an
//! [`ApiCaller`] (who, which role, for agents which agent id) and a [`Credential`] (how)
//! in the request extensions. Role checks are the handlers': [`ApiCaller::require`] for a
//! role, [`ApiCaller::check_call`] for the agent role's own calls.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::config::{Role, TokenConfig};

/// The session cookie: HttpOnly, SameSite=Strict, Path=/ (and Secure with `[auth]
/// cookie_secure`).
pub const SESSION_COOKIE: &str = "threering_session";

/// The header cookie-authenticated changes must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How an API caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A `[[http.tokens]]` token.
    ConfigToken,
    /// A user's API token, by its id.
    UserToken { id: i64 },
    /// A sign-in session (cookie), with its CSRF token.
    Session { csrf_token: String, expires_at: i64 },
}

impl Credential {
    /// Whether the caller is a user of the users table (not a config token).
    pub fn is_user(&self) -> bool {
        !matches!(self, Credential::ConfigToken)
    }
}

/// The client's address, from the connection (`None` when the router runs without
/// connect info, as in tests that call it directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Who made an API request, as established by their credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    /// The user name (session or per-user token), or the config token's `name`.
    pub name: String,
    pub role: Role,
    /// For the agent role: the agent id (工号) whose calls this caller may see.
    pub agent: Option<String>,
}

impl ApiCaller {
    /// For the agent role, the agent id whose calls alone it may see (an agent caller
    /// without one sees none); None for every other role.
    pub fn agent_scope(&self) -> Option<&str> {
        (self.role == Role::Agent).then(|| self.agent.as_deref().unwrap_or(""))
    }

    /// Whether the caller may see a call answered by `call_agent`.
    pub fn may_see_call(&self, call_agent: Option<&str>) -> bool {
        match self.agent_scope() {
            None => true,
            Some(own) => !own.is_empty() && call_agent == Some(own),
        }
    }

    /// 403 unless the caller may see call `id`, answered by `call_agent`.
    pub fn check_call(&self, id: &str, call_agent: Option<&str>) -> Result<(), ApiError> {
        if self.may_see_call(call_agent) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                message: format!("call {id} is not one of your calls"),
            })
        }
    }

    /// 403 unless the caller has one of `roles` (admin always passes).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden {
            message: format!(
                "this needs the {} role (you are {})",
                names.join(" or "),
                self.role.as_str()
            ),
        })
    }
}

pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (caller, credential) = authenticate(&state, request.headers(), request.method()).await?;
    tracing::debug!(caller = %caller.name, path = %request.uri().path(), "API request");
    request.extensions_mut().insert(caller);
    request.extensions_mut().insert(credential);
    Ok(next.run(request).await)
}

/// Who sent `request`, and how; an error is the 401 or 403 to answer.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(ApiCaller, Credential), ApiError> {
    if headers.contains_key(AUTHORIZATION) {
        let token = bearer_token(headers).ok_or(ApiError::MissingToken)?;
        if let Some(caller) = caller_for_token(&state.tokens, token) {
            return Ok((caller, Credential::ConfigToken));
        }
        let (user, found) = state
            .users
            .token_user(token)
            .await?
            .ok_or(ApiError::BadToken)?;
        let caller = ApiCaller {
            agent: user.agent_scope(),
            name: user.name,
            role: user.role,
        };
        return Ok((caller, Credential::UserToken { id: found.id }));
    }
    let secret = cookie(headers, SESSION_COOKIE).ok_or(ApiError::MissingToken)?;
    let (user, session) = state
        .users
        .session(secret)
        .await?
        .ok_or(ApiError::BadSession)?;
    let safe = matches!(*method, Method::GET | Method::HEAD);
    if !safe && !csrf_matches(headers, &session.csrf_token) {
        return Err(ApiError::Forbidden {
            message: "a signed-in change needs the X-CSRF-Token header (GET /api/me gives it)"
                .into(),
        });
    }
    let caller = ApiCaller {
        agent: user.agent_scope(),
        name: user.name,
        role: user.role,
    };
    Ok((
        caller,
        Credential::Session {
            csrf_token: session.csrf_token,
            expires_at: session.expires_at,
        },
    ))
}

/// Whether the request's `X-CSRF-Token` equals `expected` (compared in constant time).
pub fn csrf_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| constant_time_eq(sent.trim().as_bytes(), expected.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers (the first if several).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The configured token whose hash matches. Every configured hash is compared, match
/// or not, so the time taken does not reveal which entry matched.
fn caller_for_token(tokens: &[TokenConfig], token: &str) -> Option<ApiCaller> {
    let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for configured in tokens {
        let Ok(expected) = hex::decode(configured.token_sha256.trim()) else {
            continue; // validate() reports it; a bad entry never matches
        };
        if constant_time_eq(&presented, &expected) && found.is_none() {
            // An agent-role config token stands for the agent whose id is its name.
            found = Some(ApiCaller {
                name: configured.name.clone(),
                role: configured.role,
                agent: (configured.role == Role::Agent).then(|| configured.name.clone()),
            });
        }
    }
    found
}

/// Equal length and equal bytes, looking at every byte whatever the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, sha: &str) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            role: Role::Qa,
            token_sha256: sha.into(),
        }
    }

    #[test]
    fn a_token_matches_its_hash_in_either_case() {
        let sha = "f01d2474fd375b4c5eb46064b550034167661b86322f1e1d3cb7645512a06607";
        let tokens = vec![token("bad", "xyz"), token("dev", &sha.to_uppercase())];
        let caller = caller_for_token(&tokens, "dev-token-change-me").unwrap();
        assert_eq!(caller.name, "dev");
        assert_eq!(caller.role, Role::Qa);
        assert_eq!(caller_for_token(&tokens, "dev-token-change-m"), None);
        assert_eq!(caller_for_token(&[], "dev-token-change-me"), None);
    }

    #[test]
    fn agent_config_tokens_stand_for_the_agent_named_like_them() {
        let mut agent = token(
            "1001",
            "f01d2474fd375b4c5eb46064b550034167661b86322f1e1d3cb7645512a06607",
        );
        agent.role = Role::Agent;
        let caller = caller_for_token(&[agent], "dev-token-change-me").unwrap();
        assert_eq!(caller.agent.as_deref(), Some("1001"));
    }

    #[test]
    fn agents_see_only_their_own_calls() {
        let caller = |role, agent: Option<&str>| ApiCaller {
            name: "x".into(),
            role,
            agent: agent.map(str::to_owned),
        };
        let agent = caller(Role::Agent, Some("1001"));
        assert_eq!(agent.agent_scope(), Some("1001"));
        assert!(agent.may_see_call(Some("1001")));
        assert!(!agent.may_see_call(Some("1002")));
        assert!(!agent.may_see_call(None));
        assert!(agent.check_call("n1-x", Some("1002")).is_err());
        let lost = caller(Role::Agent, None);
        assert!(!lost.may_see_call(Some("")));
        assert!(!lost.may_see_call(None));
        for role in [Role::Qa, Role::Supervisor, Role::Admin] {
            let c = caller(role, None);
            assert_eq!(c.agent_scope(), None);
            assert!(c.may_see_call(Some("1002")) && c.may_see_call(None));
        }
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "a=1; threering_session=abc ; b=2".parse().unwrap());
        headers.append(COOKIE, "threering_session=later".parse().unwrap());
        assert_eq!(cookie(&headers, "threering_session"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "threering"), None);
        headers.insert(COOKIE, "threering_session=".parse().unwrap());
        assert_eq!(cookie(&headers, "threering_session"), None);
    }

    #[test]
    fn the_csrf_header_must_match() {
        let mut headers = HeaderMap::new();
        assert!(!csrf_matches(&headers, "abc"));
        headers.insert(CSRF_HEADER, "abd".parse().unwrap());
        assert!(!csrf_matches(&headers, "abc"));
        headers.insert(CSRF_HEADER, "abc".parse().unwrap());
        assert!(csrf_matches(&headers, "abc"));
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
