/*
 * audit_batch.c: the audit role a batch at once (audit_apply() per verdict in audit.c stays
 * the fallback and the oracle, tests/consumers/test_batch_oracle.c).
 *
 * apply_many(): which verdicts live_audit_logs holds already (one query), the anchors of the
 * batch created and locked in key order (one multi-row upsert, one SELECT ... FOR UPDATE),
 * the warnings that can fall into a window of the batch's warnings (one locking read), then
 * every new verdict decided in memory in batch order exactly as audit_apply() decides it
 * (audit_decide() with the window counted in memory; the anchors row as each verdict leaves
 * it), and written with one multi-row insert of the log rows, one multi-row upsert of the
 * anchors rows it changed and one of the notifications. The anchors of verdicts without one
 * in their envelope, and the live streams a punishment can close, come from live_streams in
 * one query each (the batch does not write live_streams). Ids MySQL's collation may match other
 * than byte for byte, an id MySQL returns in another spelling, a time FROM_UNIXTIME cannot
 * take, a verdict recorded meanwhile, or any statement error roll the batch back to
 * audit_apply() per verdict.
 *
 * publish_many(): the outbox flushed once, the projections of the batch read in one query,
 * the anchors' Redis hashes written in one pipeline, then the stream.close of each verdict
 * that closes one (acknowledged, as publish() does).
 */
#include "audit_role.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "keyset.h"
#include "log.h"
#include "notify.h"
#include "redis_conn.h"
#include "role_kit.h"

#define NO_ANCHOR SIZE_MAX

struct batch_verdict {
        struct apply_slot *slot;
        struct verdict v;
        char anchor[65];
        bool is_valid, is_new;
        size_t anchor_ix; /* into batch.anchors, NO_ANCHOR without one */
        struct decision d;
};

/* A distinct anchor of the batch: its row as the verdicts so far leave it. */
struct batch_anchor {
        const char *id; /* a batch_verdict's anchor */
        struct anchor_row row;
        bool is_locked, is_changed;
        long long warnings;   /* added to warning_count */
        long long *warns;     /* event times of its warnings (severity warn), sorted */
        size_t nw, cap;
        long long window_ms;
};

/* A live stream of the batch's streams or anchors (live_streams, status live). */
struct live_row {
        char *stream_id, *vendor, *anchor_id; /* anchor_id may be NULL */
        long long started_ms;                 /* LLONG_MIN when NULL: last in DESC order */
};

struct batch {
        struct audit_state *st;
        struct live_row *live;
        size_t live_cnt, live_cap;
        struct batch_verdict *bv;
        struct batch_anchor *anchors;
        size_t n, anchor_cnt;
        struct keyset ids, anchor_ids;
        struct keyset streams; /* stream ids of the verdicts without an anchor in the envelope */
        bool is_mismatch;
        struct db_text sql;
};

static enum db_result fall_back(const char *why, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s", why);
        return DB_RETRY;
}

static bool time_storable(long long ms)
{
        return ms >= 0 && ms <= AUDIT_TIME_MAX_MS;
}

static int cmp_anchor_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct batch_anchor *)elem)->id);
}

static struct batch_anchor *find_anchor(const struct batch *b, const char *id)
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
                bv->anchor_ix = NO_ANCHOR;
                if (audit_read_verdict(&slots[i].rec->ev, &b->st->policy, &bv->v, slots[i].error,
                                       slots[i].error_size) == -1) {
                        slots[i].result = APPLY_PERMANENT;
                        continue;
                }
                slots[i].result = APPLY_DONE;
                bv->is_valid = true;
                is_storable &= time_storable(slots[i].rec->ev.event_time_ms);
                keyset_add(&b->ids, slots[i].rec->ev.event_id, i);
        }
        keyset_sort(&b->ids);
        return is_storable;
}

