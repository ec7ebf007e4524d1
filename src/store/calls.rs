//! Call records: `calls`, their `call_attempts` and `call_tickets` links, written and read
//! as one aggregate ([`CallRecord`]).

use std::collections::HashMap;

use serde::de::value::StrDeserializer;
use serde::de::{DeserializeOwned, IntoDeserializer};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::sql::{flag, opt_flag, to_flag, to_opt_flag, Backend, SqlBuilder};
use super::{Store, StoreError};
use crate::call::record::{AgentAttempt, CallRecord, HangupSide, RecordingMeta};

/// Calls listed when the filter names no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most calls one list returns, whatever the filter asks.
pub const MAX_LIMIT: u32 = 1000;

/// Which calls [`Store::list_calls`] returns. Every field narrows the list; `None`
/// leaves it open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Calls started at or after this epoch ms.
    pub from: Option<i64>,
    /// Calls started before this epoch ms (half-open, so consecutive ranges such as one
    /// day after another never count a call twice).
    pub to: Option<i64>,
    /// Calls answered by this agent.
    pub agent: Option<String>,
    pub queue: Option<String>,
    /// Calls linked to this ticket.
    pub ticket: Option<String>,
    /// `true`: calls that broke the three-ring rule (`three_ring_ok = false`); `false`:
    /// calls that kept it. Calls never judged (not answered) match neither.
    pub violation: Option<bool>,
    /// Calls whose caller number contains this text.
    pub caller: Option<String>,
    /// Calls answered on this ring or later.
    pub min_rings: Option<i64>,
    /// Calls with a survey score of at most this.
    pub max_survey: Option<i64>,
    /// `true`: calls with a QA score; `false`: calls without one.
    pub qa_scored: Option<bool>,
    /// Default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`].
    pub limit: Option<u32>,
}

pub(super) const CALL_COLUMNS: &str = "id, sip_call_id, direction, caller, callee, queue, agent, \
     started_at, caller_ringing_at, answered_at, ended_at, caller_ring_ms, rings, \
     three_ring_ok, over_limit, outcome, hangup_side, talk_ms, recording_path, survey_score, \
     recording_sha256, recording_ms, recording_bytes, interrupted, paused_spans, survey_offered";

/// `INSERT INTO calls` up to the VALUES rows; [`UPSERT_CALL_TAIL`] follows them.
const UPSERT_CALL_HEAD: &str = "INSERT INTO calls (id, sip_call_id, direction, caller, callee, \
     queue, agent, started_at, caller_ringing_at, answered_at, ended_at, caller_ring_ms, \
     rings, three_ring_ok, over_limit, outcome, hangup_side, talk_ms, recording_path, \
     survey_score, recording_sha256, recording_ms, recording_bytes, interrupted, \
     paused_spans, survey_offered, updated_at) VALUES ";
const UPSERT_CALL_ROW: &str =
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const UPSERT_CALL_TAIL: &str =
    " ON CONFLICT (id) DO UPDATE SET sip_call_id = excluded.sip_call_id, \
     direction = excluded.direction, caller = excluded.caller, callee = excluded.callee, \
     queue = excluded.queue, agent = excluded.agent, started_at = excluded.started_at, \
     caller_ringing_at = excluded.caller_ringing_at, answered_at = excluded.answered_at, \
     ended_at = excluded.ended_at, caller_ring_ms = excluded.caller_ring_ms, \
     rings = excluded.rings, three_ring_ok = excluded.three_ring_ok, \
     over_limit = excluded.over_limit, outcome = excluded.outcome, \
     hangup_side = excluded.hangup_side, talk_ms = excluded.talk_ms, \
     recording_path = excluded.recording_path, survey_score = excluded.survey_score, \
     recording_sha256 = excluded.recording_sha256, recording_ms = excluded.recording_ms, \
     recording_bytes = excluded.recording_bytes, interrupted = excluded.interrupted, \
     paused_spans = excluded.paused_spans, survey_offered = excluded.survey_offered, \
     updated_at = excluded.updated_at";

