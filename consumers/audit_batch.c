/*
 * audit_batch.c: the audit role's apply_many(), a batch at once (audit_apply() per verdict in
 * audit.c stays the fallback and the oracle, tests/consumers/test_batch_oracle.c). This file
 * reads and locks; audit_batch_decide.c decides in memory; audit_batch_write.c writes.
 *
 * The anchors of verdicts without one in their envelope come from live_streams (one query, none
 * when every verdict names its anchor); then one statement reads which verdicts
 * live_audit_logs holds already and which anchors rows exist, and another locks those rows in
 * key order (FOR UPDATE; a missing row is not locked, see add_anchors_read()) and reads the
 * warnings that can fall into a window of the batch's warnings (under a shared lock; none of
 * the two when there is nothing to read); every new verdict is decided in memory in batch order
 * exactly as audit_apply() decides it, and written with one multi-row insert of the log rows,
 * one of the missing anchors rows, one upsert of the existing anchors rows it changed and one
 * insert of the notifications. Once every verdict is decided, the live streams its
 * punishments in force close are read in one query (none when it has none; the batch does not
 * write live_streams). Ids MySQL's
 * collation may match other than byte for byte, an id MySQL returns in another spelling, a
 * time FROM_UNIXTIME cannot take, a verdict recorded meanwhile, an anchors row created
 * meanwhile, or any statement error roll the batch back to audit_apply() per verdict.
 *
 * The reads of live_streams and of the warnings name their index: past
 * eq_range_index_dive_limit (200) ids MariaDB estimates an IN list from the index's
 * statistics, which lag behind a burst of new streams or verdicts, and then reads every live
 * stream (or locks every warning) instead of one look-up per id. The reads by a unique key
 * (the verdicts, the anchors rows) are estimated as one row per id whatever the statistics.
 */
#include "audit_batch.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
#include "role_kit.h"

enum db_result audit_batch_fall_back(const char *why, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s", why);
        return DB_RETRY;
}

bool audit_batch_time_storable(long long ms)
{
        return ms >= 0 && ms <= AUDIT_TIME_MAX_MS;
}

static int cmp_anchor_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct batch_anchor *)elem)->id);
}

struct batch_anchor *audit_batch_find_anchor(const struct batch *b, const char *id)
{
        return bsearch(id, b->anchors, b->anchor_cnt, sizeof(*b->anchors), cmp_anchor_key);
}

/* ------------------------------------------------------------------ reading */

/* Reads every verdict; malformed ones are refused at once (nothing was written for them). */
static bool read_batch(struct batch *b, struct apply_slot *slots)
{
        bool is_storable = true;

        for (size_t i = 0; i < b->n; i++) {
                struct batch_verdict *bv = &b->bv[i];

                bv->slot = &slots[i];
                bv->anchor_ix = AUDIT_NO_ANCHOR;
                if (audit_read_verdict(&slots[i].rec->ev, &b->st->policy, &bv->v, slots[i].error,
                                       slots[i].error_size) == -1) {
                        slots[i].result = APPLY_PERMANENT;
                        continue;
                }
                slots[i].result = APPLY_DONE;
                bv->is_valid = true;
                is_storable &= audit_batch_time_storable(slots[i].rec->ev.event_time_ms);
                keyset_add(&b->ids, slots[i].rec->ev.event_id, i);
        }
        keyset_sort(&b->ids);
        return is_storable;
}

static void on_stream(const struct db_col *cols, void *arg)
{
        struct batch *b = arg;
        struct keyset *ks = &b->streams;
        size_t at = keyset_find(ks, cols[0].s);

        if (at == ks->n) {
                b->is_mismatch = true;
                return;
        }
        for (; at < ks->n && strcmp(ks->items[at].id, cols[0].s) == 0; at++) {
                struct batch_verdict *bv = &b->bv[ks->items[at].index];
                const char *vendor = bv->slot->rec->ev.vendor;

                if (!vendor || strcmp(vendor, cols[1].s) != 0) {
                        /* MySQL compares vendors by its collation too */
                        if (vendor && keys_may_collide((const char *[]){vendor, cols[1].s}, 2))
                                b->is_mismatch = true;
                        continue;
                }
                if (cols[2].is_null)
                        continue;
                if (strlen(cols[2].s) >= sizeof(bv->anchor))
                        b->is_mismatch = true; /* longer than audit_resolve_anchor() reads */
                else
                        memcpy(bv->anchor, cols[2].s, strlen(cols[2].s) + 1);
        }
}

