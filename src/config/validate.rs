//! [`Config::validate`]: every problem that needs the whole configuration.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{ip_matches, Config, ConfigProblem};
use crate::sip::endpoint::target_for_uri;
use crate::sip::transport::{ListenSpec, Protocol};
use crate::sip::Uri;

/// Longest `[sip] auth_failure_window_s` and `auth_lockout_s`: a week.
const MAX_AUTH_SECS: u64 = 7 * 24 * 3600;

/// The largest `[sip] max_transactions` accepted: each transaction keeps its request
/// (typically 1–2 KiB, at most 64 KiB), and up to 8 times this many are held with the
/// answered ones lingering for retransmissions.
const MAX_TRANSACTIONS: usize = 100_000;

impl Config {
    /// Every problem, each naming its key path, e.g. `queues[0].agents: unknown agent
    /// "9999"`. Empty when the configuration is usable.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        self.check_sip(&mut problems);
        self.check_media(&mut problems);
        self.check_http(&mut problems);
        self.check_store(&mut problems);
        self.check_rings(&mut problems);
        self.check_daemon(&mut problems);
        self.check_agents(&mut problems);
        self.check_queues(&mut problems);
        self.check_tickets(&mut problems);
        for (key, message) in crate::events::webhooks::validate(&self.webhooks) {
            problems.push(ConfigProblem::new(key, message));
        }
        for (key, message) in self.qa.validate() {
            problems.push(ConfigProblem::new(format!("qa.{key}"), message));
        }
        for (key, message) in self.reports.validate() {
            problems.push(ConfigProblem::new(format!("reports.{key}"), message));
        }
        self.check_auth(&mut problems);
        self.check_tls(&mut problems);
        problems
    }

    fn check_auth(&self, problems: &mut Vec<ConfigProblem>) {
        let auth = &self.auth;
        if !(1..=43_200).contains(&auth.session_ttl_minutes) {
            problems.push(ConfigProblem::new(
                "auth.session_ttl_minutes",
                "must be from 1 to 43200 (30 days)",
            ));
        }
        if auth.login_attempts_per_minute == 0 {
            problems.push(ConfigProblem::new(
                "auth.login_attempts_per_minute",
                "must be at least 1",
            ));
        }
    }

    fn check_callbacks(&self, problems: &mut Vec<ConfigProblem>) {
        let callbacks = &self.callbacks;
        if callbacks.max_digits == 0 || callbacks.max_digits > 32 {
            problems.push(ConfigProblem::new("callbacks.max_digits", "1 to 32"));
        }
        for (key, list) in [
            ("allowed_prefixes", &callbacks.allowed_prefixes),
            ("denied_prefixes", &callbacks.denied_prefixes),
        ] {
            for (i, prefix) in list.iter().enumerate() {
                let ok = !prefix.is_empty()
                    && prefix
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'));
                if !ok {
                    problems.push(ConfigProblem::new(
                        format!("callbacks.{key}[{i}]"),
                        format!("{prefix:?}: digits, +, * and # only"),
                    ));
                }
            }
        }
    }

    fn check_tickets(&self, problems: &mut Vec<ConfigProblem>) {
        self.check_callbacks(problems);
        let tickets = &self.tickets;
        if tickets.areas.is_empty() {
            problems.push(ConfigProblem::new("tickets.areas", "must not be empty"));
        }
        if tickets.inquiry_types.is_empty() {
            problems.push(ConfigProblem::new(
                "tickets.inquiry_types",
                "must not be empty",
            ));
        }
        let prefix_ok = !tickets.id_prefix.is_empty()
            && tickets.id_prefix.len() <= 8
            && tickets.id_prefix.chars().all(|c| c.is_ascii_alphanumeric());
        if !prefix_ok {
            problems.push(ConfigProblem::new(
                "tickets.id_prefix",
                "1 to 8 ASCII letters or digits, e.g. \"T\"",
            ));
        }
        for (i, rule) in tickets.dispatch.iter().enumerate() {
            let key = format!("tickets.dispatch[{i}]");
            if rule.team.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("{key}.team"),
                    "must not be empty",
                ));
            }
            if let Some(area) = &rule.area {
                if !tickets.areas.contains(area) {
                    problems.push(ConfigProblem::new(
                        format!("{key}.area"),
                        format!("{area:?} is not in tickets.areas"),
                    ));
                }
            }
            if let Some(inquiry) = &rule.inquiry_type {
                if !tickets.inquiry_types.contains(inquiry) {
                    problems.push(ConfigProblem::new(
                        format!("{key}.inquiry_type"),
                        format!("{inquiry:?} is not in tickets.inquiry_types"),
                    ));
                }
            }
            if let Some(kind) = &rule.kind {
                if crate::tickets::TicketKind::parse(kind).is_none() {
                    problems.push(ConfigProblem::new(
                        format!("{key}.kind"),
                        "consultation, query, problem, complaint or order",
                    ));
                }
            }
        }
        if tickets.reopen_score > 5 {
            problems.push(ConfigProblem::new(
                "tickets.reopen_score",
                "survey scores are 1-5 (0 = never reopen)",
            ));
        }
        if let Err(list) = self.calendar.compile() {
            for (key, message) in list {
                problems.push(ConfigProblem::new(format!("calendar.{key}"), message));
            }
        }
        for (key, message) in self.sla.validate() {
            problems.push(ConfigProblem::new(format!("sla.{key}"), message));
        }
        let mut names = HashSet::new();
        for (i, trunk) in self.trunks.iter().enumerate() {
            if !names.insert(trunk.name.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("trunks[{i}].name"),
                    format!("trunk {:?} is defined twice", trunk.name),
                ));
            }
            if trunk.socket_addr().is_none() {
                problems.push(ConfigProblem::new(
                    format!("trunks[{i}].address"),
                    format!(
                        "{:?} is not IP:PORT or IP (host names are not resolved)",
                        trunk.address
                    ),
                ));
            }
            match trunk.protocol() {
                None => problems.push(ConfigProblem::new(
                    format!("trunks[{i}].transport"),
                    "udp, tcp or tls",
                )),
                Some(Protocol::Tls) if !self.sip_tls_listen() => problems.push(ConfigProblem::new(
                    format!("trunks[{i}].transport"),
                    "tls needs a tls: entry in sip.listen (the trunk answers to our TLS Contact)",
                )),
                Some(_) => {}
            }
            if trunk.username.is_some() != trunk.password.is_some() {
                problems.push(ConfigProblem::new(
                    format!("trunks[{i}]"),
                    "username and password go together",
                ));
            }
        }
    }

    fn check_sip(&self, problems: &mut Vec<ConfigProblem>) {
        for (i, peer) in self.sip.trusted_peers.iter().enumerate() {
            if ip_matches(peer, IpAddr::from([0, 0, 0, 0])).is_none() {
                problems.push(ConfigProblem::new(
                    format!("sip.trusted_peers[{i}]"),
                    format!("{peer:?} is not an IP address or CIDR block"),
                ));
            }
        }
        if self.sip.listen.is_empty() {
            problems.push(ConfigProblem::new(
                "sip.listen",
                "at least one entry is needed, e.g. \"udp:127.0.0.1:5060\"",
            ));
        }
        for entry in &self.sip.listen {
            if let Err(message) = entry.parse::<ListenSpec>() {
                problems.push(ConfigProblem::new("sip.listen", message));
            }
        }
        if self.sip.realm.trim().is_empty() {
            problems.push(ConfigProblem::new("sip.realm", "must not be empty"));
        }
        if self.sip.t1_ms == 0 {
            problems.push(ConfigProblem::new("sip.t1_ms", "must be greater than 0"));
        }
        for (key, value) in [
            ("sip.max_transactions", self.sip.max_transactions as u64),
            ("sip.source_rps", u64::from(self.sip.source_rps)),
            (
                "sip.trusted_source_rps",
                u64::from(self.sip.trusted_source_rps),
            ),
            (
                "sip.source_pending_invites",
                u64::from(self.sip.source_pending_invites),
            ),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::new(key, "must be greater than 0"));
            }
        }
        if self.sip.max_transactions > MAX_TRANSACTIONS {
            problems.push(ConfigProblem::new(
                "sip.max_transactions",
                format!("at most {MAX_TRANSACTIONS} (each holds a request in memory)"),
            ));
        }
        if self.sip.max_register_expires == 0 {
            problems.push(ConfigProblem::new(
                "sip.max_register_expires",
                "must be greater than 0",
            ));
        }
        if self.sip.auth_max_failures == 0 {
            problems.push(ConfigProblem::new(
                "sip.auth_max_failures",
                "must be at least 1 (wrong passwords that lock a source or user out)",
            ));
        }
        for (key, secs) in [
            ("sip.auth_failure_window_s", self.sip.auth_failure_window_s),
            ("sip.auth_lockout_s", self.sip.auth_lockout_s),
        ] {
            if secs == 0 || secs > MAX_AUTH_SECS {
                problems.push(ConfigProblem::new(
                    key,
                    format!("must be between 1 and {MAX_AUTH_SECS} seconds (a week)"),
                ));
            }
        }
    }

    fn check_media(&self, problems: &mut Vec<ConfigProblem>) {
        let [first, last] = self.media.rtp_ports;
        if first == 0 {
            problems.push(ConfigProblem::new(
                "media.rtp_ports",
                "port 0 is not a port (use e.g. [20000, 29999])",
            ));
        } else if first >= last {
            problems.push(ConfigProblem::new(
                "media.rtp_ports",
                format!("first port {first} must be lower than last port {last}"),
            ));
        } else {
            // RTP takes an even port and leaves the odd one above it for RTCP, so the
            // range must hold at least one such pair.
            let first_even = u32::from(first) + u32::from(first) % 2;
            if first_even + 1 > u32::from(last) {
                problems.push(ConfigProblem::new(
                    "media.rtp_ports",
                    format!("[{first}, {last}] holds no even/odd port pair for RTP/RTCP"),
                ));
            }
        }
    }

    fn check_http(&self, problems: &mut Vec<ConfigProblem>) {
        let mut names = HashSet::new();
        for (i, token) in self.http.tokens.iter().enumerate() {
            if token.name.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("http.tokens[{i}].name"),
                    "must not be empty",
                ));
            } else if !names.insert(token.name.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("http.tokens[{i}].name"),
                    format!("token name {:?} is used twice", token.name),
                ));
            }
            let hash = &token.token_sha256;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push(ConfigProblem::new(
                    format!("http.tokens[{i}].token_sha256"),
                    "must be 64 hex characters (e.g. the output of `printf %s TOKEN | sha256sum`)",
                ));
            }
        }
    }

    fn check_store(&self, problems: &mut Vec<ConfigProblem>) {
        let url = self.store.database.as_str();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if postgres {
            if url
                .split_once("://")
                .is_none_or(|(_, rest)| rest.is_empty())
            {
                problems.push(ConfigProblem::new(
                    "store.database",
                    "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                ));
            }
        } else if !url.starts_with("sqlite:") || url.len() <= "sqlite:".len() {
            problems.push(ConfigProblem::new(
                "store.database",
                format!(
                    "{:?}: expected sqlite://FILE, sqlite::memory: or \
                     postgres://USER@HOST/DATABASE",
                    crate::store::redact_url(url)
                ),
            ));
        }
        if self.store.max_connections == Some(0) {
            problems.push(ConfigProblem::new(
                "store.max_connections",
                "must be at least 1",
            ));
        }
        if self
            .store
            .spool
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            problems.push(ConfigProblem::new(
                "store.spool",
                "must not be empty (leave it out for `spool` beside the recordings root)",
            ));
        }
        if self.store.recordings.as_os_str().is_empty() {
            problems.push(ConfigProblem::new("store.recordings", "must not be empty"));
        }
    }

    fn check_rings(&self, problems: &mut Vec<ConfigProblem>) {
        let rings = &self.rings;
        if rings.cadence_ms == 0 {
            problems.push(ConfigProblem::new(
                "rings.cadence_ms",
                "must be greater than 0",
            ));
        }
        if rings.target == 0 {
            problems.push(ConfigProblem::new("rings.target", "must be at least 1"));
        }
        if rings.limit < rings.target {
            problems.push(ConfigProblem::new(
                "rings.limit",
                format!(
                    "limit {} is lower than target {}",
                    rings.limit, rings.target
                ),
            ));
        }
    }

    fn check_daemon(&self, problems: &mut Vec<ConfigProblem>) {
        if self.daemon.node_id.trim().is_empty() {
            problems.push(ConfigProblem::new("daemon.node_id", "must not be empty"));
        }
        if self.daemon.max_calls == 0 {
            problems.push(ConfigProblem::new(
                "daemon.max_calls",
                "must be greater than 0",
            ));
        }
    }

    fn check_agents(&self, problems: &mut Vec<ConfigProblem>) {
        let mut ids = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if agent.id.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("agents[{i}].id"),
                    "must not be empty",
                ));
            } else if !ids.insert(agent.id.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("agents[{i}].id"),
                    format!("agent id {:?} is used twice", agent.id),
                ));
            }
            if agent.password.is_none() && agent.contact.is_none() {
                problems.push(ConfigProblem::new(
                    format!("agents[{i}]"),
                    format!(
                        "agent {:?} needs a password (to register) or a contact, or both",
                        agent.id
                    ),
                ));
            }
            if let Some(contact) = &agent.contact {
                if let Some(message) = contact_problem(contact, self.sip_tls_listen()) {
                    problems.push(ConfigProblem::new(format!("agents[{i}].contact"), message));
                }
            }
        }
    }

    fn check_queues(&self, problems: &mut Vec<ConfigProblem>) {
        let agent_ids: HashSet<&str> = self.agents.iter().map(|a| a.id.as_str()).collect();
        let mut queue_index: HashMap<&str, usize> = HashMap::new();
        for (i, queue) in self.queues.iter().enumerate() {
            if queue.name.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("queues[{i}].name"),
                    "must not be empty",
                ));
            } else if queue_index.contains_key(queue.name.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("queues[{i}].name"),
                    format!("queue name {:?} is used twice", queue.name),
                ));
            } else {
                queue_index.insert(queue.name.as_str(), i);
            }
        }
        let mut number_owner: HashMap<&str, &str> = HashMap::new();
        for (i, queue) in self.queues.iter().enumerate() {
            for number in &queue.numbers {
                if number.trim().is_empty() {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].numbers"),
                        "a number must not be empty",
                    ));
                } else if let Some(owner) = number_owner.insert(number, &queue.name) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].numbers"),
                        format!("number {number:?} is already routed to queue {owner:?}"),
                    ));
                }
            }
            let mut listed = HashSet::new();
            for agent in &queue.agents {
                if !agent_ids.contains(agent.as_str()) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].agents"),
                        format!("unknown agent {agent:?}"),
                    ));
                } else if !listed.insert(agent.as_str()) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].agents"),
                        format!("agent {agent:?} is listed twice"),
                    ));
                }
            }
            if queue.ring_timeout_ms == 0 {
                problems.push(ConfigProblem::new(
                    format!("queues[{i}].ring_timeout_ms"),
                    "must be greater than 0",
                ));
            }
            if let Some(overflow) = &queue.overflow {
                if overflow == &queue.name {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].overflow"),
                        "a queue cannot overflow into itself",
                    ));
                } else if !queue_index.contains_key(overflow.as_str()) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].overflow"),
                        format!("unknown queue {overflow:?}"),
                    ));
                } else if let Some(cycle) = self.overflow_cycle(i, &queue_index) {
                    problems.push(ConfigProblem::new(
                        format!("queues[{i}].overflow"),
                        format!("overflow cycle: {}", cycle.join(" -> ")),
                    ));
                }
            }
        }
    }

    /// Follows overflows from queue `start`; if they come back to it, the names on the
    /// way round. A call caught in a cycle would bounce between queues for ever.
    fn overflow_cycle(
        &self,
        start: usize,
        queue_index: &HashMap<&str, usize>,
    ) -> Option<Vec<String>> {
        let mut path = vec![self.queues[start].name.clone()];
        let mut seen = HashSet::from([start]);
        let mut at = start;
        while let Some(next) = self.queues[at]
            .overflow
            .as_deref()
            .and_then(|name| queue_index.get(name).copied())
        {
            path.push(self.queues[next].name.clone());
            if next == start {
                return Some(path);
            }
            if !seen.insert(next) {
                // A cycle further on that does not include `start`: reported there.
                return None;
            }
            at = next;
        }
        None
    }
}

