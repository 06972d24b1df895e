/* identity.c: test_srs's anti-leech signature, the on_publish decision on the anchor
 * and the store lookup behind it (stores down, off the HTTP thread), the SRS settings and the
 * publisher's identity. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
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
#include "fixture.h"
#include "srs.h"
#include "support.h"
#include "url.h"

/* ------------------------------------------------------------ anti-leech signature */

/* Makes the endpoint with LIVEFLOW_SRS_PUBLISH_KEY = keys. */
static void use_keys(const char *keys)
{
        cfg.srs_publish_keys = (char *)keys;
        make_srs(true);
}

Test(srs, signature_matches_a_known_md5)
{
        /* MD5("srs-publish-key" "livestream" "a1" "6553F100"), computed with Python's hashlib. */
        char *body = with_param(publish_json, "?txSecret=d4cb3a025ca8d3a5bf781ba9b169f3a0"
                                              "&txTime=6553F100&anchor_id=a1");

        use_keys(KEY_A);
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "active"), 1));
        free(body);
}

Test(srs, valid_signature_is_allowed)
{
        char *body = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=a1");

        use_keys(KEY_A);
        assert_mapped(map(body));
        cr_assert_str_eq(ev.anchor_id, "a1");
        cr_assert(eq(int, fake.calls, 1));
        free(body);
}

Test(srs, wrong_signature_is_refused_before_the_lookup)
{
        char *body = signed_publish("not-the-key", NOW_S + 600, "&anchor_id=a1");

        use_keys(KEY_A);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("deny", "signature_mismatch"), 1));
        free(body);
}

Test(srs, signature_of_another_stream_is_refused)
{
        char *t = hex_time(NOW_S + 600), *param = signed_param(KEY_A, "otherstream", t, "");
        char *body = with_param(publish_json, param);

        use_keys(KEY_A);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        free(t);
        free(param);
        free(body);
}

Test(srs, expired_signature_is_refused)
{
        char *body = signed_publish(KEY_A, NOW_S - 1, "");
        char *still_valid = signed_publish(KEY_A, NOW_S, "");

        use_keys(KEY_A);
        assert_refused(map(body), 403, "expired", "expired");
        cr_assert(eq(i64, decisions("deny", "signature_expired"), 1));
        assert_mapped(map(still_valid));
        free(body);
        free(still_valid);
}

Test(srs, every_key_of_a_rotation_is_accepted)
{
        char *old_key = signed_publish(KEY_A, NOW_S + 60, "");
        char *new_key = signed_publish(KEY_B, NOW_S + 60, "");
        char *retired = signed_publish("retired-key", NOW_S + 60, "");

        use_keys(" " KEY_B " ,, " KEY_A " ");
        assert_mapped(map(old_key));
        assert_mapped(map(new_key));
        assert_refused(map(retired), 403, "mismatch", "txSecret");
        free(old_key);
        free(new_key);
        free(retired);
}

