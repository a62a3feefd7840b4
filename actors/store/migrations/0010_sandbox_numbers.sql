-- Each tenant's number among the tenants whose code has run, assigned once
-- and never reused: the host uid of its sandboxed code is the first uid of
-- the configured range plus this number, so no two tenants share one, across
-- every engine process of the database.
CREATE TABLE sandbox_numbers (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    number BIGINT NOT NULL UNIQUE
);
