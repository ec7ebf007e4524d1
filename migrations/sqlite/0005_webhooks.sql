-- Webhook deliveries that failed every attempt (or never got one: a full queue, a
-- shutdown): kept for a retry by hand, POST /api/webhooks/dead-letters/{id}/retry.
-- body is the event JSON exactly as it was (and will again be) POSTed.

CREATE TABLE webhook_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    failed_at INTEGER NOT NULL
);

CREATE INDEX webhook_dead_letters_failed_at ON webhook_dead_letters (failed_at);
