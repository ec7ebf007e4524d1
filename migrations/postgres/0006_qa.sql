-- QA scores and annotations (twin of migrations/sqlite/0006_qa.sql).

CREATE TABLE qa_scores (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    call_id     TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    form        TEXT COLLATE "C" NOT NULL,
    items       TEXT COLLATE "C" NOT NULL,
    total       DOUBLE PRECISION NOT NULL,
    comment     TEXT COLLATE "C" NOT NULL,
    reason      TEXT COLLATE "C",
    supersedes  TEXT COLLATE "C",
    author      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (call_id, version)
);

CREATE TABLE qa_annotations (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    call_id     TEXT COLLATE "C" NOT NULL,
    at_ms       BIGINT NOT NULL,
    tag         TEXT COLLATE "C" NOT NULL,
    comment     TEXT COLLATE "C" NOT NULL,
    author      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX qa_annotations_call ON qa_annotations (call_id, at_ms);