/*
 * The anchor of every verdict (a duplicate's too: audit_apply() locks it as well): the
 * envelope's, else the one live_streams knows for its vendor's stream, in one query, as
 * audit_resolve_anchor() reads it.
 */
static enum db_result resolve_anchors(struct batch *b, char *errstr, size_t errstr_size)
{
        struct keyset *ks = &b->anchor_ids;
        char id[KEYSET_ID_MAX + 1], vendor[64], anchor[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = vendor, .s_size = sizeof(vendor)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)}};
        enum db_result r;

        for (size_t i = 0; i < b->n; i++) {
                struct batch_verdict *bv = &b->bv[i];
                const struct event *ev = &bv->slot->rec->ev;

                bv->anchor[0] = '\0';
                if (!bv->is_valid)
                        continue;
                if (ev->anchor_id && *ev->anchor_id)
                        snprintf(bv->anchor, sizeof(bv->anchor), "%s", ev->anchor_id);
                else if (ev->stream_id)
                        keyset_add(&b->streams, ev->stream_id, i);
        }
        keyset_sort(&b->streams);
        if (b->streams.n) {
                if (keyset_may_collide(&b->streams))
                        return audit_batch_fall_back(
                                "stream ids that MySQL may match other than byte for byte", errstr,
                                errstr_size);
                db_text_reset(&b->sql);
                db_text_add(&b->sql,
                            "SELECT stream_id, vendor, anchor_id FROM live_streams FORCE INDEX "
                            "(live_streams_stream) WHERE stream_id IN ");
                keyset_add_list(&b->streams, b->st->db, &b->sql);
                r = db_text_query(b->st->db, &b->sql, cols, 3, on_stream, b, errstr, errstr_size);
                if (r != DB_OK)
                        return r;
        }
        for (size_t i = 0; i < b->n; i++)
                if (b->bv[i].is_valid && b->bv[i].anchor[0])
                        keyset_add(ks, b->bv[i].anchor, i);
        keyset_sort(ks);
        for (size_t i = 0; i < ks->n; i++) {
                if (!keyset_is_first(ks, i))
                        continue;
                b->anchors[b->anchor_cnt++] = (struct batch_anchor){
                        .id = ks->items[i].id,
                        .row = {.status = "active", .until_ms = -1, .admin_at_ms = -1},
                        .window_ms = b->st->warn_window_s * 1000,
                };
        }
        for (size_t i = 0; i < b->n; i++)
                if (b->bv[i].is_valid && b->bv[i].anchor[0])
                        b->bv[i].anchor_ix =
                                (size_t)(audit_batch_find_anchor(b, b->bv[i].anchor) - b->anchors);
        return DB_OK;
}

/* Appends "(id, ...)" of the batch's anchors, or of those whose row exists. */
static void add_anchor_list(struct batch *b, bool existing_only)
{
        size_t cnt = 0;

        db_text_add(&b->sql, "(");
        for (size_t i = 0; i < b->anchor_cnt; i++) {
                if (existing_only && !b->anchors[i].does_exist)
                        continue;
                db_text_add(&b->sql, cnt++ ? ", " : "");
                db_text_str(b->st->db, &b->sql, b->anchors[i].id);
        }
        db_text_add(&b->sql, ")");
}

/* An anchors row of the locking read: id, status, suspended_until, admin_at, updated_at. */
static void on_anchor(struct batch *b, const struct db_col *cols)
{
        struct batch_anchor *ba = audit_batch_find_anchor(b, cols[0].s);

        if (!ba) {
                b->is_mismatch = true;
                return;
        }
        ba->is_locked = true;
        snprintf(ba->row.status, sizeof(ba->row.status), "%s", cols[1].is_null ? "" : cols[1].s);
        ba->row.until_ms = cols[2].is_null ? -1 : cols[2].i;
        ba->row.admin_at_ms = cols[3].is_null ? -1 : cols[3].i;
        ba->version_ms = cols[4].is_null ? 0 : cols[4].i;
}

