//! Persistence of call records, tickets, QA and users, behind sqlx's `Any` driver: one
//! code path above the store, two backends below it. SQLite is the embedded default, in
//! WAL mode so the API can read while the writer writes; PostgreSQL (`[store] database =
//! "postgres://…"`) lets several nodes share one database.
//!
//! Every query is written once, with `?` placeholders, and passed through
//! [`Store::sql`], which numbers them for PostgreSQL ([`sql`]). Both schemas
//! (`migrations/sqlite/`, `migrations/postgres/`, same tables and columns) are embedded
//! in the binary and run by [`Store::open`]. Times are epoch milliseconds, booleans 0/1
//! integers, enums their `as_str()` names.
//!
//! Call control never writes here directly: it hands finished (or updated) records to
//! [`StoreWriter`], one task fed by a bounded channel, so a slow or unreachable database
//! can never stall SIP or media; while the database is down the writer keeps the records
//! (in memory, then in a spool file) and writes them when it is back ([`writer`]). The
//! store never calls back into call control.

mod calls;
mod cluster;
mod health;
mod qa;
mod reports;
mod spool;
pub mod sql;
#[doc(hidden)]
pub mod testing;
mod tickets;
mod webhooks;
mod writer;
#[cfg(test)]
mod writer_tests;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::AnyPool;
use sqlx::{Any, Executor, Transaction};

pub use calls::CallFilter;
pub use cluster::{AgentClaim, NodeSnapshot, SharedAgentCommand, SharedRegistration};
pub use health::StoreHealth;
pub use qa::ScoreRefused;
pub use sql::Backend;
pub use tickets::TicketFilter;
pub use webhooks::{DeadLetter, NewDeadLetter};
pub use writer::{StoreWriter, WriterOptions};

/// Longest an API request or a write waits for a free connection (or, while the server
/// is unreachable, for a new one) before failing; the writer then queues and retries.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool when `[store] max_connections` is not set. SQLite: one writer
/// plus readers for the API (SQLite serializes the writes anyway); PostgreSQL: more, as
/// the server runs statements in parallel.
pub fn default_max_connections(backend: Backend) -> u32 {
    match backend {
        Backend::Sqlite => 4,
        Backend::Postgres => 10,
    }
}

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
    #[error(
        "{url:?}: not a database this version supports; use sqlite://FILE, sqlite::memory: \
         or postgres://USER@HOST/DATABASE"
    )]
    Unsupported { url: String },
    /// The database did not answer within the time a caller allows (the store writer
    /// bounds each write).
    #[error("the database did not answer within {} s", .0.as_secs_f64())]
    TimedOut(Duration),
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

impl StoreError {
    /// Whether trying the same thing again later may succeed: the database is down,
    /// unreachable, restarting, locked by another process beyond the busy timeout, out
    /// of disk or connections, or the statement lost a serialization race. The store
    /// writer queues a record whose write failed transiently and retries it; any other
    /// failure (a constraint violated, a value it cannot store or read, a bad schema) is
    /// permanent: retrying would fail the same way, so the record is set aside.
    ///
    /// | failure | transient |
    /// |---|---|
    /// | I/O, TLS, protocol errors; pool timed out; worker crashed; our own time-out | yes |
    /// | SQLite `BUSY`, `LOCKED`, `IOERR`, `FULL`, `CANTOPEN`, `PROTOCOL` | yes |
    /// | PostgreSQL SQLSTATE class 08 (connection), 53 (resources), 57 (shut down), 58 (system I/O), 40001, 40P01, 55P03 | yes |
    /// | everything else (constraints, data, syntax, decode, corrupt values) | no |
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => is_transient_sqlx(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => is_transient_sqlx(e),
            StoreError::TimedOut(_) => true,
            _ => false,
        }
    }
}

fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                is_transient_sqlstate(pg.code())
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                db.code()
                    .and_then(|code| code.parse().ok())
                    .is_some_and(is_transient_sqlite_code)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLite: busy or locked (past the busy timeout), I/O error, disk full, cannot open,
/// lock protocol error. The primary result code is the low byte of an extended one.
fn is_transient_sqlite_code(code: i32) -> bool {
    matches!(
        code & 0xff,
        5 /* BUSY */ | 6 /* LOCKED */ | 10 /* IOERR */ | 13 /* FULL */ | 14 /* CANTOPEN */
            | 15 /* PROTOCOL */
    )
}

/// PostgreSQL: connection exceptions (08), insufficient resources (53), operator
/// intervention such as a shutdown (57), system errors (58), serialization failure,
/// deadlock, lock not available.
fn is_transient_sqlstate(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "53" | "57" | "58"))
        || matches!(code, "40001" | "40P01" | "55P03")
}

/// Pool settings beyond the URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections in the pool; `None`: [`default_max_connections`].
    pub max_connections: Option<u32>,
}

