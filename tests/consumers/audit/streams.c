/* streams.c: test_audit's malformed verdicts on the DLQ, and the audit role with the stream role:
 * severe verdicts closing live streams, a kill mid-backlog, two instances on the same anchors. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "audit.h"
#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "url.h"

#include "fixture.h"

Test(audit, malformed_verdicts_go_to_the_dlq_and_the_partition_moves_on)
{
        char key[64], event_id[65];
        struct support_dead_letter dead[7];
        char group[96];
        json_t *payload;
        struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = "audit.image",
                .stream_id = key,
                .anchor_id = key,
                .event_time_ms = fx.t0_ms,
                .receive_time_ms = fx.t0_ms,
                .trace_id = TRACE_ID,
                .raw = "{}",
                .raw_len = 2,
        };

        name(key, sizeof(key), "bad");
        snprintf(group, sizeof(group), "test.%s.audit", fx.w.prefix);
        produce_raw("live.audit", key, "\xc3\x01garbage", 9, "audit.image");
        event_id_of("wrong_payload", event_id);
        payload = json_pack("{s:s}", "sequence", "1");
        encode_and_send(&env, "StreamBegin", payload, key);
        json_decref(payload);
        verdict(&(struct vspec){.id = "video",
                                .event_type = "audit.video",
                                .stream = key,
                                .anchor = key,
                                .suggestion = "Block"});
        verdict(&(struct vspec){
                .id = "score", .stream = key, .anchor = key, .suggestion = "Block", .score = 150});
        verdict(&(struct vspec){.id = "suggestion",
                                .stream = key,
                                .anchor = key,
                                .suggestion = "Maybe",
                                .score = 90});
        verdict(&(struct vspec){
                .id = "admin", .event_type = "audit.admin", .stream = key, .action = "ban"});
        verdict(&(struct vspec){.id = "action",
                                .event_type = "audit.admin",
                                .stream = key,
                                .anchor = key,
                                .action = "mute"});
        verdict(&(struct vspec){
                .id = "good", .stream = key, .anchor = key, .suggestion = "Review", .score = 70});
        wait_logged("good");
        cr_assert_eq(
                query_int(
                        "SELECT COUNT(*) FROM live_audit_logs WHERE stream_id = '%s' OR anchor_id = '%s'",
                        key, key),
                1, "only the good verdict may leave a row");
        expect_anchor(key, "active", 0, 1);
        cr_assert_eq(support_dead_letters("live.audit", key, group, dead, 7, 20000), 7,
                     "want 7 dead letters of %s", group);
        for (int i = 0; i < 7; i++) {
                cr_assert_str_eq(dead[i].error_class, "permanent", "%s", dead[i].message);
                cr_assert(dead[i].has_headers, "dlq.* and trace_id headers missing");
        }
        stop_cleanly(&fx.audit_pid);
}

/* ------------------------------------------------------------------ with the stream role */

struct close_seen {
        int count;
        char event_ids[MAX_CLOSES][65];
        long long close_method;
        char reason[64], vendor[16], trace_id[64], header_type[32], header_trace[64];
};

/* Keeps the stream.close records of the stream's key (its begin is there too). */
static bool on_close(const rd_kafka_message_t *m, void *arg)
{
        struct close_seen *c = arg;
        struct event ev;
        char err[256];
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;

        if (rd_kafka_message_headers(m, &h) != 0 ||
            rd_kafka_header_get_last(h, "event_type", &v, &len) != 0 || len != 12 ||
            memcmp(v, "stream.close", 12) != 0)
                return false;
        snprintf(c->header_type, sizeof(c->header_type), "%.*s", (int)len, (const char *)v);
        cr_assert(codec_decode(fx.w.codec, m->payload, m->len, &ev, err, sizeof(err)) == 0, "%s",
                  err);
        if (c->count < MAX_CLOSES)
                snprintf(c->event_ids[c->count], 65, "%s", ev.event_id);
        c->count++;
        c->close_method = json_integer_value(json_object_get(ev.payload, "close_method"));
        snprintf(c->reason, sizeof(c->reason), "%s",
                 json_string_value(json_object_get(ev.payload, "reason")));
        snprintf(c->vendor, sizeof(c->vendor), "%s", ev.vendor);
        snprintf(c->trace_id, sizeof(c->trace_id), "%s", ev.trace_id);
        if (rd_kafka_header_get_last(h, "trace_id", &v, &len) == 0)
                snprintf(c->header_trace, sizeof(c->header_trace), "%.*s", (int)len,
                         (const char *)v);
        event_fini(&ev);
        return true;
}

