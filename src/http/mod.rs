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
//! GET /api/reports/...    statistics, charts, the shift report (see [`reports`])
//! GET /api/events         the CTI event stream as SSE; /api/events/ws as WebSocket
//! /api/webhooks/dead-letters...   failed webhook deliveries, retry (see [`events`])
//! GET|POST /login, POST /logout, POST /api/login, GET /   signing in (see [`login`])
//! GET /api/me, /api/audit, /api/users...   who am I, the audit log, users and tokens
//! GET /api/openapi.json   the OpenAPI document of all of this (no auth; see [`openapi`])
//! GET /api/agents, POST /api/agents/{id}/...   agents' states and controls (see [`agents`])
//! GET /api/live                                 the wallboard's picture, all nodes merged
//! GET /api/security/lockouts, DELETE .../{kind}/{key}   SIP digest lockouts (see [`security`])
//! ```
//! Everything under `/api` but `/api/login` and `/api/openapi.json` needs a bearer token
//! (config or per-user) or a session cookie (see [`auth`]). Errors are JSON `{"error":
//! "..."}`, mapped from [`ApiError`] in one place.

mod agents;
mod auth;
mod calls;
mod error;
mod events;
mod health;
mod login;
mod openapi;
mod qa;
mod recording;
mod reports;
mod security;
mod survey;
mod tickets;
mod tls;
pub mod ui;
mod users;

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
    /// Users, their tokens and sessions, the login limiter and the audit log.
    pub users: crate::users::Users,
    pub metrics: PrometheusHandle,
    /// Set by the daemon once SIP, RTP and HTTP all listen; cleared when it drains.
    pub ready: Arc<AtomicBool>,
    /// The ring rule in force (for the reports and wallboard to come).
    pub rings: RingsConfig,
    /// Recordings root (for `/api/calls/{id}/recording`).
    pub recordings: PathBuf,
    /// QA flag thresholds and scoring forms.
    pub qa: crate::qa::QaConfig,
    /// What the supervisor reports need from the config (`/api/reports`).
    pub reports: crate::reports::ReportSettings,
    /// Call control, for the few API calls that act on a call in progress (pause and
    /// resume a recording). None where no calls run (tests of the read-only API).
    pub control: Option<tokio::sync::mpsc::Sender<crate::call::Control>>,
    /// Tickets: the store and the ticket rules.
    pub tickets: crate::tickets::Tickets,
    /// Where `POST /api/tickets/{id}/archive` writes bundles.
    pub archive_root: PathBuf,
    /// What callbacks may dial and how many a day.
    pub callbacks: crate::config::CallbacksConfig,
    /// The CTI event bus (`/api/events`); call control and tickets publish on it.
    pub events: crate::events::EventBus,
    /// Running webhooks, for dead-letter retries (none until the daemon starts them).
    pub webhooks: crate::events::webhooks::Webhooks,
    /// SIP digest lockouts (`/api/security/lockouts`), shared with call control.
    pub sip_lockouts: Arc<crate::sip::auth::lockout::Lockouts>,
    /// Whether the database takes writes, as the store writer finds it (`/healthz`).
    pub store_health: crate::store::StoreHealth,
    /// The relays' threads, whose tasks `threering_tokio_alive_tasks` counts too (none
    /// until the daemon starts them).
    pub media_threads: Option<crate::media::MediaThreads>,
}