/* Which verdicts live_audit_logs holds; the first copy of each other event id is new. */
static enum db_result find_new_verdicts(struct batch *b, char *errstr, size_t errstr_size)
{
        struct keyset *ks = &b->ids;
        enum db_result r = keyset_find_known(
                ks, b->st->db, &b->sql, "SELECT event_id FROM live_audit_logs WHERE event_id IN ",
                errstr, errstr_size);

        if (r != DB_OK)
                return r;
        b->is_mismatch |= ks->is_mismatch;
        for (size_t i = 0; i < ks->n; i++)
                b->bv[ks->items[i].index].is_new =
                        keyset_is_first(ks, i) && !ks->items[i].is_known;
        return DB_OK;
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
                        return fall_back("stream ids that MySQL may match other than byte for byte",
                                         errstr, errstr_size);
                db_text_reset(&b->sql);
                db_text_add(&b->sql,
                            "SELECT stream_id, vendor, anchor_id FROM live_streams WHERE stream_id IN ");
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
                                (size_t)(find_anchor(b, b->bv[i].anchor) - b->anchors);
        return DB_OK;
}

static void add_anchor_list(struct batch *b)
{
        db_text_add(&b->sql, "(");
        for (size_t i = 0; i < b->anchor_cnt; i++) {
                if (i)
                        db_text_add(&b->sql, ", ");
                db_text_str(b->st->db, &b->sql, b->anchors[i].id);
        }
        db_text_add(&b->sql, ")");
}

static void on_anchor(const struct db_col *cols, void *arg)
{
        struct batch *b = arg;
        struct batch_anchor *ba = find_anchor(b, cols[0].s);

        if (!ba) {
                b->is_mismatch = true;
                return;
        }
        ba->is_locked = true;
        snprintf(ba->row.status, sizeof(ba->row.status), "%s", cols[1].is_null ? "" : cols[1].s);
        ba->row.until_ms = cols[2].is_null ? -1 : cols[2].i;
        ba->row.admin_at_ms = cols[3].is_null ? -1 : cols[3].i;
}

/* Creates the anchors rows that are missing and locks them all, in key order. */
static enum db_result lock_anchors(struct batch *b, char *errstr, size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1], status[16];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = status, .s_size = sizeof(status)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64}};
        enum db_result r;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT INTO anchors (anchor_id) VALUES ");
        for (size_t i = 0; i < b->anchor_cnt; i++) {
                db_text_add(&b->sql, i ? ", (" : "(");
                db_text_str(b->st->db, &b->sql, b->anchors[i].id);
                db_text_add(&b->sql, ")");
        }
        db_text_add(&b->sql, " ON DUPLICATE KEY UPDATE anchor_id = anchor_id");
        if ((r = db_text_exec(b->st->db, &b->sql, NULL, errstr, errstr_size)) != DB_OK)
                return r;
        db_text_reset(&b->sql);
        db_text_add(&b->sql,
                    "SELECT anchor_id, status, CAST(UNIX_TIMESTAMP(suspended_until) * 1000 AS "
                    "SIGNED), CAST(UNIX_TIMESTAMP(admin_at) * 1000 AS SIGNED) FROM anchors "
                    "WHERE anchor_id IN ");
        add_anchor_list(b);
        db_text_add(&b->sql, " ORDER BY anchor_id FOR UPDATE");
        if ((r = db_text_query(b->st->db, &b->sql, cols, 4, on_anchor, b, errstr, errstr_size)) !=
            DB_OK)
                return r;
        for (size_t i = 0; i < b->anchor_cnt; i++) {
                if (!b->is_mismatch && !b->anchors[i].is_locked) {
                        snprintf(errstr, errstr_size, "anchors row %s vanished under its lock",
                                 b->anchors[i].id);
                        return DB_RETRY;
                }
        }
        return DB_OK;
}

/* ------------------------------------------------------------------ warnings in memory */

static int cmp_ll(const void *a, const void *b)
{
        long long x = *(const long long *)a, y = *(const long long *)b;

        return (x > y) - (x < y);
}

