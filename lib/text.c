/* text.c: copying text into fixed buffers (see text.h). */
#include "text.h"

#include <string.h>

size_t text_copy(char *dst, size_t size, const char *src)
{
        size_t n = strlen(src);

        if (size > 0) {
                size_t k = n < size ? n : size - 1;

                memcpy(dst, src, k);
                dst[k] = '\0';
        }
        return n;
}

size_t text_int(char *dst, size_t size, long long n)
{
        char digits[TEXT_LL_MAX], *p = digits + sizeof(digits) - 1;
        /* The magnitude as unsigned: -LLONG_MIN does not fit in a long long. */
        unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;

        *p = '\0';
        do
                *--p = (char)('0' + u % 10);
        while ((u /= 10) > 0);
        if (n < 0)
                *--p = '-';
        return text_copy(dst, size, p);
}

int text_append(char *dst, size_t size, size_t *len, const char *src)
{
        size_t n = strlen(src), room;

        if (*len >= size)
                return n ? -1 : 0;
        room = size - 1 - *len;
        if (n > room) {
                memcpy(dst + *len, src, room);
                *len += room;
                dst[*len] = '\0';
                return -1;
        }
        memcpy(dst + *len, src, n + 1);
        *len += n;
        return 0;
}