const INSERT_ATTEMPT_HEAD: &str = "INSERT INTO call_attempts (call_id, seq, agent, invited_at, \
     ring_started_at, ended_at, ring_ms, outcome, sip_status) VALUES ";
const INSERT_ATTEMPT_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Rows per statement when records are written in a batch: 27 parameters a call row and
/// 9 an attempt row keep every statement under 999 parameters, the lowest limit any
/// SQLite build has.
const CALL_ROWS_PER_STATEMENT: usize = 32;
const ATTEMPT_ROWS_PER_STATEMENT: usize = 100;
const IDS_PER_STATEMENT: usize = 500;

/// `head` followed by `n` copies of `row`, comma-separated, then `tail`.
fn rows_sql(head: &str, row: &str, n: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + n * (row.len() + 2) + tail.len());
    sql.push_str(head);
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sql
}

impl Store {
    /// Writes the record: inserts the call or replaces the stored one, with its attempts
    /// and ticket links, in one transaction. Saving the same record twice leaves the same
    /// rows, so call control may save a call at each step (answer, end).
    pub async fn save_call(&self, call: &CallRecord) -> Result<(), StoreError> {
        self.save_calls(&[call]).await
    }

    /// Writes several records in one transaction, in order: the same rows as
    /// [`Store::save_call`] of each in turn (a later record of the same call id replaces
    /// an earlier one), with a few multi-row statements instead of several statements a
    /// record. All or none are written.
    pub async fn save_calls(&self, calls: &[&CallRecord]) -> Result<(), StoreError> {
        // The last record of each call id is the one that stays.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(calls.len());
        for (i, call) in calls.iter().enumerate() {
            last.insert(call.id.as_str(), i);
        }
        let latest: Vec<&CallRecord> = calls
            .iter()
            .enumerate()
            .filter(|(i, call)| last.get(call.id.as_str()) == Some(i))
            .map(|(_, call)| *call)
            .collect();
        if latest.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        upsert_call_rows(&mut tx, self.backend, &latest).await?;
        replace_attempts(&mut tx, self.backend, &latest).await?;
        for call in &latest {
            replace_tickets(&mut tx, self.backend, call).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        // One read transaction, so the call and its attempts come from the same snapshot.
        let mut tx = self.pool.begin().await?;
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = ?");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let mut calls = vec![call_from_row(&row)?];
        attach_children(&mut tx, self.backend, &mut calls).await?;
        tx.commit().await?;
        Ok(calls.pop())
    }

    /// Calls with a recording that was never closed (no checksum): what a crash left
    /// behind. The daemon repairs their files at start-up.
    pub async fn unfinished_recordings(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls \
             WHERE recording_path IS NOT NULL AND recording_sha256 IS NULL ORDER BY started_at"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let mut calls = rows
            .iter()
            .map(call_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        attach_children(&mut tx, self.backend, &mut calls).await?;
        tx.commit().await?;
        Ok(calls)
    }

    /// Callbacks (outbound calls) `agent` started at or after `since` (epoch ms).
    pub async fn callbacks_by(&self, agent: &str, since: i64) -> Result<i64, StoreError> {
        let sql = self.sql(
            "SELECT COUNT(*) FROM calls WHERE direction = 'outbound' AND caller = ? \
             AND started_at >= ?",
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(agent)
            .bind(since)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Calls matching `filter`, newest first.
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let mut query = SqlBuilder::new(format!("SELECT {CALL_COLUMNS} FROM calls WHERE 1 = 1"));
        if let Some(from) = filter.from {
            query.push(" AND started_at >= ").bind(from);
        }
        if let Some(to) = filter.to {
            query.push(" AND started_at < ").bind(to);
        }
        if let Some(agent) = &filter.agent {
            query.push(" AND agent = ").bind(agent.as_str());
        }
        if let Some(queue) = &filter.queue {
            query.push(" AND queue = ").bind(queue.as_str());
        }
        if let Some(ticket) = &filter.ticket {
            query
                .push(" AND id IN (SELECT call_id FROM call_tickets WHERE ticket_id = ")
                .bind(ticket.as_str())
                .push(")");
        }
        if let Some(violation) = filter.violation {
            query
                .push(" AND three_ring_ok = ")
                .bind(i64::from(!violation));
        }
        if let Some(caller) = &filter.caller {
            // Not LIKE: the text is matched as it is, % and _ included.
            query
                .push(" AND ")
                .push(self.backend.position_fn())
                .push("(caller, ")
                .bind(caller.as_str())
                .push(") > 0");
        }
        if let Some(rings) = filter.min_rings {
            query.push(" AND rings >= ").bind(rings);
        }
        if let Some(score) = filter.max_survey {
            query.push(" AND survey_score <= ").bind(score);
        }
        match filter.qa_scored {
            Some(true) => {
                query.push(" AND id IN (SELECT call_id FROM qa_scores)");
            }
            Some(false) => {
                query.push(" AND id NOT IN (SELECT call_id FROM qa_scores)");
            }
            None => {}
        }
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .bind(i64::from(limit));

        let sql = query.text(self.backend);
        let mut tx = self.pool.begin().await?;
        let rows = query.bind_to(sqlx::query(&sql)).fetch_all(&mut *tx).await?;
        let mut calls = rows
            .iter()
            .map(call_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        attach_children(&mut tx, self.backend, &mut calls).await?;
        tx.commit().await?;
        Ok(calls)
    }
}

async fn upsert_call_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    calls: &[&CallRecord],
) -> Result<(), StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    for chunk in calls.chunks(CALL_ROWS_PER_STATEMENT) {
        let sql = backend
            .sql(&rows_sql(
                UPSERT_CALL_HEAD,
                UPSERT_CALL_ROW,
                chunk.len(),
                UPSERT_CALL_TAIL,
            ))
            .into_owned();
        let mut query = sqlx::query(&sql);
        for call in chunk {
            query = query
                .bind(&call.id)
                .bind(&call.sip_call_id)
                .bind(call.direction.as_str())
                .bind(&call.caller)
                .bind(&call.callee)
                .bind(&call.queue)
                .bind(&call.agent)
                .bind(call.started_at)
                .bind(call.caller_ringing_at)
                .bind(call.answered_at)
                .bind(call.ended_at)
                .bind(call.caller_ring_ms)
                .bind(call.rings)
                .bind(to_opt_flag(call.three_ring_ok))
                .bind(to_opt_flag(call.over_limit))
                .bind(call.outcome.as_str())
                .bind(call.hangup_side.map(HangupSide::as_str))
                .bind(call.talk_ms)
                .bind(&call.recording_path)
                .bind(call.survey_score)
                .bind(&call.recording.sha256)
                .bind(call.recording.duration_ms)
                .bind(call.recording.bytes)
                .bind(to_flag(call.recording.interrupted))
                .bind(
                    serde_json::to_string(&call.recording.paused_spans)
                        .unwrap_or_else(|_| "[]".into()),
                )
                .bind(to_flag(call.survey_offered))
                .bind(now);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Replaces the attempts of `calls` (distinct call ids) with theirs.
async fn replace_attempts(
    conn: &mut AnyConnection,
    backend: Backend,
    calls: &[&CallRecord],
) -> Result<(), StoreError> {
    for chunk in calls.chunks(IDS_PER_STATEMENT) {
        let mut delete = SqlBuilder::new("DELETE FROM call_attempts WHERE call_id IN (");
        delete
            .bind_list(chunk.iter().map(|call| call.id.as_str()))
            .push(")");
        let sql = delete.text(backend);
        delete
            .bind_to(sqlx::query(&sql))
            .execute(&mut *conn)
            .await?;
    }
    let rows: Vec<(&CallRecord, usize, &AgentAttempt)> = calls
        .iter()
        .flat_map(|call| {
            call.attempts
                .iter()
                .enumerate()
                .map(move |(seq, attempt)| (*call, seq, attempt))
        })
        .collect();
    for chunk in rows.chunks(ATTEMPT_ROWS_PER_STATEMENT) {
        let sql = backend
            .sql(&rows_sql(
                INSERT_ATTEMPT_HEAD,
                INSERT_ATTEMPT_ROW,
                chunk.len(),
                "",
            ))
            .into_owned();
        let mut query = sqlx::query(&sql);
        for (call, seq, attempt) in chunk {
            query = query
                .bind(&call.id)
                .bind(*seq as i64)
                .bind(&attempt.agent)
                .bind(attempt.invited_at)
                .bind(attempt.ring_started_at)
                .bind(attempt.ended_at)
                .bind(attempt.ring_ms)
                .bind(attempt.outcome.as_str())
                .bind(attempt.sip_status.map(i64::from));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The call's own ticket links: `X-Ticket-ID` on an inbound call (role `inbound`), the
/// ticket of a callback (role `reply`). Links are only ever added here: those made through
/// the API stay when call control saves the call again.
async fn replace_tickets(
    conn: &mut AnyConnection,
    backend: Backend,
    call: &CallRecord,
) -> Result<(), StoreError> {
    let (role, by) = match call.direction {
        crate::call::record::Direction::Inbound => ("inbound", "sip"),
        crate::call::record::Direction::Outbound => ("reply", "callback"),
    };
    let insert = backend.sql(
        "INSERT INTO call_tickets (call_id, seq, ticket_id, role, linked_at, linked_by) \
         VALUES (?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM call_tickets WHERE call_id = ?), ?, ?, ?, ?) \
         ON CONFLICT (call_id, ticket_id) DO NOTHING",
    );
    for ticket in &call.tickets {
        sqlx::query(&insert)
            .bind(&call.id)
            .bind(&call.id)
            .bind(ticket)
            .bind(role)
            .bind(call.started_at)
            .bind(by)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Fills in the attempts and tickets of `calls` with one query each, whatever the
/// number of calls.
pub(super) async fn attach_children(
    conn: &mut AnyConnection,
    backend: Backend,
    calls: &mut [CallRecord],
) -> Result<(), StoreError> {
    if calls.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();

    let mut query = SqlBuilder::new(
        "SELECT call_id, agent, invited_at, ring_started_at, ended_at, ring_ms, outcome, \
         sip_status FROM call_attempts WHERE call_id IN (",
    );
    query
        .bind_list(ids.iter().copied())
        .push(") ORDER BY call_id, seq");
    let sql = query.text(backend);
    let mut attempts: HashMap<String, Vec<AgentAttempt>> = HashMap::new();
    for row in query
        .bind_to(sqlx::query(&sql))
        .fetch_all(&mut *conn)
        .await?
    {
        let call_id: String = row.try_get("call_id")?;
        let attempt = attempt_from_row(&row, &call_id)?;
        attempts.entry(call_id).or_default().push(attempt);
    }

    let mut query =
        SqlBuilder::new("SELECT call_id, ticket_id FROM call_tickets WHERE call_id IN (");
    query
        .bind_list(ids.iter().copied())
        .push(") ORDER BY call_id, seq");
    let sql = query.text(backend);
    let mut tickets: HashMap<String, Vec<String>> = HashMap::new();
    for row in query
        .bind_to(sqlx::query(&sql))
        .fetch_all(&mut *conn)
        .await?
    {
        let call_id: String = row.try_get("call_id")?;
        tickets
            .entry(call_id)
            .or_default()
            .push(row.try_get("ticket_id")?);
    }

    for call in calls.iter_mut() {
        call.attempts = attempts.remove(&call.id).unwrap_or_default();
        call.tickets = tickets.remove(&call.id).unwrap_or_default();
    }
    Ok(())
}

/// A call row without its attempts and tickets (see [`attach_children`]).
pub(super) fn call_from_row(row: &AnyRow) -> Result<CallRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let direction: String = row.try_get("direction")?;
    let outcome: String = row.try_get("outcome")?;
    let hangup_side: Option<String> = row.try_get("hangup_side")?;
    let paused: String = row.try_get("paused_spans")?;
    let paused_spans = serde_json::from_str(&paused).map_err(|_| StoreError::Corrupt {
        call_id: id.clone(),
        column: "paused_spans",
        value: paused.clone(),
    })?;
    Ok(CallRecord {
        recording: RecordingMeta {
            sha256: row.try_get("recording_sha256")?,
            duration_ms: row.try_get("recording_ms")?,
            bytes: row.try_get("recording_bytes")?,
            interrupted: flag(row, "interrupted")?,
            paused_spans,
        },
        direction: decode(&id, "direction", &direction)?,
        outcome: decode(&id, "outcome", &outcome)?,
        hangup_side: match hangup_side {
            Some(side) => Some(decode(&id, "hangup_side", &side)?),
            None => None,
        },
        sip_call_id: row.try_get("sip_call_id")?,
        caller: row.try_get("caller")?,
        callee: row.try_get("callee")?,
        queue: row.try_get("queue")?,
        agent: row.try_get("agent")?,
        started_at: row.try_get("started_at")?,
        caller_ringing_at: row.try_get("caller_ringing_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        caller_ring_ms: row.try_get("caller_ring_ms")?,
        rings: row.try_get("rings")?,
        three_ring_ok: opt_flag(row, "three_ring_ok")?,
        over_limit: opt_flag(row, "over_limit")?,
        talk_ms: row.try_get("talk_ms")?,
        recording_path: row.try_get("recording_path")?,
        survey_score: row.try_get("survey_score")?,
        survey_offered: flag(row, "survey_offered")?,
        attempts: Vec::new(),
        tickets: Vec::new(),
        id,
    })
}

fn attempt_from_row(row: &AnyRow, call_id: &str) -> Result<AgentAttempt, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    let sip_status: Option<i64> = row.try_get("sip_status")?;
    let sip_status = match sip_status {
        Some(status) => Some(u16::try_from(status).map_err(|_| StoreError::Corrupt {
            call_id: call_id.to_owned(),
            column: "call_attempts.sip_status",
            value: status.to_string(),
        })?),
        None => None,
    };
    Ok(AgentAttempt {
        agent: row.try_get("agent")?,
        invited_at: row.try_get("invited_at")?,
        ring_started_at: row.try_get("ring_started_at")?,
        ended_at: row.try_get("ended_at")?,
        ring_ms: row.try_get("ring_ms")?,
        outcome: decode(call_id, "call_attempts.outcome", &outcome)?,
        sip_status,
    })
}

fn decode<T: DeserializeOwned>(
    call_id: &str,
    column: &'static str,
    value: &str,
) -> Result<T, StoreError> {
    from_name(value).ok_or_else(|| StoreError::Corrupt {
        call_id: call_id.to_owned(),
        column,
        value: value.to_owned(),
    })
}

/// Reads back an enum stored by its `as_str()` name. The record enums' serde names are
/// those same names, so serde gives the inverse for every variant, present and future.
pub(super) fn from_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    let deserializer: StrDeserializer<'_, serde::de::value::Error> = name.into_deserializer();
    T::deserialize(deserializer).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::record::{AttemptOutcome, CallOutcome, Direction};

    #[test]
    fn stored_enum_names_read_back() {
        for d in [Direction::Inbound, Direction::Outbound] {
            assert_eq!(from_name::<Direction>(d.as_str()), Some(d));
        }
        for o in [
            CallOutcome::Active,
            CallOutcome::Answered,
            CallOutcome::Abandoned,
            CallOutcome::NoAgent,
            CallOutcome::Rejected,
            CallOutcome::Failed,
            CallOutcome::NotReached,
        ] {
            assert_eq!(from_name::<CallOutcome>(o.as_str()), Some(o));
        }
        for h in [HangupSide::Caller, HangupSide::Agent, HangupSide::System] {
            assert_eq!(from_name::<HangupSide>(h.as_str()), Some(h));
        }
        for o in [
            AttemptOutcome::Ringing,
            AttemptOutcome::Answered,
            AttemptOutcome::NoAnswer,
            AttemptOutcome::Busy,
            AttemptOutcome::Rejected,
            AttemptOutcome::Cancelled,
            AttemptOutcome::Failed,
        ] {
            assert_eq!(from_name::<AttemptOutcome>(o.as_str()), Some(o));
        }
        assert_eq!(from_name::<CallOutcome>("exploded"), None);
    }
}
