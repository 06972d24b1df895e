/*
 * verify.c: liveflow-sim --verify: every total the run caused, checked against MySQL and Redis.
 * All checks run in rounds until they agree or the wait is over (the consumers catch up
 * meanwhile); the differences of the last round are printed.
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "redis_conn.h"
#include "sim.h"

struct round {
        struct db *db;
        struct redis_conn *redis;
        bool report; /* the last round: print each difference */
        long long checks, diffs;
        bool broken; /* a store failed */
};

static void differ(struct round *r, const char *what, const char *want, const char *got)
{
        r->diffs++;
        if (r->report)
                fprintf(stderr, "liveflow-sim: verify: %s: expected %s, found %s\n", what, want,
                        got);
}

static void on_str(const struct db_col *cols, void *arg)
{
        snprintf(arg, 256, "%s", cols[0].is_null ? "NULL" : cols[0].s);
}

/* Runs sql (one row, one column of text) and compares it with want. */
static void check_sql(struct round *r, const char *what, const char *want, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void check_sql(struct round *r, const char *what, const char *want, const char *fmt, ...)
{
        char sql[2048], got[256] = "(no row)", err[256];
        struct db_text t = {0};
        char buf[256];
        struct db_col col = {.type = DB_PARAM_STR, .s = buf, .s_size = sizeof(buf)};
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        r->checks++;
        db_text_add(&t, "%s", sql);
        if (db_text_query(r->db, &t, &col, 1, on_str, got, err, sizeof(err)) != DB_OK) {
                snprintf(got, sizeof(got), "error: %.50s", err);
                r->broken = true;
        }
        db_text_free(&t);
        if (strcmp(got, want) != 0)
                differ(r, what, want, got);
}

/* A Redis command's integer (or integer text) answer, nil read as 0, compared with want. */
static void check_redis(struct round *r, const char *what, long long want, const char *cmd,
                        const char *key, const char *member)
{
        const char *argv[] = {cmd, key, member};
        char err[256], got[64], want_s[32];
        redisReply *reply = redis_conn_cmd(r->redis, member ? 3 : 2, argv, NULL, err, sizeof(err));

        r->checks++;
        if (!reply) {
                r->broken = true;
                snprintf(got, sizeof(got), "error: %.50s", err);
        } else if (reply->type == REDIS_REPLY_NIL) {
                snprintf(got, sizeof(got), "0");
        } else if (reply->type == REDIS_REPLY_INTEGER) {
                snprintf(got, sizeof(got), "%lld", (long long)reply->integer);
        } else if (reply->type == REDIS_REPLY_STRING) {
                snprintf(got, sizeof(got), "%.60s", reply->str);
        } else {
                snprintf(got, sizeof(got), "(reply type %d)", reply->type);
        }
        if (reply)
                freeReplyObject(reply);
        snprintf(want_s, sizeof(want_s), "%lld", want);
        if (strcmp(got, want_s) != 0)
                differ(r, what, want_s, got);
}

/* live_audit_logs.punishment of each verdict (sim_anchor.verdict). */
static const char *const verdict_punishment[] = {"", "warn", "none", "suspend"};

/* What the verdicts and the operator did to the anchor: its status (a suspension still in
 * force) and the live.notify records about it, each sent once. */
static void check_punishment(struct round *r, const struct sim_anchor *a)
{
        const char *status = a->forced_close   ? "banned/0"
                             : a->verdict == 3 ? "suspended/1"
                                               : "active/0";
        const char *notice = a->forced_close   ? "anchor.banned"
                             : a->verdict == 1 ? "anchor.warned"
                             : a->verdict == 3 ? "anchor.suspended"
                                               : "-";
        char what[160];

        snprintf(what, sizeof(what), "anchors.status of %s (/suspended into the future)", a->id);
        check_sql(r, what, status,
                  "SELECT CONCAT(status, '/', IFNULL(suspended_until > NOW(3), 0)) FROM anchors "
                  "WHERE anchor_id = '%s'",
                  a->id);
        snprintf(what, sizeof(what), "live.notify about %s (notify_messages)", a->id);
        check_sql(r, what, notice,
                  "SELECT IFNULL(GROUP_CONCAT(kind, IF(sent_at IS NULL, ' (unsent)', '') ORDER BY "
                  "kind), '-') FROM notify_messages WHERE anchor_id = '%s' AND kind LIKE "
                  "'anchor.%%'",
                  a->id);
}

static void check_anchor(struct round *r, const struct sim *s, const struct sim_anchor *a)
{
        char want[96], what[160], key[160];

        snprintf(want, sizeof(want), "%lld/%lld", a->tip_count, a->tip_sum);
        snprintf(what, sizeof(what), "recharge of %s in %s (count/sum)", a->id, a->room);
        check_sql(r, what, want,
                  "SELECT CONCAT(COUNT(*), '/', IFNULL(SUM(amount), 0)) FROM recharge WHERE "
                  "anchor_id = '%s' AND room_id = '%s'",
                  a->id, a->room);
        snprintf(what, sizeof(what), "settlement_detail of %s (count/sum)", a->id);
        check_sql(r, what, want,
                  "SELECT CONCAT(COUNT(*), '/', IFNULL(SUM(amount), 0)) FROM settlement_detail "
                  "WHERE anchor_id = '%s'",
                  a->id);
        if (a->tip_count) {
                /* Folded in batches: what is folded plus what waits to be. */
                snprintf(what, sizeof(what),
                         "live_room_realtime + live_room_sync pending of %s (count/earnings)",
                         a->room);
                check_sql(r, what, want,
                          "SELECT CONCAT(IFNULL(rt.recharge_count, 0) + s.count_pending, '/', "
                          "IFNULL(rt.earnings, 0) + s.earnings_pending) FROM live_room_sync s "
                          "LEFT JOIN live_room_realtime rt ON rt.room_id = s.room_id WHERE "
                          "s.room_id = '%s'",
                          a->room);
        }
        snprintf(key, sizeof(key), "live:room:earnings:%s", a->room);
        check_redis(r, key, a->tip_sum, "GET", key, NULL);
        snprintf(key, sizeof(key), "live:room:recharge_count:%s", a->room);
        check_redis(r, key, a->tip_count, "GET", key, NULL);
        snprintf(key, sizeof(key), "live:room:online:%s", a->room);
        check_redis(r, key, 0, "GET", key, NULL);
        snprintf(what, sizeof(what), "set:live:online holds %s", a->stream);
        check_redis(r, what, 0, "SISMEMBER", "set:live:online", a->stream);
        /* Balances: the anchor's shares, what it withdrew, what is left. */
        snprintf(what, sizeof(what), "settlement of %s (total/withdrawn/available)", a->id);
        check_sql(
                r, what, "ok",
                "SELECT IF(s.total_amount = (SELECT IFNULL(SUM(anchor_amount), 0) FROM "
                "settlement_detail WHERE anchor_id = s.anchor_id) AND s.withdrawn_amount = "
                "(SELECT IFNULL(SUM(amount), 0) FROM withdrawal WHERE anchor_id = s.anchor_id AND "
                "status = 'succeeded') AND s.available_amount = s.total_amount - "
                "s.withdrawn_amount, 'ok', CONCAT(s.total_amount, '/', s.withdrawn_amount, '/', "
                "s.available_amount)) FROM settlement s WHERE s.anchor_id = '%s'",
                a->id);
        snprintf(what, sizeof(what), "withdrawal requests of %s", a->id);
        check_sql(r, what, "1", "SELECT COUNT(*) FROM withdrawal WHERE anchor_id = '%s'", a->id);
        snprintf(what, sizeof(what), "stream %s ended (close_method)", a->stream);
        check_sql(r, what,
                  a->forced_close   ? "ended/2"
                  : a->verdict == 3 ? "ended/3"
                                    : "ended/1",
                  "SELECT CONCAT(status, '/', close_method) FROM live_streams WHERE stream_id = "
                  "'%s'",
                  a->stream);
        if (a->verdict) {
                snprintf(what, sizeof(what), "moderation of %s (live_audit_logs)", a->stream);
                check_sql(r, what, verdict_punishment[a->verdict],
                          "SELECT GROUP_CONCAT(punishment) FROM live_audit_logs WHERE stream_id = "
                          "'%s'",
                          a->stream);
        }
        check_punishment(r, a);
        (void)s;
}

static void check_all(struct round *r, const struct sim *s)
{
        const char *run = s->cfg.run;
        char want[160], what[160];
        long long share_ms = sim_share_change_ms();

        for (long long i = 0; i < s->cfg.anchors; i++)
                check_anchor(r, s, &s->anchors[i]);
        for (int ag = 0; ag < 3; ag++)
                for (int ug = 0; ug < 3; ug++) {
                        snprintf(want, sizeof(want), "%lld/%lld", s->by_gender_count[ag][ug],
                                 s->by_gender[ag][ug]);
                        snprintf(what, sizeof(what),
                                 "hourly_reward_stats anchor %s x audience %s (count/sum)",
                                 sim_genders[ag], sim_genders[ug]);
                        check_sql(r, what, want,
                                  "SELECT CONCAT(IFNULL(SUM(reward_count), 0), '/', "
                                  "IFNULL(SUM(amount_sum), 0)) FROM hourly_reward_stats WHERE "
                                  "anchor_id LIKE 'sim%s\\_%%' AND anchor_gender = '%s' AND "
                                  "audience_gender = '%s'",
                                  run, sim_genders[ag], sim_genders[ug]);
                }
        snprintf(want, sizeof(want), "%lld/%lld/%lld/%lld/%lld", s->cfg.anchors, s->tip_amount,
                 s->tips, s->chats, s->likes);
        check_sql(r, "live_statistics of the sessions (rows/gift_amount/gift_count/chats/likes)",
                  want,
                  "SELECT CONCAT(COUNT(*), '/', IFNULL(SUM(st.gift_amount), 0), '/', "
                  "IFNULL(SUM(st.gift_count), 0), '/', IFNULL(SUM(st.chats), 0), '/', "
                  "IFNULL(SUM(st.likes), 0)) FROM live_statistics st JOIN live_streams ls ON "
                  "ls.session_id = st.session_id WHERE ls.stream_id LIKE 'sim%s\\_%%'",
                  run);
        if (share_ms > 0)
                check_sql(r, "settlement_detail ratios around the revenue-share change", "0",
                          "SELECT COUNT(*) FROM settlement_detail WHERE anchor_id = '%s' AND "
                          "(tipped_at >= FROM_UNIXTIME(%lld.%03lld)) <> (ratio_bp = 6000)",
                          s->anchors[0].id, share_ms / 1000, share_ms % 1000);
}

int sim_verify(const struct sim *s, long long *checks, long long *diffs)
{
        struct round r = {0};
        char err[256];
        long long deadline = clock_mono_ms() + s->cfg.wait_s * 1000;

        if (!(r.db = db_new(s->cfg.mysql_url, 10, err, sizeof(err))) ||
            !(r.redis = redis_conn_new(s->cfg.redis_url, 5000, err, sizeof(err)))) {
                fprintf(stderr, "liveflow-sim: verify: %s\n", err);
                db_destroy(r.db);
                return 2;
        }
        if (!s->cfg.json)
                fprintf(stderr,
                        "liveflow-sim: verifying (waiting up to %lld s for the consumers)\n",
                        s->cfg.wait_s);
        for (;;) {
                bool last = clock_mono_ms() >= deadline;

                r.checks = r.diffs = 0;
                r.broken = false;
                r.report = last;
                check_all(&r, s);
                if (r.diffs == 0 || last)
                        break;
                sleep(1);
        }
        *checks = r.checks;
        *diffs = r.diffs;
        if (!s->cfg.json)
                fprintf(stderr, "liveflow-sim: verify: %lld checks, %lld differ\n", r.checks,
                        r.diffs);
        redis_conn_destroy(r.redis);
        db_destroy(r.db);
        if (r.diffs && r.broken)
                return 2;
        return r.diffs ? 1 : 0;
}
