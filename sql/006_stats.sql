-- 006_stats: the stream role's session hand-off outbox, and what liveflow-stats keeps to
-- maintain hourly_reward_stats, audience_profile and live_statistics (001) idempotently.
-- Re-runnable (IF NOT EXISTS), as the migration tool asks of every file.

-- The stream role's outbox: a row per stream event that ended a live session, written in
-- that event's transaction and sent as a session.end record to live.session after the
-- commit (consumers/session_handoff.h). It keeps the session as it was when it ended, even
-- after the stream's next session has replaced its live_streams row.
CREATE TABLE IF NOT EXISTS session_handoff (
    event_id         CHAR(64)     NOT NULL PRIMARY KEY COMMENT 'the stream event that ended the session',
    session_id       BIGINT UNSIGNED NOT NULL,
    stream_id        VARCHAR(255) NOT NULL,
    anchor_id        VARCHAR(64)  NULL,
    room_id          VARCHAR(64)  NULL,
    started_at       DATETIME(3)  NULL,
    ended_at         DATETIME(3)  NOT NULL,
    duration_s       BIGINT       NULL,
    close_method     TINYINT      NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY session_handoff_session (session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- What the platform tells us of an audience member; a tip that states a gender updates it.
CREATE TABLE IF NOT EXISTS audiences (
    audience_id      VARCHAR(64)  NOT NULL PRIMARY KEY,
    gender           ENUM('male','female','unknown') NOT NULL DEFAULT 'unknown',
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- liveflow-stats' tip ledger: one row per tip (its own trace_id, Reward.tip_id), inserted in
-- the transaction that adds the tip to hourly_reward_stats, so a replayed tip adds nothing.
-- The genders are the ones resolved for hourly_reward_stats. Profiles and session gift
-- figures are computed from it, so liveflow-stats does not depend on the reward role.
CREATE TABLE IF NOT EXISTS stats_tip (
    trace_id         VARCHAR(64)  NOT NULL PRIMARY KEY,
    event_id         CHAR(64)     NOT NULL,
    audience_id      VARCHAR(64)  NOT NULL,
    anchor_id        VARCHAR(64)  NOT NULL,
    room_id          VARCHAR(64)  NOT NULL,
    amount           BIGINT       NOT NULL,
    gift_count       BIGINT       NOT NULL,
    anchor_gender    ENUM('male','female','unknown') NOT NULL,
    audience_gender  ENUM('male','female','unknown') NOT NULL,
    tipped_at        DATETIME(3)  NOT NULL,
    hour             DATETIME     NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY stats_tip_room (room_id, tipped_at),
    KEY stats_tip_audience (audience_id, amount),
    CONSTRAINT stats_tip_amount_positive CHECK (amount > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- liveflow-stats' viewer ledger: every viewer.join / viewer.leave once (by event id).
CREATE TABLE IF NOT EXISTS stats_viewer_event (
    event_id         CHAR(64)     NOT NULL PRIMARY KEY,
    stream_id        VARCHAR(255) NOT NULL,
    client_id        VARCHAR(128) NOT NULL,
    action           ENUM('join','leave') NOT NULL,
    at               DATETIME(3)  NOT NULL,
    KEY stats_viewer_event_stream (stream_id, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Sessions liveflow-stats has seen end (live.session). dirty is 1 while live_statistics lags
-- the ledgers: set by the session.end and by tips and viewer events that arrive for it up
-- to LIVEFLOW_STATS_LATE_S after closed_at; cleared when the figures are computed again.
CREATE TABLE IF NOT EXISTS stats_session (
    session_id       BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    stream_id        VARCHAR(255) NOT NULL,
    anchor_id        VARCHAR(64)  NULL,
    room_id          VARCHAR(64)  NOT NULL COMMENT 'the room whose tips count: the record''s room, else its anchor',
    started_at       DATETIME(3)  NOT NULL,
    ended_at         DATETIME(3)  NOT NULL,
    duration_s       BIGINT       NOT NULL,
    close_method     TINYINT      NOT NULL,
    closed_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT 'when liveflow-stats first saw the session.end',
    dirty            TINYINT      NOT NULL DEFAULT 1,
    KEY stats_session_room (room_id, ended_at),
    KEY stats_session_stream (stream_id, ended_at),
    KEY stats_session_dirty (dirty)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A profiling run computes here first, then swaps into audience_profile in one transaction,
-- so a run that fails or dies halfway leaves the previous profile whole.
CREATE TABLE IF NOT EXISTS stats_profile_stage (
    audience_id      VARCHAR(64)  NOT NULL PRIMARY KEY,
    total_amount     BIGINT       NOT NULL,
    percentile       DECIMAL(6,3) NOT NULL,
    level            ENUM('high','mid','low') NOT NULL,
    period_start     DATETIME(3)  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per completed profiling run, inserted in the swap's transaction: at most one per
-- period (period = floor(unix time / interval_s)).
CREATE TABLE IF NOT EXISTS stats_profile_run (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    interval_s       BIGINT       NOT NULL,
    period           BIGINT       NOT NULL,
    period_start     DATETIME(3)  NOT NULL,
    instance         VARCHAR(128) NOT NULL,
    audiences        BIGINT       NOT NULL,
    started_at       DATETIME(3)  NOT NULL,
    finished_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY stats_profile_run_once (interval_s, period)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
