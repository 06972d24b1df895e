/*
 * fuzz_codec.c: libFuzzer target for codec_decode(). Each input is decoded as given (header
 * checks) and behind the header of every schema the codec reads, the current one and the
 * released ones of schemas/history/ (so the fuzzer spends its time in the body, and in the
 * schema resolution of old bodies). A body that decodes must encode again and decode to the
 * same event, and the one-pass reader (codec_read.c) and avro-c (codec_decode_avro_c()) must
 * read it or refuse it alike.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "codec.h"
#include "codec_int.h"
#include "schemas.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FINGERPRINTS 16

static struct codec *codec;
static uint64_t fingerprints[MAX_FINGERPRINTS];
static size_t n_fingerprints;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        char errstr[256];

        (void)argc;
        (void)argv;
        codec = fuzz_codec_new();
        for (const struct embedded_schema *e = embedded_schemas; e->name; e++) {
                if (strcmp(e->name, "event") != 0 && strncmp(e->name, "history/", 8) != 0)
                        continue;
                if (n_fingerprints == MAX_FINGERPRINTS ||
                    avro_sof_fingerprint(e->json, &fingerprints[n_fingerprints], errstr,
                                         sizeof(errstr)) != 0) {
                        fprintf(stderr, "%s: %s\n", e->name, errstr);
                        abort();
                }
                n_fingerprints++;
        }
        return 0;
}

static int same_string(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void assert_same(const struct event *a, const struct event *b, const char *what)
{
        if (!same_string(a->event_id, b->event_id) || !same_string(a->vendor, b->vendor) ||
            !same_string(a->event_type, b->event_type) ||
            !same_string(a->stream_id, b->stream_id) || !same_string(a->anchor_id, b->anchor_id) ||
            !same_string(a->room_id, b->room_id) || !same_string(a->trace_id, b->trace_id) ||
            a->event_time_ms != b->event_time_ms || a->receive_time_ms != b->receive_time_ms ||
            a->raw_len != b->raw_len || memcmp(a->raw, b->raw, a->raw_len) != 0 ||
            !same_string(a->payload_name, b->payload_name) ||
            !(a->payload ? b->payload && json_equal(a->payload, b->payload) : !b->payload)) {
                fprintf(stderr, "%s changed the event\n", what);
                abort();
        }
}

/* Whatever decodes must survive encode -> decode unchanged. */
static void check_round_trip(const struct event *ev)
{
        struct envelope env = {
                .event_id = ev->event_id,
                .vendor = ev->vendor,
                .event_type = ev->event_type,
                .stream_id = ev->stream_id,
                .anchor_id = ev->anchor_id,
                .room_id = ev->room_id,
                .event_time_ms = ev->event_time_ms,
                .receive_time_ms = ev->receive_time_ms,
                .trace_id = ev->trace_id,
                .raw = ev->raw,
                .raw_len = ev->raw_len,
        };
        char errstr[256];
        struct event again;
        void *out;
        size_t len;

        /* Empty required strings decode but do not encode: the encoder is stricter by design. */
        if (!*ev->event_id || !*ev->vendor || !*ev->event_type || !*ev->trace_id)
                return;
        if (codec_encode(codec, &env, ev->payload_name, ev->payload, &out, &len, errstr,
                         sizeof(errstr)) != 0 ||
            codec_decode(codec, out, len, &again, errstr, sizeof(errstr)) != 0) {
                fprintf(stderr, "round trip failed: %s\n", errstr);
                abort();
        }
        assert_same(ev, &again, "round trip");
        event_fini(&again);
        free(out);
}

static void decode_one(const uint8_t *data, size_t size)
{
        char errstr[256];
        struct event ev, ref;
        int rc = codec_decode(codec, data, size, &ev, errstr, sizeof(errstr));

        /* avro-c alone: the reference the one-pass reader is held to */
        if (codec_decode_avro_c(codec, data, size, &ref, errstr, sizeof(errstr)) != rc) {
                fprintf(stderr, "the reader and avro-c disagree on decoding\n");
                abort();
        }
        if (rc == 0) {
                assert_same(&ev, &ref, "avro-c");
                check_round_trip(&ev);
                event_fini(&ev);
                event_fini(&ref);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t *framed = malloc(AVRO_SOF_HEADER_SIZE + size);

        decode_one(data, size);
        if (!framed)
                return 0;
        if (size)
                memcpy(framed + AVRO_SOF_HEADER_SIZE, data, size);
        for (size_t i = 0; i < n_fingerprints; i++) {
                avro_sof_write_header(framed, fingerprints[i]);
                decode_one(framed, AVRO_SOF_HEADER_SIZE + size);
        }
        free(framed);
        return 0;
}