/* A warning MySQL holds: its anchor and its event time. */
static void on_warning(struct batch *b, const char *anchor, const struct db_col *time)
{
        struct batch_anchor *ba = audit_batch_find_anchor(b, anchor);

        if (!ba) {
                b->is_mismatch = true;
                return;
        }
        if (time->is_null)
                return;
        if (ba->nw == ba->cap) {
                size_t cap = ba->cap ? ba->cap * 2 : 16;
                long long *w = realloc(ba->warns, cap * sizeof(*w));

                if (!w) {
                        b->is_mismatch = true; /* out of memory: the per-record path */
                        return;
                }
                ba->warns = w;
                ba->cap = cap;
        }
        ba->warns[ba->nw++] = time->i;
}

/* A verdict live_audit_logs holds. */
static void on_known(struct batch *b, const char *event_id)
{
        struct keyset *ks = &b->ids;
        size_t i = keyset_find(ks, event_id);

        if (i == ks->n)
                b->is_mismatch = true;
        for (; i < ks->n && strcmp(ks->items[i].id, event_id) == 0; i++)
                ks->items[i].is_known = true;
}

/* An anchors row that exists (not locked yet). */
static void on_exists(struct batch *b, const char *anchor_id)
{
        struct batch_anchor *ba = audit_batch_find_anchor(b, anchor_id);

        if (!ba)
                b->is_mismatch = true;
        else
                ba->does_exist = true;
}

/* A row of read_known() or read_locked(): its first column names the read it belongs to. */
static void on_tagged_row(const struct db_col *cols, void *arg)
{
        struct batch *b = arg;

        switch (cols[0].is_null ? '\0' : cols[0].s[0]) {
        case 'k':
                on_known(b, cols[1].s);
                break;
        case 'e':
                on_exists(b, cols[1].s);
                break;
        case 'a':
                on_anchor(b, cols + 1);
                break;
        case 'w':
                on_warning(b, cols[1].s, &cols[3]);
                break;
        default:
                b->is_mismatch = true;
        }
}

/*
 * The anchors rows of the batch that exist, locked in key order, by their primary key: in a
 * UNION on a small table MariaDB may prefer a scan, which under FOR UPDATE locks every row it
 * passes. Only rows that exist are named: a locking read of a key that is missing locks the
 * gap where it would go, and two batches (two copies of the role, two lanes) that each lock
 * gaps and then insert their new anchors into the other's deadlock. A missing row is not
 * locked and not created here: the verdicts decide against a new row's defaults, and
 * audit_batch_write() inserts it with a plain INSERT, which fails (and the batch is tried
 * again) if another instance created it meanwhile.
 */
static void add_anchors_read(struct batch *b)
{
        db_text_add(&b->sql,
                    "(SELECT 'a', anchor_id, status, CAST(UNIX_TIMESTAMP("
                    "suspended_until) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(admin_at) * 1000 AS "
                    "SIGNED), CAST(UNIX_TIMESTAMP(updated_at) * 1000 AS SIGNED) FROM anchors FORCE "
                    "INDEX (PRIMARY) "
                    "WHERE anchor_id IN ");
        add_anchor_list(b, true);
        db_text_add(&b->sql, " ORDER BY anchor_id FOR UPDATE)");
}

/*
 * The warnings MySQL holds that a window of one of the batch's warnings can hold, under a
 * shared lock: those within the window's length of the batch's warnings (of every verdict,
 * the new ones among them: which are new is known only after this read).
 */
static void add_warnings_read(struct batch *b, bool is_first)
{
        long long lo = 0, hi = 0;
        bool any = false;

        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                long long t = bv->slot->rec->ev.event_time_ms;

                if (!bv->is_valid || bv->anchor_ix == AUDIT_NO_ANCHOR ||
                    bv->v.severity != AUDIT_WARN)
                        continue;
                lo = any && lo < t ? lo : t;
                hi = any && hi > t ? hi : t;
                any = true;
        }
        if (!any)
                return;
        db_text_add(&b->sql, is_first ? "" : " UNION ALL ");
        db_text_add(&b->sql,
                    "(SELECT 'w', anchor_id, NULL, CAST(UNIX_TIMESTAMP(event_time) * "
                    "1000 AS SIGNED), NULL, NULL FROM live_audit_logs FORCE INDEX "
                    "(live_audit_logs_warnings) WHERE severity = 'warn' AND event_time > "
                    "FROM_UNIXTIME(%lld / 1000) - INTERVAL %lld SECOND AND event_time < "
                    "FROM_UNIXTIME(%lld / 1000) + INTERVAL %lld SECOND AND anchor_id IN ",
                    lo, b->st->warn_window_s, hi, b->st->warn_window_s);
        add_anchor_list(b, false);
        db_text_add(&b->sql, " LOCK IN SHARE MODE)");
}