Test(srs, uppercase_secret_and_lowercase_time_are_read_as_sent)
{
        char *t = hex_time(NOW_S + 60), *param, *body;

        for (char *p = t; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        param = signed_param(KEY_A, "livestream", t, "");
        for (char *p = param + strlen("?txSecret="); *p != '&'; p++)
                *p = (char)toupper((unsigned char)*p);
        body = with_param(publish_json, param);
        use_keys(KEY_A);
        assert_mapped(map(body));
        free(t);
        free(param);
        free(body);
}

Test(srs, missing_or_malformed_signature_parts_are_refused)
{
        char *no_secret = with_param(publish_json, "?txTime=6553F100");
        char *no_time = with_param(publish_json, "?txSecret=5a785ce3671462f600795b1fb1f7cf62");
        char *bad_time = with_param(publish_json,
                                    "?txSecret=5a785ce3671462f600795b1fb1f7cf62&txTime=-6553F1");
        char *long_time = with_param(publish_json, "?txSecret=5a785ce3671462f600795b1fb1f7cf62"
                                                   "&txTime=00000000000000001");
        char *short_secret = with_param(publish_json, "?txSecret=5a785ce3&txTime=6553F100");

        use_keys(KEY_A);
        assert_refused(map(publish_json), 403, "missing", "txSecret");
        assert_refused(map(no_secret), 403, "missing", "txSecret");
        assert_refused(map(no_time), 403, "missing", "txTime");
        assert_refused(map(bad_time), 403, "missing", "txTime");
        assert_refused(map(long_time), 403, "missing", "txTime");
        assert_refused(map(short_secret), 403, "mismatch", "txSecret");
        cr_assert(eq(i64, decisions("deny", "signature_missing"), 5));
        free(no_secret);
        free(no_time);
        free(bad_time);
        free(long_time);
        free(short_secret);
}

Test(srs, signature_is_checked_only_on_publish)
{
        use_keys(KEY_A);
        assert_mapped(map(unpublish_json));
        assert_mapped(map(play_json));
        assert_mapped(map(dvr_json));
}

Test(srs, no_key_means_no_signature_check)
{
        assert_mapped(map(publish_json));
        cr_assert(eq(i64, decisions("allow", "no_anchor"), 1));
}

Test(srs, key_longer_than_the_limit_is_a_config_error)
{
        char errstr[256], *key = repeat("k", SRS_KEY_MAX + 1);

        cfg.srs_publish_keys = key;
        cr_assert_null(srs_new(&cfg, metrics, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "LIVEFLOW_SRS_PUBLISH_KEY") != NULL, "%s", errstr);
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_SRS_PUBLISH_KEY") != NULL, "%s", errstr);
        free(key);
}

Test(srs, bad_store_url_is_a_config_error)
{
        char errstr[256];

        cfg.redis_url = (char *)"http://127.0.0.1:6379";
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_REDIS_URL") != NULL, "%s", errstr);
        cfg.redis_url = NULL;
        cfg.mysql_url = (char *)"postgres://u:p@h/db";
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_MYSQL_URL") != NULL, "%s", errstr);
        cfg.mysql_url = NULL;
        cr_assert(eq(int, srs_check_config(&cfg, errstr, sizeof(errstr)), 0), "%s", errstr);
}

/* ------------------------------------------------------------ the anchor decision */

static char *publish_by(const char *anchor_id)
{
        char param[160];

        snprintf(param, sizeof(param), "?anchor_id=%s&room_id=r1", anchor_id);
        return with_param(publish_json, param);
}

Test(srs, banned_anchor_is_refused)
{
        char *body = publish_by("anchor-b");

        fake.anchor.status = ANCHOR_BANNED;
        assert_refused(map(body), 403, NULL, "banned");
        cr_assert(strstr(verdict.message, "anchor-b") != NULL, "%s", verdict.message);
        cr_assert_str_eq(fake.asked, "anchor-b");
        cr_assert(eq(i64, decisions("deny", "banned"), 1));
        cr_assert(eq(i64, decisions("allow", "active"), 0));
        free(body);
}

Test(srs, suspended_anchor_is_refused_until_the_end)
{
        char *body = publish_by("anchor-s");

        fake.anchor.status = ANCHOR_SUSPENDED;
        fake.anchor.suspended_until_ms = NOW_MS + 1;
        assert_refused(map(body), 403, NULL, "suspended");
        cr_assert(eq(i64, decisions("deny", "suspended"), 1));
        fake.anchor.suspended_until_ms = NOW_MS;
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "suspension_over"), 1));
        free(body);
}

Test(srs, suspension_without_an_end_is_refused)
{
        char *body = publish_by("anchor-s");

        fake.anchor.status = ANCHOR_SUSPENDED;
        fake.anchor.suspended_until_ms = 0;
        assert_refused(map(body), 403, NULL, "suspended");
        free(body);
}

Test(srs, active_anchor_is_allowed)
{
        char *body = publish_by("anchor-a");

        assert_mapped(map(body));
        cr_assert_str_eq(ev.anchor_id, "anchor-a");
        cr_assert_str_eq(ev.room_id, "r1");
        cr_assert(eq(i64, decisions("allow", "active"), 1));
        free(body);
}

Test(srs, unavailable_stores_allow_when_fail_open)
{
        char *body = publish_by("anchor-x");

        fake.result = ANCHOR_LOOKUP_UNAVAILABLE;
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 1));
        free(body);
}

