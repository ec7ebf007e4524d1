//! `/api/agents`: the agents' board, and agent controls (queue log-in/out, pause with a
//! reason, unpause, end wrap-up), all through call control.
//!
//! ```text
//! GET  /api/agents                               {"agents":[{id, name, state, pause_reason,
//!                                                 queues:[{queue, logged_in}], registered,
//!                                                 calls_answered, idle_since_ms}]}
//! POST /api/agents/{id}/queues/{queue}/login     the agent after the change
//! POST /api/agents/{id}/queues/{queue}/logout
//! POST /api/agents/{id}/pause                    {"reason": "..."} (1-200 characters)
//! POST /api/agents/{id}/unpause
//! POST /api/agents/{id}/wrap-up/end              409 unless the agent is in wrap-up
//! ```
//!
//! Roles: everyone may read (the agent role sees only itself); an agent may change only
//! itself, supervisors and admins anyone, qa nobody. Unknown agent, unknown queue or a
//! queue the agent is not configured in: 404. Every change is audit-logged
//! (`agent.login`, `agent.logout`, `agent.pause`, `agent.unpause`, `agent.wrap_up_end`)
//! and published by call control as the event `agent.updated`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::ClientIp;
use super::users::{entry, record};
use super::{ApiCaller, ApiError, AppState};
use crate::call::agents::{AgentAction, AgentRefused};
use crate::call::Control;
use crate::config::Role;

/// The longest pause reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
) -> Result<Response, ApiError> {
    let mut agents = super::ask_control(&state, |reply| Control::Agents { reply }).await?;
    if let Some(own) = caller.agent_scope() {
        agents.retain(|a| !own.is_empty() && a.id == own);
    }
    Ok(Json(json!({ "agents": agents })).into_response())
}

/// `GET /api/live`: what the wallboard shows, as JSON: calls in progress and every
/// agent's state, merged over all nodes that share the database. Supervisors and QA.
pub async fn live(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Supervisor, Role::Qa])?;
    let snapshot = super::ask_control(&state, |reply| Control::Snapshot { reply }).await?;
    Ok(Json(snapshot).into_response())
}

/// 403 unless `caller` may change agent `id`: supervisors and admins any agent, the
/// agent role only its own agent.
fn may_change(caller: &ApiCaller, id: &str) -> Result<(), ApiError> {
    caller.require(&[Role::Agent, Role::Supervisor])?;
    match caller.agent_scope() {
        Some(own) if own.is_empty() || own != id => Err(ApiError::Forbidden {
            message: format!("an agent may change only itself, not agent {id}"),
        }),
        _ => Ok(()),
    }
}

/// Asks call control for `action` on agent `id`, audit-logs it, answers with the agent.
async fn act(
    state: &AppState,
    caller: &ApiCaller,
    ip: ClientIp,
    id: String,
    action: AgentAction,
) -> Result<Response, ApiError> {
    may_change(caller, &id)?;
    let (agent, by, sent) = (id.clone(), caller.name.clone(), action.clone());
    let answer = super::ask_control(state, |reply| Control::Agent {
        agent,
        action: sent,
        by,
        reply,
    })
    .await?;
    let view = answer.map_err(|refused| match (refused, &action) {
        (AgentRefused::UnknownAgent, _) => ApiError::NotFound {
            what: format!("agent {id:?}"),
        },
        (AgentRefused::UnknownQueue, AgentAction::Queue { queue, .. }) => ApiError::NotFound {
            what: format!("queue {queue:?}"),
        },
        (AgentRefused::NotInQueue, AgentAction::Queue { queue, .. }) => ApiError::NotFound {
            what: format!("queue {queue:?} of agent {id:?} (the agent is not configured in it)"),
        },
        (AgentRefused::NotInWrapUp, _) => ApiError::Conflict {
            message: format!("agent {id} is not in wrap-up"),
        },
        (refused, _) => ApiError::Conflict {
            message: refused.to_string(),
        },
    })?;
    let detail = match &action {
        AgentAction::Queue { queue, .. } => format!("queue {queue}"),
        AgentAction::Pause { reason } => format!("reason: {reason}"),
        AgentAction::Unpause | AgentAction::EndWrapUp => String::new(),
    };
    let audit = format!("agent.{}", action.name());
    record(state, entry(caller, ip, &audit).target(&id).detail(detail)).await;
    Ok(Json(view).into_response())
}

pub async fn login(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path((id, queue)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let action = AgentAction::Queue {
        queue,
        logged_in: true,
    };
    act(&state, &caller, ip, id, action).await
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path((id, queue)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let action = AgentAction::Queue {
        queue,
        logged_in: false,
    };
    act(&state, &caller, ip, id, action).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: Option<String>,
}

/// The pause reason of a request body: required, trimmed, 1-200 characters.
fn pause_reason(bytes: &Bytes) -> Result<String, ApiError> {
    let invalid = |problem: String| ApiError::Invalid {
        problems: vec![problem],
    };
    let required = || {
        invalid(format!(
            "reason: required (1-{MAX_REASON_CHARS} characters)"
        ))
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(required());
    }
    let body: PauseBody =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("request body: {e}")))?;
    let reason = body.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(required());
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(invalid(format!(
            "reason: at most {MAX_REASON_CHARS} characters"
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(invalid("reason: no control characters".into()));
    }
    Ok(reason.to_owned())
}

pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    // Who may act is checked before the body, so a 403 does not depend on it.
    may_change(&caller, &id)?;
    let reason = pause_reason(&bytes)?;
    act(&state, &caller, ip, id, AgentAction::Pause { reason }).await
}

pub async fn unpause(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&state, &caller, ip, id, AgentAction::Unpause).await
}

pub async fn end_wrap_up(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&state, &caller, ip, id, AgentAction::EndWrapUp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, agent: Option<&str>) -> ApiCaller {
        ApiCaller {
            name: "x".into(),
            role,
            agent: agent.map(str::to_owned),
        }
    }

    #[test]
    fn agents_change_only_themselves() {
        assert!(may_change(&caller(Role::Agent, Some("1001")), "1001").is_ok());
        assert!(may_change(&caller(Role::Agent, Some("1001")), "1002").is_err());
        assert!(may_change(&caller(Role::Agent, None), "1001").is_err());
        assert!(may_change(&caller(Role::Agent, Some("")), "").is_err());
        assert!(may_change(&caller(Role::Supervisor, None), "1002").is_ok());
        assert!(may_change(&caller(Role::Admin, None), "1002").is_ok());
        assert!(may_change(&caller(Role::Qa, None), "1002").is_err());
    }

    #[test]
    fn a_pause_needs_a_reason_of_1_to_200_characters() {
        let reason = |body: &str| pause_reason(&Bytes::from(body.to_owned()));
        assert_eq!(reason(r#"{"reason":"  lunch "}"#).unwrap(), "lunch");
        assert_eq!(
            reason(&format!(r#"{{"reason":"{}"}}"#, "午".repeat(200)))
                .unwrap()
                .chars()
                .count(),
            200
        );
        for bad in [
            "",
            " ",
            "{}",
            r#"{"reason":""}"#,
            r#"{"reason":"   "}"#,
            r#"{"reason":null}"#,
            r#"{"reason":"a\u0007b"}"#,
            r#"{"reason":"x","extra":1}"#,
            r#"{"reason":5}"#,
            "lunch",
        ] {
            assert!(reason(bad).is_err(), "{bad:?} accepted");
        }
        assert!(reason(&format!(r#"{{"reason":"{}"}}"#, "a".repeat(201))).is_err());
    }
}
