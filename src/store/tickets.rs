//! Tickets: `tickets`, their append-only `ticket_history`, the per-day `ticket_counters`
//! that number them, and the `call_tickets` links (with roles) that they share with the
//! call records. A ticket is written whole, guarded by its `version` column, so two API
//! requests changing one ticket at once cannot lose either change: the second is told
//! to try again ([`Store::save_ticket`] answers `false`).

use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::calls::from_name;
use super::sql::{opt_flag, to_opt_flag, Backend, SqlBuilder};
use super::{Store, StoreError};
use crate::tickets::ticket::is_overdue;
use crate::tickets::{format_id, HistoryEntry, LinkRole, Ticket, TicketLink};

/// Which tickets [`Store::list_tickets`] returns; `None` leaves a field open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub area: Option<String>,
    pub assigned_agent: Option<String>,
    /// Due before this epoch ms.
    pub due_before: Option<i64>,
    /// Overdue (still waiting for a reply and past due) at this epoch ms.
    pub overdue_at: Option<i64>,
    /// Created at or after / before (epoch ms).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Closed before this epoch ms (the archiver's batch).
    pub closed_before: Option<i64>,
    /// `Some(false)`: not archived yet.
    pub archived: Option<bool>,
    pub limit: Option<u32>,
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

pub(super) const COLUMNS: &str = "id, kind, complexity, status, customer, company, phone, area, \
     inquiry_type, waybill, content, shipper_verified, assigned_team, assigned_agent, reply, \
     created_by, created_at, updated_at, reply_due_at, promised_callback_at, due_at, \
     replied_at, closed_at, survey_score, survey_cause, survey_call_id, survey_at, \
     no_survey_reason, archived_at, archive_path, archive_sha256, version";

/// States that still wait for a reply (see `TicketStatus::awaits_reply`).
pub(super) const AWAITING: &str = "('open', 'dispatched', 'reopened')";

impl Store {
    /// Numbers the ticket (`<prefix>-<day>-NNNN`, the day's next number) and inserts it
    /// with its first history entries, in one transaction.
    pub async fn create_ticket(
        &self,
        mut ticket: Ticket,
        history: &[HistoryEntry],
        prefix: &str,
        day: chrono::NaiveDate,
    ) -> Result<Ticket, StoreError> {
        let mut tx = self.pool.begin().await?;
        let key = day.format("%Y%m%d").to_string();
        let counter = self.sql(
            "INSERT INTO ticket_counters (day, last) VALUES (?, 1) \
             ON CONFLICT (day) DO UPDATE SET last = ticket_counters.last + 1 RETURNING last",
        );
        let number: i64 = sqlx::query_scalar(&counter)
            .bind(&key)
            .fetch_one(&mut *tx)
            .await?;
        ticket.id = format_id(prefix, day, number as u32);
        let insert = format!(
            "INSERT INTO tickets ({COLUMNS}) VALUES ({})",
            vec!["?"; 32].join(", ")
        );
        sqlx::query(&self.sql(&insert))
            .bind(&ticket.id)
            .bind(ticket.kind.as_str())
            .bind(ticket.complexity.map(|c| c.as_str()))
            .bind(ticket.status.as_str())
            .bind(&ticket.customer)
            .bind(&ticket.company)
            .bind(&ticket.phone)
            .bind(&ticket.area)
            .bind(&ticket.inquiry_type)
            .bind(&ticket.waybill)
            .bind(&ticket.content)
            .bind(to_opt_flag(ticket.shipper_verified))
            .bind(&ticket.assigned_team)
            .bind(&ticket.assigned_agent)
            .bind(&ticket.reply)
            .bind(&ticket.created_by)
            .bind(ticket.created_at)
            .bind(ticket.updated_at)
            .bind(ticket.reply_due_at)
            .bind(ticket.promised_callback_at)
            .bind(ticket.due_at)
            .bind(ticket.replied_at)
            .bind(ticket.closed_at)
            .bind(ticket.survey_score)
            .bind(ticket.survey_cause.map(|c| c.as_str()))
            .bind(&ticket.survey_call_id)
            .bind(ticket.survey_at)
            .bind(&ticket.no_survey_reason)
            .bind(ticket.archived_at)
            .bind(&ticket.archive_path)
            .bind(&ticket.archive_sha256)
            .bind(0_i64)
            .execute(&mut *tx)
            .await?;
        append_history(&mut tx, self.backend, &ticket.id, history).await?;
        tx.commit().await?;
        Ok(ticket)
    }

