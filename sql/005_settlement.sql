-- 005_settlement: what the settlement worker keeps beyond 001's settlement tables.
-- Re-runnable (IF NOT EXISTS), as the migration tool asks of every file.

-- One row per closed live session: its tips as reward-sync recorded them in recharge (by
-- recharge.session_id), with the anchor's share from settlement_detail. A recompute, so it
-- is rewritten whole each time: on session.end, and again by the worker's sweep while the
-- session ended less than LIVEFLOW_SETTLEMENT_RECOMPUTE_S ago (recharge rows that came late).
-- settled_tips < tips means some of the session's tips had no settlement_detail row yet.
-- It reads recharge by session_id through 004's recharge_session index.
CREATE TABLE IF NOT EXISTS settlement_session (
    session_id       BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    anchor_id        VARCHAR(64)  NULL,
    room_id          VARCHAR(64)  NULL,
    stream_id        VARCHAR(255) NULL,
    started_at       DATETIME(3)  NULL,
    ended_at         DATETIME(3)  NOT NULL,
    gross            BIGINT       NOT NULL DEFAULT 0 COMMENT 'SUM(recharge.amount)',
    anchor_share     BIGINT       NOT NULL DEFAULT 0 COMMENT 'SUM(settlement_detail.anchor_amount) of those tips',
    platform_share   BIGINT       NOT NULL DEFAULT 0 COMMENT 'SUM(settlement_detail.platform_amount) of those tips',
    tips             BIGINT       NOT NULL DEFAULT 0 COMMENT 'COUNT(recharge)',
    settled_tips     BIGINT       NOT NULL DEFAULT 0 COMMENT 'of those, how many have a settlement_detail row',
    paying_audience  BIGINT       NOT NULL DEFAULT 0 COMMENT 'COUNT(DISTINCT recharge.audience_id)',
    computed_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY settlement_session_ended (ended_at),
    KEY settlement_session_anchor (anchor_id, ended_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The reconcile tool reads settlement_detail by time range, as recharge (recharge_time).
ALTER TABLE settlement_detail ADD KEY IF NOT EXISTS settlement_detail_time (tipped_at);