Test(srs, unavailable_stores_answer_503_when_fail_closed)
{
        char *body = publish_by("anchor-x");

        cfg.srs_fail_open = 0;
        make_srs(true);
        fake.result = ANCHOR_LOOKUP_UNAVAILABLE;
        assert_refused(map(body), 503, NULL, "unavailable");
        cr_assert(eq(i64, decisions("deny", "stores_down"), 1));
        free(body);
}

Test(srs, publish_without_anchor_is_allowed_unless_required)
{
        assert_mapped(map(publish_json));
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("allow", "no_anchor"), 1));
        cfg.srs_require_anchor = 1;
        make_srs(true);
        assert_refused(map(publish_json), 400, NULL, "anchor_id");
        cr_assert(eq(i64, decisions("deny", "no_anchor"), 1));
}

Test(srs, only_publish_is_authorized)
{
        char *unpublish = with_param(unpublish_json, "?anchor_id=anchor-b");
        char *dvr = with_param(dvr_json, "?anchor_id=anchor-b");

        fake.anchor.status = ANCHOR_BANNED;
        assert_mapped(map(unpublish)); /* the end of a stream is recorded whoever pushed it */
        assert_mapped(map(dvr));
        assert_mapped(map(play_json));
        cr_assert(eq(int, fake.calls, 0));
        free(unpublish);
        free(dvr);
}

Test(srs, checks_are_off_without_stores)
{
        char *body = publish_by("anchor-b");

        make_srs(false);
        fake.anchor.status = ANCHOR_BANNED;
        assert_mapped(map(body));
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("allow", "checks_off"), 1));
        free(body);
}

/* ------------------------------------------------------------ the store lookup, stores down */

static long long store_errors(const char *store)
{
        char labels[32];

        snprintf(labels, sizeof(labels), "store=\"%s\"", store);
        return metric_value(
                metrics_counter(metrics, "liveflow_receiver_srs_store_errors_total", NULL, labels));
}

Test(srs, unreachable_redis_fails_open_and_is_skipped_for_a_while)
{
        char *body = publish_by("anchor-r");

        cfg.redis_url = (char *)"redis://127.0.0.1:1/0"; /* nothing listens on port 1 */
        make_srs(false);
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 1));
        cr_assert(eq(i64, store_errors("redis"), 1));
        assert_mapped(map(body));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 2));
        cr_assert(eq(i64, store_errors("redis"), 1), "within the retry period Redis is not asked");
        free(body);
}

Test(srs, unreachable_stores_refuse_when_fail_closed)
{
        char *body = publish_by("anchor-r");

        cfg.redis_url = (char *)"redis://127.0.0.1:1/0";
        cfg.mysql_url = (char *)"mysql://u:p@127.0.0.1:1/db";
        cfg.srs_fail_open = 0;
        make_srs(false);
        assert_refused(map(body), 503, NULL, "unavailable");
        cr_assert(eq(i64, store_errors("redis"), 1));
        cr_assert(eq(i64, store_errors("mysql"), 1));
        free(body);
}

/* ------------------------------------------------------------ the lookup done off the HTTP thread
 */

/* srs_lookup_wanted() of body: 1 with the anchor id in *out, else 0. */
static int wanted(const char *body, char *out, size_t size)
{
        const struct webhook_request req = {.body = body,
                                            .len = strlen(body),
                                            .now_ms = NOW_MS,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .method = "POST"};

        out[0] = '\0';
        return srs_lookup_wanted(srs, &req, out, size);
}

/* srs_map() of body with ans as the lookup done before. */
static int map_answered(const char *body, const struct anchor_answer *ans)
{
        const struct webhook_request req = {.body = body,
                                            .len = strlen(body),
                                            .now_ms = NOW_MS,
                                            .path_arg = "",
                                            .trace_id = "test-trace",
                                            .anchor_answer = ans};

        webhook_event_fini(&ev);
        memset(&verdict, 0, sizeof(verdict));
        return srs_map(srs, &req, &ev, &verdict);
}

