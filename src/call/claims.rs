//! Agents shared by several nodes (README "Scaling out"). With a PostgreSQL store shared
//! by several threering nodes, call control claims an agent in the database before ringing
//! it ([`AgentClaims::claim`]) and gives the claim up once it neither rings nor talks to
//! that agent ([`AgentClaims::release_idle`]); a claim held by another node means the agent
//! is busy there, so it is not rung. A heartbeat task ([`spawn_heartbeat`]) marks this node
//! alive and frees the claims of nodes that died.
//!
//! A node whose database is unreachable keeps taking calls on its own view of the agents,
//! as a single node would (the outage is alarmed by the store writer); claims resume when
//! the database is back.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How often a node marks itself alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A node not seen this long is dead: its claims are freed.
pub const DEAD_AFTER: Duration = Duration::from_secs(10);

/// This node's claims.
pub struct AgentClaims {
    store: Store,
    node: String,
    /// Agent → the call id it is claimed for.
    held: HashMap<String, String>,
    /// The database failed on the last try (logged once per outage).
    failing: bool,
    /// Claims refused because another node held the agent, since the start.
    refused: u64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl AgentClaims {
    pub fn new(store: Store, node: &str) -> AgentClaims {
        AgentClaims {
            store,
            node: node.to_owned(),
            held: HashMap::new(),
            failing: false,
            refused: 0,
        }
    }

    /// Claims `agent` for `call_id`: false when another node holds it. When the database
    /// cannot answer, true (this node decides alone until it is back).
    pub async fn claim(&mut self, agent: &str, call_id: &str) -> bool {
        match self
            .store
            .claim_agent(agent, &self.node, call_id, now_ms())
            .await
        {
            Ok(true) => {
                self.recovered();
                self.held.insert(agent.to_owned(), call_id.to_owned());
                true
            }
            Ok(false) => {
                self.recovered();
                self.refused += 1;
                false
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    tracing::error!(error = %e, "claiming agents in the shared database failed: routing on this node's own view until it is back");
                }
                true
            }
        }
    }

    fn recovered(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!("agent claims work again");
        }
    }

    /// Gives up (in the background) the claims on agents for which `busy` says false.
    pub fn release_idle(&mut self, busy: impl Fn(&str) -> bool) {
        let idle: Vec<String> = self
            .held
            .keys()
            .filter(|agent| !busy(agent))
            .cloned()
            .collect();
        for agent in idle {
            if let Some(call_id) = self.held.remove(&agent) {
                let store = self.store.clone();
                let node = self.node.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.release_agent(&agent, &node, &call_id).await {
                        tracing::warn!(%agent, error = %e, "releasing an agent claim failed; it is freed when this node restarts or dies");
                    }
                });
            }
        }
    }

    /// Claims refused because another node held the agent, since the start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Agents this node holds now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// Frees what an earlier run of this node left claimed, then marks the node alive every
/// [`HEARTBEAT_EVERY`] and frees the claims of nodes silent for [`DEAD_AFTER`], until
/// `cancel`.
pub fn spawn_heartbeat(
    store: Store,
    node: String,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match store.release_node_claims(&node).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                claims = n,
                "freed agent claims left by this node's last run"
            ),
            Err(e) => tracing::warn!(error = %e, "freeing this node's old agent claims failed"),
        }
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    match store.node_heartbeat(&node, now_ms(), DEAD_AFTER.as_millis() as i64).await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(claims = n, "freed the agent claims of a node that stopped"),
                        Err(e) => tracing::debug!(error = %e, "node heartbeat failed"),
                    }
                }
            }
        }
    })
}
