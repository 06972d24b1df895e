/*
 * fixture.h: what test_codec.c shares with its parts (history.c: records of released schemas):
 * the suite's codec, its sample envelope and payloads, and the encode and decode steps.
 */
#ifndef LIVEFLOW_TEST_CODEC_FIXTURE_H
#define LIVEFLOW_TEST_CODEC_FIXTURE_H

#include <jansson.h>
#include <stddef.h>

#include "codec.h"

#define SCHEMA_PATH "schemas/event.avsc"
#define PAYLOAD_CNT 9

/* The suite's codec (made in its .init) and the errstr of its last call. */
extern struct codec *codec;
extern char errstr[512];

/* One example of every payload record, every field present (some as null). */
struct sample_payload {
        const char *name;
        const char *json;
};
extern const struct sample_payload payloads[PAYLOAD_CNT];

struct envelope sample_envelope(void);
json_t *parse(const char *text);
/* Encodes, asserting success; the caller frees *out. */
void encode_ok(const struct envelope *env, const char *name, const json_t *payload, void **out,
               size_t *len);
void assert_str_or_null(const char *got, const char *want, const char *what);
void assert_envelope(const struct event *ev, const struct envelope *env);
int decode(const void *data, size_t len, struct event *ev);

#endif
