/* session_stats.c: one session's live_statistics gift figures from stats_tip. */
#include "session_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct session_stats {
        struct db *db;
        struct db_stmt *lock_dirty, *lock_any, *window, *gifts, *viewers, *upsert_stats, *clean,
                *current;
};

static int prepare(struct session_stats *ss)
{
        struct db *db = ss->db;

        ss->lock_dirty = db_stmt(
                db,
                "SELECT stream_id, anchor_id, duration_s FROM stats_session WHERE session_id = ? AND dirty = 1 FOR UPDATE");
        ss->lock_any = db_stmt(
                db,
                "SELECT stream_id, anchor_id, duration_s FROM stats_session WHERE session_id = ? FOR UPDATE");
        ss->window = db_stmt(
                db,
                "SELECT stream_id, anchor_id, duration_s FROM stats_session WHERE session_id = ?");
        ss->gifts = db_stmt(
                db,
                "SELECT CAST(COALESCE(SUM(t.amount), 0) AS SIGNED), COUNT(*), COUNT(DISTINCT t.audience_id) "
                "FROM stats_session s JOIN stats_tip t ON t.room_id = s.room_id "
                "AND t.tipped_at BETWEEN s.started_at AND s.ended_at WHERE s.session_id = ?");
        /* The viewer figures are the audience role's (consumers/audience.h): read as they are. */
        ss->viewers = db_stmt(
                db,
                "SELECT COALESCE(unique_viewers, -1), COALESCE(peak_online, -1) FROM live_statistics "
                "WHERE session_id = ?");
        ss->upsert_stats = db_stmt(
                db,
                "INSERT INTO live_statistics (session_id, stream_id, anchor_id, duration_s, gift_amount, gift_count, "
                "paying_users, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?, NOW(3)) "
                "ON DUPLICATE KEY UPDATE stream_id = VALUES(stream_id), anchor_id = VALUES(anchor_id), "
                "duration_s = VALUES(duration_s), gift_amount = VALUES(gift_amount), gift_count = VALUES(gift_count), "
                "paying_users = VALUES(paying_users), computed_at = NOW(3)");
        ss->clean = db_stmt(db, "UPDATE stats_session SET dirty = 0 WHERE session_id = ?");
        ss->current = db_stmt(
                db,
                "SELECT stream_id, anchor_id, duration_s, gift_amount, gift_count, paying_users, "
                "COALESCE(unique_viewers, -1), COALESCE(peak_online, -1) FROM live_statistics WHERE session_id = ?");
        return ss->lock_dirty && ss->lock_any && ss->window && ss->gifts && ss->viewers &&
                               ss->upsert_stats && ss->clean && ss->current
                       ? 0
                       : -1;
}

struct session_stats *session_stats_new(struct db *db)
{
        struct session_stats *ss = calloc(1, sizeof(*ss));

        if (!ss)
                return NULL;
        ss->db = db;
        if (prepare(ss) == -1) {
                free(ss);
                return NULL;
        }
        return ss;
}

void session_stats_destroy(struct session_stats *ss)
{
        free(ss); /* the statements belong to the db */
}

/* Reads the session's row through stmt (a plain read or a lock); *found says whether it is there.
 */
static enum db_result read_session(struct session_stats *ss, struct db_stmt *stmt,
                                   long long session, struct session_figures *f, bool *found,
                                   char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_I64(session)};
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = f->stream_id, .s_size = sizeof(f->stream_id)},
                {.type = DB_PARAM_STR, .s = f->anchor_id, .s_size = sizeof(f->anchor_id)},
                {.type = DB_PARAM_I64}};
        enum db_result r;

        memset(f, 0, sizeof(*f));
        r = db_query_row(ss->db, stmt, p, 1, cols, 3, found, errstr, errstr_size);
        f->has_anchor = !cols[1].is_null;
        if (cols[1].is_null)
                f->anchor_id[0] = '\0';
        f->duration_s = cols[2].i;
        return r;
}

