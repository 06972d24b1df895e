/* test_share.c: `liveflow-ctl share set|list` against the fixture MariaDB: validation, dry run,
 * --execute with its history row, backdating, and the refusal to reprice settled tips. */
#include <mysql.h>
#include <time.h>

#include "ctl_run.h"

static char out[65536];

static struct {
        char mysql_url[512], prefix[48], anchor[64];
        MYSQL *mysql;
} fx;

static void setup(void)
{
        support_unique_name("sh", fx.prefix, sizeof(fx.prefix));
        snprintf(fx.anchor, sizeof(fx.anchor), "%s_a", fx.prefix);
        fx.mysql = ctl_env_database(fx.mysql_url, sizeof(fx.mysql_url));
        setenv("USER", "alice", 1);
}

static void teardown(void)
{
        if (fx.mysql)
                mysql_close(fx.mysql);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(ctl_share, .init = setup, .fini = teardown, .timeout = 60);

static long long count(const char *fmt, const char *arg)
{
        return support_query_int(fx.mysql, fmt, arg);
}

/* An hour from now, as ISO 8601 UTC. */
static void in_an_hour(char *out_time, size_t size)
{
        time_t t = time(NULL) + 3600;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(out_time, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

Test(ctl_share, bad_input_is_a_usage_error)
{
        char later[32];

        in_an_hour(later, sizeof(later));
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %s 10001 --from %s", fx.anchor, later),
                     2);
        cr_assert(strstr(ctl_run_stderr, "0 to 10000"), "%s", ctl_run_stderr);
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %s -1 --from %s", fx.anchor, later), 2);
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %s 12.5 --from %s", fx.anchor, later), 2);
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %s 5000", fx.anchor), 2);
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %s 5000 --from soon", fx.anchor), 2);
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %s 5000 --from 2026-01-01 --execute",
                             fx.anchor),
                     2);
        cr_assert(strstr(ctl_run_stderr, "--backdate"), "%s", ctl_run_stderr);
        cr_assert_eq(ctl_run(out, sizeof(out),
                             "share set %s 5000 --from 2026-01-01 --backdate --execute", fx.anchor),
                     2);
        cr_assert(strstr(ctl_run_stderr, "--reason"), "%s", ctl_run_stderr);
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %0100d 5000 --from %s", 7, later), 2);
        cr_assert_eq(
                count("SELECT COUNT(*) FROM revenue_share WHERE anchor_id LIKE '%s%%'", fx.prefix),
                0);
}

Test(ctl_share, a_dry_run_writes_nothing_and_execute_records_who_and_why)
{
        char later[32];
        json_t *doc, *row;

        in_an_hour(later, sizeof(later));
        cr_assert_eq(
                ctl_run(out, sizeof(out), "--json share set %s 7000 --from %s", fx.anchor, later),
                0, "%s", ctl_run_stderr);
        doc = ctl_json(out);
        cr_assert(json_is_false(json_object_get(doc, "executed")));
        cr_assert(json_is_null(json_object_get(doc, "previous_bp")));
        json_decref(doc);
        cr_assert_eq(count("SELECT COUNT(*) FROM revenue_share WHERE anchor_id = '%s'", fx.anchor),
                     0, "a dry run wrote");

        cr_assert_eq(ctl_run(out, sizeof(out),
                             "share set %s 7000 --from %s --reason 'new contract' --execute",
                             fx.anchor, later),
                     0, "%s", ctl_run_stderr);
        cr_assert_eq(count("SELECT ratio_bp FROM revenue_share WHERE anchor_id = '%s'", fx.anchor),
                     7000);
        cr_assert_eq(count("SELECT COUNT(*) FROM revenue_share_history WHERE anchor_id = '%s' AND "
                           "changed_by LIKE 'alice@%%' AND reason = 'new contract' AND "
                           "previous_bp IS NULL AND is_backdated = 0",
                           fx.anchor),
                     1);
        /* The same ratio again: nothing to do, nothing recorded. */
        cr_assert_eq(ctl_run(out, sizeof(out), "share set %s 7000 --from %s --execute", fx.anchor,
                             later),
                     0);
        cr_assert(strstr(out, "nothing to do"), "%s", out);
        cr_assert_eq(count("SELECT COUNT(*) FROM revenue_share_history WHERE anchor_id = '%s'",
                           fx.anchor),
                     1);

        cr_assert_eq(ctl_run(out, sizeof(out), "share list %s --json", fx.anchor), 0);
        doc = ctl_json(out);
        cr_assert_eq(json_array_size(json_object_get(doc, "ratios")), 1, "%s", out);
        row = json_array_get(json_object_get(doc, "ratios"), 0);
        cr_assert_eq(json_integer_value(json_object_get(row, "ratio_bp")), 7000);
        cr_assert_str_eq(json_string_value(json_object_get(row, "reason")), "new contract");
        json_decref(doc);
        cr_assert_eq(ctl_run(out, sizeof(out), "share list"), 0);
        cr_assert(strstr(out, fx.anchor) && strstr(out, "alice@"), "%s", out);
}

