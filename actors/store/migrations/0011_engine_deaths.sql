-- In-process work (templates, conditions, code) that an execution's owner
-- may be running: the engine process run that marked it, and the node
-- (NULL: the in-process nodes of its start turn, not known before they
-- run). Found by another process run, the mark means that run died while
-- the work ran.
ALTER TABLE executions ADD COLUMN in_process_by TEXT;
ALTER TABLE executions ADD COLUMN in_process_node TEXT;
-- When an engine last died while the execution ran in-process work.
ALTER TABLE executions ADD COLUMN engine_death_at BIGINT;
