/* reconcile_money.c: the money checks of reconcile, [1] to [4]: recharge against
 * settlement_detail and hourly_reward_stats, the settlement balances, and the rooms' Redis
 * figures. */
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "reconcile_check.h"
#include "redis_conn.h"

#define REDIS_BATCH  128 /* rooms per MGET */
#define say          reconcile_say
#define verdict      reconcile_verdict
#define ROOM_KEY_MAX 128 /* LF_KEY_ROOM_RECHARGE_COUNT + a 64-byte room_id */

static const char earnings_prefix[] = LF_KEY_ROOM_EARNINGS;
static const char count_prefix[] = LF_KEY_ROOM_RECHARGE_COUNT;

static const char *col(const MYSQL_ROW row, int i)
{
        return row[i] ? row[i] : "none";
}

static bool is_true(const MYSQL_ROW row, int i)
{
        return row[i] && strcmp(row[i], "0") != 0;
}

/* Prints up to rc->limit rows of res through print, then how many were left out; frees res. */
static long long list_rows(struct reconcile *rc, MYSQL_RES *res,
                           void (*print)(struct reconcile *rc, const MYSQL_ROW row))
{
        long long n = (long long)mysql_num_rows(res), shown = 0;
        MYSQL_ROW row;

        while (shown < rc->limit && (row = mysql_fetch_row(res))) {
                print(rc, row);
                shown++;
        }
        if (n > shown)
                say(rc, "... and %lld more\n", n - shown);
        mysql_free_result(res);
        return n;
}

/* Runs a query that lists one finding per row. @returns the number of findings, or -1. */
static long long findings(struct reconcile *rc, const char *sql,
                          void (*print)(struct reconcile *rc, const MYSQL_ROW row))
{
        MYSQL_RES *res = reconcile_query(rc, sql);

        return res ? list_rows(rc, res, print) : -1;
}

/* Adds the findings of one query to *found; false (and *found = -1) on a query error. */
static bool add_findings(struct reconcile *rc, long long *found, const char *sql,
                         void (*print)(struct reconcile *rc, const MYSQL_ROW row))
{
        long long n = findings(rc, sql, print);

        if (n < 0) {
                *found = -1;
                return false;
        }
        *found += n;
        return true;
}

/* ------------------------------------------------------------------ 1. recharge vs
 * settlement_detail */

#define RANGE(c) c " >= @from AND " c " < @to"

static const char details_totals_sql[] =
        "SELECT rc, ra, dc, da, rc = dc AND ra = da FROM (SELECT "
        "(SELECT COUNT(*) FROM recharge WHERE " RANGE(
                "tipped_at") ") rc, "
                             "(SELECT COALESCE(SUM(amount), 0) FROM recharge WHERE " RANGE(
                                     "tipped_at") ") ra, "
                                                  "(SELECT COUNT(*) FROM settlement_detail WHERE " RANGE(
                                                          "tipped_at") ") dc, "
                                                                       "(SELECT COALESCE(SUM(amount), 0) FROM settlement_detail WHERE " RANGE(
                                                                               "tipped_at") ") da) x";

static const char details_by_anchor_sql[] =
        "SELECT anchor_id, SUM(rc), SUM(ra), SUM(dc), SUM(da) FROM ("
        "SELECT anchor_id, COUNT(*) rc, SUM(amount) ra, 0 dc, 0 da FROM recharge WHERE " RANGE(
                "tipped_at") " GROUP BY anchor_id UNION ALL "
                             "SELECT anchor_id, 0, 0, COUNT(*), SUM(amount) FROM settlement_detail WHERE " RANGE(
                                     "tipped_at") " GROUP BY anchor_id) x GROUP BY anchor_id HAVING SUM(rc) <> SUM(dc) OR SUM(ra) <> SUM(da) ORDER BY anchor_id";

static const char details_by_tip_sql[] =
        "SELECT r.trace_id, r.anchor_id, r.amount, d.anchor_id, d.amount FROM recharge r "
        "LEFT JOIN settlement_detail d ON d.trace_id = r.trace_id WHERE " RANGE(
                "r.tipped_at") " AND (d.trace_id IS NULL OR d.anchor_id <> r.anchor_id OR d.amount <> r.amount) UNION ALL "
                               "SELECT d.trace_id, NULL, NULL, d.anchor_id, d.amount FROM settlement_detail d "
                               "LEFT JOIN recharge r ON r.trace_id = d.trace_id WHERE " RANGE(
                                       "d.tipped_at") " AND r.trace_id IS NULL ORDER BY 1";

