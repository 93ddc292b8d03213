-- Secrets at rest (see nexus-secrets): each tenant's data key, wrapped by the KMS, and agents'
-- secret values sealed under it. The database never holds a key or a value in the clear.

-- Deleting the tenant deletes its key, which makes whatever it sealed unreadable.
CREATE TABLE tenant_keys (
    tenant_id  UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    wrapped    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE agent_secrets (
    tenant_id  UUID NOT NULL,
    agent_id   UUID NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, name),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
