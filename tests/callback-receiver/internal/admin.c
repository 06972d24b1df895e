/* admin.c: test_internal's admin paths (close, ban, unban), authentication and replay memory,
 * through internal_map_*() with the unit fixture of fixture.h. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "metrics.h"
#include "settings.h"
#include "support.h"
#include "support_stack.h"
#include "internal.h" /* the program's header: a part is given -I<program dir> */
#include "fixture.h"

/* ------------------------------------------------------------ admin */

Test(internal, close_becomes_a_forced_stream_end_on_live_stream)
{
        struct event out = {0};
        char want_id[65];

        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "streams/s 42/close",
                            "{\"action\":\"close\",\"stream_id\":\"s 42\",\"reason\":\"tos\"}",
                            "msg_close_1"),
                     0),
                  "%s", verdict.message);
        sha256_of("admin", "streams/s 42/close|msg_close_1", want_id);
        cr_assert_str_eq(ev.event_id, want_id);
        cr_assert_str_eq(ev.vendor, "admin");
        cr_assert_str_eq(ev.event_type, "stream.close");
        cr_assert_str_eq(ev.topic, "live.stream");
        cr_assert_str_eq(ev.key, "s 42");
        cr_assert_str_eq(ev.stream_id, "s 42");
        cr_assert_null(ev.anchor_id);
        roundtrip(&out);
        cr_assert_str_eq(out.payload_name, "StreamEnd");
        cr_assert(eq(i64, payload_int(&out, "close_method"), 2));
        cr_assert_str_eq(payload_str(&out, "reason"), "tos");
        event_fini(&out);
}

Test(internal, ban_and_unban_become_admin_verdicts_keyed_by_anchor)
{
        struct event out = {0};

        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_2002/ban",
                            "{\"action\":\"ban\",\"anchor_id\":\"a_2002\",\"reason\":\"spam\","
                            "\"stream_id\":\"s_9\"}",
                            "msg_ban_1"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "audit.admin");
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.key, "a_2002", "a ban and its unban stay on one partition");
        cr_assert_str_eq(ev.anchor_id, "a_2002");
        cr_assert_str_eq(ev.stream_id, "s_9");
        roundtrip(&out);
        cr_assert_str_eq(out.payload_name, "AuditVerdict");
        cr_assert_str_eq(payload_str(&out, "source"), "admin");
        cr_assert_str_eq(payload_str(&out, "action"), "ban");
        cr_assert_str_eq(payload_str(&out, "reason"), "spam");
        cr_assert(is_null_field(&out, "suspend_s"), "no until: a ban for good");
        event_fini(&out);

        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_2002/unban",
                            "{\"action\":\"unban\",\"anchor_id\":\"a_2002\"}", "msg_unban_1"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.key, "a_2002");
        cr_assert_null(ev.stream_id);
        roundtrip(&out);
        cr_assert_str_eq(payload_str(&out, "action"), "unban");
        cr_assert(is_null_field(&out, "reason"));
        event_fini(&out);
}

Test(internal, a_ban_until_a_time_is_a_suspension_of_that_length)
{
        char body[160];

        snprintf(body, sizeof(body), "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"until\":%lld}",
                 NOW_S + 3600);
        cr_assert(eq(int, map(INTERNAL_ADMIN, "anchors/a_1/ban", body), 0), "%s", verdict.message);
        /* Received 250 ms after NOW_S: whole seconds from then. */
        cr_assert(eq(i64, json_integer_value(json_object_get(ev.payload, "suspend_s")), 3600));
        snprintf(body, sizeof(body), "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"until\":%lld}",
                 NOW_S - 1);
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban", body), 400, NULL, "until");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"until\":\"tomorrow\"}"),
                       400, NULL, "until");
}

Test(internal, admin_bodies_may_omit_the_reason)
{
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "streams/s_1/close",
                         "{\"action\":\"close\",\"stream_id\":\"s_1\"}"),
                     0),
                  "%s", verdict.message);
        cr_assert_null(json_object_get(ev.payload, "reason"));
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "anchors/a_1/ban",
                         "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"reason\":null,\"x\":1}"),
                     0),
                  "%s", verdict.message);
}

