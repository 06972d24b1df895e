/* reconcile.c: recharge, settlement_detail, hourly_reward_stats, settlement and Redis compared; the
 * differences reported (text or --json). The money checks are in reconcile_money.c, the
 * live-stream and topic checks in reconcile_live.c. */
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

#define DEFAULT_LIMIT           20
#define MYSQL_CONNECT_TIMEOUT_S 10
#define MYSQL_READ_TIMEOUT_S    600 /* the all-time sums read whole tables */
#define REDIS_TIMEOUT_MS        5000
#define say                     reconcile_say
#define verdict                 reconcile_verdict

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

void reconcile_format_time(long long t, const char *fmt, char *out, size_t out_size)
{
        time_t tt = (time_t)t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || !strftime(out, out_size, fmt, &tm))
                snprintf(out, out_size, "@%lld", t);
}

/* ------------------------------------------------------------------ MySQL */

/* @returns the query's result, which the caller frees, or NULL after saying why on stderr. */
MYSQL_RES *reconcile_query(struct reconcile *rc, const char *sql)
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

        reconcile_format_time(rc->from_s, "%Y-%m-%d %H:%M:%S", from, sizeof(from));
        reconcile_format_time(rc->to_s, "%Y-%m-%d %H:%M:%S", to, sizeof(to));
        reconcile_format_time(rc->from_s / HOUR_S * HOUR_S, "%Y-%m-%d %H:%M:%S", hfrom,
                              sizeof(hfrom));
        reconcile_format_time(hour_to, "%Y-%m-%d %H:%M:%S", hto, sizeof(hto));
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
        if (begin_snapshot(rc) == -1 || reconcile_check_details(rc) == -1 ||
            reconcile_check_hourly(rc) == -1 || reconcile_check_balances(rc) == -1 ||
            reconcile_check_redis(rc) == -1 || reconcile_check_streams(rc) == -1 ||
            reconcile_check_topic(rc) == -1)
                return RECONCILE_ERROR;
        return rc->differences ? RECONCILE_DIFFER : RECONCILE_AGREE;
}

/* The text report's first and last lines, or the whole JSON document. */
static void report_open(const struct reconcile *rc)
{
        char from[24], to[24];

        reconcile_format_time(rc->from_s, "%Y-%m-%dT%H:%M:%SZ", from, sizeof(from));
        reconcile_format_time(rc->to_s, "%Y-%m-%dT%H:%M:%SZ", to, sizeof(to));
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
        reconcile_format_time(rc->from_s, "%Y-%m-%dT%H:%M:%SZ", from, sizeof(from));
        reconcile_format_time(rc->to_s, "%Y-%m-%dT%H:%M:%SZ", to, sizeof(to));
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
