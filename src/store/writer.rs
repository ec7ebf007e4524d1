//! The one task that writes call records. Call control hands records over a bounded
//! channel and goes on: it never waits on the database. The task keeps taking records
//! while the database is slow or unreachable, so the channel does not fill up.
//!
//! ```text
//!  call tasks ──save()──▶ [ channel ] ──▶ writer task ──save_calls()──▶ database
//!                                            │   ▲
//!                        memory full / down  ▼   │ read back in order
//!                                         [ spool: calls.jsonl, fsynced ]
//! ```
//!
//! Records are written strictly in the order they came (a later save of a call replaces
//! an earlier one, so order matters). A write that fails for a transient reason
//! ([`StoreError::is_transient`]: server down, connection lost, database locked past
//! the busy timeout, disk full) marks the store down: the record stays at the head of
//! the queue and is retried with a growing delay (0.1 s doubling to 2 s), while new
//! records queue behind it, up to `memory_queue` in memory and then in the spool file.
//! While idle the task probes the database every 5 s, so an outage shows without calls.
//! Down is reported once in the log (error), in `/healthz` ("degraded") and in the
//! metrics `threering_store_up` / `threering_store_queued_records`; the recovery is
//! logged (info) when a write or probe succeeds again.
//!
//! A write is an upsert by call id in one transaction, so retrying one whose commit
//! may or may not have happened (the connection broke) never writes a call twice. The
//! records that queued while a write ran are written together, up to [`MAX_BATCH`] in
//! one transaction. A record the database refuses for a permanent reason (a constraint,
//! a value it cannot store) is logged with its full JSON and kept in the spool's
//! `dead-letters.jsonl`; it never holds up the records behind it and is never silently
//! dropped: a batch refused as a whole is written again one record at a time, so only
//! the record at fault is set aside.
//!
//! At shutdown the task writes what is queued; if the database is down then, what is
//! queued goes to the spool (ahead of what is already there) and the next start
//! replays it. Records held in memory are lost only if the process is killed (not
//! stopped) during an outage; `memory_queue = 0` puts every waiting record on disk.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::spool::Spool;
use super::{Store, StoreError, StoreHealth};
use crate::call::record::CallRecord;

/// Wait after the first failed attempt; doubled after each further one, up to
/// [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Longest one write may take before it counts as failed (transiently) and is retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often an idle writer checks that the database still answers.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Most records read back from the spool at once.
const READ_BACK: usize = 256;
/// Most records written in one transaction. Records that queued up while the previous
/// write ran go together: one transaction and a few multi-row statements instead of
/// several statements and a commit a record.
const MAX_BATCH: usize = 64;
/// How long a record may wait for others to join its batch (unless the batch is full, a
/// flush waits or the writer is stopping): a group commit. Records come at each answer
/// and end of a call, so under load one transaction takes many, and an idle system
/// writes a record this much later.
const LINGER: Duration = Duration::from_millis(20);
/// At shutdown, how long the task keeps retrying an unreachable database before it puts
/// what is queued in the spool and ends.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(3);

enum Command {
    Save(Box<CallRecord>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
    /// Take no more records; write what is queued (or spool it), then end.
    Close,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Save(call) => write!(f, "Save({})", call.id),
            Command::Flush(_) => f.write_str("Flush"),
            Command::Close => f.write_str("Close"),
        }
    }
}

/// How the writer task runs.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Records the channel from call control holds (at least 1).
    pub capacity: usize,
    /// Records kept in memory while they cannot be written; more go to the spool.
    /// Without a spool, a full memory queue makes [`StoreWriter::save`] wait.
    pub memory_queue: usize,
    /// The spool directory (see `store::spool`); `None`: memory only.
    pub spool: Option<PathBuf>,
    /// Each record written is then also applied to the tickets it is a reply call of
    /// (replied, survey score), in the same order.
    pub tickets: Option<crate::tickets::Tickets>,
    /// Where the task reports whether the database takes writes.
    pub health: StoreHealth,
}

impl WriterOptions {
    /// Memory only, no tickets, a fresh health report.
    pub fn new(capacity: usize) -> WriterOptions {
        WriterOptions {
            capacity,
            memory_queue: 1000,
            spool: None,
            tickets: None,
            health: StoreHealth::new(),
        }
    }
}

