/* test_profiles.c: the "profiles" role, run as its binary: profiles into anchors, audiences, tags.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "support.h"
#include "support_worker.h"

static struct {
        struct support_worker_fx w;
        int seq;
} fx;

static void setup(void)
{
        static const char *const topics[] = {"live.interaction", NULL};

        support_worker_fx_open(&fx.w, "pf");
        support_group_at_end(fx.w.group, topics);
        fx.w.pid = support_start_worker("liveflow-consumer", "profiles", fx.w.mysql_url, fx.w.group,
                                        NULL, fx.w.log_path, &fx.w.admin_port);
}

static void teardown(void)
{
        support_worker_fx_close(&fx.w);
        fx.seq = 0;
}

TestSuite(profiles, .init = setup, .fini = teardown, .timeout = 90);

/*
 * A profile as the receiver makes it. fields is a JSON object of the Profile's optional
 * fields (gender, age_band, region, audience_type, tags as JSON text). Copies with the same
 * event_id are the same event.
 */
static void produce(const char *event_id, const char *subject, const char *id, long long ts_ms,
                    const char *fields)
{
        char err[256], trace[33];
        json_t *p = json_loads(fields, 0, NULL);
        void *buf;
        size_t len;
        bool is_anchor = strcmp(subject, "anchor") == 0;

        cr_assert(p != NULL, "bad test fields %s", fields);
        json_object_set_new(p, "source_event_id", json_string(event_id));
        json_object_set_new(p, "subject", json_string(subject));
        json_object_set_new(p, "subject_id", json_string(id));
        json_object_set_new(p, "ts_ms", json_integer(ts_ms));
        snprintf(trace, sizeof(trace), "%032d", ++fx.seq);
        const struct envelope env = {
                .event_id = event_id,
                .vendor = "internal",
                .event_type = "profile.update",
                .anchor_id = is_anchor ? id : NULL,
                .event_time_ms = ts_ms,
                .receive_time_ms = ts_ms + 5,
                .trace_id = trace,
        };
        cr_assert(codec_encode(fx.w.codec, &env, "Profile", p, &buf, &len, err, sizeof(err)) == 0,
                  "%s", err);
        json_decref(p);
        support_produce(fx.w.producer, "live.interaction", id, buf, len, "profile.update");
        free(buf);
}

/* Waits until query (one row, one column) gives want; returns what it last gave. */
static void wait_text(const char *want, char *got, size_t got_size, const char *query)
{
        long long deadline = support_now_ms() + 20000;

        for (;;) {
                support_query1(fx.w.mysql, got, got_size, "%s", query);
                if (strcmp(got, want) == 0 || support_now_ms() > deadline)
                        return;
                support_sleep_ms(100);
        }
}

static void anchor_row(const char *id, char *q, size_t q_size)
{
        snprintf(q, q_size,
                 "SELECT CONCAT_WS('|', gender, IFNULL(age_band, '-'), IFNULL(region, '-'), "
                 "IFNULL((SELECT GROUP_CONCAT(t.name ORDER BY t.name) FROM anchor_tags a "
                 "JOIN tags t USING (tag_id) WHERE a.anchor_id = '%s'), '-')) FROM anchors "
                 "WHERE anchor_id = '%s'",
                 id, id);
}

