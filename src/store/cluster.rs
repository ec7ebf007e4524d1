//! Several nodes on one database: agent claims and node heartbeats (tables
//! `agent_claims`, `cluster_nodes`). A node claims an agent before ringing it and holds
//! the claim while it rings or talks to that agent; another node's claim on the same agent
//! fails, so two nodes never ring one agent for two calls at once. The claim is one
//! statement (an upsert that only takes over the node's own row), atomic on SQLite and
//! PostgreSQL alike. Claims of a node that stopped beating are freed by the others.

use sqlx::Row;

use super::{Store, StoreError};

/// One claim, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentClaim {
    pub agent: String,
    pub node_id: String,
    pub call_id: String,
    pub claimed_at: i64,
}

impl Store {
    /// Claims `agent` for call `call_id` on `node`: true when `node` now holds it (it was
    /// free, or already held by `node`), false when another node holds it.
    pub async fn claim_agent(
        &self,
        agent: &str,
        node: &str,
        call_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let sql = self.sql(
            "INSERT INTO agent_claims (agent, node_id, call_id, claimed_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (agent) DO UPDATE SET call_id = excluded.call_id, \
             claimed_at = excluded.claimed_at WHERE agent_claims.node_id = excluded.node_id",
        );
        let done = sqlx::query(&sql)
            .bind(agent)
            .bind(node)
            .bind(call_id)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `node`'s claim on `agent` for `call_id` (a later claim for another call
    /// is kept).
    pub async fn release_agent(
        &self,
        agent: &str,
        node: &str,
        call_id: &str,
    ) -> Result<(), StoreError> {
        let sql =
            self.sql("DELETE FROM agent_claims WHERE agent = ? AND node_id = ? AND call_id = ?");
        sqlx::query(&sql)
            .bind(agent)
            .bind(node)
            .bind(call_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every claim of `node` (at its start: what a crash left behind). Answers how many.
    pub async fn release_node_claims(&self, node: &str) -> Result<u64, StoreError> {
        let sql = self.sql("DELETE FROM agent_claims WHERE node_id = ?");
        let done = sqlx::query(&sql).bind(node).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }

    /// `node` is alive at `now_ms`; frees the claims of nodes not seen since
    /// `now_ms - dead_after_ms` (and of nodes never seen, claimed that long ago). Answers
    /// how many claims were freed.
    pub async fn node_heartbeat(
        &self,
        node: &str,
        now_ms: i64,
        dead_after_ms: i64,
    ) -> Result<u64, StoreError> {
        let beat = self.sql(
            "INSERT INTO cluster_nodes (node_id, seen_at) VALUES (?, ?) \
             ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at",
        );
        sqlx::query(&beat)
            .bind(node)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        let cutoff = now_ms - dead_after_ms;
        let free = self.sql(
            "DELETE FROM agent_claims WHERE node_id <> ? AND (\
             node_id IN (SELECT node_id FROM cluster_nodes WHERE seen_at < ?) OR \
             (node_id NOT IN (SELECT node_id FROM cluster_nodes) AND claimed_at < ?))",
        );
        let done = sqlx::query(&free)
            .bind(node)
            .bind(cutoff)
            .bind(cutoff)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Every claim now, by agent.
    pub async fn agent_claims(&self) -> Result<Vec<AgentClaim>, StoreError> {
        let sql = "SELECT agent, node_id, call_id, claimed_at FROM agent_claims ORDER BY agent";
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(AgentClaim {
                    agent: row.try_get("agent")?,
                    node_id: row.try_get("node_id")?,
                    call_id: row.try_get("call_id")?,
                    claimed_at: row.try_get("claimed_at")?,
                })
            })
            .collect()
    }
}
