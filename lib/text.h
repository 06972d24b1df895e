/*
 * text.h: copying text into fixed buffers, as snprintf(dst, size, "%s", src) would but without
 * its format machinery (~600 instructions a call in glibc, a few dozen here): for the request
 * path, where every callback copies its method, path, trace id and keys.
 */
#ifndef LIVEFLOW_TEXT_H
#define LIVEFLOW_TEXT_H

#include <stddef.h>

/**
 * @brief Copies src into dst[size] (cut to size - 1 bytes, always NUL-terminated when size > 0).
 * @returns strlen(src): the copy was cut when that is >= size, as snprintf's return says.
 */
size_t text_copy(char *dst, size_t size, const char *src);

/**
 * @brief Appends src to the text dst[0..*len) in dst[size] and advances *len (never past size -
 * 1; dst stays NUL-terminated). Successive calls build "a:b:c" as one snprintf("%s:%s:%s") would.
 * @returns 0, or -1 when src was cut.
 */
int text_append(char *dst, size_t size, size_t *len, const char *src);

/**
 * @brief The decimal text of n into dst[size] (as snprintf("%lld"), cut and NUL-terminated when
 * it does not fit; TEXT_LL_MAX always fits). @returns the length of the whole text.
 */
size_t text_int(char *dst, size_t size, long long n);

#define TEXT_LL_MAX 21 /* "-9223372036854775808" and its NUL */

#endif
