/* fields.c: reading vendor JSON the way vendors send it (see fields.h). */
#include "fields.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int fields_parse_decimal(const char *s, int64_t *out)
{
        char *end;
        long long n;

        if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
                return -1;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno || *end)
                return -1;
        *out = n;
        return 0;
}

int fields_int64(const json_t *v, int64_t *out)
{
        if (json_is_integer(v)) {
                *out = json_integer_value(v);
                return 0;
        }
        return json_is_string(v) ? fields_parse_decimal(json_string_value(v), out) : -1;
}

const char *fields_text(const json_t *v, char *buf, size_t size)
{
        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v)) {
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return buf;
        }
        return NULL;
}

int fields_put(json_t *p, const char *name, const char *s)
{
        if (!s || !*s)
                return 0;
        return json_object_set_new(p, name, json_string(s));
}

int fields_put_int(json_t *p, const char *name, int64_t n)
{
        return json_object_set_new(p, name, json_integer(n));
}

const char *fields_file_format(const char *name, char *buf, size_t size)
{
        const char *slash = strrchr(name, '/');
        const char *dot = strrchr(slash ? slash : name, '.');
        size_t len;

        if (!dot || !dot[1] || (len = strlen(dot + 1)) >= size)
                return NULL;
        for (size_t i = 0; i <= len; i++)
                buf[i] = (char)tolower((unsigned char)dot[1 + i]);
        return strcmp(buf, "m3u8") == 0 ? "hls" : buf;
}

size_t fields_utf8_chars(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += ((unsigned char)*s & 0xC0) != 0x80;
        return n;
}

static int hex_value(unsigned char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c |= 0x20; /* lowercase */
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

char *fields_form_decode(const char *s, size_t len)
{
        char *out = malloc(len + 1);
        size_t n = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                int hi, lo;

                if (s[i] == '%' && i + 2 < len && (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
                    (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
                        out[n++] = (char)(hi << 4 | lo);
                        i += 2;
                } else {
                        out[n++] = s[i] == '+' ? ' ' : s[i];
                }
        }
        out[n] = '\0';
        /* One check for both: a NUL would cut the string, and Avro strings must be UTF-8. */
        if (!codec_is_clean_utf8((const unsigned char *)out, n)) {
                free(out);
                return NULL;
        }
        return out;
}
