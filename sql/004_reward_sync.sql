-- 004_reward_sync: what the reward-sync role keeps beyond 001's recharge and live_room_realtime
-- (the design is in consumers/reward_sync.h). Re-runnable (IF NOT EXISTS), as the migration
-- tool asks of every file.

-- room_seq numbers a room's tips in commit order: it is handed out under the room's
-- live_room_sync row lock, which the tip's transaction holds until it commits. A Redis
-- rebuild records the number it went up to, and no later publish adds a tip at or below it.
ALTER TABLE recharge
    ADD COLUMN IF NOT EXISTS room_seq BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'the tip''s number in its room, 1, 2, ...' AFTER session_id,
    ADD KEY IF NOT EXISTS recharge_room_seq (room_id, room_seq),
    ADD KEY IF NOT EXISTS recharge_session (session_id);

-- Every tip looks up its room's live session.
ALTER TABLE live_streams
    ADD KEY IF NOT EXISTS live_streams_room (room_id, status);

-- One row per room that ever had a tip: its lock, its tip numbers and what live_room_realtime
-- has not been given yet. flushing is 1 only inside the flush transaction that folds the row.
CREATE TABLE IF NOT EXISTS live_room_sync (
    room_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
    tip_seq          BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'the last recharge.room_seq handed out',
    earnings_pending BIGINT       NOT NULL DEFAULT 0,
    count_pending    BIGINT       NOT NULL DEFAULT 0,
    pending_since    DATETIME(3)  NULL COMMENT 'when the oldest pending tip arrived; NULL when none is',
    flushing         TINYINT      NOT NULL DEFAULT 0,
    KEY live_room_sync_pending (pending_since),
    KEY live_room_sync_flushing (flushing)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Rooms (and their sessions) whose Redis figures missed tips while Redis was unreachable;
-- session_id 0 names the room figures alone. Cleared by the rebuild that covers them.
CREATE TABLE IF NOT EXISTS live_room_rebuild (
    room_id          VARCHAR(64)  NOT NULL,
    session_id       BIGINT UNSIGNED NOT NULL DEFAULT 0,
    marked_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (room_id, session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
