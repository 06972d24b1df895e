/*
 * codec.c: encodes and decodes the event envelope (schemas/event.avsc) with avro-c, framed as
 * Avro single-object encoding; it decodes records of the released schemas in schemas/history/
 * too, resolved to the current one. Before avro-c reads a body, the body is walked against the
 * schema here, because the input comes off the network and avro-c 1.11.1 trusts declared
 * lengths: it mallocs a string or bytes value at the declared size before it looks at how
 * much input is left (2^40 from a 6-byte varint aborts an ASan build; 1 GiB is simply
 * allocated), and it has no sign check (a negative length only fails because malloc(0)
 * happens to return NULL in its allocator).
 */
#include "codec.h"

#include <avro.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "schemas.h"

#define EVENT_SCHEMA "event"
/* Embedded names of the released schemas an old record may carry the fingerprint of. */
#define HISTORY_PREFIX "history/"
/* The event schema nests three levels (Event, payload union, payload record, nullable field). */
#define CHECK_MAX_DEPTH 16
#define PATH_MAX_LEN    160

enum envelope_field {
        FIELD_EVENT_ID,
        FIELD_VENDOR,
        FIELD_EVENT_TYPE,
        FIELD_STREAM_ID,
        FIELD_ANCHOR_ID,
        FIELD_ROOM_ID,
        FIELD_EVENT_TIME,
        FIELD_RECEIVE_TIME,
        FIELD_TRACE_ID,
        FIELD_RAW,
        FIELD_PAYLOAD,
        FIELD_COUNT
};

static const char *const envelope_field_names[FIELD_COUNT] = {
        "event_id",   "vendor",       "event_type", "stream_id", "anchor_id", "room_id",
        "event_time", "receive_time", "trace_id",   "raw",       "payload",
};

/* The envelope fields carried as strings (the last three nullable). */
static const enum envelope_field string_fields[] = {
        FIELD_EVENT_ID,  FIELD_VENDOR,    FIELD_EVENT_TYPE, FIELD_TRACE_ID,
        FIELD_STREAM_ID, FIELD_ANCHOR_ID, FIELD_ROOM_ID,
};

static int is_required_field(enum envelope_field f)
{
        return f != FIELD_STREAM_ID && f != FIELD_ANCHOR_ID && f != FIELD_ROOM_ID;
}

/*
 * A schema records may have been written with: the current one, or a released one kept under
 * schemas/history/. A historic body is read through avro-c's resolved writer, an instance of
 * the historic schema that sets what it reads into the codec's value of the current schema
 * (Avro schema resolution: union branches matched by name, fields by name).
 */
struct writer_schema {
        char *name; /* "event" or "history/event-v1", for messages */
        uint64_t fingerprint;
        avro_schema_t schema;
        avro_value_iface_t *resolver; /* NULL for the current schema */
        avro_value_t resolved;        /* wraps the codec's value; unused for the current one */
};

struct codec {
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t value; /* reused by every encode and decode */
        avro_reader_t reader;
        avro_writer_t writer;
        size_t field_index[FIELD_COUNT];
        uint64_t fingerprint;
        struct writer_schema *writers; /* [0] the current schema, then schemas/history/ */
        size_t n_writers;
};

/* Where a body walk stands: the next unread byte and the end of the body. */
struct cursor {
        const unsigned char *p;
        const unsigned char *start;
        const unsigned char *end;
};

/* ------------------------------------------------------------ helpers */

static size_t utf8_sequence_length(unsigned char lead)
{
        if (lead < 0x80)
                return 1;
        if ((lead & 0xe0) == 0xc0)
                return 2;
        if ((lead & 0xf0) == 0xe0)
                return 3;
        if ((lead & 0xf8) == 0xf0)
                return 4;
        return 0; /* a continuation byte or 0xf8..0xff cannot start a character */
}

/*
 * RFC 3629 UTF-8 without NUL: what an Avro string must be, and what our char * can carry.
 * Hand-written because neither jansson nor avro-c exports its UTF-8 check.
 */
