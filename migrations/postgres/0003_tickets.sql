-- Tickets, their append-only history, and roles on the call-ticket links (twin of
-- migrations/sqlite/0003_tickets.sql).

CREATE TABLE tickets (
    id                   TEXT COLLATE "C" PRIMARY KEY NOT NULL,   -- T-YYYYMMDD-NNNN
    kind                 TEXT COLLATE "C" NOT NULL,
    complexity           TEXT COLLATE "C",
    status               TEXT COLLATE "C" NOT NULL,
    customer             TEXT COLLATE "C",
    company              TEXT COLLATE "C",
    phone                TEXT COLLATE "C",
    area                 TEXT COLLATE "C",
    inquiry_type         TEXT COLLATE "C",
    waybill              TEXT COLLATE "C",
    content              TEXT COLLATE "C",
    shipper_verified     SMALLINT,                                -- 0/1
    assigned_team        TEXT COLLATE "C",
    assigned_agent       TEXT COLLATE "C",
    reply                TEXT COLLATE "C",
    created_by           TEXT COLLATE "C" NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    reply_due_at         BIGINT NOT NULL,
    promised_callback_at BIGINT,
    due_at               BIGINT NOT NULL,
    replied_at           BIGINT,
    closed_at            BIGINT,
    survey_score         BIGINT,
    survey_cause         TEXT COLLATE "C",
    survey_call_id       TEXT COLLATE "C",
    survey_at            BIGINT,
    no_survey_reason     TEXT COLLATE "C",
    archived_at          BIGINT,
    archive_path         TEXT COLLATE "C",
    archive_sha256       TEXT COLLATE "C",
    version              BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX tickets_status_due ON tickets (status, due_at);
CREATE INDEX tickets_created ON tickets (created_at);

CREATE TABLE ticket_history (
    ticket_id TEXT COLLATE "C" NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    author    TEXT COLLATE "C" NOT NULL,
    action    TEXT COLLATE "C" NOT NULL,
    note      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);

CREATE TABLE ticket_counters (
    day  TEXT COLLATE "C" PRIMARY KEY NOT NULL,                   -- YYYYMMDD
    last BIGINT NOT NULL
);

ALTER TABLE call_tickets ADD COLUMN role TEXT COLLATE "C" NOT NULL DEFAULT 'inbound';
ALTER TABLE call_tickets ADD COLUMN linked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE call_tickets ADD COLUMN linked_by TEXT COLLATE "C" NOT NULL DEFAULT 'sip';
