-- A package version may be uploaded again with other contents while it is not published: each
-- upload with a new digest is a build of its own (a digest determines its reference, so
-- (tenant, digest) is the key). `published` is set by publishing, which freezes the version:
-- then another digest for it is refused.
ALTER TABLE packages DROP CONSTRAINT packages_tenant_id_namespace_name_version_key;
ALTER TABLE packages ADD COLUMN published BOOLEAN NOT NULL DEFAULT FALSE;
DROP INDEX packages_by_digest;
ALTER TABLE packages ADD CONSTRAINT packages_tenant_id_digest_key UNIQUE (tenant_id, digest);
CREATE INDEX packages_by_reference ON packages (tenant_id, namespace, name, version);
