/* rebuild_audience_rank.c: live:rank:hot, the audience role's hot ranking, computed from MySQL;
 * the role refreshes it with this code and `liveflow-ctl rebuild redis` rebuilds it. */
#include "rebuild_audience.h"

#include <stdio.h>
#include <stdlib.h>

#include "contract.h"
#include "db.h"
#include "redis_conn.h"

#define ROOM_MAX 64 /* audience_room.room_id */

/* The ranking's rows: room and heat, in rank order. */
struct rank_rows {
        char (*rooms)[ROOM_MAX + 1];
        char (*scores)[32];
        size_t n, cap;
};

static void on_rank_row(const struct db_col *cols, void *arg)
{
        struct rank_rows *rr = arg;

        if (rr->n >= rr->cap)
                return;
        snprintf(rr->rooms[rr->n], sizeof(rr->rooms[0]), "%s", cols[0].s);
        snprintf(rr->scores[rr->n], sizeof(rr->scores[0]), "%s", cols[1].s);
        rr->n++;
}

#define HEAT                                                                                       \
        "COALESCE(o.online, 0) + 0.2 * COALESCE(m.chats, 0) + 0.05 * COALESCE(m.likes, 0) + "      \
        "2 * COALESCE(m.follows, 0) + COALESCE(m.shares, 0) + COALESCE(t.amount, 0) / 100"

/* The rooms live now with their heat, hottest first, at most rr->cap. */
static int read_rank(struct db *db, long long interval_s, struct rank_rows *rr, char *errstr,
                     size_t errstr_size)
{
        char room[ROOM_MAX * 4 + 1], score[32];
        struct db_col cols[2] = {{.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                 {.type = DB_PARAM_STR, .s = score, .s_size = sizeof(score)}};
        struct db_text t = {0};
        enum db_result r;

        /* The minutes that overlap the interval: one more minute than the interval. */
        db_text_add(&t,
                    "SELECT r.room_id, CAST(" HEAT " AS CHAR) FROM (SELECT DISTINCT room_id FROM "
                    "live_streams WHERE status = 'live' AND room_id IS NOT NULL) r LEFT JOIN "
                    "audience_room o ON o.room_id = r.room_id LEFT JOIN (SELECT room_id, "
                    "SUM(chats) chats, SUM(likes) likes, SUM(follows) follows, SUM(shares) shares "
                    "FROM audience_room_minute WHERE minute > NOW() - INTERVAL %lld SECOND GROUP "
                    "BY room_id) m ON m.room_id = r.room_id LEFT JOIN (SELECT room_id, "
                    "SUM(amount) amount FROM recharge WHERE tipped_at >= NOW(3) - INTERVAL %lld "
                    "SECOND GROUP BY room_id) t ON t.room_id = r.room_id ORDER BY " HEAT
                    " DESC, r.room_id LIMIT %zu",
                    interval_s + 60, interval_s, rr->cap);
        r = db_text_query(db, &t, cols, 2, on_rank_row, rr, errstr, errstr_size);
        db_text_free(&t);
        return r == DB_OK ? 0 : -1;
}

int rebuild_audience_rank(struct db *db, struct redis_conn *redis, long long interval_s,
                          long long size, long long *ranked, char *errstr, size_t errstr_size)
{
        struct rank_rows rr = {.cap = size > 0 ? (size_t)size : 1};
        const char *del[] = {"DEL", LF_KEY_RANK_HOT ":next"};
        const char *rename[] = {"RENAME", LF_KEY_RANK_HOT ":next", LF_KEY_RANK_HOT};
        const char *drop[] = {"DEL", LF_KEY_RANK_HOT};
        const char **zadd = NULL, **cmds[3];
        int argcs[3], rc = -1;

        rr.rooms = calloc(rr.cap, sizeof(*rr.rooms));
        rr.scores = calloc(rr.cap, sizeof(*rr.scores));
        if (!rr.rooms || !rr.scores) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        if (read_rank(db, interval_s, &rr, errstr, errstr_size) == -1)
                goto out;
        if (rr.n == 0) {
                cmds[0] = drop;
                argcs[0] = 2;
                rc = redis_conn_pipeline(redis, 1, argcs, cmds, errstr, errstr_size);
                goto out;
        }
        if (!(zadd = calloc(2 + 2 * rr.n, sizeof(*zadd)))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        zadd[0] = "ZADD";
        zadd[1] = LF_KEY_RANK_HOT ":next";
        for (size_t i = 0; i < rr.n; i++) {
                zadd[2 + 2 * i] = rr.scores[i];
                zadd[3 + 2 * i] = rr.rooms[i];
        }
        /* Built aside and renamed over the old ranking: a reader never sees it half made. */
        cmds[0] = del;
        argcs[0] = 2;
        cmds[1] = zadd;
        argcs[1] = (int)(2 + 2 * rr.n);
        cmds[2] = rename;
        argcs[2] = 3;
        rc = redis_conn_pipeline(redis, 3, argcs, cmds, errstr, errstr_size);
out:
        if (rc == 0 && ranked)
                *ranked = (long long)rr.n;
        free(zadd);
        free(rr.rooms);
        free(rr.scores);
        return rc;
}
