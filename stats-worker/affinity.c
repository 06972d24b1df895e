/* affinity.c: the periodic tag_affinity run (see affinity.h). */
#include "affinity.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"
#include "settings.h"
#include "trace.h"

#define RETRY_MS 30000 /* a failed run is tried again this much later, or a period later */

static const char release_script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
        "return 0\n";

/*
 * The stage is a temporary table of the run's own connection: runs of different periods (each
 * under its own period's Redis lock) may overlap, and none sees, empties or swaps in another's
 * stage. A reconnect between stage and swap loses it, and the swap fails (the previous table
 * stays) rather than swapping in something else.
 */
#define STAGE_TABLE "affinity_run_stage"

/* Serialises the swaps of every run on the database (a MySQL named lock, server-wide: named
 * after the database, held for the swap's transaction). */
#define SWAP_LOCK        "CONCAT('liveflow:affinity_swap:', MD5(DATABASE()))"
#define SWAP_LOCK_WAIT_S 60

/*
 * Tips and watch time per (anchor, audience) in the window, then per (anchor tag, audience
 * tag) beside the audience tag's totals; the parameters are the window's start twice for
 * the pairs, twice for the totals, then the two weights three times.
 */
static const char stage_sql[] =
        "INSERT INTO " STAGE_TABLE " (anchor_tag, audience_tag, tip_amount, watch_s, score, "
        "rank_no, computed_at) "
        "SELECT ax.name, ay.name, sc.tip_amount, sc.watch_s, sc.score, "
        "ROW_NUMBER() OVER (ORDER BY sc.score DESC, sc.tip_amount DESC, sc.watch_s DESC, "
        "ax.name, ay.name), NOW(3) FROM ("
        " SELECT p.x, p.y, p.tip_amount, p.watch_s, "
        "  (? * IF(t.tip > 0, p.tip_amount * 1e0 / t.tip, 0) + "
        "   ? * IF(t.watch > 0, p.watch_s * 1e0 / t.watch, 0)) / (? + ?) AS score "
        " FROM ("
        "  SELECT x, y, CAST(SUM(amount) AS SIGNED) AS tip_amount, CAST(SUM(secs) AS SIGNED) AS watch_s FROM ("
        "   SELECT xt.tag_id AS x, yt.tag_id AS y, pr.amount, 0 AS secs FROM ("
        "    SELECT anchor_id, audience_id, SUM(amount) AS amount FROM stats_tip "
        "    WHERE tipped_at >= FROM_UNIXTIME(?) GROUP BY anchor_id, audience_id) pr "
        "   JOIN anchor_tags xt ON xt.anchor_id = pr.anchor_id "
        "   JOIN audience_tags yt ON yt.audience_id = pr.audience_id "
        "   UNION ALL "
        "   SELECT xt.tag_id, yt.tag_id, 0, pr.secs FROM ("
        "    SELECT s.anchor_id, w.audience_id, SUM(w.seconds) AS secs FROM live_watch_history w "
        "    JOIN live_streams s ON s.session_id = w.session_id "
        "    WHERE w.source = 'app' AND w.entered_at >= FROM_UNIXTIME(?) AND s.anchor_id IS NOT NULL "
        "    GROUP BY s.anchor_id, w.audience_id) pr "
        "   JOIN anchor_tags xt ON xt.anchor_id = pr.anchor_id "
        "   JOIN audience_tags yt ON yt.audience_id = pr.audience_id) u "
        "  GROUP BY x, y) p "
        " JOIN ("
        "  SELECT y, SUM(amount) AS tip, SUM(secs) AS watch FROM ("
        "   SELECT yt.tag_id AS y, t.amount, 0 AS secs FROM stats_tip t "
        "   JOIN audience_tags yt ON yt.audience_id = t.audience_id WHERE t.tipped_at >= FROM_UNIXTIME(?) "
        "   UNION ALL "
        "   SELECT yt.tag_id, 0, w.seconds FROM live_watch_history w "
        "   JOIN live_streams s ON s.session_id = w.session_id "
        "   JOIN audience_tags yt ON yt.audience_id = w.audience_id "
        "   WHERE w.source = 'app' AND w.entered_at >= FROM_UNIXTIME(?) AND s.anchor_id IS NOT NULL) v "
        "  GROUP BY y) t ON t.y = p.y"
        ") sc JOIN tags ax ON ax.tag_id = sc.x JOIN tags ay ON ay.tag_id = sc.y";

