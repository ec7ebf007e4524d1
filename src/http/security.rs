//! `/api/security`: the SIP digest lockouts for admins (see
//! `crate::sip::auth::lockout`).
//!
//! ```text
//! GET    /api/security/lockouts               admin: {"lockouts":[{kind, key, failures,
//!                                             refused, locked_until}]} (locked_until in
//!                                             epoch ms)
//! DELETE /api/security/lockouts/{kind}/{key}  admin: lifts one (kind source|user; key the
//!                                             IP address or user name) → the lockout
//!                                             lifted; 404 when none is in force
//! ```
//! Lifting is audit-logged (`sip.lockout.lift`).

use std::time::{Instant, SystemTime};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;

use super::auth::ClientIp;
use super::users::{entry, record};
use super::{ApiCaller, ApiError, AppState};
use crate::config::Role;
use crate::sip::auth::lockout::{LockKind, Lockout};

/// One lockout in force.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct LockoutView {
    /// `source` (an IP address) or `user` (a SIP user name, known or not).
    kind: &'static str,
    /// The IP address or user name.
    key: String,
    /// Wrong passwords counted against it.
    failures: u64,
    /// Requests with credentials refused unchecked since the lockout began.
    refused: u64,
    /// When the lockout ends, epoch milliseconds.
    locked_until: i64,
}

impl From<Lockout> for LockoutView {
    fn from(l: Lockout) -> Self {
        LockoutView {
            kind: l.kind.as_str(),
            key: l.key,
            failures: l.failures,
            refused: l.refused,
            locked_until: l.locked_until_ms,
        }
    }
}

/// `GET /api/security/lockouts` (admin).
pub async fn lockouts(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let list: Vec<LockoutView> = state
        .sip_lockouts
        .list(Instant::now(), SystemTime::now())
        .into_iter()
        .map(LockoutView::from)
        .collect();
    Ok(Json(json!({ "lockouts": list })).into_response())
}

/// `DELETE /api/security/lockouts/{kind}/{key}` (admin).
pub async fn lift_lockout(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path((kind, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let Some(lock_kind) = LockKind::parse(&kind) else {
        return Err(ApiError::NotFound {
            what: format!("lockout kind {kind:?} (kinds: source, user)"),
        });
    };
    let lifted = state
        .sip_lockouts
        .lift(lock_kind, &key, Instant::now(), SystemTime::now())
        .ok_or_else(|| ApiError::NotFound {
            what: format!("{kind} lockout {key:?}"),
        })?;
    record(
        &state,
        entry(&caller, ip, "sip.lockout.lift")
            .target(format!("{}:{}", lifted.kind.as_str(), lifted.key))
            .detail(format!(
                "{} failures, {} refused",
                lifted.failures, lifted.refused
            )),
    )
    .await;
    tracing::info!(kind = lifted.kind.as_str(), key = %lifted.key, by = %caller.name, "SIP lockout lifted");
    Ok(Json(LockoutView::from(lifted)).into_response())
}
