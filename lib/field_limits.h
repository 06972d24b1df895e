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
#define FIELD_MAX_SESSION     128 /* a vendor's session key: Tencent sequence, SRS client_id */

/* One field and the columns it is stored in ("table.column", space-separated). */
struct field_limit {
        const char *field;
        size_t max_chars;
        const char *columns;
};

/* Every limit above with its columns; ends with a row whose field is NULL. */
extern const struct field_limit field_limits[];

/**
 * @brief Counts the characters of s (len bytes of UTF-8; a byte that starts no character
 * counts as one). @returns true when it is at most max_chars characters.
 */
bool field_fits(const char *s, size_t len, size_t max_chars);

#endif
