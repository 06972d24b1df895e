-- 002_records_snapshots: what the record and snapshot roles keep beyond 001's columns.
-- live_streams.cover_url / cover_time are in 001 already.

-- The recording session as the vendor names it (Tencent callback_ext.session_id), and an
-- index for the sweep that links recordings which arrived before their stream's session
-- (it also serves every lookup by session_id, so it replaces live_records_session).
ALTER TABLE live_records
    ADD COLUMN IF NOT EXISTS session_key VARCHAR(128) NULL AFTER session_id,
    ADD KEY IF NOT EXISTS live_records_unlinked (session_id, created_at),
    DROP KEY IF EXISTS live_records_session;

-- Every screenshot with what the vendor says about it. cover_pending is 1 while the
-- snapshot could not be offered as its stream's cover because the stream row did not
-- exist yet; the snapshot role's sweep offers it once the row exists and then clears it,
-- or gives up a day after the snapshot arrived.
ALTER TABLE live_snapshots
    ADD COLUMN IF NOT EXISTS pic_full_url  VARCHAR(2048) NULL AFTER pic_url,
    ADD COLUMN IF NOT EXISTS width         INT           NULL AFTER pic_full_url,
    ADD COLUMN IF NOT EXISTS height        INT           NULL AFTER width,
    ADD COLUMN IF NOT EXISTS file_size     BIGINT        NULL AFTER height,
    ADD COLUMN IF NOT EXISTS cover_pending TINYINT       NULL AFTER event_id,
    ADD COLUMN IF NOT EXISTS created_at    DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    ADD KEY IF NOT EXISTS live_snapshots_cover_pending (cover_pending, created_at);
