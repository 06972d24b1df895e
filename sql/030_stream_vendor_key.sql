-- A stream id is unique per vendor, not globally: an Agora room and a Tencent stream may both be
-- called room_1. live_streams is keyed by (vendor, stream_id); every existing row keeps its
-- vendor (the column was always filled) and so its identity. Lookups by the id alone (a forced
-- close names only the stream) use live_streams_stream.
ALTER TABLE live_streams
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (vendor, stream_id),
    ADD KEY live_streams_stream (stream_id, last_event_at);

-- A snapshot says which vendor's stream it belongs to, as a recording does (NULL: written before).
ALTER TABLE live_snapshots ADD COLUMN vendor VARCHAR(16) NULL AFTER stream_id;
