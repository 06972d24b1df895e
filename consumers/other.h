/* other.h: the "other" role: what liveflow keeps but does not act on yet, logged in live_events. */
#ifndef LIVEFLOW_OTHER_H
#define LIVEFLOW_OTHER_H

#include "consumer.h"

/*
 * live.other carries the vendor callbacks liveflow acknowledges and keeps without acting on
 * them (Tencent relay 314, push abnormal 321, live summary 348, types it does not know, SRS
 * on_hls / on_connect / on_close / on_forward). Each is recorded once in live_events
 * (consumer 'other', unique per event id), its outcome naming the vendor's own type
 * ("tencent 321", "srs on_hls"), and counted in liveflow_other_events_total{vendor}; the
 * record itself stays in Kafka for whoever acts on it later. An event whose times MySQL
 * cannot store (after 2038) is permanent (to live.other.dlq).
 */
extern const struct consumer_role other_role;

#endif
