/* snapshot.h: the "snapshot" role: live.snapshot into live_snapshots and live_streams.cover_url. */
#ifndef LIVEFLOW_SNAPSHOT_H
#define LIVEFLOW_SNAPSHOT_H

#include "consumer.h"

/*
 * Screenshots, tolerant of duplicates and of any arrival order: every event is recorded
 * once in live_events (unique per consumer and event id) and kept once in live_snapshots
 * (unique per event id). The stream's cover_url follows the newest screenshot by the time
 * the picture was taken (cover_time), never by arrival: an older one arriving late changes
 * nothing (at equal times the greater URL wins, so every order ends the same). The cover is
 * pic_full_url, else pic_url. A screenshot of a stream that has no live_streams row yet is
 * kept with cover_pending = 1; a sweep about every 5 s offers the newest pending one to the
 * row once it exists, and gives up a day after arrival. Anything but event_type "snapshot"
 * with a Snapshot payload, an empty pic_url or a create time outside what MySQL's
 * FROM_UNIXTIME takes (1970 to 2038) is permanent (to live.snapshot.dlq). A batch is applied
 * set-based (apply_many: five statements for the whole batch, with the same outcomes); what
 * that path cannot pin on one record rolls the batch back to one record at a time.
 */
extern const struct consumer_role snapshot_role;

#endif
