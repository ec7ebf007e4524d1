//! Unauthenticated operational endpoints: `/healthz` for load balancers and process
//! supervisors (Kamailio's dispatcher probes nodes too), `/metrics` for Prometheus.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::AppState;

/// 200 only while the daemon takes calls, so a balancer stops sending INVITEs to a node
/// that is starting up or draining. A node that takes calls but has an alarm up (see
/// [`crate::alarms`]) still answers 200, with `"status": "degraded"` and the alarms.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        let alarms = crate::alarms::active();
        let status = if alarms.is_empty() { "ok" } else { "degraded" };
        (
            StatusCode::OK,
            Json(json!({ "status": status, "alarms": alarms })),
        )
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
    match state.tickets.store.overdue_by_kind(now).await {
        Ok(counts) => {
            for kind in crate::tickets::TicketKind::ALL {
                let n = counts
                    .iter()
                    .find(|(k, _)| k == kind.as_str())
                    .map_or(0, |(_, n)| *n);
                crate::metrics::tickets_overdue(kind.as_str(), n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "counting overdue tickets failed"),
    }
    crate::metrics::alive_tasks(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
