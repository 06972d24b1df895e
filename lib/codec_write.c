/*
 * codec_write.c: the event written as Avro binary by liveflow itself (codec_encode_direct()):
 * zigzag varints, lengths and bytes into the codec's reused buffer, straight from the envelope
 * and a payload's fields, without an avro_value_t. The bytes are codec_encode()'s, which
 * stays the reference (tests and tests/fuzz/fuzz_codec_write.c hold the two to one answer).
 *
 * What to write where comes from a plan made once from the parsed schema at codec_new(): the
 * envelope's fields in schema order and, per payload record, its fields and their unions. A
 * schema the plan cannot describe (a nested record, a union of more than a few branches)
 * leaves the plan out, and codec_encode_direct() then goes through codec_encode().
 */
#include <avro.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "codec_int.h"
#include "payload.h"

#define PLAN_MAX_FIELDS 64 /* per payload record */
#define SCRATCH_MIN     4096
/* A buffer grown past this for one large event is freed after it: loops keep small ones. */
#define SCRATCH_KEEP (256 * 1024)

/* ------------------------------------------------------------ the plan (codec_new) */

static bool is_primitive(avro_type_t t)
{
        switch (t) {
        case AVRO_NULL:
        case AVRO_BOOLEAN:
        case AVRO_INT32:
        case AVRO_INT64:
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
        case AVRO_STRING:
        case AVRO_BYTES:
                return true;
        default:
                return false;
        }
}

/* 0 with pf describing s, or -1 when s is not a primitive or a small union of primitives. */
static int plan_type(avro_schema_t s, const char *name, struct plan_field *pf)
{
        pf->name = name;
        pf->type = avro_typeof(s);
        pf->n_branches = 0;
        if (pf->type != AVRO_UNION)
                return is_primitive(pf->type) ? 0 : -1;
        if (avro_schema_union_size(s) > PLAN_MAX_BRANCHES)
                return -1;
        for (size_t i = 0; i < avro_schema_union_size(s); i++) {
                avro_type_t t = avro_typeof(avro_schema_union_branch(s, (int)i));

                if (!is_primitive(t))
                        return -1;
                pf->branches[pf->n_branches++] = t;
        }
        return 0;
}

static int plan_record(avro_schema_t s, int branch, struct plan_record *pr)
{
        pr->name = avro_schema_name(s);
        pr->branch = branch;
        pr->n_fields = avro_schema_record_size(s);
        if (pr->n_fields > PLAN_MAX_FIELDS)
                return -1;
        if (!(pr->fields = calloc(pr->n_fields ? pr->n_fields : 1, sizeof(*pr->fields))))
                return -1;
        for (size_t i = 0; i < pr->n_fields; i++)
                if (plan_type(avro_schema_record_field_get_by_index(s, (int)i),
                              avro_schema_record_field_name(s, (int)i), &pr->fields[i]) == -1)
                        return -1;
        return 0;
}

/* The payload union: null, and records of primitive fields. */
static int plan_payload(struct codec_plan *plan, avro_schema_t u)
{
        plan->payload_null_branch = -1;
        if (avro_typeof(u) != AVRO_UNION ||
            !(plan->records = calloc(avro_schema_union_size(u), sizeof(*plan->records))))
                return -1;
        for (size_t i = 0; i < avro_schema_union_size(u); i++) {
                avro_schema_t b = avro_schema_union_branch(u, (int)i);

                if (avro_typeof(b) == AVRO_NULL && plan->payload_null_branch < 0)
                        plan->payload_null_branch = (int)i;
                else if (!is_avro_record(b) ||
                         plan_record(b, (int)i, &plan->records[plan->n_records++]) == -1)
                        return -1;
        }
        return 0;
}

/* The envelope's type checks of set_envelope(), as the plan needs them. */
static bool envelope_type_fits(enum envelope_field f, const struct plan_field *pf)
{
        if (f == FIELD_RAW)
                return pf->type == AVRO_BYTES;
        if (f == FIELD_EVENT_TIME || f == FIELD_RECEIVE_TIME)
                return pf->type == AVRO_INT64;
        for (size_t i = 0; i < pf->n_branches; i++)
                if (pf->branches[i] != AVRO_NULL && pf->branches[i] != AVRO_STRING)
                        return false;
        return pf->type == AVRO_STRING || pf->type == AVRO_UNION;
}

