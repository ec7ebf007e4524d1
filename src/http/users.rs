//! Users, tokens and the audit log over the API.
//!
//! ```text
//! GET    /api/me                          who am I (+ csrf_token for a cookie session)
//! GET    /api/audit                       admin: {"entries":[...]} newest first;
//!                                         filters actor, action (or family.*), target,
//!                                         from, to, limit
//! GET    /api/users                       admin: {"users":[...]}
//! POST   /api/users                       admin: {name, role, password, agent_id?} → 201
//! PATCH  /api/users/{name}                admin: {role?, agent_id?, disabled?, password?}
//! GET    /api/users/{name}/tokens         admin or the user: {"tokens":[...]}
//! POST   /api/users/{name}/tokens         admin or the user: {label?} → 201 {token, ...}
//! DELETE /api/users/{name}/tokens/{id}    admin or the user: revokes it
//! ```

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::{ClientIp, Credential};
use super::error::body;
use super::{ApiCaller, ApiError, AppState};
use crate::config::Role;
use crate::users::{AuditFilter, NewAudit, UserChange};

/// An audit entry for something `caller` did from `ip`.
pub(super) fn entry(caller: &ApiCaller, ip: ClientIp, action: &str) -> NewAudit {
    NewAudit::new(&caller.name, Some(caller.role), action).source_ip(ip.0)
}

/// Writes an audit entry for something already done; a failure is logged (the change
/// itself stands). Where the entry must exist before data is shown (recordings), write
/// with `state.users.audit(..)?` instead.
pub(super) async fn record(state: &AppState, entry: NewAudit) {
    let action = entry.action.clone();
    if let Err(e) = state.users.audit(entry).await {
        tracing::error!(error = %e, %action, "writing the audit log failed");
    }
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| ApiError::Invalid {
        problems: vec![format!(
            "role: {text:?} is not agent, qa, supervisor or admin"
        )],
    })
}

/// 403 unless the caller is an admin or the user `name` themself (signed in as that
/// user, not holding a config token of the same name).
fn admin_or_self(caller: &ApiCaller, credential: &Credential, name: &str) -> Result<(), ApiError> {
    if credential.is_user() && caller.name == name {
        return Ok(());
    }
    caller
        .require(&[Role::Admin])
        .map_err(|_| ApiError::Forbidden {
            message: format!("only an admin or {name} may do this"),
        })
}

/// `GET /api/me`.
pub async fn me(
    Extension(caller): Extension<ApiCaller>,
    Extension(credential): Extension<Credential>,
) -> Response {
    let mut me = json!({
        "user": caller.name,
        "role": caller.role.as_str(),
        "agent_id": caller.agent,
    });
    match credential {
        Credential::ConfigToken => me["auth"] = json!("config-token"),
        Credential::UserToken { id } => {
            me["auth"] = json!("token");
            me["token_id"] = json!(id);
        }
        Credential::Session {
            csrf_token,
            expires_at,
        } => {
            me["auth"] = json!("session");
            me["csrf_token"] = json!(csrf_token);
            me["expires_at"] = json!(expires_at);
        }
    }
    Json(me).into_response()
}

/// `GET /api/audit` (admin).
pub async fn audit_log(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let Query(params) = query.map_err(|e| ApiError::BadParam {
        param: "query".to_owned(),
        message: e.body_text(),
    })?;
    let mut filter = AuditFilter::default();
    for (name, value) in &params {
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "actor" => filter.actor = Some(value.clone()),
            "action" => filter.action = Some(value.clone()),
            "target" => filter.target = Some(value.clone()),
            "from" => filter.from = Some(super::calls::parse_time(name, value)?),
            "to" => filter.to = Some(super::calls::parse_time(name, value)?),
            "limit" => filter.limit = Some(super::calls::parse_limit(name, value)?),
            _ => {
                return Err(super::calls::bad_param(
                    name,
                    "unknown parameter (known: actor, action, target, from, to, limit)",
                ))
            }
        }
    }
    let entries = state.users.audit_log(&filter).await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

/// `GET /api/users` (admin).
pub async fn list_users(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let users = state.users.list_users().await?;
    Ok(Json(json!({ "users": users })).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUserBody {
    name: String,
    role: String,
    password: String,
    agent_id: Option<String>,
}

/// `POST /api/users` (admin).
pub async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let input: NewUserBody = body(&bytes)?;
    let role = parse_role(&input.role)?;
    let user = state
        .users
        .create_user(
            &input.name,
            role,
            input.agent_id.as_deref(),
            &input.password,
        )
        .await?;
    record(
        &state,
        entry(&caller, ip, "user.create")
            .target(&user.name)
            .detail(format!(
                "role {}, agent id {}",
                user.role.as_str(),
                user.agent_id
            )),
    )
    .await;
    tracing::info!(user = %user.name, role = user.role.as_str(), by = %caller.name, "user created");
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserChangeBody {
    role: Option<String>,
    agent_id: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
}

/// `PATCH /api/users/{name}` (admin).
pub async fn update_user(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let input: UserChangeBody = body(&bytes)?;
    let change = UserChange {
        role: input.role.as_deref().map(parse_role).transpose()?,
        agent_id: input.agent_id,
        disabled: input.disabled,
        password: input.password,
    };
    let user = state.users.update_user(&name, &change).await?;
    let mut changed = Vec::new();
    if let Some(role) = change.role {
        changed.push(format!("role {}", role.as_str()));
    }
    if let Some(agent_id) = &change.agent_id {
        changed.push(format!("agent id {}", agent_id.trim()));
    }
    if let Some(disabled) = change.disabled {
        changed.push(if disabled { "disabled" } else { "enabled" }.to_owned());
    }
    if change.password.is_some() {
        changed.push("password".to_owned());
    }
    record(
        &state,
        entry(&caller, ip, "user.update")
            .target(&user.name)
            .detail(changed.join(", ")),
    )
    .await;
    Ok(Json(user).into_response())
}

/// `GET /api/users/{name}/tokens` (admin or the user).
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Extension(credential): Extension<Credential>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    admin_or_self(&caller, &credential, &name)?;
    let tokens = state.users.list_tokens(&name).await?;
    Ok(Json(json!({ "user": name, "tokens": tokens })).into_response())
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTokenBody {
    #[serde(default)]
    label: String,
}

/// `POST /api/users/{name}/tokens` (admin or the user): the token, shown only here.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Extension(credential): Extension<Credential>,
    ip: ClientIp,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    admin_or_self(&caller, &credential, &name)?;
    let input: NewTokenBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        NewTokenBody::default()
    } else {
        body(&bytes)?
    };
    let (token, stored) = state.users.create_token(&name, &input.label).await?;
    record(
        &state,
        entry(&caller, ip, "token.create")
            .target(&name)
            .detail(format!("token {} {:?}", stored.id, stored.label)),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": stored.id,
            "user": stored.user,
            "label": stored.label,
            "created_at": stored.created_at,
            "token": token,
        })),
    )
        .into_response())
}

/// `DELETE /api/users/{name}/tokens/{id}` (admin or the user).
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Extension(credential): Extension<Credential>,
    ip: ClientIp,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    admin_or_self(&caller, &credential, &name)?;
    let not_found = || ApiError::NotFound {
        what: format!("token {id} of user {name:?}"),
    };
    let number: i64 = id.parse().map_err(|_| not_found())?;
    let revoked = state.users.revoke_token(&name, number).await?;
    record(
        &state,
        entry(&caller, ip, "token.revoke")
            .target(&name)
            .detail(format!("token {} {:?}", revoked.id, revoked.label)),
    )
    .await;
    Ok(Json(revoked).into_response())
}
