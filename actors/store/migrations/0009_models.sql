-- Language models: a tenant's own endpoint (NULL: the instance's), its API
-- key named by a secret of the tenant; and the tokens models used, metered.
ALTER TABLE tenants ADD COLUMN llm_base_url TEXT;
ALTER TABLE tenants ADD COLUMN llm_model TEXT;
ALTER TABLE tenants ADD COLUMN llm_api_key_secret TEXT;
ALTER TABLE usage_events ADD COLUMN llm_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN llm_tokens BIGINT NOT NULL DEFAULT 0;
