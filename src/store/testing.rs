//! Fresh databases for tests, on either backend; not used by the daemon.
//!
//! - SQLite: a new file in a new temp directory (removed on drop).
//! - PostgreSQL: a new schema `tr_<random>` in the server named by `THREERING_TEST_PG`
//!   (default `postgres://postgres@127.0.0.1:5432/test`), reached through a URL whose
//!   `search_path` is that schema, so each test (and each daemon a test starts) has its
//!   own tables, migrations included; the schema is dropped on drop.
//!
//! [`store_test!`](crate::store_test) runs one test body on both; tests that take one
//! backend use [`TestDb::from_env`] (`THREERING_TEST_DB=postgres` selects PostgreSQL),
//! which is how CI runs the whole suite a second time on PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::{Connection, Executor};

use super::{Backend, Store};

/// The environment variable naming the PostgreSQL server tests use.
pub const PG_URL_ENV: &str = "THREERING_TEST_PG";
/// The server tests use when [`PG_URL_ENV`] is not set.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Set to `postgres` to run the single-backend tests (and daemons) on PostgreSQL.
pub const DB_ENV: &str = "THREERING_TEST_DB";

/// One test's database; gone when dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The `[store] database` URL of this database.
    pub url: String,
    pub backend: Backend,
    /// SQLite: the temp directory holding the file.
    dir: Option<PathBuf>,
    /// PostgreSQL: the schema, and the server URL it lives in.
    schema: Option<(String, String)>,
}

/// The backend [`DB_ENV`] selects (SQLite unless it says `postgres`).
pub fn backend_from_env() -> Backend {
    match std::env::var(DB_ENV).as_deref() {
        Ok("postgres") | Ok("postgresql") | Ok("pg") => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// The PostgreSQL server URL tests use.
pub fn pg_server_url() -> String {
    std::env::var(PG_URL_ENV).unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}_{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

impl TestDb {
    /// A fresh, empty database on `backend` (no tables until a [`Store`] opens it).
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(unique_name("threering-test-"));
                std::fs::create_dir_all(&dir).expect("create a temp dir for the test database");
                TestDb {
                    url: format!("sqlite://{}", dir.join("threering.db").display()),
                    backend,
                    dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let server = pg_server_url();
                let schema = unique_name("tr_");
                let mut conn = sqlx::PgConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL for the tests ({}): {e}; start it (see .ci/run) or set {PG_URL_ENV}",
                            super::redact_url(&server)
                        )
                    });
                conn.execute(format!("CREATE SCHEMA {schema}").as_str())
                    .await
                    .expect("create the test schema");
                let _ = conn.close().await;
                let sep = if server.contains('?') { '&' } else { '?' };
                TestDb {
                    // Named after the schema too, so that its connections can be found
                    // (and ended) when it is dropped.
                    url: format!(
                        "{server}{sep}options=-c%20search_path%3D{schema}&application_name={schema}"
                    ),
                    backend,
                    dir: None,
                    schema: Some((schema, server)),
                }
            }
        }
    }

    /// A fresh database on the backend [`DB_ENV`] selects.
    pub async fn from_env() -> TestDb {
        TestDb::new(backend_from_env()).await
    }

    /// Opens the store on it (running the migrations).
    pub async fn open(&self) -> Store {
        Store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open the {} test store: {e}", self.backend.name()))
    }

    /// [`TestDb::new`] from code that is not async (or is, but may not block its
    /// runtime): made on a thread of its own.
    pub fn new_blocking(backend: Backend) -> TestDb {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the test database")
                .block_on(TestDb::new(backend))
        })
        .join()
        .expect("creating the test database")
    }

    /// The directory of the SQLite file, if that is what this is.
    pub fn sqlite_dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// The URL of this (PostgreSQL) database reached through `proxy` instead of
    /// directly; SQLite URLs come back unchanged.
    pub fn url_via(&self, proxy: SocketAddr) -> String {
        match self.backend {
            Backend::Sqlite => self.url.clone(),
            Backend::Postgres => {
                let mut url = url::Url::parse(&self.url).expect("the test URL parses");
                url.set_host(Some(&proxy.ip().to_string()))
                    .expect("a host can be set");
                url.set_port(Some(proxy.port())).expect("a port can be set");
                url.to_string()
            }
        }
    }

    /// The address of the PostgreSQL server behind this database.
    pub fn pg_server_addr(&self) -> Option<SocketAddr> {
        let url = url::Url::parse(&self.schema.as_ref()?.1).ok()?;
        let host = url.host_str()?;
        let port = url.port().unwrap_or(5432);
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .ok()?
            .next()
    }
}

/// A TCP forwarder between a client (the daemon, a store) and a server (PostgreSQL)
/// that a test can switch off: then every connection through it is cut and new ones are
/// closed as soon as they are accepted — an outage as the client sees it, without
/// stopping the server other tests share. Stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    /// Bumped at each switch-off; forwarders end when it changes.
    cut: tokio::sync::watch::Sender<u64>,
    stop: tokio_util::sync::CancellationToken,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target`; open. Needs a running
    /// tokio runtime (multi-threaded if the test blocks its own thread).
    pub async fn start(target: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0_u64);
        let stop = tokio_util::sync::CancellationToken::new();
        let (accept_open, accept_cut, accept_stop) = (open.clone(), cut.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    _ = accept_stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                if !accept_open.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_cut.subscribe();
                let stop = accept_stop.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
        });
        Ok(TcpProxy {
            addr,
            open,
            cut,
            stop,
        })
    }

    /// Switches the forwarding on or off (off cuts every connection through it).
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
        if !open {
            self.cut.send_modify(|generation| *generation += 1);
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((schema, server)) = self.schema.take() {
            // Drop runs inside the test's runtime, which cannot be blocked on: a thread
            // of its own, with a runtime of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&server).await.ok()?;
                    // Connections the test left (a pool whose tasks cannot run while
                    // this blocks, a killed daemon's) could hold locks the drop waits on.
                    sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&schema)
                    .execute(&mut conn)
                    .await
                    .ok()?;
                    conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                        .await
                        .ok()?;
                    conn.close().await.ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("note: test schema left behind in PostgreSQL");
            }
        }
    }
}

/// Runs a test on both backends: for an `async fn NAME(store: Store, db: &TestDb)`,
/// `store_test!(NAME)` defines the tests `NAME::sqlite` and `NAME::postgres`, each
/// handing the function a fresh [`Store`](crate::store::Store) and the [`TestDb`] it
/// lives in (for tests that reopen it):
///
/// ```ignore
/// async fn saves_calls(store: Store, _db: &TestDb) {
///     store.save_call(&call).await.unwrap();
/// }
/// threering::store_test!(saves_calls);
/// ```
#[macro_export]
macro_rules! store_test {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db =
                        $crate::store::testing::TestDb::new($crate::store::Backend::Sqlite).await;
                    super::$name(db.open().await, &db).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let db =
                        $crate::store::testing::TestDb::new($crate::store::Backend::Postgres).await;
                    super::$name(db.open().await, &db).await;
                }
            }
        )+
    };
}