struct affinity {
        struct db *db; /* ours: its timeout is the lock's TTL */
        struct redis_conn *redis;
        long long interval_s, window_days, tip_weight, watch_weight, lock_ttl_s;
        char instance[128];
        long long done_period, retry_at_ms;
        struct db_stmt *is_done, *stage, *record_run, *newer_run, *swap_lock;
        struct metric *m_done, *m_failed, *m_superseded, *m_busy;
};

struct affinity *affinity_new(const struct settings *s, struct redis_conn *redis,
                              struct metrics *metrics, char *errstr, size_t errstr_size)
{
        static const char runs[] = "liveflow_stats_affinity_runs_total";
        struct affinity *a = calloc(1, sizeof(*a));
        char host[64] = "";

        if (!a) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        a->redis = redis;
        a->interval_s = s->affinity_interval_s;
        a->window_days = s->affinity_window_days;
        a->tip_weight = s->affinity_tip_weight;
        a->watch_weight = s->affinity_watch_weight;
        a->lock_ttl_s = s->stats_profile_lock_ttl_s;
        a->done_period = -1;
        if (gethostname(host, sizeof(host) - 1) == -1)
                snprintf(host, sizeof(host), "localhost");
        snprintf(a->instance, sizeof(a->instance), "%s:%d", s->instance_id ? s->instance_id : host,
                 (int)getpid());
        a->m_done =
                metrics_counter(metrics, runs, "tag_affinity runs, by outcome", "outcome=\"done\"");
        a->m_failed = metrics_counter(metrics, runs, NULL, "outcome=\"failed\"");
        a->m_superseded = metrics_counter(metrics, runs, NULL, "outcome=\"superseded\"");
        a->m_busy =
                metrics_counter(metrics, "liveflow_stats_affinity_lock_busy_total",
                                "Ticks that found the period's affinity lock held elsewhere", NULL);
        if (!(a->db = db_new(s->mysql_url, (int)a->lock_ttl_s, errstr, errstr_size))) {
                affinity_destroy(a);
                return NULL;
        }
        a->is_done = db_stmt(a->db, "SELECT 1 FROM stats_affinity_run WHERE interval_s = ? AND "
                                    "period = ?");
        a->stage = db_stmt(a->db, stage_sql);
        a->record_run = db_stmt(a->db, "INSERT INTO stats_affinity_run (interval_s, period, "
                                       "instance, pairs, started_at) VALUES (?, ?, ?, ?, "
                                       "FROM_UNIXTIME(? / 1000))");
        a->newer_run = db_stmt(a->db, "SELECT MAX(period) FROM stats_affinity_run "
                                      "WHERE interval_s = ? AND period > ?");
        a->swap_lock = db_stmt(a->db, "SELECT GET_LOCK(" SWAP_LOCK ", ?)");
        if (!a->is_done || !a->stage || !a->record_run || !a->newer_run || !a->swap_lock) {
                snprintf(errstr, errstr_size, "out of memory");
                affinity_destroy(a);
                return NULL;
        }
        return a;
}

void affinity_destroy(struct affinity *a)
{
        if (!a)
                return;
        db_destroy(a->db);
        free(a);
}

/* ------------------------------------------------------------------ the lock */

static bool lock_take(struct affinity *a, long long period, char token[33], bool *busy,
                      char *errstr, size_t errstr_size)
{
        char key[64], ttl[24];
        const char *argv[] = {"SET", key, token, "NX", "EX", ttl};
        redisReply *reply;

        snprintf(key, sizeof(key), "lock:stats:affinity:%lld", period);
        snprintf(ttl, sizeof(ttl), "%lld", a->lock_ttl_s);
        trace_id_new(token);
        if (!(reply = redis_conn_cmd(a->redis, 6, argv, NULL, errstr, errstr_size)))
                return false;
        *busy = !(reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0);
        freeReplyObject(reply);
        return true;
}

