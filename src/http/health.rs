//! Unauthenticated operational endpoints: `/healthz` for load balancers and process
//! supervisors (Kamailio's dispatcher probes nodes too), `/metrics` for Prometheus.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::AppState;

/// Longest a scrape waits for the overdue-ticket count.
const OVERDUE_COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// 200 only while the daemon takes calls, so a balancer stops sending INVITEs to a node
/// that is starting up or draining. A node that takes calls but has an alarm up (see
/// [`crate::alarms`]) or cannot write to its database (the records queue) still answers
/// 200, with `"status": "degraded"`, the alarms and the store's state, for the people
/// watching.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        let alarms = crate::alarms::active();
        let store = &state.store_health;
        let status = if alarms.is_empty() && store.is_up() {
            "ok"
        } else {
            "degraded"
        };
        let mut body = json!({ "status": status, "alarms": alarms });
        if !store.is_up() {
            body["store"] = json!({
                "up": false,
                "queued_records": store.queued(),
                "reason": store.reason(),
            });
        }
        (StatusCode::OK, Json(body))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable" })),
        )
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Overdue tickets are counted at scrape time: a ticket becomes overdue by the clock,
    // not by any event.
    let now = chrono::Utc::now().timestamp_millis();
    // Not while the database is down: the scrape would wait for it, and the gauges
    // keep their last values.
    let counted = if state.store_health.is_up() {
        tokio::time::timeout(
            OVERDUE_COUNT_TIMEOUT,
            state.tickets.store.overdue_by_kind(now),
        )
        .await
        .ok()
    } else {
        None
    };
    match counted {
        None => {}
        Some(Ok(counts)) => {
            for kind in crate::tickets::TicketKind::ALL {
                let n = counts
                    .iter()
                    .find(|(k, _)| k == kind.as_str())
                    .map_or(0, |(_, n)| *n);
                crate::metrics::tickets_overdue(kind.as_str(), n);
            }
        }
        Some(Err(e)) => tracing::warn!(error = %e, "counting overdue tickets failed"),
    }
    crate::metrics::media_packets_relayed(crate::media::relay::relayed_packets_total());
    let media_tasks = state
        .media_threads
        .as_ref()
        .map_or(0, crate::media::MediaThreads::alive_tasks);
    crate::metrics::alive_tasks(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            + media_tasks,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