static int is_clean_utf8(const unsigned char *s, size_t n)
{
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000}; /* no overlong forms */
        size_t i = 0;

        while (i < n) {
                size_t len = utf8_sequence_length(s[i]);
                uint32_t cp = s[i] & (0x7f >> (len > 1 ? len : 0));

                if (s[i] == 0 || len == 0 || n - i < len)
                        return 0;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (len > 1 &&
                    (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
                        return 0;
                i += len;
        }
        return 1;
}

static const char *embedded_schema_json(const char *name)
{
        for (const struct embedded_schema *s = embedded_schemas; s->name; s++)
                if (strcmp(s->name, name) == 0)
                        return s->json;
        return NULL;
}

/* The index of the first branch of a union with the given type, or -1. */
static int union_branch_of_type(avro_schema_t u, avro_type_t type)
{
        for (size_t i = 0; i < avro_schema_union_size(u); i++)
                if (avro_typeof(avro_schema_union_branch(u, (int)i)) == type)
                        return (int)i;
        return -1;
}

/* The index of the payload record called name (short name), or -1. */
static int union_branch_named(avro_schema_t u, const char *name)
{
        for (size_t i = 0; i < avro_schema_union_size(u); i++) {
                avro_schema_t b = avro_schema_union_branch(u, (int)i);

                if (is_avro_record(b) && strcmp(avro_schema_name(b), name) == 0)
                        return (int)i;
        }
        return -1;
}

/* ------------------------------------------------------------ schema checks (codec_new) */

/*
 * The body walk and the JSON mapping know these types only; a schema change that brings
 * another (array, map, enum, fixed) fails here at startup instead of at the first event.
 */
static int check_schema_supported(avro_schema_t s, const char *where, char *errstr,
                                  size_t errstr_size)
{
        switch (avro_typeof(s)) {
        case AVRO_NULL:
        case AVRO_BOOLEAN:
        case AVRO_INT32:
        case AVRO_INT64:
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
        case AVRO_STRING:
        case AVRO_BYTES:
        case AVRO_LINK:
                return 0;
        case AVRO_UNION:
                for (size_t i = 0; i < avro_schema_union_size(s); i++)
                        if (check_schema_supported(avro_schema_union_branch(s, (int)i), where,
                                                   errstr, errstr_size) == -1)
                                return -1;
                return 0;
        case AVRO_RECORD:
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        if (check_schema_supported(avro_schema_record_field_get_by_index(s, (int)i),
                                                   avro_schema_record_field_name(s, (int)i), errstr,
                                                   errstr_size) == -1)
                                return -1;
                return 0;
        default:
                snprintf(errstr, errstr_size,
                         "field %s has type %s, which the codec does not "
                         "support (teach check_body() and the JSON mapping first)",
                         where, avro_schema_type_name(s));
                return -1;
        }
}

static int find_envelope_fields(struct codec *c, char *errstr, size_t errstr_size)
{
        for (int i = 0; i < FIELD_COUNT; i++) {
                int index = avro_schema_record_field_get_index(c->schema, envelope_field_names[i]);

                if (index < 0) {
                        snprintf(errstr, errstr_size, "schemas/event.avsc: no field %s",
                                 envelope_field_names[i]);
                        return -1;
                }
                c->field_index[i] = (size_t)index;
        }
        return 0;
}

/* ------------------------------------------------------------ writer schemas (codec_new) */

static void writer_schema_fini(struct writer_schema *w)
{
        if (w->resolved.iface) {
                avro_resolved_writer_clear_dest(&w->resolved);
                avro_value_decref(&w->resolved);
        }
        if (w->resolver)
                avro_value_iface_decref(w->resolver);
        if (w->schema)
                avro_schema_decref(w->schema);
        free(w->name);
        memset(w, 0, sizeof(*w));
}

static struct writer_schema *writer_schema_by_fingerprint(struct codec *c, uint64_t fp)
{
        for (size_t i = 0; i < c->n_writers; i++)
                if (c->writers[i].fingerprint == fp)
                        return &c->writers[i];
        return NULL;
}

/*
 * One released schema: parsed, of types the body walk knows, and resolvable to the current
 * schema. A historic schema the current one cannot read is a build mistake, so codec_new()
 * fails on it rather than the first old record.
 */
static int add_historic_schema(struct codec *c, const struct embedded_schema *e, char *errstr,
                               size_t errstr_size)
{
        struct writer_schema *w = &c->writers[c->n_writers];
        char why[256];

        if (!(w->name = strdup(e->name))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (avro_sof_fingerprint(e->json, &w->fingerprint, why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "schemas/%s.avsc: %s", e->name, why);
                goto fail;
        }
        if (writer_schema_by_fingerprint(c, w->fingerprint)) {
                writer_schema_fini(w); /* the same schema twice (e.g. only docs changed) */
                return 0;
        }
        if (avro_schema_from_json_length(e->json, strlen(e->json), &w->schema)) {
                w->schema = NULL;
                snprintf(errstr, errstr_size, "schemas/%s.avsc: %s", e->name, avro_strerror());
                goto fail;
        }
        if (check_schema_supported(w->schema, "Event", why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "schemas/%s.avsc: %s", e->name, why);
                goto fail;
        }
        if (!(w->resolver = avro_resolved_writer_new(w->schema, c->schema))) {
                snprintf(errstr, errstr_size,
                         "schemas/%s.avsc cannot be read as schemas/event.avsc: %s", e->name,
                         avro_strerror());
                goto fail;
        }
        if (avro_resolved_writer_new_value(w->resolver, &w->resolved)) {
                w->resolved.iface = NULL;
                snprintf(errstr, errstr_size, "schemas/%s.avsc: avro: %s", e->name,
                         avro_strerror());
                goto fail;
        }
        avro_resolved_writer_set_dest(&w->resolved, &c->value);
        c->n_writers++;
        return 0;

fail:
        writer_schema_fini(w);
        return -1;
}

/* The current schema first, then every schemas/history/ entry. */
static int add_writer_schemas(struct codec *c, char *errstr, size_t errstr_size)
{
        size_t n = 1;

        for (const struct embedded_schema *e = embedded_schemas; e->name; e++)
                n++;
        if (!(c->writers = calloc(n, sizeof(*c->writers))) ||
            !(c->writers[0].name = strdup(EVENT_SCHEMA))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        c->writers[0].fingerprint = c->fingerprint;
        c->writers[0].schema = avro_schema_incref(c->schema);
        c->n_writers = 1;
        for (const struct embedded_schema *e = embedded_schemas; e->name; e++)
                if (strncmp(e->name, HISTORY_PREFIX, strlen(HISTORY_PREFIX)) == 0 &&
                    add_historic_schema(c, e, errstr, errstr_size) == -1)
                        return -1;
        return 0;
}

/* ------------------------------------------------------------ lifetime */

struct codec *codec_new(char *errstr, size_t errstr_size)
{
        const char *json = embedded_schema_json(EVENT_SCHEMA);
        struct codec *c = calloc(1, sizeof(*c));
        char why[256];

        if (!c) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (!json) {
                snprintf(errstr, errstr_size, "no embedded schema \"%s\"", EVENT_SCHEMA);
                goto fail;
        }
        if (avro_sof_fingerprint(json, &c->fingerprint, why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "schemas/event.avsc: %s", why);
                goto fail;
        }
        if (avro_schema_from_json_length(json, strlen(json), &c->schema)) {
                c->schema = NULL;
                snprintf(errstr, errstr_size, "schemas/event.avsc: %s", avro_strerror());
                goto fail;
        }
        if (check_schema_supported(c->schema, "Event", why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "schemas/event.avsc: %s", why);
                goto fail;
        }
        if (find_envelope_fields(c, errstr, errstr_size) == -1)
                goto fail;
        if (!(c->iface = avro_generic_class_from_schema(c->schema)) ||
            avro_generic_value_new(c->iface, &c->value) ||
            !(c->reader = avro_reader_memory("", 0)) || !(c->writer = avro_writer_memory("", 0))) {
                snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
                goto fail;
        }
        if (add_writer_schemas(c, errstr, errstr_size) == -1)
                goto fail;
        return c;

fail:
        codec_destroy(c);
        return NULL;
}

void codec_destroy(struct codec *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n_writers; i++)
                writer_schema_fini(&c->writers[i]);
        free(c->writers);
        if (c->reader)
                avro_reader_free(c->reader);
        if (c->writer)
                avro_writer_free(c->writer);
        if (c->value.iface)
                avro_value_decref(&c->value);
        if (c->iface)
                avro_value_iface_decref(c->iface);
        if (c->schema)
                avro_schema_decref(c->schema);
        free(c);
}

uint64_t codec_fingerprint(const struct codec *c)
{
        return c->fingerprint;
}

/* ------------------------------------------------------------ encode: envelope */

static int avro_failed(const char *path, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s: avro: %s", path, avro_strerror());
        return -1;
}

/* 0 when an avro-c call returned 0; otherwise -1 with avro-c's reason. */
static int avro_checked(int rval, const char *path, char *errstr, size_t errstr_size)
{
        return rval ? avro_failed(path, errstr, errstr_size) : 0;
}

static int field_of(struct codec *c, enum envelope_field f, avro_value_t *out)
{
        return avro_value_get_by_index(&c->value, c->field_index[f], out, NULL);
}

/* Sets a string, or a union holding a string or null, from a C string that may be NULL. */
static int set_c_string(avro_value_t *v, const char *path, const char *s, char *errstr,
                        size_t errstr_size)
{
        avro_value_t branch;
        int index;

        if (avro_value_get_type(v) == AVRO_UNION) {
                index = union_branch_of_type(avro_value_get_schema(v), s ? AVRO_STRING : AVRO_NULL);
                if (index < 0 || avro_value_set_branch(v, index, &branch))
                        return avro_failed(path, errstr, errstr_size);
                return set_c_string(&branch, path, s, errstr, errstr_size);
        }
        if (avro_value_get_type(v) == AVRO_NULL)
                return avro_checked(avro_value_set_null(v), path, errstr, errstr_size);
        if (!s) {
                snprintf(errstr, errstr_size, "%s: required", path);
                return -1;
        }
        if (!is_clean_utf8((const unsigned char *)s, strlen(s))) {
                snprintf(errstr, errstr_size, "%s: not valid UTF-8", path);
                return -1;
        }
        return avro_checked(avro_value_set_string(v, s), path, errstr, errstr_size);
}

static int set_envelope_string(struct codec *c, enum envelope_field f, const char *s, char *errstr,
                               size_t errstr_size)
{
        avro_value_t v;

        if (field_of(c, f, &v))
                return avro_failed(envelope_field_names[f], errstr, errstr_size);
        return set_c_string(&v, envelope_field_names[f], s, errstr, errstr_size);
}

static int set_envelope_long(struct codec *c, enum envelope_field f, int64_t n, char *errstr,
                             size_t errstr_size)
{
        avro_value_t v;

        if (field_of(c, f, &v) || avro_value_set_long(&v, n))
                return avro_failed(envelope_field_names[f], errstr, errstr_size);
        return 0;
}

/*
 * The raw body can be large (up to the receiver's body limit), so it is lent to the value
 * without a copy: avro_wrapped_buffer_new() wraps memory it never frees, and the reset at
 * the end of codec_encode() drops the loan before the caller's buffer can go away.
 */
static int set_envelope_raw(struct codec *c, const void *raw, size_t raw_len, char *errstr,
                            size_t errstr_size)
{
        avro_wrapped_buffer_t loan;
        avro_value_t v;

        if (!raw && raw_len) {
                snprintf(errstr, errstr_size, "raw: NULL with raw_len %zu", raw_len);
                return -1;
        }
        if (field_of(c, FIELD_RAW, &v) || avro_wrapped_buffer_new(&loan, raw ? raw : "", raw_len) ||
            avro_value_give_bytes(&v, &loan))
                return avro_failed("raw", errstr, errstr_size);
        return 0;
}

static int set_envelope(struct codec *c, const struct envelope *env, char *errstr,
                        size_t errstr_size)
{
        const char *strings[FIELD_COUNT] = {
                [FIELD_EVENT_ID] = env->event_id,     [FIELD_VENDOR] = env->vendor,
                [FIELD_EVENT_TYPE] = env->event_type, [FIELD_STREAM_ID] = env->stream_id,
                [FIELD_ANCHOR_ID] = env->anchor_id,   [FIELD_ROOM_ID] = env->room_id,
                [FIELD_TRACE_ID] = env->trace_id,
        };

        for (size_t i = 0; i < sizeof(string_fields) / sizeof(string_fields[0]); i++) {
                enum envelope_field f = string_fields[i];

                /* The ids and names an event is routed and deduplicated by cannot be empty. */
                if (is_required_field(f) && (!strings[f] || !*strings[f])) {
                        snprintf(errstr, errstr_size, "%s: required", envelope_field_names[f]);
                        return -1;
                }
                if (set_envelope_string(c, f, strings[f], errstr, errstr_size) == -1)
                        return -1;
        }
        if (set_envelope_long(c, FIELD_EVENT_TIME, env->event_time_ms, errstr, errstr_size) == -1)
                return -1;
        if (set_envelope_long(c, FIELD_RECEIVE_TIME, env->receive_time_ms, errstr, errstr_size) ==
            -1)
                return -1;
        return set_envelope_raw(c, env->raw, env->raw_len, errstr, errstr_size);
}

/* ------------------------------------------------------------ encode: payload from JSON */

static int set_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                         size_t errstr_size);

/* How a JSON value of this Avro type is spelled, for error messages. */
static const char *json_spelling(avro_type_t type)
{
        switch (type) {
        case AVRO_NULL:
                return "null";
        case AVRO_BOOLEAN:
                return "true or false";
        case AVRO_INT32:
        case AVRO_INT64:
                return "integer";
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return "number";
        case AVRO_STRING:
        case AVRO_BYTES:
                return "string";
        case AVRO_RECORD:
                return "object";
        default:
                return "a supported type";
        }
}

static int json_fits(const json_t *j, avro_type_t type)
{
        switch (type) {
        case AVRO_BOOLEAN:
                return json_is_boolean(j);
        case AVRO_INT32:
        case AVRO_INT64:
                return json_is_integer(j);
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return json_is_number(j);
        case AVRO_STRING:
        case AVRO_BYTES:
                return json_is_string(j);
        case AVRO_RECORD:
                return json_is_object(j);
        default:
                return 0;
        }
}

static int expected(const char *path, const char *what, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s: expected %s", path, what);
        return -1;
}

/* Null or absent picks the null branch; anything else the first branch its JSON type fits. */
static int set_union_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                               size_t errstr_size)
{
        avro_schema_t u = avro_value_get_schema(v);
        char want[64] = "";
        avro_value_t branch;
        int index = -1;

        if (!j || json_is_null(j)) {
                index = union_branch_of_type(u, AVRO_NULL);
        } else {
                for (size_t i = 0; i < avro_schema_union_size(u) && index < 0; i++)
                        if (json_fits(j, avro_typeof(avro_schema_union_branch(u, (int)i))))
                                index = (int)i;
        }
        if (index < 0 && !j) {
                snprintf(errstr, errstr_size, "%s: missing required field", path);
                return -1;
        }
        if (index < 0) {
                for (size_t i = 0; i < avro_schema_union_size(u); i++)
                        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
                                 i ? " or " : "",
                                 json_spelling(avro_typeof(avro_schema_union_branch(u, (int)i))));
                return expected(path, want, errstr, errstr_size);
        }
        if (avro_value_set_branch(v, index, &branch))
                return avro_failed(path, errstr, errstr_size);
        return set_from_json(&branch, j, path, errstr, errstr_size);
}

