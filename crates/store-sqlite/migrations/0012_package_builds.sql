-- A package version may be uploaded again with other contents while it is not published: each
-- upload with a new digest is a build of its own (a digest determines its reference, so
-- (tenant, digest) is the key). `published` is set by publishing, which freezes the version:
-- then another digest for it is refused.
CREATE TABLE packages_by_build (
    id         BLOB PRIMARY KEY,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    manifest   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    published  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, digest)
);
INSERT INTO packages_by_build
    (id, tenant_id, namespace, name, version, digest, size_bytes, manifest, created_at)
    SELECT id, tenant_id, namespace, name, version, digest, size_bytes, manifest, created_at
    FROM packages;
DROP TABLE packages;
ALTER TABLE packages_by_build RENAME TO packages;
CREATE INDEX packages_by_reference ON packages (tenant_id, namespace, name, version);
