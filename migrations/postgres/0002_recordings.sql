-- Recording details kept with each call (twin of migrations/sqlite/0002_recordings.sql).

ALTER TABLE calls ADD COLUMN recording_sha256 TEXT COLLATE "C";
ALTER TABLE calls ADD COLUMN recording_ms BIGINT;
ALTER TABLE calls ADD COLUMN recording_bytes BIGINT;
ALTER TABLE calls ADD COLUMN interrupted SMALLINT NOT NULL DEFAULT 0;
-- JSON array of {"start_ms": n, "end_ms": n | null}
ALTER TABLE calls ADD COLUMN paused_spans TEXT COLLATE "C" NOT NULL DEFAULT '[]';
