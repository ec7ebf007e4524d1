//! Webhooks: every event of the types a `[[webhooks]]` entry names is POSTed to its URL
//! as JSON `{"id","type","at","data"}`, signed with HMAC-SHA256 of
//! `"<timestamp>.<body>"` under the webhook's secret.
//!
//! ```text
//!  EventBus ─sink (try_send)─▶ [ queue, 1000 ] ─▶ delivery task ─POST─▶ receiver
//!      │ queue full                                  │ not 2xx: retry after 1 s, 2 s, 4 s …
//!      └──────────▶ dead-letter writer ◀─────────────┘ (± 20 %, at most 5 min), then
//!                   webhook_dead_letters             a dead letter after max_attempts
//! ```
//!
//! At least once: a delivery whose answer was lost is sent again, with the same event id,
//! so receivers dedupe by `X-Threering-Event-Id`. One task per webhook delivers in order;
//! the bus never waits for it (a full queue sends the event straight to the dead letters,
//! `attempts` 0). Dead letters are retried by hand (`POST
//! /api/webhooks/dead-letters/{id}/retry`): the row goes once the retry is delivered.
//! At shutdown the queues get a short flush; what is left becomes dead letters.
//!
//! The HTTP client is our own minimal HTTP/1.1 (one request per connection, plain
//! `http://` only: TLS comes with the hardening work).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Event, EventBus};
use crate::config::WebhookConfig;
use crate::store::{DeadLetter, NewDeadLetter, Store};

/// Events waiting per webhook; past it they go to the dead letters.
pub const QUEUE_CAPACITY: usize = 1000;
/// Events waiting to be written as dead letters because their queue was full.
const OVERFLOW_CAPACITY: usize = 4096;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most of a response head we read (the status line is all we need).
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// A name or an IP (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, `/` at least.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let url = url.trim();
        let rest = if let Some(rest) = strip_prefix_ci(url, "http://") {
            rest
        } else if strip_prefix_ci(url, "https://").is_some() {
            return Err("https:// is not supported yet (TLS comes later); use http://".into());
        } else {
            return Err(format!("{url:?}: expected http://HOST[:PORT]/PATH"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(format!("{url:?}: credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{url:?}: {host:?} is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{url:?}: expected :PORT after ]"))?,
                ),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (authority.to_owned(), None),
            }
        };
        let host_ok = !host.is_empty()
            && (host.contains(':')
                || host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
        if !host_ok {
            return Err(format!("{url:?}: missing or malformed host"));
        }
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("{url:?}: port {p:?} is not 1-65535")),
            },
        };
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(format!(
                "{url:?}: the path has spaces or control characters"
            ));
        }
        Ok(HttpUrl { host, port, path })
    }

    /// `Host:` header value.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Problems of the `[[webhooks]]` entries, each as (key, message), e.g.
/// `("webhooks[0].url", "...")`.
pub fn validate(webhooks: &[WebhookConfig]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, hook) in webhooks.iter().enumerate() {
        let key = |k: &str| format!("webhooks[{i}].{k}");
        if hook.name.trim().is_empty() {
            problems.push((key("name"), "must not be empty".into()));
        } else if !names.insert(hook.name.as_str()) {
            problems.push((
                key("name"),
                format!("webhook {:?} is defined twice", hook.name),
            ));
        }
        if let Err(message) = HttpUrl::parse(&hook.url) {
            problems.push((key("url"), message));
        }
        if hook.secret.expose().is_empty() {
            problems.push((
                key("secret"),
                "must not be empty (receivers check the signature with it)".into(),
            ));
        }
        for unknown in super::unknown_types(hook.events.iter().map(String::as_str)) {
            problems.push((
                key("events"),
                format!(
                    "unknown event type {unknown:?} (known: {})",
                    super::EVENT_TYPES.join(", ")
                ),
            ));
        }
        if hook.timeout_ms == 0 {
            problems.push((key("timeout_ms"), "must be greater than 0".into()));
        }
        if hook.max_attempts == 0 {
            problems.push((key("max_attempts"), "must be at least 1".into()));
        }
        if hook.retry_base_ms == 0 {
            problems.push((key("retry_base_ms"), "must be greater than 0".into()));
        }
    }
    problems
}

