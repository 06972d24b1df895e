/*
 * envelope.h: the envelope the receiver makes of a mapped event, for the vendor suites that
 * encode it as the receiver does (tencent/payloads.c, test_internal.c).
 */
#ifndef LIVEFLOW_TEST_CALLBACK_RECEIVER_ENVELOPE_H
#define LIVEFLOW_TEST_CALLBACK_RECEIVER_ENVELOPE_H

#include <stddef.h>

#include "codec.h"
#include "webhook.h"

/* e's envelope, received at receive_ms under trace_id, raw being the body as received; it
 * borrows from e. */
static inline struct envelope envelope_of(const struct webhook_event *e, long long receive_ms,
                                          const char *trace_id, const void *raw, size_t raw_len)
{
        return (struct envelope){.event_id = e->event_id,
                                 .vendor = e->vendor,
                                 .event_type = e->event_type,
                                 .stream_id = e->stream_id,
                                 .anchor_id = e->anchor_id,
                                 .room_id = e->room_id,
                                 .event_time_ms = e->event_time_ms,
                                 .receive_time_ms = receive_ms,
                                 .trace_id = trace_id,
                                 .raw = raw,
                                 .raw_len = raw_len};
}

#endif