Test(srs, a_lookup_is_wanted_only_for_a_publish_that_would_ask_the_stores)
{
        char *body = publish_by("anchor-w"),
             *unpublish = with_param(unpublish_json, "?anchor_id=w");
        char *good = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=a1");
        char *forged = signed_publish("not-the-key", NOW_S + 600, "&anchor_id=a1");
        char anchor[ANCHOR_ID_BYTES_MAX + 1];

        cfg.redis_url = (char *)"redis://127.0.0.1:1/0"; /* a store: lookups have workers */
        make_srs(false);
        cr_assert(eq(int, wanted(body, anchor, sizeof(anchor)), 1));
        cr_assert_str_eq(anchor, "anchor-w");
        cr_assert(eq(int, wanted(publish_json, anchor, sizeof(anchor)), 0), "no anchor named");
        cr_assert(eq(int, wanted(unpublish, anchor, sizeof(anchor)), 0));
        cr_assert(eq(int, wanted(play_json, anchor, sizeof(anchor)), 0));
        cr_assert(eq(int, wanted("{\"action\":", anchor, sizeof(anchor)), 0), "malformed");
        cr_assert(eq(int, wanted(body, anchor, 4), 0), "no room for the id");
        cfg.srs_publish_keys = (char *)KEY_A;
        make_srs(false);
        cr_assert(eq(int, wanted(good, anchor, sizeof(anchor)), 1));
        cr_assert_str_eq(anchor, "a1");
        cr_assert(eq(int, wanted(forged, anchor, sizeof(anchor)), 0), "refused before a lookup");
        cfg.redis_url = NULL;
        make_srs(false);
        cr_assert(eq(int, wanted(good, anchor, sizeof(anchor)), 0), "checks are off");
        cr_assert(
                eq(i64, decisions("allow", "active") + decisions("deny", "signature_mismatch"), 0),
                "asking decides nothing");
        free(body);
        free(unpublish);
        free(good);
        free(forged);
}

Test(srs, a_publish_mapped_with_its_answer_is_decided_by_it_without_asking_again)
{
        char *body = publish_by("anchor-b");
        struct anchor_answer ans = {.anchor_id = "anchor-b",
                                    .result = ANCHOR_LOOKUP_FOUND,
                                    .record = {.status = ANCHOR_BANNED, .store = "redis"}};

        make_srs(true); /* the fake says active: the answer says banned */
        assert_refused(map_answered(body, &ans), 403, NULL, "banned");
        cr_assert(eq(int, fake.calls, 0));
        cr_assert(eq(i64, decisions("deny", "banned"), 1));

        ans.result = ANCHOR_LOOKUP_UNAVAILABLE; /* the deadline passed: fail open */
        assert_mapped(map_answered(body, &ans));
        cr_assert(eq(i64, decisions("allow", "stores_down"), 1));
        cfg.srs_fail_open = 0;
        make_srs(true);
        assert_refused(map_answered(body, &ans), 503, NULL, "unavailable");
        cr_assert(eq(i64, decisions("deny", "stores_down"), 1));
        cr_assert(eq(int, fake.calls, 0));

        /* An answer about another anchor is not this publish's: it is looked up. */
        snprintf(ans.anchor_id, sizeof(ans.anchor_id), "someone-else");
        assert_mapped(map_answered(body, &ans));
        cr_assert(eq(int, fake.calls, 1));
        free(body);
}

/* ------------------------------------------------------------ settings */

Test(srs, receiver_settings_make_stores_optional)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092", 1);
        unsetenv("LIVEFLOW_MYSQL_URL");
        unsetenv("LIVEFLOW_REDIS_URL");
        cr_assert(eq(int, settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0), "%s", err);
        cr_assert_null(s.mysql_url);
        cr_assert_null(s.redis_url);
        cr_assert(eq(i64, s.srs_fail_open, 1));
        cr_assert(eq(i64, s.srs_require_anchor, 1));
        cr_assert(eq(i64, s.srs_publish_unsigned, 0));
        cr_assert(eq(i64, s.srs_store_retry_ms, 1000));
        cr_assert(eq(i64, s.mysql_timeout_s, 5));
        settings_fini(&s);
        setenv("LIVEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0", 1);
        setenv("LIVEFLOW_SRS_PUBLISH_KEY", "k1,k2", 1);
        cr_assert(eq(int, settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), 0), "%s", err);
        cr_assert_str_eq(s.redis_url, "redis://127.0.0.1:6379/0");
        cr_assert_str_eq(s.srs_publish_keys, "k1,k2");
        settings_fini(&s);
        cr_assert(eq(int, settings_load(&s, SETTINGS_CONSUMER, err, sizeof(err)), -1));
        cr_assert(strstr(err, "LIVEFLOW_MYSQL_URL is not set") != NULL, "%s", err);
        settings_fini(&s);
}