Test(internal, an_admin_body_must_name_the_paths_command_and_target)
{
        static const struct {
                const char *path, *body, *message;
        } cases[] = {
                {"anchors/a_1/ban", "", "body: expected a JSON object"},
                {"anchors/a_1/ban", "{}", "action is missing"},
                {"anchors/a_1/ban", "{\"anchor_id\":\"a_1\"}", "action is missing"},
                {"anchors/a_1/ban", "{\"action\":\"ban\"}", "anchor_id is missing"},
                {"anchors/a_1/ban", "{\"action\":\"unban\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"ban\""},
                {"anchors/a_1/ban", "{\"action\":\"BAN\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"ban\""},
                {"anchors/a_1/ban", "{\"action\":\"ban\",\"anchor_id\":\"a_2\"}",
                 "anchor_id: differs from the path"},
                {"anchors/a_1/ban", "{\"action\":\"ban\",\"anchor_id\":\"a_1 \"}",
                 "anchor_id: differs from the path"},
                {"anchors/a_1/ban", "{\"action\":\"ban\",\"anchor_id\":true}",
                 "anchor_id: expected"},
                /* one signed ban replayed as a close, or onto another anchor */
                {"streams/s_1/close", "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"close\""},
                {"streams/a_1/close", "{\"action\":\"close\",\"anchor_id\":\"a_1\"}",
                 "stream_id is missing"},
                {"anchors/a_1/unban", "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}",
                 "action: expected \"unban\""},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_log_info("%s %s", cases[i].path, cases[i].body);
                assert_refused(map(INTERNAL_ADMIN, cases[i].path, cases[i].body), 400, NULL,
                               cases[i].message);
        }
        /* An integer target means its decimal text. */
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "anchors/9001/ban",
                         "{\"action\":\"ban\",\"anchor_id\":9001}"),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "9001");
}

Test(internal, bad_admin_bodies_are_a_400_naming_the_field)
{
        char reason[300], body[400];

        assert_refused(map(INTERNAL_ADMIN, "streams/s_1/close",
                           "{\"action\":\"close\",\"stream_id\":\"s_1\",\"reason\":5}"),
                       400, NULL, "reason: expected a string");
        memset(reason, 'r', 256);
        reason[256] = '\0';
        snprintf(body, sizeof(body),
                 "{\"action\":\"close\",\"stream_id\":\"s_1\",\"reason\":\"%s\"}", reason);
        assert_refused(map(INTERNAL_ADMIN, "streams/s_1/close", body), 400, NULL,
                       "reason: expected a string of at most 255 characters");
        reason[255] = '\0';
        snprintf(body, sizeof(body),
                 "{\"action\":\"close\",\"stream_id\":\"s_1\",\"reason\":\"%s\"}", reason);
        cr_assert(eq(int, map(INTERNAL_ADMIN, "streams/s_1/close", body), 0),
                  "255 fits live_audit_logs.reason: %s", verdict.message);
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"stream_id\":[7]}"),
                       400, NULL, "stream_id: expected a string");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"stream_id\":\"\"}"),
                       400, NULL, "stream_id: expected 1 to 255");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/ban",
                           "{\"action\":\"ban\",\"anchor_id\":\"a_1\",\"stream_id\":\"a/b\"}"),
                       400, NULL, "stream_id: must not contain '/'");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/unban", "reason=spam"), 400, NULL,
                       "body: malformed JSON");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a_1/unban", "[\"spam\"]"), 400, NULL,
                       "body: expected a JSON object");
}

Test(internal, unknown_admin_paths_are_404)
{
        static const char *const paths[] = {
                "",
                "streams",
                "streams/s_1",
                "streams/s_1/open",
                "anchors/a_1/close",
                "streams/s_1/ban",
                "users/u_1/ban",
                "streams/s_1/close/",
                "/streams/s_1/close",
                "STREAMS/s_1/close",
                "anchors/a_1/ban/now",
                "streamsx/s_1/close",
        };

        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                cr_log_info("path %s", paths[i]);
                assert_refused(map(INTERNAL_ADMIN, paths[i], ""), 404, NULL,
                               "no such admin command");
        }
}

/* Maps a close of the stream id given (its body names it) under msg_test_1. */
static int map_close_of(const char *id)
{
        char path[400], body[400];

        snprintf(path, sizeof(path), "streams/%s/close", id);
        snprintf(body, sizeof(body), "{\"action\":\"close\",\"stream_id\":\"%s\"}", id);
        return map(INTERNAL_ADMIN, path, body);
}

