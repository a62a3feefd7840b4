-- The system of record. Portable between PostgreSQL and SQLite: ids and JSON
-- are TEXT, times are milliseconds since the Unix epoch, flags are 0/1.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    latest_version BIGINT NOT NULL,
    published_version BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX workflows_by_tenant ON workflows (tenant_id, id);

CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    version BIGINT NOT NULL,
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE webhook_routes (
    tenant_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    PRIMARY KEY (tenant_id, method, path)
);
CREATE INDEX webhook_routes_by_workflow ON webhook_routes (workflow_id);

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    trigger_node TEXT NOT NULL,
    trigger_data TEXT NOT NULL,
    output TEXT,
    error TEXT,
    idempotency_key TEXT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    deadline_ms BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX executions_by_idempotency_key ON executions (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX executions_by_tenant ON executions (tenant_id, id);
CREATE INDEX executions_by_workflow ON executions (tenant_id, workflow_id, id);
CREATE INDEX executions_active_by_lease ON executions (lease_until)
    WHERE status IN ('queued', 'running');
CREATE INDEX executions_active_by_owner ON executions (owner)
    WHERE status IN ('queued', 'running');

CREATE TABLE steps (
    execution_id TEXT NOT NULL,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    input TEXT,
    output TEXT,
    branch TEXT,
    error TEXT,
    started_at BIGINT,
    finished_at BIGINT,
    wake_at BIGINT,
    PRIMARY KEY (execution_id, node)
);