/* The worker's rounding rule (settlement_split): anchor gets floor(amount * ratio_bp / 10000). */
static const char details_split_sql[] =
        "SELECT trace_id, anchor_id, amount, ratio_bp, anchor_amount, platform_amount, rule FROM ("
        "SELECT trace_id, anchor_id, amount, ratio_bp, anchor_amount, platform_amount, "
        "(amount DIV 10000) * CAST(ratio_bp AS SIGNED) + ((amount MOD 10000) * CAST(ratio_bp AS SIGNED)) DIV 10000 rule "
        "FROM settlement_detail WHERE " RANGE(
                "tipped_at") ") x WHERE ratio_bp > 10000 OR anchor_amount <> rule "
                             "OR CAST(anchor_amount AS DECIMAL(21, 0)) + platform_amount <> amount ORDER BY trace_id";

static void print_anchor_totals(struct reconcile *rc, const MYSQL_ROW row)
{
        say(rc, "anchor %s: recharge %s tips sum %s, settlement_detail %s tips sum %s\n",
            col(row, 0), col(row, 1), col(row, 2), col(row, 3), col(row, 4));
}

static void print_tip(struct reconcile *rc, const MYSQL_ROW row)
{
        if (!row[1])
                say(rc,
                    "tip %s (anchor %s, amount %s): in settlement_detail, missing from recharge\n",
                    col(row, 0), col(row, 3), col(row, 4));
        else if (!row[3])
                say(rc,
                    "tip %s (anchor %s, amount %s): in recharge, missing from settlement_detail\n",
                    col(row, 0), col(row, 1), col(row, 2));
        else
                say(rc,
                    "tip %s: recharge has anchor %s amount %s, settlement_detail anchor %s amount %s\n",
                    col(row, 0), col(row, 1), col(row, 2), col(row, 3), col(row, 4));
}

static void print_split(struct reconcile *rc, const MYSQL_ROW row)
{
        say(rc,
            "tip %s (anchor %s): amount %s at ratio_bp %s split %s + %s, the rule gives the anchor %s\n",
            col(row, 0), col(row, 1), col(row, 2), col(row, 3), col(row, 4), col(row, 5),
            col(row, 6));
}

int reconcile_check_details(struct reconcile *rc)
{
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long found = 0;

        reconcile_heading(rc, 1, "details", "recharge vs settlement_detail, tips in the range\n");
        if (!(res = reconcile_query(rc, details_totals_sql)))
                return -1;
        if ((row = mysql_fetch_row(res))) {
                say(rc, "recharge %s tips sum %s, settlement_detail %s tips sum %s\n", col(row, 0),
                    col(row, 1), col(row, 2), col(row, 3));
                found += !is_true(row, 4);
        }
        mysql_free_result(res);
        if (add_findings(rc, &found, details_by_anchor_sql, print_anchor_totals) &&
            add_findings(rc, &found, details_by_tip_sql, print_tip))
                add_findings(rc, &found, details_split_sql, print_split);
        return verdict(rc, found);
}

/* ------------------------------------------------------------------ 2. recharge vs
 * hourly_reward_stats */

#define HOURS(c) c " >= @hfrom AND " c " < @hto"

static const char hourly_totals_sql[] =
        "SELECT rc, ra, sc, sa, sr, rc = sc AND ra = sa FROM (SELECT "
        "(SELECT COUNT(*) FROM recharge WHERE " HOURS(
                "tipped_at") ") rc, "
                             "(SELECT COALESCE(SUM(amount), 0) FROM recharge WHERE " HOURS(
                                     "tipped_at") ") ra, "
                                                  "(SELECT COALESCE(SUM(reward_count), 0) FROM hourly_reward_stats WHERE " HOURS(
                                                          "hour") ") sc, "
                                                                  "(SELECT COALESCE(SUM(amount_sum), 0) FROM hourly_reward_stats WHERE " HOURS(
                                                                          "hour") ") sa, "
                                                                                  "(SELECT COUNT(*) FROM hourly_reward_stats WHERE " HOURS(
                                                                                          "hour") ") sr) x";

