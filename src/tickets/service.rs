//! Tickets as the API and call control use them: load, apply a rule from `ticket`, save
//! (retrying when another writer got there first). Also what a saved call record means
//! for its tickets: a reply call that reached the customer replies the ticket, and its
//! survey score becomes the ticket's satisfaction (a low one reopens it).

use std::sync::Arc;

use super::ticket::{self, NewTicket, Refused, Rules};
use super::{HistoryEntry, LinkRole, Ticket};
use crate::call::record::{CallOutcome, CallRecord};
use crate::store::{Store, StoreError};

/// Tries at a change when other writers keep getting in first.
const SAVE_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("ticket {0:?} not found")]
    NotFound(String),
    #[error("{}", refused_text(.0))]
    Refused(Refused),
    #[error("ticket {0:?} is being changed by others; try again")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused_text(refused: &Refused) -> String {
    match refused {
        Refused::Invalid(problems) => problems.join("; "),
        Refused::Conflict(message) => message.clone(),
    }
}

/// The ticket service: the store and the rules; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tickets {
    pub store: Store,
    pub rules: Arc<Rules>,
    /// Where `ticket.updated` events go after every saved change (none: not published).
    pub events: Option<crate::events::EventBus>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Tickets {
    pub fn new(store: Store, rules: Rules) -> Tickets {
        Tickets {
            store,
            rules: Arc::new(rules),
            events: None,
        }
    }

    /// The same service, publishing `ticket.updated` on `bus` after every saved change.
    pub fn with_events(mut self, bus: crate::events::EventBus) -> Tickets {
        self.events = Some(bus);
        self
    }

    /// `ticket.updated`: `{"ticket_id", "status", "survey_score", "action", "actions"}`;
    /// `actions` are the history actions of this change, `action` the first of them.
    fn publish(&self, ticket: &Ticket, history: &[HistoryEntry]) {
        let Some(bus) = &self.events else {
            return;
        };
        let actions: Vec<&str> = history.iter().map(|h| h.action.as_str()).collect();
        bus.publish(
            crate::events::TICKET_UPDATED,
            serde_json::json!({
                "ticket_id": ticket.id,
                "status": ticket.status.as_str(),
                "survey_score": ticket.survey_score,
                "action": actions.first().copied().unwrap_or("update"),
                "actions": actions,
            }),
        );
    }

    pub async fn create(&self, input: &NewTicket, author: &str) -> Result<Ticket, TicketError> {
        let now = now_ms();
        let (ticket, history) =
            ticket::create(&self.rules, input, author, now).map_err(TicketError::Refused)?;
        let day = self.rules.local_day(now);
        let mut created = self
            .store
            .create_ticket(ticket, &history, &self.rules.id_prefix, day)
            .await?;
        self.publish(&created, &history);
        created.history = Some(history);
        Ok(created)
    }

    pub async fn get(&self, id: &str) -> Result<Ticket, TicketError> {
        self.store
            .get_ticket(id, now_ms())
            .await?
            .ok_or_else(|| TicketError::NotFound(id.to_owned()))
    }

    /// Reads the ticket, applies `change`, and saves it with the history `change`
    /// returns; read again and retried if another writer saved in between. Returns the
    /// ticket as saved (with its whole history).
    pub async fn change<F>(&self, id: &str, mut change: F) -> Result<Ticket, TicketError>
    where
        F: FnMut(&Rules, &mut Ticket, i64) -> Result<Vec<HistoryEntry>, Refused>,
    {
        for _ in 0..SAVE_ATTEMPTS {
            let mut ticket = self.get(id).await?;
            let now = now_ms();
            let history = change(&self.rules, &mut ticket, now).map_err(TicketError::Refused)?;
            if history.is_empty() {
                return Ok(ticket);
            }
            if self.store.save_ticket(&ticket, &history).await? {
                let saved = self.get(id).await?;
                self.publish(&saved, &history);
                return Ok(saved);
            }
        }
        Err(TicketError::Busy(id.to_owned()))
    }

    /// Links a stored call; the ticket's history notes it. A reply call that was
    /// answered replies the ticket.
    pub async fn link(
        &self,
        id: &str,
        call_id: &str,
        role: LinkRole,
        author: &str,
    ) -> Result<Ticket, TicketError> {
        let ticket = self.get(id).await?;
        if ticket.archived_at.is_some() {
            return Err(TicketError::Refused(Refused::Conflict(format!(
                "ticket {id} is archived; it can no longer change"
            ))));
        }
        let now = now_ms();
        if !self.store.link_call(id, call_id, role, author, now).await? {
            return Err(TicketError::Refused(Refused::Invalid(vec![format!(
                "call_id: no call {call_id:?} in the store"
            )])));
        }
        let answered = role == LinkRole::Reply
            && self
                .store
                .get_call(call_id)
                .await?
                .is_some_and(|c| c.answered_at.is_some());
        let author = author.to_owned();
        let call = call_id.to_owned();
        self.change(id, |rules, ticket, now| {
            let mut history = vec![HistoryEntry::new(
                now,
                &author,
                "link",
                format!("call {call} linked as {}", role.as_str()),
            )];
            if answered {
                history.extend(ticket::reply_call_answered(rules, ticket, &call, now));
            }
            ticket.updated_at = now;
            Ok(history)
        })
        .await
    }

    /// What a saved call record means for the tickets it is a reply call of. Failures
    /// are logged: the call record itself is already safe.
    pub async fn on_call_saved(&self, call: &CallRecord) {
        if call.tickets.is_empty() && call.survey_score.is_none() {
            return;
        }
        let links = match self.store.tickets_of_call(&call.id).await {
            Ok(links) => links,
            Err(e) => {
                tracing::error!(call = %call.id, error = %e, "reading the call's tickets failed");
                return;
            }
        };
        for (ticket_id, role) in links {
            if role != LinkRole::Reply {
                continue;
            }
            let answered = call.answered_at.is_some() && call.outcome == CallOutcome::Answered;
            let score = call.survey_score;
            let result = self
                .change(&ticket_id, |rules, ticket, now| {
                    if ticket.archived_at.is_some() {
                        return Ok(Vec::new());
                    }
                    let mut history = Vec::new();
                    if answered {
                        history.extend(ticket::reply_call_answered(rules, ticket, &call.id, now));
                    }
                    if let Some(score) = score {
                        history.extend(ticket::record_survey(
                            rules,
                            ticket,
                            score,
                            None,
                            Some(&call.id),
                            "survey",
                            now,
                        )?);
                    }
                    Ok(history)
                })
                .await;
            match result {
                Ok(t) => {
                    tracing::info!(call = %call.id, ticket = %ticket_id, status = t.status.as_str(), survey = ?t.survey_score, "reply call applied to its ticket")
                }
                Err(TicketError::NotFound(_)) => {
                    tracing::warn!(call = %call.id, ticket = %ticket_id, "reply call linked to a ticket that does not exist")
                }
                Err(e) => {
                    tracing::error!(call = %call.id, ticket = %ticket_id, error = %e, "applying the reply call to its ticket failed")
                }
            }
        }
    }
}
