-- A re-run links to the execution it came from and the node it ran from.
ALTER TABLE executions ADD COLUMN origin_id TEXT;
ALTER TABLE executions ADD COLUMN origin_node TEXT;