/* The first position whose time is >= t (lower) or > t (upper). */
static size_t bound(const struct batch_anchor *ba, long long t, bool upper)
{
        size_t lo = 0, hi = ba->nw;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (ba->warns[mid] < t || (upper && ba->warns[mid] == t))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int add_warning(struct batch_anchor *ba, long long t)
{
        size_t at;

        if (ba->nw == ba->cap) {
                size_t cap = ba->cap ? ba->cap * 2 : 16;
                long long *w = realloc(ba->warns, cap * sizeof(*w));

                if (!w)
                        return -1;
                ba->warns = w;
                ba->cap = cap;
        }
        at = bound(ba, t, true);
        memmove(ba->warns + at + 1, ba->warns + at, (ba->nw - at) * sizeof(*ba->warns));
        ba->warns[at] = t;
        ba->nw++;
        return 0;
}

/* What audit_decide() hands the in-memory look-ups. */
struct decide_ctx {
        struct batch *b;
        const struct batch_anchor *ba;
};

/*
 * audit.c's window statement over the anchor's warnings in memory: every window of length W
 * holding t starts at a warning a with t - W < a <= t (and a after admin_at); it holds the
 * warnings b with a <= b < a + W. The fullest such window, the later on a tie.
 */
static enum db_result mem_window(void *ctx, const struct verdict *v, const char *anchor,
                                 const struct anchor_row *a, bool *found, long long *count,
                                 long long *latest_ms, char *errstr, size_t errstr_size)
{
        const struct batch_anchor *ba = ((const struct decide_ctx *)ctx)->ba;
        long long t = v->ev->event_time_ms, w = ba->window_ms;

        (void)anchor;
        (void)errstr;
        (void)errstr_size;
        *found = false;
        *count = 0;
        *latest_ms = -1;
        for (size_t i = bound(ba, t - w, true); i < ba->nw && ba->warns[i] <= t; i++) {
                long long start = ba->warns[i], cnt, last;
                size_t end;

                if (a->admin_at_ms >= 0 && start <= a->admin_at_ms)
                        continue;
                end = bound(ba, start + w, false);
                cnt = (long long)(end - bound(ba, start, false));
                last = ba->warns[end - 1];
                if (!*found || cnt > *count || (cnt == *count && last > *latest_ms)) {
                        *count = cnt;
                        *latest_ms = last;
                }
                *found = true;
        }
        return DB_OK;
}

static void on_warning(const struct db_col *cols, void *arg)
{
        struct batch *b = arg;
        struct batch_anchor *ba = find_anchor(b, cols[0].s);

        if (!ba) {
                b->is_mismatch = true;
                return;
        }
        if (cols[1].is_null)
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
        ba->warns[ba->nw++] = cols[1].i;
}

/* The warnings MySQL holds that a window of one of the batch's warnings can hold. */
static enum db_result load_warnings(struct batch *b, char *errstr, size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_I64}};
        long long lo = 0, hi = 0;
        bool any = false;
        enum db_result r;

        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                long long t = bv->slot->rec->ev.event_time_ms;

                if (!bv->is_new || bv->anchor_ix == NO_ANCHOR || bv->v.severity != AUDIT_WARN)
                        continue;
                lo = any && lo < t ? lo : t;
                hi = any && hi > t ? hi : t;
                any = true;
        }
        if (!any)
                return DB_OK;
        db_text_reset(&b->sql);
        db_text_add(&b->sql,
                    "SELECT anchor_id, CAST(UNIX_TIMESTAMP(event_time) * 1000 AS SIGNED) FROM "
                    "live_audit_logs WHERE severity = 'warn' AND event_time > FROM_UNIXTIME(%lld "
                    "/ 1000) - INTERVAL %lld SECOND AND event_time < FROM_UNIXTIME(%lld / 1000) + "
                    "INTERVAL %lld SECOND AND anchor_id IN ",
                    lo, b->st->warn_window_s, hi, b->st->warn_window_s);
        add_anchor_list(b);
        db_text_add(&b->sql, " LOCK IN SHARE MODE");
        r = db_text_query(b->st->db, &b->sql, cols, 2, on_warning, b, errstr, errstr_size);
        for (size_t i = 0; i < b->anchor_cnt; i++)
                if (b->anchors[i].nw > 1)
                        qsort(b->anchors[i].warns, b->anchors[i].nw, sizeof(long long), cmp_ll);
        return r;
}

