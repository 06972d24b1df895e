-- 003_audit: what the audit role needs beyond 001's live_audit_logs and anchors.
-- Re-runnable (IF NOT EXISTS), as the migration tool asks of every file.

-- One row per verdict (unique event_id). punishment is what was applied; severity is the
-- verdict's own grade before escalation or supersession; outcome says why they differ.
ALTER TABLE live_audit_logs
    ADD COLUMN IF NOT EXISTS event_type      VARCHAR(32)  NULL AFTER event_id,
    ADD COLUMN IF NOT EXISTS event_time      DATETIME(3)  NULL COMMENT 'the verdict''s own time: warning windows count by it' AFTER event_type,
    ADD COLUMN IF NOT EXISTS trace_id        VARCHAR(64)  NULL AFTER event_time,
    ADD COLUMN IF NOT EXISTS reason          VARCHAR(255) NULL AFTER score,
    ADD COLUMN IF NOT EXISTS severity        ENUM('none','warn','suspend','ban','unban') NULL AFTER punishment,
    ADD COLUMN IF NOT EXISTS outcome         VARCHAR(32)  NOT NULL DEFAULT 'applied' AFTER severity,
    ADD COLUMN IF NOT EXISTS suspended_until DATETIME(3)  NULL COMMENT 'the until-time this verdict set' AFTER outcome,
    ADD COLUMN IF NOT EXISTS close_stream_id VARCHAR(255) NULL COMMENT 'live stream to force-close after the commit' AFTER suspended_until,
    ADD COLUMN IF NOT EXISTS close_method    TINYINT      NULL COMMENT '2 operator, 3 audit punishment' AFTER close_stream_id,
    ADD KEY IF NOT EXISTS live_audit_logs_warnings (anchor_id, severity, event_time);

-- An operator's ban or unban is a decision in time: automated verdicts older than it do
-- not override it, and warnings before it no longer count towards escalation.
ALTER TABLE anchors
    ADD COLUMN IF NOT EXISTS admin_at DATETIME(3) NULL COMMENT 'event time of the last operator ban/unban' AFTER suspended_until;