static const char hourly_by_anchor_sql[] =
        "SELECT h, anchor_id, SUM(rc), SUM(ra), SUM(sc), SUM(sa) FROM ("
        "SELECT DATE_FORMAT(tipped_at, '%Y-%m-%dT%H:00Z') h, anchor_id, COUNT(*) rc, SUM(amount) ra, 0 sc, 0 sa "
        "FROM recharge WHERE " HOURS(
                "tipped_at") " GROUP BY h, anchor_id UNION ALL "
                             "SELECT DATE_FORMAT(hour, '%Y-%m-%dT%H:00Z'), anchor_id, 0, 0, SUM(reward_count), SUM(amount_sum) "
                             "FROM hourly_reward_stats WHERE " HOURS(
                                     "hour") " GROUP BY hour, anchor_id) x "
                                             "GROUP BY h, anchor_id HAVING SUM(rc) <> SUM(sc) OR SUM(ra) <> SUM(sa) ORDER BY h, anchor_id";

static void print_hour(struct reconcile *rc, const MYSQL_ROW row)
{
        say(rc, "hour %s anchor %s: recharge %s tips sum %s, hourly_reward_stats %s tips sum %s\n",
            col(row, 0), col(row, 1), col(row, 2), col(row, 3), col(row, 4), col(row, 5));
}

int reconcile_check_hourly(struct reconcile *rc)
{
        char hfrom[24], hto[24];
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long found = 0;

        reconcile_format_time(rc->from_s / HOUR_S * HOUR_S, "%Y-%m-%dT%H:%M:%SZ", hfrom,
                              sizeof(hfrom));
        reconcile_format_time((rc->to_s + HOUR_S - 1) / HOUR_S * HOUR_S, "%Y-%m-%dT%H:%M:%SZ", hto,
                              sizeof(hto));
        reconcile_heading(rc, 2, "hourly",
                          "recharge vs hourly_reward_stats, whole hours [%s, %s)\n", hfrom, hto);
        if (!(res = reconcile_query(rc, hourly_totals_sql)))
                return -1;
        if ((row = mysql_fetch_row(res))) {
                say(rc, "recharge %s tips sum %s, hourly_reward_stats %s tips sum %s\n",
                    col(row, 0), col(row, 1), col(row, 2), col(row, 3));
                if (strcmp(col(row, 4), "0") == 0 && strcmp(col(row, 0), "0") != 0)
                        say(rc,
                            "hourly_reward_stats has no row for these hours (is the stats worker running?)\n");
                found += !is_true(row, 5);
        }
        mysql_free_result(res);
        add_findings(rc, &found, hourly_by_anchor_sql, print_hour);
        return verdict(rc, found);
}

/* ------------------------------------------------------------------ 3. settlement balances */

/* Every anchor with a balance, a detail or a succeeded withdrawal; the flags say what is wrong. */
static const char balances_sql[] =
        "SELECT a.anchor_id, s.anchor_id IS NOT NULL, s.total_amount, s.withdrawn_amount, s.available_amount, "
        "COALESCE(d.earned, 0), COALESCE(w.withdrawn, 0), "
        "s.total_amount <> COALESCE(d.earned, 0), s.withdrawn_amount <> COALESCE(w.withdrawn, 0), "
        "s.available_amount <> CAST(s.total_amount AS DECIMAL(21, 0)) - s.withdrawn_amount, "
        "s.total_amount < 0 OR s.withdrawn_amount < 0 OR s.available_amount < 0 FROM ("
        "SELECT anchor_id FROM settlement UNION SELECT anchor_id FROM settlement_detail "
        "UNION SELECT anchor_id FROM withdrawal WHERE status = 'succeeded') a "
        "LEFT JOIN settlement s ON s.anchor_id = a.anchor_id "
        "LEFT JOIN (SELECT anchor_id, SUM(anchor_amount) earned FROM settlement_detail GROUP BY anchor_id) d "
        "ON d.anchor_id = a.anchor_id "
        "LEFT JOIN (SELECT anchor_id, SUM(amount) withdrawn FROM withdrawal WHERE status = 'succeeded' "
        "GROUP BY anchor_id) w ON w.anchor_id = a.anchor_id "
        "WHERE s.anchor_id IS NULL OR s.total_amount <> COALESCE(d.earned, 0) "
        "OR s.withdrawn_amount <> COALESCE(w.withdrawn, 0) "
        "OR s.available_amount <> CAST(s.total_amount AS DECIMAL(21, 0)) - s.withdrawn_amount "
        "OR s.total_amount < 0 OR s.withdrawn_amount < 0 OR s.available_amount < 0 ORDER BY a.anchor_id";