/* ------------------------------------------------------------------ live streams in memory */

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

/* The live streams that a punishment of the batch can close, in one query. */
static enum db_result load_live(struct batch *b, char *errstr, size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1], vendor[64], anchor[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = vendor, .s_size = sizeof(vendor)},
                                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                                {.type = DB_PARAM_I64}};
        struct keyset *ks = &b->streams;
        bool any = false;

        /* every stream of the batch's verdicts now, not only those without an anchor */
        keyset_free(ks);
        if (keyset_init(ks, b->n) == -1)
                return fall_back("out of memory", errstr, errstr_size);
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];

                if (!bv->is_new || bv->anchor_ix == NO_ANCHOR)
                        continue;
                any |= bv->v.severity != AUDIT_NONE;
                if (bv->slot->rec->ev.stream_id)
                        keyset_add(ks, bv->slot->rec->ev.stream_id, i);
        }
        if (!any)
                return DB_OK;
        keyset_sort(ks);
        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT stream_id, vendor, anchor_id, CAST(UNIX_TIMESTAMP(started_at) "
                             "* 1000 AS SIGNED) FROM live_streams WHERE status = 'live' AND "
                             "(anchor_id IN ");
        add_anchor_list(b);
        if (ks->n) {
                db_text_add(&b->sql, " OR stream_id IN ");
                keyset_add_list(ks, b->st->db, &b->sql);
        }
        db_text_add(&b->sql, ")");
        return db_text_query(b->st->db, &b->sql, cols, 4, on_live, b, errstr, errstr_size);
}

/* SQL's a = b: 1, 0, or -1 for NULL; *unsure when MySQL's collation might say otherwise. */
static int sql_eq(const char *x, const char *y, bool *unsure)
{
        if (!x || !y)
                return -1;
        if (strcmp(x, y) == 0)
                return 1;
        if (keys_may_collide((const char *[]){x, y}, 2))
                *unsure = true;
        return 0;
}

static int sql_and(int x, int y)
{
        return x == 0 || y == 0 ? 0 : x < 0 || y < 0 ? -1 : 1;
}

/*
 * audit.c's live_stream statement over the rows in memory: live rows of the verdict's stream
 * or its anchor, ordered by (its stream of its vendor) DESC, (its stream) DESC, started_at
 * DESC (NULLs last). A tie, or an id MySQL might compare otherwise, falls back.
 */
static enum db_result mem_live_stream(void *ctx, const struct verdict *v, const char *anchor,
                                      struct decision *d, char *errstr, size_t errstr_size)
{
        struct batch *b = ((struct decide_ctx *)ctx)->b;
        const struct live_row *best = NULL;
        int best_k1 = 0, best_k2 = 0;
        bool unsure = false, tie = false;

