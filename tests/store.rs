//! The call store on both backends (a SQLite file, a PostgreSQL schema): round trips,
//! upserts, filters, the writer task, `threering migrate`; and SQLite's WAL mode.

use sqlx::Connection;
use threering::call::record::{
    AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide,
};
use threering::store::testing::TestDb;
use threering::store::{CallFilter, Store, StoreWriter};

/// 2025-03-01T00:00:00Z.
const T0: i64 = 1_740_787_200_000;

fn answered_call(id: &str, agent: &str, queue: &str, started_at: i64, ring_ms: i64) -> CallRecord {
    let ringing_at = started_at + 40;
    let answered_at = ringing_at + ring_ms;
    let rings = ring_ms / 5000 + 1;
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@pbx.example.com"),
        direction: Direction::Inbound,
        caller: "13800138000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some(queue.to_owned()),
        agent: Some(agent.to_owned()),
        started_at,
        caller_ringing_at: Some(ringing_at),
        answered_at: Some(answered_at),
        ended_at: Some(answered_at + 60_000),
        caller_ring_ms: Some(ring_ms),
        rings: Some(rings),
        three_ring_ok: Some(rings <= 3),
        over_limit: Some(rings > 5),
        outcome: CallOutcome::Answered,
        hangup_side: Some(HangupSide::Caller),
        talk_ms: Some(60_000),
        attempts: vec![
            AgentAttempt {
                agent: "1009".to_owned(),
                invited_at: ringing_at - 10,
                ring_started_at: ringing_at,
                ended_at: Some(ringing_at + 1000),
                ring_ms: Some(1000),
                outcome: AttemptOutcome::Busy,
                sip_status: Some(486),
            },
            AgentAttempt {
                agent: agent.to_owned(),
                invited_at: ringing_at + 1000,
                ring_started_at: ringing_at + 1020,
                ended_at: Some(answered_at),
                ring_ms: Some(ring_ms - 1020),
                outcome: AttemptOutcome::Answered,
                sip_status: Some(200),
            },
        ],
        recording_path: Some(format!("2025/03/01/{id}.wav")),
        survey_score: Some(5),
        survey_offered: false,
        recording: Default::default(),
        tickets: vec![],
    }
}

fn abandoned_call(id: &str, started_at: i64) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@pbx"),
        direction: Direction::Inbound,
        caller: "13900139000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some("consult".to_owned()),
        agent: None,
        started_at,
        caller_ringing_at: Some(started_at + 30),
        answered_at: None,
        ended_at: Some(started_at + 9000),
        caller_ring_ms: Some(8970),
        rings: None,
        three_ring_ok: None,
        over_limit: None,
        outcome: CallOutcome::Abandoned,
        hangup_side: Some(HangupSide::Caller),
        talk_ms: None,
        attempts: vec![AgentAttempt {
            agent: "1001".to_owned(),
            invited_at: started_at + 10,
            ring_started_at: started_at + 25,
            ended_at: None,
            ring_ms: None,
            outcome: AttemptOutcome::Cancelled,
            sip_status: None,
        }],
        recording_path: None,
        survey_score: None,
        survey_offered: false,
        recording: Default::default(),
        tickets: vec!["T-1".to_owned()],
    }
}

