-- A run started by its workflow's `on_error_workflow` names the execution
-- whose failure it handles: its own failure starts no other handler.
ALTER TABLE executions ADD COLUMN handles_id TEXT;
