/*
 * fuzz_codec_write.c: libFuzzer target that holds liveflow's own Avro writer
 * (codec_encode_direct()) and avro-c's (codec_encode()) to one answer: for any envelope and
 * payload both accept, the same bytes; what one refuses, the other refuses.
 *
 * Input: a selector byte (the payload record, or none), a flags byte (which envelope ids are
 * NULL, whether the payload is absent), then "event_id \n stream_id \n anchor_id \n payload"
 * where the payload is JSON text (any value: objects, but also arrays, reals, \u0000). The
 * whole input is the raw body. A payload object of texts, integers, booleans and nulls is
 * also given as a struct payload, the form the Tencent module builds (nulls left out), against
 * avro-c's bytes for the same fields.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "payload.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const records[] = {
        "StreamBegin",   "StreamEnd", "RecordFile", "RecordStatus", "Snapshot",
        "AuditVerdict",  "Reward",    "Withdrawal", "SessionEnd",   "Viewer",
        "AudienceEvent", "Profile",   "Notify",     "NoSuchRecord", NULL,
};
#define N_RECORDS (sizeof(records) / sizeof(records[0]))

static struct codec *codec;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        codec = fuzz_codec_new();
        return 0;
}

/* obj as a struct payload, or NULL when it holds a value a payload cannot (null: absent). */
static struct payload *payload_of(const json_t *obj)
{
        struct payload *p;
        const char *key;
        json_t *value;

        if (!json_is_object(obj) || !(p = payload_new()))
                return NULL;
        json_object_foreach((json_t *)obj, key, value)
        {
                if (json_is_string(value))
                        payload_set_text(p, key, json_string_value(value),
                                         json_string_length(value));
                else if (json_is_integer(value))
                        payload_set_int(p, key, json_integer_value(value));
                else if (json_is_boolean(value))
                        payload_set_bool(p, key, json_is_true(value));
                else if (!json_is_null(value))
                        p->has_failed = true;
        }
        if (p->has_failed) {
                payload_destroy(p);
                return NULL;
        }
        return p;
}

static void check_one_answer(const struct envelope *env, const char *name,
                             const struct payload *fields, const json_t *payload, int ref_rc,
                             const void *ref, size_t ref_len)
{
        char errstr[256];
        void *out = NULL;
        size_t len = 0;
        int rc = codec_encode_direct(codec, env, name, fields, payload, &out, &len, errstr,
                                     sizeof(errstr));

        if (rc != ref_rc) {
                fprintf(stderr, "avro-c %s, the direct writer %s (%s)\n",
                        ref_rc ? "refused" : "accepted", rc ? "refused" : "accepted",
                        rc ? errstr : "");
                abort();
        }
        if (rc == 0 && (len != ref_len || memcmp(out, ref, len) != 0)) {
                fprintf(stderr, "different bytes (%s)\n", fields ? "fields" : "JSON");
                abort();
        }
        free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data + 2, *end = (const char *)data + size;
        char event_id[128], stream_id[128], anchor_id[128], errstr[256];
        struct envelope env;
        json_t *payload = NULL, *fields_json = NULL;
        struct payload *fields;
        const char *name;
        void *ref = NULL;
        size_t ref_len = 0;
        int ref_rc;

        if (size < 2)
                return 0;
        name = records[data[0] % N_RECORDS];
        fuzz_take_line(&p, end, event_id, sizeof(event_id));
        fuzz_take_line(&p, end, stream_id, sizeof(stream_id));
        fuzz_take_line(&p, end, anchor_id, sizeof(anchor_id));
        if (!(data[1] & 0x10))
                payload = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        env = (struct envelope){
                .event_id = event_id,
                .vendor = "fuzz",
                .event_type = "fuzz.event",
                .stream_id = data[1] & 0x01 ? NULL : stream_id,
                .anchor_id = data[1] & 0x02 ? NULL : anchor_id,
                .room_id = data[1] & 0x04 ? NULL : "room",
                .event_time_ms = (int64_t)size * 1000003 - 5000000,
                .receive_time_ms = (int64_t)data[1] << 40,
                .trace_id = data[1] & 0x08 ? "" : "0123456789abcdef",
                .raw = data,
                .raw_len = size,
        };
        ref_rc = codec_encode(codec, &env, name, payload, &ref, &ref_len, errstr, sizeof(errstr));
        check_one_answer(&env, name, NULL, payload, ref_rc, ref, ref_len);
        free(ref);
        ref = NULL;
        /* The fields carry no nulls: avro-c's reference is written from the fields as JSON. */
        if ((fields = payload_of(payload)) && (fields_json = payload_to_json(fields))) {
                ref_rc = codec_encode(codec, &env, name, fields_json, &ref, &ref_len, errstr,
                                      sizeof(errstr));
                check_one_answer(&env, name, fields, NULL, ref_rc, ref, ref_len);
        }
        json_decref(fields_json);
        payload_destroy(fields);
        json_decref(payload);
        free(ref);
        return 0;
}