/// `X-Threering-Signature`: `sha256=` and the hex HMAC-SHA256 of
/// `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait after failed attempt number `attempt` (1-based): `base × 2^(attempt-1)`,
/// at most [`MAX_BACKOFF`], scaled by 0.8 + 0.4 × `jitter` (`jitter` in 0..1).
pub fn backoff(attempt: u32, base_ms: u64, jitter: f64) -> Duration {
    let doubling = 1u64 << attempt.saturating_sub(1).min(30);
    let cap = MAX_BACKOFF.as_millis() as u64;
    let plain = base_ms.saturating_mul(doubling).min(cap);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Duration::from_millis(((plain as f64 * factor) as u64).min(cap))
}

/// POSTs `body` (JSON) to `url` with `headers`; answers the HTTP status. One connection
/// per request (`Connection: close`); the whole exchange within `timeout`.
pub async fn post(
    url: &HttpUrl,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("connect to {}: {e}", url.authority()))?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: threering/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            url.path,
            url.authority(),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("sending to {}: {e}", url.authority()))?;
        let mut answer = Vec::with_capacity(512);
        let mut buf = [0u8; 2048];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the answer: {e}"))?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") || answer.len() > MAX_RESPONSE_HEAD {
                break;
            }
        }
        parse_status(&answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// The status code of an HTTP/1.x response head.
fn parse_status(answer: &[u8]) -> Result<u16, String> {
    if answer.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    let line_end = answer
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(answer.len().min(200));
    let line = String::from_utf8_lossy(&answer[..line_end]);
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    match (
        version.starts_with("HTTP/1."),
        parts.next().map(str::parse::<u16>),
    ) {
        (true, Some(Ok(status))) if (100..600).contains(&status) => Ok(status),
        _ => Err(format!("not an HTTP/1.x answer: {line:?}")),
    }
}

/// What a delivery task is given.
enum Job {
    Event(Arc<Event>),
    /// A dead letter retried by hand.
    Retry(DeadLetter),
}

#[derive(Clone)]
struct Hook {
    queue: mpsc::Sender<Job>,
    /// Jobs queued or being delivered.
    pending: Arc<AtomicUsize>,
}

/// Why a dead letter could not be queued again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefused {
    #[error("webhook {0:?} is no longer configured")]
    UnknownWebhook(String),
    #[error("webhook {0:?} has a full queue; try again later")]
    QueueFull(String),
}

/// The running webhooks, for the API (retries); cheap to clone. Empty when none are
/// configured or started.
#[derive(Clone, Default)]
pub struct Webhooks {
    hooks: Arc<HashMap<String, Hook>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.hooks.keys()).finish()
    }
}

impl Webhooks {
    /// Queues a dead letter for delivery again (same event id and body). The row stays
    /// until the delivery succeeds; if it fails again, the row is updated.
    pub fn retry(&self, letter: DeadLetter) -> Result<(), RetryRefused> {
        let name = letter.webhook.clone();
        let hook = self
            .hooks
            .get(&name)
            .ok_or_else(|| RetryRefused::UnknownWebhook(name.clone()))?;
        hook.pending.fetch_add(1, Ordering::SeqCst);
        if hook.queue.try_send(Job::Retry(letter)).is_err() {
            hook.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(RetryRefused::QueueFull(name));
        }
        Ok(())
    }

    /// Jobs queued or in delivery, over all webhooks.
    pub fn pending(&self) -> usize {
        self.hooks
            .values()
            .map(|h| h.pending.load(Ordering::SeqCst))
            .sum()
    }

    pub fn names(&self) -> Vec<String> {
        self.hooks.keys().cloned().collect()
    }
}

/// The delivery tasks; [`WebhookTasks::shutdown`] stops them.
pub struct WebhookTasks {
    tasks: JoinSet<()>,
    stop: CancellationToken,
    hooks: Webhooks,
    bus: EventBus,
}