static int set_integer_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                                 size_t errstr_size)
{
        json_int_t n;

        if (!json_is_integer(j))
                return expected(path, "integer", errstr, errstr_size);
        n = json_integer_value(j);
        if (avro_value_get_type(v) == AVRO_INT64)
                return avro_checked(avro_value_set_long(v, n), path, errstr, errstr_size);
        if (n < INT32_MIN || n > INT32_MAX) {
                snprintf(errstr, errstr_size,
                         "%s: %" JSON_INTEGER_FORMAT " is out of range for int", path, n);
                return -1;
        }
        return avro_checked(avro_value_set_int(v, (int32_t)n), path, errstr, errstr_size);
}

static int set_string_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                                size_t errstr_size)
{
        const char *s = json_string_value(j);

        if (!s)
                return expected(path, "string", errstr, errstr_size);
        /* jansson strings are UTF-8 but may hold \u0000, which a C string cannot carry. */
        if (strlen(s) != json_string_length(j)) {
                snprintf(errstr, errstr_size, "%s: string contains a NUL character", path);
                return -1;
        }
        if (avro_value_get_type(v) == AVRO_BYTES)
                return avro_checked(avro_value_set_bytes(v, (void *)s, json_string_length(j)), path,
                                    errstr, errstr_size);
        return avro_checked(avro_value_set_string(v, s), path, errstr, errstr_size);
}

