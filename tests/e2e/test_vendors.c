/*
 * test_vendors.c: Agora and Alibaba callbacks through the receiver, Kafka and the stream role
 * into MySQL and Redis, beside Tencent's.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "support.h"
#include "support_stack.h"

#define TENCENT_KEY    "e2e-callback-key"
#define AGORA_SECRET   "e2e-agora-secret"
#define ALIBABA_KEY    "e2e-alibaba-key"
#define ALIBABA_DOMAIN "push.e2e.example.com"

static struct support_stream_stack fx;
static struct support_proc roles[3]; /* record, snapshot, audit */

/* What every process of a test gets: the vendors' keys. */
static const char *const env[] = {"LIVEFLOW_HTTP_ADDR=127.0.0.1",
                                  "LIVEFLOW_TENCENT_KEY=" TENCENT_KEY,
                                  "LIVEFLOW_AGORA_SECRET=" AGORA_SECRET,
                                  "LIVEFLOW_AGORA_ANCHOR_FROM=uid",
                                  "LIVEFLOW_ALIBABA_KEY=" ALIBABA_KEY,
                                  "LIVEFLOW_ALIBABA_DOMAIN=" ALIBABA_DOMAIN,
                                  "LIVEFLOW_LOG_LEVEL=info",
                                  NULL};

/* The receiver and the stream role (its group at the end of live.stream), started together. */
static void setup(void)
{
        support_stream_stack_start(&fx, "vd", "vendors.", ".consumer", env);
}

static void teardown(void)
{
        for (int i = 0; i < 3; i++)
                support_proc_stop(&roles[i]);
        memset(roles, 0, sizeof(roles));
        support_stream_stack_stop(&fx);
}

/* POSTs a Tencent push (event_type 1) or interrupt (0) signed with key (or with a forged
 * one) and returns the status. */
static long post_tencent(const char *stream_id, int event_type, long long t, const char *key)
{
        return support_stream_stack_tencent(&fx, stream_id, event_type, t, key);
}

static long http_send(const char *method, const char *path, const char *body,
                      const char *const headers[])
{
        return support_http(fx.http_port, method, path, body, headers).status;
}

/* An NCS notice of product/type for the channel or stream, signed (V2) with secret. */
static long post_agora_as(const char *secret, const char *notice_id, int product, int type,
                          const char *payload)
{
        char body[2048], v2[65], header[128];
        const char *headers[] = {header, NULL};

        snprintf(body, sizeof(body),
                 "{\"noticeId\":\"%s-%s\",\"productId\":%d,\"eventType\":%d,"
                 "\"notifyMs\":%lld,\"payload\":%s}",
                 fx.prefix, notice_id, product, type, (long long)time(NULL) * 1000, payload);
        support_agora_sign(secret, body, v2);
        snprintf(header, sizeof(header), "Agora-Signature-V2: %s", v2);
        return http_send("POST", "/callbacks/agora", body, headers);
}

static long post_agora(const char *notice_id, int product, int type, const char *payload)
{
        return post_agora_as(AGORA_SECRET, notice_id, product, type, payload);
}

/* Waits (up to 5 s) for the row's status and the set membership to say the same. */
static void wait_state(const char *stream_id, const char *status, bool in_set)
{
        const struct support_proc *const procs[] = {&fx.receiver, &fx.consumer};

        support_wait_stream_state(fx.mysql, fx.redis, stream_id, status, in_set, procs, 2);
}

/* The outcomes the stream role recorded for the stream, sorted, joined by ','. */
static void outcomes(const char *stream_id, char *out, size_t out_size)
{
        support_query1(fx.mysql, out, out_size,
                       "SELECT GROUP_CONCAT(outcome ORDER BY outcome) FROM live_events "
                       "WHERE consumer = 'stream' AND stream_id = '%s'",
                       stream_id);
}

