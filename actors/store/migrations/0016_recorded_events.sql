-- Every execution event, recorded in the transaction of the turn that
-- produced it: `seq` counts an execution's events from 1, `position` its
-- tenant's (the tenant's event stream), both without gaps. `event` is the
-- event as JSON.
CREATE TABLE execution_events (
    tenant_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    execution_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (tenant_id, position)
);
CREATE UNIQUE INDEX execution_events_by_execution ON execution_events (execution_id, seq);

-- The last position given to each tenant's events. Taking positions locks
-- the tenant's row until the turn commits, so positions become visible in
-- order.
CREATE TABLE event_positions (
    tenant_id TEXT PRIMARY KEY,
    last_position BIGINT NOT NULL
);

-- Single-use tickets that open one event stream (browsers cannot send an
-- Authorization header there), kept as SHA-256 digests.
CREATE TABLE stream_tickets (
    hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    role TEXT NOT NULL,
    actor TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX stream_tickets_by_expiry ON stream_tickets (expires_at);
