-- A child execution started by a `call_workflow` node names its parent, the
-- parent's workflow and the step that waits for it, how deep the chain of
-- calls is, and whether the parent's end cancels it.
ALTER TABLE executions ADD COLUMN parent_id TEXT;
ALTER TABLE executions ADD COLUMN parent_workflow_id TEXT;
ALTER TABLE executions ADD COLUMN parent_node TEXT;
ALTER TABLE executions ADD COLUMN call_depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN cancel_with_parent INTEGER NOT NULL DEFAULT 0;
CREATE INDEX executions_by_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;

-- A running execution holds one of its tenant's concurrency slots only
-- while it is not parked: 'held' while it holds one, 'waiting' while it is
-- parked, due, and waits for one to take again, NULL otherwise.
ALTER TABLE executions ADD COLUMN slot TEXT;
UPDATE executions SET slot = 'held' WHERE status = 'running';
