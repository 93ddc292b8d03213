-- Service accounts: named identities of machines in a tenant, with a role. Their API keys
-- carry the account (its id, and its name, which never changes) and its role; deleting the
-- account deletes its keys.
CREATE TABLE service_accounts (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

ALTER TABLE api_keys ADD COLUMN service_account_id BLOB REFERENCES service_accounts (id) ON DELETE CASCADE;
ALTER TABLE api_keys ADD COLUMN service_account TEXT;
