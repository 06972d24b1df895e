/*
 * internal_int.h: what the two parts of the internal endpoints share. internal.c verifies a
 * request, checks and converts body fields and maps /v1/rewards and /v1/withdrawals;
 * internal_admin.c maps the operators' commands (/v1/admin/<resource>/<id>/<action>).
 */
#ifndef LIVEFLOW_RECEIVER_INTERNAL_INT_H
#define LIVEFLOW_RECEIVER_INTERNAL_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "contract.h"
#include "field_limits.h"
#include "webhook.h"

struct internal;

#define TOPIC_STREAM LF_TOPIC_STREAM
#define TOPIC_AUDIT  LF_TOPIC_AUDIT

#define REASON_MAX        FIELD_MAX_REASON     /* an operator's reason, in characters */
#define SUSPEND_MAX_S     (10LL * 365 * 86400) /* the audit role's longest suspension */
#define CLOSE_BY_OPERATOR 2                    /* StreamEnd.close_method */

/* A 400 naming field, counted by endpoint and field (both from our own static tables). */
int internal_refuse_field(struct internal *in, const char *endpoint, const char *field,
                          struct webhook_verdict *v, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
/* obj[name], NULL when absent. */
const cJSON *internal_member(const cJSON *obj, const char *name);
/* 1..max characters (the width of its column), no control characters. */
bool internal_is_clean_id(const char *s, size_t len, size_t max);
/* Only a JSON integer from min to max: 100.0 or "100" is refused. */
bool internal_is_integer_between(const cJSON *value, long long min, long long max);
/*
 * An id field: a JSON string of 1..max characters without control characters, or a JSON
 * integer (its decimal text). True with the text as a new JSON string in *out (NULL when out
 * of memory).
 */
bool internal_id_text(const cJSON *value, size_t max, json_t **out);
/* The body as a JSON object in *root (the caller frees it); NULL for an empty one when allowed. */
int internal_parse_body(struct internal *in, const char *endpoint,
                        const struct webhook_request *req, bool may_be_empty, cJSON **root,
                        struct webhook_verdict *v);

/* internal_admin.c: an operator's command, from its path (req->path_arg) and its body. */
int internal_admin_map(struct internal *in, const struct webhook_request *req,
                       struct webhook_event *ev, struct webhook_verdict *v);

#endif
