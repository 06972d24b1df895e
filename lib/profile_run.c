/* profile_run.c: audience_profile computed from stats_tip into a private stage and swapped in
 * whole. */
#include "profile_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_conn.h"
#include "trace.h"

/* Deletes the lock only while it still holds our token: an expired lock that another
 * instance took since is not ours to release. */
static const char release_script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
        "return 0\n";

/*
 * The stage is a temporary table of the run's own connection: runs of different periods (each
 * under its own period's lock) may overlap, and none sees or empties another's stage. It lives
 * as long as the connection; a reconnect between stage and swap loses it, and the swap fails
 * (the previous profile stays) rather than swapping in something else.
 */
#define STAGE_TABLE "profile_run_stage"

/* Serialises the swaps of every run on the database (a MySQL named lock, which is server-wide:
 * named after the database, held for the swap's transaction). */
#define SWAP_LOCK        "CONCAT('liveflow:profile_swap:', MD5(DATABASE()))"
#define SWAP_LOCK_WAIT_S 60

struct profile_run {
        struct db *db;
        long long interval_s, high_pct, mid_pct;
        struct db_stmt *is_done, *stage, *record_run, *forget_run, *newer_run, *swap_lock;
};

struct profile_run *profile_run_new(struct db *db, long long interval_s, long long high_pct,
                                    long long mid_pct)
{
        struct profile_run *pr = calloc(1, sizeof(*pr));

        if (!pr)
                return NULL;
        pr->db = db;
        pr->interval_s = interval_s;
        pr->high_pct = high_pct;
        pr->mid_pct = mid_pct;
        pr->is_done = db_stmt(
                db, "SELECT COUNT(*) FROM stats_profile_run WHERE interval_s = ? AND period = ?");
        /* at_most counts the spenders whose total is at most this one (ties included). */
        pr->stage = db_stmt(
                db,
                "INSERT INTO " STAGE_TABLE
                " (audience_id, total_amount, percentile, level, period_start) "
                "SELECT audience_id, total, ROUND(100 * at_most / spenders, 3), "
                "CASE WHEN 100 * at_most > ? * spenders THEN 'high' WHEN 100 * at_most > ? * spenders THEN 'mid' "
                "ELSE 'low' END, FROM_UNIXTIME(?) FROM ("
                " SELECT audience_id, total, COUNT(*) OVER (ORDER BY total RANGE BETWEEN UNBOUNDED PRECEDING "
                " AND CURRENT ROW) AS at_most, COUNT(*) OVER () AS spenders FROM ("
                "  SELECT audience_id, SUM(amount) AS total FROM stats_tip GROUP BY audience_id) t) r");
        pr->record_run = db_stmt(
                db,
                "INSERT INTO stats_profile_run (interval_s, period, period_start, instance, audiences, started_at) "
                "VALUES (?, ?, FROM_UNIXTIME(?), ?, ?, FROM_UNIXTIME(? / 1000))");
        pr->forget_run =
                db_stmt(db, "DELETE FROM stats_profile_run WHERE interval_s = ? AND period = ?");
        pr->newer_run = db_stmt(db, "SELECT MAX(period) FROM stats_profile_run "
                                    "WHERE interval_s = ? AND period > ?");
        pr->swap_lock = db_stmt(db, "SELECT GET_LOCK(" SWAP_LOCK ", ?)");
        if (!pr->is_done || !pr->stage || !pr->record_run || !pr->forget_run || !pr->newer_run ||
            !pr->swap_lock) {
                free(pr);
                return NULL;
        }
        return pr;
}

void profile_run_destroy(struct profile_run *pr)
{
        free(pr); /* the statements belong to db */
}

enum db_result profile_run_is_done(struct profile_run *pr, long long period, bool *done,
                                   char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(pr->interval_s), DB_I64(period)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r =
                db_query_row(pr->db, pr->is_done, prm, 2, &col, 1, &found, errstr, errstr_size);

        *done = r == DB_OK && found && col.i > 0;
        return r;
}

