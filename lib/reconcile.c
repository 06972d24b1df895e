/* reconcile.c: recharge, settlement_detail, hourly_reward_stats, settlement and Redis compared; the
 * differences reported (text or --json). The live-stream and topic checks are in
 * reconcile_live.c. */
#include "reconcile.h"

#include <ctype.h>
#include <stdarg.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "contract.h"
#include "db.h"
#include "reconcile_check.h"
#include "redis_conn.h"
#include "url.h"

#define PROG                    "reconcile"
#define DEFAULT_LIMIT           20
#define HOUR_S                  3600LL
#define MYSQL_CONNECT_TIMEOUT_S 10
#define MYSQL_READ_TIMEOUT_S    600 /* the all-time sums read whole tables */
#define REDIS_TIMEOUT_MS        5000
#define REDIS_BATCH             128 /* rooms per MGET */
#define say     reconcile_say
#define verdict reconcile_verdict
#define ROOM_KEY_MAX            128 /* LF_KEY_ROOM_RECHARGE_COUNT + a 64-byte room_id */

static const char earnings_prefix[] = LF_KEY_ROOM_EARNINGS;
static const char count_prefix[] = LF_KEY_ROOM_RECHARGE_COUNT;

struct options {
        const char *from;
        const char *to;
        const char *reward_topic;
        long long limit;
        bool no_redis, no_topic, json;
        bool help;
};

/* ------------------------------------------------------------------ times */

/* Reads exactly n digits. */
static bool read_digits(const char **p, int n, int *out)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char)(*p)[i]))
                        return false;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *out = v;
        return true;
}

static int days_in_month(int y, int m)
{
        static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool is_leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

        return m == 2 && is_leap ? 29 : days[m - 1];
}

/* "", "Z", "+hh:mm", "+hhmm", "+hh" or the same with '-': seconds east of UTC. */
static int parse_zone(const char *p, long long *offset_s)
{
        int sign, h, m = 0;

        *offset_s = 0;
        if (!*p || (p[0] == 'Z' && !p[1]))
                return 0;
        if (*p != '+' && *p != '-')
                return -1;
        sign = *p++ == '-' ? -1 : 1;
        if (!read_digits(&p, 2, &h))
                return -1;
        if (*p == ':')
                p++;
        if (*p && !read_digits(&p, 2, &m))
                return -1;
        if (*p || h > 23 || m > 59)
                return -1;
        *offset_s = sign * (h * HOUR_S + m * 60LL);
        return 0;
}

static int parse_iso(const char *s, long long *unix_s)
{
        const char *p = s;
        int y, mo, d, h = 0, mi = 0, sec = 0;
        long long offset_s;
        struct tm tm = {0};

        if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
            !read_digits(&p, 2, &d))
                return -1;
        if (*p == 'T' || *p == ' ') {
                p++;
                if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi))
                        return -1;
                if (*p == ':' && (p++, !read_digits(&p, 2, &sec)))
                        return -1;
                if (*p == '.' && isdigit((unsigned char)p[1]))
                        for (p++; isdigit((unsigned char)*p); p++)
                                ; /* fractions of a second: the range is in whole seconds */
        }
        if (parse_zone(p, &offset_s) == -1 || mo < 1 || mo > 12 || d < 1 ||
            d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
                return -1;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        *unix_s = (long long)timegm(&tm) - offset_s;
        return 0;
}

int reconcile_parse_time(const char *s, long long *unix_s)
{
        size_t n = strspn(s, "0123456789");

        if (n > 0 && n <= 12 && !s[n]) {
                *unix_s = strtoll(s, NULL, 10);
                return 0;
        }
        return parse_iso(s, unix_s);
}

static void format_time(long long t, const char *fmt, char *out, size_t out_size)
{
        time_t tt = (time_t)t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || !strftime(out, out_size, fmt, &tm))
                snprintf(out, out_size, "@%lld", t);
}

/* ------------------------------------------------------------------ MySQL */