/* Waits until the stream role recorded n events for the stream. */
static void wait_events(const char *stream_id, int n)
{
        char got[16] = "";
        long long deadline = support_now_ms() + 10000;

        while (support_now_ms() < deadline) {
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT COUNT(*) FROM live_events WHERE consumer = 'stream' AND "
                               "stream_id = '%s'",
                               stream_id);
                if (atoi(got) >= n)
                        return;
                support_sleep_ms(20);
        }
        cr_assert_fail("stream %s: %s events, want %d (logs %s %s)", stream_id, got, n,
                       fx.receiver.log, fx.consumer.log);
}

static void rtc_payload(char *out, size_t size, const char *channel, long long uid, long long ts)
{
        if (uid)
                snprintf(out, size,
                         "{\"channelName\":\"%s\",\"uid\":%lld,\"platform\":1,"
                         "\"clientSeq\":%lld,\"ts\":%lld}",
                         channel, uid, ts * 1000, ts);
        else
                snprintf(out, size, "{\"channelName\":\"%s\",\"ts\":%lld}", channel, ts);
}

TestSuite(vendors, .init = setup, .fini = teardown, .timeout = 120);

Test(vendors, an_agora_room_is_one_session_with_its_cohosts_recorded)
{
        char room[64], p[256], v[256];
        long long ts = (long long)time(NULL) - 100;

        snprintf(room, sizeof(room), "%s_room", fx.prefix);
        rtc_payload(p, sizeof(p), room, 0, ts);
        cr_assert_eq(post_agora("create", 1, 101, p), 200);
        wait_state(room, "live", true);
        rtc_payload(p, sizeof(p), room, 1001, ts + 1);
        cr_assert_eq(post_agora("join1", 1, 103, p), 200);
        rtc_payload(p, sizeof(p), room, 1002, ts + 5);
        cr_assert_eq(post_agora("join2", 1, 103, p), 200);
        /* NCS may send a notice twice: the same noticeId is one event. */
        cr_assert_eq(post_agora("join2", 1, 103, p), 200);
        rtc_payload(p, sizeof(p), room, 1001, ts + 20);
        cr_assert_eq(post_agora("leave1", 1, 104, p), 200);
        wait_events(room, 4);
        wait_state(room, "live", true); /* the host left, the co-host goes on */
        rtc_payload(p, sizeof(p), room, 0, ts + 30);
        cr_assert_eq(post_agora("destroy", 1, 102, p), 200);
        wait_state(room, "ended", false);
        outcomes(room, v, sizeof(v));
        cr_assert_str_eq(v, "applied,applied,cohost_join,cohost_join,cohost_leave");
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT CONCAT(vendor, '/', anchor_id, '/', room_id, '/', duration_s) "
                       "FROM live_streams WHERE stream_id = '%s'",
                       room);
        snprintf(p, sizeof(p), "agora/1001/%s/30", room);
        cr_assert_str_eq(v, p, "the first broadcaster is the room's anchor (uid convention)");
}

Test(vendors, a_join_before_the_create_opens_the_session_once)
{
        char room[64], p[256], v[256];
        long long ts = (long long)time(NULL) - 100;

        snprintf(room, sizeof(room), "%s_early", fx.prefix);
        rtc_payload(p, sizeof(p), room, 2001, ts + 2);
        cr_assert_eq(post_agora("join", 1, 103, p), 200);
        wait_state(room, "live", true);
        rtc_payload(p, sizeof(p), room, 0, ts);
        cr_assert_eq(post_agora("create", 1, 101, p), 200);
        wait_events(room, 2);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT CONCAT(status, '/', anchor_id, '/', CAST(UNIX_TIMESTAMP(started_at) AS SIGNED)) "
                "FROM live_streams WHERE stream_id = '%s'",
                room);
        snprintf(p, sizeof(p), "live/2001/%lld", ts + 2);
        cr_assert_str_eq(v, p);
}

