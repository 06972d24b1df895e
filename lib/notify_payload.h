/*
 * notify_payload.h: a notification's payload (schemas/event.avsc Notify) written straight from
 * a struct notify_msg: the JSON text the outbox keeps, byte for byte what jansson's
 * json_dumps(JSON_COMPACT) wrote for it before, and the same fields for the Avro writer
 * (codec_encode_direct()), without a JSON tree.
 */
#ifndef LIVEFLOW_NOTIFY_PAYLOAD_H
#define LIVEFLOW_NOTIFY_PAYLOAD_H

#include <stddef.h>

#include "notify.h"

struct payload;

/**
 * @brief m's payload as compact JSON: "kind" and "at_ms", then those of session_id (> 0),
 * title, cover_url, reason, request_id, file_id, playback_url, duration_s, close_method,
 * until_ms and amount (>= 0) that m has, in that order. A text that is empty or not UTF-8 is
 * left out, as jansson refused such a string. Texts are escaped as jansson escapes them
 * (\" \\ \b \f \n \r \t, other control bytes \u00XX); other UTF-8 goes as it is.
 * @param len receives the text's length; may be NULL.
 * @param fields may be NULL; else receives the same fields in the Notify record's order
 * (payload_destroy() frees them).
 * @returns the text (malloc'd, the caller frees it), or NULL when out of memory or when kind
 * is NULL or not UTF-8 (then *fields is NULL).
 */
char *notify_payload_json(const struct notify_msg *m, size_t *len, struct payload **fields);

/**
 * @brief s[0..len) as a JSON string (quoted) at at, escaped as notify_payload_json() escapes
 * (jansson's escapes); other bytes go as they are (the caller checks UTF-8 if it must).
 * at must have room for 6 * len + 2 bytes. @returns where the string ends (not terminated).
 */
char *notify_json_string(char *at, const char *s, size_t len);

#endif
