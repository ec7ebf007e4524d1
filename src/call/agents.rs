//! The agents' board: who is available, ringing, talking, in wrap-up or paused (and
//! why), which queues each agent is logged in to, and the facts the routing strategies
//! weigh (idle since, calls taken, misses in a row). Pure state; time is passed in so
//! tests can drive it.
//!
//! Agent controls (the API's `/api/agents/...`): log in to / out of a queue
//! ([`AgentBoard::set_logged_in`]), pause with a reason and unpause
//! ([`AgentBoard::set_paused`]), end a wrap-up early ([`AgentBoard::end_wrap_up`]). A
//! pause asked for while the agent rings or talks takes effect when that ends.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Available,
    /// Being rung for this many calls (ring-all may ring one agent once per call).
    Ringing,
    OnCall,
    /// After a call, until the instant given.
    WrapUp(Instant),
    /// Taken out of routing (auto-pause after missed calls, or through the API); the
    /// reason is [`Agent::pause_reason`].
    Paused,
    /// Answered busy, rejected or was unreachable: not rung again until the instant given.
    Backoff(Instant),
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub state: AgentState,
    /// When the agent last finished a call (or came online): longest-idle picks the
    /// smallest.
    pub idle_since: Instant,
    /// Calls answered since the daemon started: fewest-calls picks the smallest.
    pub calls_answered: u64,
    /// Ring-no-answers in a row; reset by an answer.
    pub missed_in_a_row: u32,
    /// Has a fixed contact in the config (reachable without registering).
    pub fixed_contact: bool,
    /// Currently registered.
    pub registered: bool,
    /// Why the agent is paused, or will be once its current ring or call ends (a pause
    /// asked for meanwhile); None when not paused.
    pub pause_reason: Option<String>,
    /// The queues the agent is configured in (config order), and whether it is logged in
    /// to each: an agent logged out of a queue is not rung for that queue's calls.
    pub queues: Vec<QueueMembership>,
}

/// One queue an agent is configured in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueMembership {
    pub queue: String,
    pub logged_in: bool,
}

impl Agent {
    pub fn reachable(&self) -> bool {
        self.fixed_contact || self.registered
    }

    /// Free to be rung now (wrap-up that has run out counts as available).
    pub fn is_available(&self, now: Instant) -> bool {
        self.reachable()
            && match self.state {
                AgentState::Available => true,
                AgentState::WrapUp(until) | AgentState::Backoff(until) => until <= now,
                _ => false,
            }
    }

    /// A member of `queue` and logged in to it.
    pub fn is_logged_in(&self, queue: &str) -> bool {
        self.queues.iter().any(|m| m.queue == queue && m.logged_in)
    }

    /// Free to be rung now for a call of `queue`: available and logged in to it.
    pub fn is_available_for(&self, queue: &str, now: Instant) -> bool {
        self.is_available(now) && self.is_logged_in(queue)
    }

    /// The state as the API and the metrics name it: available, ringing, on_call,
    /// wrap_up, paused, backoff (a wrap-up or back-off that has run out is available).
    pub fn state_name(&self, now: Instant) -> &'static str {
        match self.state {
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::OnCall => "on_call",
            AgentState::WrapUp(until) if until > now => "wrap_up",
            AgentState::Paused => "paused",
            AgentState::Backoff(until) if until > now => "backoff",
            AgentState::WrapUp(_) | AgentState::Backoff(_) => "available",
        }
    }
}

/// Every name [`Agent::state_name`] gives (the `threering_agents{state}` gauge has one
/// series per name, zeros included).
pub const STATE_NAMES: [&str; 6] = [
    "available",
    "ringing",
    "on_call",
    "wrap_up",
    "paused",
    "backoff",
];

/// What an agent control asks for. Serialized (`snake_case`) when several nodes share
/// agents: every node applies every control ([`crate::call::claims`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAction {
    /// Log in to (true) or out of (false) a queue the agent is configured in.
    Queue { queue: String, logged_in: bool },
    /// Pause with a reason (again while paused: the new reason).
    Pause { reason: String },
    /// Back into routing (also drops a pause still waiting for a call to end).
    Unpause,
    /// End the wrap-up now: available at once.
    EndWrapUp,
}

