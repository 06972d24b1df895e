/* handoff.c: test_stream_lifecycle's sessions handed off to live.session once, notify records,
 * an end without its begin, a banned anchor cut off and a suspension that runs out. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "url.h"

#include "fixture.h"

static void read_session_end(struct codec *codec, const rd_kafka_message_t *m,
                             struct session_end *se)
{
        rd_kafka_headers_t *h = NULL;
        struct event ev = {0};
        const void *val;
        size_t len;
        char err[256];

        memset(se, 0, sizeof(*se));
        cr_assert(rd_kafka_message_headers(m, &h) == 0, "a session.end record without headers");
        if (rd_kafka_header_get_last(h, "event_id", &val, &len) == 0)
                snprintf(se->event_id_header, sizeof(se->event_id_header), "%.*s", (int)len,
                         (const char *)val);
        if (rd_kafka_header_get_last(h, "event_type", &val, &len) == 0)
                snprintf(se->event_type_header, sizeof(se->event_type_header), "%.*s", (int)len,
                         (const char *)val);
        cr_assert(codec_decode(codec, m->payload, m->len, &ev, err, sizeof(err)) == 0, "%s", err);
        cr_assert_str_eq(ev.payload_name, "SessionEnd");
        snprintf(se->event_id, sizeof(se->event_id), "%s", ev.event_id);
        se->session_id = json_integer_value(json_object_get(ev.payload, "session_id"));
        se->started_at_ms = json_integer_value(json_object_get(ev.payload, "started_at_ms"));
        se->ended_at_ms = json_integer_value(json_object_get(ev.payload, "ended_at_ms"));
        se->duration_s = json_integer_value(json_object_get(ev.payload, "duration_s"));
        se->close_method = json_integer_value(json_object_get(ev.payload, "close_method"));
        event_fini(&ev);
}

/*
 * Reads every partition of live.session from the start for timeout_ms, or until `want`
 * session.end records of `session` keyed `key` were seen (want < 0: the whole time). Every
 * test's consumer reads every test's streams into its own database and hands off its own
 * sessions, so only this test's session id tells its records apart. Partitions are
 * assigned, not subscribed, so no group rebalance delays the read. @returns how many.
 */
