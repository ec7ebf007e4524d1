-- Users, their API tokens, sign-in sessions and the audit log (the users issue). Times are
-- BIGINT epoch milliseconds (UTC); booleans INTEGER 0/1. Kept to SQL that PostgreSQL also
-- runs: numeric ids (api_tokens.id, audit_log.seq) are given out by the insert statement
-- itself (MAX + 1), not by a dialect's autoincrement. The user column is `user_name`
-- because USER is reserved in PostgreSQL.

CREATE TABLE users (
    name          TEXT    PRIMARY KEY NOT NULL,
    role          TEXT    NOT NULL,                  -- agent | qa | supervisor | admin
    agent_id      TEXT    NOT NULL,                  -- the 工号 an agent's calls are matched by (defaults to name)
    password_hash TEXT    NOT NULL,                  -- PHC string ($argon2id$v=19$...)
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE api_tokens (
    id           BIGINT  PRIMARY KEY NOT NULL,
    user_name    TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    label        TEXT    NOT NULL,
    token_sha256 TEXT    NOT NULL UNIQUE,            -- hex SHA-256; the token itself is never stored
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT,
    revoked      INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE sessions (
    id           TEXT    PRIMARY KEY NOT NULL,       -- hex SHA-256 of the cookie secret
    user_name    TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token   TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,                   -- moves with use (last_seen_at + TTL)
    last_seen_at BIGINT  NOT NULL
);

CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit_log (
    seq       BIGINT  PRIMARY KEY NOT NULL,          -- 1, 2, 3, ... in the order written
    at        BIGINT  NOT NULL,
    actor     TEXT    NOT NULL,                      -- user or token name (the name tried, for login.failed)
    role      TEXT,                                  -- the actor's role, when known
    action    TEXT    NOT NULL,                      -- recording.play | login.ok | login.failed | ticket.* | user.* | token.*
    target    TEXT,                                  -- call id, ticket id, user name, ...
    detail    TEXT,
    source_ip TEXT
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_action ON audit_log (action, at);