static int cmp_ll(const void *a, const void *b)
{
        long long x = *(const long long *)a, y = *(const long long *)b;

        return (x > y) - (x < y);
}

#define TAGGED_COLS(tag, id, status)                                                               \
        {                                                                                          \
                {.type = DB_PARAM_STR, .s = tag, .s_size = sizeof(tag)},                           \
                        {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},                     \
                        {.type = DB_PARAM_STR, .s = status, .s_size = sizeof(status)},             \
                        {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64},                            \
                {                                                                                  \
                        .type = DB_PARAM_I64                                                       \
                }                                                                                  \
        }

/*
 * Once the batch's anchors are known, in one statement that locks nothing: which verdicts
 * live_audit_logs holds (the first copy of each other event id is new; not asked on the
 * unread way, where every first copy is), and which anchors rows exist.
 */
static enum db_result read_known(struct batch *b, char *errstr, size_t errstr_size)
{
        char tag[2], id[KEYSET_ID_MAX + 1], status[16];
        struct db_col cols[] = TAGGED_COLS(tag, id, status);
        struct keyset *ks = &b->ids;
        enum db_result r = DB_OK;

        db_text_reset(&b->sql);
        if (!b->is_unread) {
                db_text_add(&b->sql, "(SELECT 'k', event_id, NULL, NULL, NULL, NULL FROM "
                                     "live_audit_logs FORCE INDEX (live_audit_logs_once) WHERE "
                                     "event_id IN ");
                keyset_add_list(ks, b->st->db, &b->sql);
                db_text_add(&b->sql, ")");
        }
        if (b->anchor_cnt) {
                db_text_add(&b->sql, b->sql.len ? " UNION ALL " : "");
                db_text_add(&b->sql, "(SELECT 'e', anchor_id, NULL, NULL, NULL, NULL "
                                     "FROM anchors FORCE INDEX (PRIMARY) WHERE anchor_id IN ");
                add_anchor_list(b, false);
                db_text_add(&b->sql, ")");
        }
        if (b->sql.len)
                r = db_text_query(b->st->db, &b->sql, cols, 6, on_tagged_row, b, errstr,
                                  errstr_size);
        if (r != DB_OK)
                return r;
        for (size_t i = 0; i < ks->n; i++)
                b->bv[ks->items[i].index].is_new = keyset_is_first(ks, i) && !ks->items[i].is_known;
        return DB_OK;
}

/*
 * Then in one statement (none when there is nothing to lock): the existing anchors rows
 * locked, and the warnings their windows can hold.
 */
static enum db_result read_locked(struct batch *b, char *errstr, size_t errstr_size)
{
        char tag[2], id[KEYSET_ID_MAX + 1], status[16];
        struct db_col cols[] = TAGGED_COLS(tag, id, status);
        bool any_exists = false;
        enum db_result r;

        for (size_t i = 0; i < b->anchor_cnt; i++)
                any_exists |= b->anchors[i].does_exist;
        db_text_reset(&b->sql);
        if (any_exists)
                add_anchors_read(b);
        add_warnings_read(b, !any_exists);
        if (!b->sql.len)
                return DB_OK;
        r = db_text_query(b->st->db, &b->sql, cols, 6, on_tagged_row, b, errstr, errstr_size);
        for (size_t i = 0; i < b->anchor_cnt; i++)
                if (b->anchors[i].nw > 1)
                        qsort(b->anchors[i].warns, b->anchors[i].nw, sizeof(long long), cmp_ll);
        return r;
}

