-- Tickets (work orders, 业务咨询单), their append-only history, and roles on the links
-- between calls and tickets (the tickets issue). Times are BIGINT epoch milliseconds
-- (UTC); enums TEXT with the names the API serves. Kept to SQL that PostgreSQL also runs.

CREATE TABLE tickets (
    id                   TEXT    PRIMARY KEY NOT NULL,   -- T-YYYYMMDD-NNNN
    kind                 TEXT    NOT NULL,               -- consultation | query | problem | complaint | order
    complexity           TEXT,                           -- simple | complex (complaints)
    status               TEXT    NOT NULL,               -- open | dispatched | replied | closed | reopened
    customer             TEXT,
    company              TEXT,
    phone                TEXT,
    area                 TEXT,
    inquiry_type         TEXT,
    waybill              TEXT,
    content              TEXT,
    shipper_verified     INTEGER,                        -- caller checked to be the shipper (0/1)
    assigned_team        TEXT,
    assigned_agent       TEXT,
    reply                TEXT,
    created_by           TEXT    NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    reply_due_at         BIGINT  NOT NULL,               -- from the SLA clock
    promised_callback_at BIGINT,                         -- a callback promised to the customer
    due_at               BIGINT  NOT NULL,               -- the earlier of the two
    replied_at           BIGINT,
    closed_at            BIGINT,
    survey_score         INTEGER,
    survey_cause         TEXT,                           -- customer | company
    survey_call_id       TEXT,                           -- the reply call the score came from
    survey_at            BIGINT,
    no_survey_reason     TEXT,                           -- why there is no survey (archiving needs one or the other)
    archived_at          BIGINT,
    archive_path         TEXT,                           -- relative to the archive root
    archive_sha256       TEXT,
    version              BIGINT  NOT NULL DEFAULT 0      -- bumped on every write (optimistic locking)
);

CREATE INDEX tickets_status_due ON tickets (status, due_at);
CREATE INDEX tickets_created ON tickets (created_at);

CREATE TABLE ticket_history (
    ticket_id TEXT    NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    seq       BIGINT  NOT NULL,
    at        BIGINT  NOT NULL,
    author    TEXT    NOT NULL,
    action    TEXT    NOT NULL,                          -- created | updated | status | note | link | survey | callback | archived
    note      TEXT    NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);

-- The last ticket number given out on each local day.
CREATE TABLE ticket_counters (
    day  TEXT   PRIMARY KEY NOT NULL,                    -- YYYYMMDD
    last BIGINT NOT NULL
);

ALTER TABLE call_tickets ADD COLUMN role TEXT NOT NULL DEFAULT 'inbound';   -- inbound | work-contact | reply
ALTER TABLE call_tickets ADD COLUMN linked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE call_tickets ADD COLUMN linked_by TEXT NOT NULL DEFAULT 'sip';
