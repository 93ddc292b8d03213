-- Durable key-value state of agents, scoped to (agent, session).
CREATE TABLE agent_state (
    tenant_id  UUID NOT NULL,
    agent_id   UUID NOT NULL,
    session    TEXT NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, session, key),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