Test(internal, admin_path_ids_are_validated_against_their_columns)
{
        char path[400], id[300];

        assert_refused(map(INTERNAL_ADMIN, "streams//close", ""), 400, NULL,
                       "stream_id: expected 1 to 255");
        assert_refused(map(INTERNAL_ADMIN, "anchors//ban", ""), 400, NULL,
                       "anchor_id: expected 1 to 64");
        assert_refused(map(INTERNAL_ADMIN, "streams/a/b/close", ""), 400, NULL,
                       "stream_id: must not contain '/'");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a\x01/ban", ""), 400, NULL, "anchor_id");
        assert_refused(map(INTERNAL_ADMIN, "anchors/a\xff\xfe/ban", ""), 400, NULL,
                       "anchor_id: expected 1 to 64 characters of UTF-8");
        memset(id, 'x', 256);
        id[256] = '\0';
        assert_refused(map_close_of(id), 400, NULL, "stream_id: expected 1 to 255");
        id[255] = '\0';
        cr_assert(eq(int, map_close_of(id), 0), "255 fits live_streams.stream_id: %s",
                  verdict.message);
        /* anchors.anchor_id is VARCHAR(64): 65 characters would be a 200 and then a DLQ. */
        memset(id, 'a', 65);
        id[65] = '\0';
        snprintf(path, sizeof(path), "anchors/%s/ban", id);
        assert_refused(map(INTERNAL_ADMIN, path, ""), 400, NULL, "anchor_id: expected 1 to 64");
        cr_assert(eq(int,
                     map(INTERNAL_ADMIN, "anchors/\xe4\xb8\xbb\xe6\x92\xad/ban",
                         "{\"action\":\"ban\",\"anchor_id\":\"\xe4\xb8\xbb\xe6\x92\xad\"}"),
                     0),
                  "UTF-8 is fine: %s", verdict.message);
        cr_assert_str_eq(ev.key, "\xe4\xb8\xbb\xe6\x92\xad");
}

Test(internal, one_webhook_id_at_two_paths_is_two_event_ids)
{
        char first[65];

        /* The path is part of the command: the id covers it. */
        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_1/ban",
                            "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}", "msg_cmd"),
                     0),
                  "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        cr_assert(eq(int,
                     map_as(INTERNAL_ADMIN, "anchors/a_2/ban",
                            "{\"action\":\"ban\",\"anchor_id\":\"a_2\"}", "msg_cmd"),
                     0),
                  "%s", verdict.message);
        cr_assert(strcmp(ev.event_id, first) != 0);
}

/* ------------------------------------------------------------ authentication */

Test(internal, without_a_secret_every_request_is_503)
{
        make_internal(NULL, 10);
        assert_refused(map(INTERNAL_REWARDS, "", reward_json), 503, NULL, "LIVEFLOW_HMAC_SECRET");
        assert_refused(map(INTERNAL_ADMIN, "streams/s/close", ""), 503, NULL,
                       "LIVEFLOW_HMAC_SECRET");
}

Test(internal, signature_failures_are_401_with_the_reason_and_the_header)
{
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, OTHER_SECRET_B64);
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");

        prepare("", reward_json, "msg_1", NOW_S - TOLERANCE_S - 1, NOW_S, SECRET_B64);
        assert_refused(run(INTERNAL_WITHDRAWALS), 401, "expired", "webhook-timestamp");
        prepare("", reward_json, "msg_1", NOW_S + TOLERANCE_S + 1, NOW_S, SECRET_B64);
        assert_refused(run(INTERNAL_REWARDS), 401, "expired", "webhook-timestamp");

        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        call.names[2] = NULL;
        assert_refused(run(INTERNAL_REWARDS), 401, "missing", "webhook-signature is missing");
        call.names[0] = NULL;
        assert_refused(run(INTERNAL_ADMIN), 401, "missing", "webhook-id is missing");

        /* A body changed after signing. */
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        call.req.len--;
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");
}