/// The sending side of the writer task; cheap to clone, one per call task if need be.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    queue: mpsc::Sender<Command>,
}

impl StoreWriter {
    /// Starts the writer task with room for `capacity` queued records (at least 1),
    /// memory only. The daemon awaits the returned handle at shutdown, after
    /// [`StoreWriter::close`], so that no queued record is lost.
    pub fn spawn(store: Store, capacity: usize) -> (StoreWriter, JoinHandle<()>) {
        let writer = Writer::new(store, WriterOptions::new(capacity), None);
        StoreWriter::run(writer, capacity)
    }

    /// Starts the writer task as `options` say; opens the spool first (creating its
    /// directory), and queues what an earlier run left in it ahead of anything new.
    pub async fn start(
        store: Store,
        options: WriterOptions,
    ) -> std::io::Result<(StoreWriter, JoinHandle<()>)> {
        let spool = match &options.spool {
            Some(dir) => Some(Spool::open(dir).await?),
            None => None,
        };
        if let Some(spool) = &spool {
            if spool.unread() > 0 {
                tracing::warn!(
                    records = spool.unread(),
                    "call records left in the spool by an earlier run; writing them first"
                );
            }
        }
        let capacity = options.capacity;
        Ok(StoreWriter::run(
            Writer::new(store, options, spool),
            capacity,
        ))
    }

    fn run(writer: Writer, capacity: usize) -> (StoreWriter, JoinHandle<()>) {
        let (queue, commands) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(writer.run(commands));
        (StoreWriter { queue }, task)
    }

    /// Queues `call` for writing. Waits only if the channel is full, which the task
    /// prevents by taking records off it whatever the database does (unless it has no
    /// spool and its memory queue is full). A later save of the same call id replaces
    /// the earlier one in the store.
    pub async fn save(&self, call: CallRecord) {
        if let Err(mpsc::error::SendError(Command::Save(call))) =
            self.queue.send(Command::Save(Box::new(call))).await
        {
            tracing::error!(
                call_id = %call.id,
                record = %serde_json::to_string(&call).unwrap_or_default(),
                "call record not saved: the store writer has stopped"
            );
        }
    }

    /// Waits until every record queued before this call is written (or set aside as a
    /// dead letter). While the database is down, that is after it is back.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            // An error means the task has ended, which also means nothing is pending.
            let _ = written.await;
        }
    }

    /// Tells the task to take no more records, write every one already queued (or put
    /// it in the spool if the database is down) and end; await the task's `JoinHandle`
    /// to know it has. Records saved through other clones after this are refused (and
    /// logged).
    pub async fn close(self) {
        // An error means the task has already ended: nothing left to close.
        let _ = self.queue.send(Command::Close).await;
    }
}

/// A record waiting to be written.
struct Queued {
    item: Item,
    /// When it was taken in (`None`: read back from the spool, not to be held back).
    at: Option<Instant>,
    /// For a record read back from the spool: the journal offset to commit once it is
    /// written.
    spool_end: Option<u64>,
}

enum Item {
    Record(Box<CallRecord>),
    /// A spool line that is not a record (a torn write): set aside, never dropped.
    Unreadable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Writing this many records from the head of the queue, in one transaction.
    Write(usize),
    /// Checking that an idle database answers.
    Probe,
}

struct Writer {
    store: Store,
    tickets: Option<crate::tickets::Tickets>,
    health: StoreHealth,
    memory_queue: usize,
    /// Records in memory, oldest first; the head is the one being written.
    backlog: VecDeque<Queued>,
    spool: Option<Spool>,
    /// Records taken in so far, and records written (or set aside) so far: the queue is
    /// first in, first out, so a flush asked for after `n` records is done at `n`.
    received: u64,
    completed: u64,
    waiters: Vec<(u64, oneshot::Sender<()>)>,
    /// Since when the database has been unreachable, while it is.
    down_since: Option<Instant>,
    delay: Duration,
    retry_at: Instant,
    next_probe: Instant,
    /// After a batch the database refused for good: how many records from the head are
    /// written one at a time, to find the one it refuses and write the others.
    singly: usize,
    /// Set by [`Writer::next_job`] when it holds the head record back to gather a batch:
    /// when to look again.
    gather_until: Option<Instant>,
}

