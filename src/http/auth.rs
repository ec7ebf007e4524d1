//! Bearer-token authentication for `/api`. The config keeps only each token's SHA-256,
//! so we hash what the client sends and compare hashes, in constant time so response
//! timing tells nothing about how close a guess was.
//!
//! Any signed-in role may use every route for now; role checks (agents see their own
//! calls, QA scores, admins manage) come with the users issue, which reads the
//! [`ApiCaller`] this layer leaves in the request extensions.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::config::{Role, TokenConfig};

/// Who made an API request, as established by their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    /// The token's `name` in the config.
    pub name: String,
    pub role: Role,
    /// For the agent role: the agent id (工号) whose calls this caller may see.
    pub agent: Option<String>,
}

impl ApiCaller {
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
    let token = bearer_token(&request).ok_or(ApiError::MissingToken)?;
    let caller = caller_for_token(&state.tokens, token).ok_or(ApiError::BadToken)?;
    tracing::debug!(token = %caller.name, path = %request.uri().path(), "API request");
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
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
            found = Some(ApiCaller {
                name: configured.name.clone(),
                role: configured.role,
                agent: None,
            });
        }
    }
    found
}

/// Equal length and equal bytes, looking at every byte whatever the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
