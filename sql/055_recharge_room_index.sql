-- 055_recharge_room_index: recharge's KEY recharge_room (room_id) is the left part of 004's
-- recharge_room_seq (room_id, room_seq), which serves every lookup by room as well (the
-- rebuild's and the reconcile's); every tip paid for both at its INSERT. Re-runnable, as the
-- migration tool asks of every file.
ALTER TABLE recharge DROP INDEX IF EXISTS recharge_room;
