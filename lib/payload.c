/* payload.c: a payload record's fields by name, with their text in one buffer (payload.h). */
#include "payload.h"

#include <stdlib.h>
#include <string.h>

struct payload *payload_new(void)
{
        struct payload *p = malloc(sizeof(*p));

        if (!p)
                return NULL;
        p->n = 0;
        p->heap_text = NULL;
        p->text_len = 0;
        p->text_cap = sizeof(p->inline_text);
        p->has_failed = false;
        return p;
}

void payload_destroy(struct payload *p)
{
        if (!p)
                return;
        free(p->heap_text);
        free(p);
}

static char *text_base(struct payload *p)
{
        return p->heap_text ? p->heap_text : p->inline_text;
}

/* Room for need more bytes of text: doubles the buffer, moving the inline text out once. */
static int reserve_text(struct payload *p, size_t need)
{
        size_t cap = p->text_cap;
        char *grown;

        if (need <= p->text_cap - p->text_len)
                return 0;
        while (cap - p->text_len < need) {
                if (cap > SIZE_MAX / 2)
                        return -1;
                cap *= 2;
        }
        if (!(grown = realloc(p->heap_text, cap)))
                return -1;
        if (!p->heap_text)
                memcpy(grown, p->inline_text, p->text_len);
        p->heap_text = grown;
        p->text_cap = cap;
        return 0;
}

/* The field called name, made (in the next place) when p has none yet; NULL when p is full. */
static struct payload_field *field_for(struct payload *p, const char *name)
{
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->f[i].name, name) == 0)
                        return &p->f[i];
        if (p->n == PAYLOAD_MAX_FIELDS)
                return NULL;
        p->f[p->n].name = name;
        return &p->f[p->n++];
}

/*
 * A replaced text stays in the buffer unused: a payload is filled once, so replacing is rare
 * and the buffer is freed with the payload.
 */
int payload_set_text(struct payload *p, const char *name, const char *s, size_t len)
{
        struct payload_field *f;
        char *dst;

        if (len == SIZE_MAX || reserve_text(p, len + 1) == -1 || !(f = field_for(p, name))) {
                p->has_failed = true;
                return -1;
        }
        dst = text_base(p) + p->text_len;
        memcpy(dst, s, len);
        dst[len] = '\0';
        f->kind = PAYLOAD_TEXT;
        f->n = 0;
        f->off = p->text_len;
        f->len = len;
        p->text_len += len + 1;
        return 0;
}

static int set_number(struct payload *p, const char *name, enum payload_kind kind, int64_t n)
{
        struct payload_field *f = field_for(p, name);

        if (!f) {
                p->has_failed = true;
                return -1;
        }
        f->kind = kind;
        f->n = n;
        f->off = f->len = 0;
        return 0;
}

int payload_set_int(struct payload *p, const char *name, int64_t n)
{
        return set_number(p, name, PAYLOAD_INT, n);
}

int payload_set_bool(struct payload *p, const char *name, bool b)
{
        return set_number(p, name, PAYLOAD_BOOL, b ? 1 : 0);
}

const struct payload_field *payload_get(const struct payload *p, const char *name)
{
        for (size_t i = 0; p && i < p->n; i++)
                if (strcmp(p->f[i].name, name) == 0)
                        return &p->f[i];
        return NULL;
}

const char *payload_field_text(const struct payload *p, const struct payload_field *f)
{
        return (p->heap_text ? p->heap_text : p->inline_text) + f->off;
}

const char *payload_get_text(const struct payload *p, const char *name)
{
        const struct payload_field *f = payload_get(p, name);

        return f && f->kind == PAYLOAD_TEXT ? payload_field_text(p, f) : NULL;
}

json_t *payload_to_json(const struct payload *p)
{
        json_t *obj = json_object();

        for (size_t i = 0; obj && p && i < p->n; i++) {
                const struct payload_field *f = &p->f[i];
                json_t *v = f->kind == PAYLOAD_TEXT
                                    ? json_stringn_nocheck(payload_field_text(p, f), f->len)
                            : f->kind == PAYLOAD_INT ? json_integer(f->n)
                                                     : json_boolean(f->n);

                if (json_object_set_new(obj, f->name, v) == -1) {
                        json_decref(obj);
                        return NULL;
                }
        }
        return obj;
}