        d->close_stream[0] = '\0';
        d->close_vendor[0] = '\0';
        for (size_t i = 0; i < b->live_cnt; i++) {
                const struct live_row *r = &b->live[i];
                int m_stream = sql_eq(r->stream_id, v->ev->stream_id, &unsure);
                int m_anchor = sql_eq(r->anchor_id, anchor, &unsure);
                int k1 = sql_and(m_stream, sql_eq(r->vendor, v->ev->vendor, &unsure)), k2 = m_stream;

                if (m_stream != 1 && m_anchor != 1)
                        continue;
                if (best && k1 == best_k1 && k2 == best_k2 && r->started_ms == best->started_ms) {
                        tie = true;
                        continue;
                }
                if (!best || k1 > best_k1 || (k1 == best_k1 && k2 > best_k2) ||
                    (k1 == best_k1 && k2 == best_k2 && r->started_ms > best->started_ms)) {
                        best = r;
                        best_k1 = k1;
                        best_k2 = k2;
                        tie = false;
                }
        }
        if (unsure || tie)
                return fall_back("live streams MySQL might order otherwise", errstr, errstr_size);
        if (!best)
                return DB_OK;
        if (strlen(best->stream_id) >= sizeof(d->close_stream) ||
            strlen(best->vendor) >= sizeof(d->close_vendor))
                return fall_back("a live stream id longer than the log row keeps", errstr,
                                 errstr_size);
        memcpy(d->close_stream, best->stream_id, strlen(best->stream_id) + 1);
        memcpy(d->close_vendor, best->vendor, strlen(best->vendor) + 1);
        return DB_OK;
}

/* ------------------------------------------------------------------ deciding */

/* The anchors row as audit.c's set_anchor statement leaves it. */
static void apply_to_row(struct batch_anchor *ba, const struct decision *d)
{
        if (!d->status && !d->warnings && d->admin_at_ms < 0)
                return;
        ba->is_changed = true;
        if (d->status) {
                snprintf(ba->row.status, sizeof(ba->row.status), "%s", d->status);
                ba->row.until_ms = d->until_ms;
        }
        if (d->admin_at_ms >= 0)
                ba->row.admin_at_ms = d->admin_at_ms;
        ba->warnings += d->warnings;
}

/* Every new verdict in batch order; a suspension MySQL cannot store falls back. */
static enum db_result decide_all(struct batch *b, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_verdict *bv = &b->bv[i];
                struct anchor_row none = {.status = "active", .until_ms = -1, .admin_at_ms = -1};
                struct batch_anchor *ba =
                        bv->anchor_ix == NO_ANCHOR ? NULL : &b->anchors[bv->anchor_ix];
                enum db_result r;

                if (!bv->is_new)
                        continue;
                /* audit_apply() inserts the log row before it counts the window */
                if (ba && bv->v.severity == AUDIT_WARN &&
                    add_warning(ba, bv->slot->rec->ev.event_time_ms) == -1)
                        return fall_back("out of memory", errstr, errstr_size);
                struct decide_ctx ctx = {b, ba};

                r = audit_decide(b->st, &bv->v, bv->anchor, ba ? &ba->row : &none, mem_window,
                                 mem_live_stream, &ctx, &bv->d, errstr, errstr_size);
                if (r != DB_OK)
                        return r;
                if (bv->d.status && strcmp(bv->d.status, "suspended") == 0 &&
                    !time_storable(bv->d.until_ms))
                        return fall_back("a suspension until a time MySQL cannot store", errstr,
                                         errstr_size);
                if (ba)
                        apply_to_row(ba, &bv->d);
        }
        return DB_OK;
}

/* ------------------------------------------------------------------ writing */

static void add_ms(struct db_text *t, long long ms)
{
        if (ms < 0)
                db_text_add(t, "NULL");
        else
                db_text_add(t, "FROM_UNIXTIME(%lld / 1000)", ms);
}

/* The new verdicts' log rows, as insert_log() and set_log leave them, in batch order. */
static enum db_result write_logs(struct batch *b, char *errstr, size_t errstr_size)
{
        struct db *db = b->st->db;
        struct db_text *t = &b->sql;
        size_t rows = 0;
        unsigned long long affected = 0;
        enum db_result r;

        db_text_reset(t);
        db_text_add(t, "INSERT INTO live_audit_logs (event_id, event_type, event_time, trace_id, "
                       "stream_id, anchor_id, source, suggestion, label, score, reason, punishment, "
                       "severity, outcome, suspended_until, close_stream_id, close_vendor, "
                       "close_method) VALUES ");
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                const struct consumer_record *rec = bv->slot->rec;
                const struct decision *d = &bv->d;
                bool has_close = d->close_stream[0] != '\0';

