/*
 * fuzz_events.c: libFuzzer target for POST /v1/events (callback-receiver/events.c): the body
 * bytes, once as sent (unsigned: 401) and once signed by the harness, so the fuzzer spends its
 * time in the batch parser. An accepted batch must hold 1 to the batch limit events, each
 * encoding into an envelope the schema takes; a refusal must carry an HTTP status.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encoder.h"
#include "events.h"
#include "internal.h"
#include "settings.h"
#include "webhook.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BATCH 16

static struct settings settings;
static struct internal *internal;
static struct encoder *encoder;

struct fake {
        const char *id, *timestamp, *signature;
};

static const char *fake_lookup(void *ctx, enum webhook_lookup kind, const char *name)
{
        const struct fake *f = ctx;

        if (kind != WEBHOOK_HEADER)
                return NULL;
        return fuzz_webhook_header(name, f->id, f->timestamp, f->signature);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        char errstr[256];

        (void)argc;
        (void)argv;
        settings.hmac_secrets = (char *)HMAC_SECRET;
        settings.webhook_tolerance_s = 300;
        settings.webhook_replay_max = 16;
        settings.max_amount = 1000000;
        if (!(internal = internal_new(&settings, NULL, errstr, sizeof(errstr))) ||
            !(encoder = encoder_new(errstr, sizeof(errstr)))) {
                fprintf(stderr, "fuzz_events: %s\n", errstr);
                abort();
        }
        return 0;
}

static void run(const struct webhook_request *req)
{
        struct webhook_batch batch = {0};
        struct webhook_verdict v = {0};
        char errstr[256];

        if (events_map(internal, NULL, MAX_BATCH, req, &batch, &v) == -1) {
                if (v.status < 200 || v.status > 599 || batch.n)
                        abort(); /* a refusal carries a status and leaves nothing */
                return;
        }
        if (batch.n < 1 || batch.n > MAX_BATCH)
                abort();
        for (size_t i = 0; i < batch.n; i++) {
                const struct webhook_event *ev = &batch.items[i].ev;
                const struct envelope env =
                        fuzz_envelope(ev, batch.items[i].raw, batch.items[i].raw_len);
                void *out = NULL;
                size_t out_len;

                if (!ev->topic || !ev->key || strlen(ev->event_id) != WEBHOOK_EVENT_ID_LEN ||
                    encoder_encode(encoder, &env, ev->payload_name, ev->fields, ev->payload, &out,
                                   &out_len, errstr, sizeof(errstr)) == -1) {
                        fprintf(stderr, "accepted event %zu cannot be produced: %s\n", i, errstr);
                        abort();
                }
                free(out);
        }
        webhook_batch_fini(&batch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char ts[32], sig[128];
        static unsigned long long n;
        char id[32];
        struct fake f = {.id = id, .timestamp = ts, .signature = "v1,AAAA"};
        struct webhook_request req = {.body = (const char *)data,
                                      .len = size,
                                      .now_ms = NOW_MS,
                                      .path_arg = "",
                                      .trace_id = "fuzz",
                                      .lookup = fake_lookup,
                                      .ctx = &f};

        /* A fresh webhook-id each time: the replay memory is never asked about a known one. */
        snprintf(id, sizeof(id), "msg_%llu", ++n);
        snprintf(ts, sizeof(ts), "%lld", NOW_MS / 1000);
        run(&req); /* signed wrong */
        if (fuzz_webhook_sign(id, ts, data, size, sig, sizeof(sig)) == 0) {
                f.signature = sig;
                run(&req);
        }
        return 0;
}