/* ------------------------------------------------------------ the publisher's identity */

/* The defaults of settings_load(): a key is required and so is the anchor. */
static void make_default_srs(const char *keys)
{
        cfg.srs_publish_keys = (char *)keys;
        cfg.srs_publish_unsigned = 0;
        cfg.srs_require_anchor = 1;
        make_srs(true);
}

Test(srs, without_a_publish_key_every_publish_is_refused_by_default)
{
        char *body = with_param(publish_json, "?anchor_id=a1");

        make_default_srs(NULL);
        assert_refused(map(body), 403, NULL, "LIVEFLOW_SRS_PUBLISH_KEY");
        cr_assert(eq(i64, decisions("deny", "no_publish_key"), 1));
        cr_assert(eq(int, fake.calls, 0));
        /* The other hooks are not authorizations: they still map. */
        assert_mapped(map(play_json));
        free(body);
}

Test(srs, the_signature_covers_the_anchor_id)
{
        char *own = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=a1");
        char *t = hex_time(NOW_S + 600),
             *param = signed_param(KEY_A, "livestream", t, "&anchor_id=a1");
        char *other = NULL, *body;

        make_default_srs(KEY_A);
        assert_mapped(map(own));
        cr_assert_str_eq(ev.anchor_id, "a1");
        /* A banned a2 holding a URL signed for a1 (or for nobody) cannot claim to be a1. */
        cr_assert(asprintf(&other, "%.*sanchor_id=a2", (int)(strstr(param, "anchor_id=") - param),
                           param) > 0);
        body = with_param(publish_json, other);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        free(body);
        free(param);
        param = signed_param(KEY_A, "livestream", t, "");
        free(other);
        cr_assert(asprintf(&other, "%s&anchor_id=a1", param) > 0);
        body = with_param(publish_json, other);
        assert_refused(map(body), 403, "mismatch", "txSecret");
        free(body);
        free(other);
        free(param);
        free(own);
        free(t);
}

Test(srs, a_missing_empty_or_repeated_anchor_id_is_refused_by_default)
{
        static const char *const extras[] = {"", "&anchor_id=", "&anchor_id=a1&anchor_id=a2",
                                             "&anchor_id=a1&room_id=r1&room_id=r2"};
        static const char *const why[] = {"anchor_id is missing", "anchor_id is empty",
                                          "anchor_id is repeated", "room_id is repeated"};

        make_default_srs(KEY_A);
        fake.anchor.status = ANCHOR_BANNED;
        for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
                char *body = signed_publish(KEY_A, NOW_S + 600, extras[i]);

                cr_log_info("param extra %s", extras[i]);
                assert_refused(map(body), 400, NULL, why[i]);
                free(body);
        }
        cr_assert(eq(int, fake.calls, 0), "refused before any store lookup");
}

Test(srs, a_banned_anchor_is_refused_however_its_id_is_sent)
{
        char *body = signed_publish(KEY_A, NOW_S + 600, "&anchor_id=banned-1");

        make_default_srs(KEY_A);
        fake.anchor.status = ANCHOR_BANNED;
        assert_refused(map(body), 403, NULL, "banned");
        cr_assert_str_eq(fake.asked, "banned-1");
        free(body);
}

Test(srs, fail_open_accepts_only_0_or_1)
{
        struct settings s;
        char err[256];

        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092", 1);
        setenv("LIVEFLOW_SRS_FAIL_OPEN", "2", 1);
        cr_assert(eq(int, settings_load(&s, SETTINGS_RECEIVER, err, sizeof(err)), -1));
        cr_assert(strstr(err, "LIVEFLOW_SRS_FAIL_OPEN") != NULL, "%s", err);
        settings_fini(&s);
}

/* ============================================================ the receiver binary */
