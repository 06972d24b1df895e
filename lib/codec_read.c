/*
 * codec_read.c: a body of the current schema read straight into an event (codec_read_event()),
 * in one pass by the plan codec_write.c makes at codec_new(): codec_write.c's writer read back.
 *
 * The consumer decodes every record it takes; through avro-c that is a walk of the body against
 * the schema (avro-c trusts declared lengths, see codec.c), avro-c's own read into an
 * avro_value_t, then a copy of each field out of it: three passes and most of a role's decode
 * instructions. This pass checks what the walk checks (lengths within the body, UTF-8 without
 * NUL, union indexes, int ranges, booleans, nothing after the end) while it copies. It answers
 * only "read" or "not read": a body it does not read goes the avro-c way, which stays the
 * reference (tests/lib/test_codec.c holds the two to one answer) and names what is wrong.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"

/* The unread part of a body. */
struct rcur {
        const unsigned char *p;
        const unsigned char *end;
};

/* A zig-zag varint of at most 10 bytes whose 10th byte carries only bit 63. */
static bool rd_long(struct rcur *c, int64_t *out)
{
        uint64_t u = 0;

        for (int shift = 0; shift < 70 && c->p < c->end; shift += 7) {
                unsigned char b = *c->p++;

                if (shift == 63 && b > 1)
                        return false;
                u |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
                        return true;
                }
        }
        return false;
}

/* A length-prefixed string or bytes value that the body holds; strings clean UTF-8. */
static bool rd_counted(struct rcur *c, bool is_string, const unsigned char **s, size_t *len)
{
        int64_t n;

        if (!rd_long(c, &n) || n < 0 || (uint64_t)n > (uint64_t)(c->end - c->p))
                return false;
        if (is_string && !codec_is_clean_utf8(c->p, (size_t)n))
                return false;
        *s = c->p;
        *len = (size_t)n;
        c->p += n;
        return true;
}

/* A union's index within its n branches. */
static bool rd_branch(struct rcur *c, size_t n, size_t *index)
{
        int64_t i;

        if (!rd_long(c, &i) || i < 0 || (uint64_t)i >= n)
                return false;
        *index = (size_t)i;
        return true;
}

/* IEEE 754 little-endian, as avro-c reads float and double. */
static bool rd_real(struct rcur *c, avro_type_t type, double *out)
{
        size_t n = type == AVRO_FLOAT ? 4 : 8;
        uint64_t bits = 0;

        if ((size_t)(c->end - c->p) < n)
                return false;
        for (size_t i = 0; i < n; i++)
                bits |= (uint64_t)c->p[i] << (8 * i);
        c->p += n;
        if (n == 4) {
                uint32_t fbits = (uint32_t)bits;
                float f;

                memcpy(&f, &fbits, 4);
                *out = f;
        } else {
                memcpy(out, &bits, 8);
        }
        return true;
}

/* One primitive as codec_decode.c's value_to_json() makes it; NULL when it cannot. */
static json_t *rd_json(struct rcur *c, avro_type_t type)
{
        const unsigned char *s;
        size_t len;
        int64_t n;
        double d;

        switch (type) {
        case AVRO_NULL:
                return json_null();
        case AVRO_BOOLEAN:
                if (c->p >= c->end || *c->p > 1)
                        return NULL;
                return json_boolean(*c->p++);
        case AVRO_INT32:
        case AVRO_INT64:
                if (!rd_long(c, &n) || (type == AVRO_INT32 && (n < INT32_MIN || n > INT32_MAX)))
                        return NULL;
                return json_integer(n);
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return rd_real(c, type, &d) ? json_real(d) : NULL; /* NULL for NaN, as there */
        case AVRO_STRING:
                /* checked clean UTF-8 without NUL: what json_string() would check again */
                return rd_counted(c, true, &s, &len) ? json_stringn_nocheck((const char *)s, len)
                                                     : NULL;
        case AVRO_BYTES:
                return rd_counted(c, false, &s, &len) ? json_stringn((const char *)s, len) : NULL;
        default:
                return NULL;
        }
}

static json_t *rd_field(struct rcur *c, const struct plan_field *pf)
{
        size_t b;

        if (pf->type != AVRO_UNION)
                return rd_json(c, pf->type);
        return rd_branch(c, pf->n_branches, &b) ? rd_json(c, pf->branches[b]) : NULL;
}

/* The payload union: the null branch, or a record read into a JSON object of every field. */
static bool rd_payload(struct rcur *c, const struct codec_plan *plan, struct event *ev)
{
        const struct plan_record *pr = NULL;
        int64_t branch;

        if (!rd_long(c, &branch) || branch < 0)
                return false;
        if (branch == plan->payload_null_branch)
                return true;
        for (size_t i = 0; i < plan->n_records && !pr; i++)
                if (plan->records[i].branch == branch)
                        pr = &plan->records[i];
        if (!pr || !(ev->payload_name = strdup(pr->name)) || !(ev->payload = json_object()))
                return false;
        for (size_t i = 0; i < pr->n_fields; i++) {
                json_t *v = rd_field(c, &pr->fields[i]);

                if (!v || json_object_set_new_nocheck(ev->payload, pr->fields[i].name, v) == -1)
                        return false;
        }
        return true;
}

/* A copy of len bytes with a NUL after them. */
static char *copy_text(const unsigned char *s, size_t len)
{
        char *out = malloc(len + 1);

        if (out) {
                memcpy(out, s, len);
                out[len] = '\0';
        }
        return out;
}

/* An envelope string (or null, which leaves *out NULL). */
static bool rd_string_field(struct rcur *c, const struct plan_field *pf, char **out)
{
        const unsigned char *s;
        size_t len, b;

        if (pf->type == AVRO_UNION) {
                if (!rd_branch(c, pf->n_branches, &b))
                        return false;
                if (pf->branches[b] == AVRO_NULL)
                        return true;
        }
        return rd_counted(c, true, &s, &len) && (*out = copy_text(s, len)) != NULL;
}

static bool rd_envelope_field(struct rcur *c, const struct codec_plan *plan, enum envelope_field f,
                              struct event *ev)
{
        char **strings[FIELD_COUNT] = {
                [FIELD_EVENT_ID] = &ev->event_id,     [FIELD_VENDOR] = &ev->vendor,
                [FIELD_EVENT_TYPE] = &ev->event_type, [FIELD_STREAM_ID] = &ev->stream_id,
                [FIELD_ANCHOR_ID] = &ev->anchor_id,   [FIELD_ROOM_ID] = &ev->room_id,
                [FIELD_TRACE_ID] = &ev->trace_id,
        };
        const unsigned char *s;

        switch (f) {
        case FIELD_EVENT_TIME:
                return rd_long(c, &ev->event_time_ms);
        case FIELD_RECEIVE_TIME:
                return rd_long(c, &ev->receive_time_ms);
        case FIELD_RAW:
                return rd_counted(c, false, &s, &ev->raw_len) &&
                       (ev->raw = copy_text(s, ev->raw_len)) != NULL;
        case FIELD_PAYLOAD:
                return rd_payload(c, plan, ev);
        default:
                return rd_string_field(c, &plan->envelope[f], strings[f]);
        }
}

int codec_read_event(const struct codec_plan *plan, const unsigned char *body, size_t len,
                     struct event *ev)
{
        struct rcur c = {body, body + len};

        memset(ev, 0, sizeof(*ev));
        for (size_t i = 0; i < plan->n_envelope; i++)
                if (!rd_envelope_field(&c, plan, plan->order[i], ev))
                        goto fail;
        if (c.p == c.end)
                return 0;
fail:
        event_fini(ev);
        return -1;
}
