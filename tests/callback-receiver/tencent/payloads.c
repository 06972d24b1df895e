/* payloads.c: test_tencent's event ids, typed payloads of every callback type, and what the
 * codec takes of what the module makes. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "field_limits.h"
#include "payload.h"
#include "fixture.h"

/* ------------------------------------------------------------ event ids */

Test(tencent, retry_with_new_t_and_sign_keeps_the_event_id)
{
        char first[65], *retry = signed_body(push_json, PROBE_KEY, json_integer(PUSH_T + 600));

        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(retry, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first);
        free(retry);
}

Test(tencent, same_sequence_on_another_stream_differs)
{
        char first[65],
                *other = support_json_edit(push_json, "stream_id", json_string("other_stream"));

        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(other, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_neq(ev.event_id, first);
        free(other);
}

Test(tencent, push_and_interrupt_of_one_sequence_differ)
{
        char push_id[65];

        cr_assert(eq(int, map_at(push_json, PUSH_T - 1), 0), "%s", verdict.message);
        memcpy(push_id, ev.event_id, sizeof(push_id));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(interrupt_json, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_neq(ev.event_id, push_id);
}

Test(tencent, record_id_uses_its_natural_key_across_retries)
{
        char first[65], id[65];
        char *retry = signed_body(record_json, PROBE_KEY, json_string("1642099999"));

        cr_assert(eq(int, map_at(record_json, RECORD_T - 1), 0), "%s", verdict.message);
        memcpy(first, ev.event_id, sizeof(first));
        expected_id("tencent|100|[\"387702304138941858\",\"1642089445\"]", id);
        cr_assert_str_eq(first, id);
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(retry, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first);
        free(retry);
}

Test(tencent, unknown_type_id_is_the_body_without_t_and_sign)
{
        char *a = support_json_edit(push_json, "event_type", json_integer(999));
        char *first = signed_body(a, PROBE_KEY, json_integer(PUSH_T));
        char *retry = signed_body(a, PROBE_KEY, json_integer(PUSH_T + 120));
        char first_id[65];

        cr_assert(eq(int, map_at(first, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "other");
        memcpy(first_id, ev.event_id, sizeof(first_id));
        webhook_event_fini(&ev);
        cr_assert(eq(int, map_at(retry, PUSH_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_id, first_id);
        free(a);
        free(first);
        free(retry);
}

/* ------------------------------------------------------------ typed payloads */

/* Maps the sample with `field` replaced (json_null(): removed), signed as it was. */
int map_edited(const char *sample, long long t, const char *field, json_t *value)
{
        char *body = support_json_edit(sample, field, value);
        int rc = map_at(body, t - 1);

        free(body);
        return rc;
}

void assert_refused_edit(const char *sample, long long t, const char *field, json_t *value,
                         const char *in_message)
{
        assert_refused(map_edited(sample, t, field, value), 400, NULL, in_message);
}

static bool payload_has(const char *name)
{
        return payload_get(ev.fields, name) != NULL;
}

Test(tencent, record_file_maps_to_live_record)
{
        cr_assert(eq(int, map_at(record_json, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "record.file");
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.payload_name, "RecordFile");
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("file_id"), "387702304138941858");
        cr_assert_str_eq(payload_str("video_url"),
                         "http://12345678.vod2.myqcloud.com/xxxx/yyyy/zzzz.m3u8");
        cr_assert_str_eq(payload_str("file_format"), "hls");
        cr_assert_str_eq(payload_str("session_key"), "2918085116267032069"); /* from callback_ext */
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089445316LL));   /* + start_time_usec */
        cr_assert(eq(i64, payload_int("end_time_ms"), 1642089598618LL));
        cr_assert(eq(i64, payload_int("duration_s"), 154));
        cr_assert(eq(i64, payload_int("file_size"), 277941079));
        /* No event_time in a 100: the file is ready at its end. */
        cr_assert(eq(i64, ev.event_time_ms, 1642089598000LL));
}

Test(tencent, record_numbers_as_strings_are_accepted)
{
        static const char *const fields[] = {"event_type",      "start_time", "end_time",
                                             "start_time_usec", "duration",   "file_size"};
        char *body = strdup(record_json), *next;

        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                json_t *root = json_loads(body, 0, NULL);
                char text[32];

                snprintf(text, sizeof(text), "%lld",
                         (long long)json_integer_value(json_object_get(root, fields[i])));
                json_decref(root);
                next = support_json_edit(body, fields[i], json_string(text));
                free(body);
                body = next;
        }
        cr_assert(eq(int, map_at(body, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "record.file");
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089445316LL));
        cr_assert(eq(i64, payload_int("end_time_ms"), 1642089598618LL));
        cr_assert(eq(i64, payload_int("duration_s"), 154));
        cr_assert(eq(i64, payload_int("file_size"), 277941079));
        free(body);
}

Test(tencent, record_file_format_is_lower_cased)
{
        cr_assert(eq(int, map_edited(record_json, RECORD_T, "file_format", json_string("MP4")), 0),
                  "%s", verdict.message);
        cr_assert_str_eq(payload_str("file_format"), "mp4");
}

Test(tencent, record_file_id_stands_in_for_a_missing_file_id)
{
        char *a = support_json_edit(record_json, "file_id", json_null());
        char *body = support_json_edit(a, "record_file_id", json_string("rf-42"));

        cr_assert(eq(int, map_at(body, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(payload_str("file_id"), "rf-42");
        free(a);
        free(body);
}

Test(tencent, record_without_any_file_id_is_400_naming_file_id)
{
        char *a = support_json_edit(record_json, "file_id", json_null());

        assert_refused_edit(a, RECORD_T, "record_file_id", json_null(), "file_id is missing");
        free(a);
}

Test(tencent, record_with_an_empty_file_id_is_400)
{
        char *a = support_json_edit(record_json, "file_id", json_string(""));

        assert_refused_edit(a, RECORD_T, "record_file_id", json_null(), "file_id: expected");
        free(a);
}

Test(tencent, record_without_video_url_is_400)
{
        assert_refused_edit(record_json, RECORD_T, "video_url", json_null(),
                            "video_url is missing");
}

Test(tencent, record_with_a_video_url_that_is_not_text_is_400)
{
        assert_refused_edit(record_json, RECORD_T, "video_url", json_true(), "video_url: expected");
}

Test(tencent, record_without_stream_id_is_400)
{
        char *a = support_json_edit(record_json, "stream_id", json_null());

        assert_refused_edit(a, RECORD_T, "channel_id", json_null(), "stream_id is missing");
        free(a);
}

Test(tencent, record_without_start_time_starts_at_end_minus_duration)
{
        cr_assert(eq(int, map_edited(record_json, RECORD_T, "start_time", json_null()), 0), "%s",
                  verdict.message);
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089598618LL - 154000));
}

Test(tencent, record_optional_fields_that_are_malformed_are_left_out)
{
        char *a = support_json_edit(record_json, "file_size", json_string("lots"));
        char *b = support_json_edit(a, "callback_ext", json_string("{not json"));
        char *body = support_json_edit(b, "end_time", json_real(1.5));

        cr_assert(eq(int, map_at(body, RECORD_T - 1), 0), "%s", verdict.message);
        cr_assert_not(payload_has("file_size"));
        cr_assert_not(payload_has("session_key"));
        cr_assert_not(payload_has("end_time_ms"));
        cr_assert(eq(i64, payload_int("start_time_ms"), 1642089445316LL));
        free(a);
        free(b);
        free(body);
}

Test(tencent, record_status_maps_to_live_record)
{
        char id[65];

        cr_assert(eq(int, map_at(record_status_json, STATUS_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "record.status");
        cr_assert_str_eq(ev.topic, "live.record");
        cr_assert_str_eq(ev.payload_name, "RecordStatus");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("record_event"), "record_ended");
        cr_assert_str_eq(payload_str("session_key"), "2918085116267032069");
        cr_assert_str_eq(payload_str("seq"), "3266441426274648065");
        cr_assert(eq(i64, ev.event_time_ms, 1700207929000LL));
        expected_id("tencent|332|[\"3266441426274648065\"]", id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, record_status_spelled_recordevent_is_accepted)
{
        char *a = support_json_edit(record_status_json, "record_event", json_null());
        char *body = support_json_edit(a, "recordevent", json_string("record_paused"));

        cr_assert(eq(int, map_at(body, STATUS_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(payload_str("record_event"), "record_paused");
        free(a);
        free(body);
}

Test(tencent, record_status_without_record_event_is_400)
{
        assert_refused_edit(record_status_json, STATUS_T, "record_event", json_null(),
                            "record_event is missing");
}

Test(tencent, screenshot_maps_to_live_snapshot)
{
        char id[65];

        cr_assert(eq(int, map_at(screenshot_json, SNAP_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "snapshot");
        cr_assert_str_eq(ev.topic, "live.snapshot");
        cr_assert_str_eq(ev.payload_name, "Snapshot");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("pic_url"),
                         "/test_stream/test_stream-screenshot-10-12-05-1280x720.jpg");
        cr_assert_str_eq(payload_str("pic_full_url"),
                         "http://your.cos.region.myqcloud.com/test_stream/"
                         "test_stream-screenshot-10-12-05-1280x720.jpg");
        cr_assert(eq(i64, payload_int("create_time_ms"), 1622599925000LL));
        cr_assert(eq(i64, payload_int("width"), 1280));
        cr_assert(eq(i64, payload_int("height"), 720));
        cr_assert(eq(i64, payload_int("file_size"), 30670));
        cr_assert(eq(i64, ev.event_time_ms, 1622599925000LL)); /* the picture's own time */
        expected_id("tencent|200|[\"/test_stream/test_stream-screenshot-10-12-05-1280x720.jpg\"]",
                    id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, screenshot_numbers_as_strings_are_accepted)
{
        char *a = support_json_edit(screenshot_json, "create_time", json_string("1622599925"));
        char *b = support_json_edit(a, "width", json_string("1280"));
        char *body = support_json_edit(b, "file_size", json_string("30670"));

        cr_assert(eq(int, map_at(body, SNAP_T - 1), 0), "%s", verdict.message);
        cr_assert(eq(i64, payload_int("create_time_ms"), 1622599925000LL));
        cr_assert(eq(i64, payload_int("width"), 1280));
        cr_assert(eq(i64, payload_int("file_size"), 30670));
        free(a);
        free(b);
        free(body);
}

Test(tencent, screenshot_gives_anchor_and_room_from_stream_param)
{
        cr_assert(eq(int,
                     map_edited(screenshot_json, SNAP_T, "stream_param",
                                json_string("txSecret=x&anchor_id=a7&room_id=r9")),
                     0),
                  "%s", verdict.message);
        cr_assert_str_eq(ev.anchor_id, "a7");
        cr_assert_str_eq(ev.room_id, "r9");
}

Test(tencent, screenshot_without_create_time_is_400)
{
        assert_refused_edit(screenshot_json, SNAP_T, "create_time", json_null(),
                            "create_time is missing");
}

Test(tencent, screenshot_with_a_malformed_create_time_is_400)
{
        assert_refused_edit(screenshot_json, SNAP_T, "create_time", json_string("yesterday"),
                            "create_time: expected");
}

Test(tencent, screenshot_without_pic_url_keeps_the_full_url)
{
        cr_assert(eq(int, map_edited(screenshot_json, SNAP_T, "pic_url", json_null()), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("pic_url"), payload_str("pic_full_url"));
}

Test(tencent, screenshot_without_any_picture_is_400)
{
        char *a = support_json_edit(screenshot_json, "pic_full_url", json_null());

        assert_refused_edit(a, SNAP_T, "pic_url", json_null(), "pic_url is missing");
        free(a);
}

Test(tencent, image_moderation_maps_to_live_audit)
{
        char id[65];

        cr_assert(eq(int, map_at(image_json, IMAGE_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "audit.image");
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.payload_name, "AuditVerdict");
        cr_assert_str_eq(ev.stream_id, "test_stream"); /* from streamId */
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("source"), "tencent.image");
        cr_assert_str_eq(payload_str("suggestion"), "Block");
        cr_assert_str_eq(payload_str("label"), "Porn");
        cr_assert_str_eq(payload_str("sub_label"), "PornHigh");
        cr_assert_str_eq(payload_str("img"), "http://1.1.1.1/download/porn/test.jpg");
        cr_assert(eq(i64, payload_int("score"), 99));
        cr_assert_not(payload_has("reason"));                  /* ocrMsg is empty */
        cr_assert(eq(i64, ev.event_time_ms, 1610640000000LL)); /* screenshotTime */
        expected_id("tencent|317|[\"test_stream\",\"http://1.1.1.1/download/porn/test.jpg\","
                    "\"1610640000\"]",
                    id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, image_moderation_score_is_the_highest_of_the_array)
{
        json_t *scores = json_pack("[i,s,i]", 40, "87", 12);

        cr_assert(eq(int, map_edited(image_json, IMAGE_T, "score", scores), 0), "%s",
                  verdict.message);
        cr_assert(eq(i64, payload_int("score"), 87));
}

Test(tencent, image_moderation_scalar_score_is_accepted)
{
        cr_assert(eq(int, map_edited(image_json, IMAGE_T, "score", json_string("64")), 0), "%s",
                  verdict.message);
        cr_assert(eq(i64, payload_int("score"), 64));
}

Test(tencent, image_moderation_without_stream_is_400_naming_stream_id)
{
        char *a = support_json_edit(image_json, "streamId", json_null());

        assert_refused_edit(a, IMAGE_T, "channelId", json_null(), "streamId is missing");
        free(a);
}

Test(tencent, image_moderation_without_suggestion_is_400)
{
        assert_refused_edit(image_json, IMAGE_T, "suggestion", json_null(),
                            "suggestion is missing");
}

Test(tencent, audio_moderation_maps_to_live_audit)
{
        cr_assert(eq(int, map_at(audio_json, AUDIO_T - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "audit.audio");
        cr_assert_str_eq(ev.topic, "live.audit");
        cr_assert_str_eq(ev.payload_name, "AuditVerdict");
        cr_assert_str_eq(ev.key, "test_stream");
        cr_assert_str_eq(payload_str("source"), "tencent.audio");
        cr_assert_str_eq(payload_str("suggestion"), "Review"); /* HitFlag 1 */
        cr_assert_str_eq(payload_str("label"), "Abuse");
        cr_assert(eq(i64, payload_int("score"), 92));
        cr_assert_str_eq(payload_str("reason"), "sample transcript text");
        cr_assert_not(payload_has("sub_label")); /* SubTag is empty */
        cr_assert_not(payload_has("img"));
}

/* A verdict quoting more speech than live_audit_logs.reason holds keeps its first characters. */
Test(tencent, a_long_moderation_excerpt_is_cut_to_its_column_not_refused)
{
        char text[3 * 300 + 1] = "", want[3 * 255 + 1] = "";

        for (int i = 0; i < 300; i++)
                strcat(text, "\xe8\xaf\xad"); /* one three-byte character */
        memcpy(want, text, 3 * 255);
        cr_assert(eq(int, map_edited(audio_json, AUDIO_T, "asr_text", json_string(text)), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("reason"), want);
        cr_assert(
                field_fits(payload_str("reason"), strlen(payload_str("reason")), FIELD_MAX_REASON));
        webhook_event_fini(&ev);
        memset(&ev, 0, sizeof(ev));
        cr_assert(eq(int, map_edited(image_json, IMAGE_T, "ocrMsg", json_string(text)), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("reason"), want);
}

Test(tencent, audio_moderation_without_a_hit_passes)
{
        cr_assert(eq(int, map_edited(audio_json, AUDIO_T, "HitFlag", json_string("0")), 0), "%s",
                  verdict.message);
        cr_assert_str_eq(payload_str("suggestion"), "Pass");
}

Test(tencent, audio_moderation_vendor_suggestion_wins)
{
        cr_assert(eq(int, map_edited(audio_json, AUDIO_T, "suggestion", json_string("Block")), 0),
                  "%s", verdict.message);
        cr_assert_str_eq(payload_str("suggestion"), "Block");
}

Test(tencent, audio_moderation_without_hit_flag_is_400)
{
        assert_refused_edit(audio_json, AUDIO_T, "HitFlag", json_null(), "HitFlag is missing");
}

Test(tencent, audio_moderation_hit_flag_out_of_range_is_400)
{
        assert_refused_edit(audio_json, AUDIO_T, "HitFlag", json_integer(2),
                            "HitFlag: expected 0 or 1");
}

/* The untyped types keep going to live.other, once they are signed. */
static void assert_other(const char *sample)
{
        char *body = signed_body(sample, PROBE_KEY, json_integer(1700000000));

        cr_assert(eq(int, map_at(body, 1700000000 - 1), 0), "%s", verdict.message);
        cr_assert_str_eq(ev.event_type, "other");
        cr_assert_str_eq(ev.topic, "live.other");
        cr_assert_null(ev.payload_name);
        cr_assert_null(ev.payload);
        cr_assert_null(ev.fields);
        cr_assert(eq(int, (int)strlen(ev.event_id), 64));
        free(body);
}

Test(tencent, push_abnormal_goes_to_live_other)
{
        char id[65];

        assert_other(push_abnormal_json);
        cr_assert_str_eq(ev.stream_id, "test_stream");
        cr_assert(eq(i64, ev.event_time_ms, 1700000000LL * 1000 - 1000)); /* no event time: now */
        expected_id("tencent|321|[\"2210464508206756938\",\"1670588074971\"]", id);
        cr_assert_str_eq(ev.event_id, id);
}

Test(tencent, relay_goes_to_live_other)
{
        assert_other(relay_json);
        cr_assert_str_eq(ev.stream_id, "testvod");
}

Test(tencent, live_summary_goes_to_live_other)
{
        char *body = support_json_edit(push_abnormal_json, "event_type", json_integer(348));

        assert_other(body);
        free(body);
}

Test(tencent, unsigned_push_abnormal_is_refused)
{
        assert_refused(map_at(push_abnormal_json, 1700000000), 401, "missing", "sign");
}

/* Every signed sample of shared/payloads/tencent-css and what it becomes. */
struct sample {
        const char *json;
        long long t;
        const char *topic;
        const char *payload_name; /* NULL: null payload */
};

static const struct sample samples[] = {
        {push_json, PUSH_T, "live.stream", "StreamBegin"},
        {interrupt_json, 1703735803LL, "live.stream", "StreamEnd"},
        {record_json, RECORD_T, "live.record", "RecordFile"},
        {record_status_json, STATUS_T, "live.record", "RecordStatus"},
        {screenshot_json, SNAP_T, "live.snapshot", "Snapshot"},
        {image_json, IMAGE_T, "live.audit", "AuditVerdict"},
        {audio_json, AUDIO_T, "live.audit", "AuditVerdict"},
};

#define SAMPLE_CNT (sizeof(samples) / sizeof(samples[0]))

Test(tencent, every_sample_resigned_keeps_its_event_id)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                char first[65],
                        *retry = signed_body(samples[i].json, PROBE_KEY, json_string("1999999999"));

                cr_assert(eq(int, map_at(samples[i].json, samples[i].t - 1), 0), "sample %zu: %s",
                          i, verdict.message);
                cr_assert_str_eq(ev.topic, samples[i].topic, "sample %zu", i);
                memcpy(first, ev.event_id, sizeof(first));
                webhook_event_fini(&ev);
                cr_assert(eq(int, map_at(retry, samples[i].t - 1), 0), "sample %zu: %s", i,
                          verdict.message);
                cr_assert_str_eq(ev.event_id, first, "sample %zu", i);
                webhook_event_fini(&ev);
                free(retry);
        }
}

Test(tencent, every_topic_chosen_is_listed_in_tencent_topics)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                bool is_listed = false;

                cr_assert(eq(int, map_at(samples[i].json, samples[i].t - 1), 0), "sample %zu: %s",
                          i, verdict.message);
                for (size_t j = 0; tencent_topics[j]; j++)
                        is_listed |= strcmp(tencent_topics[j], ev.topic) == 0;
                cr_assert(is_listed, "sample %zu: %s is not in tencent_topics", i, ev.topic);
                webhook_event_fini(&ev);
        }
}

Test(tencent, typed_samples_have_distinct_event_ids)
{
        char ids[SAMPLE_CNT][65];

        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                cr_assert(eq(int, map_at(samples[i].json, samples[i].t - 1), 0), "sample %zu: %s",
                          i, verdict.message);
                memcpy(ids[i], ev.event_id, sizeof(ids[i]));
                webhook_event_fini(&ev);
                for (size_t j = 0; j < i; j++)
                        cr_assert_str_neq(ids[i], ids[j], "samples %zu and %zu", j, i);
        }
}

Test(tencent, every_typed_sample_refuses_a_missing_stream)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                char *a = support_json_edit(samples[i].json, "stream_id", json_null());
                char *b = support_json_edit(a, "streamId", json_null());
                char *c = support_json_edit(b, "channel_id", json_null());
                char *body = support_json_edit(c, "channelId", json_null());

                cr_assert(eq(int, map_at(body, samples[i].t - 1), -1), "sample %zu", i);
                cr_assert(eq(u32, verdict.status, 400), "sample %zu", i);
                cr_assert(strstr(verdict.message, "is missing") != NULL, "sample %zu: %s", i,
                          verdict.message);
                cr_assert_null(ev.payload);
                cr_assert_null(ev.fields);
                free(a);
                free(b);
                free(c);
                free(body);
        }
}

/* ------------------------------------------------------------ the codec takes what the module
 * makes */

/* Every field the module set reads back from the record with its value. */
static void assert_fields_decoded(const struct event *out)
{
        json_t *given = payload_to_json(ev.fields);
        const char *name;
        json_t *value;

        json_object_foreach(given, name, value)
        {
                cr_assert(json_equal(json_object_get(out->payload, name), value),
                          "payload field %s does not read back", name);
        }
        json_decref(given);
}

/*
 * Written both ways: by codec_encode_direct() from the module's fields, as the receiver does,
 * and by avro-c (codec_encode()) from the same fields as JSON; the bytes must be the same.
 */
static void assert_encodes(const char *body, long long now_s)
{
        char errstr[256];
        struct codec *c = codec_new(errstr, sizeof(errstr));
        struct event out = {0};
        struct envelope env;
        json_t *as_json;
        void *buf = NULL, *ref = NULL;
        size_t len = 0, ref_len = 0;

        cr_assert(c != NULL, "%s", errstr);
        cr_assert(eq(int, map_at(body, now_s), 0), "%s", verdict.message);
        env = webhook_envelope(&ev, now_s * 1000, "0123456789abcdef", body, strlen(body));
        cr_assert(eq(int,
                     codec_encode_direct(c, &env, ev.payload_name, ev.fields, NULL, &buf, &len,
                                         errstr, sizeof(errstr)),
                     0),
                  "%s", errstr);
        as_json = ev.fields ? payload_to_json(ev.fields) : NULL;
        cr_assert(eq(int,
                     codec_encode(c, &env, ev.payload_name, as_json, &ref, &ref_len, errstr,
                                  sizeof(errstr)),
                     0),
                  "%s", errstr);
        cr_assert(eq(sz, len, ref_len));
        cr_assert(eq(int, memcmp(buf, ref, len), 0), "the two encoders wrote different bytes");
        cr_assert(eq(int, codec_decode(c, buf, len, &out, errstr, sizeof(errstr)), 0), "%s",
                  errstr);
        cr_assert_str_eq(out.event_type, ev.event_type);
        cr_assert(eq(sz, out.raw_len, strlen(body)));
        if (ev.payload_name) {
                cr_assert_str_eq(out.payload_name, ev.payload_name);
                assert_fields_decoded(&out);
        } else {
                cr_assert_null(out.payload_name);
        }
        event_fini(&out);
        json_decref(as_json);
        free(ref);
        free(buf);
        codec_destroy(c);
}

Test(tencent, push_payload_fits_the_schema)
{
        char *body = support_json_edit(push_json, "stream_param",
                                       json_string("anchor_id=a1&room_id=r1"));

        assert_encodes(body, PUSH_T - 1);
        free(body);
}

Test(tencent, interrupt_payload_fits_the_schema)
{
        assert_encodes(interrupt_json, 1703735803 - 1);
}

Test(tencent, every_sample_fits_the_schema)
{
        for (size_t i = 0; i < SAMPLE_CNT; i++) {
                assert_encodes(samples[i].json, samples[i].t - 1);
                if (samples[i].payload_name)
                        cr_assert_str_eq(ev.payload_name, samples[i].payload_name, "sample %zu", i);
                webhook_event_fini(&ev);
        }
}

Test(tencent, other_type_fits_the_schema)
{
        char *body = signed_body(relay_json, PROBE_KEY, json_integer(1700000000));

        assert_encodes(body, 1700000000 - 1);
        free(body);
}

Test(tencent, record_without_optional_fields_fits_the_schema)
{
        static const char *const optional[] = {"file_format",   "start_time", "end_time",
                                               "duration",      "file_size",  "callback_ext",
                                               "record_file_id"};
        char *body = strdup(record_json), *next;

        for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
                next = support_json_edit(body, optional[i], json_null());
                free(body);
                body = next;
        }
        assert_encodes(body, RECORD_T - 1);
        cr_assert_str_eq(ev.payload_name, "RecordFile");
        free(body);
}