/// Starts one delivery task per webhook (and the dead-letter writer for full queues),
/// fed by sinks on `bus`.
pub fn start(configs: &[WebhookConfig], store: Store, bus: &EventBus) -> (Webhooks, WebhookTasks) {
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut hooks = HashMap::new();
    let (overflow_tx, overflow_rx) = mpsc::channel::<(String, Arc<Event>)>(OVERFLOW_CAPACITY);
    tasks.spawn(write_overflow(store.clone(), overflow_rx, stop.clone()));
    for config in configs {
        let url = match HttpUrl::parse(&config.url) {
            Ok(url) => url,
            Err(e) => {
                // validate() refuses such a config; reaching here is a bug, not fatal.
                tracing::error!(webhook = %config.name, error = %e, "webhook not started");
                continue;
            }
        };
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let pending = Arc::new(AtomicUsize::new(0));
        let hook = Hook {
            queue: queue.clone(),
            pending: pending.clone(),
        };
        let types = config.events.clone();
        let name = config.name.clone();
        let overflow = overflow_tx.clone();
        let sink_pending = pending.clone();
        bus.add_sink(move |event: &Arc<Event>| {
            if !types.is_empty() && !types.iter().any(|t| t == event.kind) {
                return;
            }
            sink_pending.fetch_add(1, Ordering::SeqCst);
            if queue.try_send(Job::Event(event.clone())).is_ok() {
                return;
            }
            sink_pending.fetch_sub(1, Ordering::SeqCst);
            if overflow.try_send((name.clone(), event.clone())).is_err() {
                tracing::error!(webhook = %name, event = %event.id_string(), "webhook event lost: its queue and the dead-letter queue are full");
            }
        });
        let deliverer = Deliverer {
            name: config.name.clone(),
            url,
            secret: config.secret.expose().as_bytes().to_vec(),
            timeout: Duration::from_millis(config.timeout_ms),
            max_attempts: config.max_attempts.max(1),
            retry_base_ms: config.retry_base_ms,
            store: store.clone(),
            pending,
        };
        tasks.spawn(deliverer.run(jobs, stop.clone()));
        hooks.insert(config.name.clone(), hook);
    }
    let hooks = Webhooks {
        hooks: Arc::new(hooks),
    };
    let running = WebhookTasks {
        tasks,
        stop,
        hooks: hooks.clone(),
        bus: bus.clone(),
    };
    (hooks, running)
}

