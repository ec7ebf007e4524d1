//! Routing strategies: which agents of a queue to ring next for a call. Pure functions
//! over the agents' board.

use super::agents::AgentBoard;
use crate::config::Strategy;
use std::collections::HashSet;
use tokio::time::Instant;

/// Picks the agents to ring now. Agents not yet tried for this call come first; once
/// every available agent has been tried, tried ones are rung again (the caller keeps
/// waiting until max_wait_ms, so nobody is skipped for good).
///
/// Only agents logged in to `queue` are picked. `cursor` is the queue's round-robin
/// position, advanced on a pick.
pub fn pick_agents(
    strategy: Strategy,
    queue: &str,
    queue_agents: &[String],
    board: &AgentBoard,
    tried: &HashSet<String>,
    cursor: &mut usize,
    now: Instant,
) -> Vec<String> {
    // Each agent of the queue is looked up once (this runs for every call, over every
    // agent of the queue). `free(i)`: the agent at position i if it can be rung now,
    // with whether it was tried already for this call.
    let is_tried = |id: &String| !tried.is_empty() && tried.contains(id);
    let free = |i: usize| {
        let id = &queue_agents[i];
        board
            .get(id)
            .filter(|a| a.is_available_for(queue, now))
            .map(|a| (a, is_tried(id)))
    };
    match strategy {
        Strategy::RingAll => {
            let available: Vec<(&String, bool)> = (0..queue_agents.len())
                .filter_map(|i| free(i).map(|(_, t)| (&queue_agents[i], t)))
                .collect();
            let any_untried = available.iter().any(|(_, t)| !t);
            available
                .into_iter()
                .filter(|(_, t)| !any_untried || !t)
                .map(|(id, _)| id.clone())
                .collect()
        }
        // The queue's members straight off the board (in the queue's order, so ties go
        // to the earlier agent as listed), with no lookup by id. Untried agents sort
        // first, so the pick is among them while there are any.
        Strategy::LongestIdle => board
            .members(queue)
            .filter(|a| a.is_available_for(queue, now))
            .min_by_key(|a| (is_tried(&a.id), a.idle_since))
            .map(|a| a.id.clone())
            .into_iter()
            .collect(),
        Strategy::FewestCalls => board
            .members(queue)
            .filter(|a| a.is_available_for(queue, now))
            .min_by_key(|a| (is_tried(&a.id), a.calls_answered, a.idle_since))
            .map(|a| a.id.clone())
            .into_iter()
            .collect(),
        Strategy::RoundRobin => {
            let n = queue_agents.len();
            // The first untried agent from the cursor on; failing that the first tried one.
            let mut first_tried = None;
            for step in 0..n {
                let i = (*cursor + step) % n;
                match free(i) {
                    Some((_, false)) => {
                        *cursor = (i + 1) % n;
                        return vec![queue_agents[i].clone()];
                    }
                    Some((_, true)) if first_tried.is_none() => first_tried = Some(i),
                    _ => {}
                }
            }
            match first_tried {
                Some(i) => {
                    *cursor = (i + 1) % n;
                    vec![queue_agents[i].clone()]
                }
                None => Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn board(now: Instant) -> AgentBoard {
        let mut b = AgentBoard::new(["a", "b", "c"].iter().map(|s| (s.to_string(), true)), now);
        for id in ["a", "b", "c"] {
            b.join_queue(id, "q");
        }
        b
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn longest_idle_and_fewest_calls() {
        let now = Instant::now();
        let mut b = board(now);
        let agents = ids(&["a", "b", "c"]);
        b.answered("a");
        tokio::time::advance(Duration::from_secs(1)).await;
        let later = Instant::now();
        b.call_ended("a", later, Duration::ZERO);
        let mut cursor = 0;
        let tried = HashSet::new();
        let picked = pick_agents(
            Strategy::LongestIdle,
            "q",
            &agents,
            &b,
            &tried,
            &mut cursor,
            later,
        );
        assert_eq!(
            picked,
            ids(&["b"]),
            "b and c idle since start; a since its call"
        );
        let picked = pick_agents(
            Strategy::FewestCalls,
            "q",
            &agents,
            &b,
            &tried,
            &mut cursor,
            later,
        );
        assert_ne!(picked, ids(&["a"]));
    }

    #[tokio::test(start_paused = true)]
    async fn ring_all_round_robin_tried_and_wrap_up() {
        let now = Instant::now();
        let mut b = board(now);
        let agents = ids(&["a", "b", "c"]);
        let mut cursor = 0;
        let mut tried = HashSet::new();
        assert_eq!(
            pick_agents(
                Strategy::RingAll,
                "q",
                &agents,
                &b,
                &tried,
                &mut cursor,
                now
            ),
            agents
        );
        assert_eq!(
            pick_agents(
                Strategy::RoundRobin,
                "q",
                &agents,
                &b,
                &tried,
                &mut cursor,
                now
            ),
            ids(&["a"])
        );
        assert_eq!(
            pick_agents(
                Strategy::RoundRobin,
                "q",
                &agents,
                &b,
                &tried,
                &mut cursor,
                now
            ),
            ids(&["b"])
        );
        tried.insert("c".to_string());
        assert_eq!(
            pick_agents(
                Strategy::RoundRobin,
                "q",
                &agents,
                &b,
                &tried,
                &mut cursor,
                now
            ),
            ids(&["a"])
        );
        // Wrap-up keeps an agent out until it ends.
        b.answered("a");
        b.call_ended("a", now, Duration::from_secs(5));
        b.ringing("b");
        assert_eq!(
            pick_agents(
                Strategy::RingAll,
                "q",
                &agents,
                &b,
                &HashSet::new(),
                &mut cursor,
                now
            ),
            ids(&["c"])
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        let picked = pick_agents(
            Strategy::RingAll,
            "q",
            &agents,
            &b,
            &HashSet::new(),
            &mut cursor,
            Instant::now(),
        );
        assert_eq!(picked, ids(&["a", "c"]));
    }

    #[tokio::test(start_paused = true)]
    async fn busy_agent_backs_off_until_retry() {
        let now = Instant::now();
        let mut b = board(now);
        b.ringing("a");
        b.attempt_failed("a", false, 3);
        b.back_off("a", now + Duration::from_secs(5));
        assert!(!b.is_available("a", now));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.is_available("a", Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn auto_pause_after_misses() {
        let now = Instant::now();
        let mut b = board(now);
        for _ in 0..3 {
            b.ringing("a");
            b.attempt_failed("a", true, 3);
        }
        assert!(!b.is_available("a", now));
        assert_eq!(
            b.get("a").unwrap().pause_reason.as_deref(),
            Some("auto: 3 ring-no-answers")
        );
        b.set_paused("a", None).unwrap();
        assert!(b.is_available("a", now));
    }

    #[tokio::test(start_paused = true)]
    async fn logged_out_and_paused_agents_are_not_picked() {
        let now = Instant::now();
        let mut b = board(now);
        let agents = ids(&["a", "b", "c"]);
        let mut cursor = 0;
        let none = HashSet::new();
        b.set_logged_in("a", "q", false).unwrap();
        b.set_paused("b", Some("lunch".into())).unwrap();
        let pick = |b: &AgentBoard, cursor: &mut usize| {
            pick_agents(Strategy::RingAll, "q", &agents, b, &none, cursor, now)
        };
        assert_eq!(pick(&b, &mut cursor), ids(&["c"]));
        // Logged out of "q" only: "a" is still rung for another queue it is in.
        b.join_queue("a", "other");
        assert_eq!(
            pick_agents(
                Strategy::RingAll,
                "other",
                &agents,
                &b,
                &none,
                &mut cursor,
                now
            ),
            ids(&["a"])
        );
        b.set_logged_in("a", "q", true).unwrap();
        b.set_paused("b", None).unwrap();
        assert_eq!(pick(&b, &mut cursor), agents);
        for strategy in [
            Strategy::RoundRobin,
            Strategy::LongestIdle,
            Strategy::FewestCalls,
        ] {
            b.set_logged_in("a", "q", false).unwrap();
            b.set_logged_in("b", "q", false).unwrap();
            assert_eq!(
                pick_agents(strategy, "q", &agents, &b, &none, &mut cursor, now),
                ids(&["c"]),
                "{strategy:?}"
            );
        }
    }
}
