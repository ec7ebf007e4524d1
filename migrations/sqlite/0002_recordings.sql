-- Recording details kept with each call (the recording issue): the file's checksum,
-- length and size once closed, whether the daemon died while recording (the file was
-- repaired at the next start), and the spans paused for sensitive data.

ALTER TABLE calls ADD COLUMN recording_sha256 TEXT;
ALTER TABLE calls ADD COLUMN recording_ms INTEGER;
ALTER TABLE calls ADD COLUMN recording_bytes INTEGER;
ALTER TABLE calls ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
-- JSON array of {"start_ms": n, "end_ms": n | null}
ALTER TABLE calls ADD COLUMN paused_spans TEXT NOT NULL DEFAULT '[]';
