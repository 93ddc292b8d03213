-- Webhooks for A2A push notifications, per task. Token and credentials are sealed under the
-- tenant's data key (nexus-secrets); the database never holds them in the clear.

-- The composite foreign key below needs (tenant_id, id) to be unique in tasks: the plain index
-- on those columns becomes a unique one, so tasks keep as many indexes as before.
DROP INDEX tasks_by_tenant;
CREATE UNIQUE INDEX tasks_by_tenant ON tasks (tenant_id, id);

CREATE TABLE task_push_configs (
    tenant_id        UUID NOT NULL,
    task_id          UUID NOT NULL,
    id               TEXT COLLATE "C" NOT NULL,
    protocol_version TEXT NOT NULL,
    url              TEXT NOT NULL,
    token            BYTEA,
    auth_scheme      TEXT,
    auth_credentials BYTEA,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, task_id, id),
    -- The task must belong to the same tenant; its configs go with it.
    FOREIGN KEY (tenant_id, task_id) REFERENCES tasks (tenant_id, id) ON DELETE CASCADE
);