static char *dup_col(const struct db_col *c, bool *ok)
{
        char *d = c->is_null ? NULL : strdup(c->s);

        *ok &= c->is_null || d;
        return d;
}

static void on_live(const struct db_col *cols, void *arg)
{
        struct batch *b = arg;
        struct live_row *row;
        bool ok = true;

        if (b->live_cnt == b->live_cap) {
                size_t cap = b->live_cap ? b->live_cap * 2 : 16;
                struct live_row *l = realloc(b->live, cap * sizeof(*l));

                if (!l) {
                        b->is_mismatch = true; /* out of memory: the per-record path */
                        return;
                }
                b->live = l;
                b->live_cap = cap;
        }
        row = &b->live[b->live_cnt++];
        row->stream_id = dup_col(&cols[0], &ok);
        row->vendor = dup_col(&cols[1], &ok);
        row->anchor_id = dup_col(&cols[2], &ok);
        row->started_ms = cols[3].is_null ? LLONG_MIN : cols[3].i;
        if (!ok || !row->stream_id || !row->vendor)
                b->is_mismatch = true;
}

/*
 * The live streams the batch's punishments in force can close (their anchors' and their own
 * streams), in one query; none when nothing the batch decided closes a stream.
 */
static enum db_result load_live(struct batch *b, char *errstr, size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1], vendor[64], anchor[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = vendor, .s_size = sizeof(vendor)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_I64}};
        struct keyset *ks = &b->streams, anchors = {0};
        enum db_result r;

        keyset_free(ks);
        if (keyset_init(ks, b->n) == -1 || keyset_init(&anchors, b->n) == -1) {
                keyset_free(&anchors);
                return audit_batch_fall_back("out of memory", errstr, errstr_size);
        }
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];

                if (!bv->is_new || !bv->close_wanted)
                        continue;
                keyset_add(&anchors, bv->anchor, i);
                if (bv->slot->rec->ev.stream_id)
                        keyset_add(ks, bv->slot->rec->ev.stream_id, i);
        }
        if (!anchors.n) {
                keyset_free(&anchors);
                return DB_OK;
        }
        keyset_sort(&anchors);
        keyset_sort(ks);
        db_text_reset(&b->sql);
        db_text_add(&b->sql,
                    "SELECT stream_id, vendor, anchor_id, CAST(UNIX_TIMESTAMP(started_at) "
                    "* 1000 AS SIGNED) FROM live_streams FORCE INDEX (live_streams_anchor, "
                    "live_streams_stream) WHERE status = 'live' AND "
                    "(anchor_id IN ");
        keyset_add_list(&anchors, b->st->db, &b->sql);
        if (ks->n) {
                db_text_add(&b->sql, " OR stream_id IN ");
                keyset_add_list(ks, b->st->db, &b->sql);
        }
        db_text_add(&b->sql, ")");
        r = db_text_query(b->st->db, &b->sql, cols, 4, on_live, b, errstr, errstr_size);
        keyset_free(&anchors);
        return r;
}

/* ------------------------------------------------------------------ the batch */

