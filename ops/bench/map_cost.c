/*
 * map_cost.c: the receiver's per-request work on a Tencent stream begin without the HTTP
 * server and Kafka: parse, verify, map and Avro-encode the bench's ~600-byte callback
 * (ops/bench/tencent.lua's body), N times, each with its own stream and sequence.
 * For instruction counts per request under callgrind:
 *   valgrind --tool=callgrind liveflow-bench-mapcost 1     (start-up alone)
 *   valgrind --tool=callgrind liveflow-bench-mapcost 20001 (start-up + 20 000 requests)
 * and divide the difference by 20 000. Exit 0 when every request was accepted and encoded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "encoder.h"
#include "tencent.h"
#include "webhook.h"

#define KEY "bench-tencent-key"

static const char *no_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        (void)ctx;
        (void)kind;
        (void)name;
        return NULL;
}

int main(int argc, char **argv)
{
        long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
        int64_t now_ms = (int64_t)time(NULL) * 1000;
        char errstr[256], t[32], keyed[64], sign[33], body[1024];
        struct tencent *tc = tencent_new(KEY, 900, errstr, sizeof(errstr));
        struct encoder *enc = encoder_new(errstr, sizeof(errstr));

        if (n < 1 || !tc || !enc) {
                fprintf(stderr, "usage: liveflow-bench-mapcost N (N >= 1) %s\n", errstr);
                return 2;
        }
        snprintf(t, sizeof(t), "%lld", (long long)(now_ms / 1000 + 600));
        snprintf(keyed, sizeof(keyed), "%s%s", KEY, t);
        crypto_md5_hex(keyed, strlen(keyed), sign);
        for (long i = 0; i < n; i++) {
                struct webhook_event ev = {0};
                struct webhook_verdict v = {0};
                int len = snprintf(
                        body, sizeof(body),
                        "{\"app\":\"push.bench.liveflow.test\",\"appid\":1250000001,"
                        "\"appname\":\"live\",\"channel_id\":\"bench-%ld\",\"errcode\":0,"
                        "\"errmsg\":\"ok\",\"event_time\":%lld,\"event_type\":1,"
                        "\"height\":1080,\"idc_id\":34,\"node\":\"127.0.0.1\","
                        "\"sequence\":\"1%012ld\",\"set_id\":2,\"sign\":\"%s\","
                        "\"stream_id\":\"bench-%ld\",\"stream_param\":\"txSecret="
                        "4a1d6b0c9e2f7a3b5c8d1e0f2a4b6c8d&txTime=7FFFFFFF&anchor_id=anchor-%ld"
                        "&room_id=room-%ld&app_ver=3.12.0&os=android-14&net=wifi&codec=h264"
                        "&fps=30&res=1920x1080&kbps=4500\",\"t\":%s,\"user_ip\":\"127.0.0.1\","
                        "\"width\":1920}",
                        i, (long long)(now_ms / 1000), i, sign, i, i, i, t);
                const struct webhook_request req = {
                        .body = body,
                        .len = (size_t)len,
                        .now_ms = now_ms,
                        .path_arg = "",
                        .trace_id = "0123456789abcdef0123456789abcdef",
                        .method = "POST",
                        .lookup = no_lookup,
                };
                void *out = NULL;
                size_t out_len;

                if (tencent_map(tc, &req, &ev, &v) == -1) {
                        fprintf(stderr, "request %ld refused: %u %s\n", i, v.status, v.message);
                        return 1;
                }
                const struct envelope env =
                        webhook_envelope(&ev, now_ms, req.trace_id, body, (size_t)len);
                if (encoder_encode(enc, &env, ev.payload_name, ev.fields, ev.payload, &out,
                                   &out_len, errstr, sizeof(errstr)) == -1) {
                        fprintf(stderr, "request %ld not encoded: %s\n", i, errstr);
                        return 1;
                }
                free(out);
                webhook_event_fini(&ev);
        }
        encoder_destroy(enc);
        tencent_destroy(tc);
        return 0;
}
