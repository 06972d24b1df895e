/*
 * field_limits.h: the longest value of every id and text field the receiver accepts, in
 * characters: the width of the narrowest column the value ends in (sql/). A value that does
 * not fit is refused with 400 at the door, because a 200 for it would end in a permanent
 * dead letter ("Data too long"), and a vendor does not retry after a 200.
 * tests/lib/test_field_limits.c reads the migrated schema and checks every row below.
 */
#ifndef LIVEFLOW_FIELD_LIMITS_H
#define LIVEFLOW_FIELD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#define FIELD_MAX_ANCHOR_ID   64
#define FIELD_MAX_AUDIENCE_ID 64
#define FIELD_MAX_ROOM_ID     64
#define FIELD_MAX_STREAM_ID   255
#define FIELD_MAX_TIP_ID      64 /* a tip's trace_id: recharge.trace_id */
#define FIELD_MAX_REQUEST_ID  64
#define FIELD_MAX_GIFT_ID     64
#define FIELD_MAX_REASON      255
#define FIELD_MAX_SESSION     128  /* a vendor's session key: Tencent sequence, SRS client_id */
#define FIELD_MAX_FILE_ID     128  /* a recording's id */
#define FIELD_MAX_URL         2048 /* a recording's or a screenshot's URL */
#define FIELD_MAX_CLIENT_ID   128  /* a vendor's viewer (SRS client_id, Agora uid) */
#define FIELD_MAX_LABEL       64   /* a moderation verdict's label */
#define FIELD_MAX_FORMAT      16   /* a recording's format: mp4, flv, hls */
#define FIELD_MAX_VERDICT     32   /* a verdict's source and suggestion */
#define FIELD_MAX_AGE_BAND    32
#define FIELD_MAX_REGION      64
#define FIELD_MAX_TAG         32 /* one profile tag */

/* One field and the columns it is stored in ("table.column", space-separated). */
struct field_limit {
        const char *field;
        size_t max_chars;
        const char *columns;
};

/*
 * Every limit above with its columns; ends with a row whose field is NULL. field is the
 * name the value has in an event's payload (and its envelope: stream_id, anchor_id, room_id),
 * so the receiver can measure every event it is about to accept against this one table.
 */
extern const struct field_limit field_limits[];

/** @brief The row of field (a payload field name), or NULL when it has no limit here. */
const struct field_limit *field_limit_of(const char *field);

/**
 * @brief Counts the characters of s (len bytes of UTF-8; a byte that starts no character
 * counts as one). @returns true when it is at most max_chars characters.
 */
bool field_fits(const char *s, size_t len, size_t max_chars);

#endif
