/*
 * audit_batch_decide.c: the audit batch decided in memory, verdict by verdict in batch order,
 * exactly as audit_apply() decides each: audit_decide() with the window statement and the
 * live_stream statement of audit.c answered from the rows audit_batch.c read under the
 * anchors' locks, and each anchors row as its verdicts so far leave it.
 */
#include "audit_batch.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyset.h"

/* ------------------------------------------------------------------ warnings in memory */

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
        struct batch_verdict *bv;
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
                int k1 = sql_and(m_stream, sql_eq(r->vendor, v->ev->vendor, &unsure)),
                    k2 = m_stream;

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
                return audit_batch_fall_back("live streams MySQL might order otherwise", errstr,
                                             errstr_size);
        if (!best)
                return DB_OK;
        if (strlen(best->stream_id) >= sizeof(d->close_stream) ||
            strlen(best->vendor) >= sizeof(d->close_vendor))
                return audit_batch_fall_back("a live stream id longer than the log row keeps",
                                             errstr, errstr_size);
        memcpy(d->close_stream, best->stream_id, strlen(best->stream_id) + 1);
        memcpy(d->close_vendor, best->vendor, strlen(best->vendor) + 1);
        return DB_OK;
}

/*
 * The live_stream statement's place in audit_decide(): the stream is looked up once every
 * verdict is decided (which stream a punishment closes changes nothing else the batch
 * decides), so the batch reads the live streams of its punishments in force only.
 */
static enum db_result defer_live_stream(void *ctx, const struct verdict *v, const char *anchor,
                                        struct decision *d, char *errstr, size_t errstr_size)
{
        (void)v;
        (void)anchor;
        (void)errstr;
        (void)errstr_size;
        ((struct decide_ctx *)ctx)->bv->close_wanted = d->close_method;
        d->close_stream[0] = '\0';
        d->close_vendor[0] = '\0';
        return DB_OK;
}

enum db_result audit_batch_find_closes(struct batch *b, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_verdict *bv = &b->bv[i];
                struct decide_ctx ctx = {b, NULL, bv};
                enum db_result r;

                if (!bv->is_new || !bv->close_wanted)
                        continue;
                if ((r = mem_live_stream(&ctx, &bv->v, bv->anchor, &bv->d, errstr, errstr_size)) !=
                    DB_OK)
                        return r;
                if (bv->d.close_stream[0]) /* as audit_decide() leaves a punishment's close */
                        bv->d.close_method = bv->close_wanted;
        }
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
enum db_result audit_batch_decide_all(struct batch *b, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_verdict *bv = &b->bv[i];
                struct anchor_row none = {.status = "active", .until_ms = -1, .admin_at_ms = -1};
                struct batch_anchor *ba =
                        bv->anchor_ix == AUDIT_NO_ANCHOR ? NULL : &b->anchors[bv->anchor_ix];
                enum db_result r;

                if (!bv->is_new)
                        continue;
                /* audit_apply() inserts the log row before it counts the window */
                if (ba && bv->v.severity == AUDIT_WARN &&
                    add_warning(ba, bv->slot->rec->ev.event_time_ms) == -1)
                        return audit_batch_fall_back("out of memory", errstr, errstr_size);
                struct decide_ctx ctx = {b, ba, bv};

                r = audit_decide(b->st, &bv->v, bv->anchor, ba ? &ba->row : &none, mem_window,
                                 defer_live_stream, &ctx, &bv->d, errstr, errstr_size);
                if (r != DB_OK)
                        return r;
                if (bv->d.status && strcmp(bv->d.status, "suspended") == 0 &&
                    !audit_batch_time_storable(bv->d.until_ms))
                        return audit_batch_fall_back("a suspension until a time MySQL cannot store",
                                                     errstr, errstr_size);
                if (ba)
                        apply_to_row(ba, &bv->d);
        }
        return DB_OK;
}