impl AppState {
    /// The state for `config` over `store`: tokens, rings, recordings, tickets and the
    /// archive root from the config; not ready, no call control (the daemon sets both).
    /// Tests start here and change what they need.
    pub fn new(config: &crate::config::Config, store: Store) -> AppState {
        let events = crate::events::EventBus::new(&config.daemon.node_id);
        AppState {
            tickets: crate::tickets::Tickets::new(
                store.clone(),
                crate::tickets::ticket::Rules::from_config(config),
            )
            .with_events(events.clone()),
            events,
            webhooks: Default::default(),
            users: crate::users::Users::new(&store, &config.auth),
            store,
            tokens: config.http.tokens.clone(),
            metrics: crate::metrics::install(),
            ready: Arc::new(AtomicBool::new(false)),
            rings: config.rings.clone(),
            recordings: config.store.recordings.clone(),
            qa: config.qa.clone(),
            reports: crate::reports::ReportSettings::from_config(config),
            control: None,
            archive_root: config.archive.root.clone(),
            callbacks: config.callbacks.clone(),
            sip_lockouts: Arc::new(crate::sip::auth::lockout::Lockouts::new(
                config.sip.lockout_policy(),
            )),
            store_health: crate::store::StoreHealth::new(),
            media_threads: None,
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
        .route("/qa/forms", get(qa::forms))
        .route("/calls/{id}/qa", get(qa::overview))
        .route("/calls/{id}/scores", get(qa::scores).post(qa::add_score))
        .route("/calls/{id}/annotations", post(qa::add_annotation))
        .route("/calls/{id}/waveform.svg", get(qa::waveform))
        .route("/calls/{id}/timeline.svg", get(qa::timeline))
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
        .route("/reports/summary", get(reports::summary))
        .route("/reports/charts/rings.svg", get(reports::rings_chart))
        .route(
            "/reports/charts/compliance.svg",
            get(reports::compliance_chart),
        )
        .route("/reports/shift", get(reports::shift))
        .route("/events", get(events::sse))
        .route("/events/ws", get(events::websocket))
        .route("/webhooks/dead-letters", get(events::dead_letters))
        .route(
            "/webhooks/dead-letters/{id}/retry",
            post(events::retry_dead_letter),
        )
        .route("/agents", get(agents::list))
        .route("/live", get(agents::live))
        .route("/agents/{id}/queues/{queue}/login", post(agents::login))
        .route("/agents/{id}/queues/{queue}/logout", post(agents::logout))
        .route("/agents/{id}/pause", post(agents::pause))
        .route("/agents/{id}/unpause", post(agents::unpause))
        .route("/agents/{id}/wrap-up/end", post(agents::end_wrap_up))
        .route("/me", get(users::me))
        .route("/audit", get(users::audit_log))
        .route("/users", get(users::list_users).post(users::create_user))
        .route("/users/{name}", axum::routing::patch(users::update_user))
        .route(
            "/users/{name}/tokens",
            get(users::list_tokens).post(users::create_token),
        )
        .route(
            "/users/{name}/tokens/{id}",
            axum::routing::delete(users::revoke_token),
        )
        .route("/security/lockouts", get(security::lockouts))
        .route(
            "/security/lockouts/{kind}/{key}",
            axum::routing::delete(security::lift_lockout),
        )
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
        // Sign-in (no credentials needed, so outside the /api layer).
        .route("/", get(login::home))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/api/login", post(login::api_login))
        // The OpenAPI document: no data in it, so tools fetch it without credentials.
        .route("/api/openapi.json", get(openapi::serve))
        .nest("/api", api)
        .nest("/ui", ui::routes(state.clone()))
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers every answer carries (unless its handler set its own): no MIME sniffing, no
/// framing, no referrer to other sites; pages may load only from this origin (inline
/// script and style are ours), pictures may run nothing at all.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    let policy = if content_type.starts_with("text/html") {
        Some(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' \
             'unsafe-inline'; img-src 'self' data:; media-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
    } else if content_type.starts_with("image/svg+xml") {
        Some("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
    } else {
        None
    };
    if let Some(policy) = policy {
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(policy));
    }
    response
}

/// Serves plain HTTP until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_tls(listener, None, state, shutdown).await
}

/// Like [`serve`]; with `tls` (certificate, key, ALPN) the listener serves HTTPS only.
pub async fn serve_with_tls(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let _upkeep = AbortOnDrop(tokio::spawn(metrics_upkeep(state.metrics.clone())));
    // With the peer address (ConnectInfo) in every request, for the audit log and the
    // login rate limit.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            // `tap_io` sets no-delay on the TCP stream under TLS; it also makes axum hand
            // the listener's peer address to ConnectInfo (axum implements that for
            // tapped listeners of any kind).
            let listener = tls::TlsListener::new(listener, config)?.tap_io(|tls| {
                let _ = tls.get_ref().0.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
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
