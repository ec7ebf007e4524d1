-- Users, API tokens, sessions and the audit log (twin of migrations/sqlite/0004_users.sql).
-- api_tokens.id and audit_log.seq are given out by the insert statement (MAX + 1) under a
-- table lock, as on SQLite, so both backends number them 1, 2, 3, ...

CREATE TABLE users (
    name          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    role          TEXT COLLATE "C" NOT NULL,
    agent_id      TEXT COLLATE "C" NOT NULL,
    password_hash TEXT COLLATE "C" NOT NULL,
    disabled      SMALLINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           BIGINT PRIMARY KEY NOT NULL,
    user_name    TEXT COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    label        TEXT COLLATE "C" NOT NULL,
    token_sha256 TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked      SMALLINT NOT NULL DEFAULT 0
);

CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE sessions (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_name    TEXT COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token   TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY NOT NULL,
    at        BIGINT NOT NULL,
    actor     TEXT COLLATE "C" NOT NULL,
    role      TEXT COLLATE "C",
    action    TEXT COLLATE "C" NOT NULL,
    target    TEXT COLLATE "C",
    detail    TEXT COLLATE "C",
    source_ip TEXT COLLATE "C"
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_action ON audit_log (action, at);