/* READ COMMITTED, so that reading the whole ledger takes no locks that would hold up tips. */
static enum db_result read_committed(struct profile_run *pr, char *errstr, size_t errstr_size)
{
        return db_sql(pr->db, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", NULL, errstr,
                      errstr_size);
}

enum db_result profile_run_stage(struct profile_run *pr, long long period, long long *staged,
                                 char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(pr->high_pct), DB_I64(pr->mid_pct), DB_I64(period)};
        unsigned long long affected = 0;
        enum db_result r;

        if ((r = db_sql(
                     pr->db,
                     "CREATE TEMPORARY TABLE IF NOT EXISTS " STAGE_TABLE " ("
                     " audience_id VARCHAR(64) NOT NULL PRIMARY KEY, total_amount BIGINT NOT NULL,"
                     " percentile DECIMAL(6,3) NOT NULL, level ENUM('high','mid','low') NOT NULL,"
                     " period_start DATETIME(3) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                     NULL, errstr, errstr_size)) != DB_OK ||
            (r = db_sql(pr->db, "DELETE FROM " STAGE_TABLE, NULL, errstr, errstr_size)) != DB_OK ||
            (r = read_committed(pr, errstr, errstr_size)) != DB_OK ||
            (r = db_exec(pr->db, pr->stage, prm, 3, &affected, NULL, errstr, errstr_size)) != DB_OK)
                return r;
        *staged = (long long)affected;
        return DB_OK;
}

static void on_count(const struct db_col *cols, void *arg)
{
        *(long long *)arg = cols[0].i;
}

enum db_result profile_run_diff(struct profile_run *pr, long long *changed, char *errstr,
                                size_t errstr_size)
{
        static const char sql[] =
                "SELECT (SELECT COUNT(*) FROM " STAGE_TABLE " s LEFT JOIN audience_profile a "
                "ON a.audience_id = s.audience_id WHERE a.audience_id IS NULL OR a.level <> s.level "
                "OR a.total_amount <> s.total_amount OR a.percentile <> s.percentile) + "
                "(SELECT COUNT(*) FROM audience_profile a LEFT JOIN " STAGE_TABLE " s "
                "ON s.audience_id = a.audience_id WHERE s.audience_id IS NULL)";
        struct db_text t = {0};
        struct db_col col = {.type = DB_PARAM_I64};
        enum db_result r;

        *changed = 0;
        db_text_add(&t, "%s", sql);
        r = db_text_query(pr->db, &t, &col, 1, on_count, changed, errstr, errstr_size);
        db_text_free(&t);
        return r;
}

/* Waits for the swap lock (GET_LOCK: 1 taken, 0 timed out, NULL error). */
static enum db_result swap_lock(struct profile_run *pr, char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(SWAP_LOCK_WAIT_S)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r =
                db_query_row(pr->db, pr->swap_lock, prm, 1, &col, 1, &found, errstr, errstr_size);

        if (r == DB_OK && (!found || col.is_null || col.i != 1)) {
                snprintf(errstr, errstr_size,
                         "another profile run held the swap lock (GET_LOCK) for %d s",
                         SWAP_LOCK_WAIT_S);
                return DB_RETRY;
        }
        return r;
}

static void swap_unlock(struct profile_run *pr)
{
        char ignored[256]; /* a lost connection released it already */

        db_sql(pr->db, "DO RELEASE_LOCK(" SWAP_LOCK ")", NULL, ignored, sizeof(ignored));
}

/* *newer: the newest period after `period` with a recorded run, or -1. */
static enum db_result newer_period(struct profile_run *pr, long long period, long long *newer,
                                   char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(pr->interval_s), DB_I64(period)};
        struct db_col col = {.type = DB_PARAM_I64};
        bool found = false;
        enum db_result r =
                db_query_row(pr->db, pr->newer_run, prm, 2, &col, 1, &found, errstr, errstr_size);

        *newer = r == DB_OK && found && !col.is_null ? col.i : -1;
        return r;
}

