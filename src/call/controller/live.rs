//! What is going on right now, for the wallboard: every call in progress (waiting,
//! ringing with the rings the caller has heard so far, connected, in the survey) and
//! every agent's state. Read on call control's own task, so it is consistent. With
//! several nodes, each node's picture is merged with the others' ([`Snapshot::merge`]).

use serde::{Deserialize, Serialize};

use super::*;

/// One call in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveCall {
    pub id: String,
    /// The node that has the call.
    #[serde(default)]
    pub node: String,
    pub queue: String,
    pub caller: String,
    pub direction: String,
    /// waiting (no agent ringing), ringing, dialing (a callback's customer), connected,
    /// survey
    pub phase: String,
    pub started_at: i64,
    /// Since the call came in.
    pub waited_ms: i64,
    /// Since the caller started hearing ringing.
    pub ring_ms: Option<i64>,
    /// Rings the caller has heard so far (or heard before the answer).
    pub rings: Option<i64>,
    /// Agents being rung now.
    pub ringing: Vec<String>,
    /// The agent who answered.
    pub agent: Option<String>,
}

/// One agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveAgent {
    pub id: String,
    pub name: String,
    /// available, ringing, on_call, wrap_up, paused, backoff
    pub state: String,
    /// Why the agent is paused (or will be, after the current call).
    pub pause_reason: Option<String>,
    pub registered: bool,
    pub calls_answered: u64,
}

/// The whole picture at `at` (epoch ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub at: i64,
    /// The node that took the picture.
    #[serde(default)]
    pub node: String,
    /// The nodes whose pictures are merged in (this one first).
    #[serde(default)]
    pub nodes: Vec<String>,
    pub cadence_ms: u64,
    pub target: u32,
    pub limit: u32,
    pub calls: Vec<LiveCall>,
    pub agents: Vec<LiveAgent>,
}

impl Controller {
    pub(super) fn snapshot(&self) -> Snapshot {
        let now = Stamp::now();
        let rings = &self.config.rings;
        let mut calls: Vec<LiveCall> = self
            .calls
            .values()
            .map(|call| {
                let ringing: Vec<String> = call
                    .attempts
                    .iter()
                    .filter(|a| a.open)
                    .map(|a| a.agent.clone())
                    .collect();
                let phase = match call.phase {
                    Phase::Routing if ringing.is_empty() => "waiting",
                    Phase::Routing => "ringing",
                    Phase::Dialing => "dialing",
                    Phase::Connected => "connected",
                    Phase::Survey => "survey",
                    Phase::Ended => "ended",
                };
                let ring_until = call.answered.unwrap_or(now);
                let ring_ms = call.caller_ringing.map(|r| r.ms_until(&ring_until));
                LiveCall {
                    id: call.record.id.clone(),
                    node: self.config.daemon.node_id.clone(),
                    queue: call.queue.clone(),
                    caller: call.record.caller.clone(),
                    direction: call.record.direction.as_str().to_owned(),
                    phase: phase.to_owned(),
                    started_at: call.started.wall,
                    waited_ms: call.started.ms_until(&now),
                    ring_ms,
                    rings: ring_ms
                        .map(|ms| crate::call::record::rings_for(ms, rings.cadence_ms as i64)),
                    ringing,
                    agent: call.record.agent.clone(),
                }
            })
            .collect();
        calls.sort_by_key(|c| c.started_at);
        let mono = now.mono;
        let agents = self
            .config
            .agents
            .iter()
            .filter_map(|a| {
                let agent = self.board.get(&a.id)?;
                let state = agent.state_name(mono);
                Some(LiveAgent {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    state: state.to_owned(),
                    pause_reason: agent.pause_reason.clone(),
                    registered: agent.registered || agent.fixed_contact,
                    calls_answered: agent.calls_answered,
                })
            })
            .collect();
        let node = self.config.daemon.node_id.clone();
        Snapshot {
            at: now.wall,
            nodes: vec![node.clone()],
            node,
            cadence_ms: rings.cadence_ms,
            target: rings.target,
            limit: rings.limit,
            calls,
            agents,
        }
    }
}

