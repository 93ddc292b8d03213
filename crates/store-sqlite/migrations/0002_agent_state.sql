-- Durable key-value state of agents, scoped to (agent, session).
CREATE TABLE agent_state (
    tenant_id  BLOB NOT NULL,
    agent_id   BLOB NOT NULL,
    session    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, session, key),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