Test(profiles, an_anchor_profile_lands_and_only_a_newer_one_changes_it)
{
        char id[96], ev[4][96], q[1024], got[256];

        snprintf(id, sizeof(id), "%s_anchor", fx.w.prefix);
        for (int i = 0; i < 4; i++)
                snprintf(ev[i], sizeof(ev[i]), "%s_e%d", fx.w.prefix, i);
        anchor_row(id, q, sizeof(q));

        produce(ev[0], "anchor", id, 1000,
                "{\"gender\":\"female\",\"age_band\":\"18-24\",\"region\":\"north\","
                "\"tags\":\"[\\\"music\\\",\\\"dance\\\"]\"}");
        wait_text("female|18-24|north|dance,music", got, sizeof(got), q);
        cr_assert_str_eq(got, "female|18-24|north|dance,music", "see %s", fx.w.log_path);

        /* Newer, partial: the region and tags change, the rest stays; a tag new to liveflow. */
        produce(ev[1], "anchor", id, 2000,
                "{\"region\":\"south\",\"tags\":\"[\\\"music\\\",\\\"games\\\"]\"}");
        wait_text("female|18-24|south|games,music", got, sizeof(got), q);
        cr_assert_str_eq(got, "female|18-24|south|games,music", "see %s", fx.w.log_path);

        /* A late retry of an older profile, then a copy of the newest, then a marker. */
        produce(ev[0], "anchor", id, 1000,
                "{\"gender\":\"female\",\"age_band\":\"18-24\",\"region\":\"north\","
                "\"tags\":\"[\\\"music\\\",\\\"dance\\\"]\"}");
        produce(ev[2], "anchor", id, 1500, "{\"gender\":\"male\",\"tags\":\"[]\"}");
        produce(ev[1], "anchor", id, 2000,
                "{\"region\":\"south\",\"tags\":\"[\\\"music\\\",\\\"games\\\"]\"}");
        produce(ev[3], "anchor", id, 3000, "{\"age_band\":\"25-34\"}");
        wait_text("female|25-34|south|games,music", got, sizeof(got), q);
        cr_assert_str_eq(got, "female|25-34|south|games,music",
                         "older profiles must change nothing; see %s", fx.w.log_path);
        cr_assert_eq(support_query_int(fx.w.mysql, "SELECT COUNT(*) FROM tags WHERE name IN "
                                                   "('music','dance','games')"),
                     3, "each tag once");
}

Test(profiles, an_audience_profile_and_an_empty_tag_list)
{
        char id[96], e1[96], e2[96], q[1024], got[256];

        snprintf(id, sizeof(id), "%s_aud", fx.w.prefix);
        snprintf(e1, sizeof(e1), "%s_a1", fx.w.prefix);
        snprintf(e2, sizeof(e2), "%s_a2", fx.w.prefix);
        snprintf(q, sizeof(q),
                 "SELECT CONCAT_WS('|', gender, IFNULL(age_band, '-'), IFNULL(region, '-'), "
                 "IFNULL(audience_type, '-'), (SELECT COUNT(*) FROM audience_tags WHERE "
                 "audience_id = '%s')) FROM audiences WHERE audience_id = '%s'",
                 id, id);
        produce(e1, "audience", id, 5000,
                "{\"gender\":\"male\",\"age_band\":\"35-44\",\"region\":\"east\","
                "\"audience_type\":\"guest\",\"tags\":\"[\\\"cars\\\",\\\"music\\\",\\\"food\\\"]\"}");
        wait_text("male|35-44|east|guest|3", got, sizeof(got), q);
        cr_assert_str_eq(got, "male|35-44|east|guest|3", "see %s", fx.w.log_path);
        produce(e2, "audience", id, 6000, "{\"audience_type\":\"registered\",\"tags\":\"[]\"}");
        wait_text("male|35-44|east|registered|0", got, sizeof(got), q);
        cr_assert_str_eq(got, "male|35-44|east|registered|0", "see %s", fx.w.log_path);
}

Test(profiles, a_profile_that_can_not_be_stored_goes_to_the_dlq_and_the_next_lands)
{
        char bad[96], good[96], e1[96], e2[96], cls[32] = "", q[1024], got[256];

        snprintf(bad, sizeof(bad), "%s_bad", fx.w.prefix);
        snprintf(good, sizeof(good), "%s_bad", fx.w.prefix); /* same key, behind it */
        snprintf(e1, sizeof(e1), "%s_b1", fx.w.prefix);
        snprintf(e2, sizeof(e2), "%s_b2", fx.w.prefix);
        produce(e1, "anchor", bad, 1000, "{\"tags\":\"{\\\"not\\\":\\\"a list\\\"}\"}");
        produce(e2, "anchor", good, 2000, "{\"gender\":\"male\"}");
        anchor_row(good, q, sizeof(q));
        wait_text("male|-|-|-", got, sizeof(got), q);
        cr_assert_str_eq(got, "male|-|-|-", "see %s", fx.w.log_path);
        cr_assert_geq(support_count_records("live.interaction.dlq", bad, "dlq.error.class", cls,
                                            sizeof(cls), 20000, 1),
                      1);
        cr_assert_str_eq(cls, "permanent");
}
