-- Per-tenant limits on execution data: how long finished executions are
-- kept (NULL: 30 days) and how large one node's output may be (NULL: 8 MiB).
ALTER TABLE tenants ADD COLUMN retention_ms BIGINT;
ALTER TABLE tenants ADD COLUMN max_output_bytes BIGINT;
CREATE INDEX executions_finished ON executions (tenant_id, finished_at)
    WHERE finished_at IS NOT NULL;

-- Large node outputs, stored once per tenant and content (SHA-256), and
-- which steps refer to them; a blob goes when its last step does.
CREATE TABLE blobs (
    tenant_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    data TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hash)
);
CREATE TABLE step_blobs (
    execution_id TEXT NOT NULL,
    node TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (execution_id, node, hash)
);
CREATE INDEX step_blobs_by_blob ON step_blobs (tenant_id, hash);
