/* profile_run.c: audience_profile computed from stats_tip into a stage and swapped in whole. */
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

struct profile_run {
        struct db *db;
        long long interval_s, high_pct, mid_pct;
        struct db_stmt *is_done, *stage, *record_run, *forget_run;
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
                "INSERT INTO stats_profile_stage (audience_id, total_amount, percentile, level, period_start) "
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
        if (!pr->is_done || !pr->stage || !pr->record_run || !pr->forget_run) {
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

        if ((r = db_sql(pr->db, "DELETE FROM stats_profile_stage", NULL, errstr, errstr_size)) !=
                    DB_OK ||
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
                "SELECT (SELECT COUNT(*) FROM stats_profile_stage s LEFT JOIN audience_profile a "
                "ON a.audience_id = s.audience_id WHERE a.audience_id IS NULL OR a.level <> s.level "
                "OR a.total_amount <> s.total_amount OR a.percentile <> s.percentile) + "
                "(SELECT COUNT(*) FROM audience_profile a LEFT JOIN stats_profile_stage s "
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

enum db_result profile_run_swap(struct profile_run *pr, long long period, long long staged,
                                long long started_ms, const char *instance, bool replace,
                                char *errstr, size_t errstr_size)
{
        struct db_param prm[] = {DB_I64(pr->interval_s), DB_I64(period), DB_I64(period),
                                 DB_STR(instance),       DB_I64(staged), DB_I64(started_ms)};
        enum db_result r;

        if ((r = read_committed(pr, errstr, errstr_size)) != DB_OK ||
            (r = db_begin(pr->db, errstr, errstr_size)) != DB_OK)
                return r;
        if ((replace && (r = db_exec(pr->db, pr->forget_run, prm, 2, NULL, NULL, errstr,
                                     errstr_size)) != DB_OK) ||
            (r = db_exec(pr->db, pr->record_run, prm, 6, NULL, NULL, errstr, errstr_size)) !=
                    DB_OK ||
            (r = db_sql(pr->db, "DELETE FROM audience_profile", NULL, errstr, errstr_size)) !=
                    DB_OK ||
            (r = db_sql(
                     pr->db,
                     "INSERT INTO audience_profile (audience_id, total_amount, percentile, level, "
                     "period_start, computed_at) SELECT audience_id, total_amount, percentile, level, period_start, "
                     "NOW(3) FROM stats_profile_stage",
                     NULL, errstr, errstr_size)) != DB_OK ||
            (r = db_commit(pr->db, errstr, errstr_size)) != DB_OK) {
                db_rollback(pr->db);
                return r;
        }
        return DB_OK;
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

int profile_run_unlock(struct redis_conn *redis, long long period, const char *token,
                       char *errstr, size_t errstr_size)
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
