/* role_kit.c: what every role's apply() uses (see role_kit.h). */
#include "role_kit.h"

#include <jansson.h>
#include <string.h>

enum apply_result apply_from_db(enum db_result r)
{
        return r == DB_OK || r == DB_DUPLICATE ? APPLY_DONE
               : r == DB_RETRY                 ? APPLY_RETRY
                                               : APPLY_PERMANENT;
}

const char *payload_str(const struct event *ev, const char *key)
{
        return json_string_value(json_object_get(ev->payload, key));
}

bool payload_int(const struct event *ev, const char *key, long long *out)
{
        json_t *v = json_object_get(ev->payload, key);

        if (!json_is_integer(v))
                return false;
        *out = (long long)json_integer_value(v);
        return true;
}

long long payload_int_or(const struct event *ev, const char *key, long long dflt)
{
        long long v;

        return payload_int(ev, key, &v) ? v : dflt;
}

long long payload_count(const struct event *ev, const char *key, long long max)
{
        long long v;

        return payload_int(ev, key, &v) && v >= 0 && v <= max ? v : -1;
}

bool event_is(const struct event *ev, const char *event_type, const char *payload_name)
{
        return strcmp(ev->event_type, event_type) == 0 && ev->payload_name &&
               strcmp(ev->payload_name, payload_name) == 0;
}
