-- Call records and their agent attempts (DESIGN.md "Ring timing").
-- Times are INTEGER epoch milliseconds (UTC), durations INTEGER milliseconds, booleans
-- INTEGER 0/1, enums TEXT with the names the API serves (CallOutcome::as_str() etc.).

CREATE TABLE calls (
    id                TEXT    PRIMARY KEY NOT NULL,
    sip_call_id       TEXT    NOT NULL,
    direction         TEXT    NOT NULL,          -- inbound | outbound
    caller            TEXT    NOT NULL,
    callee            TEXT    NOT NULL,
    queue             TEXT,
    agent             TEXT,                      -- the agent who answered
    started_at        INTEGER NOT NULL,
    caller_ringing_at INTEGER,
    answered_at       INTEGER,
    ended_at          INTEGER,
    caller_ring_ms    INTEGER,
    rings             INTEGER,
    three_ring_ok     INTEGER,
    over_limit        INTEGER,
    outcome           TEXT    NOT NULL,          -- active | answered | abandoned | no_agent | rejected | failed
    hangup_side       TEXT,                      -- caller | agent | system
    talk_ms           INTEGER,
    recording_path    TEXT,                      -- relative to the recordings root
    survey_score      INTEGER,
    updated_at        INTEGER NOT NULL           -- when this row was last written
);

-- The API lists newest first and filters by time range, agent, queue and violation.
CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_agent_started_at ON calls (agent, started_at);
CREATE INDEX calls_queue_started_at ON calls (queue, started_at);
CREATE INDEX calls_sip_call_id ON calls (sip_call_id);

CREATE TABLE call_attempts (
    call_id         TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,            -- order of the attempt within the call
    agent           TEXT    NOT NULL,
    invited_at      INTEGER NOT NULL,
    ring_started_at INTEGER NOT NULL,
    ended_at        INTEGER,
    ring_ms         INTEGER,
    outcome         TEXT    NOT NULL,            -- ringing | answered | no-answer | busy | rejected | cancelled | failed
    sip_status      INTEGER,
    PRIMARY KEY (call_id, seq)
);

-- Per-agent answer-time reports look at every attempt an agent had, answered or not.
CREATE INDEX call_attempts_agent ON call_attempts (agent, ring_started_at);

-- Tickets linked to a call (X-Ticket-ID now; the tickets issue adds the tickets table).
CREATE TABLE call_tickets (
    call_id   TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,                  -- keeps the order the links were made in
    ticket_id TEXT    NOT NULL,
    PRIMARY KEY (call_id, ticket_id)
);

CREATE INDEX call_tickets_ticket ON call_tickets (ticket_id);