Test(internal, a_signature_from_a_rotated_secret_is_accepted)
{
        make_internal("whsec_" OTHER_SECRET_B64 "," SECRET, 10);
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, OTHER_SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
        prepare("", reward_json, "msg_2", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
}

Test(internal, authentication_comes_before_paths_and_bodies)
{
        prepare("nowhere", "not json", "msg_1", NOW_S, NOW_S, OTHER_SECRET_B64);
        assert_refused(run(INTERNAL_ADMIN), 401, "mismatch", "webhook-signature");
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");
}

Test(internal, check_config_names_a_malformed_secret)
{
        char errstr[256];
        struct settings s = {.hmac_secrets = (char *)SECRET ",whsec_***",
                             .webhook_tolerance_s = 300};

        cr_assert(eq(int, internal_check_config(&s, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_HMAC_SECRET: secret 2") != NULL, "%s", errstr);
        s.hmac_secrets = (char *)SECRET;
        cr_assert(eq(int, internal_check_config(&s, errstr, sizeof(errstr)), 0), "%s", errstr);
        s.hmac_secrets = NULL;
        cr_assert(eq(int, internal_check_config(&s, errstr, sizeof(errstr)), 0), "%s", errstr);
}

/* ------------------------------------------------------------ replays */

/* Maps call as it stands and acknowledges it, as the receiver does after the broker's ack. */
static void map_and_ack(enum internal_endpoint ep)
{
        cr_assert(eq(int, run(ep), 0), "%s", verdict.message);
        internal_acked(in, &call.req, &ev);
}

Test(internal, an_acknowledged_webhook_id_is_answered_200_without_an_event)
{
        prepare("", reward_json, "msg_replay", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200), "%u %s", verdict.status, verdict.message);
        cr_assert_null(verdict.auth_failure);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.topic);
        cr_assert(eq(i64,
                     counter("liveflow_receiver_webhook_replays_total", "endpoint=\"rewards\""),
                     1));
        cr_assert(eq(i64,
                     metric_value(metrics_gauge(metrics, "liveflow_receiver_webhook_replay_entries",
                                                "", NULL)),
                     1));

        /* The sender's own retry: same id, new timestamp and signature, a minute later. */
        prepare("", reward_json, "msg_replay", NOW_S + 60, NOW_S + 60, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200), "%s", verdict.message);
}

Test(internal, a_webhook_id_is_remembered_only_once_acknowledged)
{
        prepare("", reward_json, "msg_unacked", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
        /* No ack (the broker failed, 503): the retry must produce. */
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
}

Test(internal, a_replay_needs_a_valid_signature_first)
{
        prepare("", reward_json, "msg_replay", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_replay", NOW_S, NOW_S, OTHER_SECRET_B64);
        assert_refused(run(INTERNAL_REWARDS), 401, "mismatch", "webhook-signature");
}

Test(internal, an_acknowledged_admin_command_replayed_to_another_path_is_a_400)
{
        const char *ban = "{\"action\":\"ban\",\"anchor_id\":\"a_1\"}";

        prepare("anchors/a_1/ban", ban, "msg_cmd", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_ADMIN);
        call.req.path_arg = "anchors/a_2/ban"; /* same signed headers and body, other target */
        assert_refused(run(INTERNAL_ADMIN), 400, NULL, "anchor_id: differs from the path");
        call.req.path_arg = "streams/a_1/close";
        assert_refused(run(INTERNAL_ADMIN), 400, NULL, "action: expected \"close\"");
        call.req.path_arg = "anchors/a_1/ban"; /* the very same request: acknowledged already */
        cr_assert(eq(int, run(INTERNAL_ADMIN), -1));
        cr_assert(eq(u32, verdict.status, 200), "%s", verdict.message);
        cr_assert(eq(i64, counter("liveflow_receiver_webhook_replays_total", "endpoint=\"admin\""),
                     1));
}

Test(internal, the_memory_forgets_after_the_window)
{
        prepare("", reward_json, "msg_old", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_old", NOW_S + TOLERANCE_S - 1, NOW_S + TOLERANCE_S - 1,
                SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1), "still within the window");
        /* A retry after the window is produced again; its event id dedups it downstream. */
        prepare("", reward_json, "msg_old", NOW_S + TOLERANCE_S + 1, NOW_S + TOLERANCE_S + 1,
                SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "%s", verdict.message);
}

Test(internal, a_future_timestamp_extends_the_window_to_cover_it)
{
        /* Signed 200 s ahead: the captured request verifies until ts + 300, i.e. now + 500. */
        prepare("", reward_json, "msg_ahead", NOW_S + 200, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        call.req.now_ms = (NOW_S + 450) * 1000;
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200), "%s", verdict.message);
}

Test(internal, the_memory_is_bounded_and_counts_what_it_forgot_early)
{
        make_internal(SECRET, 2);
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_2", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        prepare("", reward_json, "msg_3", NOW_S, NOW_S, SECRET_B64);
        map_and_ack(INTERNAL_REWARDS);
        cr_assert(eq(i64, counter("liveflow_receiver_webhook_replay_evictions_total", NULL), 1));
        prepare("", reward_json, "msg_1", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), 0), "msg_1 was forgotten: %s", verdict.message);
        prepare("", reward_json, "msg_3", NOW_S, NOW_S, SECRET_B64);
        cr_assert(eq(int, run(INTERNAL_REWARDS), -1));
        cr_assert(eq(u32, verdict.status, 200));
}
