//! The CTI event stream: what happens to calls and tickets, as events for integrators
//! (agent desktops, wallboards, CRMs). Call control and the ticket service publish on one
//! [`EventBus`]; the API streams it (`GET /api/events` as SSE, `/api/events/ws` as
//! WebSocket) and [`webhooks`] POST it to configured URLs.
//!
//! ```text
//!  controller ─┐                       ┌─▶ broadcast ─▶ SSE / WebSocket subscribers
//!  tickets ────┴─▶ EventBus::publish ──┼─▶ replay ring (last 1000, for Last-Event-ID)
//!                  (never waits)       └─▶ sinks ─▶ one bounded queue per webhook
//! ```
//!
//! Publishing never blocks: the broadcast send and the sinks' `try_send` return at once,
//! under a lock held for microseconds. A subscriber that falls more than
//! [`LIVE_CAPACITY`] events behind is told so (`stream.lagged`) and goes on from there.
//!
//! Event ids are `<node>-<seq>`: `node` is `[daemon] node_id`, `seq` increases by one per
//! event. It starts at the wall clock in microseconds when the daemon starts, so ids keep
//! increasing across restarts too (receivers that dedupe by id never mistake a new event
//! for one seen before the restart).

pub mod webhooks;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events kept for `Last-Event-ID` / `?since=` resume.
pub const REPLAY: usize = 1000;
/// How far a live subscriber may fall behind before it is told it lagged.
pub const LIVE_CAPACITY: usize = 1024;

pub const CALL_OFFERED: &str = "call.offered";
pub const CALL_RINGING: &str = "call.ringing";
pub const CALL_ANSWERED: &str = "call.answered";
pub const CALL_ENDED: &str = "call.ended";
pub const SURVEY_COMPLETED: &str = "survey.completed";
pub const TICKET_UPDATED: &str = "ticket.updated";
/// An agent's state, pause reason or queue log-ins changed (agent controls, auto-pause).
pub const AGENT_UPDATED: &str = "agent.updated";
/// Not on the bus: told to one subscriber that missed events.
pub const STREAM_LAGGED: &str = "stream.lagged";

/// Every event type the bus carries (filters and webhook configs name these).
pub const EVENT_TYPES: [&str; 7] = [
    CALL_OFFERED,
    CALL_RINGING,
    CALL_ANSWERED,
    CALL_ENDED,
    SURVEY_COMPLETED,
    TICKET_UPDATED,
    AGENT_UPDATED,
];

/// Checks a list of event types (a filter, a webhook's `events`): the unknown ones.
pub fn unknown_types<'a>(types: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    types
        .into_iter()
        .filter(|t| !EVENT_TYPES.contains(t))
        .collect()
}

/// One event. Serialized as `{"id": "<node>-<seq>", "type", "at", "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Sequence number, increasing by one per event of this process.
    pub id: u64,
    /// `[daemon] node_id`.
    pub node: Arc<str>,
    /// Wall clock, epoch ms.
    pub at: i64,
    /// `call.answered`, ... (one of [`EVENT_TYPES`]).
    pub kind: &'static str,
    pub data: Value,
}

impl Event {
    /// The id as integrators see it: `<node>-<seq>`.
    pub fn id_string(&self) -> String {
        format!("{}-{}", self.node, self.id)
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Event", 4)?;
        s.serialize_field("id", &self.id_string())?;
        s.serialize_field("type", self.kind)?;
        s.serialize_field("at", &self.at)?;
        s.serialize_field("data", &self.data)?;
        s.end()
    }
}

/// Splits an event id `<node>-<seq>` (the node may itself contain `-`).
pub fn parse_id(id: &str) -> Option<(&str, u64)> {
    let (node, seq) = id.trim().rsplit_once('-')?;
    if node.is_empty() {
        return None;
    }
    Some((node, seq.parse().ok()?))
}

/// What a sink is handed: every event, under the bus lock, so it must not wait.
type SinkFn = Box<dyn Fn(&Arc<Event>) + Send + Sync>;

struct State {
    next: u64,
    ring: VecDeque<Arc<Event>>,
    sinks: Vec<SinkFn>,
}

struct Inner {
    node: Arc<str>,
    /// The first id of this process.
    first: u64,
    state: Mutex<State>,
    live: broadcast::Sender<Arc<Event>>,
    closed: CancellationToken,
}

