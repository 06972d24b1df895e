/* other.c: the "other" role (see other.h). */
#include "other.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "keyset.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "role_kit.h"

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

/* Checks the times MySQL must store; outcome gets vendor_type(). @returns 0 or -1 with errstr. */
static int read_event(const struct event *ev, char outcome[OUTCOME_MAX + 1], char *errstr,
                      size_t errstr_size)
{
        if (ev->event_time_ms < 0 || ev->event_time_ms > TIME_MAX_MS || ev->receive_time_ms < 0 ||
            ev->receive_time_ms > TIME_MAX_MS) {
                snprintf(errstr, errstr_size, "event time %lld or receive time %lld out of range",
                         (long long)ev->event_time_ms, (long long)ev->receive_time_ms);
                return -1;
        }
        vendor_type(ev, outcome, OUTCOME_MAX + 1);
        return 0;
}

/* The metric and the log line of a callback kept for the first time. */
static void kept(struct other_state *st, const struct consumer_record *rec, const char *outcome)
{
        const struct event *ev = &rec->ev;
        char labels[64];

        snprintf(labels, sizeof(labels), "vendor=\"%.16s\"", ev->vendor);
        metric_add(metrics_counter(st->metrics, "liveflow_other_events_total",
                                   "Callbacks kept without acting on them, by vendor", labels),
                   1);
        log_info(rec->trace_id, "kept %s stream=%s event_id=%s topic=%s partition=%d offset=%lld",
                 outcome, ev->stream_id ? ev->stream_id : "-", ev->event_id, rec->topic,
                 rec->partition, rec->offset);
}

static enum apply_result other_apply(void *state, struct consumer_record *rec, char *errstr,
                                     size_t errstr_size)
{
        struct other_state *st = state;
        const struct event *ev = &rec->ev;
        char outcome[OUTCOME_MAX + 1];
        enum db_result r;
        bool first;

        if (read_event(ev, outcome, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
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
        kept(st, rec, outcome);
        return APPLY_DONE;
}

/*
 * other_apply() for a whole batch in two statements instead of two per record: which events
 * the ledger holds already, and one multi-row ledger insert with each new callback's vendor
 * type as its outcome. Event ids that MySQL's collation could match to one another, an id
 * MySQL returns in another spelling, an event recorded meanwhile or any statement error roll
 * the batch back to other_apply() per record.
 */
struct other_rec {
        char outcome[OUTCOME_MAX + 1];
        bool is_new;
};

static enum db_result other_batch(struct other_state *st, struct apply_slot *slots, size_t n,
                                  struct other_rec *recs, struct keyset *ks, struct db_text *sql,
                                  char *errstr, size_t errstr_size)
{
        size_t rows = 0;
        enum db_result r;

        for (size_t i = 0; i < n; i++) {
                if (read_event(&slots[i].rec->ev, recs[i].outcome, slots[i].error,
                               slots[i].error_size) == -1)
                        slots[i].result = APPLY_PERMANENT;
                else
                        keyset_add(ks, slots[i].rec->ev.event_id, i);
        }
        keyset_sort(ks);
        if (!ks->n)
                return DB_OK;
        if (keyset_may_collide(ks)) {
                snprintf(errstr, errstr_size,
                         "event ids that MySQL may match other than byte "
                         "for byte");
                return DB_RETRY;
        }
        if ((r = ledger_find_known(st->ledger, ks, sql, errstr, errstr_size)) != DB_OK)
                return r;
        if (ks->is_mismatch) {
                snprintf(errstr, errstr_size,
                         "event ids that MySQL matches other than byte for "
                         "byte");
                return DB_RETRY;
        }
        for (size_t i = 0; i < ks->n; i++)
                recs[ks->items[i].index].is_new = keyset_is_first(ks, i) && !ks->items[i].is_known;
        ledger_text_begin(sql);
        for (size_t i = 0; i < n; i++)
                if (recs[i].is_new)
                        ledger_text_row(st->ledger, sql, slots[i].rec, recs[i].outcome,
                                        rows++ == 0);
        return ledger_text_exec(st->ledger, sql, rows, errstr, errstr_size);
}

static enum apply_result other_apply_many(void *state, struct apply_slot *slots, size_t n,
                                          char *errstr, size_t errstr_size)
{
        struct other_state *st = state;
        struct other_rec *recs = calloc(n, sizeof(*recs));
        struct db_text sql = {0};
        struct keyset ks;
        enum db_result r = DB_RETRY;

        if (keyset_init(&ks, n) == 0 && recs)
                r = other_batch(st, slots, n, recs, &ks, &sql, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        for (size_t i = 0; i < n && r == DB_OK; i++) {
                const struct consumer_record *rec = slots[i].rec;

                if (slots[i].result == APPLY_PERMANENT)
                        continue;
                if (recs[i].is_new)
                        kept(st, rec, recs[i].outcome);
                else
                        log_debug(rec->trace_id, "duplicate event %s (%s)", rec->ev.event_id,
                                  recs[i].outcome);
        }
        db_text_free(&sql);
        keyset_free(&ks);
        free(recs);
        return r == DB_OK ? APPLY_DONE : r == DB_DUPLICATE ? APPLY_RETRY : apply_from_db(r);
}

const struct consumer_role other_role = {
        .name = "other",
        .topics = other_topics,
        .open = other_open,
        .apply = other_apply,
        .apply_many = other_apply_many,
        .close = other_close,
};
