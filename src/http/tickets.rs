//! `/api/tickets`: work orders, their history, their links to calls, survey results,
//! callbacks and archiving.
//!
//! ```text
//! GET   /api/tickets                 {"tickets":[...]} filters status/kind/area/agent/due_before/overdue/from/to/limit
//! POST  /api/tickets                 201 the ticket
//! GET   /api/tickets/{id}            the ticket with its calls and history
//! PATCH /api/tickets/{id}            change fields / status (409 for a move not allowed)
//! GET   /api/tickets/{id}/history    {"history":[...]}
//! POST  /api/tickets/{id}/notes      {"text"}: a handling note
//! GET   /api/tickets/{id}/calls      {"calls":[{"call_id","role",...}]}
//! POST  /api/tickets/{id}/calls      {"call_id","role"}: link a call
//! POST  /api/tickets/{id}/survey     {"score","cause"} or {"no_survey_reason"}
//! POST  /api/tickets/{id}/callback   {"agent","number","trunk"?}: 202, the call's id
//! POST  /api/tickets/{id}/archive    201 the bundle; 422 with what is missing
//! ```

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::ClientIp;
use super::error::body;
use super::users::{entry, record};
use super::{ApiCaller, ApiError, AppState};
use crate::call::{CallbackRefused, Control};
use crate::store::TicketFilter;
use crate::tickets::service::now_ms;
use crate::tickets::ticket::{self, NewTicket, Refused, TicketUpdate};
use crate::tickets::{HistoryEntry, SurveyCause, TicketError};

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> ApiError {
        match e {
            TicketError::NotFound(id) => ApiError::NotFound {
                what: format!("ticket {id:?}"),
            },
            TicketError::Refused(Refused::Invalid(problems)) => ApiError::Invalid { problems },
            TicketError::Refused(Refused::Conflict(message)) => ApiError::Conflict { message },
            e @ TicketError::Busy(_) => ApiError::Conflict {
                message: e.to_string(),
            },
            TicketError::Store(e) => ApiError::Store(e),
        }
    }
}

/// The top-level keys of a JSON object body, sorted, for the audit log's detail.
fn body_keys(bytes: &Bytes) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(map)) => {
            let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
            keys.sort_unstable();
            keys.join(", ")
        }
        _ => String::new(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadParam {
        param: "query".to_owned(),
        message: e.body_text(),
    })?;
    let now = now_ms();
    let mut filter = TicketFilter::default();
    for (name, value) in &params {
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "status" => {
                crate::tickets::TicketStatus::parse(value).ok_or_else(|| {
                    super::calls::bad_param(
                        name,
                        "one of open, dispatched, replied, closed, reopened",
                    )
                })?;
                filter.status = Some(value.clone());
            }
            "kind" => {
                crate::tickets::TicketKind::parse(value).ok_or_else(|| {
                    super::calls::bad_param(
                        name,
                        "one of consultation, query, problem, complaint, order",
                    )
                })?;
                filter.kind = Some(value.clone());
            }
            "area" => filter.area = Some(value.clone()),
            "agent" => filter.assigned_agent = Some(value.clone()),
            "due_before" => filter.due_before = Some(super::calls::parse_time(name, value)?),
            "from" => filter.from = Some(super::calls::parse_time(name, value)?),
            "to" => filter.to = Some(super::calls::parse_time(name, value)?),
            "overdue" => {
                if super::calls::parse_bool(name, value)? {
                    filter.overdue_at = Some(now);
                }
            }
            "limit" => filter.limit = Some(super::calls::parse_limit(name, value)?),
            _ => {
                return Err(super::calls::bad_param(
                    name,
                    "unknown parameter (known: status, kind, area, agent, due_before, overdue, from, to, limit)",
                ))
            }
        }
    }
    let tickets = state.tickets.store.list_tickets(&filter, now).await?;
    Ok(Json(json!({ "tickets": tickets })).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let input: NewTicket = body(&bytes)?;
    let ticket = state.tickets.create(&input, &caller.name).await?;
    let detail = format!("kind {}", ticket.kind.as_str());
    record(
        &state,
        entry(&caller, ip, "ticket.create")
            .target(&ticket.id)
            .detail(detail),
    )
    .await;
    tracing::info!(ticket = %ticket.id, kind = ticket.kind.as_str(), by = %caller.name, "ticket created");
    Ok((StatusCode::CREATED, Json(ticket)).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.tickets.get(&id).await?).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let change: TicketUpdate = body(&bytes)?;
    let ticket = state
        .tickets
        .change(&id, |rules, t, now| {
            ticket::update(rules, t, &change, &caller.name, now)
        })
        .await?;
    record(
        &state,
        entry(&caller, ip, "ticket.update")
            .target(&id)
            .detail(body_keys(&bytes)),
    )
    .await;
    Ok(Json(ticket).into_response())
}

pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ticket = state.tickets.get(&id).await?;
    Ok(Json(json!({ "id": id, "history": ticket.history.unwrap_or_default() })).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Note {
    text: String,
}

pub async fn add_note(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let note: Note = body(&bytes)?;
    let text = note.text.trim().to_owned();
    if text.is_empty() {
        return Err(ApiError::Invalid {
            problems: vec!["text: must not be empty".into()],
        });
    }
    let ticket = state
        .tickets
        .change(&id, |_, t, now| {
            if t.archived_at.is_some() {
                return Err(Refused::Conflict(format!(
                    "ticket {} is archived; it can no longer change",
                    t.id
                )));
            }
            t.updated_at = now;
            Ok(vec![HistoryEntry::new(
                now,
                &caller.name,
                "note",
                text.clone(),
            )])
        })
        .await?;
    record(&state, entry(&caller, ip, "ticket.note").target(&id)).await;
    Ok((StatusCode::CREATED, Json(ticket)).into_response())
}

pub async fn calls(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ticket = state.tickets.get(&id).await?;
    Ok(Json(json!({ "id": id, "calls": ticket.calls })).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkBody {
    call_id: String,
    role: Option<String>,
}

pub async fn link(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let link: LinkBody = body(&bytes)?;
    let role = ticket::parse_role(link.role.as_deref()).map_err(|problem| ApiError::Invalid {
        problems: vec![problem],
    })?;
    let ticket = state
        .tickets
        .link(&id, link.call_id.trim(), role, &caller.name)
        .await?;
    let detail = format!(
        "call {} as {}",
        link.call_id.trim(),
        link.role.as_deref().unwrap_or("default role")
    );
    record(
        &state,
        entry(&caller, ip, "ticket.link").target(&id).detail(detail),
    )
    .await;
    Ok((StatusCode::CREATED, Json(ticket)).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SurveyBody {
    score: Option<i64>,
    cause: Option<String>,
    /// Instead of a score: why the customer was not surveyed.
    no_survey_reason: Option<String>,
}

pub async fn survey(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let survey: SurveyBody = body(&bytes)?;
    let cause = match survey.cause.as_deref() {
        None => None,
        Some(c) => Some(SurveyCause::parse(c).ok_or_else(|| ApiError::Invalid {
            problems: vec![format!("cause: {c:?} is not customer or company")],
        })?),
    };
    let reason = survey
        .no_survey_reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let detail = match (survey.score, &reason) {
        (Some(score), _) => format!("score {score}"),
        (None, Some(reason)) => format!("no survey: {reason}"),
        (None, None) => String::new(),
    };
    let ticket = match (survey.score, reason) {
        (Some(score), None) => {
            state
                .tickets
                .change(&id, |rules, t, now| {
                    ticket::record_survey(rules, t, score, cause, None, &caller.name, now)
                })
                .await?
        }
        (None, Some(reason)) => {
            let change = TicketUpdate {
                no_survey_reason: Some(Some(reason)),
                ..Default::default()
            };
            state
                .tickets
                .change(&id, |rules, t, now| {
                    ticket::update(rules, t, &change, &caller.name, now)
                })
                .await?
        }
        _ => {
            return Err(ApiError::Invalid {
                problems: vec![
                    "give either score (1-5, with an optional cause) or no_survey_reason".into(),
                ],
            })
        }
    };
    record(
        &state,
        entry(&caller, ip, "ticket.survey")
            .target(&id)
            .detail(detail),
    )
    .await;
    Ok(Json(ticket).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CallbackBody {
    agent: String,
    number: String,
    trunk: Option<String>,
}

pub async fn callback(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: CallbackBody = body(&bytes)?;
    let ticket = state.tickets.get(&id).await?;
    if ticket.archived_at.is_some() {
        return Err(ApiError::Conflict {
            message: format!("ticket {id} is archived"),
        });
    }
    let number = request.number.trim().to_owned();
    let valid_number = !number.is_empty()
        && number.len() <= 32
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'));
    if !valid_number {
        return Err(ApiError::Invalid {
            problems: vec![format!(
                "number: {number:?} is not a phone number (digits, +, * and #)"
            )],
        });
    }
    // Toll fraud: only allowed numbers, and so many a day per agent.
    if let Some(why) = state.callbacks.refuse(&number) {
        return Err(ApiError::Forbidden {
            message: format!("number: {why}"),
        });
    }
    let limit = state.callbacks.per_agent_per_day;
    if limit > 0 {
        let agent = request.agent.trim();
        let offset = state.tickets.rules.calendar.offset();
        let now = chrono::Utc::now();
        let midnight = now
            .with_timezone(&offset)
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(offset).single())
            .map_or(0, |t| t.timestamp_millis());
        let today = state.store.callbacks_by(agent, midnight).await?;
        if today >= i64::from(limit) {
            return Err(ApiError::DailyLimit {
                message: format!(
                    "agent {agent} has started {today} callbacks today; [callbacks] per_agent_per_day is {limit}"
                ),
            });
        }
    }
    let ticket_id = id.clone();
    let agent = request.agent.trim().to_owned();
    let (agent_sent, number_sent) = (agent.clone(), number.clone());
    let answer = super::ask_control(&state, |reply| Control::Callback {
        ticket_id,
        agent: agent_sent,
        number: number_sent,
        trunk: request.trunk,
        reply,
    })
    .await?;
    match answer {
        Ok(call_id) => {
            let _ = state
                .tickets
                .change(&id, |_, t, now| {
                    t.updated_at = now;
                    Ok(vec![HistoryEntry::new(
                        now,
                        &caller.name,
                        "callback",
                        format!("callback {call_id}: agent {agent} rung, then {number}"),
                    )])
                })
                .await;
            let detail = format!("call {call_id}: agent {agent}, number {number}");
            record(
                &state,
                entry(&caller, ip, "ticket.callback")
                    .target(&id)
                    .detail(detail),
            )
            .await;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "ticket": id, "call_id": call_id, "agent": agent, "number": number })),
            )
                .into_response())
        }
        Err(refused) => Err(match refused {
            CallbackRefused::UnknownAgent | CallbackRefused::UnknownTrunk => ApiError::Invalid {
                problems: vec![refused.to_string()],
            },
            CallbackRefused::NoTrunk => ApiError::Conflict {
                message: refused.to_string(),
            },
            CallbackRefused::AgentUnreachable | CallbackRefused::AgentBusy => ApiError::Conflict {
                message: refused.to_string(),
            },
            CallbackRefused::Overloaded => ApiError::Unavailable {
                message: refused.to_string(),
            },
        }),
    }
}

pub async fn archive(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    use crate::config::Role;
    caller.require(&[Role::Qa, Role::Supervisor])?;
    let done = crate::tickets::archiving::archive_ticket(
        &state.tickets,
        &state.recordings,
        &state.archive_root,
        &id,
        &caller.name,
        None,
    )
    .await;
    match done {
        Ok(done) => {
            let detail = format!("bundle {} sha256 {}", done.path, done.sha256);
            record(
                &state,
                entry(&caller, ip, "ticket.archive")
                    .target(&id)
                    .detail(detail),
            )
            .await;
            Ok((StatusCode::CREATED, Json(done)).into_response())
        }
        Err(crate::tickets::archiving::ArchiveRefused::Incomplete { missing }) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": format!("ticket {id} is incomplete: {} item(s) missing", missing.len()),
                "missing": missing,
            })),
        )
            .into_response()),
        Err(crate::tickets::archiving::ArchiveRefused::Ticket(e)) => Err(e.into()),
        Err(
            e @ (crate::tickets::archiving::ArchiveRefused::AlreadyArchived { .. }
            | crate::tickets::archiving::ArchiveRefused::Busy { .. }
            | crate::tickets::archiving::ArchiveRefused::Changed { .. }),
        ) => Err(ApiError::Conflict {
            message: e.to_string(),
        }),
        Err(e @ crate::tickets::archiving::ArchiveRefused::Failed(_)) => {
            // The detail (paths) goes to the log only.
            tracing::error!(ticket = %id, error = %e, "archiving failed");
            Err(ApiError::Internal {
                message: format!("archiving ticket {id} failed; the server log has the details"),
            })
        }
    }
}