impl WebhookTasks {
    /// Stops taking events, gives the queues up to `flush` to be delivered, then stops
    /// the tasks: what was not delivered is written as dead letters. Call before the
    /// store closes.
    pub async fn shutdown(mut self, flush: Duration) {
        self.bus.clear_sinks();
        let deadline = tokio::time::Instant::now() + flush;
        while self.hooks.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Writes the events whose webhook queue was full as dead letters (never attempted).
async fn write_overflow(
    store: Store,
    mut overflow: mpsc::Receiver<(String, Arc<Event>)>,
    stop: CancellationToken,
) {
    loop {
        let (webhook, event) = tokio::select! {
            item = overflow.recv() => match item {
                Some(item) => item,
                None => return,
            },
            _ = stop.cancelled() => break,
        };
        dead_letter_event(&store, &webhook, &event, "queue full: not attempted").await;
    }
    overflow.close();
    while let Ok((webhook, event)) = overflow.try_recv() {
        dead_letter_event(&store, &webhook, &event, "queue full: not attempted").await;
    }
}

async fn dead_letter_event(store: &Store, webhook: &str, event: &Event, why: &str) {
    let letter = NewDeadLetter {
        webhook: webhook.to_owned(),
        event_id: event.id_string(),
        event_type: event.kind.to_owned(),
        body: serde_json::to_string(event).unwrap_or_default(),
        attempts: 0,
        last_error: why.to_owned(),
        failed_at: chrono::Utc::now().timestamp_millis(),
    };
    write_dead_letter(store, None, &letter).await;
}

/// Inserts a dead letter, or updates the one a retry came from.
async fn write_dead_letter(store: &Store, retried: Option<i64>, letter: &NewDeadLetter) {
    let result = match retried {
        Some(id) => store
            .update_dead_letter(id, letter.attempts, &letter.last_error, letter.failed_at)
            .await
            .map(|_| id),
        None => store.insert_dead_letter(letter).await,
    };
    match result {
        Ok(id) => {
            tracing::warn!(webhook = %letter.webhook, event = %letter.event_id, attempts = letter.attempts, error = %letter.last_error, dead_letter = id, "webhook delivery failed: dead letter")
        }
        Err(e) => {
            tracing::error!(webhook = %letter.webhook, event = %letter.event_id, error = %e, "webhook dead letter could not be written: event lost")
        }
    }
}

/// One webhook's delivery task.
struct Deliverer {
    name: String,
    url: HttpUrl,
    secret: Vec<u8>,
    timeout: Duration,
    max_attempts: u32,
    retry_base_ms: u64,
    store: Store,
    pending: Arc<AtomicUsize>,
}

/// One delivery: the event's id, type and body, and the dead letter it is a retry of.
struct Delivery {
    event_id: String,
    event_type: String,
    body: String,
    retried: Option<i64>,
    /// Attempts made before (a retried dead letter's).
    earlier_attempts: i64,
}

impl Delivery {
    fn from_job(job: Job) -> Delivery {
        match job {
            Job::Event(event) => Delivery {
                event_id: event.id_string(),
                event_type: event.kind.to_owned(),
                body: serde_json::to_string(&*event).unwrap_or_default(),
                retried: None,
                earlier_attempts: 0,
            },
            Job::Retry(letter) => Delivery {
                event_id: letter.event_id,
                event_type: letter.event_type,
                body: letter.body,
                retried: Some(letter.id),
                earlier_attempts: letter.attempts,
            },
        }
    }
}

impl Deliverer {
    async fn run(self, mut jobs: mpsc::Receiver<Job>, stop: CancellationToken) {
        loop {
            let job = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
                _ = stop.cancelled() => break,
            };
            self.deliver(Delivery::from_job(job), &stop).await;
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        // Stopped: what is still queued is kept as dead letters for a retry later.
        jobs.close();
        while let Ok(job) = jobs.try_recv() {
            let delivery = Delivery::from_job(job);
            self.give_up(&delivery, 0, "the daemon stopped before delivery")
                .await;
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Attempts until delivered, `max_attempts` failed (then a dead letter) or stopped.
    async fn deliver(&self, delivery: Delivery, stop: &CancellationToken) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(&delivery, attempt).await {
                Ok(()) => {
                    tracing::debug!(webhook = %self.name, event = %delivery.event_id, attempt, "webhook delivered");
                    if let Some(id) = delivery.retried {
                        if let Err(e) = self.store.delete_dead_letter(id).await {
                            tracing::error!(dead_letter = id, error = %e, "a retried dead letter was delivered but could not be removed");
                        }
                    }
                    return;
                }
                Err(error) => error,
            };
            tracing::info!(webhook = %self.name, event = %delivery.event_id, attempt, %error, "webhook delivery attempt failed");
            if attempt >= self.max_attempts {
                return self.give_up(&delivery, attempt, &error).await;
            }
            let wait = backoff(attempt, self.retry_base_ms, rand::random::<f64>());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {
                    let why = format!("{error} (the daemon stopped before the next attempt)");
                    return self.give_up(&delivery, attempt, &why).await;
                }
            }
        }
    }

    async fn attempt(&self, delivery: &Delivery, attempt: u32) -> Result<(), String> {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let body = delivery.body.as_bytes();
        let headers = [
            ("X-Threering-Event", delivery.event_type.clone()),
            ("X-Threering-Event-Id", delivery.event_id.clone()),
            ("X-Threering-Timestamp", timestamp.clone()),
            (
                "X-Threering-Signature",
                signature(&self.secret, &timestamp, body),
            ),
            ("X-Threering-Attempt", attempt.to_string()),
        ];
        match post(&self.url, &headers, body, self.timeout).await {
            Ok(status) if (200..300).contains(&status) => Ok(()),
            Ok(status) => Err(format!("HTTP {status}")),
            Err(e) => Err(e),
        }
    }

    async fn give_up(&self, delivery: &Delivery, attempts: u32, error: &str) {
        let letter = NewDeadLetter {
            webhook: self.name.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            body: delivery.body.clone(),
            attempts: delivery.earlier_attempts + i64::from(attempts),
            last_error: error.to_owned(),
            failed_at: chrono::Utc::now().timestamp_millis(),
        };
        write_dead_letter(&self.store, delivery.retried, &letter).await;
    }
}