static int plan_envelope(struct codec_plan *plan, avro_schema_t record)
{
        if (avro_schema_record_size(record) != FIELD_COUNT)
                return -1;
        for (size_t i = 0; i < FIELD_COUNT; i++) {
                const char *name = avro_schema_record_field_name(record, (int)i);
                avro_schema_t s = avro_schema_record_field_get_by_index(record, (int)i);
                int f = 0;

                while (f < FIELD_COUNT && strcmp(codec_field_names[f], name) != 0)
                        f++;
                if (f == FIELD_COUNT)
                        return -1;
                plan->order[i] = (enum envelope_field)f;
                if (f == FIELD_PAYLOAD) {
                        if (plan_payload(plan, s) == -1)
                                return -1;
                } else if (plan_type(s, name, &plan->envelope[f]) == -1 ||
                           !envelope_type_fits((enum envelope_field)f, &plan->envelope[f])) {
                        return -1;
                }
        }
        plan->n_envelope = FIELD_COUNT;
        return 0;
}

void codec_plan_destroy(struct codec_plan *plan)
{
        if (!plan)
                return;
        for (size_t i = 0; i < plan->n_records; i++)
                free(plan->records[i].fields);
        free(plan->records);
        free(plan->buf);
        free(plan);
}

int codec_plan_new(struct codec *c, char *errstr, size_t errstr_size)
{
        struct codec_plan *plan = calloc(1, sizeof(*plan));

        c->plan = NULL;
        if (!plan) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (plan_envelope(plan, c->schema) == -1) {
                codec_plan_destroy(plan); /* a shape the plan does not describe: codec_encode() */
                return 0;
        }
        c->plan = plan;
        return 0;
}

/* ------------------------------------------------------------ the output buffer */

/* grow()'s caller: the buffer's room is checked inline, growing is the rare case. */
static bool grow(struct codec_plan *w, size_t n) __attribute__((noinline));

/* Room for n more bytes; on failure the buffer is marked and later writes are skipped. */
static inline bool reserve(struct codec_plan *w, size_t n)
{
        return n <= w->cap - w->len || grow(w, n);
}

static bool grow(struct codec_plan *w, size_t n)
{
        size_t cap = w->cap ? w->cap : SCRATCH_MIN;
        unsigned char *grown;

        if (w->is_out_of_memory)
                return false;
        while (cap - w->len < n) {
                if (cap > SIZE_MAX / 2) {
                        w->is_out_of_memory = true;
                        return false;
                }
                cap *= 2;
        }
        if (!(grown = realloc(w->buf, cap))) {
                w->is_out_of_memory = true;
                return false;
        }
        w->buf = grown;
        w->cap = cap;
        return true;
}

static void put_bytes(struct codec_plan *w, const void *p, size_t n)
{
        if (n && reserve(w, n)) {
                memcpy(w->buf + w->len, p, n);
                w->len += n;
        }
}

/* Avro's int and long: zigzag, then 7 bits a byte, low bits first. */
static void put_long(struct codec_plan *w, int64_t n)
{
        uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);

        if (!reserve(w, 10))
                return;
        while (z >= 0x80) {
                w->buf[w->len++] = (unsigned char)(z | 0x80);
                z >>= 7;
        }
        w->buf[w->len++] = (unsigned char)z;
}

static void put_counted(struct codec_plan *w, const void *p, size_t n)
{
        put_long(w, (int64_t)n);
        put_bytes(w, p, n);
}

/* float and double: IEEE 754, little-endian, as avro-c writes them. */
static void put_real(struct codec_plan *w, avro_type_t type, double d)
{
        unsigned char le[8];
        uint64_t bits;
        float f = (float)d;
        uint32_t fbits;
        size_t n = type == AVRO_FLOAT ? 4 : 8;

        memcpy(&bits, &d, 8);
        memcpy(&fbits, &f, 4);
        for (size_t i = 0; i < n; i++)
                le[i] = (unsigned char)((n == 4 ? fbits : bits) >> (8 * i));
        put_bytes(w, le, n);
}