static void print_balance(struct reconcile *rc, const MYSQL_ROW row)
{
        const char *a = col(row, 0);

        if (!is_true(row, 1)) {
                say(rc,
                    "anchor %s: no settlement row, but SUM(settlement_detail.anchor_amount) %s and "
                    "succeeded withdrawals %s\n",
                    a, col(row, 5), col(row, 6));
                return;
        }
        if (is_true(row, 7))
                say(rc, "anchor %s: total_amount %s != SUM(settlement_detail.anchor_amount) %s\n",
                    a, col(row, 2), col(row, 5));
        if (is_true(row, 8))
                say(rc, "anchor %s: withdrawn_amount %s != SUM(succeeded withdrawal.amount) %s\n",
                    a, col(row, 3), col(row, 6));
        if (is_true(row, 9))
                say(rc, "anchor %s: available_amount %s != total_amount %s - withdrawn_amount %s\n",
                    a, col(row, 4), col(row, 2), col(row, 3));
        if (is_true(row, 10))
                say(rc, "anchor %s: negative figure: total %s withdrawn %s available %s\n", a,
                    col(row, 2), col(row, 3), col(row, 4));
}

int reconcile_check_balances(struct reconcile *rc)
{
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long found;

        if (!(res = reconcile_query(rc, "SELECT COUNT(*) FROM settlement")))
                return -1;
        row = mysql_fetch_row(res);
        reconcile_heading(rc, 3, "balances", "settlement balances, all time (%s anchors)\n",
                          row ? col(row, 0) : "?");
        mysql_free_result(res);
        found = findings(rc, balances_sql, print_balance);
        return verdict(rc, found);
}

/* ------------------------------------------------------------------ 4. Redis room figures */

/* Room figures, all time; room ids compared byte for byte, as Redis keys are. */
static const char rooms_sql[] =
        "SELECT room_id, SUM(amount), COUNT(*) FROM recharge GROUP BY room_id COLLATE utf8mb4_bin";

/* The rooms of rooms_sql, kept for the reverse check (pointers into the result set). */
struct rooms {
        MYSQL_RES *res;
        const char **ids; /* sorted with strcmp */
        size_t cnt;
};