/// The event bus; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus for `node` whose ids start at the wall clock in microseconds.
    pub fn new(node: &str) -> EventBus {
        let micros = chrono::Utc::now().timestamp_micros().max(1) as u64;
        EventBus::starting_at(node, micros)
    }

    /// A bus whose first event gets id `first` (tests).
    pub fn starting_at(node: &str, first: u64) -> EventBus {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        EventBus {
            inner: Arc::new(Inner {
                node: node.into(),
                first,
                state: Mutex::new(State {
                    next: first,
                    ring: VecDeque::with_capacity(REPLAY),
                    sinks: Vec::new(),
                }),
                live,
                closed: CancellationToken::new(),
            }),
        }
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an event of type `kind`; returns its sequence number. Never waits.
    pub fn publish(&self, kind: &'static str, data: Value) -> u64 {
        let at = chrono::Utc::now().timestamp_millis();
        let mut state = self.state();
        let id = state.next;
        state.next += 1;
        let event = Arc::new(Event {
            id,
            node: self.inner.node.clone(),
            at,
            kind,
            data,
        });
        if state.ring.len() >= REPLAY {
            state.ring.pop_front();
        }
        state.ring.push_back(event.clone());
        for sink in &state.sinks {
            sink(&event);
        }
        // An error only means nobody is listening right now.
        let _ = self.inner.live.send(event);
        id
    }

    /// Hands every event published from now on to `sink`, in order, on the publisher's
    /// task and under the bus lock: it must return at once (a `try_send`).
    pub fn add_sink(&self, sink: impl Fn(&Arc<Event>) + Send + Sync + 'static) {
        self.state().sinks.push(Box::new(sink));
    }

    /// Drops every sink (their queues then end once drained).
    pub fn clear_sinks(&self) {
        self.state().sinks.clear();
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> Subscription {
        self.subscribe_since(None, None)
    }

    /// Events after `since` (an event id) still in the replay ring, then live ones, of
    /// the `types` given (all when None). Replay and live hand-over are atomic: nothing
    /// is missed or repeated between them. If events after `since` are no longer in the
    /// ring (or `since` is not an id of this process), the first item is a lag notice.
    pub fn subscribe_since(&self, since: Option<&str>, types: Option<Vec<String>>) -> Subscription {
        let state = self.state();
        let live = self.inner.live.subscribe();
        let mut replay = VecDeque::new();
        let mut gap = None;
        let mut last = 0;
        if let Some(since) = since {
            match parse_id(since) {
                Some((node, seq)) if node == &*self.inner.node && seq < state.next => {
                    last = seq;
                    replay.extend(state.ring.iter().filter(|e| e.id > seq).cloned());
                    // Ids of this process after `since` that the ring no longer holds.
                    let oldest = state.ring.front().map_or(state.next, |e| e.id);
                    if seq.saturating_add(1) < self.inner.first {
                        gap = Some(None);
                    } else if oldest > seq + 1 {
                        gap = Some(Some(oldest - seq - 1));
                    }
                }
                _ => gap = Some(None),
            }
        }
        drop(state);
        Subscription {
            live,
            replay,
            gap,
            last,
            types,
            closed: self.inner.closed.clone(),
        }
    }

    /// Ends every subscription (shutdown) and drops the sinks.
    pub fn close(&self) {
        self.clear_sinks();
        self.inner.closed.cancel();
    }

    /// The events in the replay ring, oldest first (tests, diagnostics).
    pub fn recent(&self) -> Vec<Arc<Event>> {
        self.state().ring.iter().cloned().collect()
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event(Arc<Event>),
    /// Events were missed: `skipped` of them, when known.
    Lagged {
        skipped: Option<u64>,
    },
}

impl Item {
    /// As a WebSocket message or a webhook body: `{"id","type","at","data"}`; a lag
    /// notice has `"id": null`.
    pub fn to_json(&self) -> Value {
        match self {
            Item::Event(e) => serde_json::to_value(&**e).unwrap_or(Value::Null),
            Item::Lagged { skipped } => lag_notice(*skipped),
        }
    }
}

/// The `stream.lagged` notice.
pub fn lag_notice(skipped: Option<u64>) -> Value {
    serde_json::json!({
        "id": null,
        "type": STREAM_LAGGED,
        "at": chrono::Utc::now().timestamp_millis(),
        "data": { "skipped": skipped },
    })
}

/// One subscriber's view of the bus.
pub struct Subscription {
    live: broadcast::Receiver<Arc<Event>>,
    replay: VecDeque<Arc<Event>>,
    /// A lag notice owed first: Some(skipped).
    gap: Option<Option<u64>>,
    /// The last id handed out (nothing at or below it is handed out again).
    last: u64,
    types: Option<Vec<String>>,
    closed: CancellationToken,
}

impl Subscription {
    fn wanted(&self, event: &Event) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event.kind))
    }

    /// The next event (or lag notice); None once the bus is closed.
    pub async fn next(&mut self) -> Option<Item> {
        if let Some(skipped) = self.gap.take() {
            return Some(Item::Lagged { skipped });
        }
        while let Some(event) = self.replay.pop_front() {
            self.last = event.id;
            if self.wanted(&event) {
                return Some(Item::Event(event));
            }
        }
        loop {
            tokio::select! {
                biased;
                received = self.live.recv() => match received {
                    Ok(event) => {
                        if event.id <= self.last {
                            continue;
                        }
                        self.last = event.id;
                        if self.wanted(&event) {
                            return Some(Item::Event(event));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some(Item::Lagged { skipped: Some(n) })
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.closed.cancelled() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests;
