/* other.c: the "other" role (see other.h). */
#include "other.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"

#define TIME_MAX_MS 2147483647000LL /* FROM_UNIXTIME on MariaDB 10.11 stops in 2038 */
#define OUTCOME_MAX 32              /* live_events.outcome */

static const char *const other_topics[] = {LF_TOPIC_OTHER, NULL};

struct other_state {
        struct db *db;
        struct metrics *metrics;
        struct ledger *ledger;
};

static int other_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct other_state *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        st->metrics = env->metrics;
        if (!(st->ledger = ledger_new(st->db, "other"))) {
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        *state = st;
        return 0;
}

static void other_close(void *state)
{
        struct other_state *st = state;

        ledger_destroy(st->ledger);
        free(st);
}

/*
 * The vendor's own name for the callback, from the raw body: Tencent's event_type (a number,
 * or its text), SRS's action. Printable ASCII only, bounded; "unknown" when there is none.
 */
static void vendor_type(const struct event *ev, char *out, size_t out_size)
{
        json_t *root = json_loadb(ev->raw, ev->raw_len, 0, NULL);
        json_t *t = json_object_get(root, "event_type");
        char type[24] = "unknown";

        if (!t)
                t = json_object_get(root, "action");
        if (json_is_integer(t))
                snprintf(type, sizeof(type), "%lld", (long long)json_integer_value(t));
        else if (json_is_string(t) && json_string_length(t) > 0)
                snprintf(type, sizeof(type), "%s", json_string_value(t));
        json_decref(root);
        for (char *p = type; *p; p++)
                if (*p < 0x21 || *p > 0x7e)
                        *p = '?';
        snprintf(out, out_size, "%.8s %s", ev->vendor, type);
}

static enum apply_result other_apply(void *state, struct consumer_record *rec, char *errstr,
                                     size_t errstr_size)
{
        struct other_state *st = state;
        const struct event *ev = &rec->ev;
        char outcome[OUTCOME_MAX + 1], labels[64];
        enum db_result r;
        bool first;

        if (ev->event_time_ms < 0 || ev->event_time_ms > TIME_MAX_MS || ev->receive_time_ms < 0 ||
            ev->receive_time_ms > TIME_MAX_MS) {
                snprintf(errstr, errstr_size, "event time %lld or receive time %lld out of range",
                         (long long)ev->event_time_ms, (long long)ev->receive_time_ms);
                return APPLY_PERMANENT;
        }
        vendor_type(ev, outcome, sizeof(outcome));
        r = ledger_record(st->ledger, rec, &first, errstr, errstr_size);
        if (r == DB_OK && first)
                r = ledger_set_outcome(st->ledger, ev->event_id, outcome, errstr, errstr_size);
        if (r == DB_RETRY)
                return APPLY_RETRY;
        if (r != DB_OK && r != DB_DUPLICATE)
                return APPLY_PERMANENT;
        if (!first) {
                log_debug(rec->trace_id, "duplicate event %s (%s)", ev->event_id, outcome);
                return APPLY_DONE;
        }
        snprintf(labels, sizeof(labels), "vendor=\"%.16s\"", ev->vendor);
        metric_add(metrics_counter(st->metrics, "liveflow_other_events_total",
                                   "Callbacks kept without acting on them, by vendor", labels),
                   1);
        log_info(rec->trace_id, "kept %s stream=%s event_id=%s topic=%s partition=%d offset=%lld",
                 outcome, ev->stream_id ? ev->stream_id : "-", ev->event_id, rec->topic,
                 rec->partition, rec->offset);
        return APPLY_DONE;
}

const struct consumer_role other_role = {
        .name = "other",
        .topics = other_topics,
        .open = other_open,
        .apply = other_apply,
        .close = other_close,
};
