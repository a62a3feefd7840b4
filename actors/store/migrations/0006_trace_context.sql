-- The W3C trace context of the request that started an execution: every
-- later turn and node of the run joins that trace, on whatever process.
ALTER TABLE executions ADD COLUMN traceparent TEXT;
