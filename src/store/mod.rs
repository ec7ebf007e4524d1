//! Persistence of call records. One type per aggregate ([`Store`] for calls now; tickets
//! and users follow), behind sqlx. SQLite is the embedded default, in WAL mode so the API
//! can read while the writer writes; PostgreSQL comes with a later issue (its URL is
//! refused with [`StoreError::Unsupported`] until then).
//!
//! Call control never writes here directly: it hands finished (or updated) records to
//! [`StoreWriter`], one task fed by a bounded channel, so a slow disk can never stall
//! SIP or media. The store never calls back into call control.
//!
//! Schema: `migrations/sqlite/`, embedded in the binary and run by [`Store::open`].
//! Times are epoch milliseconds, booleans 0/1, enums their `as_str()` names.

mod calls;
mod qa;
mod reports;
mod tickets;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use calls::CallFilter;
pub use qa::ScoreRefused;
pub use tickets::TicketFilter;
pub use webhooks::{DeadLetter, NewDeadLetter};
pub use writer::StoreWriter;

/// Longest a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool: one writer plus readers for the API; SQLite serializes the
/// writes anyway.
const MAX_CONNECTIONS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{url:?}: this database is not supported yet; use sqlite://FILE or sqlite::memory:")]
    Unsupported { url: String },
    /// A stored value this version cannot read back, e.g. an enum name from a newer
    /// version. Reported rather than guessed at.
    #[error("call {call_id:?}: column {column} holds {value:?}, which this version cannot read")]
    Corrupt {
        call_id: String,
        column: &'static str,
        value: String,
    },
    #[error(
        "ticket {ticket_id:?}: column {column} holds {value:?}, which this version cannot read"
    )]
    CorruptTicket {
        ticket_id: String,
        column: &'static str,
        value: String,
    },
}

/// The call store: a connection pool; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating it if missing) the database at `database_url` and brings its
    /// schema up to date: `sqlite://path` (relative paths are relative to the working
    /// directory) or `sqlite::memory:` (for tests; gone when the store is dropped).
    pub async fn open(database_url: &str) -> Result<Store, StoreError> {
        if !database_url.starts_with("sqlite:") {
            return Err(StoreError::Unsupported {
                url: redact_url(database_url),
            });
        }
        let options = SqliteConnectOptions::from_str(database_url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed data when the process crashes (only
            // on power loss, the last transactions), and saves an fsync per record.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
        if !in_memory {
            create_parent_dir(options.get_filename())?;
        }
        let pool_options = if in_memory {
            // An in-memory database lives as long as one of its connections: keep
            // exactly one, for ever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options.connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Closes every connection (checkpointing the WAL); later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for modules that keep their own tables in this database
    /// (users, sessions and the audit log: `crate::users`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// SQLite creates a missing file but not a missing directory; a fresh install pointing
/// at `/var/lib/threering/threering.db` should just work. Blocking, but only at start-up.
fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// A URL without its password, fit for an error message or a log line.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_cut_from_urls() {
        assert_eq!(
            redact_url("postgres://tr:secret@db:5432/threering"),
            "postgres://tr:***@db:5432/threering"
        );
        assert_eq!(
            redact_url("postgres://db/threering"),
            "postgres://db/threering"
        );
    }

    #[tokio::test]
    async fn postgres_is_not_supported_yet() {
        let err = Store::open("postgres://tr:secret@db/threering")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unsupported { .. }));
        assert!(!err.to_string().contains("secret"));
    }
}
