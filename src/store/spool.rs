//! The spool: call records waiting for the database, on local disk, in the order they
//! came, so that an outage longer than memory allows (or a restart during one) loses
//! nothing. One directory:
//!
//! ```text
//! calls.jsonl         one CallRecord JSON per line, appended and fsynced
//! calls.offset        bytes of calls.jsonl already written to the database (absent: 0)
//! dead-letters.jsonl  records the database refused for good: {"at", "error", "record"}
//! ```
//!
//! Records are read back from the front while new ones are appended at the back. The
//! offset moves (durably) after each record read back is written, so a crash replays from
//! the first record not yet written; replaying that one again is harmless (a save is an
//! upsert by call id) and, because the offset never runs ahead of the writes, an older
//! version of a call is never written after a newer one. When everything has been
//! written the journal is truncated.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

use crate::call::record::CallRecord;

const JOURNAL: &str = "calls.jsonl";
const OFFSET: &str = "calls.offset";
const DEAD_LETTERS: &str = "dead-letters.jsonl";

/// One line read back from the journal.
#[derive(Debug)]
pub(super) struct Spooled {
    /// The record, or the line that is not one (a torn write, a hand edit).
    pub record: Result<Box<CallRecord>, String>,
    /// Journal offset just past this line: what to commit once it is written.
    pub end: u64,
}

#[derive(Debug)]
pub(super) struct Spool {
    dir: PathBuf,
    /// The journal, opened for appending.
    journal: File,
    /// Bytes of the journal read back into memory so far.
    read_pos: u64,
    /// Records in the journal not yet read back.
    unread: usize,
}

