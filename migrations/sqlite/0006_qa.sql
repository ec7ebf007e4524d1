-- QA scores and annotations (the QA issue). A score is never changed: a correction is a
-- new version with a reason, pointing at the version it supersedes. Times are BIGINT
-- epoch milliseconds.

CREATE TABLE qa_scores (
    id          TEXT    PRIMARY KEY NOT NULL,
    call_id     TEXT    NOT NULL,
    version     BIGINT  NOT NULL,                -- 1, 2, ... per call
    form        TEXT    NOT NULL,                -- form name
    items       TEXT    NOT NULL,                -- JSON [{key, label, weight, passed}]
    total       DOUBLE PRECISION NOT NULL,       -- 0-100: weight passed / weight in all
    comment     TEXT    NOT NULL,
    reason      TEXT,                            -- why a correction was made (versions > 1)
    supersedes  TEXT,                            -- id of the version it corrects
    author      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (call_id, version)
);

CREATE TABLE qa_annotations (
    id          TEXT    PRIMARY KEY NOT NULL,
    call_id     TEXT    NOT NULL,
    at_ms       BIGINT  NOT NULL,                -- position in the recording
    tag         TEXT    NOT NULL,
    comment     TEXT    NOT NULL,
    author      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE INDEX qa_annotations_call ON qa_annotations (call_id, at_ms);
