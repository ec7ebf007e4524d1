//! `threering serve`: wires the parts together and runs until stopped. One root
//! cancellation token; SIGTERM drains (new INVITEs get 503, calls in progress get up to
//! `grace_ms`, then are ended and their records written); SIGINT stops at once (records
//! of calls in progress are still written).

use crate::call::{Control, Controller};
use crate::config::Config;
use crate::http::{self, AppState};
use crate::media::{MediaError, MediaThreads, PortPool};
use crate::sip::endpoint::{Endpoint, EndpointConfig, OverloadConfig, TrustPolicy};
use crate::sip::transaction::TimerConfig;
use crate::store::{Store, StoreHealth, StoreWriter, WriterOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Call records the channel from call control to the store writer holds (the writer
/// takes them off at once, whatever the database does).
const WRITER_CHANNEL: usize = 1024;

/// At a draining stop, how long webhooks may go on delivering what is queued.
const WEBHOOK_FLUSH: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("config: {0}")]
    Config(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("store spool {}: {source}", path.display())]
    Spool {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("media: {0}")]
    Media(#[from] crate::media::MediaError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        source: std::io::Error,
    },
}

/// How the daemon is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Refuse new calls, let calls in progress finish within the grace period.
    Drain,
    /// Stop now (calls are ended and their records written).
    Now,
}

