//! API errors and their one mapping to HTTP responses: a status, a JSON body
//! `{"error": "..."}` (plus `parameter` for a bad query parameter), and for 401 the
//! `WWW-Authenticate` challenge RFC 6750 asks for.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

/// A JSON request body, with serde's message (naming the key) as a 400 when it does not
/// fit.
pub fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Invalid {
        problems: vec![format!("request body: {e}")],
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    MissingToken,
    #[error("invalid token")]
    BadToken,
    /// The session cookie names no live session (expired, signed out, user disabled).
    #[error("not signed in (the session expired or was ended); sign in again")]
    BadSession,
    #[error("wrong name or password")]
    LoginFailed,
    /// Too many failed logins: 429 with `Retry-After`.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// A daily allowance is used up (callbacks): 429 until tomorrow.
    #[error("{message}")]
    DailyLimit { message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("query parameter {param}: {message}")]
    BadParam { param: String, message: String },
    #[error("{message}")]
    Conflict { message: String },
    /// A request body that does not do: every problem, each naming its key.
    #[error("{}", problems.join("; "))]
    Invalid { problems: Vec<String> },
    #[error("{message}")]
    Forbidden { message: String },
    /// Something failed on our side; the message says what (no internals).
    #[error("{message}")]
    Internal { message: String },
    #[error("{message}")]
    Unavailable { message: String },
    /// The detail goes to the log, not to the client.
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl From<crate::users::UsersError> for ApiError {
    fn from(e: crate::users::UsersError) -> ApiError {
        use crate::users::UsersError;
        match e {
            UsersError::Invalid(problems) => ApiError::Invalid { problems },
            e @ UsersError::Exists(_) => ApiError::Conflict {
                message: e.to_string(),
            },
            UsersError::NoSuchUser(name) => ApiError::NotFound {
                what: format!("user {name:?}"),
            },
            UsersError::NoSuchToken { user, id } => ApiError::NotFound {
                what: format!("token {id} of user {user:?}"),
            },
            UsersError::Store(e) => ApiError::Store(e),
            e @ (UsersError::Corrupt { .. } | UsersError::Hash(_)) => {
                tracing::error!(error = %e, "users request failed");
                ApiError::Internal {
                    message: "internal error".into(),
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            ApiError::MissingToken => unauthorized(message, "Bearer"),
            ApiError::BadToken => unauthorized(message, "Bearer error=\"invalid_token\""),
            ApiError::BadSession | ApiError::LoginFailed => unauthorized(message, "Bearer"),
            ApiError::TooManyAttempts { retry_after_secs } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({ "error": message, "retry_after": retry_after_secs })),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            ApiError::NotFound { .. } => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
            }
            ApiError::DailyLimit { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "error": message })),
            )
                .into_response(),
            ApiError::Invalid { problems } => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": message, "problems": problems })),
            )
                .into_response(),
            ApiError::Forbidden { .. } => {
                (StatusCode::FORBIDDEN, Json(json!({ "error": message }))).into_response()
            }
            ApiError::Internal { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": message })),
            )
                .into_response(),
            ApiError::Conflict { .. } => {
                (StatusCode::CONFLICT, Json(json!({ "error": message }))).into_response()
            }
            ApiError::Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": message })),
            )
                .into_response(),
            ApiError::BadParam { param, .. } => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": message, "parameter": param })),
            )
                .into_response(),
            // The database unreachable, locked or restarting: try again later (the
            // store writer queues call records meanwhile; API requests are not queued).
            ApiError::Store(e) if e.is_transient() => {
                tracing::warn!(error = %e, "API request failed: the database is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                    Json(json!({ "error": message })),
                )
                    .into_response()
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "API request failed in the store");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": message })),
                )
                    .into_response()
            }
        }
    }
}

fn unauthorized(message: String, challenge: &'static str) -> Response {
    let mut response =
        (StatusCode::UNAUTHORIZED, Json(json!({ "error": message }))).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Any `/api` path no route takes (reached only with a valid token).
pub async fn api_not_found() -> ApiError {
    ApiError::NotFound {
        what: "API route".to_owned(),
    }
}
