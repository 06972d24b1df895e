-- 042_notify: the outbox of live.notify (lib/notify.h). A row is written in the transaction of
-- the state change it tells (its event_id derived from the change, so a replay adds nothing),
-- sent after the commit and marked sent once the broker acknowledged it.
-- Re-runnable (IF NOT EXISTS), as the migration tool asks of every file.
CREATE TABLE IF NOT EXISTS notify_outbox (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id         CHAR(64)     NOT NULL COMMENT 'sha256 of notify|<kind>|<key>: one per change',
    kind             VARCHAR(32)  NOT NULL,
    anchor_id        VARCHAR(64)  NULL,
    room_id          VARCHAR(64)  NULL,
    stream_id        VARCHAR(255) NULL,
    payload          TEXT         NOT NULL COMMENT 'the Notify record''s fields as JSON',
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    sent_at          DATETIME(3)  NULL,
    UNIQUE KEY notify_outbox_once (event_id),
    KEY notify_outbox_unsent (sent_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