/// How much an agent state says the agent is taken: with several nodes, the board shows
/// the agent as the node that has it most engaged does (a node where another node's call
/// keeps the agent backed off shows `backoff`, the least).
fn engagement(state: &str) -> u8 {
    match state {
        "on_call" => 5,
        "ringing" => 4,
        "wrap_up" => 3,
        "paused" => 2,
        "available" => 1,
        _ => 0,
    }
}

impl Snapshot {
    /// This node's picture with the other nodes' (`others`) merged in: every node's
    /// calls, and each agent as the node that has it most engaged shows it (registered
    /// on any node; answered calls summed). Agents only another node knows are added.
    pub fn merge(mut self, others: &[Snapshot]) -> Snapshot {
        for other in others {
            if other.node == self.node {
                continue;
            }
            self.nodes.push(other.node.clone());
            self.calls.extend(other.calls.iter().cloned());
            for theirs in &other.agents {
                match self.agents.iter_mut().find(|a| a.id == theirs.id) {
                    Some(ours) => {
                        if engagement(&theirs.state) > engagement(&ours.state) {
                            ours.state.clone_from(&theirs.state);
                            if theirs.pause_reason.is_some() {
                                ours.pause_reason.clone_from(&theirs.pause_reason);
                            }
                        }
                        ours.registered |= theirs.registered;
                        ours.calls_answered += theirs.calls_answered;
                    }
                    None => self.agents.push(theirs.clone()),
                }
            }
        }
        self.calls
            .sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, state: &str, answered: u64) -> LiveAgent {
        LiveAgent {
            id: id.into(),
            name: format!("Agent {id}"),
            state: state.into(),
            pause_reason: None,
            registered: false,
            calls_answered: answered,
        }
    }

    fn call(id: &str, node: &str, started_at: i64, agent: Option<&str>) -> LiveCall {
        LiveCall {
            id: id.into(),
            node: node.into(),
            queue: "consult".into(),
            caller: "13800138000".into(),
            direction: "inbound".into(),
            phase: if agent.is_some() {
                "connected"
            } else {
                "waiting"
            }
            .into(),
            started_at,
            waited_ms: 0,
            ring_ms: None,
            rings: None,
            ringing: Vec::new(),
            agent: agent.map(str::to_owned),
        }
    }

    fn picture(node: &str, calls: Vec<LiveCall>, agents: Vec<LiveAgent>) -> Snapshot {
        Snapshot {
            at: 1_000,
            node: node.into(),
            nodes: vec![node.into()],
            cadence_ms: 5000,
            target: 3,
            limit: 5,
            calls,
            agents,
        }
    }

    #[test]
    fn pictures_of_several_nodes_merge_into_one_board() {
        let a = picture(
            "a",
            vec![call("a-2", "a", 20, None)],
            vec![agent("1001", "backoff", 2), agent("1002", "available", 1)],
        );
        let mut b_agents = vec![agent("1001", "on_call", 3), agent("1002", "paused", 0)];
        b_agents[1].pause_reason = Some("lunch".into());
        b_agents[1].registered = true;
        let b = picture("b", vec![call("b-1", "b", 10, Some("1001"))], b_agents);
        // A stale copy of this node's own picture is ignored.
        let own = picture("a", vec![call("a-old", "a", 5, None)], Vec::new());
        let merged = a.merge(&[b, own]);
        assert_eq!(merged.nodes, vec!["a", "b"]);
        let calls: Vec<(&str, &str)> = merged
            .calls
            .iter()
            .map(|c| (c.id.as_str(), c.node.as_str()))
            .collect();
        assert_eq!(calls, vec![("b-1", "b"), ("a-2", "a")]);
        let agents: Vec<(&str, &str, Option<&str>, bool, u64)> = merged
            .agents
            .iter()
            .map(|a| {
                (
                    a.id.as_str(),
                    a.state.as_str(),
                    a.pause_reason.as_deref(),
                    a.registered,
                    a.calls_answered,
                )
            })
            .collect();
        assert_eq!(
            agents,
            vec![
                ("1001", "on_call", None, false, 5),
                ("1002", "paused", Some("lunch"), true, 1),
            ]
        );
    }

    #[test]
    fn a_picture_survives_the_database_round_trip() {
        let a = picture(
            "a",
            vec![call("a-1", "a", 20, Some("1001"))],
            vec![agent("1001", "on_call", 1)],
        );
        let json = serde_json::to_string(&a).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