    /// Writes a changed ticket and its new history entries, if nobody else wrote it
    /// since it was read (same `version`). `Ok(false)`: somebody did; read it again.
    pub async fn save_ticket(
        &self,
        ticket: &Ticket,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let update = self.sql(
            "UPDATE tickets SET kind = ?, complexity = ?, status = ?, customer = ?, company = ?, \
             phone = ?, area = ?, inquiry_type = ?, waybill = ?, content = ?, \
             shipper_verified = ?, assigned_team = ?, assigned_agent = ?, reply = ?, \
             updated_at = ?, reply_due_at = ?, promised_callback_at = ?, due_at = ?, \
             replied_at = ?, closed_at = ?, survey_score = ?, survey_cause = ?, \
             survey_call_id = ?, survey_at = ?, no_survey_reason = ?, archived_at = ?, \
             archive_path = ?, archive_sha256 = ?, version = version + 1 \
             WHERE id = ? AND version = ?",
        );
        let done = sqlx::query(&update)
            .bind(ticket.kind.as_str())
            .bind(ticket.complexity.map(|c| c.as_str()))
            .bind(ticket.status.as_str())
            .bind(&ticket.customer)
            .bind(&ticket.company)
            .bind(&ticket.phone)
            .bind(&ticket.area)
            .bind(&ticket.inquiry_type)
            .bind(&ticket.waybill)
            .bind(&ticket.content)
            .bind(to_opt_flag(ticket.shipper_verified))
            .bind(&ticket.assigned_team)
            .bind(&ticket.assigned_agent)
            .bind(&ticket.reply)
            .bind(ticket.updated_at)
            .bind(ticket.reply_due_at)
            .bind(ticket.promised_callback_at)
            .bind(ticket.due_at)
            .bind(ticket.replied_at)
            .bind(ticket.closed_at)
            .bind(ticket.survey_score)
            .bind(ticket.survey_cause.map(|c| c.as_str()))
            .bind(&ticket.survey_call_id)
            .bind(ticket.survey_at)
            .bind(&ticket.no_survey_reason)
            .bind(ticket.archived_at)
            .bind(&ticket.archive_path)
            .bind(&ticket.archive_sha256)
            .bind(&ticket.id)
            .bind(ticket.version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        append_history(&mut tx, self.backend, &ticket.id, history).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One ticket with its links and history; `overdue` as of `now_ms`.
    pub async fn get_ticket(&self, id: &str, now_ms: i64) -> Result<Option<Ticket>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!("SELECT {COLUMNS} FROM tickets WHERE id = ?");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let mut ticket = ticket_from_row(&row, now_ms)?;
        ticket.calls = links(&mut tx, self.backend, id).await?;
        let sql = self.sql(
            "SELECT at, author, action, note FROM ticket_history WHERE ticket_id = ? ORDER BY seq",
        );
        let rows = sqlx::query(&sql).bind(id).fetch_all(&mut *tx).await?;
        let history = rows
            .iter()
            .map(|r| {
                Ok(HistoryEntry {
                    at: r.try_get("at")?,
                    author: r.try_get("author")?,
                    action: r.try_get("action")?,
                    note: r.try_get("note")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        ticket.history = Some(history);
        tx.commit().await?;
        Ok(Some(ticket))
    }

    /// Tickets matching `filter`, earliest due first, with their links (no history).
    pub async fn list_tickets(
        &self,
        filter: &TicketFilter,
        now_ms: i64,
    ) -> Result<Vec<Ticket>, StoreError> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let mut query = SqlBuilder::new(format!("SELECT {COLUMNS} FROM tickets WHERE 1 = 1"));
        let text_filters = [
            ("status", &filter.status),
            ("kind", &filter.kind),
            ("area", &filter.area),
            ("assigned_agent", &filter.assigned_agent),
        ];
        for (column, value) in text_filters {
            if let Some(value) = value {
                query
                    .push(&format!(" AND {column} = "))
                    .bind(value.as_str());
            }
        }
        if let Some(before) = filter.due_before {
            query.push(" AND due_at < ").bind(before);
        }
        if let Some(at) = filter.overdue_at {
            query
                .push(&format!(" AND status IN {AWAITING} AND due_at < "))
                .bind(at);
        }
        if let Some(from) = filter.from {
            query.push(" AND created_at >= ").bind(from);
        }
        if let Some(to) = filter.to {
            query.push(" AND created_at < ").bind(to);
        }
        if let Some(before) = filter.closed_before {
            query
                .push(" AND status = 'closed' AND closed_at < ")
                .bind(before);
        }
        match filter.archived {
            Some(true) => query.push(" AND archived_at IS NOT NULL"),
            Some(false) => query.push(" AND archived_at IS NULL"),
            None => &mut query,
        };
        query
            .push(" ORDER BY due_at, id LIMIT ")
            .bind(i64::from(limit));
        let sql = query.text(self.backend);
        let mut tx = self.pool.begin().await?;
        let rows = query.bind_to(sqlx::query(&sql)).fetch_all(&mut *tx).await?;
        let mut tickets = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut ticket = ticket_from_row(row, now_ms)?;
            ticket.calls = links(&mut tx, self.backend, &ticket.id).await?;
            tickets.push(ticket);
        }
        tx.commit().await?;
        Ok(tickets)
    }

    /// Tickets overdue at `now_ms`, by kind (for the metrics gauge).
    pub async fn overdue_by_kind(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = format!(
            "SELECT kind, COUNT(*) AS n FROM tickets WHERE status IN {AWAITING} AND due_at < ? \
             GROUP BY kind"
        );
        let rows = sqlx::query(&self.sql(&sql))
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Links a stored call to a ticket with `role` (a second link of the same pair
    /// changes its role). `Ok(false)` if the call is not in the store.
    pub async fn link_call(
        &self,
        ticket_id: &str,
        call_id: &str,
        role: LinkRole,
        by: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        // This transaction reads (the next seq), then writes.
        let mut tx = self.begin_writing("call_tickets").await?;
        let exists: Option<String> =
            sqlx::query_scalar(&self.sql("SELECT id FROM calls WHERE id = ?"))
                .bind(call_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            // Ended at once: on PostgreSQL it holds a table lock.
            tx.rollback().await?;
            return Ok(false);
        }
        let link = self.sql(
            "INSERT INTO call_tickets (call_id, seq, ticket_id, role, linked_at, linked_by) \
             VALUES (?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM call_tickets WHERE call_id = ?), ?, ?, ?, ?) \
             ON CONFLICT (call_id, ticket_id) DO UPDATE SET role = excluded.role, \
             linked_at = excluded.linked_at, linked_by = excluded.linked_by",
        );
        sqlx::query(&link)
            .bind(call_id)
            .bind(call_id)
            .bind(ticket_id)
            .bind(role.as_str())
            .bind(at)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The tickets a call is linked to, with the link's role.
    pub async fn tickets_of_call(
        &self,
        call_id: &str,
    ) -> Result<Vec<(String, LinkRole)>, StoreError> {
        let sql =
            self.sql("SELECT ticket_id, role FROM call_tickets WHERE call_id = ? ORDER BY seq");
        let rows = sqlx::query(&sql)
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let ticket: String = r.try_get("ticket_id")?;
                let role: String = r.try_get("role")?;
                let role = LinkRole::parse(&role).ok_or_else(|| StoreError::CorruptTicket {
                    ticket_id: ticket.clone(),
                    column: "call_tickets.role",
                    value: role.clone(),
                })?;
                Ok((ticket, role))
            })
            .collect()
    }
}

async fn append_history(
    conn: &mut AnyConnection,
    backend: Backend,
    ticket_id: &str,
    history: &[HistoryEntry],
) -> Result<(), StoreError> {
    let insert = backend.sql(
        "INSERT INTO ticket_history (ticket_id, seq, at, author, action, note) VALUES \
         (?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM ticket_history WHERE ticket_id = ?), ?, ?, ?, ?)",
    );
    for entry in history {
        sqlx::query(&insert)
            .bind(ticket_id)
            .bind(ticket_id)
            .bind(entry.at)
            .bind(&entry.author)
            .bind(&entry.action)
            .bind(&entry.note)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn links(
    conn: &mut AnyConnection,
    backend: Backend,
    ticket_id: &str,
) -> Result<Vec<TicketLink>, StoreError> {
    let sql = backend.sql(
        "SELECT call_id, role, linked_at, linked_by FROM call_tickets WHERE ticket_id = ? \
         ORDER BY linked_at, call_id",
    );
    let rows = sqlx::query(&sql)
        .bind(ticket_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            let role: String = r.try_get("role")?;
            Ok(TicketLink {
                call_id: r.try_get("call_id")?,
                role: LinkRole::parse(&role).ok_or_else(|| StoreError::CorruptTicket {
                    ticket_id: ticket_id.to_owned(),
                    column: "call_tickets.role",
                    value: role.clone(),
                })?,
                linked_at: r.try_get("linked_at")?,
                linked_by: r.try_get("linked_by")?,
            })
        })
        .collect()
}

fn decode<T: serde::de::DeserializeOwned>(
    id: &str,
    column: &'static str,
    value: &str,
) -> Result<T, StoreError> {
    from_name(value).ok_or_else(|| StoreError::CorruptTicket {
        ticket_id: id.to_owned(),
        column,
        value: value.to_owned(),
    })
}

pub(super) fn ticket_from_row(row: &AnyRow, now_ms: i64) -> Result<Ticket, StoreError> {
    let id: String = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let complexity: Option<String> = row.try_get("complexity")?;
    let cause: Option<String> = row.try_get("survey_cause")?;
    let mut ticket = Ticket {
        kind: decode(&id, "kind", &kind)?,
        status: decode(&id, "status", &status)?,
        complexity: match complexity {
            Some(c) => Some(decode(&id, "complexity", &c)?),
            None => None,
        },
        survey_cause: match cause {
            Some(c) => Some(decode(&id, "survey_cause", &c)?),
            None => None,
        },
        customer: row.try_get("customer")?,
        company: row.try_get("company")?,
        phone: row.try_get("phone")?,
        area: row.try_get("area")?,
        inquiry_type: row.try_get("inquiry_type")?,
        waybill: row.try_get("waybill")?,
        content: row.try_get("content")?,
        shipper_verified: opt_flag(row, "shipper_verified")?,
        assigned_team: row.try_get("assigned_team")?,
        assigned_agent: row.try_get("assigned_agent")?,
        reply: row.try_get("reply")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        reply_due_at: row.try_get("reply_due_at")?,
        promised_callback_at: row.try_get("promised_callback_at")?,
        due_at: row.try_get("due_at")?,
        replied_at: row.try_get("replied_at")?,
        closed_at: row.try_get("closed_at")?,
        overdue: false,
        survey_score: row.try_get("survey_score")?,
        survey_call_id: row.try_get("survey_call_id")?,
        survey_at: row.try_get("survey_at")?,
        no_survey_reason: row.try_get("no_survey_reason")?,
        archived_at: row.try_get("archived_at")?,
        archive_path: row.try_get("archive_path")?,
        archive_sha256: row.try_get("archive_sha256")?,
        calls: Vec::new(),
        history: None,
        version: row.try_get("version")?,
        id,
    };
    ticket.overdue = is_overdue(&ticket, now_ms);
    Ok(ticket)
}