/*
 * jansson's object iterator takes a non-const json_t *, though it does not modify the
 * object; the cast is confined here.
 */
static int check_known_keys(avro_schema_t record, const json_t *obj, const char *path, char *errstr,
                            size_t errstr_size)
{
        for (void *it = json_object_iter((json_t *)obj); it;
             it = json_object_iter_next((json_t *)obj, it)) {
                const char *key = json_object_iter_key(it);

                if (avro_schema_record_field_get_index(record, key) < 0) {
                        snprintf(errstr, errstr_size, "%s.%s: unknown field", path, key);
                        return -1;
                }
        }
        return 0;
}

/* A record from a JSON object: absent keys are null (or missing, when not nullable). */
static int set_record_from_json(avro_value_t *v, const json_t *obj, const char *path, char *errstr,
                                size_t errstr_size)
{
        avro_schema_t record = avro_value_get_schema(v);

        if (obj && !json_is_object(obj))
                return expected(path, "object", errstr, errstr_size);
        if (obj && check_known_keys(record, obj, path, errstr, errstr_size) == -1)
                return -1;
        for (size_t i = 0; i < avro_schema_record_size(record); i++) {
                const char *name = avro_schema_record_field_name(record, (int)i);
                char field_path[PATH_MAX_LEN];
                avro_value_t field;

                snprintf(field_path, sizeof(field_path), "%s.%s", path, name);
                if (avro_value_get_by_index(v, i, &field, NULL))
                        return avro_failed(field_path, errstr, errstr_size);
                if (set_from_json(&field, obj ? json_object_get(obj, name) : NULL, field_path,
                                  errstr, errstr_size) == -1)
                        return -1;
        }
        return 0;
}

