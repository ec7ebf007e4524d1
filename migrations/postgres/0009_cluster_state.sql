-- Several nodes on one database (README "Scaling out"), continued: what each node must
-- know of the others besides claims. Times are epoch milliseconds of the writing node.
--
-- agent_registrations: the contact each agent's phone registered, on whichever node took
-- the REGISTER, so that any node can ring the agent there. One row per agent (the last
-- REGISTER wins); readers ignore rows past expires_at.
CREATE TABLE agent_registrations (
    agent         TEXT   PRIMARY KEY NOT NULL,
    node_id       TEXT   NOT NULL,
    contact       TEXT   NOT NULL,
    -- Where requests go when the contact names no address of its own (behind NAT): the
    -- REGISTER's transport (udp, tcp, tls) and source address.
    transport     TEXT   NOT NULL,
    address       TEXT   NOT NULL,
    registered_at BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

-- agent_commands: agent controls (log in to / out of a queue, pause, unpause, end a
-- wrap-up; auto-pauses too) in the order they were made, so that every node applies
-- them to its own view of the agents.
CREATE TABLE agent_commands (
    seq BIGSERIAL PRIMARY KEY,
    agent   TEXT   NOT NULL,
    node_id TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    made_at BIGINT NOT NULL
);

CREATE INDEX agent_commands_made_at ON agent_commands (made_at);

-- node_snapshots: each live node's wallboard picture (calls in progress and its view of
-- the agents, as JSON), refreshed every second, merged by the wallboard of any node.
CREATE TABLE node_snapshots (
    node_id  TEXT   PRIMARY KEY NOT NULL,
    taken_at BIGINT NOT NULL,
    snapshot TEXT   NOT NULL
);