static void stream_begin(const char *stream_id, const char *anchor)
{
        char key[128], event_id[65];
        json_t *payload = json_pack("{s:s}", "sequence", "7001");
        struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = "stream.begin",
                .stream_id = stream_id,
                .anchor_id = anchor,
                .room_id = anchor,
                .event_time_ms = fx.t0_ms,
                .receive_time_ms = fx.t0_ms,
                .trace_id = TRACE_ID,
                .raw = "{}",
                .raw_len = 2,
        };
        char err[256];
        void *buf;
        size_t len;

        snprintf(key, sizeof(key), "tencent|1|%s|7001", stream_id);
        crypto_sha256_hex(key, strlen(key), event_id);
        cr_assert(codec_encode(fx.w.codec, &env, "StreamBegin", payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        json_decref(payload);
        produce_raw("live.stream", stream_id, buf, len, "stream.begin");
        free(buf);
}

static void wait_stream_status(const char *stream_id, const char *want)
{
        char got[16] = "";
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                query1(got, sizeof(got), "SELECT status FROM live_streams WHERE stream_id = '%s'",
                       stream_id);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("stream %s is \"%s\", want \"%s\" (log %s)", stream_id, got, want,
                       fx.w.log_path);
}

static bool is_online(const char *stream_id)
{
        redisReply *r = redisCommand(fx.redis, "SISMEMBER set:live:online %s", stream_id);
        bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

        freeReplyObject(r);
        return yes;
}

static bool wait_online(const char *stream_id, bool want)
{
        long long deadline = support_now_ms() + 10000;

        while (is_online(stream_id) != want && support_now_ms() < deadline)
                support_sleep_ms(20);
        return is_online(stream_id) == want;
}

/* Waits until the consumers' log has a line with both words (the stream role logs duplicates). */
static void wait_in_log(const char *what, const char *id)
{
        long long deadline = support_now_ms() + 20000;

        while (support_now_ms() < deadline) {
                size_t len;
                char *log = support_read_file(fx.w.log_path, &len);
                bool found = false;

                for (char *line = log; line && *line && !found;) {
                        char *end = strchr(line, '\n');

                        if (end)
                                *end = '\0';
                        found = strstr(line, what) && strstr(line, id);
                        line = end ? end + 1 : NULL;
                }
                free(log);
                if (found)
                        return;
                support_sleep_ms(100);
        }
        cr_assert_fail("no \"%s\" line for %s in %s", what, id, fx.w.log_path);
}

Test(audit, a_severe_verdict_ends_the_live_stream_through_the_stream_role_once)
{
        char stream[64], anchor[64], got[32];
        struct close_seen c = {0};

        name(stream, sizeof(stream), "live");
        name(anchor, sizeof(anchor), "star");
        fx.stream_pid = start_role("stream", "stream");
        stream_begin(stream, anchor);
        wait_stream_status(stream, "live");
        cr_assert(wait_online(stream, true));

        verdict(&(struct vspec){.id = "terror",
                                .stream = stream,
                                .anchor = anchor,
                                .at_s = 5,
                                .suggestion = "Block",
                                .label = "Terror",
                                .score = 99});
        wait_stream_status(stream, "ended");
        query1(got, sizeof(got), "SELECT close_method FROM live_streams WHERE stream_id = '%s'",
               stream);
        cr_assert_str_eq(got, "3");
        cr_assert(wait_online(stream, false), "%s still in set:live:online", stream);
        expect_anchor(anchor, "banned", 0, 0);
        expect_redis(anchor, "banned", 0);
        log_col(got, sizeof(got), "terror", "close_stream_id");
        cr_assert_str_eq(got, stream);

        /* A replay of live.audit (a new group reads it again) sends the very same close. */
        stop_cleanly(&fx.audit_pid);
        fx.audit_pid = start_role("audit", "audit.replay");
        cr_assert_eq(support_scan_topic("live.stream", stream, 2, 20000, on_close, &c), 2,
                     "want two closes of %s", stream);
        cr_assert_str_eq(c.event_ids[0], c.event_ids[1],
                         "a replayed verdict must yield the same close event id");
        cr_assert_eq(c.close_method, 3);
        cr_assert_str_eq(c.reason, "Terror");
        cr_assert_str_eq(c.vendor, "internal");
        cr_assert_str_eq(c.trace_id, TRACE_ID);
        cr_assert_str_eq(c.header_type, "stream.close");
        cr_assert_str_eq(c.header_trace, TRACE_ID);
        wait_in_log("duplicate event", c.event_ids[0]);
        cr_assert_eq(query_int("SELECT COUNT(*) FROM live_events WHERE stream_id = '%s'", stream),
                     2, "the stream role must record the close once");
        cr_assert_eq(
                query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id = '%s'", anchor),
                1);
        expect_anchor(anchor, "banned", 0, 0);
        stop_cleanly(&fx.audit_pid);
        stop_cleanly(&fx.stream_pid);
}

/*
 * A backlog of punishments for anchors that are live, taken in one batch: each closes its
 * anchor's stream with one stream.close (the batch sends them together and waits for the
 * broker once), each with the event id its verdict derives.
 */
Test(audit, a_batch_of_punishments_closes_every_punished_live_stream)
{
        enum { N = 6 };
        static const char *const ids[N] = {"batch0", "batch1", "batch2",
                                           "batch3", "batch4", "batch5"};
        char streams[N][64], anchors[N][64], sql[1024], got[160];

        stop_cleanly(&fx.audit_pid);
        for (int i = 0; i < N; i++) {
                char what[16];

                snprintf(what, sizeof(what), "bl%d", i);
                name(streams[i], sizeof(streams[i]), what);
                snprintf(what, sizeof(what), "ba%d", i);
                name(anchors[i], sizeof(anchors[i]), what);
                snprintf(sql, sizeof(sql),
                         "INSERT INTO live_streams (stream_id, anchor_id, vendor, status, "
                         "started_at, last_event_at) VALUES ('%s', '%s', 'tencent', 'live', "
                         "NOW(3), NOW(3))",
                         streams[i], anchors[i]);
                cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
                verdict(&(struct vspec){.id = ids[i],
                                        .stream = streams[i],
                                        .anchor = anchors[i],
                                        .at_s = i,
                                        .suggestion = "Block",
                                        .label = i % 2 ? "Terror" : "Porn",
                                        .score = 99});
        }
        fx.audit_pid = start_role("audit", "audit");
        for (int i = 0; i < N; i++) {
                struct close_seen c = {0};
                char close_key[160], want_id[65], event_id[65];

                wait_logged(ids[i]);
                log_col(got, sizeof(got), ids[i], "CONCAT(close_stream_id, '/', close_method)");
                cr_assert(strncmp(got, streams[i], strlen(streams[i])) == 0 &&
                                  strcmp(got + strlen(streams[i]), "/3") == 0,
                          "verdict %s closes %s", ids[i], got);
                cr_assert_eq(support_scan_topic("live.stream", streams[i], 1, 20000, on_close, &c),
                             1, "no stream.close of %s (log %s)", streams[i], fx.w.log_path);
                event_id_of(ids[i], event_id);
                snprintf(close_key, sizeof(close_key), "audit.close|%s", event_id);
                crypto_sha256_hex(close_key, strlen(close_key), want_id);
                cr_assert_str_eq(c.event_ids[0], want_id, "the close of %s", streams[i]);
                cr_assert_eq(c.close_method, 3);
                cr_assert_str_eq(c.reason, i % 2 ? "Terror" : "Porn");
        }
        stop_cleanly(&fx.audit_pid);
}

/*
 * kill -9 while a backlog is applied, then a restart: whatever the kill interrupted (a batch's
 * transaction, or the publish and the offsets after its commit), every verdict ends applied
 * once: one log row each, each anchor's warning_count its warnings, one notification each.
 */
Test(audit, a_kill_mid_backlog_applies_every_verdict_once)
{
        enum { N = 600, ANCHORS = 7 };
        char anchors[ANCHORS][64], id[32];
        long long deadline, logged = 0;

        stop_cleanly(&fx.audit_pid);
        for (int a = 0; a < ANCHORS; a++) {
                char what[16];

                snprintf(what, sizeof(what), "k%d", a);
                name(anchors[a], sizeof(anchors[a]), what);
        }
        for (int i = 0; i < N; i++) {
                snprintf(id, sizeof(id), "kill%d", i);
                verdict(&(struct vspec){.id = id,
                                        .anchor = anchors[i % ANCHORS],
                                        .at_s = -(i % 50) * 600,
                                        .suggestion = i % 10 == 9 ? "Block" : "Review",
                                        .label = "Porn",
                                        .score = i % 10 == 9 ? 95 : 70});
        }
        fx.audit_pid = start_role("audit", "audit");
        deadline = support_now_ms() + 20000;
        while (support_now_ms() < deadline &&
               (logged = query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE "
                                   "'%s\\_k%%'",
                                   fx.w.prefix)) == 0)
                support_sleep_ms(2);
        cr_assert(kill(fx.audit_pid, SIGKILL) == 0);
        support_wait_exit(fx.audit_pid, 5000);
        fx.audit_pid = start_role("audit", "audit");
        deadline = support_now_ms() + 60000;
        while (support_now_ms() < deadline &&
               query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE '%s\\_k%%'",
                         fx.w.prefix) < N)
                support_sleep_ms(50);
        cr_assert_eq(query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE "
                               "'%s\\_k%%'",
                               fx.w.prefix),
                     N, "log rows after the restart (%lld when killed; log %s)", logged,
                     fx.w.log_path);
        for (int a = 0; a < ANCHORS; a++) {
                long long warns = query_int("SELECT COUNT(*) FROM live_audit_logs WHERE "
                                            "anchor_id = '%s' AND severity = 'warn'",
                                            anchors[a]);
                long long notes = query_int("SELECT COUNT(*) FROM notify_messages WHERE "
                                            "anchor_id = '%s'",
                                            anchors[a]);
                long long logs = query_int("SELECT COUNT(*) FROM live_audit_logs WHERE "
                                           "anchor_id = '%s' AND punishment <> 'none'",
                                           anchors[a]);

                cr_expect_eq(query_int("SELECT warning_count FROM anchors WHERE anchor_id = '%s'",
                                       anchors[a]),
                             warns, "anchor %s", anchors[a]);
                cr_expect_eq(notes, logs, "notifications of anchor %s", anchors[a]);
        }
        stop_cleanly(&fx.audit_pid);
}

