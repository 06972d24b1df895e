-- The vendor of the stream an audit punishment closes: a stream id is unique per vendor, so the
-- close names both (NULL: decided before, the stream live under the id is closed).
ALTER TABLE live_audit_logs
    ADD COLUMN IF NOT EXISTS close_vendor VARCHAR(16) NULL AFTER close_stream_id;