impl AgentAction {
    /// The action's name in events and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            AgentAction::Queue {
                logged_in: true, ..
            } => "login",
            AgentAction::Queue {
                logged_in: false, ..
            } => "logout",
            AgentAction::Pause { .. } => "pause",
            AgentAction::Unpause => "unpause",
            AgentAction::EndWrapUp => "wrap_up_end",
        }
    }
}

/// Why an agent control was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AgentRefused {
    #[error("no such agent")]
    UnknownAgent,
    #[error("no such queue")]
    UnknownQueue,
    #[error("the agent is not configured in that queue")]
    NotInQueue,
    #[error("the agent is not in wrap-up")]
    NotInWrapUp,
}

/// One agent as the API shows it (`GET /api/agents`, the `agent.updated` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    /// available, ringing, on_call, wrap_up, paused, backoff
    pub state: &'static str,
    /// Set while paused, and while a pause waits for the current ring or call to end.
    pub pause_reason: Option<String>,
    pub queues: Vec<QueueMembership>,
    /// Registered, or reachable at a fixed contact.
    pub registered: bool,
    pub calls_answered: u64,
    /// Wall clock (epoch ms) of when the agent last became idle: the end of its last
    /// wrap-up (may be ahead while in wrap-up), its registration, or the daemon's start.
    pub idle_since_ms: i64,
}

#[derive(Debug, Default)]
pub struct AgentBoard {
    agents: Agents,
    /// Each queue's members and its routing indexes (see [`QueueIndex`]).
    queues: HashMap<String, QueueIndex, foldhash::fast::RandomState>,
}

/// One queue's members, in the order they joined it (the order of the queue's `agents`
/// list in the config), and the members that may be free to ring, ordered as
/// longest-idle and fewest-calls pick. Routing walks these rather than every member for
/// every call: with thousands of agents, the walk over all of them was a tenth of the
/// daemon's CPU at a high call rate.
///
/// In the orders: members logged in to the queue, reachable, and available, in wrap-up
/// or backing off (whether the wrap-up or back-off has run out depends on the time, so
/// the walk checks that); not ringing, talking or paused. Ties go to the earlier member
/// (the rank: its place in `members`).
#[derive(Debug, Default)]
struct QueueIndex {
    /// Positions in `Agents::list`, in join order.
    members: Vec<usize>,
    /// Agent position -> rank in `members`.
    rank: HashMap<usize, usize, foldhash::fast::RandomState>,
    by_idle: BTreeSet<(Instant, usize)>,
    by_calls: BTreeSet<(u64, Instant, usize)>,
}

impl QueueIndex {
    fn remove(&mut self, position: usize, agent: &Agent) {
        if let Some(&rank) = self.rank.get(&position) {
            self.by_idle.remove(&(agent.idle_since, rank));
            self.by_calls
                .remove(&(agent.calls_answered, agent.idle_since, rank));
        }
    }

    fn insert(&mut self, position: usize, agent: &Agent) {
        if let Some(&rank) = self.rank.get(&position) {
            self.by_idle.insert((agent.idle_since, rank));
            self.by_calls
                .insert((agent.calls_answered, agent.idle_since, rank));
        }
    }
}

/// The agents in a list, found by id through an index (a fast hasher: the keys are the
/// configured agent ids).
#[derive(Debug, Default)]
struct Agents {
    list: Vec<Agent>,
    index: HashMap<String, usize, foldhash::fast::RandomState>,
}

impl Agents {
    fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    fn get(&self, id: &str) -> Option<&Agent> {
        self.position(id).map(|i| &self.list[i])
    }

    fn values(&self) -> impl Iterator<Item = &Agent> {
        self.list.iter()
    }
}

impl FromIterator<(String, Agent)> for Agents {
    fn from_iter<I: IntoIterator<Item = (String, Agent)>>(iter: I) -> Self {
        let mut agents = Agents::default();
        for (id, agent) in iter {
            match agents.index.get(&id) {
                // The same id twice: the later one stands, as in a map.
                Some(&i) => agents.list[i] = agent,
                None => {
                    agents.index.insert(id, agents.list.len());
                    agents.list.push(agent);
                }
            }
        }
        agents
    }
}