static int compare_ids(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *reply_str(const redisReply *r, char *buf, size_t buf_size)
{
        if (r->type == REDIS_REPLY_STRING)
                return r->str;
        if (r->type == REDIS_REPLY_INTEGER) {
                snprintf(buf, buf_size, "%lld", r->integer);
                return buf;
        }
        return NULL;
}

/* Compares one room's row with its two values in an MGET reply. @returns the findings (0..1). */
static long long compare_room(struct reconcile *rc, const MYSQL_ROW row, const redisReply *earnings,
                              const redisReply *count, long long shown)
{
        char b1[32], b2[32];
        const char *e = reply_str(earnings, b1, sizeof(b1)), *c = reply_str(count, b2, sizeof(b2));

        if (e && c && strcmp(e, col(row, 1)) == 0 && strcmp(c, col(row, 2)) == 0)
                return 0;
        if (shown < rc->limit)
                say(rc, "room %s: Redis earnings %s recharge_count %s, recharge sum %s count %s\n",
                    col(row, 0), e ? e : "missing", c ? c : "missing", col(row, 1), col(row, 2));
        return 1;
}

/* One MGET for n rooms. @returns the findings, or -1 after saying why on stderr. */
static long long compare_batch(struct reconcile *rc, MYSQL_ROW *rows, size_t n, long long shown)
{
        char keys[2 * REDIS_BATCH][ROOM_KEY_MAX];
        const char *argv[1 + 2 * REDIS_BATCH] = {"MGET"};
        char err[256];
        redisReply *r;
        long long found = 0;

        for (size_t i = 0; i < n; i++) {
                snprintf(keys[2 * i], ROOM_KEY_MAX, "%s%s", earnings_prefix, rows[i][0]);
                snprintf(keys[2 * i + 1], ROOM_KEY_MAX, "%s%s", count_prefix, rows[i][0]);
                argv[1 + 2 * i] = keys[2 * i];
                argv[2 + 2 * i] = keys[2 * i + 1];
        }
        if (!(r = redis_conn_cmd(rc->redis, (int)(1 + 2 * n), argv, NULL, err, sizeof(err)))) {
                fprintf(stderr, "%s: %s\n", PROG, err);
                return -1;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 * n)
                for (size_t i = 0; i < n; i++)
                        found += compare_room(rc, rows[i], r->element[2 * i], r->element[2 * i + 1],
                                              shown + found);
        else
                found = -1;
        freeReplyObject(r);
        if (found < 0)
                fprintf(stderr, "%s: redis: unexpected MGET reply\n", PROG);
        return found;
}

/* Every room of recharge against its two Redis keys; fills rooms for the reverse check. */
static long long compare_rooms(struct reconcile *rc, struct rooms *rooms)
{
        MYSQL_ROW batch[REDIS_BATCH], row;
        size_t n = 0;
        long long found = 0, f;

        if (!(rooms->res = reconcile_query(rc, rooms_sql)))
                return -1;
        if (!(rooms->ids = calloc(mysql_num_rows(rooms->res) + 1, sizeof(*rooms->ids)))) {
                fprintf(stderr, "%s: out of memory\n", PROG);
                return -1;
        }
        while ((row = mysql_fetch_row(rooms->res))) {
                rooms->ids[rooms->cnt++] = row[0];
                batch[n++] = row;
                if (n < REDIS_BATCH)
                        continue;
                if ((f = compare_batch(rc, batch, n, found)) < 0)
                        return -1;
                found += f;
                n = 0;
        }
        if (n && (f = compare_batch(rc, batch, n, found)) < 0)
                return -1;
        if (n)
                found += f;
        qsort(rooms->ids, rooms->cnt, sizeof(*rooms->ids), compare_ids);
        return found;
}

/* The room of a live:room:earnings: or live:room:recharge_count: key, or NULL. */
static const char *room_of_key(const char *key)
{
        if (strncmp(key, earnings_prefix, sizeof(earnings_prefix) - 1) == 0)
                return key + sizeof(earnings_prefix) - 1;
        if (strncmp(key, count_prefix, sizeof(count_prefix) - 1) == 0)
                return key + sizeof(count_prefix) - 1;
        return NULL;
}

/* Keys of rooms that recharge has never seen (SCAN, so the server is not blocked). */
static long long orphan_keys(struct reconcile *rc, const struct rooms *rooms, long long shown)
{
        const char *argv[] = {"SCAN", "0", "MATCH", "live:room:*", "COUNT", "1000"};
        char cursor[32] = "0", err[256];
        long long found = 0;

        do {
                redisReply *r;

                argv[1] = cursor;
                if (!(r = redis_conn_cmd(rc->redis, 6, argv, NULL, err, sizeof(err)))) {
                        fprintf(stderr, "%s: %s\n", PROG, err);
                        return -1;
                }
                if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                    r->element[0]->type != REDIS_REPLY_STRING ||
                    r->element[1]->type != REDIS_REPLY_ARRAY) {
                        freeReplyObject(r);
                        fprintf(stderr, "%s: redis: unexpected SCAN reply\n", PROG);
                        return -1;
                }
                snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
                for (size_t i = 0; i < r->element[1]->elements; i++) {
                        const redisReply *k = r->element[1]->element[i];
                        const char *room =
                                k->type == REDIS_REPLY_STRING ? room_of_key(k->str) : NULL;

                        if (!room || bsearch(&room, rooms->ids, rooms->cnt, sizeof(*rooms->ids),
                                             compare_ids))
                                continue;
                        if (shown + found++ < rc->limit)
                                say(rc, "room %s: Redis has %s, recharge has no tip for the room\n",
                                    room, k->str);
                }
                freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
        return found;
}

int reconcile_check_redis(struct reconcile *rc)
{
        struct rooms rooms = {0};
        long long found, orphans = 0;

        reconcile_heading(rc, 4, "redis_rooms", "Redis room figures vs recharge, all time\n");
        if (!rc->redis) {
                say(rc, "skipped (--no-redis)\n");
                return 0;
        }
        found = compare_rooms(rc, &rooms);
        if (found >= 0 && (orphans = orphan_keys(rc, &rooms, found)) < 0)
                found = -1;
        else if (found >= 0)
                found += orphans;
        if (found > rc->limit)
                say(rc, "... and %lld more\n", found - rc->limit);
        say(rc, "%zu rooms in recharge\n", rooms.cnt);
        free(rooms.ids);
        if (rooms.res)
                mysql_free_result(rooms.res);
        return verdict(rc, found);
}
