//! The HTTP side: health, Prometheus metrics and the REST API, served by axum on
//! `[http] listen`. It only reads: call records from the store, numbers from the metrics
//! handle; it never reaches into call control.
//!
//! ```text
//! GET /healthz            200 {"status":"ok"} once the daemon is up, else 503 (no auth)
//! GET /metrics            Prometheus text (no auth)
//! GET /api/calls          {"calls":[...]}, filters from/to/agent/queue/ticket/violation/limit
//! GET /api/calls/{id}     one call, 404 if unknown
//! GET /api/calls/{id}/recording   the WAV, with Range (206)
//! POST /api/calls/{id}/recording/pause | resume   for card numbers and the like
//! POST /api/calls/{id}/survey   hand the caller to the satisfaction survey
//! /api/tickets...         tickets, links, surveys, callbacks, archive (see [`tickets`])
//! ```
//! Everything under `/api` needs `Authorization: Bearer <token>` (see [`auth`]). Errors
//! are JSON `{"error": "..."}`, mapped from [`ApiError`] in one place.

mod auth;
mod calls;
mod error;
mod health;
mod recording;
mod survey;
mod tickets;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{RingsConfig, TokenConfig};
use crate::store::Store;

pub use auth::ApiCaller;
pub use error::ApiError;

/// How often histogram samples are folded into their buckets between scrapes, so they
/// do not pile up in memory when nobody scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What the handlers share. Cheap to clone (the store is a pool, the rest small).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// API tokens, from `[[http.tokens]]`.
    pub tokens: Vec<TokenConfig>,
    pub metrics: PrometheusHandle,
    /// Set by the daemon once SIP, RTP and HTTP all listen; cleared when it drains.
    pub ready: Arc<AtomicBool>,
    /// The ring rule in force (for the reports and wallboard to come).
    pub rings: RingsConfig,
    /// Recordings root (for `/api/calls/{id}/recording`).
    pub recordings: PathBuf,
    /// Call control, for the few API calls that act on a call in progress (pause and
    /// resume a recording). None where no calls run (tests of the read-only API).
    pub control: Option<tokio::sync::mpsc::Sender<crate::call::Control>>,
    /// Tickets: the store and the ticket rules.
    pub tickets: crate::tickets::Tickets,
    /// Where `POST /api/tickets/{id}/archive` writes bundles.
    pub archive_root: PathBuf,
}

impl AppState {
    /// The state for `config` over `store`: tokens, rings, recordings, tickets and the
    /// archive root from the config; not ready, no call control (the daemon sets both).
    /// Tests start here and change what they need.
    pub fn new(config: &crate::config::Config, store: Store) -> AppState {
        AppState {
            tickets: crate::tickets::Tickets::new(
                store.clone(),
                crate::tickets::ticket::Rules::from_config(config),
            ),
            store,
            tokens: config.http.tokens.clone(),
            metrics: crate::metrics::install(),
            ready: Arc::new(AtomicBool::new(false)),
            rings: config.rings.clone(),
            recordings: config.store.recordings.clone(),
            control: None,
            archive_root: config.archive.root.clone(),
        }
    }
}

/// All routes. Public so tests (and later the UI pages) can mount it.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/calls", get(calls::list))
        .route("/calls/{id}", get(calls::get))
        .route("/calls/{id}/recording", get(recording::get))
        .route("/calls/{id}/recording/pause", post(recording::pause))
        .route("/calls/{id}/recording/resume", post(recording::resume))
        .route("/calls/{id}/survey", post(survey::start))
        .route("/tickets", get(tickets::list).post(tickets::create))
        .route("/tickets/{id}", get(tickets::get).patch(tickets::update))
        .route("/tickets/{id}/history", get(tickets::history))
        .route("/tickets/{id}/notes", post(tickets::add_note))
        .route(
            "/tickets/{id}/calls",
            get(tickets::calls).post(tickets::link),
        )
        .route("/tickets/{id}/survey", post(tickets::survey))
        .route("/tickets/{id}/callback", post(tickets::callback))
        .route("/tickets/{id}/archive", post(tickets::archive))
        .fallback(error::api_not_found)
        // `layer`, not `route_layer`: unknown /api paths need a token too, so that they
        // cannot be used to probe which routes exist.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .nest("/api", api)
        .with_state(state)
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _upkeep = AbortOnDrop(tokio::spawn(metrics_upkeep(state.metrics.clone())));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(METRICS_UPKEEP_EVERY);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// Sends a command to call control and waits for its answer; 503 when call control is
/// not running (or stopped meanwhile).
async fn ask_control<T>(
    state: &AppState,
    command: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> crate::call::Control,
) -> Result<T, ApiError> {
    let unavailable = || ApiError::Unavailable {
        message: "call control is not running".into(),
    };
    let control = state.control.as_ref().ok_or_else(unavailable)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    control
        .send(command(reply))
        .await
        .map_err(|_| unavailable())?;
    answer.await.map_err(|_| unavailable())
}

/// Stops a helper task when its owner's future ends or is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
