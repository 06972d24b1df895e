/* keyset.c: the sorted ids of a set-based batch (see keyset.h). */
#include "keyset.h"

#include <stdlib.h>
#include <string.h>

int keyset_init(struct keyset *ks, size_t cap)
{
        memset(ks, 0, sizeof(*ks));
        if (cap && !(ks->items = calloc(cap, sizeof(*ks->items))))
                return -1;
        ks->cap = cap;
        return 0;
}

void keyset_free(struct keyset *ks)
{
        free(ks->items);
        memset(ks, 0, sizeof(*ks));
}

void keyset_add(struct keyset *ks, const char *id, size_t index)
{
        if (ks->n < ks->cap)
                ks->items[ks->n++] = (struct keyset_item){.id = id, .index = index};
}

static int cmp_item(const void *a, const void *b)
{
        const struct keyset_item *x = a, *y = b;
        int c = strcmp(x->id, y->id);

        return c ? c : (x->index > y->index) - (x->index < y->index);
}

void keyset_sort(struct keyset *ks)
{
        if (ks->n)
                qsort(ks->items, ks->n, sizeof(*ks->items), cmp_item);
}

bool keyset_is_first(const struct keyset *ks, size_t i)
{
        return i == 0 || strcmp(ks->items[i].id, ks->items[i - 1].id) != 0;
}

size_t keyset_find(const struct keyset *ks, const char *id)
{
        size_t lo = 0, hi = ks->n;

        while (lo < hi) { /* the lower bound: the first of equal ids is the earliest */
                size_t mid = lo + (hi - lo) / 2;

                if (strcmp(ks->items[mid].id, id) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < ks->n && strcmp(ks->items[lo].id, id) == 0 ? lo : ks->n;
}

/* Length of s without trailing spaces (PAD SPACE collations ignore them). */
static size_t padless_len(const char *s)
{
        size_t len = strlen(s);

        while (len && s[len - 1] == ' ')
                len--;
        return len;
}

static int fold(char c)
{
        return c >= 'A' && c <= 'Z' ? c + 32 : (unsigned char)c;
}

/* Orders ids as a case-insensitive, PAD SPACE collation could: equal when it might be. */
static int cmp_folded(const void *a, const void *b)
{
        const char *x = *(const char *const *)a, *y = *(const char *const *)b;
        size_t lx, ly, i = 0;

        /*
         * Before the first space either has, every character is before the padding: the first
         * pair that differs folded decides without the lengths (most comparisons of a sort of a
         * batch's ids, which share long prefixes).
         */
        while (x[i] == y[i] && x[i] && x[i] != ' ')
                i++;
        if (x[i] && y[i] && x[i] != ' ' && y[i] != ' ' && fold(x[i]) != fold(y[i]))
                return fold(x[i]) - fold(y[i]);
        lx = padless_len(x);
        ly = padless_len(y);
        for (i = 0; i < lx && i < ly; i++)
                if (fold(x[i]) != fold(y[i]))
                        return fold(x[i]) - fold(y[i]);
        return (lx > ly) - (lx < ly);
}

/* Printable ASCII only: outside it, collations fold accents, ignore controls and more. */
static bool is_plain(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
                        return false;
        return true;
}

bool keys_may_collide(const char **ids, size_t n)
{
        for (size_t i = 0; i < n && n > 1; i++)
                if (!is_plain(ids[i]))
                        return true;
        if (n > 1)
                qsort(ids, n, sizeof(*ids), cmp_folded);
        for (size_t i = 1; i < n; i++)
                if (cmp_folded(&ids[i - 1], &ids[i]) == 0)
                        return true;
        return false;
}

bool keyset_may_collide(const struct keyset *ks)
{
        const char **ids = ks->n ? malloc(ks->n * sizeof(*ids)) : NULL;
        size_t cnt = 0;
        bool r;

        if (!ids)
                return ks->n > 0; /* out of memory: the careful answer */
        for (size_t i = 0; i < ks->n; i++)
                if (keyset_is_first(ks, i))
                        ids[cnt++] = ks->items[i].id;
        r = keys_may_collide(ids, cnt);
        free(ids);
        return r;
}

void keyset_add_list(const struct keyset *ks, struct db *db, struct db_text *t)
{
        db_text_add(t, "(");
        for (size_t i = 0; i < ks->n; i++) {
                if (!keyset_is_first(ks, i))
                        continue;
                db_text_add(t, i ? ", " : "");
                db_text_str(db, t, ks->items[i].id);
        }
        db_text_add(t, ")");
}

static void on_known(const struct db_col *cols, void *arg)
{
        struct keyset *ks = arg;
        size_t i = keyset_find(ks, cols[0].s);

        if (i == ks->n) {
                ks->is_mismatch = true;
                return;
        }
        for (; i < ks->n && strcmp(ks->items[i].id, cols[0].s) == 0; i++)
                ks->items[i].is_known = true;
}

enum db_result keyset_find_known(struct keyset *ks, struct db *db, struct db_text *t,
                                 const char *select, char *errstr, size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1];
        struct db_col col = {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)};
        size_t in_list = 0;

        if (!ks->n)
                return DB_OK;
        db_text_reset(t);
        for (size_t i = 0; i < ks->n; i++) {
                if (!keyset_is_first(ks, i))
                        continue;
                if (in_list == KEYSET_IN_LIST_MAX) {
                        db_text_add(t, ") UNION ALL ");
                        in_list = 0;
                }
                if (in_list++)
                        db_text_add(t, ", ");
                else
                        db_text_add(t, "%s(", select);
                db_text_str(db, t, ks->items[i].id);
        }
        db_text_add(t, ")");
        return db_text_query(db, t, &col, 1, on_known, ks, errstr, errstr_size);
}
