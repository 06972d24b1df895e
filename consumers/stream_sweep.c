/* stream_sweep.c: the stream role's tick(): the ghost sweep (live streams silent too long are
 * closed, after asking their vendor) and Redis that lost its data (the live streams projected
 * again). */
#include "stream_role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "rebuild.h"
#include "signals.h"
#include "stream_close.h"
#include "vendor_api.h"

/* A live stream the sweep found silent. */
struct ghost {
        char stream_id[256];
        char anchor_id[65];
        char room_id[65];
        char vendor_session[129];
        char vendor[17];
        long long session_id;
        long long silent_s; /* since its last sign of life */
};

/* db_query_each()'s collector for the sweep. */
struct ghost_list {
        struct ghost *items;
        size_t n, cap;
};

/* ------------------------------------------------------------------ ghost sweep */

static void collect_ghost(const struct db_col *cols, void *arg)
{
        struct ghost_list *gl = arg;
        struct ghost *g;

        if (gl->n == gl->cap)
                return; /* sized for the LIMIT: cannot happen */
        g = &gl->items[gl->n++];
        snprintf(g->stream_id, sizeof(g->stream_id), "%s", cols[0].s);
        snprintf(g->anchor_id, sizeof(g->anchor_id), "%s", cols[1].is_null ? "" : cols[1].s);
        snprintf(g->room_id, sizeof(g->room_id), "%s", cols[2].is_null ? "" : cols[2].s);
        snprintf(g->vendor_session, sizeof(g->vendor_session), "%s",
                 cols[3].is_null ? "" : cols[3].s);
        g->session_id = cols[4].is_null ? 0 : cols[4].i;
        g->silent_s = cols[5].is_null ? 0 : cols[5].i;
        snprintf(g->vendor, sizeof(g->vendor), "%s", cols[6].is_null ? "" : cols[6].s);
}

/* Asks the stream role (every instance, this one included) to end one silent stream. */
static int close_ghost(struct stream_state *st, const struct ghost *g, long long now,
                       const char *reason, char *errstr, size_t errstr_size)
{
        char key[320], event_id[65], trace_id[33];
        int n = snprintf(key, sizeof(key), "ghost|%s|%lld", g->stream_id, g->session_id);

        crypto_sha256_hex(key, (size_t)n < sizeof(key) ? (size_t)n : sizeof(key) - 1, event_id);
        snprintf(trace_id, sizeof(trace_id), "%.32s", event_id);
        struct stream_close_msg m = {
                .event_id = event_id,
                .stream_id = g->stream_id,
                .anchor_id = g->anchor_id[0] ? g->anchor_id : NULL,
                .room_id = g->room_id[0] ? g->room_id : NULL,
                .sequence = g->vendor_session[0] ? g->vendor_session : NULL,
                .trace_id = trace_id,
                .event_time_ms = now,
                .close_method = 1,
                .reason = reason,
                .cause = "ghost",
        };

        if (stream_close_send(st->closer, &m, errstr, errstr_size) == -1)
                return -1;
        metric_add(st->ghosts_closed, 1);
        log_warn(trace_id,
                 "ghost stream closed stream=%s session=%lld anchor=%s silent_s=%lld event_id=%s "
                 "reason=\"%s\"",
                 g->stream_id, g->session_id, g->anchor_id[0] ? g->anchor_id : "-", g->silent_s,
                 event_id, reason);
        return 0;
}

/*
 * A silent stream: closed when its vendor says it is not live; left live (its silence starts
 * again) when the vendor says it is; when the vendor cannot be asked, closed only after
 * LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S. @returns 1 closed, 0 left live, -1 failed.
 */
static int judge_ghost(struct stream_state *st, const struct ghost *g, long long now, char *err,
                       size_t err_size)
{
        char reason[600], why[400];
        enum vendor_state vs = vendor_api_stream_state(st->vendor, g->vendor, g->stream_id, NULL,
                                                       why, sizeof(why));

        if (vs == VENDOR_STATE_LIVE) {
                struct db_param p[] = {DB_STR(g->stream_id)};

                metric_add(st->ghosts_alive, 1);
                log_info(NULL, "silent stream %s (%lld s) is live at %s: kept", g->stream_id,
                         g->silent_s, g->vendor);
                return db_exec(st->db, st->touch, p, 1, NULL, NULL, err, err_size) == DB_OK ? 0
                                                                                            : -1;
        }
        if (vs == VENDOR_STATE_NOT_LIVE) {
                snprintf(reason, sizeof(reason),
                         "ghost: %s says not live after %lld s without a sign of life", g->vendor,
                         g->silent_s);
                return close_ghost(st, g, now, reason, err, err_size) == 0 ? 1 : -1;
        }
        if (g->silent_s < st->ghost_unverified_s) {
                metric_add(st->ghosts_deferred, 1);
                log_debug(NULL, "silent stream %s (%lld s) kept: %s", g->stream_id, g->silent_s,
                          why);
                return 0;
        }
        metric_add(st->ghosts_unverified, 1);
        snprintf(reason, sizeof(reason),
                 "ghost: %lld s without a sign of life, vendor not asked (%s)", g->silent_s, why);
        return close_ghost(st, g, now, reason, err, err_size) == 0 ? 1 : -1;
}