/* @returns the query's result, which the caller frees, or NULL after saying why on stderr. */
static MYSQL_RES *query(struct reconcile *rc, const char *sql)
{
        MYSQL_RES *res;

        if (mysql_query(rc->mysql, sql) == 0 && (res = mysql_store_result(rc->mysql)))
                return res;
        fprintf(stderr, "%s: mysql: %s\n  in: %.160s\n", PROG, mysql_error(rc->mysql), sql);
        return NULL;
}

static int exec(struct reconcile *rc, const char *sql)
{
        if (mysql_query(rc->mysql, sql) == 0)
                return 0;
        fprintf(stderr, "%s: mysql: %s\n  in: %.160s\n", PROG, mysql_error(rc->mysql), sql);
        return -1;
}

static MYSQL *mysql_connect_url(const char *url)
{
        unsigned int connect_s = MYSQL_CONNECT_TIMEOUT_S, read_s = MYSQL_READ_TIMEOUT_S;
        struct mysql_url u;
        char err[256];
        MYSQL *mysql;

        if (url_parse_mysql(url, &u, err, sizeof(err)) == -1) {
                fprintf(stderr, "%s: LIVEFLOW_MYSQL_URL: %s\n", PROG, err);
                return NULL;
        }
        if (!(mysql = mysql_init(NULL))) {
                fprintf(stderr, "%s: out of memory\n", PROG);
                return NULL;
        }
        mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
        mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &read_s);
        mysql_options(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        mysql_options(mysql, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
        if (!mysql_real_connect(mysql, u.socket[0] ? NULL : u.host, u.user, u.password, u.database,
                                u.port, u.socket[0] ? u.socket : NULL, 0)) {
                fprintf(stderr, "%s: mysql %s:%u: %s\n", PROG, u.socket[0] ? u.socket : u.host,
                        u.port, mysql_error(mysql));
                mysql_close(mysql);
                return NULL;
        }
        return mysql;
}

/*
 * Every MySQL check reads one consistent snapshot, so a tip committed while the report runs
 * cannot show up in one table and not yet in another. @from/@to hold the range, @hfrom/@hto
 * the range widened to whole hours (hourly_reward_stats has no finer grain).
 */
static int begin_snapshot(struct reconcile *rc)
{
        char from[24], to[24], hfrom[24], hto[24], sql[256];
        long long hour_to = (rc->to_s + HOUR_S - 1) / HOUR_S * HOUR_S;

        format_time(rc->from_s, "%Y-%m-%d %H:%M:%S", from, sizeof(from));
        format_time(rc->to_s, "%Y-%m-%d %H:%M:%S", to, sizeof(to));
        format_time(rc->from_s / HOUR_S * HOUR_S, "%Y-%m-%d %H:%M:%S", hfrom, sizeof(hfrom));
        format_time(hour_to, "%Y-%m-%d %H:%M:%S", hto, sizeof(hto));
        snprintf(sql, sizeof(sql),
                 "SET @from = CAST('%s' AS DATETIME(3)), @to = CAST('%s' AS DATETIME(3)), "
                 "@hfrom = CAST('%s' AS DATETIME(3)), @hto = CAST('%s' AS DATETIME(3))",
                 from, to, hfrom, hto);
        return exec(rc, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ") == 0 &&
                               exec(rc, sql) == 0 &&
                               exec(rc, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY") ==
                                       0
                       ? 0
                       : -1;
}

/* ------------------------------------------------------------------ reporting */

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
static long long findings(struct reconcile *rc, const char *sql, void (*print)(struct reconcile *rc, const MYSQL_ROW row))
{
        MYSQL_RES *res = query(rc, sql);

        return res ? list_rows(rc, res, print) : -1;
}

/* One line without its newline: what say() and heading() were given. */
static void format_line(char *out, size_t out_size, const char *fmt, va_list ap)
{
        size_t n;

        vsnprintf(out, out_size, fmt, ap);
        n = strlen(out);
        if (n && out[n - 1] == '\n')
                out[n - 1] = '\0';
}

void reconcile_heading(struct reconcile *rc, int n, const char *name, const char *fmt, ...)
{
        char title[512];
        va_list ap;

        va_start(ap, fmt);
        format_line(title, sizeof(title), fmt, ap);
        va_end(ap);
        if (!rc->json) {
                printf("[%d] %s\n", n, title);
                return;
        }
        rc->check = json_pack("{s:s,s:s,s:[]}", "check", name, "title", title, "lines");
        json_array_append_new(rc->checks, rc->check);
}

void reconcile_say(struct reconcile *rc, const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        format_line(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (!rc->json)
                printf("    %s\n", line);
        else if (rc->check)
                json_array_append_new(json_object_get(rc->check, "lines"), json_string(line));
}

int reconcile_verdict(struct reconcile *rc, long long found)
{
        if (found < 0)
                return -1;
        if (found == 0)
                say(rc, "ok\n");
        else
                say(rc, "DIFFERENT: %lld finding(s)\n", found);
        if (rc->json && rc->check)
                json_object_set_new(rc->check, "differences", json_integer(found));
        rc->differences += found;
        return 0;
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
                say(rc, "tip %s (anchor %s, amount %s): in settlement_detail, missing from recharge\n",
                       col(row, 0), col(row, 3), col(row, 4));
        else if (!row[3])
                say(rc, "tip %s (anchor %s, amount %s): in recharge, missing from settlement_detail\n",
                       col(row, 0), col(row, 1), col(row, 2));
        else
                say(rc, "tip %s: recharge has anchor %s amount %s, settlement_detail anchor %s amount %s\n",
                       col(row, 0), col(row, 1), col(row, 2), col(row, 3), col(row, 4));
}

static void print_split(struct reconcile *rc, const MYSQL_ROW row)
{
        say(rc, "tip %s (anchor %s): amount %s at ratio_bp %s split %s + %s, the rule gives the anchor %s\n",
               col(row, 0), col(row, 1), col(row, 2), col(row, 3), col(row, 4), col(row, 5),
               col(row, 6));
}

static int check_details(struct reconcile *rc)
{
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long found = 0;

        reconcile_heading(rc, 1, "details", "recharge vs settlement_detail, tips in the range\n");
        if (!(res = query(rc, details_totals_sql)))
                return -1;
        if ((row = mysql_fetch_row(res))) {
                say(rc, "recharge %s tips sum %s, settlement_detail %s tips sum %s\n",
                       col(row, 0), col(row, 1), col(row, 2), col(row, 3));
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

static int check_hourly(struct reconcile *rc)
{
        char hfrom[24], hto[24];
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long found = 0;

        format_time(rc->from_s / HOUR_S * HOUR_S, "%Y-%m-%dT%H:%M:%SZ", hfrom, sizeof(hfrom));
        format_time((rc->to_s + HOUR_S - 1) / HOUR_S * HOUR_S, "%Y-%m-%dT%H:%M:%SZ", hto,
                    sizeof(hto));
        reconcile_heading(rc, 2, "hourly", "recharge vs hourly_reward_stats, whole hours [%s, %s)\n", hfrom, hto);
        if (!(res = query(rc, hourly_totals_sql)))
                return -1;
        if ((row = mysql_fetch_row(res))) {
                say(rc, "recharge %s tips sum %s, hourly_reward_stats %s tips sum %s\n",
                       col(row, 0), col(row, 1), col(row, 2), col(row, 3));
                if (strcmp(col(row, 4), "0") == 0 && strcmp(col(row, 0), "0") != 0)
                        say(rc, "hourly_reward_stats has no row for these hours (is the stats worker running?)\n");
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
                say(rc, "anchor %s: no settlement row, but SUM(settlement_detail.anchor_amount) %s and "
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

static int check_balances(struct reconcile *rc)
{
        MYSQL_RES *res;
        MYSQL_ROW row;
        long long found;

        if (!(res = query(rc, "SELECT COUNT(*) FROM settlement")))
                return -1;
        row = mysql_fetch_row(res);
        reconcile_heading(rc, 3, "balances", "settlement balances, all time (%s anchors)\n", row ? col(row, 0) : "?");
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
static long long compare_room(struct reconcile *rc, const MYSQL_ROW row,
                              const redisReply *earnings, const redisReply *count, long long shown)
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

        if (!(rooms->res = query(rc, rooms_sql)))
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

static int check_redis(struct reconcile *rc)
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

/* ------------------------------------------------------------------ the subcommand */

const char reconcile_usage[] =
        "usage: liveflow-ctl reconcile [--from T] [--to T] [--limit N] [--no-redis] [--no-topic]\n"
        "                              [--reward-topic TOPIC] [--json]\n"
        "       (liveflow-settlement reconcile is the same command)\n"
        "  T: Unix seconds, or ISO 8601 (2026-01-01T08:00:00Z, 2026-01-01T16:00:00+08:00, 2026-01-01)\n"
        "  default range: everything up to now; --from alone: until now\n"
        "  checks: [1] recharge vs settlement_detail, [2] vs hourly_reward_stats, [3] balances,\n"
        "  [4] Redis room figures, [5] set:live:online and hash:anchor:status:* vs live_streams,\n"
        "  [6] every tip of live.reward in the range is in each ledger or its group's DLQ\n"
        "  (needs LIVEFLOW_KAFKA_BOOTSTRAP; --no-topic skips it, --no-redis skips 4 and 5)\n"
        "  reads LIVEFLOW_MYSQL_URL, LIVEFLOW_REDIS_URL, LIVEFLOW_KAFKA_BOOTSTRAP\n"
        "  exit 0: everything agrees, 1: a difference (listed), 2: usage or connection error\n";

static void usage(FILE *f)
{
        fputs(reconcile_usage, f);
}

/* "--name value" or "--name=value": *value set and *i advanced. */
static bool option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
        size_t n = strlen(name);

        if (strncmp(argv[*i], name, n) != 0)
                return false;
        if (argv[*i][n] == '=') {
                *value = argv[*i] + n + 1;
                return true;
        }
        if (argv[*i][n] || *i + 1 >= argc)
                return false;
        *value = argv[++*i];
        return true;
}

static bool flag(const char *arg, const char *name, bool *out)
{
        if (strcmp(arg, name) != 0)
                return false;
        *out = true;
        return true;
}

static int parse_options(int argc, char **argv, struct options *o)
{
        const char *limit = NULL;
        char *end;

        *o = (struct options){.limit = DEFAULT_LIMIT, .reward_topic = LF_TOPIC_REWARD};
        for (int i = 1; i < argc; i++) {
                if (!flag(argv[i], "--help", &o->help) && !flag(argv[i], "-h", &o->help) &&
                    !flag(argv[i], "--no-redis", &o->no_redis) &&
                    !flag(argv[i], "--no-topic", &o->no_topic) &&
                    !flag(argv[i], "--json", &o->json) &&
                    !option_value(argc, argv, &i, "--from", &o->from) &&
                    !option_value(argc, argv, &i, "--to", &o->to) &&
                    !option_value(argc, argv, &i, "--reward-topic", &o->reward_topic) &&
                    !option_value(argc, argv, &i, "--limit", &limit)) {
                        fprintf(stderr, "%s: unknown or incomplete option %s\n", PROG, argv[i]);
                        return -1;
                }
        }
        if (limit && ((o->limit = strtoll(limit, &end, 10)) < 0 || *end || !*limit)) {
                fprintf(stderr, "%s: --limit %s is not a count\n", PROG, limit);
                return -1;
        }
        return 0;
}

/*
 * By default everything up to now: straight after an incident the incident is in range, and so
 * is a difference left from any earlier one.
 */
static int resolve_range(const struct options *o, struct reconcile *rc)
{
        rc->to_s = (long long)time(NULL) + 1;
        if (o->to && reconcile_parse_time(o->to, &rc->to_s) == -1) {
                fprintf(stderr, "%s: --to %s is not Unix seconds or ISO 8601\n", PROG, o->to);
                return -1;
        }
        rc->from_s = 0;
        if (o->from && reconcile_parse_time(o->from, &rc->from_s) == -1) {
                fprintf(stderr, "%s: --from %s is not Unix seconds or ISO 8601\n", PROG, o->from);
                return -1;
        }
        if (rc->from_s >= rc->to_s) {
                fprintf(stderr, "%s: --from must be before --to\n", PROG);
                return -1;
        }
        return 0;
}

static int connect_stores(const struct options *o, struct reconcile *rc)
{
        const char *mysql_url = getenv("LIVEFLOW_MYSQL_URL"),
                   *redis_url = getenv("LIVEFLOW_REDIS_URL"),
                   *bootstrap = getenv("LIVEFLOW_KAFKA_BOOTSTRAP");
        char err[256];

        if (!mysql_url || !*mysql_url || (!o->no_redis && (!redis_url || !*redis_url))) {
                fprintf(stderr, "%s: %s is not set%s\n", PROG,
                        !mysql_url || !*mysql_url ? "LIVEFLOW_MYSQL_URL" : "LIVEFLOW_REDIS_URL",
                        !mysql_url || !*mysql_url ? "" : " (or pass --no-redis)");
                return -1;
        }
        if (!(rc->mysql = mysql_connect_url(mysql_url)))
                return -1;
        if (!(rc->db = db_new(mysql_url, MYSQL_CONNECT_TIMEOUT_S, err, sizeof(err)))) {
                fprintf(stderr, "%s: %s\n", PROG, err);
                return -1;
        }
        if (!o->no_redis &&
            !(rc->redis = redis_conn_new(redis_url, REDIS_TIMEOUT_MS, err, sizeof(err)))) {
                fprintf(stderr, "%s: %s\n", PROG, err);
                return -1;
        }
        rc->bootstrap = !o->no_topic && bootstrap && *bootstrap ? bootstrap : NULL;
        rc->reward_topic = o->reward_topic;
        return 0;
}

static int run_checks(struct reconcile *rc)
{
        if (begin_snapshot(rc) == -1 || check_details(rc) == -1 || check_hourly(rc) == -1 ||
            check_balances(rc) == -1 || check_redis(rc) == -1 ||
            reconcile_check_streams(rc) == -1 || reconcile_check_topic(rc) == -1)
                return RECONCILE_ERROR;
        return rc->differences ? RECONCILE_DIFFER : RECONCILE_AGREE;
}

/* The text report's first and last lines, or the whole JSON document. */
static void report_open(const struct reconcile *rc)
{
        char from[24], to[24];

        format_time(rc->from_s, "%Y-%m-%dT%H:%M:%SZ", from, sizeof(from));
        format_time(rc->to_s, "%Y-%m-%dT%H:%M:%SZ", to, sizeof(to));
        if (!rc->json)
                printf("liveflow reconcile: range [%s, %s)\n", from, to);
}

static void report_close(const struct reconcile *rc, int status)
{
        static const char *const results[] = {"agree", "differ", "error"};
        char from[24], to[24];
        json_t *doc;

        if (!rc->json) {
                if (status == RECONCILE_AGREE)
                        printf("result: all agree\n");
                else if (status == RECONCILE_DIFFER)
                        printf("result: %lld difference(s)\n", rc->differences);
                else
                        printf("result: error, see stderr\n");
                return;
        }
        format_time(rc->from_s, "%Y-%m-%dT%H:%M:%SZ", from, sizeof(from));
        format_time(rc->to_s, "%Y-%m-%dT%H:%M:%SZ", to, sizeof(to));
        doc = json_pack("{s:s,s:s,s:s,s:I,s:O}", "from", from, "to", to, "result", results[status],
                        "differences", (json_int_t)rc->differences, "checks", rc->checks);
        json_dumpf(doc, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(doc);
}

int reconcile_main(int argc, char **argv)
{
        struct options o;
        struct reconcile rc = {0};
        int status = RECONCILE_ERROR;

        if (parse_options(argc, argv, &o) == -1) {
                usage(stderr);
                return RECONCILE_ERROR;
        }
        if (o.help) {
                usage(stdout);
                return RECONCILE_AGREE;
        }
        rc.limit = o.limit;
        rc.json = o.json;
        rc.checks = json_array();
        if (resolve_range(&o, &rc) == 0) {
                report_open(&rc);
                if (connect_stores(&o, &rc) == 0)
                        status = run_checks(&rc);
                report_close(&rc, status);
        }
        fflush(stdout);
        json_decref(rc.checks);
        if (rc.mysql)
                mysql_close(rc.mysql);
        db_destroy(rc.db);
        redis_conn_destroy(rc.redis);
        return status;
}
