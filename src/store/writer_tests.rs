//! The store writer through real outages, on both backends: PostgreSQL behind a
//! [`TcpProxy`] that is switched off, SQLite locked by another connection past the busy
//! timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

use super::testing::{TcpProxy, TestDb};
use super::{Backend, Store, StoreHealth, StoreWriter, WriterOptions};
use crate::call::record::CallRecord;

fn call(id: &str, caller: &str) -> CallRecord {
    CallRecord {
        caller: caller.to_owned(),
        ..CallRecord::abandoned_for_test(id, 1_740_787_200_000)
    }
}

/// A way to make the database unreachable for the writer's store only.
enum Outage {
    /// The writer's store connects through this proxy.
    Proxy(TcpProxy),
    /// Another connection holding SQLite's write lock (`BEGIN IMMEDIATE`), while held.
    Lock(String, Option<sqlx::SqliteConnection>),
}

impl Outage {
    /// The outage for `db`, and the store the writer is to use (open, migrated).
    async fn prepare(db: &TestDb) -> (Outage, Store) {
        match db.backend {
            Backend::Postgres => {
                let server = db.pg_server_addr().expect("the PostgreSQL address");
                let proxy = TcpProxy::start(server).await.unwrap();
                let store = Store::open(&db.url_via(proxy.addr)).await.unwrap();
                (Outage::Proxy(proxy), store)
            }
            Backend::Sqlite => (Outage::Lock(db.url.clone(), None), db.open().await),
        }
    }

    async fn begin(&mut self) {
        match self {
            Outage::Proxy(proxy) => proxy.set_open(false),
            Outage::Lock(url, held) => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                conn.execute("BEGIN IMMEDIATE").await.unwrap();
                *held = Some(conn);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Proxy(proxy) => proxy.set_open(true),
            Outage::Lock(_, held) => {
                if let Some(mut conn) = held.take() {
                    conn.execute("ROLLBACK").await.unwrap();
                    let _ = conn.close().await;
                }
            }
        }
    }
}

