-- Webhook deliveries that failed every attempt (twin of migrations/sqlite/0005_webhooks.sql).

CREATE TABLE webhook_dead_letters (
    id BIGSERIAL PRIMARY KEY,
    webhook TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    body TEXT COLLATE "C" NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT COLLATE "C" NOT NULL,
    failed_at BIGINT NOT NULL
);

CREATE INDEX webhook_dead_letters_failed_at ON webhook_dead_letters (failed_at);
