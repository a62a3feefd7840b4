-- What a node attempt printed (a code node's console), as a JSON array.
ALTER TABLE steps ADD COLUMN logs TEXT;