impl Spool {
    /// Opens (creating it) the spool in `dir`; what a previous run left unwritten is
    /// [`Spool::unread`].
    pub async fn open(dir: &Path) -> std::io::Result<Spool> {
        tokio::fs::create_dir_all(dir).await?;
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))
            .await?;
        let len = journal.metadata().await?.len();
        let committed = match tokio::fs::read_to_string(dir.join(OFFSET)).await {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let read_pos = if committed <= len { committed } else { 0 };
        let mut spool = Spool {
            dir: dir.to_owned(),
            journal,
            read_pos,
            unread: 0,
        };
        spool.unread = spool.count_lines_from(read_pos).await?;
        Ok(spool)
    }

    /// Records in the journal not yet read back.
    pub fn unread(&self) -> usize {
        self.unread
    }

    /// Appends `record` and syncs it to disk.
    pub async fn append(&mut self, record: &CallRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.journal.write_all(&line).await?;
        self.journal.sync_data().await?;
        self.unread += 1;
        Ok(())
    }

    /// Reads back up to `max` records from the front.
    pub async fn read(&mut self, max: usize) -> std::io::Result<Vec<Spooled>> {
        let mut out = Vec::new();
        if self.unread == 0 || max == 0 {
            return Ok(out);
        }
        let mut reader = self.reader_at(self.read_pos).await?;
        let mut line = String::new();
        while out.len() < max {
            line.clear();
            let n = reader.read_line(&mut line).await?;
            if n == 0 {
                break;
            }
            self.read_pos += n as u64;
            self.unread = self.unread.saturating_sub(1);
            let text = line.trim_end_matches('\n');
            if text.trim().is_empty() {
                continue;
            }
            out.push(Spooled {
                record: serde_json::from_str(text).map_err(|_| text.to_owned()),
                end: self.read_pos,
            });
        }
        Ok(out)
    }

    /// Records that everything up to `end` is in the database. Once everything read
    /// back is, and nothing is left unread, the journal is emptied.
    pub async fn commit(&mut self, end: u64) -> std::io::Result<()> {
        if self.unread == 0 && end >= self.read_pos {
            self.journal.set_len(0).await?;
            self.journal.sync_all().await?;
            self.read_pos = 0;
            return match tokio::fs::remove_file(self.dir.join(OFFSET)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        write_synced(&self.dir.join(OFFSET), end.to_string().as_bytes()).await
    }

    /// Puts `front` (records held in memory, oldest first, all older than anything in
    /// the journal's unread part) back in the journal ahead of its unread part: what
    /// the writer does when it must stop while the database is down. Rewrites the
    /// journal through a temporary file and a rename, so a crash leaves the old one.
    pub async fn requeue_front(&mut self, front: &[&CallRecord]) -> std::io::Result<()> {
        let tmp_path = self.dir.join(format!("{JOURNAL}.tmp"));
        let mut tmp = File::create(&tmp_path).await?;
        for record in front {
            let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            tmp.write_all(&line).await?;
        }
        let mut rest = self.reader_at(self.read_pos).await?;
        tokio::io::copy_buf(&mut rest, &mut tmp).await?;
        tmp.sync_all().await?;
        drop(tmp);
        tokio::fs::rename(&tmp_path, self.dir.join(JOURNAL)).await?;
        match tokio::fs::remove_file(self.dir.join(OFFSET)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        sync_dir(&self.dir).await;
        *self = Spool::open(&self.dir).await?;
        Ok(())
    }

    /// Keeps a record the database refused for good (with the reason), so that it can
    /// be looked at and put in by hand; it is never dropped.
    pub async fn dead_letter(&self, line: &serde_json::Value) -> std::io::Result<()> {
        let path = self.dir.join(DEAD_LETTERS);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        file.write_all(&bytes).await?;
        file.sync_data().await
    }

    async fn reader_at(&self, pos: u64) -> std::io::Result<BufReader<File>> {
        let mut file = File::open(self.dir.join(JOURNAL)).await?;
        file.seek(SeekFrom::Start(pos)).await?;
        Ok(BufReader::new(file))
    }

    async fn count_lines_from(&self, pos: u64) -> std::io::Result<usize> {
        let mut reader = self.reader_at(pos).await?;
        let mut lines = 0;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).await? == 0 {
                return Ok(lines);
            }
            lines += 1;
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, synced.
async fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&tmp, path).await
}

/// Makes a rename in `dir` durable; best effort (not every platform can open a
/// directory).
async fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir).await {
        let _ = d.sync_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> CallRecord {
        CallRecord::abandoned_for_test(id, 1)
    }

    fn ids(read: &[Spooled]) -> Vec<String> {
        read.iter()
            .map(|s| s.record.as_ref().map_or("?".into(), |r| r.id.clone()))
            .collect()
    }

    #[tokio::test]
    async fn records_come_back_in_order_and_a_reopen_resumes_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).await.unwrap();
        for id in ["a", "b", "c"] {
            spool.append(&record(id)).await.unwrap();
        }
        assert_eq!(spool.unread(), 3);
        let first = spool.read(2).await.unwrap();
        assert_eq!(ids(&first), ["a", "b"]);
        spool.commit(first[0].end).await.unwrap();
        drop(spool);

        // A crash here: "a" is written, "b" was read but not written.
        let mut spool = Spool::open(dir.path()).await.unwrap();
        assert_eq!(spool.unread(), 2);
        let again = spool.read(10).await.unwrap();
        assert_eq!(ids(&again), ["b", "c"]);
        spool.commit(again[1].end).await.unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(JOURNAL)).unwrap().len(),
            0,
            "emptied once all is written"
        );
        assert!(!dir.path().join(OFFSET).exists());
        let spool = Spool::open(dir.path()).await.unwrap();
        assert_eq!(spool.unread(), 0);
    }

    #[tokio::test]
    async fn requeued_records_go_ahead_of_the_unread_ones_and_torn_lines_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).await.unwrap();
        for id in ["c", "d"] {
            spool.append(&record(id)).await.unwrap();
        }
        let (a, b) = (record("a"), record("b"));
        spool.requeue_front(&[&a, &b]).await.unwrap();
        assert_eq!(spool.unread(), 4);
        // A write cut short by a crash.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"id\":\"e\",\"sip"))
            .unwrap();
        let mut spool = Spool::open(dir.path()).await.unwrap();
        let read = spool.read(10).await.unwrap();
        assert_eq!(ids(&read), ["a", "b", "c", "d", "?"]);
        assert_eq!(read[4].record.as_ref().unwrap_err(), "{\"id\":\"e\",\"sip");
        spool
            .dead_letter(&serde_json::json!({"line": "x"}))
            .await
            .unwrap();
        assert!(dir.path().join(DEAD_LETTERS).exists());
    }
}