static void lock_release(struct affinity *a, long long period, const char *token)
{
        char key[64], errstr[256];
        const char *keys[] = {key}, *args[] = {token};
        redisReply *reply;

        snprintf(key, sizeof(key), "lock:stats:affinity:%lld", period);
        if (!(reply = redis_conn_eval(a->redis, release_script, 1, keys, 1, args, errstr,
                                      sizeof(errstr)))) {
                log_warn(NULL, "affinity: releasing %s: %s (it expires by itself)", key, errstr);
                return;
        }
        if (!(reply->type == REDIS_REPLY_INTEGER && reply->integer == 1))
                log_warn(NULL, "affinity: %s had expired before the run ended", key);
        freeReplyObject(reply);
}

/* ------------------------------------------------------------------ the run */

/* Waits for the swap lock (GET_LOCK: 1 taken, 0 timed out, NULL error). */
static enum db_result swap_lock(struct affinity *a, char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(SWAP_LOCK_WAIT_S)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r =
                db_query_row(a->db, a->swap_lock, prm, 1, &col, 1, &found, errstr, errstr_size);

        if (r == DB_OK && (!found || col.is_null || col.i != 1)) {
                snprintf(errstr, errstr_size,
                         "another affinity run held the swap lock (GET_LOCK) for %d s",
                         SWAP_LOCK_WAIT_S);
                return DB_RETRY;
        }
        return r;
}

static void swap_unlock(struct affinity *a)
{
        char ignored[256]; /* a lost connection released it already */

        db_sql(a->db, "DO RELEASE_LOCK(" SWAP_LOCK ")", NULL, ignored, sizeof(ignored));
}

/* *newer: the newest period after `period` with a recorded run, or -1. */
static enum db_result newer_period(struct affinity *a, long long period, long long *newer,
                                   char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(a->interval_s), DB_I64(period)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r =
                db_query_row(a->db, a->newer_run, prm, 2, &col, 1, &found, errstr, errstr_size);

        *newer = r == DB_OK && found && !col.is_null ? col.i : -1;
        return r;
}

/*
 * As the profile run does (lib/profile_run.c): the run records itself (the unique run row keeps
 * a second run of the period out), then takes the swap lock, so that swaps take turns, and
 * only then reads the newest recorded period, in READ COMMITTED: every swap before ours has
 * committed. A run older than a recorded one is dropped (DB_DUPLICATE, *newer set), as is one
 * whose period another run recorded (DB_DUPLICATE, *newer -1). Readers see the old rows or the
 * new ones (one transaction).
 */
static enum db_result swap(struct affinity *a, long long period, unsigned long long pairs,
                           long long now, long long *newer, char *errstr, size_t errstr_size)
{
        const struct db_param p[] = {DB_I64(a->interval_s), DB_I64(period), DB_STR(a->instance),
                                     DB_I64((long long)pairs), DB_I64(now)};
        enum db_result r;

        *newer = -1;
        if ((r = db_sql(a->db, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", NULL, errstr,
                        errstr_size)) != DB_OK ||
            (r = db_begin(a->db, errstr, errstr_size)) != DB_OK)
                return r;
        if ((r = db_exec(a->db, a->record_run, p, 5, NULL, NULL, errstr, errstr_size)) != DB_OK ||
            (r = swap_lock(a, errstr, errstr_size)) != DB_OK) {
                db_rollback(a->db);
                return r;
        }
        if ((r = newer_period(a, period, newer, errstr, errstr_size)) == DB_OK && *newer >= 0) {
                snprintf(errstr, errstr_size, "a run of a newer period (%lld) is recorded", *newer);
                r = DB_DUPLICATE;
        }
        if (r != DB_OK ||
            (r = db_sql(a->db, "DELETE FROM tag_affinity", NULL, errstr, errstr_size)) != DB_OK ||
            (r = db_sql(a->db,
                        "INSERT INTO tag_affinity (anchor_tag, audience_tag, tip_amount, watch_s, "
                        "score, rank_no, computed_at) SELECT anchor_tag, audience_tag, tip_amount, "
                        "watch_s, score, rank_no, computed_at FROM " STAGE_TABLE,
                        NULL, errstr, errstr_size)) != DB_OK ||
            (r = db_commit(a->db, errstr, errstr_size)) != DB_OK)
                db_rollback(a->db);
        swap_unlock(a);
        return r;
}

