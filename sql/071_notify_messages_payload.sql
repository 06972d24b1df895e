-- 071_notify_messages_payload: a bundle's message holds its payload as a JSON object (the text
-- the relay wrote, not escaped a second time into a string), so notify_messages reads it as
-- JSON: the object's text, as notify_outbox.payload holds it for a row of the per-record path.
-- Re-runnable (OR REPLACE), as the migration tool asks of every file.
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
         payload   JSON                               PATH '$.payload')) j;