Test(vendors, agora_broadcast_streaming_publish_start_and_end)
{
        char s[64], p[256], v[64];

        snprintf(s, sizeof(s), "%s_bcast", fx.prefix);
        snprintf(p, sizeof(p),
                 "{\"eventName\":\"publish_start\",\"domain\":\"test.agora.io\","
                 "\"entryPoint\":\"live\",\"streamName\":\"%s\",\"clientIp\":\"1.2.3.4\"}",
                 s);
        cr_assert_eq(post_agora("start", 7, 1, p), 200);
        wait_state(s, "live", true);
        cr_assert_eq(post_agora("end", 7, 2, p), 200);
        wait_state(s, "ended", false);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT vendor FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "agora");
}

Test(vendors, forged_or_unsigned_agora_notices_get_401_and_no_row)
{
        char s[64], p[256], v[64];

        snprintf(s, sizeof(s), "%s_forged", fx.prefix);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\"}", s);
        cr_assert_eq(post_agora_as("not-the-secret", "f1", 7, 1, p), 401);
        cr_assert_eq(http_send("POST", "/callbacks/agora", "{}", NULL), 401);
        snprintf(v, sizeof(v), "%s_ok", fx.prefix);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\"}", v);
        cr_assert_eq(post_agora("ok", 7, 1, p), 200);
        wait_state(v, "live", true);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s'", s);
        cr_assert_str_eq(v, "0");
}

/* An Alibaba ingest GET for the stream, signed with the ingest domain and key. */
static long get_alibaba(const char *action, const char *stream_id, long long time_s,
                        const char *key)
{
        char path[512], h_ts[64], h_sig[64];
        const char *headers[] = {h_ts, h_sig, NULL};

        snprintf(path, sizeof(path),
                 "/callbacks/alibaba?action=%s&ip=10.0.0.1&id=%s&app=" ALIBABA_DOMAIN
                 "&appname=live&time=%lld&usrargs=anchor_id%%3Dal_%s%%26room_id%%3Dar_%s",
                 action, stream_id, time_s, fx.prefix, fx.prefix);
        support_alibaba_headers(ALIBABA_DOMAIN, key, h_ts, h_sig);
        return http_send("GET", path, NULL, headers);
}

Test(vendors, alibaba_ingest_get_publish_and_publish_done)
{
        char s[64], v[256], want[256];
        long long t = (long long)time(NULL) - 60;

        snprintf(s, sizeof(s), "%s_ali", fx.prefix);
        cr_assert_eq(get_alibaba("publish", s, t, "not-the-key"), 401);
        cr_assert_eq(get_alibaba("publish", s, t, ALIBABA_KEY), 200);
        wait_state(s, "live", true);
        cr_assert_eq(get_alibaba("publish_done", s, t + 42, ALIBABA_KEY), 200);
        wait_state(s, "ended", false);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT CONCAT(vendor, '/', anchor_id, '/', room_id, '/', duration_s) "
                       "FROM live_streams WHERE stream_id = '%s'",
                       s);
        snprintf(want, sizeof(want), "alibaba/al_%s/ar_%s/42", fx.prefix, fx.prefix);
        cr_assert_str_eq(v, want);
}

