//! The CTI event stream and the webhook dead letters.
//!
//! ```text
//! GET  /api/events                    SSE: `id:` the event id, `event:` its type, `data:`
//!                                     {"id","type","at","data"}; keep-alive comments
//!                                     every 15 s; Last-Event-ID or ?since=ID resumes
//!                                     from the replay ring; ?types=a,b filters;
//!                                     an agent sees only events about its own calls
//! GET  /api/events/ws                 WebSocket: one JSON text message per event (same
//!                                     query parameters)
//! GET  /api/webhooks/dead-letters     {"dead_letters":[...]} (?webhook=, ?limit=);
//!                                     supervisor or admin
//! POST /api/webhooks/dead-letters/{id}/retry   202: queued again (same event id)
//! ```
//! A subscriber that missed events (it fell behind, or its resume id is older than the
//! ring) first gets a `stream.lagged` notice `{"skipped": n | null}` (no id).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::{ApiCaller, ApiError, AppState};
use crate::config::Role;
use crate::events::webhooks::RetryRefused;
use crate::events::{self, Item, Subscription};
use crate::store::DeadLetter;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
const DEFAULT_LIMIT: u32 = 100;

/// The subscription a request asks for: `Last-Event-ID` (or `?since=`) and `?types=`.
fn subscription(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Subscription, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadParam {
        param: "query".into(),
        message: e.body_text(),
    })?;
    let types = match params.get("types").map(|t| t.trim()) {
        None | Some("") => None,
        Some(list) => {
            let types: Vec<String> = list
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            if let Some(bad) = events::unknown_types(types.iter().map(String::as_str)).first() {
                return Err(ApiError::BadParam {
                    param: "types".into(),
                    message: format!(
                        "unknown event type {bad:?} (known: {})",
                        events::EVENT_TYPES.join(", ")
                    ),
                });
            }
            Some(types)
        }
    };
    let since = match params.get("since").map(|s| s.trim()) {
        None | Some("") => None,
        Some(id) if events::parse_id(id).is_some() => Some(id.to_owned()),
        Some(id) => {
            return Err(ApiError::BadParam {
                param: "since".into(),
                message: format!("{id:?} is not an event id (NODE-SEQ)"),
            })
        }
    };
    // A reconnecting EventSource sends Last-Event-ID: it is later than any ?since=.
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Ok(state
        .events
        .subscribe_since(last.or(since).as_deref(), types))
}

/// Whether an agent-role caller (`own` agent id) may see `item`: only events about its
/// own calls (`data.agent` or one of `data.agents`) and lag notices. Other roles see all.
fn visible_to(own: Option<&str>, item: &Item) -> bool {
    let (Some(own), Item::Event(event)) = (own, item) else {
        return true;
    };
    let data = &event.data;
    !own.is_empty()
        && (data.get("agent").and_then(Value::as_str) == Some(own)
            || data
                .get("agents")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(own))))
}

/// The next item the caller may see.
async fn next_visible(subscription: &mut Subscription, own: Option<&str>) -> Option<Item> {
    loop {
        let item = subscription.next().await?;
        if visible_to(own, &item) {
            return Some(item);
        }
    }
}

fn sse_event(item: Item) -> SseEvent {
    match &item {
        Item::Event(event) => SseEvent::default()
            .id(event.id_string())
            .event(event.kind)
            .data(item.to_json().to_string()),
        Item::Lagged { .. } => SseEvent::default()
            .event(events::STREAM_LAGGED)
            .data(item.to_json().to_string()),
    }
}

