-- One lease per engine process instead of one per execution: renewing it is
-- one row, however many executions the process holds. An execution belongs
-- to its `owner` for as long as that owner's lease is live.
CREATE TABLE engine_leases (
    node_id TEXT PRIMARY KEY,
    lease_until BIGINT NOT NULL
);
-- Owners of executions from before: expired, so that their executions are
-- claimed again (their processes take a live lease when they start).
INSERT INTO engine_leases (node_id, lease_until)
    SELECT DISTINCT owner, 0 FROM executions WHERE owner IS NOT NULL;
DROP INDEX executions_active_by_lease;
ALTER TABLE executions DROP COLUMN lease_until;
