//! Several nodes on one database, besides claims ([`super::claims`]): what a node tells
//! the others through the shared store, and what it learns from them (README "Scaling
//! out"). No cluster protocol of our own: every node writes its part into PostgreSQL and
//! reads the others' parts once a second ([`spawn_sync`]).
//!
//! - **Registrations**: the contact an agent's phone registered on one node, so that
//!   every node can ring the agent there (`agent_registrations`).
//! - **Agent controls**: logging in to or out of a queue, pausing (an auto-pause too),
//!   unpausing and ending a wrap-up, made on one node and applied by every node
//!   (`agent_commands`; a node that starts replays the last day's).
//! - **Wallboard**: each node's picture of its calls and agents (`node_snapshots`),
//!   merged into one board on every node ([`super::controller::Snapshot::merge`]).
//!
//! A node whose database is unreachable goes on with what it last learnt; the store
//! writer alarms the outage.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::agents::AgentAction;
use super::controller::Snapshot;
use crate::store::{SharedRegistration, Store};

/// How often a node reads what the others wrote (and publishes its wallboard picture).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// A node's wallboard picture older than this is left out (the node is gone or stuck).
pub const SNAPSHOT_FRESH: Duration = Duration::from_secs(5);
/// How far back a starting node replays agent controls, and how long they are kept.
pub const COMMANDS_KEPT: Duration = Duration::from_secs(24 * 3600);
/// Agent controls are read again for this long after they were made, so that one
/// committed late (after a later one was already read) is not missed.
const COMMANDS_LOOKBACK: Duration = Duration::from_secs(60);
/// At most this many agent controls per read.
const COMMANDS_PER_READ: i64 = 1000;

/// An agent control as stored: the action and who asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCommand {
    pub action: AgentAction,
    pub by: String,
}

/// What the other nodes changed since the last read.
#[derive(Debug, Default)]
pub struct ClusterNews {
    /// Every unexpired registration, whichever node took it.
    pub registrations: Vec<SharedRegistration>,
    /// Agent controls made on other nodes (at the start: the last day's, this node's
    /// own included), oldest first: (agent, control, node).
    pub commands: Vec<(String, SharedCommand, String)>,
    /// The other live nodes' wallboard pictures.
    pub snapshots: Vec<Snapshot>,
}