/* ------------------------------------------------------------ a value from its source */

/* One field's value as given: by a struct payload, a JSON object or the envelope. */
enum src_kind { SRC_ABSENT, SRC_NULL, SRC_TEXT, SRC_INT, SRC_BOOL, SRC_REAL, SRC_OTHER };

struct src {
        enum src_kind kind;
        const char *s; /* SRC_TEXT: len bytes */
        size_t len;
        int64_t n;    /* SRC_INT, SRC_BOOL */
        double d;     /* SRC_REAL, and SRC_INT as a number */
        bool is_json; /* text from jansson: UTF-8 already, so only NUL is checked */
};

static struct src src_of_json(const json_t *j)
{
        struct src v = {.kind = SRC_OTHER, .is_json = true};

        if (!j)
                v.kind = SRC_ABSENT;
        else if (json_is_null(j))
                v.kind = SRC_NULL;
        else if (json_is_string(j))
                v = (struct src){SRC_TEXT, json_string_value(j), json_string_length(j), 0, 0, true};
        else if (json_is_integer(j))
                v = (struct src){
                        SRC_INT, NULL, 0, json_integer_value(j), (double)json_integer_value(j),
                        true};
        else if (json_is_real(j))
                v = (struct src){SRC_REAL, NULL, 0, 0, json_real_value(j), true};
        else if (json_is_boolean(j))
                v = (struct src){SRC_BOOL, NULL, 0, json_is_true(j), 0, true};
        return v;
}

static struct src src_of_field(const struct payload *p, const struct payload_field *f)
{
        if (!f)
                return (struct src){.kind = SRC_ABSENT};
        if (f->kind == PAYLOAD_TEXT)
                return (struct src){.kind = SRC_TEXT, .s = payload_field_text(p, f), .len = f->len};
        if (f->kind == PAYLOAD_INT)
                return (struct src){.kind = SRC_INT, .n = f->n, .d = (double)f->n};
        return (struct src){.kind = SRC_BOOL, .n = f->n};
}

/* The fields of a payload record: from a struct payload or a JSON object (either may be NULL). */
struct record_src {
        const struct payload *fields;
        const json_t *json;
};

/* ------------------------------------------------------------ writing a value */

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
        return -1;
}

/* Where a payload value goes, for messages: "payload.<record>.<field>". */
struct at {
        const char *record;
        const char *field;
};

#define AT_FMT      "payload.%s.%s: "
#define AT_ARGS(at) (at)->record, (at)->field

static bool fits(const struct src *v, avro_type_t type)
{
        switch (type) {
        case AVRO_BOOLEAN:
                return v->kind == SRC_BOOL;
        case AVRO_INT32:
        case AVRO_INT64:
                return v->kind == SRC_INT;
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return v->kind == SRC_INT || v->kind == SRC_REAL;
        case AVRO_STRING:
        case AVRO_BYTES:
                return v->kind == SRC_TEXT;
        default:
                return false;
        }
}

static int put_text(struct codec_plan *w, const struct src *v, avro_type_t type,
                    const struct at *at, char *errstr, size_t errstr_size)
{
        /* jansson's text is UTF-8 but may hold \u0000; a payload's text is checked whole. */
        if ((v->is_json || type == AVRO_BYTES) && memchr(v->s, '\0', v->len))
                return fail(errstr, errstr_size, AT_FMT "string contains a NUL character",
                            AT_ARGS(at));
        if (!v->is_json && type == AVRO_STRING &&
            !codec_is_clean_utf8((const unsigned char *)v->s, v->len))
                return fail(errstr, errstr_size, AT_FMT "not valid UTF-8", AT_ARGS(at));
        put_counted(w, v->s, v->len);
        return 0;
}

