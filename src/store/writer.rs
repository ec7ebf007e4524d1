//! The one task that writes call records. Call control hands records over a bounded
//! channel and goes on: it never waits on the database, only (briefly) for room in the
//! queue when the disk has fallen far behind, which bounds memory instead of growing it.
//!
//! ```text
//!  call tasks ──save()──▶ [ bounded queue ] ──▶ writer task ──save_call()──▶ SQLite
//!  daemon ─────close()──▶        (FIFO)          drains what was queued, then ends
//! ```

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Store;
use crate::call::record::CallRecord;

/// Attempts at writing one record before it is given up (and logged as lost).
const WRITE_ATTEMPTS: u32 = 4;
/// Wait after the first failed attempt; doubled after each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

enum Command {
    Save(Box<CallRecord>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
    /// Take no more records; write what is queued, then end.
    Close,
}

/// The sending side of the writer task; cheap to clone, one per call task if need be.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    queue: mpsc::Sender<Command>,
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

impl StoreWriter {
    /// Starts the writer task with room for `capacity` queued records (at least 1). The
    /// daemon awaits the returned handle at shutdown, after [`StoreWriter::close`], so
    /// that no queued record is lost.
    pub fn spawn(store: Store, capacity: usize) -> (StoreWriter, JoinHandle<()>) {
        StoreWriter::spawn_with_tickets(store, capacity, None)
    }

    /// As [`StoreWriter::spawn`]; each record written is then also applied to the
    /// tickets it is a reply call of (replied, survey score), in the same order.
    pub fn spawn_with_tickets(
        store: Store,
        capacity: usize,
        tickets: Option<crate::tickets::Tickets>,
    ) -> (StoreWriter, JoinHandle<()>) {
        let (queue, commands) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(run(store, commands, tickets));
        (StoreWriter { queue }, task)
    }

    /// Queues `call` for writing, waiting for room if the queue is full. A later save of
    /// the same call id replaces the earlier one in the store.
    pub async fn save(&self, call: CallRecord) {
        let id = call.id.clone();
        if self
            .queue
            .send(Command::Save(Box::new(call)))
            .await
            .is_err()
        {
            tracing::error!(call_id = %id, "call record not saved: the store writer has stopped");
        }
    }

    /// Waits until every record queued before this call is written (or given up).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            // An error means the task has ended, which also means nothing is pending.
            let _ = written.await;
        }
    }

    /// Tells the task to take no more records, write every one already queued and end;
    /// await the task's `JoinHandle` to know it has. Records saved through other clones
    /// after this are refused (and logged).
    pub async fn close(self) {
        // An error means the task has already ended: nothing left to close.
        let _ = self.queue.send(Command::Close).await;
    }
}

async fn run(
    store: Store,
    mut commands: mpsc::Receiver<Command>,
    tickets: Option<crate::tickets::Tickets>,
) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Save(call) => {
                if write_with_retries(&store, &call).await {
                    if let Some(tickets) = &tickets {
                        tickets.on_call_saved(&call).await;
                    }
                }
            }
            Command::Flush(done) => {
                let _ = done.send(());
            }
            // Closing the receiver refuses new sends but still yields what is queued.
            Command::Close => commands.close(),
        }
    }
    tracing::debug!("store writer finished");
}

/// Writes one record, retrying a few times: the usual failures (a locked database, a
/// full disk being cleaned up) pass. Never panics; a record that cannot be written is
/// logged with its id so it can be found in the log.
async fn write_with_retries(store: &Store, call: &CallRecord) -> bool {
    let mut delay = FIRST_RETRY_DELAY;
    for attempt in 1..=WRITE_ATTEMPTS {
        match store.save_call(call).await {
            Ok(()) => return true,
            Err(e) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(call_id = %call.id, attempt, error = %e, "writing call record failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(call_id = %call.id, error = %e, "call record lost: writing failed {WRITE_ATTEMPTS} times");
            }
        }
    }
    false
}