Test(vendors, an_agora_room_and_a_tencent_stream_of_one_id_are_two_streams)
{
        char id[64], p[256], v[256], want[256];
        long long t = (long long)time(NULL) + 600;

        snprintf(id, sizeof(id), "%s_same", fx.prefix);
        cr_assert_eq(post_tencent(id, 1, t, TENCENT_KEY), 200);
        wait_state(id, "live", true);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\"}", id);
        cr_assert_eq(post_agora("same-start", 7, 1, p), 200);
        wait_events(id, 2);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT GROUP_CONCAT(CONCAT(vendor, ':', status, ':', COALESCE(anchor_id, '-')) "
                "ORDER BY vendor) "
                "FROM live_streams WHERE stream_id = '%s'",
                id);
        /* Broadcast Streaming names no uid: under the uid convention the stream has no anchor. */
        snprintf(want, sizeof(want), "agora:live:-,tencent:live:a_%s", fx.prefix);
        cr_assert_str_eq(v, want);

        /* The room ends; the Tencent stream of the same name is still live, in Redis too. */
        cr_assert_eq(post_agora("same-end", 7, 2, p), 200);
        wait_events(id, 3);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT GROUP_CONCAT(CONCAT(vendor, ':', status) ORDER BY vendor) "
                       "FROM live_streams WHERE stream_id = '%s'",
                       id);
        cr_assert_str_eq(v, "agora:ended,tencent:live");
        cr_assert(support_stream_online(fx.redis, id), "the Tencent stream %s is still live", id);
        support_query1(fx.mysql, v, sizeof(v),
                       "SELECT COUNT(DISTINCT session_id) FROM live_streams WHERE stream_id = '%s'",
                       id);
        cr_assert_str_eq(v, "2");

        cr_assert_eq(post_tencent(id, 0, t + 60, TENCENT_KEY), 200);
        wait_state(id, "ended", false);
        support_query1(
                fx.mysql, v, sizeof(v),
                "SELECT COUNT(*) FROM live_streams WHERE stream_id = '%s' AND status = 'ended'",
                id);
        cr_assert_str_eq(v, "2");
}

/* Starts the record, snapshot and audit roles, each in its own group at its topic's end. */
static void start_roles(void)
{
        static const char *const names[] = {"record", "snapshot", "audit"};
        static const char *const topics[][2] = {
                {"live.record", NULL}, {"live.snapshot", NULL}, {"live.audit", NULL}};
        struct support_proc *all[] = {&roles[0], &roles[1], &roles[2]};
        char group[128];

        for (int i = 0; i < 3; i++) {
                snprintf(group, sizeof(group), "vendors.%s.%s", fx.prefix, names[i]);
                support_proc_launch(&roles[i], fx.prefix, names[i], fx.mysql_url, group, topics[i],
                                    env);
        }
        support_procs_ready(all, 3);
}

/* Waits (up to 10 s) until the query's first column reads want. */
static void wait_value(const char *want, const char *sql)
{
        support_wait_value(fx.mysql, 10000, fx.prefix, want, "%s", sql);
}

/* A POST to /callbacks/alibaba signed with the callback URL's host, as Alibaba signs it. */
static long post_alibaba(const char *body)
{
        char h_ts[64], h_sig[64];
        const char *headers[] = {h_ts, h_sig, NULL};

        support_alibaba_headers("127.0.0.1", ALIBABA_KEY, h_ts, h_sig);
        return http_send("POST", "/callbacks/alibaba", body, headers);
}