async fn file_store() -> (tempfile::TempDir, String, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("threering.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, url, store)
}

fn ids(calls: &[CallRecord]) -> Vec<&str> {
    calls.iter().map(|c| c.id.as_str()).collect()
}

async fn a_full_record_reads_back_as_written(store: Store, _db: &TestDb) {
    let mut call = answered_call("n1-a", "1001", "consult", T0, 12_400);
    call.tickets = vec!["T-9".to_owned(), "T-2".to_owned()];
    store.save_call(&call).await.unwrap();
    assert_eq!(store.get_call("n1-a").await.unwrap(), Some(call));

    let abandoned = abandoned_call("n1-b", T0 + 1);
    store.save_call(&abandoned).await.unwrap();
    assert_eq!(store.get_call("n1-b").await.unwrap(), Some(abandoned));

    assert_eq!(store.get_call("n1-none").await.unwrap(), None);
}

async fn saving_again_replaces_the_call_and_its_attempts(store: Store, _db: &TestDb) {
    let mut call = answered_call("n1-a", "1001", "consult", T0, 12_400);
    call.outcome = CallOutcome::Active;
    call.ended_at = None;
    store.save_call(&call).await.unwrap();
    store.save_call(&call).await.unwrap(); // idempotent

    call.outcome = CallOutcome::Answered;
    call.ended_at = Some(T0 + 99_000);
    call.attempts.remove(0);
    call.tickets = vec!["T-1".to_owned()];
    store.save_call(&call).await.unwrap();

    let stored = store.get_call("n1-a").await.unwrap().unwrap();
    assert_eq!(stored, call);
    assert_eq!(stored.attempts.len(), 1);
    assert_eq!(
        store
            .list_calls(&CallFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// `save_calls` writes many records in one go, across the statement chunks (more call
/// rows than one statement takes, more attempt rows too), with the same rows as saving
/// each in turn: a call that comes twice keeps its later record and only its attempts.
async fn a_batch_writes_the_same_rows_as_one_save_each(store: Store, _db: &TestDb) {
    let mut calls: Vec<CallRecord> = (0..70)
        .map(|i| {
            let mut call = answered_call(&format!("b-{i:03}"), "1001", "consult", T0 + i, 3_000);
            // One attempt more each: over 100 attempt rows, more than one statement takes.
            let mut second = call.attempts[0].clone();
            second.agent = "1002".to_owned();
            call.attempts.push(second);
            call
        })
        .collect();
    // b-005 already stored with 2 attempts; the batch brings it with 1.
    store.save_call(&calls[5]).await.unwrap();
    let mut later = calls[5].clone();
    later.attempts.truncate(1);
    later.outcome = CallOutcome::Abandoned;
    calls.push(later.clone());
    let refs: Vec<&CallRecord> = calls.iter().collect();
    store.save_calls(&refs).await.unwrap();
    for call in &calls[..70] {
        let stored = store.get_call(&call.id).await.unwrap().unwrap();
        if call.id == "b-005" {
            assert_eq!(stored, later, "the later record of b-005 is the one kept");
        } else {
            assert_eq!(&stored, call);
        }
    }
    let all = store
        .list_calls(&CallFilter {
            limit: Some(1000),
            ..CallFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 70);
    let per_call = calls[0].attempts.len();
    assert!(per_call >= 2);
    assert_eq!(
        all.iter().map(|c| c.attempts.len()).sum::<usize>(),
        69 * per_call + 1,
        "no attempt rows left over from the earlier save of b-005"
    );
    store.save_calls(&[]).await.unwrap();
}

async fn filters_narrow_the_list_newest_first(store: Store, _db: &TestDb) {
    let hour = 3_600_000;
    let mut linked = answered_call("c1", "1001", "consult", T0, 4_000); // 1 ring, ok
    linked.tickets = vec!["T-7".to_owned()];
    store.save_call(&linked).await.unwrap();
    store
        .save_call(&answered_call("c2", "1002", "consult", T0 + hour, 21_000)) // 5 rings
        .await
        .unwrap();
    store
        .save_call(&answered_call(
            "c3",
            "1001",
            "complaints",
            T0 + 2 * hour,
            16_000,
        )) // 4
        .await
        .unwrap();
    store
        .save_call(&abandoned_call("c4", T0 + 3 * hour))
        .await
        .unwrap();

    let list = |filter: CallFilter| {
        let store = store.clone();
        async move { store.list_calls(&filter).await.unwrap() }
    };
    assert_eq!(
        ids(&list(CallFilter::default()).await),
        ["c4", "c3", "c2", "c1"]
    );
    let by_agent = list(CallFilter {
        agent: Some("1001".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&by_agent), ["c3", "c1"]);
    let by_queue = list(CallFilter {
        queue: Some("complaints".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&by_queue), ["c3"]);
    let in_range = list(CallFilter {
        from: Some(T0 + hour),
        to: Some(T0 + 3 * hour),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&in_range), ["c3", "c2"], "from inclusive, to exclusive");
    let late = list(CallFilter {
        violation: Some(true),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&late), ["c3", "c2"]);
    let on_time = list(CallFilter {
        violation: Some(false),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&on_time), ["c1"]);
    let by_ticket = list(CallFilter {
        ticket: Some("T-7".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&by_ticket), ["c1"]);
    assert_eq!(by_ticket[0].attempts.len(), 2);
    let limited = list(CallFilter {
        limit: Some(2),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&limited), ["c4", "c3"]);
    let combined = list(CallFilter {
        agent: Some("1001".into()),
        violation: Some(true),
        from: Some(T0),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&combined), ["c3"]);
}

async fn the_writer_drains_every_queued_record_on_close(store: Store, db: &TestDb) {
    let (writer, task) = StoreWriter::spawn(store.clone(), 16);
    let mut senders = Vec::new();
    for part in 0..5 {
        let writer = writer.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..100 {
                let id = format!("w-{part}-{i:03}");
                writer
                    .save(answered_call(&id, "1001", "consult", T0 + i, 3000))
                    .await;
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    writer.close().await;
    task.await.unwrap();

    let all = store
        .list_calls(&CallFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 500);

    // And from a fresh pool: the rows are in the database, not just in the pool.
    store.close().await;
    let store = Store::open(&db.url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 500);
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_attempts")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(attempts, 1000);
}

async fn flush_waits_for_what_was_queued(store: Store, _db: &TestDb) {
    let (writer, task) = StoreWriter::spawn(store.clone(), 4);
    for i in 0..10 {
        writer
            .save(answered_call(
                &format!("f-{i}"),
                "1001",
                "consult",
                T0 + i,
                3000,
            ))
            .await;
    }
    writer.flush().await;
    assert_eq!(
        store
            .list_calls(&CallFilter::default())
            .await
            .unwrap()
            .len(),
        10
    );
    drop(writer); // the last sender gone also ends the task
    task.await.unwrap();
}

/// The caller filter matches its text as it is: `%` and `_` are plain characters.
async fn the_caller_filter_matches_text_as_is(store: Store, _db: &TestDb) {
    for (id, caller) in [("p1", "100%_off"), ("p2", "1000 off"), ("p3", "x100%_offy")] {
        let mut call = abandoned_call(id, T0);
        call.caller = caller.to_owned();
        store.save_call(&call).await.unwrap();
    }
    let found = store
        .list_calls(&CallFilter {
            caller: Some("0%_o".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&found), ["p3", "p1"]);
}

/// Text sorts by code point on both backends (PostgreSQL columns are `COLLATE "C"`), so
/// lists come back in the same order whatever the server's locale.
async fn ids_sort_by_code_point(store: Store, _db: &TestDb) {
    for id in ["n1-b", "n1_a", "N1-c", "n1-a"] {
        store.save_call(&abandoned_call(id, T0)).await.unwrap();
    }
    let all = store.list_calls(&CallFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["n1_a", "n1-b", "n1-a", "N1-c"]);
}

/// `threering migrate` creates the schema and says so without the password.
async fn migrate_brings_a_new_database_up_to_date(_store: Store, db: &TestDb) {
    let fresh = TestDb::new(db.backend).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("threering.toml");
    let embedded = include_str!("../config/threering.toml");
    let text = embedded.replace(
        "database = \"sqlite://threering.db\"",
        &format!("database = {:?}", fresh.url),
    );
    assert_ne!(text, embedded, "the embedded config names its database");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_threering"))
        .args(["migrate", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is up to date"));
    let store = Store::open(&fresh.url).await.unwrap();
    let versions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    // One row per migration file of this backend.
    let dir = format!(
        "{}/migrations/{}",
        env!("CARGO_MANIFEST_DIR"),
        match store.backend() {
            threering::store::Backend::Sqlite => "sqlite",
            threering::store::Backend::Postgres => "postgres",
        }
    );
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    assert!(files >= 8, "{dir}: {files} migration files");
    assert_eq!(versions, files as i64);
    store.close().await;
}

threering::store_test!(
    a_full_record_reads_back_as_written,
    saving_again_replaces_the_call_and_its_attempts,
    a_batch_writes_the_same_rows_as_one_save_each,
    filters_narrow_the_list_newest_first,
    the_writer_drains_every_queued_record_on_close,
    flush_waits_for_what_was_queued,
    the_caller_filter_matches_text_as_is,
    ids_sort_by_code_point,
    migrate_brings_a_new_database_up_to_date,
);

#[tokio::test]
async fn the_database_file_is_in_wal_mode() {
    let (dir, url, store) = file_store().await;
    store
        .save_call(&answered_call("n1-a", "1001", "consult", T0, 3000))
        .await
        .unwrap();
    assert!(dir.path().join("threering.db-wal").exists());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn missing_directories_are_created_and_reopening_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not").join("yet").join("reopen.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).await.unwrap();
    store
        .save_call(&answered_call("keep", "1001", "consult", T0, 3000))
        .await
        .unwrap();
    store.close().await;
    // Opening again runs the (already applied) migrations and keeps the data.
    let store = Store::open(&url).await.unwrap();
    assert!(store.get_call("keep").await.unwrap().is_some());
}
