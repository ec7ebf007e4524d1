-- Call records and their agent attempts (DESIGN.md "Ring timing"): the PostgreSQL twin of
-- migrations/sqlite/0001_calls.sql, same tables, columns and indexes.
-- Times are BIGINT epoch milliseconds (UTC), durations BIGINT milliseconds, booleans
-- SMALLINT 0/1 (as in SQLite, so both backends read them the same way), enums TEXT with
-- the names the API serves. Text sorts and compares by code point (COLLATE "C"), as
-- SQLite's BINARY does, whatever the database's default collation.

CREATE TABLE calls (
    id                TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    sip_call_id       TEXT COLLATE "C" NOT NULL,
    direction         TEXT COLLATE "C" NOT NULL,   -- inbound | outbound
    caller            TEXT COLLATE "C" NOT NULL,
    callee            TEXT COLLATE "C" NOT NULL,
    queue             TEXT COLLATE "C",
    agent             TEXT COLLATE "C",            -- the agent who answered
    started_at        BIGINT NOT NULL,
    caller_ringing_at BIGINT,
    answered_at       BIGINT,
    ended_at          BIGINT,
    caller_ring_ms    BIGINT,
    rings             BIGINT,
    three_ring_ok     SMALLINT,
    over_limit        SMALLINT,
    outcome           TEXT COLLATE "C" NOT NULL,   -- active | answered | abandoned | no_agent | rejected | failed
    hangup_side       TEXT COLLATE "C",            -- caller | agent | system
    talk_ms           BIGINT,
    recording_path    TEXT COLLATE "C",            -- relative to the recordings root
    survey_score      BIGINT,
    updated_at        BIGINT NOT NULL              -- when this row was last written
);

CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_agent_started_at ON calls (agent, started_at);
CREATE INDEX calls_queue_started_at ON calls (queue, started_at);
CREATE INDEX calls_sip_call_id ON calls (sip_call_id);

CREATE TABLE call_attempts (
    call_id         TEXT COLLATE "C" NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,             -- order of the attempt within the call
    agent           TEXT COLLATE "C" NOT NULL,
    invited_at      BIGINT NOT NULL,
    ring_started_at BIGINT NOT NULL,
    ended_at        BIGINT,
    ring_ms         BIGINT,
    outcome         TEXT COLLATE "C" NOT NULL,   -- ringing | answered | no-answer | busy | rejected | cancelled | failed
    sip_status      BIGINT,
    PRIMARY KEY (call_id, seq)
);

CREATE INDEX call_attempts_agent ON call_attempts (agent, ring_started_at);

CREATE TABLE call_tickets (
    call_id   TEXT COLLATE "C" NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,                   -- keeps the order the links were made in
    ticket_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (call_id, ticket_id)
);

CREATE INDEX call_tickets_ticket ON call_tickets (ticket_id);