/// Runs the daemon until `stop` yields; `on_ready` is called once SIP, RTP and HTTP
/// all listen.
pub async fn run(
    config: Config,
    mut stop: mpsc::Receiver<Stop>,
    on_ready: impl FnOnce(&[crate::sip::transport::ListenSpec], std::net::SocketAddr),
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let root = CancellationToken::new();
    let store = Store::open_config(&config.store).await?;
    // One CTI event bus for call control, tickets, the API and the webhooks.
    let cti = crate::events::EventBus::new(&config.daemon.node_id);
    let (webhooks, webhook_tasks) =
        crate::events::webhooks::start(&config.webhooks, store.clone(), &cti);
    let tickets = crate::tickets::Tickets::new(
        store.clone(),
        crate::tickets::ticket::Rules::from_config(&config),
    )
    .with_events(cti.clone());
    // Before the writer, so its store gauges land in this recorder.
    let metrics = crate::metrics::install();
    let store_health = StoreHealth::new();
    let spool = config.store.spool_dir();
    let (writer, writer_task) = StoreWriter::start(
        store.clone(),
        WriterOptions {
            capacity: WRITER_CHANNEL,
            memory_queue: config.store.memory_queue,
            spool: Some(spool.clone()),
            tickets: Some(tickets.clone()),
            health: store_health.clone(),
        },
    )
    .await
    .map_err(|source| DaemonError::Spool {
        path: spool.clone(),
        source,
    })?;
    // Records a crash left in the spool are newer than what the database holds: they
    // go in before the recordings are repaired from the database's view.
    writer.flush().await;
    repair_recordings(&store, &config.store.recordings).await?;

    let listen = config.sip_listen_specs().map_err(DaemonError::Config)?;
    // Certificates are read once, here; a file changed since `check-config` is caught.
    let sip_tls = config.sip_tls()?;
    let http_tls = config.http_tls()?;
    let endpoint_config = EndpointConfig {
        listen,
        tls: Some(sip_tls),
        timers: TimerConfig {
            t1: Duration::from_millis(config.sip.t1_ms),
            ..TimerConfig::default()
        }
        .normalized(),
        force_rport: config.sip.force_rport,
        overload: overload_config(&config),
        ..EndpointConfig::default()
    };
    let sip_token = root.child_token();
    let (endpoint, events) = Endpoint::start(endpoint_config, sip_token.clone())
        .await
        .map_err(|source| DaemonError::Listen {
            what: "SIP".into(),
            source,
        })?;
    // Relay tasks run on threads of their own, away from SIP and HTTP (`media::threads`).
    let media_threads = MediaThreads::start_per_core().map_err(MediaError::Threads)?;
    let pool = PortPool::new(
        config.media.address,
        config.media.rtp_ports[0],
        config.media.rtp_ports[1],
    )?
    .with_media_threads(media_threads.clone());

    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            what: format!("HTTP {}", config.http.listen),
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            what: "HTTP".into(),
            source,
        })?;
    let ready = Arc::new(AtomicBool::new(false));
    let (control_tx, control_rx) = mpsc::channel(64);
    let mut state = AppState::new(&config, store.clone());
    state.metrics = metrics;
    state.store_health = store_health;
    state.ready = ready.clone();
    state.control = Some(control_tx.clone());
    state.tickets = tickets;
    state.events = cti.clone();
    state.webhooks = webhooks;
    state.media_threads = Some(media_threads.clone());
    // One lockout table: call control counts SIP digest failures in it, admins read it.
    let lockouts = state.sip_lockouts.clone();
    let http_token = root.child_token();
    let http_stop = http_token.clone();
    let http_task = tokio::spawn(async move {
        if let Err(e) = http::serve_with_tls(http_listener, http_tls, state, async move {
            http_stop.cancelled().await
        })
        .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let controller = Controller::new(
        config.clone(),
        endpoint.clone(),
        writer,
        pool,
        root.child_token(),
        cti.clone(),
        lockouts,
    );
    // Several nodes share agents through a PostgreSQL store (README "Scaling out").
    let controller = if store.backend() == crate::store::Backend::Postgres {
        crate::call::claims::spawn_heartbeat(
            store.clone(),
            config.daemon.node_id.clone(),
            root.child_token(),
        );
        controller
            .with_claims(crate::call::claims::AgentClaims::new(
                store.clone(),
                &config.daemon.node_id,
            ))
            .with_cluster(crate::call::cluster::ClusterLink::start(
                store.clone(),
                &config.daemon.node_id,
                root.child_token(),
            ))
    } else {
        controller
    };
    let controller_task = tokio::spawn(controller.run(events, control_rx));
    ready.store(true, Ordering::SeqCst);
    on_ready(&endpoint.listening(), http_addr);
    tracing::info!(sip = ?endpoint.listening().iter().map(|l| l.to_string()).collect::<Vec<_>>(), http = %http_addr, "threering is ready");

    let grace = Duration::from_millis(config.daemon.grace_ms);
    tokio::pin!(controller_task);
    let how = tokio::select! {
        s = stop.recv() => s.unwrap_or(Stop::Now),
        _ = &mut controller_task => Stop::Now,
    };
    ready.store(false, Ordering::SeqCst);
    let grace = if how == Stop::Drain {
        grace
    } else {
        Duration::ZERO
    };
    tracing::info!(?how, "stopping");
    let _ = control_tx.send(Control::Drain { grace }).await;
    // The controller ends calls, closes the store writer and returns; a second signal
    // does not cut this short, since records would be lost.
    if !controller_task.is_finished() {
        let _ = (&mut controller_task).await;
    }
    // Every call has ended: what is left on the media threads is relays winding down.
    media_threads.shutdown().await;
    let _ = writer_task.await;
    // Webhooks get a short flush (none on SIGINT); what is left becomes dead letters.
    // Then event streams end, so the HTTP server can finish.
    webhook_tasks.shutdown(grace.min(WEBHOOK_FLUSH)).await;
    cti.close();
    root.cancel();
    let _ = http_task.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The endpoint's intake limits from `[sip]`. Trusted peers and trunks get the trusted
/// limits: each sends every call of a PBX or carrier from one address.
fn overload_config(config: &Arc<Config>) -> OverloadConfig {
    let trust = config.clone();
    OverloadConfig {
        max_transactions: config.sip.max_transactions,
        source_rps: config.sip.source_rps,
        trusted_source_rps: config.sip.trusted_source_rps,
        source_pending_invites: config.sip.source_pending_invites,
        trusted: TrustPolicy::new(move |ip| trust.may_call_unauthenticated(ip)),
        ..OverloadConfig::default()
    }
}

/// Start-up after a crash: every recording left open is repaired (its WAV header made to
/// match the audio that reached the disk) and its call marked `interrupted`, keeping the
/// audio. Files no record points at are repaired too.
async fn repair_recordings(store: &Store, root: &std::path::Path) -> Result<(), DaemonError> {
    use crate::call::record::{CallOutcome, HangupSide};
    use crate::recording::{repair, repair_all, summarize};
    for mut call in store.unfinished_recordings().await? {
        let Some(relative) = call.recording_path.clone() else {
            continue;
        };
        let path = root.join(&relative);
        let checked = tokio::task::spawn_blocking(move || match repair(&path) {
            Ok(Some(summary)) => Ok(summary),
            Ok(None) => summarize(&path),
            Err(e) => Err(e),
        })
        .await;
        match checked {
            Ok(Ok(summary)) => {
                call.recording.sha256 = Some(summary.sha256);
                call.recording.duration_ms = Some(summary.duration_ms as i64);
                call.recording.bytes = Some(summary.bytes as i64);
                if call.ended_at.is_none() {
                    call.talk_ms = Some(summary.duration_ms as i64);
                    call.ended_at = call.answered_at.map(|a| a + summary.duration_ms as i64);
                }
            }
            Ok(Err(e)) => {
                tracing::error!(call = %call.id, error = %e, "interrupted recording could not be repaired")
            }
            Err(e) => tracing::error!(call = %call.id, error = %e, "recording repair failed"),
        }
        call.recording.interrupted = true;
        if call.outcome == CallOutcome::Active {
            call.outcome = CallOutcome::Answered;
        }
        if call.hangup_side.is_none() {
            call.hangup_side = Some(HangupSide::System);
        }
        tracing::warn!(call = %call.id, recording = %relative, "recording was interrupted; repaired and kept");
        store.save_call(&call).await?;
    }
    let root = root.to_path_buf();
    if let Ok(results) = tokio::task::spawn_blocking(move || repair_all(root)).await {
        for (path, result) in results {
            match result {
                Ok(Some(_)) => {
                    tracing::warn!(path = %path.display(), "repaired a recording no call points at")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "recording could not be repaired")
                }
            }
        }
    }
    Ok(())
}
