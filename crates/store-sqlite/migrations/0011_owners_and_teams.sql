-- Who owns an agent (the principal id that created it) and who deployed each revision, for
-- attribute-based policies and audit; empty for rows from before this migration.
ALTER TABLE agents ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_revisions ADD COLUMN deployed_by TEXT NOT NULL DEFAULT '';
-- A login session's teams in its tenant when it was opened (a JSON array of names), so
-- policies can name teams; team changes end the members' sessions.
ALTER TABLE api_keys ADD COLUMN teams TEXT NOT NULL DEFAULT '[]';
