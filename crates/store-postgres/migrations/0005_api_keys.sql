-- API keys. The database holds the sha256 of each key, never the key itself; the hash is
-- unique across tenants, so a presented key finds its one row (and its tenant) by hash.
CREATE TABLE api_keys (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    platform_admin BOOLEAN NOT NULL,
    prefix         TEXT NOT NULL,
    secret_hash    TEXT NOT NULL UNIQUE,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);
