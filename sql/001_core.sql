-- 001_core: the contract's tables (CONTRACT.md section 4) and liveflow's own bookkeeping.
-- Times are UTC DATETIME(3); money is BIGINT minor units; ids are the vendors' strings.

CREATE TABLE IF NOT EXISTS anchors (
    anchor_id        VARCHAR(64)  NOT NULL PRIMARY KEY,
    status           ENUM('active','suspended','banned') NOT NULL DEFAULT 'active',
    suspended_until  DATETIME(3)  NULL,
    gender           ENUM('male','female','unknown') NOT NULL DEFAULT 'unknown',
    warning_count    INT UNSIGNED NOT NULL DEFAULT 0,
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS live_streams (
    stream_id        VARCHAR(255) NOT NULL PRIMARY KEY,
    anchor_id        VARCHAR(64)  NULL,
    room_id          VARCHAR(64)  NULL,
    session_id       BIGINT UNSIGNED NULL,
    vendor           VARCHAR(16)  NOT NULL,
    vendor_session   VARCHAR(128) NULL COMMENT 'Tencent sequence / SRS client_id of the current session',
    status           ENUM('live','ended') NOT NULL,
    started_at       DATETIME(3)  NULL,
    ended_at         DATETIME(3)  NULL,
    duration_s       BIGINT       NULL,
    close_method     TINYINT      NULL COMMENT '1 ended by stream, 2 forced by operator, 3 audit punishment',
    cover_url        VARCHAR(2048) NULL,
    cover_time       DATETIME(3)  NULL,
    last_event_at    DATETIME(3)  NOT NULL,
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    KEY live_streams_anchor (anchor_id),
    KEY live_streams_status (status, last_event_at),
    UNIQUE KEY live_streams_session (session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per distinct vendor event: the idempotency ledger of every consumer role.
CREATE TABLE IF NOT EXISTS live_events (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    consumer         VARCHAR(32)  NOT NULL,
    event_id         CHAR(64)     NOT NULL,
    vendor           VARCHAR(16)  NOT NULL,
    event_type       VARCHAR(32)  NOT NULL,
    stream_id        VARCHAR(255) NULL,
    trace_id         VARCHAR(64)  NOT NULL,
    event_time       DATETIME(3)  NOT NULL,
    received_at      DATETIME(3)  NOT NULL,
    outcome          VARCHAR(32)  NOT NULL DEFAULT 'applied',
    kafka_topic      VARCHAR(255) NOT NULL,
    kafka_partition  INT          NOT NULL,
    kafka_offset     BIGINT       NOT NULL,
    UNIQUE KEY live_events_once (consumer, event_id),
    KEY live_events_stream (stream_id, event_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS live_records (
    file_id          VARCHAR(128) NOT NULL PRIMARY KEY,
    stream_id        VARCHAR(255) NOT NULL,
    session_id       BIGINT UNSIGNED NULL,
    vendor           VARCHAR(16)  NOT NULL,
    video_url        VARCHAR(2048) NOT NULL,
    file_format      VARCHAR(16)  NULL,
    duration_s       BIGINT       NULL,
    file_size        BIGINT       NULL,
    start_time       DATETIME(3)  NULL,
    end_time         DATETIME(3)  NULL,
    trace_id         VARCHAR(64)  NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY live_records_stream (stream_id),
    KEY live_records_session (session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS live_snapshots (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    stream_id        VARCHAR(255) NOT NULL,
    pic_url          VARCHAR(2048) NOT NULL,
    taken_at         DATETIME(3)  NOT NULL,
    event_id         CHAR(64)     NOT NULL,
    UNIQUE KEY live_snapshots_once (event_id),
    KEY live_snapshots_stream (stream_id, taken_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS live_audit_logs (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id         CHAR(64)     NOT NULL,
    stream_id        VARCHAR(255) NULL,
    anchor_id        VARCHAR(64)  NULL,
    source           VARCHAR(32)  NOT NULL,
    suggestion       VARCHAR(32)  NULL,
    label            VARCHAR(64)  NULL,
    score            INT          NULL,
    punishment       ENUM('none','warn','suspend','ban','unban') NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY live_audit_logs_once (event_id),
    KEY live_audit_logs_anchor (anchor_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS live_statistics (
    session_id       BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    stream_id        VARCHAR(255) NOT NULL,
    anchor_id        VARCHAR(64)  NULL,
    duration_s       BIGINT       NOT NULL DEFAULT 0,
    gift_amount      BIGINT       NOT NULL DEFAULT 0,
    gift_count       BIGINT       NOT NULL DEFAULT 0,
    paying_users     BIGINT       NOT NULL DEFAULT 0,
    unique_viewers   BIGINT       NULL,
    peak_online      BIGINT       NULL,
    computed_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS recharge (
    trace_id         VARCHAR(64)  NOT NULL PRIMARY KEY,
    audience_id      VARCHAR(64)  NOT NULL,
    anchor_id        VARCHAR(64)  NOT NULL,
    room_id          VARCHAR(64)  NOT NULL,
    session_id       BIGINT UNSIGNED NULL,
    amount           BIGINT       NOT NULL,
    gift_id          VARCHAR(64)  NULL,
    gift_count       INT          NOT NULL DEFAULT 1,
    audience_gender  ENUM('male','female','unknown') NOT NULL DEFAULT 'unknown',
    anchor_gender    ENUM('male','female','unknown') NOT NULL DEFAULT 'unknown',
    audience_type    ENUM('registered','guest') NULL,
    tipped_at        DATETIME(3)  NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY recharge_anchor (anchor_id, tipped_at),
    KEY recharge_room (room_id),
    KEY recharge_time (tipped_at),
    CONSTRAINT recharge_amount_positive CHECK (amount > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS live_room_realtime (
    room_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
    earnings         BIGINT       NOT NULL DEFAULT 0,
    recharge_count   BIGINT       NOT NULL DEFAULT 0,
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS revenue_share (
    anchor_id        VARCHAR(64)  NOT NULL,
    effective_at     DATETIME(3)  NOT NULL,
    ratio_bp         INT UNSIGNED NOT NULL COMMENT 'basis points of the gross that go to the anchor',
    PRIMARY KEY (anchor_id, effective_at),
    CONSTRAINT revenue_share_ratio CHECK (ratio_bp <= 10000)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS settlement (
    anchor_id        VARCHAR(64)  NOT NULL PRIMARY KEY,
    total_amount     BIGINT       NOT NULL DEFAULT 0,
    withdrawn_amount BIGINT       NOT NULL DEFAULT 0,
    available_amount BIGINT       NOT NULL DEFAULT 0,
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    CONSTRAINT settlement_not_negative CHECK (available_amount >= 0 AND withdrawn_amount >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS settlement_detail (
    trace_id         VARCHAR(64)  NOT NULL PRIMARY KEY,
    anchor_id        VARCHAR(64)  NOT NULL,
    session_id       BIGINT UNSIGNED NULL,
    amount           BIGINT       NOT NULL,
    ratio_bp         INT UNSIGNED NOT NULL,
    anchor_amount    BIGINT       NOT NULL,
    platform_amount  BIGINT       NOT NULL,
    tipped_at        DATETIME(3)  NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY settlement_detail_anchor (anchor_id, tipped_at),
    CONSTRAINT settlement_detail_adds_up CHECK (anchor_amount + platform_amount = amount)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS withdrawal (
    request_id       VARCHAR(64)  NOT NULL PRIMARY KEY,
    anchor_id        VARCHAR(64)  NOT NULL,
    amount           BIGINT       NOT NULL,
    status           ENUM('succeeded','rejected') NOT NULL,
    reason           VARCHAR(255) NULL,
    requested_at     DATETIME(3)  NOT NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY withdrawal_anchor (anchor_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS hourly_reward_stats (
    hour             DATETIME     NOT NULL,
    anchor_id        VARCHAR(64)  NOT NULL,
    anchor_gender    ENUM('male','female','unknown') NOT NULL,
    audience_gender  ENUM('male','female','unknown') NOT NULL,
    amount_sum       BIGINT       NOT NULL DEFAULT 0,
    reward_count     BIGINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, anchor_id, anchor_gender, audience_gender)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS audience_profile (
    audience_id      VARCHAR(64)  NOT NULL PRIMARY KEY,
    total_amount     BIGINT       NOT NULL,
    percentile       DECIMAL(6,3) NOT NULL,
    level            ENUM('high','mid','low') NOT NULL,
    period_start     DATETIME(3)  NOT NULL,
    computed_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