static int set_from_json(avro_value_t *v, const json_t *j, const char *path, char *errstr,
                         size_t errstr_size)
{
        avro_type_t type = avro_value_get_type(v);

        if (type == AVRO_UNION)
                return set_union_from_json(v, j, path, errstr, errstr_size);
        if (type == AVRO_RECORD)
                return set_record_from_json(v, j, path, errstr, errstr_size);
        if (type == AVRO_NULL && j && !json_is_null(j))
                return expected(path, "null", errstr, errstr_size);
        if (type == AVRO_NULL)
                return avro_checked(avro_value_set_null(v), path, errstr, errstr_size);
        if (!j || json_is_null(j)) {
                snprintf(errstr, errstr_size, "%s: missing required field", path);
                return -1;
        }
        switch (type) {
        case AVRO_INT32:
        case AVRO_INT64:
                return set_integer_from_json(v, j, path, errstr, errstr_size);
        case AVRO_STRING:
        case AVRO_BYTES:
                return set_string_from_json(v, j, path, errstr, errstr_size);
        case AVRO_BOOLEAN:
                if (!json_is_boolean(j))
                        return expected(path, "true or false", errstr, errstr_size);
                return avro_checked(avro_value_set_boolean(v, json_is_true(j)), path, errstr,
                                    errstr_size);
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                if (!json_is_number(j))
                        return expected(path, "number", errstr, errstr_size);
                if (type == AVRO_FLOAT)
                        return avro_checked(avro_value_set_float(v, (float)json_number_value(j)),
                                            path, errstr, errstr_size);
                return avro_checked(avro_value_set_double(v, json_number_value(j)), path, errstr,
                                    errstr_size);
        default:
                return expected(path, json_spelling(type), errstr, errstr_size);
        }
}

static int set_payload(struct codec *c, const char *payload_name, const json_t *payload,
                       char *errstr, size_t errstr_size)
{
        char path[PATH_MAX_LEN];
        avro_value_t v, branch;
        int index;

        if (field_of(c, FIELD_PAYLOAD, &v))
                return avro_failed("payload", errstr, errstr_size);
        if (!payload_name) {
                if (payload && !json_is_null(payload)) {
                        snprintf(errstr, errstr_size, "payload: given without a payload name");
                        return -1;
                }
                index = union_branch_of_type(avro_value_get_schema(&v), AVRO_NULL);
                return avro_checked(index < 0 || avro_value_set_branch(&v, index, &branch) ||
                                            avro_value_set_null(&branch),
                                    "payload", errstr, errstr_size);
        }
        if ((index = union_branch_named(avro_value_get_schema(&v), payload_name)) < 0) {
                snprintf(errstr, errstr_size, "payload: unknown payload type \"%s\"", payload_name);
                return -1;
        }
        snprintf(path, sizeof(path), "payload.%s", payload_name);
        if (avro_value_set_branch(&v, index, &branch))
                return avro_failed(path, errstr, errstr_size);
        return set_record_from_json(&branch, payload, path, errstr, errstr_size);
}

