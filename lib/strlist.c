/* strlist.c: comma-separated setting values (see strlist.h). */
#include "strlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_blank(char c)
{
        return c == ' ' || c == '\t';
}

int strlist_each(const char *list, int (*fn)(const char *item, size_t len, void *arg), void *arg)
{
        const char *p = list;

        while (p && *p) {
                size_t len = strcspn(p, ",");
                const char *start = p, *end = p + len;

                p = *end ? end + 1 : end;
                while (start < end && is_blank(*start))
                        start++;
                while (end > start && is_blank(end[-1]))
                        end--;
                if (end > start && fn(start, (size_t)(end - start), arg) == -1)
                        return -1;
        }
        return 0;
}

struct copier {
        char ***items;
        size_t *cnt;
        size_t max;
        const char *setting, *what;
        char *errstr;
        size_t errstr_size;
};

static int copy_item(const char *item, size_t len, void *arg)
{
        struct copier *c = arg;
        char **items;

        if (len > c->max) {
                snprintf(c->errstr, c->errstr_size, "%s: %s %zu is longer than %zu bytes",
                         c->setting, c->what, *c->cnt + 1, c->max);
                return -1;
        }
        if (!(items = realloc(*c->items, (*c->cnt + 1) * sizeof(*items)))) {
                snprintf(c->errstr, c->errstr_size, "out of memory");
                return -1;
        }
        *c->items = items;
        if (!(items[*c->cnt] = strndup(item, len))) {
                snprintf(c->errstr, c->errstr_size, "out of memory");
                return -1;
        }
        (*c->cnt)++;
        return 0;
}

int strlist_copy(const char *list, size_t max, const char *setting, const char *what, char ***items,
                 size_t *cnt, char *errstr, size_t errstr_size)
{
        struct copier c = {items, cnt, max, setting, what, errstr, errstr_size};

        return strlist_each(list, copy_item, &c);
}

void strlist_free(char **items, size_t cnt)
{
        for (size_t i = 0; i < cnt; i++) {
                explicit_bzero(items[i], strlen(items[i]));
                free(items[i]);
        }
        free(items);
}
