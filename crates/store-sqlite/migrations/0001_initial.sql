-- NexusCore schema, SQLite flavour. Ids are UUIDv7 stored as 16-byte BLOBs (sortable by time);
-- times are RFC 3339 TEXT; JSON is TEXT. Keep in step with the PostgreSQL migration.

CREATE TABLE tenants (
    id           BLOB PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE agents (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    current_revision INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE agent_revisions (
    tenant_id      BLOB NOT NULL,
    agent_id       BLOB NOT NULL,
    revision       INTEGER NOT NULL,
    package_ref    TEXT NOT NULL,
    package_digest TEXT NOT NULL,
    config         TEXT NOT NULL,
    secret_names   TEXT NOT NULL,
    grants         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (agent_id, revision),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE packages (
    id         BLOB PRIMARY KEY,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    manifest   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (tenant_id, namespace, name, version)
);
CREATE INDEX packages_by_digest ON packages (tenant_id, digest);

CREATE TABLE tasks (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL,
    agent_id       BLOB NOT NULL,
    agent_revision INTEGER NOT NULL,
    context_id     TEXT NOT NULL,
    parent_task_id BLOB,
    state          TEXT NOT NULL,
    status_message TEXT,
    last_seq       INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    -- The agent must belong to the same tenant as the task.
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX tasks_by_tenant ON tasks (tenant_id, id);
CREATE INDEX tasks_by_context ON tasks (tenant_id, context_id, id);
CREATE INDEX tasks_by_agent ON tasks (tenant_id, agent_id, id);
CREATE INDEX tasks_running ON tasks (state) WHERE state IN ('submitted', 'working');

CREATE TABLE task_events (
    task_id    BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tenant_id  BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

CREATE TABLE audit_events (
    id        BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (id),
    seq       INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    details   TEXT NOT NULL,
    at        TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    UNIQUE (tenant_id, seq)
);