/* ------------------------------------------------------------ encode */

/*
 * The output is sized exactly with avro_value_sizeof() and written in place after the
 * header: one malloc per event, which the caller owns (librdkafka can take it with
 * RD_KAFKA_MSG_F_FREE), and no intermediate buffer to copy from.
 */
static int write_single_object(struct codec *c, void **out, size_t *out_len, char *errstr,
                               size_t errstr_size)
{
        unsigned char *buf;
        size_t size;

        if (avro_value_sizeof(&c->value, &size))
                return avro_failed("event", errstr, errstr_size);
        if (!(buf = malloc(AVRO_SOF_HEADER_SIZE + size))) {
                snprintf(errstr, errstr_size, "out of memory (%zu bytes)",
                         AVRO_SOF_HEADER_SIZE + size);
                return -1;
        }
        avro_sof_write_header(buf, c->fingerprint);
        avro_writer_memory_set_dest(c->writer, (const char *)buf + AVRO_SOF_HEADER_SIZE,
                                    (int64_t)size);
        if (avro_value_write(c->writer, &c->value) ||
            avro_writer_tell(c->writer) != (int64_t)size) {
                free(buf);
                return avro_failed("event", errstr, errstr_size);
        }
        *out = buf;
        *out_len = AVRO_SOF_HEADER_SIZE + size;
        return 0;
}

int codec_encode(struct codec *c, const struct envelope *env, const char *payload_name,
                 const json_t *payload, void **out, size_t *out_len, char *errstr,
                 size_t errstr_size)
{
        int rc = -1;

        if (avro_value_reset(&c->value))
                return avro_failed("event", errstr, errstr_size);
        if (set_envelope(c, env, errstr, errstr_size) == 0 &&
            set_payload(c, payload_name, payload, errstr, errstr_size) == 0)
                rc = write_single_object(c, out, out_len, errstr, errstr_size);
        /* Drops the loan of env->raw (and keeps no event data between calls). */
        (void)avro_value_reset(&c->value);
        return rc;
}

/* ------------------------------------------------------------ decode: body check */

/* Names the field and the body offset where its value starts; "truncated" when input ran out. */
static int body_error(const struct cursor *cur, const unsigned char *at, const char *field,
                      const char *what, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s body at byte %zu (field %s): %s",
                 cur->p >= cur->end ? "truncated" : "corrupt", (size_t)(at - cur->start), field,
                 what);
        return -1;
}

/* A zig-zag varint of at most 10 bytes whose 10th byte carries only bit 63. */
static int read_varint(struct cursor *cur, int64_t *out)
{
        uint64_t u = 0;

        for (int shift = 0; shift < 70; shift += 7) {
                unsigned char b;

                if (cur->p >= cur->end)
                        return -1;
                b = *cur->p++;
                if (shift == 63 && b > 1)
                        return -1;
                u |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
                        return 0;
                }
        }
        return -1;
}

/* A length prefix that the rest of the body can actually hold; then skips that many bytes. */
static int check_length_prefixed(struct cursor *cur, int is_string, const char *field, char *errstr,
                                 size_t errstr_size)
{
        const unsigned char *at = cur->p;
        int64_t len;

        if (read_varint(cur, &len) == -1)
                return body_error(cur, at, field, "bad length", errstr, errstr_size);
        if (len < 0)
                return body_error(cur, at, field, "negative length", errstr, errstr_size);
        if ((uint64_t)len > (uint64_t)(cur->end - cur->p)) {
                cur->p = cur->end;
                return body_error(cur, at, field, "length past the end", errstr, errstr_size);
        }
        if (is_string && !is_clean_utf8(cur->p, (size_t)len))
                return body_error(cur, at, field, "string is not UTF-8 or contains NUL", errstr,
                                  errstr_size);
        cur->p += len;
        return 0;
}

static int check_value(avro_schema_t s, struct cursor *cur, const char *field, int depth,
                       char *errstr, size_t errstr_size);

static int check_record(avro_schema_t s, struct cursor *cur, int depth, char *errstr,
                        size_t errstr_size)
{
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
                if (check_value(avro_schema_record_field_get_by_index(s, (int)i), cur,
                                avro_schema_record_field_name(s, (int)i), depth + 1, errstr,
                                errstr_size) == -1)
                        return -1;
        return 0;
}