                if (!bv->is_new)
                        continue;
                db_text_add(t, rows++ ? ", (" : "(");
                db_text_str(db, t, rec->ev.event_id);
                db_text_add(t, ", ");
                db_text_str(db, t, rec->ev.event_type);
                db_text_add(t, ", ");
                add_ms(t, rec->ev.event_time_ms);
                db_text_add(t, ", ");
                db_text_str(db, t, rec->trace_id);
                db_text_add(t, ", ");
                db_text_str(db, t, rec->ev.stream_id);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->anchor[0] ? bv->anchor : NULL);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.source);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.suggestion);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.label);
                db_text_add(t, ", ");
                if (bv->v.score >= 0)
                        db_text_i64(t, bv->v.score);
                else
                        db_text_add(t, "NULL");
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.reason);
                db_text_add(t, ", ");
                db_text_str(db, t, audit_grade_name(d->punishment));
                db_text_add(t, ", ");
                db_text_str(db, t, audit_grade_name(bv->v.severity));
                db_text_add(t, ", ");
                db_text_str(db, t, d->outcome);
                db_text_add(t, ", ");
                add_ms(t, d->status && strcmp(d->status, "suspended") == 0 ? d->until_ms : -1);
                db_text_add(t, ", ");
                db_text_str(db, t, has_close ? d->close_stream : NULL);
                db_text_add(t, ", ");
                db_text_str(db, t, has_close && d->close_vendor[0] ? d->close_vendor : NULL);
                db_text_add(t, ", ");
                if (d->close_method)
                        db_text_i64(t, d->close_method);
                else
                        db_text_add(t, "NULL");
                db_text_add(t, ")");
        }
        if (!rows)
                return DB_OK;
        r = db_text_exec(db, t, &affected, errstr, errstr_size);
        if (r == DB_OK && affected != rows) {
                snprintf(errstr, errstr_size, "live_audit_logs took %llu of %zu verdicts",
                         affected, rows);
                return DB_DUPLICATE;
        }
        return r;
}

/* The anchors rows the batch changed, as the last of their verdicts leaves them. */
static enum db_result write_anchors(struct batch *b, char *errstr, size_t errstr_size)
{
        struct db_text *t = &b->sql;
        size_t rows = 0;

        db_text_reset(t);
        db_text_add(t, "INSERT INTO anchors (anchor_id, status, suspended_until, admin_at, "
                       "warning_count) VALUES ");
        for (size_t i = 0; i < b->anchor_cnt; i++) {
                const struct batch_anchor *ba = &b->anchors[i];

                if (!ba->is_changed)
                        continue;
                db_text_add(t, rows++ ? ", (" : "(");
                db_text_str(b->st->db, t, ba->id);
                db_text_add(t, ", ");
                db_text_str(b->st->db, t, ba->row.status);
                db_text_add(t, ", ");
                add_ms(t, ba->row.until_ms);
                db_text_add(t, ", ");
                add_ms(t, ba->row.admin_at_ms);
                db_text_add(t, ", ");
                db_text_i64(t, ba->warnings);
                db_text_add(t, ")");
        }
        if (!rows)
                return DB_OK;
        db_text_add(t, " ON DUPLICATE KEY UPDATE status = VALUES(status), suspended_until = "
                       "VALUES(suspended_until), admin_at = VALUES(admin_at), warning_count = "
                       "warning_count + VALUES(warning_count)");
        return db_text_exec(b->st->db, t, NULL, errstr, errstr_size);
}

/* live.notify: a warning, suspension or ban of each new verdict, in one statement. */
static enum db_result write_notifications(struct batch *b, char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        notify_text_begin(&b->sql);
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                struct notify_msg m;

                if (bv->is_new && audit_notify_msg(bv->slot->rec, bv->anchor, &bv->d, &m))
                        notify_text_row(b->st->notify, &b->sql, &m, rows++ == 0);
        }
        return notify_text_exec(b->st->notify, &b->sql, rows, errstr, errstr_size);
}

