-- Tenant policies: Cedar text as written, parsed by the control plane. A name identifies a
-- policy within its tenant; the unique index on (tenant_id, name) also serves the tenant's
-- listings and counts.
CREATE TABLE policies (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    text        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