impl Writer {
    fn new(store: Store, options: WriterOptions, spool: Option<Spool>) -> Writer {
        let now = Instant::now();
        let replayed = spool.as_ref().map_or(0, |s| s.unread() as u64);
        options.health.set_queued(replayed);
        Writer {
            store,
            tickets: options.tickets,
            health: options.health,
            memory_queue: options.memory_queue,
            backlog: VecDeque::new(),
            spool,
            received: replayed,
            completed: 0,
            waiters: Vec::new(),
            down_since: None,
            delay: FIRST_RETRY_DELAY,
            retry_at: now,
            next_probe: now + PROBE_EVERY,
            singly: 0,
            gather_until: None,
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut inflight: Option<(Job, BoxFuture<'static, Result<(), StoreError>>)> = None;
        // Whether the channel may still yield commands, and whether a close was asked.
        let mut receiving = true;
        let mut closing = false;
        // When the channel was found closed and empty.
        let mut stopping_since: Option<Instant> = None;
        loop {
            if inflight.is_none() {
                self.read_back().await;
                let hurry = !receiving || closing || !self.waiters.is_empty();
                inflight = self.next_job(hurry);
                if inflight.is_none() && !receiving {
                    let since = *stopping_since.get_or_insert_with(Instant::now);
                    if self.is_empty() {
                        break;
                    }
                    if self.down_since.is_some() && since.elapsed() >= SHUTDOWN_RETRY {
                        self.spool_and_stop().await;
                        break;
                    }
                }
            }
            let wake = match &inflight {
                None if !self.backlog.is_empty() => {
                    Some(self.gather_until.unwrap_or(self.retry_at))
                }
                None => Some(self.next_probe),
                Some(_) => None,
            };
            tokio::select! {
                command = commands.recv(), if receiving && (closing || self.has_room()) => {
                    match command {
                        Some(Command::Save(call)) => self.accept(call).await,
                        Some(Command::Flush(done)) => self.add_waiter(done),
                        // Closing the receiver refuses new sends but still yields what
                        // is queued.
                        Some(Command::Close) => {
                            closing = true;
                            commands.close();
                        }
                        None => receiving = false,
                    }
                }
                result = async {
                    match inflight.as_mut() {
                        Some((_, job)) => job.await,
                        None => std::future::pending().await,
                    }
                }, if inflight.is_some() => {
                    if let Some((job, _)) = inflight.take() {
                        self.finish(job, result).await;
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            }
        }
        for (_, done) in self.waiters.drain(..) {
            let _ = done.send(());
        }
        tracing::debug!("store writer finished");
    }

    fn is_empty(&self) -> bool {
        self.backlog.is_empty() && self.spool.as_ref().is_none_or(|s| s.unread() == 0)
    }

    fn unread(&self) -> usize {
        self.spool.as_ref().map_or(0, Spool::unread)
    }

    /// Whether another record can be taken off the channel now.
    fn has_room(&self) -> bool {
        self.spool.is_some() || self.backlog.len() < self.memory_queue.max(1)
    }

    fn report_queued(&self) {
        self.health
            .set_queued((self.backlog.len() + self.unread()) as u64);
    }

    /// Queues a record: in memory if nothing waits in the spool (order) and memory has
    /// room, in the spool otherwise.
    async fn accept(&mut self, call: Box<CallRecord>) {
        self.received += 1;
        let to_memory = self.unread() == 0
            && (self.backlog.is_empty() || self.backlog.len() < self.memory_queue);
        let call = match (&mut self.spool, to_memory) {
            (Some(spool), false) => match spool.append(&call).await {
                Ok(()) => None,
                Err(e) => {
                    // Memory beyond its bound rather than a lost record.
                    tracing::error!(call_id = %call.id, error = %e, "cannot write the call record to the spool; keeping it in memory");
                    Some(call)
                }
            },
            _ => Some(call),
        };
        if let Some(call) = call {
            self.backlog.push_back(Queued {
                item: Item::Record(call),
                at: Some(Instant::now()),
                spool_end: None,
            });
        }
        self.report_queued();
    }

    fn add_waiter(&mut self, done: oneshot::Sender<()>) {
        if self.completed >= self.received {
            let _ = done.send(());
        } else {
            self.waiters.push((self.received, done));
        }
    }

    /// Tops the memory queue up from the spool, oldest first.
    async fn read_back(&mut self) {
        let room = self.memory_queue.max(1).saturating_sub(self.backlog.len());
        let Some(spool) = &mut self.spool else {
            return;
        };
        if room == 0 || spool.unread() == 0 {
            return;
        }
        match spool.read(room.min(READ_BACK)).await {
            Ok(lines) => {
                for line in lines {
                    self.backlog.push_back(Queued {
                        item: match line.record {
                            Ok(record) => Item::Record(record),
                            Err(text) => Item::Unreadable(text),
                        },
                        at: None,
                        spool_end: Some(line.end),
                    });
                }
            }
            // Tried again on the next turn; the records stay in the file.
            Err(e) => tracing::error!(error = %e, "cannot read the call-record spool"),
        }
    }

    /// The job to run now, if any: the records at the head of the queue (unless waiting
    /// out a retry delay, or giving a batch [`LINGER`] to gather), or a probe of an idle
    /// database when one is due.
    /// `hurry`: write what is there now, without waiting for a batch to gather.
    fn next_job(
        &mut self,
        hurry: bool,
    ) -> Option<(Job, BoxFuture<'static, Result<(), StoreError>>)> {
        let now = Instant::now();
        self.gather_until = None;
        match self.backlog.front() {
            Some(Queued {
                item: Item::Record(_),
                at,
                ..
            }) => {
                if self.down_since.is_some() && now < self.retry_at {
                    return None;
                }
                let gathered = at.map(|at| at + LINGER).filter(|until| {
                    !hurry && self.singly == 0 && self.backlog.len() < MAX_BATCH && now < *until
                });
                if let Some(until) = gathered {
                    self.gather_until = Some(until);
                    return None;
                }
                let limit = if self.singly > 0 { 1 } else { MAX_BATCH };
                // The records at the head, up to the first line that is not one.
                let calls: Vec<CallRecord> = self
                    .backlog
                    .iter()
                    .take(limit)
                    .map_while(|queued| match &queued.item {
                        Item::Record(call) => Some(CallRecord::clone(call)),
                        Item::Unreadable(_) => None,
                    })
                    .collect();
                let store = self.store.clone();
                Some((
                    Job::Write(calls.len()),
                    Box::pin(async move {
                        let calls: Vec<&CallRecord> = calls.iter().collect();
                        tokio::time::timeout(WRITE_TIMEOUT, store.save_calls(&calls))
                            .await
                            .unwrap_or(Err(StoreError::TimedOut(WRITE_TIMEOUT)))
                    }),
                ))
            }
            // Not a record: nothing to write, set it aside at once.
            Some(Queued {
                item: Item::Unreadable(_),
                ..
            }) => Some((Job::Write(1), Box::pin(async { Ok(()) }))),
            None if now >= self.next_probe => {
                let store = self.store.clone();
                Some((
                    Job::Probe,
                    Box::pin(async move {
                        tokio::time::timeout(WRITE_TIMEOUT, store.ping())
                            .await
                            .unwrap_or(Err(StoreError::TimedOut(WRITE_TIMEOUT)))
                    }),
                ))
            }
            None => None,
        }
    }

    async fn finish(&mut self, job: Job, result: Result<(), StoreError>) {
        match result {
            Err(e) if e.is_transient() => self.failed(&e),
            Err(e) => {
                // The database answered: it is up, it just will not take this.
                self.recovered();
                match job {
                    // A batch was refused as a whole (and rolled back): write its
                    // records one at a time to set aside only the one at fault.
                    Job::Write(n) if n > 1 => self.singly = n,
                    Job::Write(_) => {
                        self.singly = self.singly.saturating_sub(1);
                        if let Some(queued) = self.backlog.pop_front() {
                            self.set_aside(queued.item, &e.to_string()).await;
                            self.complete(queued.spool_end).await;
                        }
                    }
                    Job::Probe => {
                        tracing::warn!(error = %e, "store probe failed");
                        self.next_probe = Instant::now() + PROBE_EVERY;
                    }
                }
            }
            Ok(()) => {
                self.recovered();
                match job {
                    Job::Write(n) => {
                        self.singly = self.singly.saturating_sub(n);
                        for _ in 0..n {
                            let Some(queued) = self.backlog.pop_front() else {
                                break;
                            };
                            match &queued.item {
                                Item::Record(call) => {
                                    if let Some(tickets) = &self.tickets {
                                        tickets.on_call_saved(call).await;
                                    }
                                }
                                Item::Unreadable(_) => {
                                    self.set_aside(queued.item, "not a call record").await;
                                }
                            }
                            self.complete(queued.spool_end).await;
                        }
                    }
                    Job::Probe => self.next_probe = Instant::now() + PROBE_EVERY,
                }
            }
        }
    }

    /// One more record done (written or set aside): commit it in the spool, answer the
    /// flushes it was the last one for.
    async fn complete(&mut self, spool_end: Option<u64>) {
        self.completed += 1;
        if let (Some(end), Some(spool)) = (spool_end, &mut self.spool) {
            if let Err(e) = spool.commit(end).await {
                // The record may be written again at the next start: harmless.
                tracing::error!(error = %e, "cannot record progress in the call-record spool");
            }
        }
        let completed = self.completed;
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].0 <= completed {
                let (_, done) = self.waiters.swap_remove(i);
                let _ = done.send(());
            } else {
                i += 1;
            }
        }
        self.report_queued();
    }

    /// A transient failure: the store is down (logged once per outage); retry later.
    fn failed(&mut self, error: &StoreError) {
        let now = Instant::now();
        if self.down_since.is_none() {
            self.down_since = Some(now);
            self.delay = FIRST_RETRY_DELAY;
            tracing::error!(
                error = %error,
                queued = self.backlog.len() + self.unread(),
                "store unreachable: call records are queued until it is back"
            );
        } else {
            self.delay = (self.delay * 2).min(MAX_RETRY_DELAY);
            tracing::debug!(error = %error, "store still unreachable");
        }
        self.health.set_down(error.to_string());
        self.retry_at = now + self.delay;
        self.next_probe = self.retry_at;
    }

    fn recovered(&mut self) {
        if let Some(since) = self.down_since.take() {
            tracing::info!(
                down_secs = since.elapsed().as_secs_f64(),
                queued = self.backlog.len() + self.unread(),
                "store reachable again: writing the queued call records"
            );
            self.health.set_up();
        }
        self.delay = FIRST_RETRY_DELAY;
    }

    /// A record the database refused for good: logged whole and kept in the spool's
    /// dead letters (only logged when there is no spool).
    async fn set_aside(&self, item: Item, error: &str) {
        let (call_id, record) = match &item {
            Item::Record(call) => (
                call.id.clone(),
                serde_json::to_value(call).unwrap_or(serde_json::Value::Null),
            ),
            Item::Unreadable(text) => (String::new(), serde_json::Value::String(text.clone())),
        };
        tracing::error!(
            call_id = %call_id,
            error = %error,
            record = %record,
            "call record refused by the database for good; kept as a dead letter"
        );
        if let Some(spool) = &self.spool {
            let line = serde_json::json!({
                "at": chrono::Utc::now().timestamp_millis(),
                "error": error,
                "record": record,
            });
            if let Err(e) = spool.dead_letter(&line).await {
                tracing::error!(call_id = %call_id, error = %e, "cannot write the dead letter to the spool (the record is in this log)");
            }
        }
    }

    /// Stopping while the database is down: what is queued in memory goes to the front
    /// of the spool, for the next start. Without a spool (or if it fails) each record
    /// is logged whole, as the last place it exists.
    async fn spool_and_stop(&mut self) {
        let mut calls = Vec::new();
        for queued in std::mem::take(&mut self.backlog) {
            match queued.item {
                Item::Record(call) => calls.push(call),
                unreadable @ Item::Unreadable(_) => {
                    self.set_aside(unreadable, "not a call record").await;
                }
            }
        }
        let records: Vec<&CallRecord> = calls.iter().map(|c| c.as_ref()).collect();
        let spooled = match &mut self.spool {
            Some(spool) => match spool.requeue_front(&records).await {
                Ok(()) => {
                    tracing::warn!(
                        records = spool.unread(),
                        "store still unreachable at shutdown: call records left in the spool for the next start"
                    );
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot put the queued call records in the spool");
                    false
                }
            },
            None => false,
        };
        if !spooled {
            for call in records {
                tracing::error!(
                    call_id = %call.id,
                    record = %serde_json::to_string(call).unwrap_or_default(),
                    "call record lost at shutdown: the store is unreachable and there is no spool"
                );
            }
        }
    }
}
