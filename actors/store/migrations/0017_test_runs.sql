-- A test run: started by hand on any version of a workflow (published or
-- not), with the outputs some nodes give instead of running (`mocks`, a
-- JSON object by node id). Kept with the execution so that a resumed or
-- claimed run still uses them. `test` is 0 or 1, as `cancel_requested`.
ALTER TABLE executions ADD COLUMN test BIGINT NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN mocks TEXT;