/*
 * Two instances in one group share the partitions; the verdicts of each anchor come through
 * several partitions (their streams differ), so both lock the same anchors rows, new ones
 * included, at once. Each verdict is applied once: one log row, each anchor's warning_count
 * its warnings, one notification per punishment.
 */
Test(audit, two_instances_on_the_same_anchors_apply_every_verdict_once)
{
        enum { N = 300, ANCHORS = 5 };
        char anchors[ANCHORS][64], id[32], stream[64];
        long long deadline;
        pid_t second;

        stop_cleanly(&fx.audit_pid);
        for (int a = 0; a < ANCHORS; a++) {
                char what[16];

                snprintf(what, sizeof(what), "two%d", a);
                name(anchors[a], sizeof(anchors[a]), what);
        }
        fx.audit_pid = start_role("audit", "audit.two");
        second = fx.stream_pid = start_role("audit", "audit.two");
        for (int i = 0; i < N; i++) {
                char what[16];

                snprintf(id, sizeof(id), "two%d", i);
                snprintf(what, sizeof(what), "tws%d", i);
                name(stream, sizeof(stream), what);
                verdict(&(struct vspec){.id = id,
                                        .stream = stream,
                                        .anchor = anchors[i % ANCHORS],
                                        .at_s = -(i % 40) * 900,
                                        .suggestion = i % 7 == 6 ? "Block" : "Review",
                                        .label = "Porn",
                                        .score = i % 7 == 6 ? 95 : 70});
        }
        deadline = support_now_ms() + 60000;
        while (support_now_ms() < deadline &&
               query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE '%s\\_two%%'",
                         fx.w.prefix) < N)
                support_sleep_ms(50);
        cr_assert_eq(query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE "
                               "'%s\\_two%%'",
                               fx.w.prefix),
                     N, "log rows (log %s)", fx.w.log_path);
        for (int a = 0; a < ANCHORS; a++) {
                long long warns = query_int("SELECT COUNT(*) FROM live_audit_logs WHERE "
                                            "anchor_id = '%s' AND severity = 'warn'",
                                            anchors[a]);
                long long logs = query_int("SELECT COUNT(*) FROM live_audit_logs WHERE "
                                           "anchor_id = '%s' AND punishment <> 'none'",
                                           anchors[a]);

                cr_expect_eq(query_int("SELECT warning_count FROM anchors WHERE anchor_id = '%s'",
                                       anchors[a]),
                             warns, "anchor %s", anchors[a]);
                cr_expect_eq(
                        query_int("SELECT COUNT(*) FROM notify_messages WHERE anchor_id = '%s'",
                                  anchors[a]),
                        logs, "notifications of anchor %s", anchors[a]);
        }
        stop_cleanly(&fx.audit_pid);
        stop_cleanly(&second);
        fx.stream_pid = 0;
}