/* The batch, read and written the way b->is_unread says (see write_batch()). */
static enum db_result apply_batch(struct batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        if (!read_batch(b, b->slots))
                return audit_batch_fall_back("a verdict time MySQL cannot store", errstr,
                                             errstr_size);
        if (!b->ids.n)
                return DB_OK;
        if (keyset_may_collide(&b->ids))
                return audit_batch_fall_back(
                        "event ids that MySQL may match other than byte for byte", errstr,
                        errstr_size);
        audit_steps_mark(&b->steps, "read");
        if ((r = resolve_anchors(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "anchors");
        if (b->is_mismatch || keyset_may_collide(&b->anchor_ids))
                return audit_batch_fall_back("ids that MySQL may match other than byte for byte",
                                             errstr, errstr_size);
        if ((r = read_known(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "known");
        if (b->anchor_cnt && !b->is_mismatch && (r = read_locked(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "lock");
        if (b->is_mismatch)
                return audit_batch_fall_back("ids that MySQL matches other than byte for byte",
                                             errstr, errstr_size);
        if ((r = audit_batch_decide_all(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "decide");
        if ((r = load_live(b, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->is_mismatch)
                return audit_batch_fall_back("out of memory", errstr, errstr_size);
        if ((r = audit_batch_find_closes(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "live");
        if ((r = audit_batch_write(b, errstr, errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < b->n; i++)
                if (b->bv[i].is_valid) /* a replay re-projects and re-sends: both idempotent */
                        b->bv[i].slot->rec->publish = true;
        return DB_OK;
}

/* The batch with live_audit_logs looked up first (the way every batch went before the gate). */
static enum db_result write_read_first(void *arg, char *errstr, size_t errstr_size)
{
        struct batch *b = arg;
        enum db_result r;
        bool is_held = false;

        b->is_unread = false;
        r = apply_batch(b, errstr, errstr_size);
        for (size_t i = 0; i < b->ids.n; i++)
                is_held |= b->ids.items[i].is_known;
        b->st->gate.is_reading_first = is_held;
        return r;
}

/*
 * The batch without the look-up: every first copy is new and decided so; a verdict logged
 * before fails the log rows' INSERT, the batch's first write, and nothing is written.
 */
static enum db_result write_unread(void *arg, char *errstr, size_t errstr_size)
{
        struct batch *b = arg;

        b->is_unread = true;
        return apply_batch(b, errstr, errstr_size);
}

/* What write_unread() read and decided: the batch is read again from its slots. */
static void forget_unread(void *arg)
{
        struct batch *b = arg;

        for (size_t i = 0; i < b->anchor_cnt; i++)
                free(b->anchors[i].warns);
        memset(b->anchors, 0, (b->n ? b->n : 1) * sizeof(*b->anchors));
        b->anchor_cnt = 0;
        for (size_t i = 0; i < b->live_cnt; i++) {
                free(b->live[i].stream_id);
                free(b->live[i].vendor);
                free(b->live[i].anchor_id);
        }
        b->live_cnt = 0;
        memset(b->bv, 0, (b->n ? b->n : 1) * sizeof(*b->bv));
        b->ids.n = b->anchor_ids.n = b->streams.n = 0;
        b->ids.is_mismatch = b->anchor_ids.is_mismatch = b->streams.is_mismatch = false;
        b->is_mismatch = false;
}

/* Unread, or live_audit_logs looked up first (struct role_gate). */
static enum db_result write_batch(struct batch *b, char *errstr, size_t errstr_size)
{
        static const struct role_gate_ways ways = {NULL, write_unread, forget_unread,
                                                   write_read_first};

        return role_gate_write(&b->st->gate, &ways, b->st->db, &b->sql, b, errstr, errstr_size);
}

enum apply_result audit_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                   size_t errstr_size)
{
        struct batch b = {.st = state, .slots = slots, .n = n};
        enum apply_result res = APPLY_RETRY;
        enum db_result r;

        audit_handoff_clear(b.st);
        b.bv = calloc(n ? n : 1, sizeof(*b.bv));
        b.anchors = calloc(n ? n : 1, sizeof(*b.anchors));
        if (b.bv && b.anchors && keyset_init(&b.ids, n) == 0 &&
            keyset_init(&b.anchor_ids, n) == 0 && keyset_init(&b.streams, n) == 0) {
                audit_steps_start(&b.steps);
                r = write_batch(&b, errstr, errstr_size);
                audit_steps_log(&b.steps, "audit apply_many");
                res = r == DB_OK ? APPLY_DONE : r == DB_DUPLICATE ? APPLY_RETRY : apply_from_db(r);
                if (res == APPLY_PERMANENT) /* a statement's error, not one record's */
                        res = APPLY_RETRY;
                if (res != APPLY_DONE)
                        audit_handoff_clear(b.st);
        } else {
                snprintf(errstr, errstr_size, "out of memory");
        }
        for (size_t i = 0; b.anchors && i < b.anchor_cnt; i++)
                free(b.anchors[i].warns);
        for (size_t i = 0; i < b.live_cnt; i++) {
                free(b.live[i].stream_id);
                free(b.live[i].vendor);
                free(b.live[i].anchor_id);
        }
        free(b.live);
        db_text_free(&b.sql);
        keyset_free(&b.ids);
        keyset_free(&b.anchor_ids);
        keyset_free(&b.streams);
        free(b.bv);
        free(b.anchors);
        return res;
}
