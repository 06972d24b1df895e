/*
 * fields.h: reading vendor JSON the way vendors send it: integers as numbers or decimal text,
 * ids as strings or numbers, file names whose extension is the format.
 */
#ifndef LIVEFLOW_RECEIVER_FIELDS_H
#define LIVEFLOW_RECEIVER_FIELDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FIELDS_TEXT_INT_MAX 24 /* decimal text of any int64, with sign and NUL */

/** @brief Strict decimal text: optional '-', digits only, within int64. @returns 0 or -1. */
int fields_parse_decimal(const char *s, int64_t *out);

/** @brief An integer sent as a JSON number or as strict decimal text. @returns 0 or -1. */
int fields_int64(const json_t *v, int64_t *out);

/**
 * @brief A string as it is, an integer as its decimal text (written into buf, at least
 * FIELDS_TEXT_INT_MAX bytes). @returns the text (borrowed from v or buf), or NULL for
 * anything else (absent, null, a float, an object).
 */
const char *fields_text(const json_t *v, char *buf, size_t size);

/** @brief Sets p[name] to a copy of s unless s is NULL or empty. @returns 0, -1 out of memory. */
int fields_put(json_t *p, const char *name, const char *s);

/** @brief Sets p[name] to n. @returns 0, or -1 when out of memory. */
int fields_put_int(json_t *p, const char *name, int64_t n);

/**
 * @brief The lowercase extension of a file name ("mp4"), "hls" for m3u8, into buf; NULL when
 * the name has none or it is longer than buf.
 */
const char *fields_file_format(const char *name, char *buf, size_t size);

/**
 * @brief Percent-decodes len bytes of a form value ("a%2F1+b" is "a/1 b"; a '%' not followed by
 * two hex digits stays as it is) into a new string.
 * @returns the decoded text (free() it), or NULL when it would hold a NUL or not be RFC 3629
 * UTF-8, or when out of memory.
 */
char *fields_form_decode(const char *s, size_t len);

/** @brief Number of UTF-8 characters of s (bytes that do not continue a character). */
size_t fields_utf8_chars(const char *s);

#endif
