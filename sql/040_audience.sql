-- 040_audience: what the audience role keeps (consumers/audience.h): its event ledger, one row
-- per (room, audience member) with the visit that is open or the last one that closed, the
-- rooms' online counts, the sessions' distinct viewers, the watch history, interactions per
-- room and minute (the hot ranking), and the viewer columns of live_statistics.
-- Re-runnable (IF NOT EXISTS), as the migration tool asks of every file.

-- Every viewer and interaction event once (the envelope's event id), inserted in the
-- transaction that applies it: a replayed event changes nothing.
CREATE TABLE IF NOT EXISTS audience_event_seen (
    event_id         CHAR(64)     NOT NULL PRIMARY KEY,
    seen_at          DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY audience_event_seen_at (seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per room and audience member (audience_key: "app:<audience_id>" for app events,
-- "srs:<client_id>" for SRS plays). is_open 1: a visit is on (entered, last_seen); 0: the
-- last visit closed at left_at, and an enter or heartbeat older than that is a late copy.
CREATE TABLE IF NOT EXISTS audience_visit (
    room_id          VARCHAR(64)  NOT NULL,
    audience_key     VARCHAR(140) NOT NULL,
    is_open          TINYINT      NOT NULL,
    visit_id         CHAR(64)     NULL COMMENT 'event id of the enter that opened the visit',
    session_id       BIGINT UNSIGNED NULL,
    stream_id        VARCHAR(255) NULL,
    entered_at       DATETIME(3)  NULL,
    last_seen_at     DATETIME(3)  NULL,
    left_at          DATETIME(3)  NULL,
    PRIMARY KEY (room_id, audience_key),
    KEY audience_visit_open (is_open, last_seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Viewers in a room now: the number of its open visits, kept with them.
CREATE TABLE IF NOT EXISTS audience_room (
    room_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
    online           BIGINT       NOT NULL DEFAULT 0,
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The distinct viewers of a session (exact: one row per audience member and session).
CREATE TABLE IF NOT EXISTS audience_session_viewer (
    session_id       BIGINT UNSIGNED NOT NULL,
    audience_key     VARCHAR(140) NOT NULL,
    PRIMARY KEY (session_id, audience_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per visit, written when it closes (an exit, or no heartbeat for
-- LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S). visit_id makes a replay write nothing.
CREATE TABLE IF NOT EXISTS live_watch_history (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    visit_id         CHAR(64)     NOT NULL COMMENT 'event id of the enter that opened the visit',
    audience_id      VARCHAR(128) NOT NULL,
    source           VARCHAR(8)   NOT NULL COMMENT 'app (POST /v1/events) or srs (client_id)',
    room_id          VARCHAR(64)  NOT NULL,
    session_id       BIGINT UNSIGNED NULL,
    stream_id        VARCHAR(255) NULL,
    entered_at       DATETIME(3)  NOT NULL,
    left_at          DATETIME(3)  NOT NULL,
    seconds          BIGINT       NOT NULL,
    close_reason     VARCHAR(16)  NOT NULL COMMENT 'exit or timeout',
    UNIQUE KEY live_watch_history_visit (visit_id),
    KEY live_watch_history_audience (audience_id, entered_at),
    KEY live_watch_history_session (session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Interactions per room and minute of event time: the hot ranking sums the last interval.
CREATE TABLE IF NOT EXISTS audience_room_minute (
    room_id          VARCHAR(64)  NOT NULL,
    minute           DATETIME     NOT NULL,
    chats            BIGINT       NOT NULL DEFAULT 0,
    likes            BIGINT       NOT NULL DEFAULT 0,
    follows          BIGINT       NOT NULL DEFAULT 0,
    shares           BIGINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, minute),
    KEY audience_room_minute_minute (minute)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The viewer figures of a session, written by the audience role only (liveflow-stats writes
-- the gift and duration columns). NULL where no source reported viewers for the session.
ALTER TABLE live_statistics
    ADD COLUMN IF NOT EXISTS views          BIGINT NULL COMMENT 'visits opened' AFTER paying_users,
    ADD COLUMN IF NOT EXISTS total_watch_s  BIGINT NULL AFTER peak_online,
    ADD COLUMN IF NOT EXISTS watch_visits   BIGINT NULL COMMENT 'closed visits total_watch_s sums' AFTER total_watch_s,
    ADD COLUMN IF NOT EXISTS avg_watch_s    BIGINT NULL COMMENT 'total_watch_s / watch_visits' AFTER watch_visits,
    ADD COLUMN IF NOT EXISTS watch_lt_1m    BIGINT NULL COMMENT 'closed visits under 1 minute' AFTER avg_watch_s,
    ADD COLUMN IF NOT EXISTS watch_1_5m     BIGINT NULL COMMENT '1 to under 5 minutes' AFTER watch_lt_1m,
    ADD COLUMN IF NOT EXISTS watch_5_15m    BIGINT NULL COMMENT '5 to under 15 minutes' AFTER watch_1_5m,
    ADD COLUMN IF NOT EXISTS watch_15_60m   BIGINT NULL COMMENT '15 to under 60 minutes' AFTER watch_5_15m,
    ADD COLUMN IF NOT EXISTS watch_gt_60m   BIGINT NULL COMMENT '60 minutes or more' AFTER watch_15_60m,
    ADD COLUMN IF NOT EXISTS chats          BIGINT NULL AFTER watch_gt_60m,
    ADD COLUMN IF NOT EXISTS likes          BIGINT NULL AFTER chats,
    ADD COLUMN IF NOT EXISTS follows        BIGINT NULL AFTER likes,
    ADD COLUMN IF NOT EXISTS unfollows      BIGINT NULL AFTER follows,
    ADD COLUMN IF NOT EXISTS shares         BIGINT NULL AFTER unfollows;