/* A primitive of type from v, which is present and not null. */
static int put_primitive(struct codec_plan *w, avro_type_t type, const struct src *v,
                         const struct at *at, char *errstr, size_t errstr_size)
{
        if (!fits(v, type))
                return fail(errstr, errstr_size, AT_FMT "expected %s", AT_ARGS(at),
                            codec_json_spelling(type));
        switch (type) {
        case AVRO_INT32:
                if (v->n < INT32_MIN || v->n > INT32_MAX)
                        return fail(errstr, errstr_size,
                                    AT_FMT "%" PRId64 " is out of range for int", AT_ARGS(at),
                                    v->n);
                put_long(w, v->n);
                return 0;
        case AVRO_INT64:
                put_long(w, v->n);
                return 0;
        case AVRO_BOOLEAN:
                put_bytes(w, v->n ? "\1" : "\0", 1);
                return 0;
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                put_real(w, type, v->d);
                return 0;
        default:
                return put_text(w, v, type, at, errstr, errstr_size);
        }
}

/* Null or absent picks the null branch; anything else the first branch it fits. */
static int put_union(struct codec_plan *w, const struct plan_field *pf, const struct src *v,
                     const struct at *at, char *errstr, size_t errstr_size)
{
        bool is_null = v->kind == SRC_ABSENT || v->kind == SRC_NULL;
        char want[64] = "";
        size_t i;

        for (i = 0; i < pf->n_branches; i++)
                if (is_null ? pf->branches[i] == AVRO_NULL : fits(v, pf->branches[i]))
                        break;
        if (i < pf->n_branches) {
                put_long(w, (int64_t)i);
                return pf->branches[i] == AVRO_NULL
                               ? 0
                               : put_primitive(w, pf->branches[i], v, at, errstr, errstr_size);
        }
        if (v->kind == SRC_ABSENT)
                return fail(errstr, errstr_size, AT_FMT "missing required field", AT_ARGS(at));
        for (i = 0; i < pf->n_branches; i++)
                snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i ? " or " : "",
                         codec_json_spelling(pf->branches[i]));
        return fail(errstr, errstr_size, AT_FMT "expected %s", AT_ARGS(at), want);
}

static int put_value(struct codec_plan *w, const struct plan_field *pf, const struct src *v,
                     const struct at *at, char *errstr, size_t errstr_size)
{
        bool is_null = v->kind == SRC_ABSENT || v->kind == SRC_NULL;

        if (pf->type == AVRO_UNION)
                return put_union(w, pf, v, at, errstr, errstr_size);
        if (pf->type == AVRO_NULL)
                return is_null ? 0 : fail(errstr, errstr_size, AT_FMT "expected null", AT_ARGS(at));
        if (is_null)
                return fail(errstr, errstr_size, AT_FMT "missing required field", AT_ARGS(at));
        return put_primitive(w, pf->type, v, at, errstr, errstr_size);
}

/* ------------------------------------------------------------ the payload */

/* The index of the record's field called name, or -1. Names mostly come in the record's order,
   so the place after the last one found (hint) is tried first. */
static int record_field(const struct plan_record *pr, const char *name, size_t hint)
{
        if (hint < pr->n_fields && strcmp(pr->fields[hint].name, name) == 0)
                return (int)hint;
        for (size_t i = 0; i < pr->n_fields; i++)
                if (strcmp(pr->fields[i].name, name) == 0)
                        return (int)i;
        return -1;
}

/*
 * Every name given must be a field of the record (codec_encode.c's check_known_keys()); a
 * struct payload's fields are put in slot by the record's order on the way, so each is
 * found once. jansson's iterator takes a non-const object, though it does not modify it.
 */
static int check_known_names(const struct plan_record *pr, const struct record_src *r,
                             const struct payload_field *slot[PLAN_MAX_FIELDS], char *errstr,
                             size_t errstr_size)
{
        const char *key;
        json_t *value;
        int index = -1;

        if (r->json) {
                json_object_foreach((json_t *)r->json, key, value)
                {
                        if ((index = record_field(pr, key, (size_t)(index + 1))) < 0)
                                goto unknown;
                }
                return 0;
        }
        for (size_t i = 0; r->fields && i < r->fields->n; i++) {
                if ((index = record_field(pr, key = r->fields->f[i].name, (size_t)(index + 1))) < 0)
                        goto unknown;
                slot[index] = &r->fields->f[i];
        }
        return 0;

unknown:
        return fail(errstr, errstr_size, "payload.%s.%s: unknown field", pr->name, key);
}

