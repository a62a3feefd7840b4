-- Publishing counts a tenant's schedules against its limit.
CREATE INDEX schedules_by_tenant ON schedules (tenant_id);
