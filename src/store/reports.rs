//! Reads for the supervisor reports (`crate::reports`): every call of a time range,
//! however many (read page by page in one snapshot, never with a list limit), the
//! tickets surveyed in a range, and the tickets still waiting for a reply, by kind.

use sqlx::Row;

use super::calls::{attach_children, call_from_row, CALL_COLUMNS};
use super::sql::SqlBuilder;
use super::tickets::{ticket_from_row, AWAITING, COLUMNS as TICKET_COLUMNS};
use super::{Store, StoreError};
use crate::call::record::CallRecord;
use crate::tickets::Ticket;

/// Calls read (and their attempts and links attached) per query.
const PAGE: i64 = 500;

impl Store {
    /// Every call started in `[from, to)` (epoch ms), oldest first, with its attempts
    /// and ticket links. No limit: the calls are read in pages of [`PAGE`] inside one
    /// read transaction, so the result is one consistent snapshot.
    pub async fn calls_between(&self, from: i64, to: i64) -> Result<Vec<CallRecord>, StoreError> {
        let mut calls = Vec::new();
        self.for_each_call_between(from, to, |call| calls.push(call))
            .await?;
        Ok(calls)
    }

    /// Hands every call started in `[from, to)` to `visit`, oldest first (ties by id),
    /// holding at most one page of calls in memory: what an aggregation over a long
    /// range wants. One read transaction, so one consistent snapshot.
    pub async fn for_each_call_between(
        &self,
        from: i64,
        to: i64,
        mut visit: impl FnMut(CallRecord),
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Keyset paging on (started_at, id): stable under concurrent inserts, and each
        // page is an index range scan, not an ever-growing OFFSET.
        let mut after: Option<(i64, String)> = None;
        loop {
            let mut query = SqlBuilder::new(format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE started_at >= "
            ));
            query.bind(from).push(" AND started_at < ").bind(to);
            if let Some((at, id)) = &after {
                query
                    .push(" AND (started_at > ")
                    .bind(*at)
                    .push(" OR (started_at = ")
                    .bind(*at)
                    .push(" AND id > ")
                    .bind(id.as_str())
                    .push("))");
            }
            query.push(" ORDER BY started_at, id LIMIT ").bind(PAGE);
            let sql = query.text(self.backend);
            let rows = query.bind_to(sqlx::query(&sql)).fetch_all(&mut *tx).await?;
            let mut page = rows
                .iter()
                .map(call_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            attach_children(&mut tx, self.backend, &mut page).await?;
            let full = page.len() as i64 == PAGE;
            after = page.last().map(|c| (c.started_at, c.id.clone()));
            for call in page {
                visit(call);
            }
            if !full {
                break;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Tickets whose survey result was recorded in `[from, to)` with a score at or
    /// below `max_score`, oldest result first (without links and history); `overdue`
    /// as of `now_ms`.
    pub async fn tickets_surveyed_between(
        &self,
        from: i64,
        to: i64,
        max_score: i64,
        now_ms: i64,
    ) -> Result<Vec<Ticket>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE survey_at >= ? AND survey_at < ? \
             AND survey_score IS NOT NULL AND survey_score <= ? ORDER BY survey_at, id"
        );
        let rows = sqlx::query(&self.sql(&sql))
            .bind(from)
            .bind(to)
            .bind(max_score)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| ticket_from_row(r, now_ms)).collect()
    }

    /// Tickets still waiting for a reply (open, dispatched, reopened), counted by kind.
    pub async fn awaiting_by_kind(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT kind, COUNT(*) AS n FROM tickets WHERE status IN {AWAITING} \
             GROUP BY kind ORDER BY kind"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use crate::call::record::CallRecord;
    use crate::store::testing::TestDb;
    use crate::store::Store;

    fn call(id: &str, started_at: i64) -> CallRecord {
        CallRecord::abandoned_for_test(id, started_at)
    }

    async fn every_call_of_the_range_is_read_past_page_and_list_limits(store: Store, _db: &TestDb) {
        // 1203 calls, many sharing a start time, so pages split inside equal times.
        for i in 0..1203_i64 {
            store
                .save_call(&call(&format!("c{i:05}"), 1_000 + i / 7))
                .await
                .unwrap();
        }
        store.save_call(&call("before", 999)).await.unwrap();
        store.save_call(&call("after", 1_000 + 1203)).await.unwrap();
        let calls = store.calls_between(1_000, 1_000 + 1203).await.unwrap();
        assert_eq!(calls.len(), 1203);
        let ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 1203, "no call twice");
        assert_eq!(ids[0], "c00000");
        assert_eq!(ids[1202], "c01202");
        assert!(calls
            .windows(2)
            .all(|w| (w[0].started_at, &w[0].id) < (w[1].started_at, &w[1].id)));
        assert!(store.calls_between(5_000, 6_000).await.unwrap().is_empty());
    }

    crate::store_test!(every_call_of_the_range_is_read_past_page_and_list_limits);
}
