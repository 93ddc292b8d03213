-- NexusCore schema, PostgreSQL flavour. Ids are UUIDv7 (sortable by time); times are
-- TIMESTAMPTZ; JSON is JSONB. Keep in step with the SQLite migration.

CREATE TABLE tenants (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE agents (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    current_revision BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE agent_revisions (
    tenant_id      UUID NOT NULL,
    agent_id       UUID NOT NULL,
    revision       BIGINT NOT NULL,
    package_ref    TEXT NOT NULL,
    package_digest TEXT NOT NULL,
    config         JSONB NOT NULL,
    secret_names   JSONB NOT NULL,
    grants         JSONB NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, revision),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE packages (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    manifest   JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, namespace, name, version)
);
CREATE INDEX packages_by_digest ON packages (tenant_id, digest);

CREATE TABLE tasks (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    agent_id       UUID NOT NULL,
    agent_revision BIGINT NOT NULL,
    context_id     TEXT NOT NULL,
    parent_task_id UUID,
    state          TEXT NOT NULL,
    status_message TEXT,
    last_seq       BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    -- The agent must belong to the same tenant as the task.
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX tasks_by_tenant ON tasks (tenant_id, id);
CREATE INDEX tasks_by_context ON tasks (tenant_id, context_id, id);
CREATE INDEX tasks_by_agent ON tasks (tenant_id, agent_id, id);
CREATE INDEX tasks_running ON tasks (state) WHERE state IN ('submitted', 'working');

CREATE TABLE task_events (
    task_id    UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tenant_id  UUID NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    payload    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE audit_events (
    id        UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id),
    seq       BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    details   JSONB NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    UNIQUE (tenant_id, seq)
);