static enum db_result read_figures(struct session_stats *ss, long long session,
                                   struct session_figures *f, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_I64(session)};
        struct db_col g[] = {
                {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        struct db_col v[] = {{.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        bool found, has_row;
        enum db_result r;

        if ((r = db_query_row(ss->db, ss->gifts, p, 1, g, 3, &found, errstr, errstr_size)) !=
                    DB_OK ||
            (r = db_query_row(ss->db, ss->viewers, p, 1, v, 2, &has_row, errstr, errstr_size)) !=
                    DB_OK)
                return r;
        f->gift_amount = g[0].i;
        f->gift_count = g[1].i;
        f->paying_users = g[2].i;
        f->unique_viewers = has_row ? v[0].i : -1;
        f->peak_online = has_row ? v[1].i : -1;
        return DB_OK;
}

static enum db_result write_figures(struct session_stats *ss, long long session,
                                    const struct session_figures *f, char *errstr,
                                    size_t errstr_size)
{
        struct db_param p[] = {DB_I64(session)};
        struct db_param row[] = {DB_I64(session),
                                 DB_STR(f->stream_id),
                                 f->has_anchor ? DB_STR(f->anchor_id) : DB_NULL,
                                 DB_I64(f->duration_s),
                                 DB_I64(f->gift_amount),
                                 DB_I64(f->gift_count),
                                 DB_I64(f->paying_users)};
        enum db_result r;

        if ((r = db_exec(ss->db, ss->upsert_stats, row, 7, NULL, NULL, errstr, errstr_size)) !=
            DB_OK)
                return r;
        return db_exec(ss->db, ss->clean, p, 1, NULL, NULL, errstr, errstr_size);
}

/* Computes one session under its row lock; a session not found (or no longer dirty) is left
 * alone. */
static enum db_result compute_locked(struct session_stats *ss, long long session, bool only_dirty,
                                     bool *computed, struct session_figures *f, char *errstr,
                                     size_t errstr_size)
{
        bool found = false;
        enum db_result r;

        *computed = false;
        if ((r = read_session(ss, only_dirty ? ss->lock_dirty : ss->lock_any, session, f, &found,
                              errstr, errstr_size)) != DB_OK ||
            !found)
                return r;
        if ((r = read_figures(ss, session, f, errstr, errstr_size)) != DB_OK ||
            (r = write_figures(ss, session, f, errstr, errstr_size)) != DB_OK)
                return r;
        *computed = true;
        log_info(
                NULL,
                "live_statistics session=%lld stream=%s gift_amount=%lld gift_count=%lld paying_users=%lld "
                "unique_viewers=%lld peak_online=%lld",
                session, f->stream_id, f->gift_amount, f->gift_count, f->paying_users,
                f->unique_viewers, f->peak_online);
        return DB_OK;
}

enum db_result session_stats_compute(struct session_stats *ss, long long session_id,
                                     bool only_dirty, bool *computed, struct session_figures *f,
                                     char *errstr, size_t errstr_size)
{
        struct session_figures ignored;
        enum db_result r;

        if (!f)
                f = &ignored;
        /* READ COMMITTED: each figure query then sees every record committed before the lock. */
        if ((r = db_sql(ss->db, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", NULL, errstr,
                        errstr_size)) != DB_OK ||
            (r = db_begin(ss->db, errstr, errstr_size)) != DB_OK)
                return r;
        if ((r = compute_locked(ss, session_id, only_dirty, computed, f, errstr, errstr_size)) !=
                    DB_OK ||
            (r = db_commit(ss->db, errstr, errstr_size)) != DB_OK) {
                db_rollback(ss->db);
                *computed = false;
                return r;
        }
        return DB_OK;
}

enum db_result session_stats_derive(struct session_stats *ss, long long session_id,
                                    struct session_figures *f, bool *found, char *errstr,
                                    size_t errstr_size)
{
        enum db_result r = read_session(ss, ss->window, session_id, f, found, errstr, errstr_size);

        if (r != DB_OK || !*found)
                return r;
        return read_figures(ss, session_id, f, errstr, errstr_size);
}

enum db_result session_stats_current(struct session_stats *ss, long long session_id,
                                     struct session_figures *f, bool *found, char *errstr,
                                     size_t errstr_size)
{
        struct db_param p[] = {DB_I64(session_id)};
        struct db_col cols[8] = {
                {.type = DB_PARAM_STR, .s = f->stream_id, .s_size = sizeof(f->stream_id)},
                {.type = DB_PARAM_STR, .s = f->anchor_id, .s_size = sizeof(f->anchor_id)},
        };
        enum db_result r;

        for (int i = 2; i < 8; i++)
                cols[i].type = DB_PARAM_I64;
        memset(f, 0, sizeof(*f));
        r = db_query_row(ss->db, ss->current, p, 1, cols, 8, found, errstr, errstr_size);
        f->has_anchor = !cols[1].is_null;
        if (cols[1].is_null)
                f->anchor_id[0] = '\0';
        f->duration_s = cols[2].i;
        f->gift_amount = cols[3].i;
        f->gift_count = cols[4].i;
        f->paying_users = cols[5].i;
        f->unique_viewers = cols[6].i;
        f->peak_online = cols[7].i;
        return r;
}