impl AgentBoard {
    pub fn new(agents: impl IntoIterator<Item = (String, bool)>, now: Instant) -> Self {
        AgentBoard {
            agents: agents
                .into_iter()
                .map(|(id, fixed_contact)| {
                    let agent = Agent {
                        id: id.clone(),
                        state: AgentState::Available,
                        idle_since: now,
                        calls_answered: 0,
                        missed_in_a_row: 0,
                        fixed_contact,
                        registered: false,
                        pause_reason: None,
                        queues: Vec::new(),
                    };
                    (id, agent)
                })
                .collect(),
            queues: HashMap::default(),
        }
    }

    /// The members of `queue`, in the order they joined it (the config's order: the
    /// config refuses unknown and repeated agents in a queue).
    pub fn members<'a>(
        &'a self,
        queue: &str,
    ) -> impl ExactSizeIterator<Item = &'a Agent> + Clone + 'a {
        self.queues
            .get(queue)
            .map_or(&[][..], |q| q.members.as_slice())
            .iter()
            .map(|&i| &self.agents.list[i])
    }

    /// The members of `queue` that may be free to ring, the longest idle first (ties:
    /// the earlier member). Whether each is free *now* (a wrap-up or back-off run out)
    /// is for the caller to check: [`Agent::is_available_for`].
    pub fn by_idle<'a>(&'a self, queue: &str) -> impl Iterator<Item = &'a Agent> + 'a {
        let q = self.queues.get(queue);
        q.into_iter()
            .flat_map(|q| q.by_idle.iter().map(|&(_, rank)| q.members[rank]))
            .map(|i| &self.agents.list[i])
    }

    /// As [`AgentBoard::by_idle`], fewest calls answered first, then the longest idle.
    pub fn by_calls<'a>(&'a self, queue: &str) -> impl Iterator<Item = &'a Agent> + 'a {
        let q = self.queues.get(queue);
        q.into_iter()
            .flat_map(|q| q.by_calls.iter().map(|&(_, _, rank)| q.members[rank]))
            .map(|i| &self.agents.list[i])
    }

    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// Changes agent `i` through `change`, keeping the queues' orders up to date: the
    /// only way the board changes an agent after it joined its queues.
    fn update<R>(&mut self, i: usize, change: impl FnOnce(&mut Agent) -> R) -> R {
        let agent = &mut self.agents.list[i];
        for m in &agent.queues {
            if let Some(q) = self.queues.get_mut(&m.queue) {
                q.remove(i, agent);
            }
        }
        let result = change(agent);
        let routable = agent.reachable()
            && matches!(
                agent.state,
                AgentState::Available | AgentState::WrapUp(_) | AgentState::Backoff(_)
            );
        if routable {
            for m in agent.queues.iter().filter(|m| m.logged_in) {
                if let Some(q) = self.queues.get_mut(&m.queue) {
                    q.insert(i, agent);
                }
            }
        }
        result
    }

    /// [`AgentBoard::update`] for the agent `id`; None (and no change) if unknown.
    fn update_id<R>(&mut self, id: &str, change: impl FnOnce(&mut Agent) -> R) -> Option<R> {
        let i = self.agents.position(id)?;
        Some(self.update(i, change))
    }

    /// Makes `id` a member of `queue`, logged in (the start of the day: every agent is
    /// logged in to every queue it is configured in). Unknown agents are ignored.
    pub fn join_queue(&mut self, id: &str, queue: &str) {
        let Some(i) = self.agents.position(id) else {
            return;
        };
        if self.agents.list[i].queues.iter().any(|m| m.queue == queue) {
            return;
        }
        let q = self.queues.entry(queue.to_owned()).or_default();
        q.rank.insert(i, q.members.len());
        q.members.push(i);
        self.update(i, |a| {
            a.queues.push(QueueMembership {
                queue: queue.to_owned(),
                logged_in: true,
            })
        });
    }

    /// Whether `id` is a member of `queue` and logged in to it.
    pub fn is_logged_in(&self, id: &str, queue: &str) -> bool {
        self.agents.get(id).is_some_and(|a| a.is_logged_in(queue))
    }

    /// Logs `id` in to or out of `queue` (the agent must be configured in it).
    pub fn set_logged_in(
        &mut self,
        id: &str,
        queue: &str,
        logged_in: bool,
    ) -> Result<(), AgentRefused> {
        self.update_id(id, |a| {
            let member = a
                .queues
                .iter_mut()
                .find(|m| m.queue == queue)
                .ok_or(AgentRefused::NotInQueue)?;
            member.logged_in = logged_in;
            Ok(())
        })
        .unwrap_or(Err(AgentRefused::UnknownAgent))
    }

    /// Free to be rung now for a call of `queue`: available and logged in to it.
    pub fn is_available_for(&self, id: &str, queue: &str, now: Instant) -> bool {
        self.agents
            .get(id)
            .is_some_and(|a| a.is_available_for(queue, now))
    }

    /// Free to be rung now (wrap-up that has run out counts as available).
    pub fn is_available(&self, id: &str, now: Instant) -> bool {
        self.agents.get(id).is_some_and(|a| a.is_available(now))
    }

    /// Being rung, on a call or in the wrap-up after one (what another node must not ring
    /// the agent for).
    pub fn is_busy(&self, id: &str, now: Instant) -> bool {
        self.agents.get(id).is_some_and(|a| match a.state {
            AgentState::Ringing | AgentState::OnCall => true,
            AgentState::WrapUp(until) => until > now,
            _ => false,
        })
    }

    pub fn ringing(&mut self, id: &str) {
        self.update_id(id, |a| a.state = AgentState::Ringing);
    }

    /// An attempt ended without an answer. `missed`: it rang out (counts toward
    /// auto-pause after `pause_after` in a row; 0 disables). A pause asked for while it
    /// rang takes effect now. Returns true when this auto-paused the agent (reason
    /// "auto: N ring-no-answers").
    pub fn attempt_failed(&mut self, id: &str, missed: bool, pause_after: u32) -> bool {
        self.update_id(id, |a| {
            if a.state != AgentState::Ringing {
                return false;
            }
            a.state = if a.pause_reason.is_some() {
                AgentState::Paused
            } else {
                AgentState::Available
            };
            if missed {
                a.missed_in_a_row += 1;
                if pause_after > 0
                    && a.missed_in_a_row >= pause_after
                    && a.pause_reason.is_none()
                {
                    tracing::warn!(agent = %a.id, missed = a.missed_in_a_row, "agent auto-paused after ring-no-answers in a row");
                    a.state = AgentState::Paused;
                    a.pause_reason = Some(format!("auto: {} ring-no-answers", a.missed_in_a_row));
                    return true;
                }
            }
            false
        })
        .unwrap_or(false)
    }

    /// Keeps an agent that refused or could not be reached out of routing for a while.
    pub fn back_off(&mut self, id: &str, until: Instant) {
        self.update_id(id, |a| {
            if a.state == AgentState::Available {
                a.state = AgentState::Backoff(until);
            }
        });
    }

    pub fn answered(&mut self, id: &str) {
        self.update_id(id, |a| {
            a.state = AgentState::OnCall;
            a.calls_answered += 1;
            a.missed_in_a_row = 0;
        });
    }

    /// The agent's call ended: wrap-up until `now + wrap_up`, or paused if a pause was
    /// asked for during the call.
    pub fn call_ended(&mut self, id: &str, now: Instant, wrap_up: std::time::Duration) {
        self.update_id(id, |a| {
            a.state = if a.pause_reason.is_some() {
                AgentState::Paused
            } else {
                AgentState::WrapUp(now + wrap_up)
            };
            a.idle_since = now + wrap_up;
        });
    }

    /// Ends a wrap-up that is still running: the agent is available (and idle) from now.
    pub fn end_wrap_up(&mut self, id: &str, now: Instant) -> Result<(), AgentRefused> {
        self.update_id(id, |a| match a.state {
            AgentState::WrapUp(until) if until > now => {
                a.state = AgentState::Available;
                a.idle_since = now;
                Ok(())
            }
            _ => Err(AgentRefused::NotInWrapUp),
        })
        .unwrap_or(Err(AgentRefused::UnknownAgent))
    }

    pub fn set_registered(&mut self, id: &str, registered: bool, now: Instant) {
        self.update_id(id, |a| {
            if registered && !a.registered {
                a.idle_since = now;
            }
            a.registered = registered;
        });
    }

    /// Pauses an agent with `Some(reason)` (a new reason while paused replaces the old
    /// one; while ringing or on a call the pause waits for that to end), or takes it back
    /// into routing with None (also dropping a pause still waiting).
    pub fn set_paused(&mut self, id: &str, reason: Option<String>) -> Result<(), AgentRefused> {
        self.update_id(id, |a| match reason {
            Some(reason) => {
                if matches!(
                    a.state,
                    AgentState::Available | AgentState::WrapUp(_) | AgentState::Backoff(_)
                ) {
                    a.state = AgentState::Paused;
                }
                a.pause_reason = Some(reason);
            }
            None => {
                if a.state == AgentState::Paused {
                    a.state = AgentState::Available;
                    a.missed_in_a_row = 0;
                }
                a.pause_reason = None;
            }
        })
        .ok_or(AgentRefused::UnknownAgent)
    }

    /// How many agents are in each state (by [`Agent::state_name`]), in
    /// [`STATE_NAMES`] order.
    pub fn count_by_state(&self, now: Instant) -> [(&'static str, usize); 6] {
        let mut counts = STATE_NAMES.map(|name| (name, 0));
        for agent in self.agents.values() {
            let name = agent.state_name(now);
            if let Some(slot) = counts.iter_mut().find(|(n, _)| *n == name) {
                slot.1 += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn board(now: Instant) -> AgentBoard {
        let mut b = AgentBoard::new(
            [("1001".to_string(), true), ("1002".to_string(), false)],
            now,
        );
        b.join_queue("1001", "consult");
        b.join_queue("1001", "sales");
        b.join_queue("1001", "consult");
        b.join_queue("1002", "consult");
        b.join_queue("nobody", "consult");
        b
    }

    #[test]
    fn agents_start_logged_in_to_every_queue_they_are_in() {
        let now = Instant::now();
        let b = board(now);
        let queues = &b.get("1001").unwrap().queues;
        assert_eq!(
            queues,
            &vec![
                QueueMembership {
                    queue: "consult".into(),
                    logged_in: true
                },
                QueueMembership {
                    queue: "sales".into(),
                    logged_in: true
                },
            ]
        );
        assert!(b.is_logged_in("1001", "sales"));
        assert!(!b.is_logged_in("1002", "sales"));
        assert!(!b.is_logged_in("nobody", "consult"));
        assert!(b.get("nobody").is_none());
    }

    #[test]
    fn logging_out_of_one_queue_keeps_the_others() {
        let now = Instant::now();
        let mut b = board(now);
        b.set_logged_in("1001", "consult", false).unwrap();
        assert!(!b.is_available_for("1001", "consult", now));
        assert!(b.is_available_for("1001", "sales", now));
        assert!(b.is_available("1001", now), "logging out is not a pause");
        assert_eq!(b.get("1001").unwrap().state_name(now), "available");
        assert_eq!(
            b.set_logged_in("1002", "sales", true),
            Err(AgentRefused::NotInQueue)
        );
        assert_eq!(
            b.set_logged_in("9999", "consult", true),
            Err(AgentRefused::UnknownAgent)
        );
        b.set_logged_in("1001", "consult", true).unwrap();
        assert!(b.is_available_for("1001", "consult", now));
        // 1002 has no fixed contact and has not registered: not reachable.
        assert!(!b.is_available_for("1002", "consult", now));
        b.set_registered("1002", true, now);
        assert!(b.is_available_for("1002", "consult", now));
    }

    #[test]
    fn pause_with_a_reason_and_unpause() {
        let now = Instant::now();
        let mut b = board(now);
        b.set_paused("1001", Some("lunch".into())).unwrap();
        let a = b.get("1001").unwrap();
        assert_eq!(a.state, AgentState::Paused);
        assert_eq!(a.pause_reason.as_deref(), Some("lunch"));
        assert_eq!(a.state_name(now), "paused");
        assert!(!b.is_available_for("1001", "consult", now));
        b.set_paused("1001", Some("training".into())).unwrap();
        assert_eq!(
            b.get("1001").unwrap().pause_reason.as_deref(),
            Some("training")
        );
        b.set_paused("1001", None).unwrap();
        let a = b.get("1001").unwrap();
        assert_eq!(
            (a.state, a.pause_reason.clone()),
            (AgentState::Available, None)
        );
        // Unpausing an agent that is not paused changes nothing.
        b.set_paused("1001", None).unwrap();
        assert_eq!(b.get("1001").unwrap().state, AgentState::Available);
        assert_eq!(
            b.set_paused("9999", Some("x".into())),
            Err(AgentRefused::UnknownAgent)
        );
    }

    #[test]
    fn a_pause_during_a_call_waits_for_its_end() {
        let now = Instant::now();
        let mut b = board(now);
        b.ringing("1001");
        b.answered("1001");
        b.set_paused("1001", Some("meeting".into())).unwrap();
        assert_eq!(b.get("1001").unwrap().state, AgentState::OnCall);
        b.call_ended("1001", now, Duration::from_secs(30));
        assert_eq!(b.get("1001").unwrap().state, AgentState::Paused);
        // While ringing: paused once the attempt ends unanswered.
        b.set_paused("1001", None).unwrap();
        b.ringing("1001");
        b.set_paused("1001", Some("break".into())).unwrap();
        assert!(!b.attempt_failed("1001", true, 0));
        assert_eq!(b.get("1001").unwrap().state, AgentState::Paused);
        assert_eq!(
            b.get("1001").unwrap().pause_reason.as_deref(),
            Some("break")
        );
        // Unpausing before the call ends drops the pending pause.
        b.set_paused("1001", None).unwrap();
        b.ringing("1001");
        b.answered("1001");
        b.set_paused("1001", Some("later".into())).unwrap();
        b.set_paused("1001", None).unwrap();
        b.call_ended("1001", now, Duration::ZERO);
        assert!(b.is_available("1001", now));
    }

    #[test]
    fn auto_pause_carries_its_reason() {
        let now = Instant::now();
        let mut b = board(now);
        for _ in 0..2 {
            b.ringing("1001");
            assert!(!b.attempt_failed("1001", true, 3));
        }
        b.ringing("1001");
        assert!(b.attempt_failed("1001", true, 3));
        let a = b.get("1001").unwrap();
        assert_eq!(a.state, AgentState::Paused);
        assert_eq!(a.pause_reason.as_deref(), Some("auto: 3 ring-no-answers"));
        // Not ringing: nothing changes, no second auto-pause.
        assert!(!b.attempt_failed("1001", true, 3));
        b.set_paused("1001", None).unwrap();
        assert_eq!(b.get("1001").unwrap().missed_in_a_row, 0);
    }

    #[test]
    fn ending_a_wrap_up_makes_the_agent_available_now() {
        let now = Instant::now();
        let mut b = board(now);
        assert_eq!(b.end_wrap_up("1001", now), Err(AgentRefused::NotInWrapUp));
        assert_eq!(b.end_wrap_up("9999", now), Err(AgentRefused::UnknownAgent));
        b.ringing("1001");
        b.answered("1001");
        b.call_ended("1001", now, Duration::from_secs(60));
        assert!(!b.is_available("1001", now));
        assert_eq!(b.get("1001").unwrap().state_name(now), "wrap_up");
        let later = now + Duration::from_secs(5);
        b.end_wrap_up("1001", later).unwrap();
        let a = b.get("1001").unwrap();
        assert_eq!(a.state, AgentState::Available);
        assert_eq!(a.idle_since, later);
        assert!(b.is_available("1001", later));
        // A wrap-up that has run out already counts as available: nothing to end.
        b.ringing("1001");
        b.answered("1001");
        b.call_ended("1001", now, Duration::from_secs(1));
        assert_eq!(
            b.end_wrap_up("1001", now + Duration::from_secs(2)),
            Err(AgentRefused::NotInWrapUp)
        );
        // Paused in wrap-up: not a wrap-up any more.
        b.ringing("1001");
        b.answered("1001");
        b.call_ended("1001", now, Duration::from_secs(60));
        b.set_paused("1001", Some("x".into())).unwrap();
        assert_eq!(b.end_wrap_up("1001", now), Err(AgentRefused::NotInWrapUp));
    }

    #[test]
    fn counts_by_state_cover_every_name() {
        let now = Instant::now();
        let mut b = board(now);
        b.set_paused("1002", Some("x".into())).unwrap();
        let counts = b.count_by_state(now);
        assert_eq!(counts.map(|(n, _)| n), STATE_NAMES);
        assert_eq!(counts[0], ("available", 1));
        assert_eq!(counts[4], ("paused", 1));
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<usize>(), 2);
        b.back_off("1001", now + Duration::from_secs(5));
        assert_eq!(b.count_by_state(now)[5], ("backoff", 1));
        assert_eq!(
            b.count_by_state(now + Duration::from_secs(5))[0],
            ("available", 1)
        );
    }

    /// The ordered free members agree with a walk over every member, through a long
    /// run of random changes: whatever the board did, the first free agent in each order
    /// is the one a full scan picks, ties to the earlier member.
    #[test]
    fn the_orders_agree_with_a_full_scan() {
        let start = Instant::now();
        let ids: Vec<String> = (0..9).map(|i| format!("a{i}")).collect();
        let mut b = AgentBoard::new(ids.iter().map(|id| (id.clone(), id != "a8")), start);
        // Three queues, members in different orders, some agents in several.
        let queues = [
            ("q1", vec![3, 1, 4, 0, 5]),
            ("q2", vec![8, 6, 2, 7, 1]),
            ("q3", vec![0, 1, 2, 3, 4, 5, 6, 7, 8]),
        ];
        for (q, members) in &queues {
            for &m in members {
                b.join_queue(&ids[m], q);
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut now = start;
        for step in 0..4000 {
            now += Duration::from_millis(next(700));
            let id = ids[next(9) as usize].as_str();
            let (q, _) = queues[next(3) as usize];
            match next(11) {
                0 => b.ringing(id),
                1 => {
                    b.attempt_failed(id, next(2) == 0, 3);
                }
                2 => b.answered(id),
                3 => b.call_ended(id, now, Duration::from_millis(next(3) * 1000)),
                4 => {
                    let _ = b.end_wrap_up(id, now);
                }
                5 => b.back_off(id, now + Duration::from_millis(next(2000))),
                6 => b.set_registered(id, next(3) > 0, now),
                7 => {
                    let _ = b.set_paused(id, (next(2) == 0).then(|| "x".to_string()));
                }
                8 => {
                    let _ = b.set_logged_in(id, q, next(3) > 0);
                }
                // Ring and answer, as a routed call does.
                _ => {
                    b.ringing(id);
                    b.answered(id);
                }
            }
            for (q, _) in &queues {
                let free = |a: &&Agent| a.is_available_for(q, now);
                let scan_idle = b.members(q).filter(free).min_by_key(|a| a.idle_since);
                let scan_calls = b
                    .members(q)
                    .filter(free)
                    .min_by_key(|a| (a.calls_answered, a.idle_since));
                let ids_of = |a: Option<&Agent>| a.map(|a| a.id.clone());
                assert_eq!(
                    ids_of(b.by_idle(q).find(free)),
                    ids_of(scan_idle),
                    "longest idle in {q} at step {step}"
                );
                assert_eq!(
                    ids_of(b.by_calls(q).find(free)),
                    ids_of(scan_calls),
                    "fewest calls in {q} at step {step}"
                );
                // And every free member is in the orders, once.
                let mut listed: Vec<&str> =
                    b.by_idle(q).filter(free).map(|a| a.id.as_str()).collect();
                let mut all: Vec<&str> = b.members(q).filter(free).map(|a| a.id.as_str()).collect();
                listed.sort_unstable();
                all.sort_unstable();
                assert_eq!(listed, all, "free members of {q} at step {step}");
                assert_eq!(b.by_calls(q).filter(free).count(), all.len());
            }
        }
    }
}
