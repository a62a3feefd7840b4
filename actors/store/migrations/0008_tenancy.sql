-- Tenancy: users and their sessions, invitations, the audit log, secrets,
-- credits and usage, and per-tenant limits.

-- A user belongs to one tenant; an email is one user.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX users_by_tenant ON users (tenant_id, id);

-- Session tokens and invitations are kept as SHA-256 digests, found by
-- their public prefix and compared in constant time.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    tenant_id TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_by_prefix ON sessions (prefix);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT
);
CREATE INDEX invitations_by_prefix ON invitations (prefix);

CREATE INDEX api_keys_by_prefix ON api_keys (prefix);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);

-- Who changed what, when, from where, and how it ended. Ids are UUIDv7,
-- so their order is the order of time.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    source TEXT,
    outcome TEXT NOT NULL,
    status BIGINT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_log (tenant_id, id);

-- Secret values sealed with an AEAD key from the environment; the tenant
-- and name are the associated data, so a sealed value moved to another
-- row does not open.
CREATE TABLE secrets (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    nonce TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Credits: the settled balance, and every change to it. A ledger entry
-- with a reference is written once per tenant and reference.
CREATE TABLE credit_accounts (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    balance BIGINT NOT NULL,
    refill_threshold BIGINT,
    refill_amount BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE TABLE credit_ledger (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    delta BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT,
    actor TEXT,
    note TEXT
);
CREATE INDEX credit_ledger_by_tenant ON credit_ledger (tenant_id, id);
CREATE UNIQUE INDEX credit_ledger_by_reference ON credit_ledger (tenant_id, reference)
    WHERE reference IS NOT NULL;

-- Metering: each turn of an execution appends what it used, in the turn's
-- own transaction (so once); settlement folds them into the balance and
-- the daily totals in bounded batches.
CREATE TABLE usage_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    executions BIGINT NOT NULL,
    node_runs BIGINT NOT NULL,
    sandbox_ms BIGINT NOT NULL,
    credits BIGINT NOT NULL
);
CREATE INDEX usage_events_by_tenant ON usage_events (tenant_id, id);
CREATE TABLE usage_daily (
    tenant_id TEXT NOT NULL,
    day TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    executions BIGINT NOT NULL,
    node_runs BIGINT NOT NULL,
    sandbox_ms BIGINT NOT NULL,
    credits BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, workflow_id)
);

-- Limits set by the instance's administrators (NULL: the instance default).
ALTER TABLE tenants ADD COLUMN rate_limit BIGINT;
ALTER TABLE tenants ADD COLUMN max_concurrent BIGINT;
ALTER TABLE tenants ADD COLUMN max_payload_bytes BIGINT;
-- Executions of the tenant holding a concurrency slot (status running),
-- kept only while the tenant has a concurrency limit.
ALTER TABLE tenants ADD COLUMN running BIGINT NOT NULL DEFAULT 0;
