/*
 * test_limits.c: no 200 for what can not be stored. Through the built receiver, Kafka and the
 * consumer roles into MySQL: a field one character over its column (lib/field_limits.c) is
 * refused 400 naming the field, and one exactly at the limit (in characters, multi-byte
 * UTF-8 included, as the utf8mb4 columns count) is answered 200 and really stored by its
 * role, for Agora, Alibaba, Tencent and POST /v1/events; ids sent as JSON integers are
 * stored as their decimal text.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "support.h"
#include "support_stack.h"

#define TENCENT_KEY    "limits-callback-key"
#define AGORA_SECRET   "limits-agora-secret"
#define ALIBABA_KEY    "limits-alibaba-key"
#define ALIBABA_DOMAIN "push.limits.example.com"
/* "liveflow-test-secret-of-32-bytes!" */
#define HMAC_B64 "bGl2ZWZsb3ctdGVzdC1zZWNyZXQtb2YtMzItYnl0ZXMh"

#define CJK "\xe4\xb8\xbb" /* one character, three bytes */

enum { ROLE_STREAM, ROLE_RECORD, ROLE_PROFILES, ROLE_AUDIENCE, ROLE_CNT };

static struct {
        char mysql_url[512];
        char prefix[48];
        int http_port;
        struct support_proc receiver, roles[ROLE_CNT];
        MYSQL *mysql;
} fx;

