-- Who started each task: the principal id of its caller (`key:<id>`, `user:<name>`,
-- `agent:<id>`, …). Tasks stored before this column existed have none.
ALTER TABLE tasks ADD COLUMN started_by TEXT;
