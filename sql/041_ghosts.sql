-- 041_ghosts: why a stream was closed, and what the ghost sweep reads for signs of life.
-- Re-runnable (IF NOT EXISTS), as the migration tool asks of every file.

-- The close's own reason (an operator's, moderation's, the ghost sweep's: "ghost: <vendor> says
-- not live after N s without a sign of life" or "ghost: N s without a sign of life, vendor not
-- asked (...)"), else what close_method says; NULL while live.
ALTER TABLE live_streams
    ADD COLUMN IF NOT EXISTS close_reason VARCHAR(1024) NULL AFTER close_method;

-- A viewer still watching is a sign of life of the stream it watches.
ALTER TABLE audience_visit
    ADD KEY IF NOT EXISTS audience_visit_stream (stream_id, is_open, last_seen_at);
