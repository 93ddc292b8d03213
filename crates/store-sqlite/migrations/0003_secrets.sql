-- Secrets at rest (see nexus-secrets): each tenant's data key, wrapped by the KMS, and agents'
-- secret values sealed under it. The database never holds a key or a value in the clear.

-- Deleting the tenant deletes its key, which makes whatever it sealed unreadable.
CREATE TABLE tenant_keys (
    tenant_id  BLOB PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    wrapped    BLOB NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE agent_secrets (
    tenant_id  BLOB NOT NULL,
    agent_id   BLOB NOT NULL,
    name       TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, name),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
