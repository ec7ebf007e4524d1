//! Webhook dead letters (`webhook_dead_letters`): deliveries that failed every attempt,
//! kept with the event's JSON body so a retry sends exactly the same event.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};

/// A dead letter to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub webhook: String,
    pub event_id: String,
    pub event_type: String,
    /// The event JSON as POSTed.
    pub body: String,
    pub attempts: i64,
    pub last_error: String,
    /// Epoch ms.
    pub failed_at: i64,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub webhook: String,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub attempts: i64,
    pub last_error: String,
    pub failed_at: i64,
}

const COLUMNS: &str = "id, webhook, event_id, event_type, body, attempts, last_error, failed_at";
const MAX_LIMIT: u32 = 10_000;

fn from_row(row: &AnyRow) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: row.try_get("id")?,
        webhook: row.try_get("webhook")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        body: row.try_get("body")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        failed_at: row.try_get("failed_at")?,
    })
}

impl Store {
    /// Writes a dead letter; answers its id.
    pub async fn insert_dead_letter(&self, letter: &NewDeadLetter) -> Result<i64, StoreError> {
        let insert = self.sql(
            "INSERT INTO webhook_dead_letters \
             (webhook, event_id, event_type, body, attempts, last_error, failed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        );
        let id: i64 = sqlx::query_scalar(&insert)
            .bind(&letter.webhook)
            .bind(&letter.event_id)
            .bind(&letter.event_type)
            .bind(&letter.body)
            .bind(letter.attempts)
            .bind(&letter.last_error)
            .bind(letter.failed_at)
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }

    /// Dead letters, newest first; of one webhook when given.
    pub async fn list_dead_letters(
        &self,
        webhook: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_dead_letters \
             WHERE (? IS NULL OR webhook = ?) ORDER BY failed_at DESC, id DESC LIMIT ?"
        );
        let rows = sqlx::query(&self.sql(&sql))
            .bind(webhook)
            .bind(webhook)
            .bind(i64::from(limit.min(MAX_LIMIT)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn get_dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhook_dead_letters WHERE id = ?");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A retry failed again: its attempts so far, the last error and when.
    pub async fn update_dead_letter(
        &self,
        id: i64,
        attempts: i64,
        last_error: &str,
        failed_at: i64,
    ) -> Result<bool, StoreError> {
        let update = self.sql(
            "UPDATE webhook_dead_letters SET attempts = ?, last_error = ?, failed_at = ? \
             WHERE id = ?",
        );
        let done = sqlx::query(&update)
            .bind(attempts)
            .bind(last_error)
            .bind(failed_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A retry was delivered: the dead letter goes.
    pub async fn delete_dead_letter(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql("DELETE FROM webhook_dead_letters WHERE id = ?"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
