/* record.h: the "record" role: live.record into live_records and live_events. */
#ifndef LIVEFLOW_RECORD_H
#define LIVEFLOW_RECORD_H

#include "consumer.h"

/*
 * Recording files and recording states, tolerant of duplicates and of files that arrive
 * before their stream's session: every event is recorded once in live_events (unique per
 * consumer and event id); a record.file (payload RecordFile) becomes one live_records row
 * keyed by its file_id, linked to the live_streams session whose [started_at, ended_at or
 * open] holds the file's start, or left with a NULL session that a sweep about every 5 s
 * fills once such a session appears (for a day). A second event naming a known file
 * changes nothing but a missing session. record.status (RecordStatus) is recorded in
 * live_events only. Anything else, or a RecordFile without file_id or video_url, is
 * permanent (to live.record.dlq).
 */
extern const struct consumer_role record_role;

#endif