/// Why a fixed agent contact cannot be rung, if it cannot. A contact reached over TLS
/// (`sips:` or `;transport=tls`) needs a `tls:` listener: the agent's phone sends its
/// in-dialog requests to our TLS Contact.
fn contact_problem(contact: &str, tls_listen: bool) -> Option<String> {
    match Uri::parse(contact) {
        Ok(uri @ Uri::Sip(_)) => {
            let tls = target_for_uri(&uri).is_some_and(|t| t.protocol == Protocol::Tls);
            (tls && !tls_listen).then(|| {
                format!("{contact:?} is reached over TLS, which needs a tls: entry in sip.listen")
            })
        }
        Ok(other) => Some(format!(
            "{contact:?}: expected a sip: or sips: URI, not {}:",
            other.scheme()
        )),
        Err(e) => Some(format!("{contact:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_cycles_are_found() {
        let mut config = Config::embedded();
        let mut second = config.queues[0].clone();
        second.name = "complaints".into();
        second.numbers = vec!["4008005678".into()];
        second.overflow = Some("consult".into());
        config.queues[0].overflow = Some("complaints".into());
        config.queues.push(second);
        let problems = config.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0]
            .to_string()
            .contains("queues[0].overflow: overflow cycle: consult -> complaints -> consult"));
    }

    #[test]
    fn an_overflow_chain_without_cycle_is_fine() {
        let mut config = Config::embedded();
        let mut second = config.queues[0].clone();
        second.name = "complaints".into();
        second.numbers = vec![];
        config.queues[0].overflow = Some("complaints".into());
        config.queues.push(second);
        assert_eq!(config.validate(), vec![]);
    }

    #[test]
    fn rtp_range_needs_an_even_odd_pair() {
        let mut config = Config::embedded();
        config.media.rtp_ports = [20001, 20002];
        assert_eq!(config.validate()[0].key, "media.rtp_ports");
        config.media.rtp_ports = [20001, 20003];
        assert_eq!(config.validate(), vec![]);
        config.media.rtp_ports = [20000, 20000];
        assert_eq!(config.validate()[0].key, "media.rtp_ports");
    }

    #[test]
    fn contacts_must_be_sip_uris_and_tls_ones_need_a_tls_listener() {
        assert_eq!(contact_problem("sip:1001@127.0.0.1:5071", false), None);
        assert!(contact_problem("tel:+861012345", true).is_some());
        assert!(contact_problem("1001@127.0.0.1", true).is_some());
        for tls in [
            "sips:1001@127.0.0.1",
            "sip:1001@127.0.0.1:5071;transport=tls",
        ] {
            let problem = contact_problem(tls, false).expect(tls);
            assert!(problem.contains("tls: entry"), "{problem}");
            assert_eq!(contact_problem(tls, true), None);
        }
    }

    #[test]
    fn store_urls_pool_size_and_spool_are_checked() {
        let mut config = Config::embedded();
        config.store.database = "postgres://tr:secret@db.example:5432/threering".into();
        config.store.max_connections = Some(20);
        config.store.spool = Some("/var/spool/threering".into());
        assert_eq!(config.validate(), Vec::new());
        config.store.database = "mysql://tr:secret@db/threering".into();
        config.store.max_connections = Some(0);
        config.store.spool = Some("".into());
        let problems = config.validate();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["store.database", "store.max_connections", "store.spool"]
        );
        assert!(problems[0].message.contains("postgres://"));
        assert!(
            !problems[0].message.contains("secret"),
            "{}",
            problems[0].message
        );
        config.store.database = "postgres://".into();
        assert_eq!(config.validate()[0].key, "store.database");
    }

    #[test]
    fn the_spool_defaults_to_beside_the_recordings() {
        let mut config = Config::embedded();
        config.store.recordings = "/var/lib/threering/recordings".into();
        assert_eq!(
            config.store.spool_dir(),
            std::path::Path::new("/var/lib/threering/spool")
        );
        config.store.recordings = "recordings".into();
        assert_eq!(config.store.spool_dir(), std::path::Path::new("spool"));
        config.store.spool = Some("/elsewhere".into());
        assert_eq!(config.store.spool_dir(), std::path::Path::new("/elsewhere"));
    }

    #[test]
    fn overload_limits_must_be_positive_and_bounded() {
        let mut config = Config::embedded();
        config.sip.source_rps = 0;
        config.sip.source_pending_invites = 0;
        config.sip.max_transactions = MAX_TRANSACTIONS + 1;
        let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "sip.source_rps",
                "sip.source_pending_invites",
                "sip.max_transactions"
            ]
        );
        config.sip.trusted_source_rps = 0;
        config.sip.max_transactions = 0;
        let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
        assert!(
            keys.contains(&"sip.trusted_source_rps".to_string()),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"sip.max_transactions".to_string()),
            "{keys:?}"
        );
    }

    #[test]
    fn unknown_listen_protocols_are_refused() {
        let mut config = Config::embedded();
        config.sip.listen.push("sctp:127.0.0.1:5061".into());
        let problems = config.validate();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "sip.listen");
        assert!(
            problems[0].message.contains("udp, tcp or tls"),
            "{problems:?}"
        );
    }
}