static int check_union(avro_schema_t s, struct cursor *cur, const char *field, int depth,
                       char *errstr, size_t errstr_size)
{
        const unsigned char *at = cur->p;
        int64_t index;

        if (read_varint(cur, &index) == -1)
                return body_error(cur, at, field, "bad union index", errstr, errstr_size);
        if (index < 0 || (uint64_t)index >= avro_schema_union_size(s))
                return body_error(cur, at, field, "union index out of range", errstr, errstr_size);
        return check_value(avro_schema_union_branch(s, (int)index), cur, field, depth + 1, errstr,
                           errstr_size);
}

static int check_fixed_size(struct cursor *cur, size_t size, const char *field, char *errstr,
                            size_t errstr_size)
{
        const unsigned char *at = cur->p;

        if ((size_t)(cur->end - cur->p) < size) {
                cur->p = cur->end;
                return body_error(cur, at, field, "value past the end", errstr, errstr_size);
        }
        cur->p += size;
        return 0;
}

/* Walks one value of schema s, so that avro-c never sees a length it would trust blindly. */
static int check_value(avro_schema_t s, struct cursor *cur, const char *field, int depth,
                       char *errstr, size_t errstr_size)
{
        const unsigned char *at = cur->p;
        int64_t n;

        if (depth > CHECK_MAX_DEPTH)
                return body_error(cur, at, field, "nested too deep", errstr, errstr_size);
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return 0;
        case AVRO_BOOLEAN:
                if (cur->p < cur->end && cur->p[0] > 1)
                        return body_error(cur, at, field, "boolean is neither 0 nor 1", errstr,
                                          errstr_size);
                return check_fixed_size(cur, 1, field, errstr, errstr_size);
        case AVRO_INT32:
        case AVRO_INT64:
                if (read_varint(cur, &n) == -1)
                        return body_error(cur, at, field, "bad varint", errstr, errstr_size);
                if (avro_typeof(s) == AVRO_INT32 && (n < INT32_MIN || n > INT32_MAX))
                        return body_error(cur, at, field, "int out of range", errstr, errstr_size);
                return 0;
        case AVRO_FLOAT:
                return check_fixed_size(cur, 4, field, errstr, errstr_size);
        case AVRO_DOUBLE:
                return check_fixed_size(cur, 8, field, errstr, errstr_size);
        case AVRO_STRING:
        case AVRO_BYTES:
                return check_length_prefixed(cur, avro_typeof(s) == AVRO_STRING, field, errstr,
                                             errstr_size);
        case AVRO_RECORD:
                return check_record(s, cur, depth, errstr, errstr_size);
        case AVRO_UNION:
                return check_union(s, cur, field, depth, errstr, errstr_size);
        case AVRO_LINK:
                return check_value(avro_schema_link_target(s), cur, field, depth + 1, errstr,
                                   errstr_size);
        default:
                return body_error(cur, at, field, "type not supported by the codec", errstr,
                                  errstr_size);
        }
}

