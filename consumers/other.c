/* other.c: the "other" role (see other.h). */
#include "other.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

#define TIME_MAX_MS 2147483647000LL /* FROM_UNIXTIME on MariaDB 10.11 stops in 2038 */
#define OUTCOME_MAX 32              /* live_events.outcome */

static const char *const other_topics[] = {"live.other", NULL};

struct other_state {
        struct db *db;
        struct metrics *metrics;
        struct db_stmt *insert_event;
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
        st->insert_event = db_stmt(st->db,
                "INSERT IGNORE INTO live_events (consumer, event_id, vendor, event_type, stream_id, "
                "trace_id, event_time, received_at, outcome, kafka_topic, kafka_partition, kafka_offset) "
                "VALUES ('other', ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000), ?, ?, ?, ?)");
        if (!st->insert_event) {
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        *state = st;
        return 0;
}

static void other_close(void *state)
{
        free(state);
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
        unsigned long long affected = 0;
        enum db_result r;

        if (ev->event_time_ms < 0 || ev->event_time_ms > TIME_MAX_MS || ev->receive_time_ms < 0 ||
            ev->receive_time_ms > TIME_MAX_MS) {
                snprintf(errstr, errstr_size, "event time %lld or receive time %lld out of range",
                         (long long)ev->event_time_ms, (long long)ev->receive_time_ms);
                return APPLY_PERMANENT;
        }
        vendor_type(ev, outcome, sizeof(outcome));
        struct db_param p[] = {DB_STR(ev->event_id), DB_STR(ev->vendor), DB_STR(ev->event_type),
                               DB_STR(ev->stream_id), DB_STR(ev->trace_id), DB_I64(ev->event_time_ms),
                               DB_I64(ev->receive_time_ms), DB_STR(outcome), DB_STR(rec->topic),
                               DB_I64(rec->partition), DB_I64(rec->offset)};

        r = db_exec(st->db, st->insert_event, p, 11, &affected, NULL, errstr, errstr_size);
        if (r == DB_RETRY)
                return APPLY_RETRY;
        if (r != DB_OK && r != DB_DUPLICATE)
                return APPLY_PERMANENT;
        if (affected == 0) {
                log_debug(rec->trace_id, "duplicate event %s (%s)", ev->event_id, outcome);
                return APPLY_DONE;
        }
        snprintf(labels, sizeof(labels), "vendor=\"%.16s\"", ev->vendor);
        metric_add(metrics_counter(st->metrics, "liveflow_other_events_total",
                                   "Callbacks kept without acting on them, by vendor", labels),
                   1);
        log_info(rec->trace_id, "kept %s stream=%s event_id=%s topic=%s partition=%d offset=%lld", outcome,
                 ev->stream_id ? ev->stream_id : "-", ev->event_id, rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

const struct consumer_role other_role = {
        .name = "other",
        .topics = other_topics,
        .open = other_open,
        .apply = other_apply,
        .close = other_close,
};
