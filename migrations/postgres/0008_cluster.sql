-- Several nodes on one database (README "Scaling out"): which node holds which agent
-- (ringing it or on a call with it), so that two nodes never ring one agent for two calls
-- at once, and each node's last sign of life, so that the claims of a node that died are
-- freed. Times are epoch milliseconds of the writing node's clock.

CREATE TABLE cluster_nodes (
    node_id TEXT   PRIMARY KEY NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE agent_claims (
    agent      TEXT   PRIMARY KEY NOT NULL,
    node_id    TEXT   NOT NULL,
    call_id    TEXT   NOT NULL,
    claimed_at BIGINT NOT NULL
);

CREATE INDEX agent_claims_node ON agent_claims (node_id);