Test(vendors, agora_files_and_alibaba_verdicts_reach_the_same_tables_as_tencents)
{
        char s[64], a[64], p[512], sql[512], want[512], date[16], file[256];
        time_t now = time(NULL);
        struct tm tm;

        start_roles();

        /* Agora Broadcast Streaming: a session, then its recording and its screenshot. */
        snprintf(s, sizeof(s), "%s_files", fx.prefix);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\"}", s);
        cr_assert_eq(post_agora("files-start", 7, 1, p), 200);
        wait_state(s, "live", true);
        /* Files named for a time within the session (Agora names them by their UTC date). */
        now = time(NULL);
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%Y%m%d%H%M%S", &tm);
        snprintf(file, sizeof(file), "live/%s/sess9_20211122094718109_0_%s120.mp4", s, date);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\",\"fileName\":\"%s\"}", s, file);
        cr_assert_eq(post_agora("files-rec", 7, 3, p), 200);
        snprintf(sql, sizeof(sql),
                 "SELECT CONCAT(r.vendor, '/', r.video_url, '/', r.session_id = s.session_id) "
                 "FROM live_records r JOIN live_streams s ON s.vendor = r.vendor AND "
                 "s.stream_id = r.stream_id WHERE r.stream_id = '%s'",
                 s);
        snprintf(want, sizeof(want), "agora/%s/1", file);
        wait_value(want, sql);
        snprintf(file, sizeof(file), "live/%s/sess9_20211122094718109_%s.jpg", s, date);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\",\"fileName\":\"%s\"}", s, file);
        cr_assert_eq(post_agora("files-snap", 7, 4, p), 200);
        snprintf(sql, sizeof(sql),
                 "SELECT cover_url FROM live_streams WHERE vendor = 'agora' AND stream_id = '%s'",
                 s);
        wait_value(file, sql);

        /* Alibaba: a pushed stream, then a blocking verdict: the anchor the push named. */
        snprintf(a, sizeof(a), "%s_verdict", fx.prefix);
        cr_assert_eq(get_alibaba("publish", a, (long long)now - 10, ALIBABA_KEY), 200);
        wait_state(a, "live", true);
        snprintf(p, sizeof(p),
                 "{\"domain\":\"play.example.com\",\"app\":\"live\",\"stream\":\"%s\","
                 "\"timestamp\":%lld,\"result\":[{\"scene\":\"antispam\",\"label\":\"abuse\","
                 "\"suggestion\":\"block\",\"rate\":99.5,\"details\":[{\"text\":\"x\"}]}]}",
                 a, (long long)now);
        cr_assert_eq(post_alibaba(p), 200);
        snprintf(sql, sizeof(sql),
                 "SELECT CONCAT(anchor_id, '/', suggestion, '/', punishment <> 'none') "
                 "FROM live_audit_logs WHERE stream_id = '%s'",
                 a);
        snprintf(want, sizeof(want), "al_%s/Block/1", fx.prefix);
        wait_value(want, sql);
}

Test(vendors, a_punishment_closes_the_stream_of_its_own_vendor_only)
{
        char id[64], p[512], sql[512], want[256];
        long long t = (long long)time(NULL) + 600;
        time_t now = time(NULL);

        start_roles();
        snprintf(id, sizeof(id), "%s_twin", fx.prefix);
        cr_assert_eq(post_tencent(id, 1, t, TENCENT_KEY), 200);
        cr_assert_eq(get_alibaba("publish", id, (long long)now - 10, ALIBABA_KEY), 200);
        snprintf(sql, sizeof(sql),
                 "SELECT GROUP_CONCAT(CONCAT(vendor, ':', status) ORDER BY vendor) "
                 "FROM live_streams WHERE stream_id = '%s'",
                 id);
        wait_value("alibaba:live,tencent:live", sql);
        /* Tencent's twin is the stream of that id touched last (as after a repeated push). */
        snprintf(sql, sizeof(sql),
                 "UPDATE live_streams SET last_event_at = NOW(3) + INTERVAL 1 MINUTE "
                 "WHERE vendor = 'tencent' AND stream_id = '%s'",
                 id);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        /* Alibaba's verdict on its stream: that stream is closed, Tencent's twin goes on. */
        snprintf(p, sizeof(p),
                 "{\"domain\":\"play.example.com\",\"app\":\"live\",\"stream\":\"%s\","
                 "\"timestamp\":%lld,\"result\":[{\"scene\":\"antispam\",\"label\":\"porn\","
                 "\"suggestion\":\"block\",\"rate\":99.9}]}",
                 id, (long long)now);
        cr_assert_eq(post_alibaba(p), 200);
        snprintf(sql, sizeof(sql),
                 "SELECT CONCAT(anchor_id, '/', COALESCE(close_vendor, '-'), '/', "
                 "COALESCE(close_method, 0)) FROM live_audit_logs WHERE stream_id = '%s'",
                 id);
        snprintf(want, sizeof(want), "al_%s/alibaba/3", fx.prefix);
        wait_value(want, sql);
        snprintf(sql, sizeof(sql),
                 "SELECT GROUP_CONCAT(CONCAT(vendor, ':', status, ':', COALESCE(close_method, 0)) "
                 "ORDER BY vendor) FROM live_streams WHERE stream_id = '%s'",
                 id);
        wait_value("alibaba:ended:3,tencent:live:0", sql);
}