static int put_record(struct codec_plan *w, const struct plan_record *pr,
                      const struct record_src *r, char *errstr, size_t errstr_size)
{
        const struct payload_field *slot[PLAN_MAX_FIELDS] = {NULL};

        if (check_known_names(pr, r, slot, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < pr->n_fields; i++) {
                const struct plan_field *pf = &pr->fields[i];
                const struct at at = {pr->name, pf->name};
                struct src v = r->json ? src_of_json(json_object_get(r->json, pf->name))
                                       : src_of_field(r->fields, slot[i]);

                if (put_value(w, pf, &v, &at, errstr, errstr_size) == -1)
                        return -1;
        }
        return 0;
}

/* The payload record called name, or NULL. A codec mostly writes one kind of payload: the one
   written last is looked at first. */
static const struct plan_record *find_record(struct codec_plan *w, const char *name)
{
        if (w->last_record < w->n_records && strcmp(w->records[w->last_record].name, name) == 0)
                return &w->records[w->last_record];
        for (size_t i = 0; i < w->n_records; i++)
                if (strcmp(w->records[i].name, name) == 0) {
                        w->last_record = i;
                        return &w->records[i];
                }
        return NULL;
}

static int put_payload(struct codec_plan *w, const char *payload_name, const struct record_src *r,
                       char *errstr, size_t errstr_size)
{
        const struct plan_record *pr;

        if (!payload_name) {
                if (r->fields || (r->json && !json_is_null(r->json))) {
                        snprintf(errstr, errstr_size, "payload: given without a payload name");
                        return -1;
                }
                if (w->payload_null_branch < 0)
                        return fail(errstr, errstr_size, "payload: no null branch");
                put_long(w, w->payload_null_branch);
                return 0;
        }
        if (!(pr = find_record(w, payload_name))) {
                snprintf(errstr, errstr_size, "payload: unknown payload type \"%s\"", payload_name);
                return -1;
        }
        if (r->json && !json_is_object(r->json))
                return fail(errstr, errstr_size, "payload.%s: expected object", payload_name);
        put_long(w, pr->branch);
        return put_record(w, pr, r, errstr, errstr_size);
}

/* ------------------------------------------------------------ the envelope */

static const char *envelope_string(const struct envelope *env, enum envelope_field f)
{
        switch (f) {
        case FIELD_EVENT_ID:
                return env->event_id;
        case FIELD_VENDOR:
                return env->vendor;
        case FIELD_EVENT_TYPE:
                return env->event_type;
        case FIELD_STREAM_ID:
                return env->stream_id;
        case FIELD_ANCHOR_ID:
                return env->anchor_id;
        case FIELD_ROOM_ID:
                return env->room_id;
        default:
                return env->trace_id;
        }
}

/* set_envelope()'s checks, in its order: the required texts, UTF-8, then the raw body. */
static int check_envelope(const struct envelope *env, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < CODEC_STRING_FIELDS; i++) {
                enum envelope_field f = codec_string_fields[i];
                const char *s = envelope_string(env, f);
                bool is_required =
                        f != FIELD_STREAM_ID && f != FIELD_ANCHOR_ID && f != FIELD_ROOM_ID;

                if (is_required && (!s || !*s))
                        return fail(errstr, errstr_size, "%s: required", codec_field_names[f]);
                if (s && !codec_is_clean_utf8((const unsigned char *)s, strlen(s)))
                        return fail(errstr, errstr_size, "%s: not valid UTF-8",
                                    codec_field_names[f]);
        }
        if (!env->raw && env->raw_len) {
                snprintf(errstr, errstr_size, "raw: NULL with raw_len %zu", env->raw_len);
                return -1;
        }
        return 0;
}

static void put_envelope_field(struct codec_plan *w, const struct envelope *env,
                               enum envelope_field f)
{
        const struct plan_field *pf = &w->envelope[f];
        const char *s;

        switch (f) {
        case FIELD_EVENT_TIME:
                put_long(w, env->event_time_ms);
                return;
        case FIELD_RECEIVE_TIME:
                put_long(w, env->receive_time_ms);
                return;
        case FIELD_RAW:
                put_counted(w, env->raw, env->raw_len);
                return;
        default:
                break;
        }
        /* Checked by check_envelope(): a required text is there, every text is clean. */
        s = envelope_string(env, f);
        if (pf->type == AVRO_UNION) {
                size_t i = 0;

                while (i < pf->n_branches && pf->branches[i] != (s ? AVRO_STRING : AVRO_NULL))
                        i++;
                put_long(w, (int64_t)i);
        }
        if (s)
                put_counted(w, s, strlen(s));
}

