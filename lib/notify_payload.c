/* notify_payload.c: a notification's payload as JSON text and as fields (notify_payload.h). */
#include "notify_payload.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "payload.h"
#include "text.h"

#define NOTIFY_PAYLOAD_FIELDS 13 /* the Notify record's fields */

/* One field the payload has: text (len bytes) or, when text is NULL, the number n. */
struct field {
        const char *name;
        const char *text;
        size_t len;
        long long n;
        size_t rank; /* its place in the Notify record (schemas/event.avsc) */
};

struct fields {
        struct field f[NOTIFY_PAYLOAD_FIELDS];
        size_t n;
};

static void add_num(struct fields *fs, size_t rank, const char *name, long long n, bool has)
{
        if (has)
                fs->f[fs->n++] = (struct field){.name = name, .n = n, .rank = rank};
}

/* A text jansson would have taken: json_string() refuses one that is not UTF-8. */
static void add_text(struct fields *fs, size_t rank, const char *name, const char *v)
{
        size_t len = v ? strlen(v) : 0;

        if (len && codec_is_clean_utf8((const unsigned char *)v, len))
                fs->f[fs->n++] = (struct field){.name = name, .text = v, .len = len, .rank = rank};
}

/* m's fields in the order notify_encode_msg() once set them on a jansson object, which
   keeps (and writes) its keys in insertion order. */
static void collect(const struct notify_msg *m, struct fields *fs)
{
        fs->n = 0;
        fs->f[fs->n++] = (struct field){.name = "kind", .text = m->kind, .len = strlen(m->kind)};
        add_num(fs, 1, "at_ms", m->at_ms, true);
        add_num(fs, 2, "session_id", m->session_id, m->session_id > 0);
        add_text(fs, 3, "title", m->title);
        add_text(fs, 4, "cover_url", m->cover_url);
        add_text(fs, 7, "reason", m->reason);
        add_text(fs, 9, "request_id", m->request_id);
        add_text(fs, 11, "file_id", m->file_id);
        add_text(fs, 12, "playback_url", m->playback_url);
        add_num(fs, 5, "duration_s", m->duration_s, m->duration_s >= 0);
        add_num(fs, 6, "close_method", m->close_method, m->close_method >= 0);
        add_num(fs, 8, "until_ms", m->until_ms, m->until_ms >= 0);
        add_num(fs, 10, "amount", m->amount, m->amount >= 0);
}

static char *put(char *at, const char *s, size_t len)
{
        memcpy(at, s, len);
        return at + len;
}

/* Whether none of the 8 bytes in x is one JSON escapes (a control byte, '"' or '\\'): each
   test is "has a byte below 0x20" or "has a zero byte" on the whole word, which can err only
   towards escaping, never past a byte that needs it. */
static bool is_plain8(uint64_t x)
{
        const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
        uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');

        return !((((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) |
                  ((backslash - ones) & ~backslash)) &
                 highs);
}

/* The escape after the backslash for c, or 0 for \u00XX. */
static char short_escape(unsigned char c)
{
        switch (c) {
        case '"':
        case '\\':
                return (char)c;
        case '\b':
                return 'b';
        case '\f':
                return 'f';
        case '\n':
                return 'n';
        case '\r':
                return 'r';
        case '\t':
                return 't';
        default:
                return 0;
        }
}

char *notify_json_string(char *at, const char *s, size_t len)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t run = 0, i = 0;

        *at++ = '"';
        while (i < len) {
                unsigned char c = (unsigned char)s[i];
                uint64_t x;
                char esc;

                if (len - i >= 8) {
                        memcpy(&x, s + i, 8);
                        if (is_plain8(x)) { /* most text: eight bytes that go as they are */
                                i += 8;
                                continue;
                        }
                }
                if (c >= 0x20 && c != '"' && c != '\\') {
                        i++;
                        continue;
                }
                at = put(at, s + run, i - run);
                run = ++i;
                if ((esc = short_escape(c)))
                        at = put(at, (const char[]){'\\', esc}, 2);
                else
                        at = put(at, (const char[]){'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]},
                                 6);
        }
        at = put(at, s + run, len - run);
        *at++ = '"';
        return at;
}

/* The JSON text of fs into a buffer of its largest size (every byte escaped as \u00XX). */
static char *write_json(const struct fields *fs, size_t *len)
{
        size_t cap = 3; /* {}, NUL */
        char *s, *at;

        for (size_t i = 0; i < fs->n; i++)
                cap += strlen(fs->f[i].name) + 4 +
                       (fs->f[i].text ? 6 * fs->f[i].len + 2 : TEXT_LL_MAX);
        if (!(s = at = malloc(cap)))
                return NULL;
        *at++ = '{';
        for (size_t i = 0; i < fs->n; i++) {
                const struct field *f = &fs->f[i];

                if (i)
                        *at++ = ',';
                *at++ = '"';
                at = put(at, f->name, strlen(f->name));
                at = put(at, "\":", 2);
                if (f->text)
                        at = notify_json_string(at, f->text, f->len);
                else
                        at += text_int(at, TEXT_LL_MAX, f->n);
        }
        *at++ = '}';
        *at = '\0';
        if (len)
                *len = (size_t)(at - s);
        return s;
}

/* The same fields for the Avro writer, in the record's order (which it looks them up in), or
   NULL when out of memory. */
static struct payload *to_fields(const struct fields *fs)
{
        const struct field *by_rank[NOTIFY_PAYLOAD_FIELDS] = {NULL};
        struct payload *p = payload_new();

        for (size_t i = 0; i < fs->n; i++)
                by_rank[fs->f[i].rank] = &fs->f[i];
        for (size_t i = 0; p && i < NOTIFY_PAYLOAD_FIELDS; i++) {
                const struct field *f = by_rank[i];

                if (!f)
                        continue;
                if (f->text)
                        payload_set_text(p, f->name, f->text, f->len);
                else
                        payload_set_int(p, f->name, f->n);
        }
        if (p && p->has_failed) {
                payload_destroy(p);
                return NULL;
        }
        return p;
}

char *notify_payload_json(const struct notify_msg *m, size_t *len, struct payload **fields)
{
        struct fields fs;
        char *text;

        if (fields)
                *fields = NULL;
        /* json_pack() refused a kind that is not a UTF-8 string: nothing was recorded. */
        if (!m->kind || !codec_is_clean_utf8((const unsigned char *)m->kind, strlen(m->kind)))
                return NULL;
        collect(m, &fs);
        if (!(text = write_json(&fs, len)))
                return NULL;
        if (fields && !(*fields = to_fields(&fs))) {
                free(text);
                return NULL;
        }
        return text;
}