fn options(spool: &Path, memory_queue: usize, health: &StoreHealth) -> WriterOptions {
    WriterOptions {
        capacity: 4,
        memory_queue,
        spool: Some(spool.to_owned()),
        tickets: None,
        health: health.clone(),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_calls(store: &Store, prefix: &str) -> i64 {
    sqlx::query_scalar(&store.sql("SELECT COUNT(*) FROM calls WHERE id LIKE ?"))
        .bind(format!("{prefix}%"))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Records saved while the database is unreachable are taken at once, queue in memory
/// and then in the spool; a stop during the outage puts them all in the spool; the next
/// start writes every one of them, once, and empties the spool.
async fn records_survive_an_outage_and_a_restart_in_the_spool(store: Store, db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    let journal = spool.path().join("calls.jsonl");
    let (mut outage, writer_store) = Outage::prepare(db).await;
    let health = StoreHealth::new();
    let (writer, task) =
        StoreWriter::start(writer_store.clone(), options(spool.path(), 2, &health))
            .await
            .unwrap();

    outage.begin().await;
    let saving = Instant::now();
    for i in 0..10 {
        writer
            .save(call(&format!("out-{i:02}"), "13800138000"))
            .await;
    }
    assert!(
        saving.elapsed() < Duration::from_secs(2),
        "saving waited on the database: {:?}",
        saving.elapsed()
    );
    wait_for(
        "the writer finds the store down with all 10 queued",
        Duration::from_secs(20),
        || !health.is_up() && health.queued() == 10,
    )
    .await;
    assert!(health.reason().is_some());
    assert_eq!(lines(&journal).len(), 8, "2 in memory, 8 spilled to disk");

    // Stopped during the outage: the two held in memory go to the front of the spool.
    writer.close().await;
    task.await.unwrap();
    let spooled = lines(&journal);
    assert_eq!(spooled.len(), 10);
    let first: CallRecord = serde_json::from_str(&spooled[0]).unwrap();
    assert_eq!(first.id, "out-00", "in the order they came");
    assert_eq!(count_calls(&store, "out-").await, 0);

    // The next start, with the database back.
    outage.end().await;
    let health = StoreHealth::new();
    let (writer, task) =
        StoreWriter::start(writer_store.clone(), options(spool.path(), 2, &health))
            .await
            .unwrap();
    assert_eq!(health.queued(), 10);
    writer.flush().await;
    assert_eq!(count_calls(&store, "out-").await, 10);
    for i in 0..10 {
        assert!(store
            .get_call(&format!("out-{i:02}"))
            .await
            .unwrap()
            .is_some());
    }
    assert!(health.is_up());
    assert_eq!(health.queued(), 0);
    assert!(
        lines(&journal).is_empty(),
        "the spool is emptied once written"
    );
    writer.close().await;
    task.await.unwrap();
}

/// While the outage lasts the writer keeps retrying; when it ends, the queue drains on
/// its own (no restart) and the store is reported up again.
async fn the_queue_drains_when_the_database_is_back(store: Store, db: &TestDb) {
    let spool = tempfile::tempdir().unwrap();
    let (mut outage, writer_store) = Outage::prepare(db).await;
    let health = StoreHealth::new();
    let (writer, task) =
        StoreWriter::start(writer_store.clone(), options(spool.path(), 3, &health))
            .await
            .unwrap();
    writer.save(call("back-before", "1")).await;
    writer.flush().await;
    outage.begin().await;
    for i in 0..6 {
        writer.save(call(&format!("back-{i}"), "1")).await;
    }
    wait_for("down", Duration::from_secs(20), || !health.is_up()).await;
    outage.end().await;
    tokio::time::timeout(Duration::from_secs(30), writer.flush())
        .await
        .expect("the queue drains once the database is back");
    assert!(health.is_up());
    assert_eq!(health.queued(), 0);
    assert_eq!(count_calls(&store, "back-").await, 7);
    writer.close().await;
    task.await.unwrap();
}

/// Makes the database refuse, for good, any call whose caller is `caller` (a trigger that
/// raises an error: a permanent refusal, not an outage).
async fn refuse_caller(store: &Store, caller: &str) {
    let trigger = match store.backend() {
        Backend::Sqlite => format!(
            "CREATE TRIGGER refuse_calls BEFORE INSERT ON calls WHEN NEW.caller = '{caller}' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ),
        Backend::Postgres => format!(
            "CREATE FUNCTION refuse_calls() RETURNS trigger AS $$ BEGIN \
             IF NEW.caller = '{caller}' THEN RAISE EXCEPTION 'refused by the test' \
             USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_calls BEFORE INSERT ON calls FOR EACH ROW \
             EXECUTE FUNCTION refuse_calls()"
        ),
    };
    sqlx::raw_sql(&trigger).execute(store.pool()).await.unwrap();
}

/// A record the database refuses for good is set aside as a dead letter, whole; the
/// records around it are written.
async fn a_refused_record_becomes_a_dead_letter(store: Store, _db: &TestDb) {
    refuse_caller(&store, "refuse-me").await;
    let spool = tempfile::tempdir().unwrap();
    let health = StoreHealth::new();
    let (writer, task) = StoreWriter::start(store.clone(), options(spool.path(), 10, &health))
        .await
        .unwrap();
    writer.save(call("dl-1", "13800138000")).await;
    writer.save(call("dl-2", "refuse-me")).await;
    writer.save(call("dl-3", "13800138000")).await;
    writer.flush().await;
    assert!(store.get_call("dl-1").await.unwrap().is_some());
    assert!(store.get_call("dl-2").await.unwrap().is_none());
    assert!(store.get_call("dl-3").await.unwrap().is_some());
    assert!(health.is_up(), "a refusal is not an outage");
    let dead = lines(&spool.path().join("dead-letters.jsonl"));
    assert_eq!(dead.len(), 1);
    let letter: serde_json::Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(letter["record"]["id"], "dl-2");
    assert_eq!(letter["record"]["caller"], "refuse-me");
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .contains("refused by the test"),
        "{letter}"
    );
    writer.close().await;
    task.await.unwrap();
}

/// Records that queued during an outage are written in batches when it ends; a batch
/// the database refuses because of one record is written again record by record, so
/// exactly that record becomes a dead letter and every other one, before and after it in
/// the batch, is written (the later save of a call saved twice is the one kept).
async fn a_refused_record_in_a_batch_sets_aside_only_itself(store: Store, db: &TestDb) {
    refuse_caller(&store, "refuse-me").await;
    let spool = tempfile::tempdir().unwrap();
    let (mut outage, writer_store) = Outage::prepare(db).await;
    let health = StoreHealth::new();
    let (writer, task) =
        StoreWriter::start(writer_store.clone(), options(spool.path(), 100, &health))
            .await
            .unwrap();
    outage.begin().await;
    for i in 0..20 {
        let caller = if i == 11 { "refuse-me" } else { "13800138000" };
        writer.save(call(&format!("batch-{i:02}"), caller)).await;
    }
    // Saved again later in the same batch: this one is kept.
    writer.save(call("batch-03", "13900139000")).await;
    wait_for("down", Duration::from_secs(20), || !health.is_up()).await;
    outage.end().await;
    tokio::time::timeout(Duration::from_secs(30), writer.flush())
        .await
        .expect("the queue drains once the database is back");
    assert_eq!(count_calls(&store, "batch-").await, 19);
    assert!(store.get_call("batch-11").await.unwrap().is_none());
    let again = store.get_call("batch-03").await.unwrap().unwrap();
    assert_eq!(again.caller, "13900139000", "the later save wins");
    let dead = lines(&spool.path().join("dead-letters.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter: serde_json::Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(letter["record"]["id"], "batch-11");
    assert!(health.is_up());
    assert_eq!(health.queued(), 0);
    writer.close().await;
    task.await.unwrap();
}

crate::store_test!(
    a_refused_record_in_a_batch_sets_aside_only_itself,
    records_survive_an_outage_and_a_restart_in_the_spool,
    the_queue_drains_when_the_database_is_back,
    a_refused_record_becomes_a_dead_letter,
);