/* Redis restarted empty or flushed: every live stream is projected again from live_streams. */
static void check_redis_epoch(struct stream_state *st)
{
        long long projected = 0;
        bool is_lost = false;
        char err[512];

        if (rebuild_epoch_check(st->redis, &st->redis_epoch, &is_lost, err, sizeof(err)) == -1)
                return; /* Redis unreachable: the projections fail and retry meanwhile */
        if (is_lost) {
                st->is_redis_lost = true;
                metric_add(st->redis_lost, 1);
        }
        if (!st->is_redis_lost)
                return;
        if (rebuild_streams(st->rebuild, &projected, err, sizeof(err)) == -1) {
                log_warn(NULL,
                         "redis lost its data, projecting the live streams failed: %s "
                         "(tried again)",
                         err);
                return;
        }
        st->is_redis_lost = false;
        log_warn(
                NULL,
                "redis held none of liveflow's data, or an older copy (new, restarted or flushed; epoch now "
                "%s): %lld stream(s) projected again from live_streams",
                st->redis_epoch.token, projected);
}

/*
 * At most every sweep interval: a stream.close for each live stream silent longer than the
 * ghost silence. Several instances may sweep at once: their closes share an event id per
 * session, and the stream role records an event id once.
 */
void stream_tick(void *state, long long now_ms)
{
        struct stream_state *st = state;
        struct ghost_list gl = {0};
        struct db_param p[2];
        struct db_col cols[] = {
                {.type = DB_PARAM_STR}, {.type = DB_PARAM_STR}, {.type = DB_PARAM_STR},
                {.type = DB_PARAM_STR}, {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR},
        };
        char s_stream[256], s_anchor[65], s_room[65], s_session[129], s_vendor[17], err[512];
        size_t closed = 0;

        check_redis_epoch(st);
        if (notify_flush(st->notify, false, err, sizeof(err)) == -1)
                log_warn(NULL, "live.notify: %s (tried again)", err);
        if (st->ghost_silence_s <= 0 ||
            (st->last_sweep_ms && now_ms - st->last_sweep_ms < st->sweep_interval_ms))
                return;
        st->last_sweep_ms = now_ms;
        cols[0].s = s_stream, cols[0].s_size = sizeof(s_stream);
        cols[1].s = s_anchor, cols[1].s_size = sizeof(s_anchor);
        cols[2].s = s_room, cols[2].s_size = sizeof(s_room);
        cols[3].s = s_session, cols[3].s_size = sizeof(s_session);
        cols[6].s = s_vendor, cols[6].s_size = sizeof(s_vendor);
        p[0] = DB_I64(st->ghost_silence_s);
        p[1] = DB_I64(st->ghost_silence_s);
        if (!(gl.items = calloc(GHOST_SWEEP_LIMIT, sizeof(*gl.items)))) {
                log_error(NULL, "ghost sweep: out of memory");
                return;
        }
        gl.cap = GHOST_SWEEP_LIMIT;
        if (db_query_each(st->db, st->ghosts, p, 2, cols, 7, collect_ghost, &gl, err,
                          sizeof(err)) != DB_OK) {
                log_warn(NULL, "ghost sweep: %s", err);
                free(gl.items);
                return;
        }
        /* A failure leaves the stream live: the next sweep tries it again. */
        for (size_t i = 0; i < gl.n && !signals_stop_requested(); i++) {
                int rc = judge_ghost(st, &gl.items[i], now_ms, err, sizeof(err));

                if (rc == -1)
                        log_warn(NULL, "ghost sweep: stream %s: %s", gl.items[i].stream_id, err);
                else
                        closed += (size_t)rc;
        }
        if (gl.n)
                log_info(NULL, "ghost sweep: %zu of %zu silent streams closed (silence %lld s)",
                         closed, gl.n, st->ghost_silence_s);
        free(gl.items);
}
