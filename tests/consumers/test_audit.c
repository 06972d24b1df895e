/* test_audit.c: the audit role, run as its binary against the real fixtures (and with the stream
 * role). */
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

#define TRACE_ID   "feedfacefeedfacefeedfacefeedface"
#define SUSPEND_S  86400LL
#define MAX_CLOSES 8

struct fixture {
        char mysql_url[512], log_path[256], prefix[48];
        pid_t audit_pid, stream_pid;
        rd_kafka_t *producer;
        struct codec *codec;
        MYSQL *mysql;
        redisContext *redis;
        long long t0_ms; /* now, rounded to the second: suspensions from it are in force */
};

static struct fixture fx;

/* ------------------------------------------------------------------ processes */

static pid_t start_role(const char *role, const char *group)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_group[128];
        char *argv[] = {bin, (char *)role, NULL};
        char *env[] = {e_boot,
                       e_mysql,
                       e_redis,
                       e_admin,
                       e_group,
                       (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                       (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50",
                       (char *)"LIVEFLOW_LOG_LEVEL=debug",
                       (char *)"LIVEFLOW_AUDIT_WARN_ESCALATE=3",
                       (char *)"LIVEFLOW_AUDIT_WARN_WINDOW_S=86400",
                       (char *)"LIVEFLOW_AUDIT_SUSPEND_S=86400",
                       NULL};
        int admin_port = support_free_port();
        pid_t pid;

        support_bin_path("liveflow-consumer", bin, sizeof(bin));
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", admin_port);
        /* Tests run in parallel: each needs every partition, so each gets its own group. */
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=test.%s.%s", fx.prefix, group);
        pid = support_spawn(argv, env, fx.log_path);
        cr_assert(support_wait_ready(admin_port, 20000) == 0, "%s not ready; see %s", role,
                  fx.log_path);
        return pid;
}

static void stop_cleanly(pid_t *pid)
{
        cr_assert(kill(*pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(*pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     fx.log_path);
        *pid = 0;
}

static void connect_stores(void)
{
        struct mysql_url u;
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        cr_assert(url_parse_mysql(fx.mysql_url, &u, err, sizeof(err)) == 0, "%s", err);
        fx.mysql = mysql_init(NULL);
        cr_assert(mysql_real_connect(fx.mysql, u.host, u.user, u.password, u.database, u.port, NULL,
                                     0),
                  "%s", mysql_error(fx.mysql));
        cr_assert(mysql_query(fx.mysql, "SET time_zone = '+00:00'") == 0);
        fx.redis = redisConnect("127.0.0.1", atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT")));
        cr_assert(fx.redis && !fx.redis->err);
        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err,
                                    sizeof(err)) == RD_KAFKA_CONF_OK);
        /* the records of one key share a partition with those liveflow's producers write */
        cr_assert(rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)) ==
                  RD_KAFKA_CONF_OK);
        fx.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        cr_assert(fx.producer, "%s", err);
        cr_assert((fx.codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
}

static void setup(void)
{
        support_unique_name("au", fx.prefix, sizeof(fx.prefix));
        snprintf(fx.log_path, sizeof(fx.log_path), "/tmp/%s.consumer.log", fx.prefix);
        fx.t0_ms = (long long)time(NULL) * 1000;
        connect_stores();
        fx.audit_pid = start_role("audit", "audit");
}

static void kill_left(pid_t pid)
{
        if (pid > 0 && support_wait_exit(pid, 0) == -1) {
                kill(pid, SIGKILL);
                support_wait_exit(pid, 5000);
        }
}

static void teardown(void)
{
        kill_left(fx.audit_pid);
        kill_left(fx.stream_pid);
        if (fx.producer)
                rd_kafka_destroy(fx.producer);
        codec_destroy(fx.codec);
        if (fx.mysql)
                mysql_close(fx.mysql);
        if (fx.redis)
                redisFree(fx.redis);
        memset(&fx, 0, sizeof(fx));
}

/* ------------------------------------------------------------------ producing */

static void produce_raw(const char *topic, const char *key, const void *value, size_t len,
                        const char *event_type)
{
        cr_assert(rd_kafka_producev(
                          fx.producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", TRACE_ID, -1),
                          RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(fx.producer, 10000) == 0);
}

/* A verdict as the receiver would produce it. score and suspend_s: 0 means absent. */
struct vspec {
        const char *id;         /* unique in the test: the event id derives from it */
        const char *event_type; /* default audit.image */
        const char *stream, *anchor;
        long long at_s; /* event time: t0 + at_s */
        const char *action, *suggestion, *label, *reason;
        int score;
        long long suspend_s;
};

static void event_id_of(const char *id, char out[65])
{
        char key[128];

        snprintf(key, sizeof(key), "test|%s|%s", fx.prefix, id);
        crypto_sha256_hex(key, strlen(key), out);
}

static void encode_and_send(const struct envelope *env, const char *payload_name, json_t *payload,
                            const char *key)
{
        char err[256];
        void *buf;
        size_t len;

        cr_assert(codec_encode(fx.codec, env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        produce_raw("live.audit", key, buf, len, env->event_type);
        free(buf);
}

static void verdict(const struct vspec *v)
{
        const char *type = v->event_type ? v->event_type : "audit.image";
        bool is_admin = strcmp(type, "audit.admin") == 0;
        json_t *payload = json_pack("{s:s}", "source", is_admin ? "admin" : "tencent.image");
        char event_id[65];
        struct envelope env = {
                .event_id = event_id,
                .vendor = is_admin ? "admin" : "tencent",
                .event_type = type,
                .stream_id = v->stream,
                .anchor_id = v->anchor,
                .room_id = NULL,
                .event_time_ms = fx.t0_ms + v->at_s * 1000,
                .receive_time_ms = fx.t0_ms + v->at_s * 1000 + 3,
                .trace_id = TRACE_ID,
                .raw = "{}",
                .raw_len = 2,
        };

        event_id_of(v->id, event_id);
        if (v->action)
                json_object_set_new(payload, "action", json_string(v->action));
        if (v->suggestion)
                json_object_set_new(payload, "suggestion", json_string(v->suggestion));
        if (v->label)
                json_object_set_new(payload, "label", json_string(v->label));
        if (v->reason)
                json_object_set_new(payload, "reason", json_string(v->reason));
        if (v->score)
                json_object_set_new(payload, "score", json_integer(v->score));
        if (v->suspend_s)
                json_object_set_new(payload, "suspend_s", json_integer(v->suspend_s));
        encode_and_send(&env, "AuditVerdict", payload, v->stream ? v->stream : v->anchor);
        json_decref(payload);
}

/* ------------------------------------------------------------------ reading MySQL and Redis */

static void query1(char *out, size_t out_size, const char *fmt, ...)
{
        char sql[1024];
        va_list ap;
        MYSQL_RES *res;
        MYSQL_ROW row;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        out[0] = '\0';
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.mysql));
        res = mysql_store_result(fx.mysql);
        if (res && (row = mysql_fetch_row(res)) && row[0])
                snprintf(out, out_size, "%s", row[0]);
        if (res)
                mysql_free_result(res);
}

static long long query_int(const char *fmt, ...)
{
        char sql[1024], out[64];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        query1(out, sizeof(out), "%s", sql);
        return atoll(out);
}

/* A column of the verdict's log row, as text ("" for NULL or no row). */
static void log_col(char *out, size_t out_size, const char *id, const char *col)
{
        char event_id[65];

        event_id_of(id, event_id);
        query1(out, out_size, "SELECT %s FROM live_audit_logs WHERE event_id = '%s'", col,
               event_id);
}

static void wait_logged(const char *id)
{
        char event_id[65];
        long long deadline = support_now_ms() + 20000;

        event_id_of(id, event_id);
        while (support_now_ms() < deadline) {
                if (query_int("SELECT COUNT(*) FROM live_audit_logs WHERE event_id = '%s'",
                              event_id) == 1)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("verdict %s was not logged (consumer log: %s)", id, fx.log_path);
}

static void anchor_col(char *out, size_t out_size, const char *anchor, const char *col)
{
        query1(out, out_size, "SELECT %s FROM anchors WHERE anchor_id = '%s'", col, anchor);
}

static void expect_log(const char *id, const char *punishment, const char *outcome)
{
        char got[64];

        log_col(got, sizeof(got), id, "punishment");
        cr_assert_str_eq(got, punishment, "verdict %s", id);
        log_col(got, sizeof(got), id, "outcome");
        cr_assert_str_eq(got, outcome, "verdict %s", id);
}

static void expect_anchor(const char *anchor, const char *status, long long until_ms,
                          long long warnings)
{
        char got[64];

        anchor_col(got, sizeof(got), anchor, "status");
        cr_assert_str_eq(got, status, "anchor %s", anchor);
        anchor_col(got, sizeof(got), anchor,
                   "CAST(UNIX_TIMESTAMP(suspended_until) * 1000 AS SIGNED)");
        cr_assert_eq(atoll(got), until_ms, "anchor %s suspended_until %s, want %lld", anchor, got,
                     until_ms);
        anchor_col(got, sizeof(got), anchor, "warning_count");
        cr_assert_eq(atoll(got), warnings, "anchor %s warning_count %s", anchor, got);
}

static void redis_field(const char *anchor, const char *field, char *out, size_t out_size)
{
        redisReply *r = redisCommand(fx.redis, "HGET hash:anchor:status:%s %s", anchor, field);

        out[0] = '\0';
        if (r && r->type == REDIS_REPLY_STRING)
                snprintf(out, out_size, "%s", r->str);
        freeReplyObject(r);
}

/* Redis follows MySQL right after the commit: wait for it rather than race it. */
static void expect_redis(const char *anchor, const char *status, long long until_ms)
{
        char got[32] = "", until[32] = "", want_until[32];
        long long deadline = support_now_ms() + 10000;

        snprintf(want_until, sizeof(want_until), "%lld", until_ms);
        do {
                redis_field(anchor, "anchor_status", got, sizeof(got));
                redis_field(anchor, "suspended_until", until, sizeof(until));
                if (strcmp(got, status) == 0 && strcmp(until, want_until) == 0)
                        return;
                support_sleep_ms(20);
        } while (support_now_ms() < deadline);
        cr_assert_fail("hash:anchor:status:%s has anchor_status=%s suspended_until=%s, want %s %s",
                       anchor, got, until, status, want_until);
}

static void name(char *out, size_t out_size, const char *what)
{
        snprintf(out, out_size, "%s_%s", fx.prefix, what);
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ grading and punishment */

Test(audit_grade, suggestion_score_and_label_grade_a_verdict)
{
        struct audit_policy p = {
                .warn_score = 60, .suspend_score = 90, .ban_labels = "Polity, terror"};

        cr_assert_eq(audit_grade_verdict(&p, "Pass", "Porn", 99), AUDIT_NONE);
        cr_assert_eq(audit_grade_verdict(&p, "Block", "Porn", 59), AUDIT_NONE,
                     "below the warn score");
        cr_assert_eq(audit_grade_verdict(&p, NULL, NULL, -1), AUDIT_NONE, "nothing to go on");
        cr_assert_eq(audit_grade_verdict(&p, "Review", "Porn", 60), AUDIT_WARN);
        cr_assert_eq(audit_grade_verdict(&p, "Review", "Polity", 99), AUDIT_WARN,
                     "only a Block bans");
        cr_assert_eq(audit_grade_verdict(&p, NULL, "Abuse", 92), AUDIT_WARN,
                     "a bare score (audio)");
        cr_assert_eq(audit_grade_verdict(&p, "Block", "Porn", 89), AUDIT_WARN, "a weak Block");
        cr_assert_eq(audit_grade_verdict(&p, "block", "Porn", 90), AUDIT_SUSPEND);
        cr_assert_eq(audit_grade_verdict(&p, "Block", "Porn", -1), AUDIT_SUSPEND,
                     "a Block without a score");
        cr_assert_eq(audit_grade_verdict(&p, "Block", "Terror", 61), AUDIT_BAN,
                     "labels compare without case");
        cr_assert_eq(audit_grade_verdict(&p, "Block", "Polity", 99), AUDIT_BAN);
        cr_assert_eq(audit_grade_verdict(&p, "Block", "Politybis", 99), AUDIT_SUSPEND,
                     "whole labels only");
}

Test(audit_grade, a_suspend_score_below_the_warn_score_is_a_configuration_error)
{
        char bin[512];

        support_bin_path("liveflow-consumer", bin, sizeof(bin));
        cr_assert_eq(
                support_sh(
                        "LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:9 LIVEFLOW_MYSQL_URL=mysql://u:p@127.0.0.1:9/d "
                        "LIVEFLOW_REDIS_URL=redis://127.0.0.1:9/0 LIVEFLOW_AUDIT_WARN_SCORE=80 "
                        "LIVEFLOW_AUDIT_SUSPEND_SCORE=70 '%s' --check-config audit 2>/dev/null",
                        bin),
                2);
        cr_assert_eq(
                support_sh(
                        "LIVEFLOW_KAFKA_BOOTSTRAP=127.0.0.1:9 LIVEFLOW_MYSQL_URL=mysql://u:p@127.0.0.1:9/d "
                        "LIVEFLOW_REDIS_URL=redis://127.0.0.1:9/0 LIVEFLOW_AUDIT_WARN_SCORE=70 "
                        "LIVEFLOW_AUDIT_SUSPEND_SCORE=70 '%s' --check-config audit >/dev/null",
                        bin),
                0);
}

Test(audit, verdicts_are_graded_logged_and_projected_to_redis)
{
        char pass[64], low[64], warn[64], susp[64], ban[64], got[64];
        long long until = fx.t0_ms + 10 * 1000 + SUSPEND_S * 1000;
        redisReply *r;

        name(pass, sizeof(pass), "pass");
        name(low, sizeof(low), "low");
        name(warn, sizeof(warn), "warn");
        name(susp, sizeof(susp), "susp");
        name(ban, sizeof(ban), "ban");
        /* The stream role's fields of the same hash must survive the audit role's writes. */
        r = redisCommand(fx.redis, "HSET hash:anchor:status:%s status live stream_id s_%s", susp,
                         susp);
        freeReplyObject(r);
        verdict(&(struct vspec){.id = "pass",
                                .stream = pass,
                                .anchor = pass,
                                .suggestion = "Pass",
                                .label = "Porn",
                                .score = 99});
        verdict(&(struct vspec){.id = "low",
                                .stream = low,
                                .anchor = low,
                                .suggestion = "Review",
                                .label = "Porn",
                                .score = 30});
        verdict(&(struct vspec){.id = "warn",
                                .stream = warn,
                                .anchor = warn,
                                .suggestion = "Review",
                                .label = "Porn",
                                .score = 70});
        verdict(&(struct vspec){.id = "susp",
                                .stream = susp,
                                .anchor = susp,
                                .at_s = 10,
                                .suggestion = "Block",
                                .label = "Porn",
                                .score = 95});
        verdict(&(struct vspec){.id = "ban",
                                .stream = ban,
                                .anchor = ban,
                                .suggestion = "Block",
                                .label = "Polity",
                                .score = 80});
        wait_logged("pass");
        wait_logged("low");
        wait_logged("warn");
        wait_logged("susp");
        wait_logged("ban");

        expect_log("pass", "none", "applied");
        expect_log("low", "none", "applied");
        expect_log("warn", "warn", "applied");
        expect_log("susp", "suspend", "applied");
        expect_log("ban", "ban", "applied");
        log_col(got, sizeof(got), "susp",
                "CONCAT_WS('/', stream_id, anchor_id, source, suggestion, label, score)");
        cr_assert(strstr(got, "tencent.image/Block/Porn/95"), "%s", got);
        expect_anchor(pass, "active", 0, 0);
        expect_anchor(warn, "active", 0, 1);
        expect_anchor(susp, "suspended", until, 0);
        expect_anchor(ban, "banned", 0, 0);
        expect_redis(warn, "active", 0);
        expect_redis(susp, "suspended", until);
        expect_redis(ban, "banned", 0);
        redis_field(susp, "status", got, sizeof(got));
        cr_assert_str_eq(got, "live", "the stream role's status field was touched");
        redis_field(susp, "stream_id", got, sizeof(got));
        cr_assert(strncmp(got, "s_", 2) == 0, "the stream role's stream_id field was touched");
        /* live.notify: one per punishment, none for a verdict that punishes nothing. */
        {
                static const char *const kinds[][2] = {{"warn", "anchor.warned"},
                                                       {"susp", "anchor.suspended"},
                                                       {"ban", "anchor.banned"},
                                                       {"pass", NULL},
                                                       {"low", NULL}};
                const char *anchors[] = {warn, susp, ban, pass, low};
                long long deadline = support_now_ms() + 20000;

                while (query_int("SELECT COUNT(*) FROM notify_outbox WHERE sent_at IS NOT NULL "
                                 "AND anchor_id IN ('%s', '%s', '%s')",
                                 warn, susp, ban) < 3 &&
                       support_now_ms() < deadline)
                        support_sleep_ms(100);
                for (int i = 0; i < 5; i++)
                        cr_assert_eq(query_int("SELECT COUNT(*) FROM notify_outbox WHERE "
                                               "anchor_id = '%s' AND sent_at IS NOT NULL%s%s%s",
                                               anchors[i], kinds[i][1] ? " AND kind = '" : "",
                                               kinds[i][1] ? kinds[i][1] : "",
                                               kinds[i][1] ? "'" : ""),
                                     kinds[i][1] ? 1 : 0, "notifications of %s", kinds[i][0]);
                cr_assert_eq(query_int("SELECT COUNT(*) FROM notify_outbox WHERE anchor_id = '%s' "
                                       "AND payload LIKE '%%\"until_ms\":%lld%%'",
                                       susp, until),
                             1);
        }
        stop_cleanly(&fx.audit_pid);
}

Test(audit, warnings_escalate_within_the_window_whatever_their_order)
{
        char esc[64], far[64], got[16];

        name(esc, sizeof(esc), "esc");
        name(far, sizeof(far), "far");
        /* Three warnings within a minute, arriving latest first. */
        verdict(&(struct vspec){.id = "w3",
                                .stream = esc,
                                .anchor = esc,
                                .at_s = 120,
                                .suggestion = "Review",
                                .label = "Porn",
                                .score = 70});
        verdict(&(struct vspec){.id = "w1",
                                .stream = esc,
                                .anchor = esc,
                                .at_s = 0,
                                .suggestion = "Review",
                                .label = "Porn",
                                .score = 70});
        verdict(&(struct vspec){.id = "w2",
                                .stream = esc,
                                .anchor = esc,
                                .at_s = 60,
                                .suggestion = "Review",
                                .label = "Ad",
                                .score = 75});
        /* Three warnings more than a window apart from each other. */
        verdict(&(struct vspec){.id = "f1",
                                .stream = far,
                                .anchor = far,
                                .at_s = -200000,
                                .suggestion = "Review",
                                .score = 70});
        verdict(&(struct vspec){.id = "f2",
                                .stream = far,
                                .anchor = far,
                                .at_s = -100000,
                                .suggestion = "Review",
                                .score = 70});
        verdict(&(struct vspec){.id = "f3",
                                .stream = far,
                                .anchor = far,
                                .at_s = 0,
                                .suggestion = "Review",
                                .score = 70});
        wait_logged("w2");
        wait_logged("f3");

        expect_log("w3", "warn", "applied");
        expect_log("w1", "warn", "applied");
        expect_log("w2", "suspend", "escalated");
        log_col(got, sizeof(got), "w2", "severity");
        cr_assert_str_eq(got, "warn", "the verdict itself was a warning");
        /* From the latest warning of the window, as it would have been in order. */
        expect_anchor(esc, "suspended", fx.t0_ms + 120 * 1000 + SUSPEND_S * 1000, 3);
        expect_redis(esc, "suspended", fx.t0_ms + 120 * 1000 + SUSPEND_S * 1000);
        expect_anchor(far, "active", 0, 3);
        cr_assert_eq(
                query_int(
                        "SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id = '%s' AND punishment = 'warn'",
                        far),
                3);
        stop_cleanly(&fx.audit_pid);
}

Test(audit, a_duplicate_verdict_is_logged_and_counted_once)
{
        char dup[64];

        name(dup, sizeof(dup), "dup");
        verdict(&(struct vspec){
                .id = "d1", .stream = dup, .anchor = dup, .suggestion = "Review", .score = 70});
        verdict(&(struct vspec){
                .id = "d1", .stream = dup, .anchor = dup, .suggestion = "Review", .score = 70});
        verdict(&(struct vspec){
                .id = "d1", .stream = dup, .anchor = dup, .suggestion = "Review", .score = 70});
        /* Same key, same partition: once d2 is in, the copies of d1 were consumed before it. */
        verdict(&(struct vspec){.id = "d2",
                                .stream = dup,
                                .anchor = dup,
                                .at_s = 5,
                                .suggestion = "Review",
                                .score = 70});
        wait_logged("d2");
        cr_assert_eq(query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id = '%s'", dup),
                     2);
        expect_anchor(dup, "active", 0, 2);
        cr_assert_eq(query_int("SELECT COUNT(*) FROM notify_outbox WHERE anchor_id = '%s' AND "
                               "kind = 'anchor.warned'",
                               dup),
                     2, "one warning notification per verdict, however often it came");
        stop_cleanly(&fx.audit_pid);
}

Test(audit, an_operators_unban_stands_against_older_decisions)
{
        char op[64];
        long long until = fx.t0_ms + 90 * 1000 + 600 * 1000;

        name(op, sizeof(op), "op");
        verdict(&(struct vspec){.id = "ban",
                                .event_type = "audit.admin",
                                .anchor = op,
                                .action = "ban",
                                .reason = "spam"});
        wait_logged("ban");
        expect_anchor(op, "banned", 0, 0);
        expect_redis(op, "banned", 0);

        verdict(&(struct vspec){.id = "unban",
                                .event_type = "audit.admin",
                                .anchor = op,
                                .at_s = 60,
                                .action = "unban"});
        /* Late arrivals from before the unban: an operator's ban and two moderation verdicts. */
        verdict(&(struct vspec){.id = "late_ban",
                                .event_type = "audit.admin",
                                .anchor = op,
                                .at_s = 30,
                                .action = "ban"});
        verdict(&(struct vspec){.id = "late_block",
                                .stream = op,
                                .anchor = op,
                                .at_s = 10,
                                .suggestion = "Block",
                                .label = "Porn",
                                .score = 95});
        verdict(&(struct vspec){.id = "late_warn",
                                .stream = op,
                                .anchor = op,
                                .at_s = 20,
                                .suggestion = "Review",
                                .score = 70});
        wait_logged("late_warn");
        wait_logged("late_ban");
        expect_log("unban", "unban", "applied");
        expect_log("late_ban", "none", "stale");
        expect_log("late_block", "none", "superseded");
        expect_log("late_warn", "none", "superseded");
        expect_anchor(op, "active", 0, 0);
        expect_redis(op, "active", 0);

        /* An operator's ban with suspend_s is a suspension of that length. */
        verdict(&(struct vspec){.id = "timed",
                                .event_type = "audit.admin",
                                .anchor = op,
                                .at_s = 90,
                                .action = "ban",
                                .suspend_s = 600});
        wait_logged("timed");
        expect_log("timed", "suspend", "applied");
        expect_anchor(op, "suspended", until, 0);
        expect_redis(op, "suspended", until);
        stop_cleanly(&fx.audit_pid);
}

Test(audit, the_anchor_comes_from_the_stream_else_the_verdict_is_only_logged)
{
        char known[64], anon[64], anchor[64], got[64];

        name(known, sizeof(known), "known");
        name(anon, sizeof(anon), "anon");
        name(anchor, sizeof(anchor), "owner");
        /* The stream role knows whose stream it is (ended, so there is nothing to close). */
        {
                char sql[512];

                snprintf(sql, sizeof(sql),
                         "INSERT INTO live_streams (stream_id, anchor_id, vendor, status, "
                         "last_event_at) VALUES ('%s', '%s', 'tencent', 'ended', NOW(3))",
                         known, anchor);
                cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        }
        verdict(&(struct vspec){.id = "by_stream",
                                .stream = known,
                                .suggestion = "Block",
                                .label = "Porn",
                                .score = 95});
        verdict(&(struct vspec){.id = "nobody",
                                .stream = anon,
                                .suggestion = "Block",
                                .label = "Polity",
                                .score = 99});
        wait_logged("by_stream");
        wait_logged("nobody");
        log_col(got, sizeof(got), "by_stream", "anchor_id");
        cr_assert_str_eq(got, anchor);
        expect_log("by_stream", "suspend", "applied");
        expect_anchor(anchor, "suspended", fx.t0_ms + SUSPEND_S * 1000, 0);
        log_col(got, sizeof(got), "nobody", "COALESCE(anchor_id, 'NULL')");
        cr_assert_str_eq(got, "NULL");
        expect_log("nobody", "none", "no_anchor");
        log_col(got, sizeof(got), "nobody", "severity");
        cr_assert_str_eq(got, "ban", "the grade is kept even when nobody can be punished");
        stop_cleanly(&fx.audit_pid);
}

Test(audit, only_a_punishment_in_force_closes_the_anchors_live_stream)
{
        char anchor[64], live[64], other[64], got[64], sql[512];
        long long old_at_s = -3 * SUSPEND_S;

        name(anchor, sizeof(anchor), "pun");
        name(live, sizeof(live), "pun_live");
        name(other, sizeof(other), "pun_clip");
        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_streams (stream_id, anchor_id, vendor, status, started_at, "
                 "last_event_at) VALUES ('%s', '%s', 'tencent', 'live', NOW(3), NOW(3))",
                 live, anchor);
        cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
        /* A suspension that ran out days ago is logged, but there is nothing to enforce. */
        verdict(&(struct vspec){.id = "old",
                                .stream = other,
                                .anchor = anchor,
                                .at_s = old_at_s,
                                .suggestion = "Block",
                                .label = "Porn",
                                .score = 95});
        wait_logged("old");
        expect_log("old", "suspend", "applied");
        log_col(got, sizeof(got), "old", "COALESCE(close_stream_id, 'NULL')");
        cr_assert_str_eq(got, "NULL");
        expect_anchor(anchor, "suspended", fx.t0_ms + (old_at_s + SUSPEND_S) * 1000, 0);

        /* One in force closes the anchor's live stream, though the verdict named another. */
        verdict(&(struct vspec){.id = "fresh",
                                .stream = other,
                                .anchor = anchor,
                                .suggestion = "Block",
                                .label = "Porn",
                                .score = 95});
        wait_logged("fresh");
        log_col(got, sizeof(got), "fresh", "CONCAT(close_stream_id, '/', close_method)");
        cr_assert(strncmp(got, live, strlen(live)) == 0 && strcmp(got + strlen(live), "/3") == 0,
                  "%s", got);
        expect_anchor(anchor, "suspended", fx.t0_ms + SUSPEND_S * 1000, 0);
        expect_redis(anchor, "suspended", fx.t0_ms + SUSPEND_S * 1000);
        stop_cleanly(&fx.audit_pid);
}

/* ------------------------------------------------------------------ reading topics */

struct dlq_seen {
        char group[96];
        int permanent, with_headers;
};

/* Counts the dead letters of our own group (other tests' consumers read live.audit too). */
static bool on_dlq(const rd_kafka_message_t *m, void *arg)
{
        struct dlq_seen *d = arg;
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;

        if (rd_kafka_message_headers(m, &h) != 0 ||
            rd_kafka_header_get_last(h, "dlq.group", &v, &len) != 0 || len != strlen(d->group) ||
            memcmp(v, d->group, len) != 0)
                return false;
        if (rd_kafka_header_get_last(h, "dlq.error.class", &v, &len) == 0 && len == 9 &&
            memcmp(v, "permanent", 9) == 0)
                d->permanent++;
        d->with_headers += rd_kafka_header_get_last(h, "dlq.topic", &v, &len) == 0 && len == 10 &&
                           memcmp(v, "live.audit", 10) == 0 &&
                           rd_kafka_header_get_last(h, "dlq.partition", &v, &len) == 0 &&
                           rd_kafka_header_get_last(h, "dlq.offset", &v, &len) == 0 &&
                           rd_kafka_header_get_last(h, "dlq.group", &v, &len) == 0 &&
                           rd_kafka_header_get_last(h, "dlq.attempts", &v, &len) == 0 &&
                           rd_kafka_header_get_last(h, "dlq.timestamp", &v, &len) == 0 &&
                           rd_kafka_header_get_last(h, "dlq.error.message", &v, &len) == 0 &&
                           rd_kafka_header_get_last(h, "trace_id", &v, &len) == 0;
        return true;
}

/*
 * Reads topic from its start for up to 20 s, handing each record keyed `key` to each(), until
 * `want` of them were counted (each() says whether a record counts).
 */
static int scan_topic(const char *topic, const char *key, int want,
                      bool (*each)(const rd_kafka_message_t *, void *), void *arg)
{
        char err[256], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
        long long deadline = support_now_ms() + 20000;
        rd_kafka_t *rk;
        int n = 0;

        support_unique_name("scan", group, sizeof(group));
        rd_kafka_conf_set(conf, "bootstrap.servers",
                          support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), err, sizeof(err));
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(conf, "session.timeout.ms", "3000", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        cr_assert(rk, "%s", err);
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, t);
        rd_kafka_topic_partition_list_destroy(t);
        while (n < want && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);

                if (!m)
                        continue;
                if (!m->err && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0)
                        n += each(m, arg);
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

Test(audit, malformed_verdicts_go_to_the_dlq_and_the_partition_moves_on)
{
        char key[64], event_id[65];
        struct dlq_seen d;
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
        snprintf(d.group, sizeof(d.group), "test.%s.audit", fx.prefix);
        d.permanent = d.with_headers = 0;
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
        cr_assert_eq(scan_topic("live.audit.dlq", key, 7, on_dlq, &d), 7,
                     "want 7 dead letters of %s", d.group);
        cr_assert_eq(d.permanent, 7);
        cr_assert_eq(d.with_headers, 7, "dlq.* and trace_id headers missing");
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
        cr_assert(codec_decode(fx.codec, m->payload, m->len, &ev, err, sizeof(err)) == 0, "%s",
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
        cr_assert(codec_encode(fx.codec, &env, "StreamBegin", payload, &buf, &len, err,
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
                       fx.log_path);
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
                char *log = support_read_file(fx.log_path, &len);
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
        cr_assert_fail("no \"%s\" line for %s in %s", what, id, fx.log_path);
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
        cr_assert_eq(scan_topic("live.stream", stream, 2, on_close, &c), 2, "want two closes of %s",
                     stream);
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
                cr_assert(mysql_query(fx.mysql, sql) == 0, "%s", mysql_error(fx.mysql));
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
                cr_assert_eq(scan_topic("live.stream", streams[i], 1, on_close, &c), 1,
                             "no stream.close of %s (log %s)", streams[i], fx.log_path);
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
                                   fx.prefix)) == 0)
                support_sleep_ms(2);
        cr_assert(kill(fx.audit_pid, SIGKILL) == 0);
        support_wait_exit(fx.audit_pid, 5000);
        fx.audit_pid = start_role("audit", "audit");
        deadline = support_now_ms() + 60000;
        while (support_now_ms() < deadline &&
               query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE '%s\\_k%%'",
                         fx.prefix) < N)
                support_sleep_ms(50);
        cr_assert_eq(query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE "
                               "'%s\\_k%%'",
                               fx.prefix),
                     N, "log rows after the restart (%lld when killed; log %s)", logged,
                     fx.log_path);
        for (int a = 0; a < ANCHORS; a++) {
                long long warns = query_int("SELECT COUNT(*) FROM live_audit_logs WHERE "
                                            "anchor_id = '%s' AND severity = 'warn'",
                                            anchors[a]);
                long long notes = query_int("SELECT COUNT(*) FROM notify_outbox WHERE "
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
                         fx.prefix) < N)
                support_sleep_ms(50);
        cr_assert_eq(query_int("SELECT COUNT(*) FROM live_audit_logs WHERE anchor_id LIKE "
                               "'%s\\_two%%'",
                               fx.prefix),
                     N, "log rows (log %s)", fx.log_path);
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
                cr_expect_eq(query_int("SELECT COUNT(*) FROM notify_outbox WHERE anchor_id = '%s'",
                                       anchors[a]),
                             logs, "notifications of anchor %s", anchors[a]);
        }
        stop_cleanly(&fx.audit_pid);
        stop_cleanly(&second);
        fx.stream_pid = 0;
}
