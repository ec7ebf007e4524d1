//! Agent controls from the API (`Control::Agents`, `Control::Agent`): the board as the
//! API shows it, and logging in to / out of queues, pausing with a reason, unpausing and
//! ending a wrap-up. Every change is published as `agent.updated` (an auto-pause after
//! ring-no-answers too), and the `threering_agents{state}` gauge follows the board (set
//! on the 200 ms tick and after every change).

use super::*;
use crate::call::agents::{AgentAction, AgentRefused, AgentView};
use crate::events::{self, EventBus};
use serde_json::json;

/// Agent `id` as the API shows it; None for an agent not on the board.
pub(super) fn agent_view(
    board: &AgentBoard,
    config: &Config,
    id: &str,
    now: Stamp,
) -> Option<AgentView> {
    let agent = board.get(id)?;
    let name = config
        .agent(id)
        .map_or_else(String::new, |a| a.name.clone());
    // Instants become wall-clock time through one pair of readings taken together.
    let idle_since_ms = if agent.idle_since >= now.mono {
        now.wall + agent.idle_since.duration_since(now.mono).as_millis() as i64
    } else {
        now.wall - now.mono.duration_since(agent.idle_since).as_millis() as i64
    };
    Some(AgentView {
        id: agent.id.clone(),
        name,
        state: agent.state_name(now.mono),
        pause_reason: agent.pause_reason.clone(),
        queues: agent.queues.clone(),
        registered: agent.reachable(),
        calls_answered: agent.calls_answered,
        idle_since_ms,
    })
}

/// Publishes `agent.updated` for `agent` after `action` (by `by`).
fn publish(bus: &EventBus, view: &AgentView, action: &str, by: &str) {
    let mut data = serde_json::to_value(view).unwrap_or_else(|_| json!({}));
    if let Some(map) = data.as_object_mut() {
        // `agent` like the call events name it, besides the view's own `id`.
        map.insert("agent".into(), json!(view.id));
        map.insert("action".into(), json!(action));
        map.insert("by".into(), json!(by));
    }
    bus.publish(events::AGENT_UPDATED, data);
}

/// An agent was just auto-paused after ring-no-answers in a row: tell the event stream.
pub(super) fn auto_paused(bus: &EventBus, board: &AgentBoard, config: &Config, agent: &str) {
    if let Some(view) = agent_view(board, config, agent, Stamp::now()) {
        publish(bus, &view, "auto_pause", "system");
    }
    crate::metrics::agents_by_state(&board.count_by_state(Instant::now()));
}

impl Controller {
    /// Every configured agent, in config order.
    pub(super) fn agents_view(&self) -> Vec<AgentView> {
        let now = Stamp::now();
        self.config
            .agents
            .iter()
            .filter_map(|a| agent_view(&self.board, &self.config, &a.id, now))
            .collect()
    }

    /// Applies an agent control asked for by `by`; answers with the agent after it.
    pub(super) async fn agent_command(
        &mut self,
        agent: &str,
        action: AgentAction,
        by: &str,
    ) -> Result<AgentView, AgentRefused> {
        if self.board.get(agent).is_none() {
            return Err(AgentRefused::UnknownAgent);
        }
        let now = Instant::now();
        match &action {
            AgentAction::Queue { queue, logged_in } => {
                if self.config.queue(queue).is_none() {
                    return Err(AgentRefused::UnknownQueue);
                }
                self.board.set_logged_in(agent, queue, *logged_in)?;
            }
            AgentAction::Pause { reason } => self.board.set_paused(agent, Some(reason.clone()))?,
            AgentAction::Unpause => self.board.set_paused(agent, None)?,
            AgentAction::EndWrapUp => self.board.end_wrap_up(agent, now)?,
        }
        let view = agent_view(&self.board, &self.config, agent, Stamp::now())
            .ok_or(AgentRefused::UnknownAgent)?;
        tracing::info!(%agent, action = action.name(), state = view.state, %by, "agent control");
        publish(&self.events, &view, action.name(), by);
        self.share_command(agent, &action, by);
        self.agent_gauges();
        // An agent back in routing takes a waiting caller now, not on the next tick.
        self.route_waiting().await;
        Ok(view)
    }

    /// Sets `threering_agents{state}` from the board.
    pub(super) fn agent_gauges(&self) {
        crate::metrics::agents_by_state(&self.board.count_by_state(Instant::now()));
    }
}
