/* audience_rows.c: the audience engine's tables: a string -> index map over growable arrays. */
#include "audience_rows.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

static void strmap_clear(struct strmap *m)
{
        if (m->slots)
                memset(m->slots, 0, m->cap * sizeof(*m->slots));
        m->n = 0;
}

/*
 * The index of key, looked up with name(i) giving the key of entry i; when absent and add is
 * set, records next as its index and returns it. SIZE_MAX: absent (or out of memory).
 */
static size_t strmap_find(struct strmap *m, const char *key, const char *(*name)(void *, size_t),
                          void *arg, bool add, size_t next)
{
        size_t i;

        if (add && (m->n + 1) * 2 > m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 64, *slots = calloc(cap, sizeof(*slots));

                if (!slots)
                        return SIZE_MAX;
                for (size_t j = 0; j < m->cap; j++) {
                        size_t k;

                        if (!m->slots[j])
                                continue;
                        k = hash_str(name(arg, m->slots[j] - 1)) & (cap - 1);
                        while (slots[k])
                                k = (k + 1) & (cap - 1);
                        slots[k] = m->slots[j];
                }
                free(m->slots);
                m->slots = slots;
                m->cap = cap;
        }
        if (!m->cap)
                return SIZE_MAX;
        for (i = hash_str(key) & (m->cap - 1); m->slots[i]; i = (i + 1) & (m->cap - 1))
                if (strcmp(name(arg, m->slots[i] - 1), key) == 0)
                        return m->slots[i] - 1;
        if (!add)
                return SIZE_MAX;
        m->slots[i] = next + 1;
        m->n++;
        return next;
}

void *aud_vec_push(struct vec *a)
{
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 64;
                void *v = realloc(a->v, cap * a->size);

                if (!v)
                        return NULL;
                a->v = v;
                a->cap = cap;
        }
        memset((char *)a->v + a->n * a->size, 0, a->size);
        return (char *)a->v + a->n++ * a->size;
}

static const char *row_key(void *arg, size_t i)
{
        struct vec *rows = arg;

        /* Every row struct starts with its key. */
        return (const char *)rows->v + i * rows->size;
}

/* The row of key in t, made (zeroed, key set) when absent and add is set; NULL otherwise. */
void *aud_table_row(struct aud_batch *b, struct table *t, const char *key, bool add)
{
        size_t i = strmap_find(&t->map, key, row_key, &t->rows, add, t->rows.n);
        char *row;

        if (i == SIZE_MAX) {
                if (add)
                        b->is_oom = true;
                return NULL;
        }
        if (i < t->rows.n)
                return (char *)t->rows.v + i * t->rows.size;
        if (!(row = aud_vec_push(&t->rows))) {
                b->is_oom = true;
                return NULL;
        }
        memcpy(row, key, strlen(key) + 1); /* every key fits its row's key array */
        return row;
}

void aud_table_clear(struct table *t)
{
        t->rows.n = 0;
        strmap_clear(&t->map);
}

void aud_table_free(struct table *t)
{
        free(t->rows.v);
        free(t->map.slots);
}

void aud_table_init(struct table *t, size_t size)
{
        t->rows.size = size;
}

enum db_result aud_oom(char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "out of memory");
        return DB_RETRY;
}

/* Appends ", " between list items. */
void aud_sep(struct db_text *t, size_t i)
{
        if (i)
                db_text_add(t, ", ");
}