int read_session_ends(const char *key, long long session, struct session_end *out, int max,
                      int want, int timeout_ms)
{
        char err[256], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        int n = 0;

        support_unique_name("sessread", group, sizeof(group));
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK);
        /* assign() wants a group id; it never joins the group, so nothing waits for a rebalance. */
        cr_assert(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        cr_assert((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) != NULL, "%s",
                  err);
        rd_kafka_poll_set_consumer(rk);
        rkt = rd_kafka_topic_new(rk, "live.session", NULL);
        cr_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1 &&
                          md->topics[0].partition_cnt > 0,
                  "no metadata for live.session");
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(parts, "live.session",
                                                  md->topics[0].partitions[i].id)
                        ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        cr_assert(rd_kafka_assign(rk, parts) == 0);
        rd_kafka_topic_partition_list_destroy(parts);
        while (support_now_ms() < deadline && (want < 0 || n < want)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0) {
                        struct session_end se;

                        read_session_end(fx.w.codec, m, &se);
                        if (se.session_id == session && n < max)
                                out[n] = se;
                        n += se.session_id == session;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

Test(stream_lifecycle, an_ended_session_is_handed_off_once_and_a_replay_repeats_its_event_id)
{
        const long long begin_s = 1703731478, end_s = 1703735203;
        struct session_end got[4];
        char s[64], key[64], want_id[65];
        long long session;
        int n;

        snprintf(s, sizeof(s), "%s_handoff", fx.w.prefix);
        produce_event(s, true, "4242", begin_s, 0, -1);
        produce_event(s, false, "4242", end_s, 1, -1);
        wait_status(s, "ended");
        session = support_query_int(
                fx.w.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        snprintf(key, sizeof(key), "session.end|%lld", session);
        crypto_sha256_hex(key, strlen(key), want_id);

        cr_assert_eq(read_session_ends(s, session, got, 4, 1, 20000), 1,
                     "no session.end for %s (log %s)", s, fx.w.log_path);
        /* Read again for a while: the begin and the end must have made exactly one record. */
        n = read_session_ends(s, session, got, 4, -1, 3000);
        cr_assert_eq(n, 1, "begin + end must make exactly one session.end, not %d", n);
        cr_assert_eq(got[0].session_id, session);
        cr_assert_eq(got[0].started_at_ms, begin_s * 1000);
        cr_assert_eq(got[0].ended_at_ms, end_s * 1000);
        cr_assert_eq(got[0].duration_s, end_s - begin_s);
        cr_assert_eq(got[0].close_method, 1);
        cr_assert_str_eq(got[0].event_type_header, "session.end");
        cr_assert_str_eq(got[0].event_id_header, want_id);
        cr_assert_str_eq(got[0].event_id, want_id);

        /* The same end again (a vendor retry or a replay): the same session.end once more. */
        produce_event(s, false, "4242", end_s, 1, -1);
        cr_assert_eq(read_session_ends(s, session, got, 4, 2, 20000), 2,
                     "the replayed end sent nothing");
        cr_assert_eq(read_session_ends(s, session, got, 4, -1, 3000), 2,
                     "one replay must make one more");
        cr_assert_str_eq(got[1].event_id_header, want_id);
        cr_assert_str_eq(got[1].event_id, want_id);
        cr_assert_eq(got[1].session_id, session);
        cr_assert_eq(got[1].duration_s, end_s - begin_s);
        stop_consumer_expect_clean_exit();
}

/*
 * How many live.notify records keyed `key` carry the event id of each of the cnt kinds for
 * session (into counts), reading every partition from the start for timeout_ms, in one pass for
 * every kind (or until one of them is more than `want`). Every test's consumer sends its own
 * sessions' notifications: the session id tells this test's apart.
 */
static void count_notify(const char *key, const char *const kinds[], int *counts, int cnt,
                         long long session, int want, int timeout_ms)
{
        char err[256], group[64], text[96], want_id[4][65];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
        long long deadline = support_now_ms() + timeout_ms;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        bool is_over = false;

        cr_assert(cnt > 0 && cnt <= 4);
        for (int k = 0; k < cnt; k++) {
                snprintf(text, sizeof(text), "notify|%s|%lld", kinds[k], session);
                crypto_sha256_hex(text, strlen(text), want_id[k]);
                counts[k] = 0;
        }
        support_unique_name("notifyread", group, sizeof(group));
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) == RD_KAFKA_CONF_OK);
        cr_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        cr_assert((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) != NULL, "%s",
                  err);
        rd_kafka_poll_set_consumer(rk);
        rkt = rd_kafka_topic_new(rk, "live.notify", NULL);
        cr_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1 &&
                          md->topics[0].partition_cnt > 0,
                  "no metadata for live.notify");
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(parts, "live.notify",
                                                  md->topics[0].partitions[i].id)
                        ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        cr_assert(rd_kafka_assign(rk, parts) == 0);
        rd_kafka_topic_partition_list_destroy(parts);
        while (support_now_ms() < deadline && !is_over) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                rd_kafka_headers_t *h = NULL;
                const void *val;
                size_t len;

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0 &&
                    rd_kafka_message_headers(m, &h) == 0 &&
                    rd_kafka_header_get_last(h, "event_id", &val, &len) == 0 && len == 64) {
                        for (int k = 0; k < cnt; k++)
                                if (memcmp(val, want_id[k], 64) == 0 && ++counts[k] > want)
                                        is_over = true;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

Test(stream_lifecycle, going_live_and_ending_are_one_notify_record_each)
{
        const long long begin_s = 1703731478, end_s = 1703735203;
        static const char *const kinds[] = {"stream.live", "stream.ended"};
        char s[64], anchor[64];
        int counts[2];
        long long session;

        snprintf(s, sizeof(s), "%s_notify", fx.w.prefix);
        snprintf(anchor, sizeof(anchor), "anchor_%s", fx.w.prefix);
        produce_event(s, true, "5151", begin_s, 0, -1);
        produce_event(s, true, "5151", begin_s, 0, -1); /* a vendor retry */
        produce_event(s, false, "5151", end_s, 1, 3725000);
        produce_event(s, false, "5151", end_s, 1, 3725000); /* a replay */
        wait_status(s, "ended");
        session = support_query_int(
                fx.w.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        /* Read for a while: a retried begin and a replayed end must add nothing. */
        count_notify(anchor, kinds, counts, 2, session, 1, 8000);
        cr_assert_eq(counts[0], 1, "stream.live records of session %lld (log %s)", session,
                     fx.w.log_path);
        cr_assert_eq(counts[1], 1, "stream.ended records of session %lld (log %s)", session,
                     fx.w.log_path);
        cr_assert_eq(
                support_query_int(fx.w.mysql,
                                  "SELECT COUNT(*) FROM notify_messages WHERE stream_id = '%s' "
                                  "AND sent_at IS NOT NULL",
                                  s),
                2);
        cr_assert_eq(
                support_query_int(fx.w.mysql,
                                  "SELECT COUNT(*) FROM notify_messages WHERE stream_id = '%s' "
                                  "AND kind = 'stream.ended' AND payload LIKE "
                                  "'%%\"duration_s\":3725%%'",
                                  s),
                1);
        stop_consumer_expect_clean_exit();
}

Test(stream_lifecycle, an_end_without_its_begin_is_handed_off_and_adopts_the_room_tips)
{
        const long long end_s = 1703735203, push_ms = 3725118;
        const long long start_ms = end_s * 1000 - push_ms;
        struct session_end got[2];
        char s[64], anchor[64], sql[1024];
        long long session;

        snprintf(s, sizeof(s), "%s_onlyend", fx.w.prefix);
        snprintf(anchor, sizeof(anchor), "anchor_%s", fx.w.prefix);
        /* Tips reward-sync could give no session: one in the window, one before, one elsewhere. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, "
                 "tipped_at) VALUES ('%s_in', 'u1', '%s', '%s', 300, FROM_UNIXTIME(%lld)), "
                 "('%s_before', 'u2', '%s', '%s', 50, FROM_UNIXTIME(%lld)), "
                 "('%s_other', 'u3', '%s', 'other_%s', 70, FROM_UNIXTIME(%lld))",
                 s, anchor, anchor, end_s - 100, s, anchor, anchor, start_ms / 1000 - 100, s,
                 anchor, fx.w.prefix, end_s - 100);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
        produce_event(s, false, "777", end_s, 1, push_ms);
        wait_status(s, "ended");
        session = support_query_int(
                fx.w.mysql, "SELECT session_id FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert(session > 0);
        cr_assert_eq(read_session_ends(s, session, got, 2, 1, 20000), 1,
                     "no session.end for an end without its begin (log %s)", fx.w.log_path);
        cr_assert_eq(got[0].started_at_ms, start_ms);
        cr_assert_eq(got[0].ended_at_ms, end_s * 1000);
        cr_assert_eq(got[0].duration_s, push_ms / 1000);
        cr_assert_eq(support_query_int(fx.w.mysql,
                                       "SELECT COUNT(*) FROM recharge WHERE session_id = %lld "
                                       "AND trace_id = '%s_in'",
                                       session, s),
                     1);
        cr_assert_eq(support_query_int(fx.w.mysql,
                                       "SELECT COUNT(*) FROM recharge WHERE session_id IS NULL AND "
                                       "trace_id IN ('%s_before', '%s_other')",
                                       s, s),
                     2);
        stop_consumer_expect_clean_exit();
}

/* Whether the consumer's log has a line containing every one of the NULL-terminated needles. */
bool log_has_line(const char *const *needles)
{
        size_t len;
        char *text = support_read_file(fx.w.log_path, &len);
        bool found = false;

        for (char *line = text, *next; line && *line && !found; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                found = true;
                for (size_t i = 0; needles[i] && found; i++)
                        found = strstr(line, needles[i]) != NULL;
        }
        free(text);
        return found;
}

/* The close_method and event_type of the stream's recorded event `event_id` ("" when absent). */
void recorded_close(const char *event_id, char *type, size_t type_size)
{
        query1(type, type_size,
               "SELECT CONCAT(event_type, '/', vendor) FROM live_events WHERE consumer = 'stream' "
               "AND event_id = '%s'",
               event_id);
}

Test(stream_lifecycle, a_banned_anchor_who_pushes_is_cut_off_with_close_method_3)
{
        char s[64], anchor[64], sql[256], begin_id[65], key[128], want_id[65], v[64];

        snprintf(s, sizeof(s), "%s_banned", fx.w.prefix);
        snprintf(anchor, sizeof(anchor), "anchor_%s_b", fx.w.prefix);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO anchors (anchor_id, status) VALUES ('%s', 'banned')", anchor);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
        produce_event_of(anchor, s, true, "6001", 1703731478, 0, -1);
        wait_status(s, "ended");
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "3");
        cr_assert(wait_online(s, false), "%s still in set:live:online", s);

        stream_event_id(s, true, "6001", begin_id);
        query1(v, sizeof(v),
               "SELECT outcome FROM live_events WHERE consumer = 'stream' AND event_id = '%s'",
               begin_id);
        cr_assert_str_eq(v, "cutoff_banned");
        snprintf(key, sizeof(key), "cutoff|%s", begin_id);
        crypto_sha256_hex(key, strlen(key), want_id);
        recorded_close(want_id, v, sizeof(v));
        cr_assert_str_eq(v, "stream.close/liveflow",
                         "the cut-off close must be the one the role ended it with");
        /* The begin's own event time: a session of zero seconds. */
        query1(v, sizeof(v), "SELECT duration_s FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "0");
        cr_assert(log_has_line((const char *const[]){"anchor cut off", s, "anchor banned", NULL}),
                  "no cut-off log line for %s in %s", s, fx.w.log_path);
        stop_consumer_expect_clean_exit();
}

Test(stream_lifecycle, a_suspension_counts_only_until_it_runs_out)
{
        const long long begin_s = 1703731478;
        char past[64], future[64], a_past[64], a_future[64], sql[512], v[64], begin_id[65],
                key[128], cut_id[65];

        snprintf(past, sizeof(past), "%s_susp_past", fx.w.prefix);
        snprintf(future, sizeof(future), "%s_susp_now", fx.w.prefix);
        snprintf(a_past, sizeof(a_past), "anchor_%s_p", fx.w.prefix);
        snprintf(a_future, sizeof(a_future), "anchor_%s_f", fx.w.prefix);
        /* Judged at the begin's event time: an hour before it has run out, an hour after has not.
         */
        snprintf(
                sql, sizeof(sql),
                "INSERT INTO anchors (anchor_id, status, suspended_until) VALUES "
                "('%s', 'suspended', FROM_UNIXTIME(%lld)), ('%s', 'suspended', FROM_UNIXTIME(%lld))",
                a_past, begin_s - 3600, a_future, begin_s + 3600);
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));

        produce_event_of(a_past, past, true, "7001", begin_s, 0, -1);
        produce_event_of(a_future, future, true, "7002", begin_s, 0, -1);
        wait_status(future, "ended");
        query1(v, sizeof(v), "SELECT close_method FROM live_streams WHERE stream_id = '%s'",
               future);
        cr_assert_str_eq(v, "3");
        cr_assert(wait_online(future, false));
        cr_assert(log_has_line(
                (const char *const[]){"anchor cut off", future, "anchor suspended", NULL}));

        /* Both begins went to the role before the close of the second; the first stays live. */
        wait_status(past, "live");
        cr_assert(wait_online(past, true));
        stream_event_id(past, true, "7001", begin_id);
        query1(v, sizeof(v),
               "SELECT outcome FROM live_events WHERE consumer = 'stream' AND event_id = '%s'",
               begin_id);
        cr_assert_str_eq(v, "applied");
        snprintf(key, sizeof(key), "cutoff|%s", begin_id);
        crypto_sha256_hex(key, strlen(key), cut_id);
        support_sleep_ms(2000); /* a close would have followed its begin's publish by now */
        recorded_close(cut_id, v, sizeof(v));
        cr_assert_str_eq(v, "", "an expired suspension must not cut the stream off");
        query1(v, sizeof(v), "SELECT status FROM live_streams WHERE stream_id = '%s'", past);
        cr_assert_str_eq(v, "live");
        stop_consumer_expect_clean_exit();
}