pub async fn sse(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let subscription = subscription(&state, &headers, query)?;
    let own = caller.agent_scope().map(str::to_owned);
    let stream =
        futures_util::stream::unfold((subscription, own), |(mut subscription, own)| async move {
            let item = next_visible(&mut subscription, own.as_deref()).await?;
            Some((Ok::<_, Infallible>(sse_event(item)), (subscription, own)))
        });
    let keep_alive = KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive");
    let mut response = Sse::new(stream).keep_alive(keep_alive).into_response();
    // Proxies (nginx) must pass events on at once.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

pub async fn websocket(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Subscribed before the upgrade, so nothing published meanwhile is missed.
    let subscription = subscription(&state, &headers, query)?;
    let own = caller.agent_scope().map(str::to_owned);
    Ok(upgrade.on_upgrade(move |socket| websocket_session(socket, subscription, own)))
}

async fn websocket_session(
    mut socket: WebSocket,
    mut subscription: Subscription,
    own: Option<String>,
) {
    loop {
        tokio::select! {
            item = next_visible(&mut subscription, own.as_deref()) => match item {
                Some(item) => {
                    let text = item.to_json().to_string();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                None => {
                    let close = CloseFrame {
                        code: 1001,
                        reason: "the daemon is stopping".into(),
                    };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
            },
            received = socket.recv() => match received {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Pings are answered by the library; anything else is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}

fn letter_json(letter: &DeadLetter) -> Value {
    let event = serde_json::from_str::<Value>(&letter.body)
        .unwrap_or_else(|_| Value::String(letter.body.clone()));
    json!({
        "id": letter.id,
        "webhook": letter.webhook,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "attempts": letter.attempts,
        "last_error": letter.last_error,
        "failed_at": letter.failed_at,
        "event": event,
    })
}

pub async fn dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Supervisor])?;
    let Query(params) = query.map_err(|e| ApiError::BadParam {
        param: "query".into(),
        message: e.body_text(),
    })?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text.trim().parse().map_err(|_| ApiError::BadParam {
            param: "limit".into(),
            message: format!("{text:?} is not a number"),
        })?,
    };
    let webhook = params.get("webhook").map(String::as_str);
    let letters = state.store.list_dead_letters(webhook, limit).await?;
    Ok(Json(json!({
        "dead_letters": letters.iter().map(letter_json).collect::<Vec<_>>(),
    })))
}

pub async fn retry_dead_letter(
    State(state): State<AppState>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Supervisor])?;
    let not_found = || ApiError::NotFound {
        what: format!("dead letter {id:?}"),
    };
    let number: i64 = id.trim().parse().map_err(|_| not_found())?;
    let letter = state
        .store
        .get_dead_letter(number)
        .await?
        .ok_or_else(not_found)?;
    let event_id = letter.event_id.clone();
    match state.webhooks.retry(letter) {
        Ok(()) => {
            tracing::info!(dead_letter = number, event = %event_id, by = %caller.name, "dead letter queued again");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "id": number, "event_id": event_id, "queued": true })),
            )
                .into_response())
        }
        Err(e @ RetryRefused::UnknownWebhook(_)) => Err(ApiError::Conflict {
            message: e.to_string(),
        }),
        Err(e @ RetryRefused::QueueFull(_)) => Err(ApiError::Unavailable {
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn item(data: Value) -> Item {
        Item::Event(Arc::new(events::Event {
            id: 1,
            node: "n1".into(),
            at: 0,
            kind: "call.ringing",
            data,
        }))
    }

    #[test]
    fn agents_see_only_events_about_their_own_calls() {
        let mine = item(json!({"agent": "1001"}));
        let ring_all = item(json!({"agent": "1002", "agents": ["1002", "1001"]}));
        let theirs = item(json!({"agent": "1002"}));
        let ticket = item(json!({"ticket_id": "T-1"}));
        assert!(visible_to(Some("1001"), &mine));
        assert!(visible_to(Some("1001"), &ring_all));
        assert!(!visible_to(Some("1001"), &theirs));
        assert!(!visible_to(Some("1001"), &ticket));
        assert!(
            !visible_to(Some(""), &mine),
            "an agent without an id sees nothing"
        );
        assert!(visible_to(None, &theirs), "other roles see everything");
        assert!(visible_to(Some("1001"), &Item::Lagged { skipped: None }));
    }
}
