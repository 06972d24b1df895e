/* test_audit.c: the audit role, run as its binary against the real fixtures: grading, logging,
 * punishment and its projection to Redis. Its part audit/streams.c holds the DLQ and the runs with
 * the stream role; audit/fixture.h is what they share. */
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
#include "audit/fixture.h"

struct fixture fx;

/* ------------------------------------------------------------------ processes */

pid_t start_role(const char *role, const char *group)
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
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.w.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", admin_port);
        /* Tests run in parallel: each needs every partition, so each gets its own group. */
        snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=test.%s.%s", fx.w.prefix, group);
        pid = support_spawn(argv, env, fx.w.log_path);
        cr_assert(support_wait_ready(admin_port, 20000) == 0, "%s not ready; see %s", role,
                  fx.w.log_path);
        return pid;
}

void stop_cleanly(pid_t *pid)
{
        cr_assert(kill(*pid, SIGTERM) == 0);
        cr_assert_eq(support_wait_exit(*pid, 20000), 0, "consumer did not drain cleanly; see %s",
                     fx.w.log_path);
        *pid = 0;
}

static void setup(void)
{
        fx.t0_ms = (long long)time(NULL) * 1000;
        support_worker_fx_open(&fx.w, "au");
        fx.redis = redisConnect("127.0.0.1", atoi(support_fixture("LIVEFLOW_TEST_REDIS_PORT")));
        cr_assert(fx.redis && !fx.redis->err);
        fx.audit_pid = start_role("audit", "audit");
}

void kill_left(pid_t pid)
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
        support_worker_fx_close(&fx.w);
        if (fx.redis)
                redisFree(fx.redis);
        memset(&fx, 0, sizeof(fx));
}

/* ------------------------------------------------------------------ producing */

void produce_raw(const char *topic, const char *key, const void *value, size_t len,
                 const char *event_type)
{
        cr_assert(rd_kafka_producev(
                          fx.w.producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADER("trace_id", TRACE_ID, -1),
                          RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_END) == 0);
        cr_assert(rd_kafka_flush(fx.w.producer, 10000) == 0);
}

void event_id_of(const char *id, char out[65])
{
        char key[128];

        snprintf(key, sizeof(key), "test|%s|%s", fx.w.prefix, id);
        crypto_sha256_hex(key, strlen(key), out);
}

void encode_and_send(const struct envelope *env, const char *payload_name, json_t *payload,
                     const char *key)
{
        char err[256];
        void *buf;
        size_t len;

        cr_assert(codec_encode(fx.w.codec, env, payload_name, payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        produce_raw("live.audit", key, buf, len, env->event_type);
        free(buf);
}

void verdict(const struct vspec *v)
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

void query1(char *out, size_t out_size, const char *fmt, ...)
{
        char sql[1024];
        va_list ap;
        MYSQL_RES *res;
        MYSQL_ROW row;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        out[0] = '\0';
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s: %s", sql, mysql_error(fx.w.mysql));
        res = mysql_store_result(fx.w.mysql);
        if (res && (row = mysql_fetch_row(res)) && row[0])
                snprintf(out, out_size, "%s", row[0]);
        if (res)
                mysql_free_result(res);
}

long long query_int(const char *fmt, ...)
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
void log_col(char *out, size_t out_size, const char *id, const char *col)
{
        char event_id[65];

        event_id_of(id, event_id);
        query1(out, out_size, "SELECT %s FROM live_audit_logs WHERE event_id = '%s'", col,
               event_id);
}

void wait_logged(const char *id)
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
        cr_assert_fail("verdict %s was not logged (consumer log: %s)", id, fx.w.log_path);
}

void anchor_col(char *out, size_t out_size, const char *anchor, const char *col)
{
        query1(out, out_size, "SELECT %s FROM anchors WHERE anchor_id = '%s'", col, anchor);
}

void expect_log(const char *id, const char *punishment, const char *outcome)
{
        char got[64];

        log_col(got, sizeof(got), id, "punishment");
        cr_assert_str_eq(got, punishment, "verdict %s", id);
        log_col(got, sizeof(got), id, "outcome");
        cr_assert_str_eq(got, outcome, "verdict %s", id);
}

void expect_anchor(const char *anchor, const char *status, long long until_ms, long long warnings)
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

void redis_field(const char *anchor, const char *field, char *out, size_t out_size)
{
        redisReply *r = redisCommand(fx.redis, "HGET hash:anchor:status:%s %s", anchor, field);

        out[0] = '\0';
        if (r && r->type == REDIS_REPLY_STRING)
                snprintf(out, out_size, "%s", r->str);
        freeReplyObject(r);
}

/* Redis follows MySQL right after the commit: wait for it rather than race it. */
void expect_redis(const char *anchor, const char *status, long long until_ms)
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

void name(char *out, size_t out_size, const char *what)
{
        snprintf(out, out_size, "%s_%s", fx.w.prefix, what);
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

                while (query_int("SELECT COUNT(*) FROM notify_messages WHERE sent_at IS NOT NULL "
                                 "AND anchor_id IN ('%s', '%s', '%s')",
                                 warn, susp, ban) < 3 &&
                       support_now_ms() < deadline)
                        support_sleep_ms(100);
                for (int i = 0; i < 5; i++)
                        cr_assert_eq(query_int("SELECT COUNT(*) FROM notify_messages WHERE "
                                               "anchor_id = '%s' AND sent_at IS NOT NULL%s%s%s",
                                               anchors[i], kinds[i][1] ? " AND kind = '" : "",
                                               kinds[i][1] ? kinds[i][1] : "",
                                               kinds[i][1] ? "'" : ""),
                                     kinds[i][1] ? 1 : 0, "notifications of %s", kinds[i][0]);
                cr_assert_eq(
                        query_int("SELECT COUNT(*) FROM notify_messages WHERE anchor_id = '%s' "
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
        cr_assert_eq(query_int("SELECT COUNT(*) FROM notify_messages WHERE anchor_id = '%s' AND "
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
                cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
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
        cr_assert(mysql_query(fx.w.mysql, sql) == 0, "%s", mysql_error(fx.w.mysql));
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
