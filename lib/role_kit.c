/* role_kit.c: what every role's apply() and apply_many() use (see role_kit.h). */
#include "role_kit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "metrics.h"

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

/* ------------------------------------------------------------------ a batch at once */

bool role_time_storable(long long ms)
{
        return ms >= 0 && ms <= ROLE_TIME_MAX_MS;
}

int role_cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void role_text_strs(struct db *db, struct db_text *sql, const char *const *strs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (i)
                        db_text_add(sql, ", ");
                db_text_str(db, sql, strs[i]);
        }
}

size_t role_distinct(const char **strs, size_t n)
{
        size_t cnt = 0;

        if (n)
                qsort(strs, n, sizeof(*strs), role_cmp_str);
        for (size_t i = 0; i < n; i++)
                if (i == 0 || strcmp(strs[i], strs[cnt - 1]) != 0)
                        strs[cnt++] = strs[i];
        return cnt;
}

enum db_result role_batch_fall_back(const char *why, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s", why);
        return DB_RETRY;
}

enum apply_result role_batch_result(enum db_result r)
{
        return r == DB_OK ? APPLY_DONE : APPLY_RETRY;
}

/* Which records are new: the first copy of each event id the ledger does not hold. */
static void mark_new(struct role_batch *b)
{
        const struct keyset *ks = &b->ids;
        size_t first = 0;

        b->fresh = 0;
        for (size_t i = 0; i < ks->n; i++) {
                size_t at = ks->items[i].index;

                if (keyset_is_first(ks, i))
                        first = at;
                b->first[at] = first;
                b->is_new[at] = keyset_is_first(ks, i) && !ks->items[i].is_known;
                b->fresh += b->is_new[at];
        }
}

enum db_result role_batch_read(struct role_batch *b, struct apply_slot *slots, size_t n,
                               int (*read)(void *arg, size_t i), void *arg, char *errstr,
                               size_t errstr_size)
{
        b->slots = slots;
        b->n = n;
        b->is_valid = calloc(n + 1, sizeof(*b->is_valid));
        b->is_new = calloc(n + 1, sizeof(*b->is_new));
        b->first = calloc(n + 1, sizeof(*b->first));
        if (!b->is_valid || !b->is_new || !b->first || keyset_init(&b->ids, n) == -1)
                return role_batch_fall_back("out of memory", errstr, errstr_size);
        for (size_t i = 0; i < n; i++) {
                if (read(arg, i) == -1) {
                        slots[i].result = APPLY_PERMANENT;
                        continue;
                }
                b->is_valid[i] = true;
                keyset_add(&b->ids, slots[i].rec->ev.event_id, i);
        }
        keyset_sort(&b->ids);
        if (keyset_may_collide(&b->ids))
                return role_batch_fall_back("event ids that MySQL may match other than byte for "
                                            "byte",
                                            errstr, errstr_size);
        return DB_OK;
}

enum db_result role_batch_look_up(struct role_batch *b, struct ledger *ledger, char *errstr,
                                  size_t errstr_size)
{
        enum db_result r;

        b->is_unread = false;
        if (!b->ids.n)
                return DB_OK;
        if ((r = ledger_find_known(ledger, &b->ids, &b->sql, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->ids.is_mismatch)
                return role_batch_fall_back("event ids that MySQL matches other than byte for byte",
                                            errstr, errstr_size);
        mark_new(b);
        return DB_OK;
}

void role_batch_mark_unread(struct role_batch *b)
{
        for (size_t i = 0; i < b->ids.n; i++)
                b->ids.items[i].is_known = false;
        b->is_unread = true;
        mark_new(b);
}

bool role_batch_met_held(const struct role_batch *b)
{
        for (size_t i = 0; i < b->ids.n; i++)
                if (b->ids.items[i].is_known)
                        return true;
        return false;
}

enum db_result role_batch_after_ledger(const struct role_batch *b, enum db_result r)
{
        return b->is_unread && r == DB_DUPLICATE ? DB_RETRY : r;
}

enum db_result role_batch_open(struct role_batch *b, struct ledger *ledger,
                               struct apply_slot *slots, size_t n, int (*read)(void *arg, size_t i),
                               void *arg, char *errstr, size_t errstr_size)
{
        enum db_result r = role_batch_read(b, slots, n, read, arg, errstr, errstr_size);

        return r == DB_OK ? role_batch_look_up(b, ledger, errstr, errstr_size) : r;
}

void role_batch_close(struct role_batch *b)
{
        db_text_free(&b->sql);
        keyset_free(&b->ids);
        free(b->is_valid);
        free(b->is_new);
        free(b->first);
        memset(b, 0, sizeof(*b));
}

enum db_result role_batch_write_ledger(struct role_batch *b, struct ledger *ledger,
                                       const char *(*outcome)(void *arg, size_t i), void *arg,
                                       char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        if (b->is_unread)
                ledger_text_begin_unread(&b->sql);
        else
                ledger_text_begin(&b->sql);
        for (size_t i = 0; i < b->n; i++)
                if (b->is_new[i])
                        ledger_text_row(ledger, &b->sql, b->slots[i].rec, outcome(arg, i),
                                        rows++ == 0);
        return ledger_text_exec(ledger, &b->sql, rows, errstr, errstr_size);
}

enum db_result role_batch_mismatch(char *errstr, size_t errstr_size)
{
        return role_batch_fall_back("ids that MySQL matches other than byte for byte", errstr,
                                    errstr_size);
}

void role_gate_init(struct role_gate *g, struct metrics *m, const char *name, const char *help)
{
        g->m_unread = metrics_counter(m, name, help, "way=\"unread\"");
        g->m_read_first = metrics_counter(m, name, NULL, "way=\"read_first\"");
        g->m_conflict = metrics_counter(m, name, NULL, "way=\"conflict\"");
}

static enum db_result exec_savepoint(struct db *db, struct db_text *sql, const char *verb,
                                     const char *name, char *errstr, size_t errstr_size)
{
        db_text_reset(sql);
        db_text_add(sql, "%s %s", verb, name);
        return db_text_exec(db, sql, NULL, errstr, errstr_size);
}

enum db_result role_gate_write(struct role_gate *g, const struct role_gate_ways *ways,
                               struct db *db, struct db_text *sql, void *arg, char *errstr,
                               size_t errstr_size)
{
        enum db_result r;

        if (g->is_reading_first) {
                metric_add(g->m_read_first, 1);
                return ways->read_first(arg, errstr, errstr_size);
        }
        if (ways->savepoint && (r = exec_savepoint(db, sql, "SAVEPOINT", ways->savepoint, errstr,
                                                   errstr_size)) != DB_OK)
                return r;
        if ((r = ways->unread(arg, errstr, errstr_size)) != DB_DUPLICATE) {
                if (r == DB_OK)
                        metric_add(g->m_unread, 1);
                return r;
        }
        metric_add(g->m_conflict, 1);
        if (ways->savepoint && (r = exec_savepoint(db, sql, "ROLLBACK TO SAVEPOINT",
                                                   ways->savepoint, errstr, errstr_size)) != DB_OK)
                return r;
        if (ways->forget)
                ways->forget(arg);
        return ways->read_first(arg, errstr, errstr_size);
}

enum apply_result role_gate_result(enum db_result r)
{
        return r == DB_DUPLICATE ? APPLY_RETRY : apply_from_db(r);
}
