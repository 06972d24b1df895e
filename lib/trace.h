/* trace.h: trace ids, born at the receiver and carried in every log line and Kafka header. */
#ifndef LIVEFLOW_TRACE_H
#define LIVEFLOW_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#define TRACE_ID_MAX 64 /* longest accepted incoming id, excluding the NUL */

/** @brief Writes 32 lowercase hex digits from 16 random bytes; out must hold 33 bytes. */
void trace_id_new(char *out);

/** @brief True when s is an acceptable incoming X-Request-Id: 8..64 chars of [A-Za-z0-9._-]. */
bool trace_id_is_valid(const char *s);

#endif
