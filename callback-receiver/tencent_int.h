/*
 * tencent_int.h: what the two parts of the Tencent endpoint share. tencent.c verifies a
 * callback and reads its ids (event, stream, anchor, room); tencent_payload.c maps each
 * Tencent type to its event type, topic and payload record.
 */
#ifndef LIVEFLOW_RECEIVER_TENCENT_INT_H
#define LIVEFLOW_RECEIVER_TENCENT_INT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "contract.h"
#include "webhook.h"

#define TEXT_INT_MAX 24 /* decimal text of any int64, with sign and NUL */
#define SIGN_LEN     32 /* hex MD5 */

/* Tencent's event_type values (vendor-callbacks §1.3). */
enum tencent_type {
        TENCENT_STREAM_END = 0,
        TENCENT_STREAM_BEGIN = 1,
        TENCENT_RECORD_FILE = 100,
        TENCENT_SNAPSHOT = 200,
        TENCENT_AUDIT_AUDIO = 315,
        TENCENT_AUDIT_IMAGE = 317,
        TENCENT_RECORD_STATUS = 332,
};

#define TOPIC_STREAM   LF_TOPIC_STREAM
#define TOPIC_RECORD   LF_TOPIC_RECORD
#define TOPIC_SNAPSHOT LF_TOPIC_SNAPSHOT
#define TOPIC_AUDIT    LF_TOPIC_AUDIT
#define TOPIC_OTHER    LF_TOPIC_OTHER

/* What one Tencent type becomes. */
struct mapping {
        long long type;
        const char *event_type;
        const char *topic;
        const char *payload_name; /* a payload record of schemas/event.avsc; NULL: null payload */
        const char *stream_field; /* the name a missing stream is refused under; NULL: optional */
        const char *time_field;   /* Unix seconds standing in for a missing event_time; or NULL */
        /* Adds the payload's fields to p, or refuses (400 naming the field, 500). */
        int (*fill)(const cJSON *root, struct payload *p, struct webhook_verdict *v);
};

/* tencent.c: reading fields */
/* obj[name], NULL when absent (or obj is not an object). */
const cJSON *tencent_member(const cJSON *obj, const char *name);
/* An integer sent as a JSON number or as decimal text ("1703732078"). */
int tencent_read_int64(const cJSON *v, int64_t *out);
/* A string as it is, an integer as its decimal text (in buf); NULL for anything else. */
const char *tencent_read_text(const cJSON *v, char *buf, size_t size);

/* tencent_payload.c */
/*
 * Unix seconds in root[name] as ms, plus the microseconds in root[usec_name] when that is
 * sent and in range (usec_name may be NULL); -1 when absent, malformed or out of range.
 */
int64_t tencent_read_time_ms(const cJSON *root, const char *name, const char *usec_name);
/* The mapping of a Tencent type; the "other" one for a type liveflow does not act on. */
const struct mapping *tencent_mapping_of(long long type);
/* Sets ev's event type, topic and payload from root, or refuses (400 naming the field, 500). */
int tencent_map_payload(const cJSON *root, const struct mapping *m, struct webhook_event *ev,
                        struct webhook_verdict *v);

#endif