/*
 * A text's type must take what is given: a NULL needs a union with a null branch, a text a
 * string (codec_encode() refuses the same, through avro-c).
 */
static int check_texts_fit(const struct codec_plan *w, const struct envelope *env, char *errstr,
                           size_t errstr_size)
{
        for (size_t i = 0; i < CODEC_STRING_FIELDS; i++) {
                enum envelope_field f = codec_string_fields[i];
                const struct plan_field *pf = &w->envelope[f];
                avro_type_t want = envelope_string(env, f) ? AVRO_STRING : AVRO_NULL;
                size_t b = 0;

                if (pf->type != AVRO_UNION) {
                        if (want == AVRO_NULL)
                                return fail(errstr, errstr_size, "%s: required",
                                            codec_field_names[f]);
                        continue;
                }
                while (b < pf->n_branches && pf->branches[b] != want)
                        b++;
                if (b == pf->n_branches)
                        return fail(errstr, errstr_size, "%s: no %s branch", codec_field_names[f],
                                    want == AVRO_NULL ? "null" : "string");
        }
        return 0;
}

/* ------------------------------------------------------------ encode */

/* After an event: a buffer one large body grew is given back (the next grows it again). */
static void keep_small(struct codec_plan *w)
{
        if (w->cap <= SCRATCH_KEEP)
                return;
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
}

static int write_event(struct codec *c, const struct envelope *env, const char *payload_name,
                       const struct record_src *r, char *errstr, size_t errstr_size)
{
        struct codec_plan *w = c->plan;
        unsigned char header[AVRO_SOF_HEADER_SIZE];

        if (check_envelope(env, errstr, errstr_size) == -1 ||
            check_texts_fit(w, env, errstr, errstr_size) == -1)
                return -1;
        w->len = 0;
        w->is_out_of_memory = false;
        avro_sof_write_header(header, c->fingerprint);
        put_bytes(w, header, sizeof(header));
        for (size_t i = 0; i < w->n_envelope; i++) {
                if (w->order[i] != FIELD_PAYLOAD)
                        put_envelope_field(w, env, w->order[i]);
                else if (put_payload(w, payload_name, r, errstr, errstr_size) == -1)
                        return -1;
        }
        if (w->is_out_of_memory) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

/* The old path, for a schema the plan does not describe: the payload as JSON. */
static int encode_through_avro_c(struct codec *c, const struct envelope *env,
                                 const char *payload_name, const struct record_src *r, void **out,
                                 size_t *out_len, char *errstr, size_t errstr_size)
{
        json_t *json = NULL;
        int rc;

        if (r->fields && !(json = payload_to_json(r->fields))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        rc = codec_encode(c, env, payload_name, r->json ? r->json : json, out, out_len, errstr,
                          errstr_size);
        json_decref(json);
        return rc;
}

int codec_encode_direct(struct codec *c, const struct envelope *env, const char *payload_name,
                        const struct payload *fields, const json_t *payload, void **out,
                        size_t *out_len, char *errstr, size_t errstr_size)
{
        const struct record_src r = {fields, payload};
        void *buf = NULL;

        if (fields && payload) {
                snprintf(errstr, errstr_size, "payload: given twice (fields and JSON)");
                return -1;
        }
        if (!c->plan)
                return encode_through_avro_c(c, env, payload_name, &r, out, out_len, errstr,
                                             errstr_size);
        if (write_event(c, env, payload_name, &r, errstr, errstr_size) == 0 &&
            !(buf = malloc(c->plan->len)))
                snprintf(errstr, errstr_size, "out of memory (%zu bytes)", c->plan->len);
        if (buf) {
                memcpy(buf, c->plan->buf, c->plan->len);
                *out = buf;
                *out_len = c->plan->len;
        }
        keep_small(c->plan);
        return buf ? 0 : -1;
}
