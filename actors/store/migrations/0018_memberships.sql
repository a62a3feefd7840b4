-- A user (one email, one password) may belong to several tenants, each
-- with a role of its own there. Every user becomes a member of the tenant
-- it belonged to, with the role it had.
CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users (id),
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX memberships_by_tenant ON memberships (tenant_id, user_id);

INSERT INTO memberships (user_id, tenant_id, role, created_at)
    SELECT id, tenant_id, role, created_at FROM users;

-- Roles are the memberships' now. `users.tenant_id` stays (SQLite cannot
-- drop a column a foreign key uses): it is the tenant the account was made
-- in, and nothing reads it for access.
ALTER TABLE users DROP COLUMN role;