/* The receiver and the four roles start together; each role's group starts at its topics' end. */
static void setup(void)
{
        static const char *const names[ROLE_CNT] = {"stream", "record", "profiles", "audience"};
        static const char *const topics[ROLE_CNT][3] = {{"live.stream", NULL},
                                                        {"live.record", NULL},
                                                        {"live.interaction", NULL},
                                                        {"live.viewer", "live.interaction", NULL}};
        char e_http[64], group[128];
        const char *renv[] = {e_http,
                              "LIVEFLOW_HTTP_ADDR=127.0.0.1",
                              "LIVEFLOW_TENCENT_KEY=" TENCENT_KEY,
                              "LIVEFLOW_AGORA_SECRET=" AGORA_SECRET,
                              "LIVEFLOW_ALIBABA_KEY=" ALIBABA_KEY,
                              "LIVEFLOW_ALIBABA_DOMAIN=" ALIBABA_DOMAIN,
                              "LIVEFLOW_HMAC_SECRET=whsec_" HMAC_B64,
                              NULL};
        struct support_proc *all[1 + ROLE_CNT] = {&fx.receiver};

        support_unique_name("lm", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        fx.mysql = support_mysql_connect(fx.mysql_url);
        fx.http_port = support_free_port();
        snprintf(e_http, sizeof(e_http), "LIVEFLOW_HTTP_PORT=%d", fx.http_port);
        support_proc_launch(&fx.receiver, fx.prefix, NULL, fx.mysql_url, NULL, NULL, renv);
        for (int i = 0; i < ROLE_CNT; i++) {
                snprintf(group, sizeof(group), "limits.%s.%s", fx.prefix, names[i]);
                support_proc_launch(&fx.roles[i], fx.prefix, names[i], fx.mysql_url, group,
                                    topics[i], NULL);
                all[1 + i] = &fx.roles[i];
        }
        support_procs_ready(all, 1 + ROLE_CNT);
}

static void stop(struct support_proc *p)
{
        if (p->pid > 0)
                kill(p->pid, SIGTERM);
}

/* Every process is asked to stop at once; one that does not within 10 s is killed. */
static void teardown(void)
{
        stop(&fx.receiver);
        for (int i = 0; i < ROLE_CNT; i++)
                stop(&fx.roles[i]);
        if (fx.receiver.pid > 0 && support_wait_exit(fx.receiver.pid, 10000) == -1)
                support_proc_stop(&fx.receiver);
        for (int i = 0; i < ROLE_CNT; i++)
                if (fx.roles[i].pid > 0 && support_wait_exit(fx.roles[i].pid, 10000) == -1)
                        support_proc_stop(&fx.roles[i]);
        if (fx.mysql)
                mysql_close(fx.mysql);
        memset(&fx, 0, sizeof(fx));
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------ requests */

/* A request to the receiver; its reply's status and body. */
static struct support_reply http_send(const char *method, const char *path, const char *body,
                                      const char *const headers[])
{
        return support_http(fx.http_port, method, path, body, headers);
}

/* An Agora NCS notice, signed (V2), with a sid beside the payload unless NULL. */
static struct support_reply post_agora_sid(const char *notice_id, int product, int type,
                                           const char *payload, const char *sid)
{
        char body[4096], v2[65], header[128];
        const char *headers[] = {header, NULL};

        snprintf(body, sizeof(body),
                 "{\"noticeId\":\"%s-%s\",\"productId\":%d,\"eventType\":%d,"
                 "\"notifyMs\":%lld,\"payload\":%s%s%s%s}",
                 fx.prefix, notice_id, product, type, (long long)time(NULL) * 1000, payload,
                 sid ? ",\"sid\":\"" : "", sid ? sid : "", sid ? "\"" : "");
        support_agora_sign(AGORA_SECRET, body, v2);
        snprintf(header, sizeof(header), "Agora-Signature-V2: %s", v2);
        return http_send("POST", "/callbacks/agora", body, headers);
}

static struct support_reply post_agora(const char *notice_id, int product, int type,
                                       const char *payload)
{
        return post_agora_sid(notice_id, product, type, payload, NULL);
}

/* An Alibaba request: a GET of query (ingest) when body is NULL, else a POST of body. */
static struct support_reply send_alibaba(const char *query, const char *body)
{
        char h_ts[64], h_sig[64], path[4096];
        const char *headers[] = {h_ts, h_sig, NULL};

        support_alibaba_headers(body ? "127.0.0.1" : ALIBABA_DOMAIN, ALIBABA_KEY, h_ts, h_sig);
        snprintf(path, sizeof(path), "/callbacks/alibaba%s%s", query ? "?" : "",
                 query ? query : "");
        return http_send(body ? "POST" : "GET", path, body, headers);
}

/* A Tencent callback: fields (without the braces) plus a valid t and sign. */
static struct support_reply post_tencent(const char *fields)
{
        char body[4096], sign[33];
        long long t = (long long)time(NULL) + 60;

        support_tencent_sign(TENCENT_KEY, t, sign);
        snprintf(body, sizeof(body), "{%s,\"t\":%lld,\"sign\":\"%s\"}", fields, t, sign);
        return http_send("POST", "/callbacks/tencent", body, NULL);
}

/* A Standard Webhooks POST /v1/events, signed independently of the receiver's code. */
static struct support_reply post_events(const char *id, const char *body)
{
        char ts[32], sig[64], h_id[128], h_ts[64], h_sig[160];
        const char *headers[] = {h_id, h_ts, h_sig, NULL};

        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
        snprintf(h_id, sizeof(h_id), "webhook-id: %s-%s", fx.prefix, id);
        support_webhook_sign(HMAC_B64, h_id + strlen("webhook-id: "), ts, body, strlen(body), sig);
        snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %s", ts);
        snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
        return http_send("POST", "/v1/events", body, headers);
}

/* ------------------------------------------------------------ values and rows */

/* prefix then repeat until the text is n characters long (unit is one character). */
static char *text_of(const char *prefix, const char *unit, size_t n)
{
        size_t plen = strlen(prefix), ulen = strlen(unit);
        char *s = malloc(plen + n * ulen + 1), *p = s;

        cr_assert(s != NULL && plen <= n);
        memcpy(p, prefix, plen);
        p += plen;
        for (size_t i = plen; i < n; i++, p += ulen)
                memcpy(p, unit, ulen);
        *p = '\0';
        return s;
}

/* Waits (up to 15 s) until the query's first column reads want. */
static void wait_value(const char *want, const char *fmt, const char *arg)
{
        support_wait_value(fx.mysql, 15000, fx.prefix, want, fmt, arg);
}

static void assert_refused(struct support_reply r, const char *field)
{
        cr_assert_eq(r.status, 400, "status %ld: %s", r.status, r.body);
        cr_assert(strstr(r.body, field) != NULL, "\"%s\" does not name %s", r.body, field);
}

/* ------------------------------------------------------------ tests */

Test(limits, agora_file_names_at_their_column_are_stored_and_one_more_is_400)
{
        char stream[64], p[4096];
        char *at = text_of("f", CJK, 128), *over = text_of("f", CJK, 129);
        struct support_reply r;

        snprintf(stream, sizeof(stream), "%s_ag", fx.prefix);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\"}", stream);
        cr_assert_eq(post_agora("begin", 7, 1, p).status, 200);
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\",\"fileName\":\"%s.mp4\"}", stream, over);
        assert_refused(post_agora("over", 7, 3, p), "file_id");
        /* The file id is the whole name: exactly 128 characters with ".mp4". */
        at[strlen(at) - 3 * 4] = '\0';
        snprintf(p, sizeof(p), "{\"streamName\":\"%s\",\"fileName\":\"%s.mp4\"}", stream, at);
        r = post_agora("at", 7, 3, p);
        cr_assert_eq(r.status, 200, "%s", r.body);
        snprintf(p, sizeof(p), "%s.mp4", at);
        wait_value(p,
                   "SELECT file_id FROM live_records WHERE vendor = 'agora' AND stream_id = '%s'",
                   stream);
        /* An RTC channel's sid is its session key (live_streams.vendor_session). */
        free(over);
        over = text_of("", "s", 129);
        snprintf(stream, sizeof(stream), "%s_rtc", fx.prefix);
        snprintf(p, sizeof(p), "{\"channelName\":\"%s\",\"ts\":%lld}", stream,
                 (long long)time(NULL));
        assert_refused(post_agora_sid("rtc-over", 1, 101, p, over), "sequence");
        over[128] = '\0';
        r = post_agora_sid("rtc-at", 1, 101, p, over);
        cr_assert_eq(r.status, 200, "%s", r.body);
        wait_value(over,
                   "SELECT vendor_session FROM live_streams WHERE vendor = 'agora' AND "
                   "stream_id = '%s'",
                   stream);
        free(at);
        free(over);
}

