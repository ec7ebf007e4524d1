//! QA scores (immutable versions) and annotations.

use sqlx::Row;

use super::{Store, StoreError};
use crate::qa::forms::{Annotation, Score, ScoredItem};

/// Why a score was not saved.
#[derive(Debug, thiserror::Error)]
pub enum ScoreRefused {
    /// The call already has a score: a correction needs a reason.
    #[error("call {call_id} already has score version {version}; a correction needs a reason")]
    NeedsReason { call_id: String, version: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ScoreRefused {
    fn from(e: sqlx::Error) -> Self {
        ScoreRefused::Store(e.into())
    }
}

impl Store {
    /// Saves a new score version for `score.call_id` (its version and `supersedes` are
    /// filled in here): the first, or a correction when `score.reason` is given.
    pub async fn add_score(&self, mut score: Score) -> Result<Score, ScoreRefused> {
        // Read the latest version and insert the next without a race.
        let mut tx = self.begin_writing("qa_scores").await?;
        let sql = self.sql(
            "SELECT id, version FROM qa_scores WHERE call_id = ? ORDER BY version DESC LIMIT 1",
        );
        let latest: Option<(String, i64)> = sqlx::query(&sql)
            .bind(&score.call_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("version")?)))
            .transpose()?;
        match (&latest, score.reason.as_deref().map(str::trim)) {
            (Some((_, version)), None | Some("")) => {
                // Ended at once: on PostgreSQL it holds a table lock.
                tx.rollback().await?;
                return Err(ScoreRefused::NeedsReason {
                    call_id: score.call_id.clone(),
                    version: *version,
                });
            }
            (None, _) => score.reason = None,
            _ => {}
        }
        score.version = latest.as_ref().map_or(1, |(_, v)| v + 1);
        score.supersedes = latest.map(|(id, _)| id);
        let items = serde_json::to_string(&score.items).expect("items serialize");
        let insert = self.sql(
            "INSERT INTO qa_scores (id, call_id, version, form, items, total, comment, reason, \
             supersedes, author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        sqlx::query(&insert)
            .bind(&score.id)
            .bind(&score.call_id)
            .bind(score.version)
            .bind(&score.form)
            .bind(items)
            .bind(score.total)
            .bind(&score.comment)
            .bind(&score.reason)
            .bind(&score.supersedes)
            .bind(&score.author)
            .bind(score.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(score)
    }

    /// Every score version of a call, oldest first.
    pub async fn scores(&self, call_id: &str) -> Result<Vec<Score>, StoreError> {
        let sql = self.sql(
            "SELECT id, call_id, version, form, items, total, comment, reason, supersedes, \
             author, created_at FROM qa_scores WHERE call_id = ? ORDER BY version",
        );
        let rows = sqlx::query(&sql)
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let items: String = r.try_get("items")?;
                let items: Vec<ScoredItem> =
                    serde_json::from_str(&items).map_err(|_| StoreError::Corrupt {
                        call_id: call_id.to_owned(),
                        column: "qa_scores.items",
                        value: items.clone(),
                    })?;
                Ok(Score {
                    id: r.try_get("id")?,
                    call_id: r.try_get("call_id")?,
                    version: r.try_get("version")?,
                    form: r.try_get("form")?,
                    items,
                    total: r.try_get("total")?,
                    comment: r.try_get("comment")?,
                    reason: r.try_get("reason")?,
                    supersedes: r.try_get("supersedes")?,
                    author: r.try_get("author")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn add_annotation(&self, annotation: &Annotation) -> Result<(), StoreError> {
        let insert = self.sql(
            "INSERT INTO qa_annotations (id, call_id, at_ms, tag, comment, author, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        );
        sqlx::query(&insert)
            .bind(&annotation.id)
            .bind(&annotation.call_id)
            .bind(annotation.at_ms)
            .bind(&annotation.tag)
            .bind(&annotation.comment)
            .bind(&annotation.author)
            .bind(annotation.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A call's annotations in recording order.
    pub async fn annotations(&self, call_id: &str) -> Result<Vec<Annotation>, StoreError> {
        let sql = self.sql(
            "SELECT id, call_id, at_ms, tag, comment, author, created_at FROM qa_annotations \
             WHERE call_id = ? ORDER BY at_ms, created_at",
        );
        let rows = sqlx::query(&sql)
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Annotation {
                    id: r.try_get("id")?,
                    call_id: r.try_get("call_id")?,
                    at_ms: r.try_get("at_ms")?,
                    tag: r.try_get("tag")?,
                    comment: r.try_get("comment")?,
                    author: r.try_get("author")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