/* Walks a body against the schema it was written with. */
static int check_body(avro_schema_t writer, const unsigned char *body, size_t len, char *errstr,
                      size_t errstr_size)
{
        struct cursor cur = {body, body, body + len};

        if (check_record(writer, &cur, 0, errstr, errstr_size) == -1)
                return -1;
        if (cur.p != cur.end) {
                snprintf(errstr, errstr_size, "corrupt body: %zu bytes after the end of the event",
                         (size_t)(cur.end - cur.p));
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------ decode: value to event */

static json_t *value_to_json(avro_value_t *v);

static json_t *record_to_json(avro_value_t *v)
{
        avro_schema_t record = avro_value_get_schema(v);
        json_t *obj = json_object();

        for (size_t i = 0; obj && i < avro_schema_record_size(record); i++) {
                avro_value_t field;
                const char *name;

                if (avro_value_get_by_index(v, i, &field, &name) ||
                    json_object_set_new(obj, name, value_to_json(&field))) {
                        json_decref(obj);
                        obj = NULL;
                }
        }
        return obj;
}

/* The checked body guarantees UTF-8 strings; NULL here means out of memory. */
static json_t *value_to_json(avro_value_t *v)
{
        avro_value_t branch;
        const void *buf;
        const char *s;
        size_t size;
        int32_t i;
        int64_t l;
        int b;
        double d;
        float f;

        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                return json_null();
        case AVRO_BOOLEAN:
                return avro_value_get_boolean(v, &b) ? NULL : json_boolean(b);
        case AVRO_INT32:
                return avro_value_get_int(v, &i) ? NULL : json_integer(i);
        case AVRO_INT64:
                return avro_value_get_long(v, &l) ? NULL : json_integer(l);
        case AVRO_FLOAT:
                return avro_value_get_float(v, &f) ? NULL : json_real(f);
        case AVRO_DOUBLE:
                return avro_value_get_double(v, &d) ? NULL : json_real(d);
        case AVRO_STRING:
                return avro_value_get_string(v, &s, &size) ? NULL : json_string(s);
        case AVRO_BYTES:
                return avro_value_get_bytes(v, &buf, &size) ? NULL : json_stringn(buf, size);
        case AVRO_UNION:
                return avro_value_get_current_branch(v, &branch) ? NULL : value_to_json(&branch);
        case AVRO_RECORD:
                return record_to_json(v);
        default:
                return NULL;
        }
}

static int get_string(struct codec *c, enum envelope_field f, char **out)
{
        avro_value_t v, branch;
        const char *s;
        size_t size;

        if (field_of(c, f, &v))
                return -1;
        if (avro_value_get_type(&v) == AVRO_UNION) {
                if (avro_value_get_current_branch(&v, &branch))
                        return -1;
                v = branch;
        }
        if (avro_value_get_type(&v) == AVRO_NULL)
                return 0; /* *out stays NULL */
        if (avro_value_get_string(&v, &s, &size) || !(*out = strdup(s)))
                return -1;
        return 0;
}

static int get_long(struct codec *c, enum envelope_field f, int64_t *out)
{
        avro_value_t v;

        return field_of(c, f, &v) || avro_value_get_long(&v, out) ? -1 : 0;
}

static int get_raw(struct codec *c, struct event *ev)
{
        avro_value_t v;
        const void *buf;
        size_t size;

        if (field_of(c, FIELD_RAW, &v) || avro_value_get_bytes(&v, &buf, &size) ||
            !(ev->raw = malloc(size + 1)))
                return -1;
        if (size)
                memcpy(ev->raw, buf, size);
        ((char *)ev->raw)[size] = '\0';
        ev->raw_len = size;
        return 0;
}

static int get_payload(struct codec *c, struct event *ev)
{
        avro_value_t v, branch;

        if (field_of(c, FIELD_PAYLOAD, &v) || avro_value_get_current_branch(&v, &branch))
                return -1;
        if (avro_value_get_type(&branch) != AVRO_RECORD)
                return 0; /* the null payload */
        if (!(ev->payload_name = strdup(avro_schema_name(avro_value_get_schema(&branch)))) ||
            !(ev->payload = record_to_json(&branch)))
                return -1;
        return 0;
}

static int event_from_value(struct codec *c, struct event *ev)
{
        char **strings[FIELD_COUNT] = {
                [FIELD_EVENT_ID] = &ev->event_id,     [FIELD_VENDOR] = &ev->vendor,
                [FIELD_EVENT_TYPE] = &ev->event_type, [FIELD_STREAM_ID] = &ev->stream_id,
                [FIELD_ANCHOR_ID] = &ev->anchor_id,   [FIELD_ROOM_ID] = &ev->room_id,
                [FIELD_TRACE_ID] = &ev->trace_id,
        };

        for (size_t i = 0; i < sizeof(string_fields) / sizeof(string_fields[0]); i++)
                if (get_string(c, string_fields[i], strings[string_fields[i]]) == -1)
                        return -1;
        if (get_long(c, FIELD_EVENT_TIME, &ev->event_time_ms) == -1 ||
            get_long(c, FIELD_RECEIVE_TIME, &ev->receive_time_ms) == -1 || get_raw(c, ev) == -1)
                return -1;
        return get_payload(c, ev);
}

/* ------------------------------------------------------------ decode */

int codec_decode(struct codec *c, const void *data, size_t len, struct event *ev, char *errstr,
                 size_t errstr_size)
{
        struct writer_schema *w;
        const unsigned char *body;
        uint64_t fp;
        int rc = -1;

        memset(ev, 0, sizeof(*ev));
        if (avro_sof_read_header(data, len, &fp, errstr, errstr_size) == -1)
                return -1;
        if (!(w = writer_schema_by_fingerprint(c, fp))) {
                snprintf(errstr, errstr_size,
                         "unknown schema fingerprint 0x%016" PRIx64
                         " (this codec reads schemas/event.avsc, 0x%016" PRIx64
                         ", and %zu released schema%s of schemas/history/)",
                         fp, c->fingerprint, c->n_writers - 1, c->n_writers == 2 ? "" : "s");
                return -1;
        }
        body = (const unsigned char *)data + AVRO_SOF_HEADER_SIZE;
        if (check_body(w->schema, body, len - AVRO_SOF_HEADER_SIZE, errstr, errstr_size) == -1)
                return -1;
        avro_reader_memory_set_source(c->reader, (const char *)body,
                                      (int64_t)(len - AVRO_SOF_HEADER_SIZE));
        /* A historic body goes through its resolver, which fills c->value all the same. */
        if (avro_value_read(c->reader, w->resolver ? &w->resolved : &c->value))
                snprintf(errstr, errstr_size, "corrupt body: avro: %s", avro_strerror());
        else if (event_from_value(c, ev) == -1)
                snprintf(errstr, errstr_size, "decoding the event: out of memory");
        else
                rc = 0;
        /* Releases the copies avro-c made of this message's strings and bytes. */
        (void)avro_value_reset(&c->value);
        if (rc == -1)
                event_fini(ev);
        return rc;
}

void event_fini(struct event *ev)
{
        if (!ev)
                return;
        free(ev->event_id);
        free(ev->vendor);
        free(ev->event_type);
        free(ev->stream_id);
        free(ev->anchor_id);
        free(ev->room_id);
        free(ev->trace_id);
        free(ev->raw);
        free(ev->payload_name);
        json_decref(ev->payload);
        memset(ev, 0, sizeof(*ev));
}
