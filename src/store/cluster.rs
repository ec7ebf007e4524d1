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

/// An agent's registered contact as every node sees it (`agent_registrations`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedRegistration {
    pub agent: String,
    /// The node that took the REGISTER.
    pub node_id: String,
    pub contact: String,
    /// `udp`, `tcp` or `tls`: the REGISTER's transport.
    pub transport: String,
    /// The REGISTER's source address (`ip:port`).
    pub address: String,
    pub registered_at: i64,
    pub expires_at: i64,
}

/// One agent control, as written by the node that made it (`agent_commands`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAgentCommand {
    pub seq: i64,
    pub agent: String,
    pub node_id: String,
    /// The action as JSON (call control's own encoding).
    pub action: String,
    pub made_at: i64,
}

/// One node's wallboard picture (`node_snapshots`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    pub node_id: String,
    pub taken_at: i64,
    /// JSON.
    pub snapshot: String,
}

impl Store {
    /// Records (or replaces) the contact `registration.agent` registered.
    pub async fn put_registration(
        &self,
        registration: &SharedRegistration,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO agent_registrations \
             (agent, node_id, contact, transport, address, registered_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (agent) DO UPDATE SET node_id = excluded.node_id, \
             contact = excluded.contact, transport = excluded.transport, \
             address = excluded.address, registered_at = excluded.registered_at, \
             expires_at = excluded.expires_at",
        );
        sqlx::query(&sql)
            .bind(&registration.agent)
            .bind(&registration.node_id)
            .bind(&registration.contact)
            .bind(&registration.transport)
            .bind(&registration.address)
            .bind(registration.registered_at)
            .bind(registration.expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// `agent` unregistered (on any node).
    pub async fn remove_registration(&self, agent: &str) -> Result<(), StoreError> {
        let sql = self.sql("DELETE FROM agent_registrations WHERE agent = ?");
        sqlx::query(&sql).bind(agent).execute(self.pool()).await?;
        Ok(())
    }

    /// Registrations not expired at `now_ms`, by agent; expired rows are deleted.
    pub async fn registrations(&self, now_ms: i64) -> Result<Vec<SharedRegistration>, StoreError> {
        let prune = self.sql("DELETE FROM agent_registrations WHERE expires_at <= ?");
        sqlx::query(&prune)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        let sql = self.sql(
            "SELECT agent, node_id, contact, transport, address, registered_at, expires_at \
             FROM agent_registrations WHERE expires_at > ? ORDER BY agent",
        );
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SharedRegistration {
                    agent: row.try_get("agent")?,
                    node_id: row.try_get("node_id")?,
                    contact: row.try_get("contact")?,
                    transport: row.try_get("transport")?,
                    address: row.try_get("address")?,
                    registered_at: row.try_get("registered_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Appends an agent control made on `node`; answers its sequence number.
    pub async fn push_agent_command(
        &self,
        agent: &str,
        node: &str,
        action: &str,
        made_at: i64,
    ) -> Result<i64, StoreError> {
        let sql = self.sql(
            "INSERT INTO agent_commands (agent, node_id, action, made_at) VALUES (?, ?, ?, ?) \
             RETURNING seq",
        );
        let row = sqlx::query(&sql)
            .bind(agent)
            .bind(node)
            .bind(action)
            .bind(made_at)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("seq")?)
    }

    /// Agent controls after `after_seq` made since `since_ms`, oldest first, at most
    /// `limit`.
    pub async fn agent_commands_after(
        &self,
        after_seq: i64,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<SharedAgentCommand>, StoreError> {
        let sql = self.sql(
            "SELECT seq, agent, node_id, action, made_at FROM agent_commands \
             WHERE seq > ? AND made_at >= ? ORDER BY seq LIMIT ?",
        );
        let rows = sqlx::query(&sql)
            .bind(after_seq)
            .bind(since_ms)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SharedAgentCommand {
                    seq: row.try_get("seq")?,
                    agent: row.try_get("agent")?,
                    node_id: row.try_get("node_id")?,
                    action: row.try_get("action")?,
                    made_at: row.try_get("made_at")?,
                })
            })
            .collect()
    }

    /// Deletes agent controls made before `before_ms`; answers how many.
    pub async fn prune_agent_commands(&self, before_ms: i64) -> Result<u64, StoreError> {
        let sql = self.sql("DELETE FROM agent_commands WHERE made_at < ?");
        let done = sqlx::query(&sql)
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Records (or replaces) `node`'s wallboard picture.
    pub async fn put_node_snapshot(
        &self,
        node: &str,
        taken_at: i64,
        snapshot: &str,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO node_snapshots (node_id, taken_at, snapshot) VALUES (?, ?, ?) \
             ON CONFLICT (node_id) DO UPDATE SET taken_at = excluded.taken_at, \
             snapshot = excluded.snapshot",
        );
        sqlx::query(&sql)
            .bind(node)
            .bind(taken_at)
            .bind(snapshot)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The pictures of nodes other than `node` taken since `since_ms`, by node.
    pub async fn node_snapshots(
        &self,
        node: &str,
        since_ms: i64,
    ) -> Result<Vec<NodeSnapshot>, StoreError> {
        let sql = self.sql(
            "SELECT node_id, taken_at, snapshot FROM node_snapshots \
             WHERE node_id <> ? AND taken_at >= ? ORDER BY node_id",
        );
        let rows = sqlx::query(&sql)
            .bind(node)
            .bind(since_ms)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeSnapshot {
                    node_id: row.try_get("node_id")?,
                    taken_at: row.try_get("taken_at")?,
                    snapshot: row.try_get("snapshot")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TestDb;

    async fn claims_are_exclusive_across_nodes(store: Store, _db: &TestDb) {
        assert!(store.claim_agent("1001", "a", "c1", 1_000).await.unwrap());
        assert!(
            !store.claim_agent("1001", "b", "c2", 1_001).await.unwrap(),
            "another node's claim refuses"
        );
        assert!(store.claim_agent("1001", "a", "c3", 1_002).await.unwrap());
        // A release for an earlier call keeps the later claim.
        store.release_agent("1001", "a", "c1").await.unwrap();
        assert!(!store.claim_agent("1001", "b", "c2", 1_003).await.unwrap());
        store.release_agent("1001", "a", "c3").await.unwrap();
        assert!(store.claim_agent("1001", "b", "c2", 1_004).await.unwrap());
        // Node b stops beating: a's heartbeat frees b's claim once b is dead.
        store.node_heartbeat("b", 2_000, 10_000).await.unwrap();
        assert_eq!(store.node_heartbeat("a", 11_000, 10_000).await.unwrap(), 0);
        assert_eq!(store.node_heartbeat("a", 12_001, 10_000).await.unwrap(), 1);
        assert!(store.agent_claims().await.unwrap().is_empty());
    }

    async fn registrations_are_shared_until_they_expire(store: Store, _db: &TestDb) {
        let reg = |agent: &str, node: &str, expires_at| SharedRegistration {
            agent: agent.into(),
            node_id: node.into(),
            contact: format!("sip:{agent}@127.0.0.1:5070"),
            transport: "udp".into(),
            address: "127.0.0.1:5070".into(),
            registered_at: 1_000,
            expires_at,
        };
        store
            .put_registration(&reg("1001", "a", 5_000))
            .await
            .unwrap();
        store
            .put_registration(&reg("1002", "a", 2_000))
            .await
            .unwrap();
        // The last REGISTER wins, whichever node took it.
        store
            .put_registration(&reg("1001", "b", 6_000))
            .await
            .unwrap();
        let now = store.registrations(1_500).await.unwrap();
        assert_eq!(now, vec![reg("1001", "b", 6_000), reg("1002", "a", 2_000)]);
        // 1002 expired at 2 000.
        assert_eq!(
            store.registrations(2_000).await.unwrap(),
            vec![reg("1001", "b", 6_000)]
        );
        store.remove_registration("1001").await.unwrap();
        assert!(store.registrations(2_000).await.unwrap().is_empty());
    }

    async fn agent_commands_come_back_in_order(store: Store, _db: &TestDb) {
        let first = store
            .push_agent_command("1001", "a", r#"{"pause":"lunch"}"#, 1_000)
            .await
            .unwrap();
        let second = store
            .push_agent_command("1002", "b", r#""unpause""#, 2_000)
            .await
            .unwrap();
        assert!(second > first);
        let all = store.agent_commands_after(0, 0, 100).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|c| (
                    c.seq,
                    c.agent.as_str(),
                    c.node_id.as_str(),
                    c.action.as_str()
                ))
                .collect::<Vec<_>>(),
            vec![
                (first, "1001", "a", r#"{"pause":"lunch"}"#),
                (second, "1002", "b", r#""unpause""#)
            ]
        );
        let after = store.agent_commands_after(first, 0, 100).await.unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].seq, second);
        assert_eq!(
            store
                .agent_commands_after(0, 1_500, 100)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.agent_commands_after(0, 0, 1).await.unwrap().len(), 1);
        assert_eq!(store.prune_agent_commands(1_500).await.unwrap(), 1);
        assert_eq!(
            store.agent_commands_after(0, 0, 100).await.unwrap().len(),
            1
        );
    }

    async fn node_snapshots_of_other_live_nodes(store: Store, _db: &TestDb) {
        store.put_node_snapshot("a", 1_000, "{}").await.unwrap();
        store
            .put_node_snapshot("b", 1_000, r#"{"x":1}"#)
            .await
            .unwrap();
        store
            .put_node_snapshot("b", 3_000, r#"{"x":2}"#)
            .await
            .unwrap();
        store.put_node_snapshot("c", 500, "{}").await.unwrap();
        let seen = store.node_snapshots("a", 900).await.unwrap();
        assert_eq!(
            seen,
            vec![NodeSnapshot {
                node_id: "b".into(),
                taken_at: 3_000,
                snapshot: r#"{"x":2}"#.into()
            }]
        );
    }

    crate::store_test!(
        claims_are_exclusive_across_nodes,
        registrations_are_shared_until_they_expire,
        agent_commands_come_back_in_order,
        node_snapshots_of_other_live_nodes
    );
}
