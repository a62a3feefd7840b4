-- Idempotency keys belong to the workflow and trigger node they were sent
-- to, and remember a fingerprint of the request: the same key sent with
-- another request is refused instead of answering with another's execution.
DROP INDEX executions_by_idempotency_key;
ALTER TABLE executions ADD COLUMN request_fingerprint TEXT;
CREATE UNIQUE INDEX executions_by_idempotency_key
    ON executions (tenant_id, workflow_id, trigger_node, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One pending resume per waiting node: the first recorded wins; a repeat
-- is recognised by its payload or its idempotency key.
DELETE FROM execution_signals WHERE id NOT IN
    (SELECT MIN(id) FROM execution_signals GROUP BY execution_id, node);
ALTER TABLE execution_signals ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX execution_signals_one_per_wait ON execution_signals (execution_id, node);