/*
 * The run records itself first (the row lock on its period's run keeps a second run of the
 * same period out), then takes the swap lock, so that the swaps of runs of different periods
 * happen one at a time, and only then reads the newest recorded period. Under the swap lock a
 * plain read is right: every swap before ours has committed, and one after ours is not in yet.
 * (A locking read alone would not do: READ COMMITTED takes no gap locks, so a run that waited on
 * a row would miss the newer row another run inserted meanwhile; and a locking read under the
 * swap lock could wait on the row of a run that waits for the swap lock.)
 */
enum db_result profile_run_swap(struct profile_run *pr, long long period, long long staged,
                                long long started_ms, const char *instance, bool replace,
                                long long *newer, char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(pr->interval_s), DB_I64(period), DB_I64(period),
                                 DB_STR(instance),       DB_I64(staged), DB_I64(started_ms)};
        enum db_result r;

        *newer = -1;
        if ((r = read_committed(pr, errstr, errstr_size)) != DB_OK ||
            (r = db_begin(pr->db, errstr, errstr_size)) != DB_OK)
                return r;
        if ((replace && (r = db_exec(pr->db, pr->forget_run, prm, 2, NULL, NULL, errstr,
                                     errstr_size)) != DB_OK) ||
            (r = db_exec(pr->db, pr->record_run, prm, 6, NULL, NULL, errstr, errstr_size)) !=
                    DB_OK ||
            (r = swap_lock(pr, errstr, errstr_size)) != DB_OK) {
                db_rollback(pr->db);
                return r;
        }
        if ((r = newer_period(pr, period, newer, errstr, errstr_size)) == DB_OK && *newer >= 0) {
                snprintf(errstr, errstr_size,
                         "a run of a newer period (%lld) is recorded; its profile stays", *newer);
                r = DB_DUPLICATE;
        }
        if (r != DB_OK ||
            (r = db_sql(pr->db, "DELETE FROM audience_profile", NULL, errstr, errstr_size)) !=
                    DB_OK ||
            (r = db_sql(
                     pr->db,
                     "INSERT INTO audience_profile (audience_id, total_amount, percentile, level, "
                     "period_start, computed_at) SELECT audience_id, total_amount, percentile, level, period_start, "
                     "NOW(3) FROM " STAGE_TABLE,
                     NULL, errstr, errstr_size)) != DB_OK ||
            (r = db_commit(pr->db, errstr, errstr_size)) != DB_OK)
                db_rollback(pr->db);
        swap_unlock(pr);
        return r;
}

/* ------------------------------------------------------------------ the period's lock */

enum profile_lock profile_run_lock(struct redis_conn *redis, long long period, long long ttl_s,
                                   char token[33], char *errstr, size_t errstr_size)
{
        char key[64], ttl[24];
        const char *argv[] = {"SET", key, token, "NX", "EX", ttl};
        redisReply *reply;
        enum profile_lock r;

        snprintf(key, sizeof(key), "lock:stats:profile:%lld", period);
        snprintf(ttl, sizeof(ttl), "%lld", ttl_s);
        trace_id_new(token);
        if (!(reply = redis_conn_cmd(redis, 6, argv, NULL, errstr, errstr_size)))
                return PROFILE_LOCK_ERROR;
        r = reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0 ? PROFILE_LOCK_TAKEN
                                                                               : PROFILE_LOCK_BUSY;
        freeReplyObject(reply);
        return r;
}

int profile_run_unlock(struct redis_conn *redis, long long period, const char *token, char *errstr,
                       size_t errstr_size)
{
        char key[64];
        const char *keys[] = {key}, *args[] = {token};
        redisReply *reply;
        int r;

        snprintf(key, sizeof(key), "lock:stats:profile:%lld", period);
        if (!(reply = redis_conn_eval(redis, release_script, 1, keys, 1, args, errstr,
                                      errstr_size)))
                return -1;
        r = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1 ? 1 : 0;
        freeReplyObject(reply);
        return r;
}
