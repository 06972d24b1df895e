/* strlist.c: comma-separated setting values (see strlist.h). */
#include "strlist.h"

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
