//! Routing strategies: which agents of a queue to ring next for a call. Pure functions
//! over the agents' board.

use super::agents::{Agent, AgentBoard};
use crate::config::Strategy;
use std::collections::HashSet;
use tokio::time::Instant;

/// Picks the agents to ring now. Agents not yet tried for this call come first; once
/// every available agent has been tried, tried ones are rung again (the caller keeps
/// waiting until max_wait_ms, so nobody is skipped for good).
///
/// Only agents logged in to `queue` are picked. The queue's members come straight off
/// the board (so ties go to the earlier agent as listed), with no lookup by id: this
/// runs for every call. Longest-idle and fewest-calls walk the board's ordered free
/// members and stop at the first pick; ring-all and round-robin walk the members in the
/// queue's order. `cursor` is the queue's round-robin position, advanced on a pick.
pub fn pick_agents(
    strategy: Strategy,
    queue: &str,
    board: &AgentBoard,
    tried: &HashSet<String>,
    cursor: &mut usize,
    now: Instant,
) -> Vec<String> {
    let is_tried = |a: &Agent| !tried.is_empty() && tried.contains(&a.id);
    let free = |a: &&Agent| a.is_available_for(queue, now);
    let members = board.members(queue);
    match strategy {
        Strategy::RingAll => {
            let available: Vec<&Agent> = members.filter(free).collect();
            let any_untried = available.iter().any(|a| !is_tried(a));
            available
                .into_iter()
                .filter(|a| !any_untried || !is_tried(a))
                .map(|a| a.id.clone())
                .collect()
        }
        // The board keeps the free members in each order: the pick is the first one
        // untried, else the first one.
        Strategy::LongestIdle => first_untried(board.by_idle(queue).filter(free), |a| is_tried(a))
            .map(|a| vec![a.id.clone()])
            .unwrap_or_default(),
        Strategy::FewestCalls => first_untried(board.by_calls(queue).filter(free), |a| is_tried(a))
            .map(|a| vec![a.id.clone()])
            .unwrap_or_default(),
        Strategy::RoundRobin => {
            let n = members.len();
            if n == 0 {
                return Vec::new();
            }
            // The first untried agent from the cursor on; failing that the first tried one.
            let start = *cursor % n;
            let in_turn = members
                .clone()
                .enumerate()
                .skip(start)
                .chain(members.enumerate().take(start))
                .filter(|(_, a)| free(a));
            match first_untried(in_turn, |(_, a)| is_tried(a)) {
                Some((i, a)) => {
                    *cursor = (i + 1) % n;
                    vec![a.id.clone()]
                }
                None => Vec::new(),
            }
        }
    }
}

/// The first candidate not tried yet for this call; failing that, the first one.
fn first_untried<T>(
    candidates: impl Iterator<Item = T>,
    is_tried: impl Fn(&T) -> bool,
) -> Option<T> {
    let mut first_tried = None;
    for candidate in candidates {
        if !is_tried(&candidate) {
            return Some(candidate);
        }
        first_tried.get_or_insert(candidate);
    }
    first_tried
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
        b.answered("a");
        tokio::time::advance(Duration::from_secs(1)).await;
        let later = Instant::now();
        b.call_ended("a", later, Duration::ZERO);
        let mut cursor = 0;
        let tried = HashSet::new();
        let picked = pick_agents(Strategy::LongestIdle, "q", &b, &tried, &mut cursor, later);
        assert_eq!(
            picked,
            ids(&["b"]),
            "b and c idle since start; a since its call"
        );
        let picked = pick_agents(Strategy::FewestCalls, "q", &b, &tried, &mut cursor, later);
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
            pick_agents(Strategy::RingAll, "q", &b, &tried, &mut cursor, now),
            agents
        );
        assert_eq!(
            pick_agents(Strategy::RoundRobin, "q", &b, &tried, &mut cursor, now),
            ids(&["a"])
        );
        assert_eq!(
            pick_agents(Strategy::RoundRobin, "q", &b, &tried, &mut cursor, now),
            ids(&["b"])
        );
        tried.insert("c".to_string());
        assert_eq!(
            pick_agents(Strategy::RoundRobin, "q", &b, &tried, &mut cursor, now),
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
            pick_agents(Strategy::RingAll, "q", b, &none, cursor, now)
        };
        assert_eq!(pick(&b, &mut cursor), ids(&["c"]));
        // Logged out of "q" only: "a" is still rung for another queue it is in.
        b.join_queue("a", "other");
        assert_eq!(
            pick_agents(Strategy::RingAll, "other", &b, &none, &mut cursor, now),
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
                pick_agents(strategy, "q", &b, &none, &mut cursor, now),
                ids(&["c"]),
                "{strategy:?}"
            );
        }
    }
}
