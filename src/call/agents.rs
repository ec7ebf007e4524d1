//! The agents' board: who is available, ringing, talking, in wrap-up or paused, and
//! the facts the routing strategies weigh (idle since, calls taken, misses in a row).
//! Pure state; time is passed in so tests can drive it.

use std::collections::HashMap;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Available,
    /// Being rung for this many calls (ring-all may ring one agent once per call).
    Ringing,
    OnCall,
    /// After a call, until the instant given.
    WrapUp(Instant),
    /// Taken out of routing (auto-pause after missed calls, or by a supervisor later).
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
}

impl Agent {
    pub fn reachable(&self) -> bool {
        self.fixed_contact || self.registered
    }
}

#[derive(Debug, Default)]
pub struct AgentBoard {
    agents: HashMap<String, Agent>,
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
                    };
                    (id, agent)
                })
                .collect(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// Free to be rung now (wrap-up that has run out counts as available).
    pub fn is_available(&self, id: &str, now: Instant) -> bool {
        self.agents.get(id).is_some_and(|a| {
            a.reachable()
                && match a.state {
                    AgentState::Available => true,
                    AgentState::WrapUp(until) | AgentState::Backoff(until) => until <= now,
                    _ => false,
                }
        })
    }

    fn set(&mut self, id: &str, state: AgentState) {
        if let Some(a) = self.agents.get_mut(id) {
            a.state = state;
        }
    }

    pub fn ringing(&mut self, id: &str) {
        self.set(id, AgentState::Ringing);
    }

    /// An attempt ended without an answer. `missed`: it rang out (counts toward
    /// auto-pause after `pause_after` in a row; 0 disables).
    pub fn attempt_failed(&mut self, id: &str, missed: bool, pause_after: u32) {
        let Some(a) = self.agents.get_mut(id) else {
            return;
        };
        if a.state != AgentState::Ringing {
            return;
        }
        a.state = AgentState::Available;
        if missed {
            a.missed_in_a_row += 1;
            if pause_after > 0 && a.missed_in_a_row >= pause_after {
                tracing::warn!(agent = %a.id, missed = a.missed_in_a_row, "agent auto-paused after ring-no-answers in a row");
                a.state = AgentState::Paused;
            }
        }
    }

    /// Keeps an agent that refused or could not be reached out of routing for a while.
    pub fn back_off(&mut self, id: &str, until: Instant) {
        if let Some(a) = self.agents.get_mut(id) {
            if a.state == AgentState::Available {
                a.state = AgentState::Backoff(until);
            }
        }
    }

    pub fn answered(&mut self, id: &str) {
        if let Some(a) = self.agents.get_mut(id) {
            a.state = AgentState::OnCall;
            a.calls_answered += 1;
            a.missed_in_a_row = 0;
        }
    }

    pub fn call_ended(&mut self, id: &str, now: Instant, wrap_up: std::time::Duration) {
        if let Some(a) = self.agents.get_mut(id) {
            a.state = AgentState::WrapUp(now + wrap_up);
            a.idle_since = now + wrap_up;
        }
    }

    pub fn set_registered(&mut self, id: &str, registered: bool, now: Instant) {
        if let Some(a) = self.agents.get_mut(id) {
            if registered && !a.registered {
                a.idle_since = now;
            }
            a.registered = registered;
        }
    }

    /// Takes an agent out of or back into routing.
    pub fn set_paused(&mut self, id: &str, paused: bool) {
        if let Some(a) = self.agents.get_mut(id) {
            match (paused, a.state) {
                (true, AgentState::Available | AgentState::WrapUp(_) | AgentState::Backoff(_)) => {
                    a.state = AgentState::Paused
                }
                (false, AgentState::Paused) => {
                    a.state = AgentState::Available;
                    a.missed_in_a_row = 0;
                }
                _ => {}
            }
        }
    }
}
