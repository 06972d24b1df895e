-- 070_notify_batch: live.notify's outbox for a batch (lib/notify.h): one row holds every
-- notification a consumer batch recorded, written in the batch's transaction, sent after the
-- commit message by message (each its own live.notify record with its own event_id) and marked
-- sent once the broker acknowledged them all. notify_outbox (042) keeps the per-record path's
-- rows (the fallback, settlement's withdrawals).
-- body: a JSON array in batch order, one object per message: event_id (sha256 of
-- notify|<kind>|<key>), kind, anchor_id, room_id, stream_id (left out when NULL) and payload
-- (the Notify record's fields as JSON text, a string).
-- Re-runnable (IF NOT EXISTS, OR REPLACE), as the migration tool asks of every file.
CREATE TABLE IF NOT EXISTS notify_batch (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    sent_at          DATETIME(3)  NULL,
    messages         INT UNSIGNED NOT NULL,
    body             MEDIUMTEXT   NOT NULL COMMENT 'JSON array of the messages, batch order',
    KEY notify_batch_unsent (sent_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Every notification of both outboxes, one row each: what tests, liveflow-sim's verify and
-- operators read (source 'outbox': notify_outbox.id is row_id, seq 1; source 'batch':
-- notify_batch.id is row_id, seq the message's place in the body). A bundle's messages share
-- its created_at and sent_at.
CREATE OR REPLACE VIEW notify_messages AS
SELECT 'outbox' AS source, o.id AS row_id, 1 AS seq, o.event_id, o.kind, o.anchor_id,
       o.room_id, o.stream_id, o.payload, o.created_at, o.sent_at
FROM notify_outbox o
UNION ALL
SELECT 'batch' AS source, b.id AS row_id, j.seq, j.event_id, j.kind, j.anchor_id, j.room_id,
       j.stream_id, j.payload, b.created_at, b.sent_at
FROM notify_batch b,
     JSON_TABLE(b.body, '$[*]' COLUMNS (
         seq       FOR ORDINALITY,
         event_id  CHAR(64) CHARACTER SET utf8mb4     PATH '$.event_id',
         kind      VARCHAR(32) CHARACTER SET utf8mb4  PATH '$.kind',
         anchor_id VARCHAR(64) CHARACTER SET utf8mb4  PATH '$.anchor_id',
         room_id   VARCHAR(64) CHARACTER SET utf8mb4  PATH '$.room_id',
         stream_id VARCHAR(255) CHARACTER SET utf8mb4 PATH '$.stream_id',
         payload   TEXT CHARACTER SET utf8mb4         PATH '$.payload')) j;
