-- Who created each API key (`user:<id>` or `key:<id>`; NULL for keys made
-- at bootstrap or before this was kept) and the role they had then: a key
-- an owner made is revoked only by an owner, and removing a user revokes
-- the keys they made.
ALTER TABLE api_keys ADD COLUMN created_by TEXT;
ALTER TABLE api_keys ADD COLUMN creator_role TEXT;
CREATE INDEX api_keys_by_creator ON api_keys (tenant_id, created_by);
