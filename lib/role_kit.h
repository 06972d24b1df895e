/*
 * role_kit.h: the small pieces every consumer role's apply() uses: what a MySQL result means
 * for the record, and the fields of the event's payload.
 */
#ifndef LIVEFLOW_ROLE_KIT_H
#define LIVEFLOW_ROLE_KIT_H

#include <stdbool.h>

#include "codec.h"
#include "consumer.h"
#include "db.h"

/**
 * @brief What a MySQL result means for the record: done (DB_OK, or DB_DUPLICATE: the
 * idempotent write happened before), retry (transient) or permanent (the data is wrong).
 */
enum apply_result apply_from_db(enum db_result r);

/** @brief The payload's string field key, or NULL when absent, null or not a string. */
const char *payload_str(const struct event *ev, const char *key);

/** @brief The payload's integer field key into *out; false (and *out kept) when not an integer. */
bool payload_int(const struct event *ev, const char *key, long long *out);

/** @brief The payload's integer field key, or dflt when it is not an integer. */
long long payload_int_or(const struct event *ev, const char *key, long long dflt);

/** @brief The payload's integer field key when it is in [0, max], else -1 (unknown). */
long long payload_count(const struct event *ev, const char *key, long long max);

/** @brief Whether the event is of event_type with a payload record named payload_name. */
bool event_is(const struct event *ev, const char *event_type, const char *payload_name);

#endif