/// Call control's side: where to write, and what it learnt.
pub struct ClusterLink {
    pub store: Store,
    pub node: String,
    /// Registrations on any node, by agent.
    pub registrations: HashMap<String, SharedRegistration>,
    /// The other nodes' latest pictures.
    pub others: Vec<Snapshot>,
    /// Taken by call control's loop.
    pub news: Option<mpsc::Receiver<ClusterNews>>,
    /// When this node's picture was last written.
    pub published_at: Option<tokio::time::Instant>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl ClusterLink {
    /// Starts reading what the other nodes write (until `cancel`).
    pub fn start(store: Store, node: &str, cancel: CancellationToken) -> ClusterLink {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(sync(store.clone(), node.to_owned(), tx, cancel));
        ClusterLink {
            store,
            node: node.to_owned(),
            registrations: HashMap::new(),
            others: Vec::new(),
            news: Some(rx),
            published_at: None,
        }
    }

    /// Writes (in the background) that `agent` registered `registration`, or, with None,
    /// that it has no registration left.
    pub fn publish_registration(&self, agent: &str, registration: Option<SharedRegistration>) {
        let store = self.store.clone();
        let agent = agent.to_owned();
        tokio::spawn(async move {
            let done = match registration {
                Some(r) => store.put_registration(&r).await,
                None => store.remove_registration(&agent).await,
            };
            if let Err(e) = done {
                tracing::warn!(%agent, error = %e, "sharing an agent registration failed; other nodes ring the agent at its fixed contact only until the next REGISTER");
            }
        });
    }

    /// Writes (in the background) an agent control made on this node.
    pub fn publish_command(&self, agent: &str, action: &AgentAction, by: &str) {
        let command = SharedCommand {
            action: action.clone(),
            by: by.to_owned(),
        };
        let Ok(json) = serde_json::to_string(&command) else {
            return;
        };
        let store = self.store.clone();
        let node = self.node.clone();
        let agent = agent.to_owned();
        tokio::spawn(async move {
            if let Err(e) = store
                .push_agent_command(&agent, &node, &json, now_ms())
                .await
            {
                tracing::warn!(%agent, error = %e, "sharing an agent control failed; the other nodes do not apply it");
            }
        });
    }

    /// Whether this node's wallboard picture is due to be written (once per
    /// [`SYNC_EVERY`]).
    pub fn snapshot_due(&self) -> bool {
        self.published_at
            .is_none_or(|at| at.elapsed() >= SYNC_EVERY)
    }

    /// Writes (in the background) this node's wallboard picture.
    pub fn publish_snapshot(&mut self, snapshot: Snapshot) {
        self.published_at = Some(tokio::time::Instant::now());
        let Ok(json) = serde_json::to_string(&snapshot) else {
            return;
        };
        let store = self.store.clone();
        let node = self.node.clone();
        tokio::spawn(async move {
            if let Err(e) = store.put_node_snapshot(&node, snapshot.at, &json).await {
                tracing::debug!(error = %e, "writing this node's wallboard picture failed");
            }
        });
    }
}

/// Reads the other nodes' registrations, agent controls and pictures every
/// [`SYNC_EVERY`] and hands them to call control.
async fn sync(
    store: Store,
    node: String,
    news: mpsc::Sender<ClusterNews>,
    cancel: CancellationToken,
) {
    let started = now_ms();
    // Agent controls already handed over (or this node's own), by sequence number, with
    // when they were made: forgotten once past the lookback.
    let mut seen: BTreeMap<i64, i64> = BTreeMap::new();
    let mut first = true;
    let mut failing = false;
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reads: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        let since = if first {
            started - COMMANDS_KEPT.as_millis() as i64
        } else {
            now - COMMANDS_LOOKBACK.as_millis() as i64
        };
        let read = async {
            let registrations = store.registrations(now).await?;
            // At the start, the whole day's controls (however many); then a minute's.
            let limit = if first { i64::MAX } else { COMMANDS_PER_READ };
            let commands = store.agent_commands_after(0, since, limit).await?;
            let snapshots = store
                .node_snapshots(&node, now - SNAPSHOT_FRESH.as_millis() as i64)
                .await?;
            Ok::<_, crate::store::StoreError>((registrations, commands, snapshots))
        };
        let (registrations, commands, snapshots) = match read.await {
            Ok(read) => {
                if failing {
                    failing = false;
                    tracing::info!("reading the other nodes' state works again");
                }
                read
            }
            Err(e) => {
                if !failing {
                    failing = true;
                    tracing::warn!(error = %e, "reading the other nodes' state failed: going on with what was last read");
                }
                continue;
            }
        };
        let mut fresh = Vec::new();
        for command in commands {
            if seen.insert(command.seq, command.made_at).is_some() {
                continue;
            }
            // This node's own controls were applied when made (but are replayed at the
            // start: the board starts afresh).
            if !first && command.node_id == node {
                continue;
            }
            match serde_json::from_str::<SharedCommand>(&command.action) {
                Ok(shared) => fresh.push((command.agent, shared, command.node_id)),
                Err(e) => {
                    tracing::warn!(seq = command.seq, error = %e, "an agent control in the database is not understood; skipped")
                }
            }
        }
        let keep_after = now - 2 * COMMANDS_LOOKBACK.as_millis() as i64;
        seen.retain(|_, made_at| *made_at >= keep_after);
        let snapshots = snapshots
            .into_iter()
            .filter_map(|s| match serde_json::from_str::<Snapshot>(&s.snapshot) {
                Ok(snapshot) => Some(snapshot),
                Err(e) => {
                    tracing::debug!(node = %s.node_id, error = %e, "a node's wallboard picture is not understood");
                    None
                }
            })
            .collect();
        first = false;
        let update = ClusterNews {
            registrations,
            commands: fresh,
            snapshots,
        };
        if news.send(update).await.is_err() {
            return;
        }
        reads += 1;
        // Once an hour: forget agent controls older than a day.
        if reads % 3600 == 1 {
            let before = now - COMMANDS_KEPT.as_millis() as i64;
            if let Err(e) = store.prune_agent_commands(before).await {
                tracing::debug!(error = %e, "pruning old agent controls failed");
            }
        }
    }
}
