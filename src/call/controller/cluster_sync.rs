//! Call control's side of sharing with the other nodes ([`crate::call::cluster`]):
//! applying what they changed, and writing what this node changed.

use super::*;
use crate::call::agents::AgentAction;
use crate::call::cluster::{now_ms, ClusterNews};
use crate::store::SharedRegistration;

impl Controller {
    /// Applies what the other nodes changed: registrations (an agent registered on any
    /// node is reachable here), agent controls, and their wallboard pictures.
    pub(super) async fn on_cluster_news(&mut self, news: ClusterNews) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        link.registrations = news
            .registrations
            .into_iter()
            .map(|r| (r.agent.clone(), r))
            .collect();
        link.others = news.snapshots;
        let now = Instant::now();
        let mut changed = false;
        for agent in &self.config.agents {
            let registered = self.registrar.binding(&agent.id).is_some()
                || link.registrations.contains_key(&agent.id);
            if self
                .board
                .get(&agent.id)
                .is_some_and(|a| a.registered != registered)
            {
                tracing::info!(agent = %agent.id, registered, "agent registration (shared by the nodes)");
                self.board.set_registered(&agent.id, registered, now);
                changed = true;
            }
        }
        for (agent, command, node) in news.commands {
            let done = match &command.action {
                AgentAction::Queue { queue, logged_in } => {
                    self.board.set_logged_in(&agent, queue, *logged_in)
                }
                AgentAction::Pause { reason } => {
                    self.board.set_paused(&agent, Some(reason.clone()))
                }
                AgentAction::Unpause => self.board.set_paused(&agent, None),
                // The wrap-up is the node's that had the call; elsewhere there is none.
                AgentAction::EndWrapUp => self.board.end_wrap_up(&agent, now),
            };
            match done {
                Ok(()) => {
                    tracing::info!(%agent, action = command.action.name(), by = %command.by, %node, "agent control from another node");
                    changed = true;
                }
                Err(e) => {
                    tracing::debug!(%agent, action = command.action.name(), %node, error = ?e, "agent control from another node does not apply here")
                }
            }
        }
        if changed {
            self.agent_gauges();
            self.route_waiting().await;
        }
    }

    /// This node's wallboard picture with the other live nodes' merged in.
    pub(super) fn merged_snapshot(&self) -> Snapshot {
        let own = self.snapshot();
        match &self.cluster {
            Some(link) => own.merge(&link.others),
            None => own,
        }
    }

    /// Writes this node's wallboard picture for the others (at most once a second; the
    /// picture is only taken when due).
    pub(super) fn publish_snapshot(&mut self) {
        if !self.cluster.as_ref().is_some_and(|l| l.snapshot_due()) {
            return;
        }
        let snapshot = self.snapshot();
        if let Some(link) = self.cluster.as_mut() {
            link.publish_snapshot(snapshot);
        }
    }

    /// After a REGISTER of `agent`: tells the other nodes where it can be rung now (or
    /// that it cannot).
    pub(super) fn share_registration(&self, agent: &str) {
        let Some(link) = &self.cluster else {
            return;
        };
        let registration = self.registrar.binding(agent).map(|b| {
            let now = Instant::now().into_std();
            let wall = now_ms();
            let left = b.expires_at.saturating_duration_since(now).as_millis() as i64;
            let age = now.saturating_duration_since(b.registered_at).as_millis() as i64;
            SharedRegistration {
                agent: agent.to_owned(),
                node_id: link.node.clone(),
                contact: b.contact.to_string(),
                transport: b.source.protocol.to_string().to_ascii_lowercase(),
                address: b.source.remote.to_string(),
                registered_at: wall - age,
                expires_at: wall + left,
            }
        });
        link.publish_registration(agent, registration);
    }

    /// After an agent control made on this node: the other nodes apply it too.
    pub(super) fn share_command(&self, agent: &str, action: &AgentAction, by: &str) {
        if let Some(link) = &self.cluster {
            link.publish_command(agent, action, by);
        }
    }

    /// Where `agent` registered on another node (None: nowhere, or not in a cluster).
    pub(super) fn shared_target(&self, agent: &str) -> Option<(Uri, Target)> {
        let registration = self.cluster.as_ref()?.registrations.get(agent)?;
        if registration.expires_at <= now_ms() {
            return None;
        }
        let contact = Uri::parse(&registration.contact).ok()?;
        let target = target_for_uri(&contact).or_else(|| {
            Some(Target {
                protocol: Protocol::from_name(&registration.transport)?,
                addr: registration.address.parse().ok()?,
            })
        })?;
        Some((contact.to_request_uri(), target))
    }
}