/// The store: a connection pool and the backend it talks to; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating it if missing) the database at `database_url` and brings its
    /// schema up to date: `sqlite://path` (relative paths are relative to the working
    /// directory), `sqlite::memory:` (for tests; gone when the store is dropped) or
    /// `postgres://user[:password]@host[:port]/database` (the database must exist).
    pub async fn open(database_url: &str) -> Result<Store, StoreError> {
        Store::open_with(database_url, StoreOptions::default()).await
    }

    /// [`Store::open`] with the `[store]` settings of a config.
    pub async fn open_config(config: &crate::config::StoreConfig) -> Result<Store, StoreError> {
        let options = StoreOptions {
            max_connections: config.max_connections,
        };
        Store::open_with(&config.database, options).await
    }

    /// [`Store::open`] with pool settings.
    pub async fn open_with(database_url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(database_url).ok_or_else(|| StoreError::Unsupported {
            url: redact_url(database_url),
        })?;
        let max = options
            .max_connections
            .unwrap_or_else(|| default_max_connections(backend))
            .max(1);
        let pool = match backend {
            Backend::Sqlite => open_sqlite(database_url, max).await?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(database_url)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    /// Closes every connection (checkpointing SQLite's WAL); later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for modules that keep their own tables in this database
    /// (users, sessions and the audit log: `crate::users`). Queries on it go through
    /// [`Store::sql`].
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which server this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `text` (with `?` placeholders) as this store's backend wants it.
    pub fn sql<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.backend.sql(text)
    }

    /// Answers once the database could take a write: what the store writer probes with
    /// while idle. SQLite: takes and gives back the write lock (another process holding
    /// it past the busy timeout is an outage for the writer, even if reads go on);
    /// PostgreSQL: a round trip to the server.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                self.pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await?
                    .rollback()
                    .await?
            }
            Backend::Postgres => {
                self.pool.execute("SELECT 1").await?;
            }
        }
        Ok(())
    }

    /// A transaction that will read `table` and then write it, holding other writers of
    /// it off until it ends, so that "read the highest number, insert the next" cannot
    /// race: SQLite takes its (database-wide) write lock at once (`BEGIN IMMEDIATE`;
    /// a deferred transaction could not upgrade once another connection has written),
    /// PostgreSQL locks the table against other writers (readers go on).
    pub(crate) async fn begin_writing(
        &self,
        table: &'static str,
    ) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                tx.execute(format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE").as_str())
                    .await?;
                Ok(tx)
            }
        }
    }
}

/// A SQLite pool: the URL made absolute (the `Any` driver takes options only from the
/// URL, which it parses as one: a relative path would read as a host name), created if
/// missing, WAL mode and `synchronous = NORMAL` on every connection.
async fn open_sqlite(database_url: &str, max_connections: u32) -> Result<AnyPool, StoreError> {
    let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
    let url = if in_memory {
        database_url.to_owned()
    } else {
        let file = SqliteConnectOptions::from_str(database_url)?
            .get_filename()
            .to_owned();
        create_parent_dir(&file)?;
        absolute_sqlite_url(database_url, &file)?
    };
    let pool_options = AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // In WAL mode NORMAL loses no committed data when the process crashes
                // (only on power loss, the last transactions), and saves an fsync per
                // record. foreign_keys and the busy timeout (5 s) are sqlx's defaults.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        });
    let pool_options = if in_memory {
        // An in-memory database lives as long as one of its connections: keep exactly
        // one, for ever.
        pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool_options.max_connections(max_connections)
    };
    Ok(pool_options.connect(&url).await?)
}

/// `sqlite:///absolute/path?params` for `file`, keeping the URL's parameters and
/// creating the file if missing unless a `mode` says otherwise.
fn absolute_sqlite_url(database_url: &str, file: &Path) -> Result<String, StoreError> {
    let absolute = std::path::absolute(file).map_err(|source| StoreError::CreateDir {
        path: file.to_owned(),
        source,
    })?;
    let file_url = url::Url::from_file_path(&absolute).map_err(|()| StoreError::Unsupported {
        url: redact_url(database_url),
    })?;
    let params = database_url.split_once('?').map_or("", |(_, p)| p);
    let mut url = format!("sqlite://{}", file_url.path());
    if params.is_empty() {
        url.push_str("?mode=rwc");
    } else {
        url.push('?');
        url.push_str(params);
        if !params.split('&').any(|p| p.starts_with("mode=")) {
            url.push_str("&mode=rwc");
        }
    }
    Ok(url)
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
pub fn redact_url(url: &str) -> String {
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
    async fn other_databases_are_refused_without_their_password() {
        let err = Store::open("mysql://tr:secret@db/threering")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unsupported { .. }));
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn relative_sqlite_paths_become_absolute_urls() {
        let cwd = std::env::current_dir().unwrap();
        let url = absolute_sqlite_url("sqlite://Data/t.db", Path::new("Data/t.db")).unwrap();
        assert_eq!(
            url,
            format!("sqlite://{}/Data/t.db?mode=rwc", cwd.display())
        );
        let url = absolute_sqlite_url("sqlite:///x/t.db?mode=ro", Path::new("/x/t.db")).unwrap();
        assert_eq!(url, "sqlite:///x/t.db?mode=ro");
    }

    #[test]
    fn failures_are_sorted_into_transient_and_permanent() {
        for code in [5, 517, 6, 10, 3338, 13, 14, 15] {
            assert!(is_transient_sqlite_code(code), "{code}");
        }
        for code in [19, 2067, 1811, 1, 11, 26] {
            assert!(!is_transient_sqlite_code(code), "{code}");
        }
        for code in [
            "08006", "08001", "57P01", "53300", "40001", "40P01", "55P03", "58030",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in [
            "23505", "23503", "23514", "22P02", "22021", "42P01", "42601",
        ] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
        let io = StoreError::Database(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(io.is_transient());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(StoreError::TimedOut(Duration::from_secs(1)).is_transient());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_transient());
        let corrupt = StoreError::Corrupt {
            call_id: "c".into(),
            column: "outcome",
            value: "exploded".into(),
        };
        assert!(!corrupt.is_transient());
    }
}