Test(ctl_share, a_ratio_applied_to_settled_tips_is_never_rewritten)
{
        json_t *doc;

        /* 5000 bp since Jan 1st, and a tip settled at that ratio on Jan 2nd. */
        ctl_sql(fx.mysql, "SET time_zone = '+00:00'");
        ctl_sql(fx.mysql,
                "INSERT INTO revenue_share (anchor_id, effective_at, ratio_bp) VALUES "
                "('%s', '2026-01-01 00:00:00', 5000)",
                fx.anchor);
        ctl_sql(fx.mysql,
                "INSERT INTO settlement_detail (trace_id, anchor_id, amount, ratio_bp, "
                "anchor_amount, platform_amount, tipped_at) VALUES ('%s_t', '%s', 100, 5000, 50, "
                "50, '2026-01-02 10:00:00')",
                fx.prefix, fx.anchor);

        /* Backdated before the settled tip, or onto the row that priced it: refused. */
        cr_assert_eq(ctl_run(out, sizeof(out),
                             "--json share set %s 6000 --from 2026-01-02T00:00:00Z --backdate "
                             "--reason 'fix' --execute",
                             fx.anchor),
                     1, "%s", ctl_run_stderr);
        doc = ctl_json(out);
        cr_assert_eq(json_integer_value(json_object_get(doc, "settled_tips_repriced")), 1);
        cr_assert_eq(json_integer_value(json_object_get(doc, "previous_bp")), 5000);
        json_decref(doc);
        cr_assert_eq(
                ctl_run(out, sizeof(out),
                        "share set %s 6000 --from 2026-01-01 --backdate --reason fix --execute",
                        fx.anchor),
                1);
        cr_assert_eq(
                count("SELECT COUNT(*) FROM revenue_share WHERE anchor_id = '%s' AND ratio_bp = 6000",
                      fx.anchor),
                0);
        cr_assert_eq(count("SELECT COUNT(*) FROM revenue_share_history WHERE anchor_id = '%s'",
                           fx.anchor),
                     0);

        /* After the last settled tip it may be backdated, with its reason on record. */
        cr_assert_eq(ctl_run(out, sizeof(out),
                             "share set %s 6000 --from 2026-01-03 --backdate --reason "
                             "'contract signed on the 3rd' --execute",
                             fx.anchor),
                     0, "%s\n%s", out, ctl_run_stderr);
        cr_assert_eq(count("SELECT COUNT(*) FROM revenue_share_history WHERE anchor_id = '%s' AND "
                           "is_backdated = 1 AND previous_bp = 5000 AND ratio_bp = 6000",
                           fx.anchor),
                     1);
        cr_assert_eq(ctl_run(out, sizeof(out), "--json share list %s", fx.anchor), 0);
        doc = ctl_json(out);
        cr_assert_eq(json_array_size(json_object_get(doc, "ratios")), 2);
        cr_assert_eq(json_integer_value(json_object_get(
                             json_array_get(json_object_get(doc, "ratios"), 0), "settled_tips")),
                     1);
        json_decref(doc);
}
