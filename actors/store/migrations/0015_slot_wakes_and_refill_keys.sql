-- An execution that gives its tenant's concurrency slot back wakes the
-- oldest start waiting for one: queued, unowned, by acceptance.
CREATE INDEX executions_waiting_for_slot ON executions (tenant_id, created_at)
    WHERE owner IS NULL AND status = 'queued';

-- An automatic refill, once due, is open under its own reference until it
-- is paid: every attempt to pay it sends the same idempotency key.
ALTER TABLE credit_accounts ADD COLUMN open_refill TEXT;
ALTER TABLE credit_accounts ADD COLUMN open_refill_amount BIGINT;
