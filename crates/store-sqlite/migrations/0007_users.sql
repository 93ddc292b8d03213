-- User accounts (global: one person, one password, stored only as an argon2id PHC string) and
-- their memberships of tenants, each with a role. A login session is an API key row that
-- names its user; deleting a user deletes its sessions.
CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE memberships (
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

ALTER TABLE api_keys ADD COLUMN user_id BLOB REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX api_keys_by_user ON api_keys (user_id) WHERE user_id IS NOT NULL;
