/*
 * jsonfast.h: a request body parsed once into a cJSON tree, read exactly as jansson's
 * json_loadb(JSON_REJECT_DUPLICATES) reads it. cJSON parses a callback about five times
 * faster than jansson, but it reads some documents differently (numbers are doubles, duplicate
 * keys and control characters pass, UTF-8 is not checked, "\u0000" ends a string). A body is
 * parsed by cJSON only when one pass over its bytes shows none of those can occur; any other
 * body is parsed by jansson (its error text, or its tree copied into cJSON), so what is
 * accepted, refused and read is jansson's in every case.
 */
#ifndef LIVEFLOW_RECEIVER_JSONFAST_H
#define LIVEFLOW_RECEIVER_JSONFAST_H

#include <cjson/cJSON.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * @brief Parses body[0..len) (any JSON value at the top but a scalar, like jansson without
 * JSON_DECODE_ANY; duplicate keys refused at every depth).
 * @param out the tree (cJSON_Delete() frees it) on success.
 * @returns 0; -1 malformed (jerr says where and why, as jansson says it); -2 out of memory.
 */
int jsonfast_parse(const char *body, size_t len, cJSON **out, json_error_t *jerr);

/*
 * @brief An integer of the document (jansson's json_is_integer()): *out set, true. A number
 * with a fraction or an exponent is not one (false), as in jansson.
 */
bool jsonfast_integer(const cJSON *v, int64_t *out);

#endif