Test(limits, alibaba_recording_uris_at_their_column_are_stored_and_one_more_is_400)
{
        char stream[64], q[512], body[4096];
        char *at = text_of("r/", CJK, 124), *over = text_of("r/", CJK, 125);
        struct support_reply r;

        snprintf(stream, sizeof(stream), "%s_al", fx.prefix);
        snprintf(q, sizeof(q),
                 "action=publish&ip=10.0.0.1&id=%s&app=" ALIBABA_DOMAIN
                 "&appname=live&time=%lld&usrargs=anchor_id%%3D4242",
                 stream, (long long)time(NULL));
        r = send_alibaba(q, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        snprintf(body, sizeof(body),
                 "{\"domain\":\"play.example.com\",\"app\":\"live\",\"stream\":\"%s\","
                 "\"uri\":\"%s.mp4\",\"duration\":10}",
                 stream, over);
        assert_refused(send_alibaba(NULL, body), "file_id");
        snprintf(body, sizeof(body),
                 "{\"domain\":\"play.example.com\",\"app\":\"live\",\"stream\":\"%s\","
                 "\"uri\":\"%s.mp4\",\"duration\":10}",
                 stream, at);
        r = send_alibaba(NULL, body);
        cr_assert_eq(r.status, 200, "%s", r.body);
        snprintf(q, sizeof(q), "%s.mp4", at);
        wait_value(q,
                   "SELECT file_id FROM live_records WHERE vendor = 'alibaba' AND stream_id = '%s'",
                   stream);
        /* The anchor named as a number in usrargs is stored as that text. */
        wait_value("4242",
                   "SELECT anchor_id FROM live_streams WHERE vendor = 'alibaba' AND "
                   "stream_id = '%s'",
                   stream);
        free(at);
        free(over);
}

Test(limits, tencent_recording_ids_longer_than_their_column_are_400)
{
        char fields[4096], stream[64];
        char *at = text_of("v", CJK, 128), *over = text_of("v", CJK, 129);
        struct support_reply r;

        snprintf(stream, sizeof(stream), "%s_tc", fx.prefix);
        snprintf(fields, sizeof(fields),
                 "\"event_type\":100,\"stream_id\":\"%s\",\"channel_id\":\"%s\","
                 "\"file_id\":\"%s\",\"video_url\":\"http://v.example.com/1.mp4\","
                 "\"start_time\":%lld,\"end_time\":%lld,\"file_format\":\"mp4\"",
                 stream, stream, over, (long long)time(NULL) - 60, (long long)time(NULL));
        assert_refused(post_tencent(fields), "file_id");
        snprintf(fields, sizeof(fields),
                 "\"event_type\":100,\"stream_id\":\"%s\",\"channel_id\":\"%s\","
                 "\"file_id\":\"%s\",\"video_url\":\"http://v.example.com/1.mp4\","
                 "\"start_time\":%lld,\"end_time\":%lld,\"file_format\":\"mp4\"",
                 stream, stream, at, (long long)time(NULL) - 60, (long long)time(NULL));
        r = post_tencent(fields);
        cr_assert_eq(r.status, 200, "%s", r.body);
        wait_value(at,
                   "SELECT file_id FROM live_records WHERE vendor = 'tencent' AND stream_id = '%s'",
                   stream);
        free(at);
        free(over);
}

Test(limits, events_profiles_at_their_columns_are_stored_with_integer_ids_and_one_more_is_400)
{
        char body[4096], id[32];
        char *region = text_of("", CJK, 64), *over = text_of("", "r", 65);
        long long ts = (long long)time(NULL) * 1000;
        long long audience = 900000000000LL + (long long)(support_now_ms() % 1000000);
        struct support_reply r;

        snprintf(body, sizeof(body),
                 "{\"events\":[{\"event_id\":1,\"type\":\"profile\",\"ts\":%lld,"
                 "\"subject\":\"audience\",\"audience_id\":%lld,\"region\":\"%s\"}]}",
                 ts, audience, over);
        assert_refused(post_events("over", body), "events[0].region");
        snprintf(body, sizeof(body),
                 "{\"events\":[{\"event_id\":%lld,\"type\":\"profile\",\"ts\":%lld,"
                 "\"subject\":\"audience\",\"audience_id\":%lld,\"region\":\"%s\"}]}",
                 audience, ts, audience, region);
        r = post_events("at", body);
        cr_assert_eq(r.status, 200, "%s", r.body);
        snprintf(id, sizeof(id), "%lld", audience);
        wait_value(region, "SELECT region FROM audiences WHERE audience_id = '%s'", id);
        free(region);
        free(over);
}

Test(limits,
     agora_viewers_with_integer_uids_are_kept_and_rooms_the_audience_role_can_not_keep_are_400)
{
        char channel[256], p[1024];
        char *over = text_of("", CJK, 22); /* 22 characters, 66 bytes: over the role's 64 */
        struct support_reply r;

        snprintf(p, sizeof(p), "{\"channelName\":\"%s\",\"uid\":12345,\"ts\":%lld}", over,
                 (long long)time(NULL));
        assert_refused(post_agora("viewer-over", 1, 105, p), "room_id");
        /* A channel of exactly 64 characters; the uid, a JSON integer, is its decimal text. */
        snprintf(channel, sizeof(channel), "%s_", fx.prefix);
        while (strlen(channel) < 64)
                strcat(channel, "c");
        snprintf(p, sizeof(p), "{\"channelName\":\"%s\",\"uid\":12345,\"ts\":%lld}", channel,
                 (long long)time(NULL));
        r = post_agora("viewer-at", 1, 105, p);
        cr_assert_eq(r.status, 200, "%s", r.body);
        wait_value("agora:12345", "SELECT audience_key FROM audience_visit WHERE room_id = '%s'",
                   channel);
        free(over);
}