/* @returns 0 when the period is done (by this run or an earlier one), 1 when this run was
 * dropped (superseded: another run recorded the period or a newer one meanwhile), -1 with
 * errstr. */
static int run(struct affinity *a, long long period, long long now, char *errstr,
               size_t errstr_size)
{
        const struct db_param done_p[] = {DB_I64(a->interval_s), DB_I64(period)};
        long long since = now / 1000 - a->window_days * 86400, newer = -1;
        unsigned long long pairs = 0;
        struct db_col one = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r;

        if (db_query_row(a->db, a->is_done, done_p, 2, &one, 1, &found, errstr, errstr_size) !=
            DB_OK)
                return -1;
        if (found)
                return 0;
        {
                const struct db_param p[] = {
                        DB_I64(a->tip_weight),   DB_I64(a->watch_weight), DB_I64(a->tip_weight),
                        DB_I64(a->watch_weight), DB_I64(since),           DB_I64(since),
                        DB_I64(since),           DB_I64(since),
                };

                if (db_sql(a->db,
                           "CREATE TEMPORARY TABLE IF NOT EXISTS " STAGE_TABLE " LIKE tag_affinity",
                           NULL, errstr, errstr_size) != DB_OK ||
                    db_sql(a->db, "DELETE FROM " STAGE_TABLE, NULL, errstr, errstr_size) != DB_OK ||
                    db_exec(a->db, a->stage, p, 8, &pairs, NULL, errstr, errstr_size) != DB_OK)
                        return -1;
        }
        if ((r = swap(a, period, pairs, now, &newer, errstr, errstr_size)) == DB_DUPLICATE) {
                if (newer >= 0)
                        log_warn(NULL,
                                 "affinity period=%lld superseded: period %lld ran meanwhile and "
                                 "its table is newer; this one is dropped",
                                 period, newer);
                else
                        log_warn(NULL,
                                 "affinity period=%lld was recorded by another run meanwhile; "
                                 "this one is dropped",
                                 period);
                return 1;
        }
        if (r != DB_OK)
                return -1;
        log_info(NULL, "affinity run done period=%lld pairs=%llu", period, pairs);
        return 0;
}

void affinity_tick(struct affinity *a, long long now)
{
        long long period = now / 1000 / a->interval_s * a->interval_s;
        long long retry_ms = a->interval_s * 1000 < RETRY_MS ? a->interval_s * 1000 : RETRY_MS;
        char token[33], errstr[512];
        bool busy = false;
        int outcome;

        if (period == a->done_period || now < a->retry_at_ms)
                return;
        if (!lock_take(a, period, token, &busy, errstr, sizeof(errstr))) {
                log_warn(NULL, "affinity period=%lld: no lock: %s", period, errstr);
                a->retry_at_ms = now + retry_ms;
                return;
        }
        if (busy) {
                metric_add(a->m_busy, 1);
                return;
        }
        if ((outcome = run(a, period, now, errstr, sizeof(errstr))) >= 0) {
                a->done_period = period;
                metric_add(outcome == 0 ? a->m_done : a->m_superseded, 1);
        } else {
                metric_add(a->m_failed, 1);
                log_error(NULL, "affinity run failed period=%lld, the previous table stays: %s",
                          period, errstr);
                a->retry_at_ms = now + retry_ms;
        }
        lock_release(a, period, token);
}
