/*
 * codec.c: encodes and decodes the event envelope (schemas/event.avsc) with avro-c, framed as
 * Avro single-object encoding; it decodes records of the released schemas in schemas/history/
 * too, resolved to the current one. Before avro-c reads a body, the body is walked against the
 * schema (codec_decode.c), because the input comes off the network and avro-c 1.11.1 trusts
 * declared lengths: it mallocs a string or bytes value at the declared size before it looks at how
 * much input is left (2^40 from a 6-byte varint aborts an ASan build; 1 GiB is simply
 * allocated), and it has no sign check (a negative length only fails because malloc(0)
 * happens to return NULL in its allocator).
 *
 * This file reads and checks the schemas and holds the codec's lifetime; codec_encode.c encodes,
 * codec_decode.c walks and decodes bodies.
 */
#include "codec.h"

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_sof.h"
#include "codec_int.h"
#include "schemas.h"

#define EVENT_SCHEMA "event"
/* Embedded names of the released schemas an old record may carry the fingerprint of. */
#define HISTORY_PREFIX "history/"

const char *const codec_field_names[FIELD_COUNT] = {
        "event_id",   "vendor",       "event_type", "stream_id", "anchor_id", "room_id",
        "event_time", "receive_time", "trace_id",   "raw",       "payload",
};

const enum envelope_field codec_string_fields[CODEC_STRING_FIELDS] = {
        FIELD_EVENT_ID,  FIELD_VENDOR,    FIELD_EVENT_TYPE, FIELD_TRACE_ID,
        FIELD_STREAM_ID, FIELD_ANCHOR_ID, FIELD_ROOM_ID,
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
int codec_is_clean_utf8(const unsigned char *s, size_t n)
{
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000}; /* no overlong forms */
        size_t i = 0;

        while (i < n) {
                size_t len;
                uint64_t x;

                /* Eight ASCII bytes without a NUL at a time: most of what is checked. */
                if (n - i >= 8) {
                        memcpy(&x, s + i, 8);
                        if (!(x & 0x8080808080808080ULL) &&
                            !((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL)) {
                                i += 8;
                                continue;
                        }
                }
                len = utf8_sequence_length(s[i]);
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
                int index = avro_schema_record_field_get_index(c->schema, codec_field_names[i]);

                if (index < 0) {
                        snprintf(errstr, errstr_size, "schemas/event.avsc: no field %s",
                                 codec_field_names[i]);
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

struct writer_schema *codec_writer_schema(struct codec *c, uint64_t fp)
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
        if (codec_writer_schema(c, w->fingerprint)) {
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
        if (add_writer_schemas(c, errstr, errstr_size) == -1 ||
            codec_plan_new(c, errstr, errstr_size) == -1)
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
        codec_plan_destroy(c->plan);
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