static void log_batch(const struct batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                const struct consumer_record *rec = bv->slot->rec;

                if (!bv->is_valid)
                        continue;
                if (bv->is_new)
                        audit_log_decision(rec, &bv->v, bv->anchor, &bv->d);
                else
                        log_debug(rec->trace_id, "duplicate verdict %s stream=%s",
                                  rec->ev.event_id, rec->ev.stream_id ? rec->ev.stream_id : "-");
        }
}

static enum db_result apply_batch(struct batch *b, struct apply_slot *slots, char *errstr,
                                  size_t errstr_size)
{
        enum db_result r;

        if (!read_batch(b, slots))
                return fall_back("a verdict time MySQL cannot store", errstr, errstr_size);
        if (!b->ids.n)
                return DB_OK;
        if (keyset_may_collide(&b->ids))
                return fall_back("event ids that MySQL may match other than byte for byte",
                                 errstr, errstr_size);
        if ((r = find_new_verdicts(b, errstr, errstr_size)) != DB_OK ||
            (r = resolve_anchors(b, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->is_mismatch || keyset_may_collide(&b->anchor_ids))
                return fall_back("ids that MySQL may match other than byte for byte", errstr,
                                 errstr_size);
        if (b->anchor_cnt && ((r = lock_anchors(b, errstr, errstr_size)) != DB_OK ||
                              (r = load_warnings(b, errstr, errstr_size)) != DB_OK ||
                              (r = load_live(b, errstr, errstr_size)) != DB_OK))
                return r;
        if (b->is_mismatch)
                return fall_back("anchor ids that MySQL matches other than byte for byte", errstr,
                                 errstr_size);
        if ((r = decide_all(b, errstr, errstr_size)) != DB_OK ||
            (r = write_logs(b, errstr, errstr_size)) != DB_OK ||
            (r = write_anchors(b, errstr, errstr_size)) != DB_OK ||
            (r = write_notifications(b, errstr, errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < b->n; i++)
                if (b->bv[i].is_valid) /* a replay re-projects and re-sends: both idempotent */
                        b->bv[i].slot->rec->publish = true;
        log_batch(b);
        return DB_OK;
}

enum apply_result audit_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                   size_t errstr_size)
{
        struct batch b = {.st = state, .n = n};
        enum apply_result res = APPLY_RETRY;
        enum db_result r;

        b.bv = calloc(n ? n : 1, sizeof(*b.bv));
        b.anchors = calloc(n ? n : 1, sizeof(*b.anchors));
        if (b.bv && b.anchors && keyset_init(&b.ids, n) == 0 &&
            keyset_init(&b.anchor_ids, n) == 0 && keyset_init(&b.streams, n) == 0) {
                r = apply_batch(&b, slots, errstr, errstr_size);
                res = r == DB_OK ? APPLY_DONE : r == DB_DUPLICATE ? APPLY_RETRY : apply_from_db(r);
                if (res == APPLY_PERMANENT) /* a statement's error, not one record's */
                        res = APPLY_RETRY;
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

/* ------------------------------------------------------------------ after the commit */

struct publish_batch {
        struct keyset ids;
        struct projection *pj; /* by position in ids */
        bool *found;
        bool is_mismatch;
};

static void on_projection(const struct db_col *cols, void *arg)
{
        struct publish_batch *pb = arg;
        size_t at = keyset_find(&pb->ids, cols[0].s);

        if (at == pb->ids.n) {
                pb->is_mismatch = true;
                return;
        }
        pb->found[at] = true;
        pb->pj[at] = pb->pj[pb->ids.n]; /* the row's columns were read into the spare one */
        audit_projection_read(&pb->pj[at], cols + 1);
}

static int project_all(struct audit_state *st, struct publish_batch *pb,
                       struct consumer_record *const *recs, char *errstr, size_t errstr_size)
{
        size_t cnt = 0;
        int *argcs = calloc(pb->ids.n + 1, sizeof(*argcs));
        const char **argv = calloc((pb->ids.n + 1) * 7, sizeof(*argv));
        const char ***cmds = calloc(pb->ids.n + 1, sizeof(*cmds));
        char(*bufs)[3][96] = calloc(pb->ids.n + 1, sizeof(*bufs));
        int rc = -1;

        (void)recs;
        if (!argcs || !argv || !cmds || !bufs) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < pb->ids.n; i++) {
                const struct projection *pj = &pb->pj[i];
                const char **a = argv + cnt * 7;

                if (!keyset_is_first(&pb->ids, i) || !pb->found[i] || !pj->has_anchor_row)
                        continue;
                snprintf(bufs[cnt][0], sizeof(bufs[cnt][0]), LF_KEY_ANCHOR_STATUS "%s",
                         pj->anchor);
                snprintf(bufs[cnt][1], sizeof(bufs[cnt][1]), "%lld", pj->until_ms);
                snprintf(bufs[cnt][2], sizeof(bufs[cnt][2]), "%lld", pj->version_ms);
                a[0] = "EVAL";
                a[1] = audit_project_script;
                a[2] = "1";
                a[3] = bufs[cnt][0];
                a[4] = pj->status;
                a[5] = bufs[cnt][1];
                a[6] = bufs[cnt][2];
                argcs[cnt] = 7;
                cmds[cnt] = a;
                cnt++;
        }
        rc = cnt ? redis_conn_pipeline(st->redis, cnt, argcs, cmds, errstr, errstr_size) : 0;
out:
        free(argcs);
        free(argv);
        free(cmds);
        free(bufs);
        return rc;
}

static int publish_batch(struct audit_state *st, struct publish_batch *pb,
                         struct consumer_record *const *recs, size_t n, char *errstr,
                         size_t errstr_size)
{
        char id[65];
        struct db_col cols[1 + AUDIT_PROJECTION_COLS] = {
                {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)}};
        struct db_text sql = {0};
        enum db_result r;

        for (size_t i = 0; i < n; i++)
                keyset_add(&pb->ids, recs[i]->ev.event_id, i);
        keyset_sort(&pb->ids);
        if (notify_flush(st->notify, false, errstr, errstr_size) == -1)
                return -1;
        if (!pb->ids.n)
                return 0;
        audit_projection_cols(&pb->pj[pb->ids.n], cols + 1);
        db_text_add(&sql, "%sWHERE l.event_id IN ", audit_projection_select);
        keyset_add_list(&pb->ids, st->db, &sql);
        r = db_text_query(st->db, &sql, cols, 1 + AUDIT_PROJECTION_COLS, on_projection, pb, errstr,
                          errstr_size);
        db_text_free(&sql);
        if (r != DB_OK)
                return -1;
        if (pb->is_mismatch) {
                snprintf(errstr, errstr_size, "an event id that MySQL matches other than byte "
                                              "for byte");
                return -1;
        }
        if (project_all(st, pb, recs, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < n; i++) { /* in batch order, as publish() one at a time */
                size_t at = keyset_find(&pb->ids, recs[i]->ev.event_id);

                if (at < pb->ids.n && pb->ids.items[at].index == i && pb->found[at] &&
                    pb->pj[at].close_method &&
                    audit_produce_close(st, recs[i], &pb->pj[at], errstr, errstr_size) == -1)
                        return -1;
        }
        return 0;
}

int audit_publish_many(void *state, struct consumer_record *const *recs, size_t n, char *errstr,
                       size_t errstr_size)
{
        struct publish_batch pb = {0};
        int rc = -1;

        pb.pj = calloc(n + 1, sizeof(*pb.pj));
        pb.found = calloc(n + 1, sizeof(*pb.found));
        if (pb.pj && pb.found && keyset_init(&pb.ids, n) == 0)
                rc = publish_batch(state, &pb, recs, n, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        keyset_free(&pb.ids);
        free(pb.pj);
        free(pb.found);
        return rc;
}
