/* test_stats_cmd.c: `liveflow-ctl stats` against the fixture MariaDB: sums by time, genders and
 * profile dimensions over tables filled here, usage and connection errors. */
#include <mysql.h>

#include "ctl_run.h"

static char out[65536];

static struct {
        char mysql_url[512], prefix[48];
        MYSQL *mysql;
} fx;

/* One tip in both tables, as liveflow-stats would count it. */
static void tip(int n, const char *hour, const char *anchor, const char *ag, const char *audience,
                const char *ug, long long amount)
{
        ctl_sql(fx.mysql,
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, "
                "amount, gift_count, anchor_gender, audience_gender, tipped_at, hour) VALUES "
                "('t%d', SHA2('t%d', 256), '%s', '%s', '%s', %lld, 1, '%s', '%s', '%s', '%s')",
                n, n, audience, anchor, anchor, amount, ag, ug, hour, hour);
        ctl_sql(fx.mysql,
                "INSERT INTO hourly_reward_stats (hour, anchor_id, anchor_gender, "
                "audience_gender, amount_sum, reward_count) VALUES ('%s', '%s', '%s', '%s', "
                "%lld, 1) ON DUPLICATE KEY UPDATE amount_sum = amount_sum + VALUES(amount_sum), "
                "reward_count = reward_count + 1",
                hour, anchor, ag, ug, amount);
}

static void setup(void)
{
        support_unique_name("cs", fx.prefix, sizeof(fx.prefix));
        fx.mysql = ctl_env_database(fx.mysql_url, sizeof(fx.mysql_url));
        ctl_sql(fx.mysql, "INSERT INTO anchors (anchor_id, gender, region, age_band) VALUES "
                          "('f1', 'female', 'north', '18-24'), ('m1', 'male', 'south', '25-34')");
        ctl_sql(fx.mysql,
                "INSERT INTO audiences (audience_id, gender, region, audience_type) VALUES "
                "('u1', 'male', 'east', 'registered'), ('u2', 'female', 'west', 'guest')");
        ctl_sql(fx.mysql, "INSERT INTO tags (name) VALUES ('music'), ('games')");
        ctl_sql(fx.mysql, "INSERT INTO anchor_tags SELECT 'f1', tag_id FROM tags");
        ctl_sql(fx.mysql,
                "INSERT INTO audience_tags SELECT 'u1', tag_id FROM tags WHERE name = 'games'");
        tip(1, "2026-03-01 10:00:00", "f1", "female", "u1", "male", 100);
        tip(2, "2026-03-01 10:00:00", "f1", "female", "u2", "female", 40);
        tip(3, "2026-03-01 11:00:00", "m1", "male", "u1", "male", 7);
        tip(4, "2026-03-01 11:00:00", "f1", "female", "u1", "male", 3);
        tip(5, "2026-03-02 09:00:00", "m1", "male", "u2", "female", 1000); /* outside */
}

static void teardown(void)
{
        if (fx.mysql)
                mysql_close(fx.mysql);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(ctl_stats, .init = setup, .fini = teardown, .timeout = 60);

#define RANGE "--from 2026-03-01T00:00Z --to 2026-03-02T00:00Z"

/* The rows of a --json answer as "dim=value,...:amount/tips" lines, in order. */
static void rows_text(const char *json, char *buf, size_t size)
{
        json_t *doc = json_loads(json, 0, NULL), *r, *v;
        size_t i, n = 0;
        const char *k;

        cr_assert(doc, "not JSON: %s", json);
        buf[0] = '\0';
        json_array_foreach(json_object_get(doc, "rows"), i, r)
        {
                json_object_foreach(r, k, v)
                {
                        if (json_is_string(v))
                                n += (size_t)snprintf(buf + n, size - n, "%s=%s,", k,
                                                      json_string_value(v));
                }
                n += (size_t)snprintf(buf + n, size - n, ":%lld/%lld;",
                                      (long long)json_integer_value(json_object_get(r, "amount")),
                                      (long long)json_integer_value(json_object_get(r, "tips")));
        }
        json_decref(doc);
}

/* `liveflow-ctl stats --json RANGE ARGS`, which must exit 0: its rows_text() (the answer
 * stays in out). */
static const char *stats_rows(const char *args)
{
        static char rows[4096];

        cr_assert_eq(ctl_run(out, sizeof(out), "stats --json " RANGE " %s", args), 0, "%s",
                     ctl_run_stderr);
        rows_text(out, rows, sizeof(rows));
        return rows;
}

Test(ctl_stats, sums_by_genders_hours_and_profile_dimensions)
{
        cr_assert_str_eq(stats_rows(""), ":150/4;");
        cr_assert(strstr(out, "\"source\":\"hourly_reward_stats\""), "%s", out);
        cr_assert_str_eq(stats_rows("--by anchor_gender,audience_gender"),
                         "anchor_gender=male,audience_gender=male,:7/1;"
                         "anchor_gender=female,audience_gender=male,:103/2;"
                         "anchor_gender=female,audience_gender=female,:40/1;");
        cr_assert_str_eq(stats_rows("--by hour --where anchor_gender=female"),
                         "hour=2026-03-01T10:00Z,:140/2;hour=2026-03-01T11:00Z,:3/1;");
        cr_assert_str_eq(stats_rows("--by anchor_region"),
                         "anchor_region=north,:143/3;anchor_region=south,:7/1;");

        /* Audience dimensions read the ledger; a tag counts each tip of its people. */
        cr_assert_str_eq(stats_rows("--by audience_type --where anchor_tag=music"),
                         "audience_type=guest,:40/1;audience_type=registered,:103/2;");
        cr_assert(strstr(out, "\"source\":\"stats_tip\""), "%s", out);
        cr_assert_str_eq(stats_rows("--by audience_tag"),
                         "audience_tag=(none),:40/1;audience_tag=games,:110/3;");

        /* The human table names the columns and the sums. */
        cr_assert_eq(ctl_run(out, sizeof(out), "stats " RANGE " --by audience_region"), 0);
        cr_assert(strstr(out, "audience_region") && strstr(out, "east") && strstr(out, "110"), "%s",
                  out);
}

Test(ctl_stats, bad_arguments_and_an_unreachable_store_are_usage_errors)
{
        cr_assert_eq(ctl_run(out, sizeof(out), "stats --by shoe_size"), 2);
        cr_assert(strstr(ctl_run_stderr, "shoe_size"), "%s", ctl_run_stderr);
        cr_assert_eq(ctl_run(out, sizeof(out), "stats --where anchor_gender"), 2);
        cr_assert_eq(ctl_run(out, sizeof(out), "stats --from tomorrowish"), 2);
        cr_assert_eq(ctl_run(out, sizeof(out), "stats --from now --to -1h"), 2);
        cr_assert_eq(ctl_run(out, sizeof(out), "stats --help"), 0);
        cr_assert(strstr(out, "audience_tag"), "%s", out);
        setenv("LIVEFLOW_MYSQL_URL", "mysql://nobody:x@127.0.0.1:1/none", 1);
        cr_assert_eq(ctl_run(out, sizeof(out), "stats"), 2);
}
