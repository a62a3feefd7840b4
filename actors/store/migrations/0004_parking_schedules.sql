-- An execution with nothing to do until a time (or a resume) is parked: it
-- has no owner, and `wake_at` says when a process should take it again
-- (NULL: only a resume wakes it). An execution that was accepted but never
-- started carries the moment the claim sweep takes it instead.
ALTER TABLE executions ADD COLUMN wake_at BIGINT;
UPDATE executions SET wake_at = created_at + 2000
    WHERE owner IS NULL AND status IN ('queued', 'running');
CREATE INDEX executions_due ON executions (wake_at) WHERE owner IS NULL;

-- Resumes sent to executions that wait for an event. The execution deletes
-- a signal in the same transaction as the step it completes.
CREATE TABLE execution_signals (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    node TEXT NOT NULL,
    payload TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX execution_signals_by_execution ON execution_signals (execution_id, created_at);

-- Schedule triggers of published workflows, each with its next tick.
CREATE TABLE schedules (
    workflow_id TEXT NOT NULL,
    node TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    missed TEXT NOT NULL,
    next_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, node)
);
CREATE INDEX schedules_due ON schedules (next_at);
