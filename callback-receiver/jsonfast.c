/* jsonfast.c: see jsonfast.h. */
#include "jsonfast.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAST_DIGITS_MAX  15  /* every integer of up to 15 digits is exact as a double */
#define FAST_MEMBERS_MAX 64  /* above, duplicate keys are left to jansson's hash table */
#define INT_TAG          'i' /* a jansson integer beyond 2^53, kept as cJSON raw text */
#define REAL_TAG         'r' /* a jansson real: neither an integer nor text */

/* The length of the valid UTF-8 sequence at s (jansson's rules: no overlong form, no
 * surrogate, nothing above U+10FFFF); 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
        size_t n;
        uint32_t cp;

        if (s[0] >= 0xC2 && s[0] <= 0xDF) {
                n = 2;
                cp = s[0] & 0x1F;
        } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
                n = 3;
                cp = s[0] & 0x0F;
        } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
                n = 4;
                cp = s[0] & 0x07;
        } else {
                return 0;
        }
        if (n > avail)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        return n;
}

/* The 4 hex digits of a \u escape are there and not U+0000 (cJSON reads a bad digit as 0). */
static bool unicode_escape_ok(const unsigned char *hex, size_t avail)
{
        if (avail < 4 || memcmp(hex, "0000", 4) == 0)
                return false;
        for (int i = 0; i < 4; i++)
                if (!isxdigit(hex[i]))
                        return false;
        return true;
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* A byte of w is zero. */
static uint64_t has_zero(uint64_t w)
{
        return (w - ONES) & ~w & HIGHS;
}

/* The 8 bytes at p are printable ASCII, none '"' or '\\': nothing a string needs to look at. */
static bool is_plain8(const unsigned char *p)
{
        uint64_t w;

        memcpy(&w, p, sizeof(w));
        if (w & HIGHS)
                return false;
        /* no byte is 0x80 or more, so a byte below 0x20 is one that borrows here */
        return !(((w - 0x20 * ONES) & ~w & HIGHS) | has_zero(w ^ ('"' * ONES)) |
                 has_zero(w ^ ('\\' * ONES)));
}

/*
 * True when cJSON and jansson read b[0..len) alike: UTF-8 valid, no control character but
 * JSON's whitespace outside strings and none inside, only JSON's escapes (a \u with four hex
 * digits, not "\u0000"), and every number an
 * integer of at most FAST_DIGITS_MAX digits in JSON's own grammar (no leading zero).
 * A false is never wrong, only slower: jansson then parses the body.
 */
static bool reads_alike(const unsigned char *b, size_t len)
{
        size_t i = 0;

        while (i < len) {
                unsigned char c = b[i];

                if (c == '"') { /* a string, to its closing quote */
                        for (i++;; i++) {
                                /* most bytes of a string are printable ASCII: 8 at a time */
                                while (i + 8 <= len && is_plain8(b + i))
                                        i += 8;
                                while (i < len && b[i] >= 0x20 && b[i] < 0x80 && b[i] != '"' &&
                                       b[i] != '\\')
                                        i++;
                                if (i >= len)
                                        return false; /* not closed */
                                c = b[i];
                                if (c == '"')
                                        break;
                                if (c == '\\') {
                                        if (i + 1 >= len || !b[i + 1] ||
                                            !strchr("\"\\/bfnrtu", b[i + 1]))
                                                return false;
                                        if (b[i + 1] == 'u' &&
                                            !unicode_escape_ok(b + i + 2, len - i - 2))
                                                return false;
                                        i++;
                                } else if (c < 0x20) {
                                        return false;
                                } else { /* c >= 0x80 */
                                        size_t n = utf8_len(b + i, len - i);

                                        if (!n)
                                                return false;
                                        i += n - 1;
                                }
                        }
                        i++;
                } else if (c == '-' || (c >= '0' && c <= '9')) {
                        size_t j = i + (c == '-'), digits = 0;

                        if (j >= len || b[j] < '0' || b[j] > '9')
                                return false;
                        if (b[j] == '0') {
                                j++;
                                digits = 1;
                        } else {
                                for (; j < len && b[j] >= '0' && b[j] <= '9'; j++)
                                        digits++;
                        }
                        if (digits > FAST_DIGITS_MAX ||
                            (j < len && (strchr(".eE+-", b[j]) || (b[j] >= '0' && b[j] <= '9'))))
                                return false;
                        i = j;
                } else if (c >= 0x80 ||
                           (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')) {
                        return false;
                } else {
                        i++;
                }
        }
        return true;
}

/* cJSON_IsObject() and the like, without a call into the library per member. */
static bool is_type(const cJSON *v, int type)
{
        return (v->type & 0xFF) == type;
}

/* A key's first two bytes: equal keys have equal tags. */
static unsigned int key_tag(const char *k)
{
        return (unsigned char)k[0] | (k[0] ? (unsigned int)(unsigned char)k[1] << 8 : 0);
}

/*
 * True when no object of the tree holds a key twice (and none is too wide to check here). Keys
 * are compared only when their tags are equal, and the tags only when a bitmap of them says two
 * may be: most objects need no strcmp() at all.
 */
static bool keys_unique(const cJSON *node)
{
        unsigned int tags[FAST_MEMBERS_MAX];
        const cJSON *members[FAST_MEMBERS_MAX];
        bool is_object = is_type(node, cJSON_Object);
        uint64_t seen = 0;
        size_t n = 0;

        for (const cJSON *a = node->child; a; a = a->next) {
                if (is_object) {
                        unsigned int tag = key_tag(a->string);
                        uint64_t bit = (uint64_t)1 << ((tag ^ tag >> 8 ^ tag >> 5) & 63);

                        if (n == FAST_MEMBERS_MAX)
                                return false;
                        if (seen & bit)
                                for (size_t i = 0; i < n; i++)
                                        if (tags[i] == tag &&
                                            strcmp(members[i]->string, a->string) == 0)
                                                return false;
                        seen |= bit;
                        tags[n] = tag;
                        members[n++] = a;
                }
                if ((is_type(a, cJSON_Object) || is_type(a, cJSON_Array)) && !keys_unique(a))
                        return false;
        }
        return true;
}

/* Only whitespace from s to end. */
static bool only_space(const char *s, const char *end)
{
        for (; s < end; s++)
                if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
                        return false;
        return true;
}

static cJSON *tagged_raw(char tag, const char *text)
{
        char buf[64];

        snprintf(buf, sizeof(buf), "%c%s", tag, text);
        return cJSON_CreateRaw(buf);
}

/* jansson's tree as cJSON: integers beyond 2^53 and reals as tagged raw text. */
static cJSON *from_jansson(const json_t *j)
{
        cJSON *c = NULL, *item;
        const char *key;
        const json_t *v;
        size_t i;
        char buf[32];

        switch (json_typeof(j)) {
        case JSON_OBJECT:
                if (!(c = cJSON_CreateObject()))
                        return NULL;
                json_object_foreach((json_t *)j, key, v)
                {
                        if (!(item = from_jansson(v)) || !cJSON_AddItemToObject(c, key, item)) {
                                cJSON_Delete(item);
                                cJSON_Delete(c);
                                return NULL;
                        }
                }
                return c;
        case JSON_ARRAY:
                if (!(c = cJSON_CreateArray()))
                        return NULL;
                json_array_foreach(j, i, v)
                {
                        if (!(item = from_jansson(v)) || !cJSON_AddItemToArray(c, item)) {
                                cJSON_Delete(item);
                                cJSON_Delete(c);
                                return NULL;
                        }
                }
                return c;
        case JSON_STRING:
                return cJSON_CreateString(json_string_value(j));
        case JSON_INTEGER: {
                json_int_t n = json_integer_value(j);

                if (n >= -(1LL << 53) && n <= (1LL << 53))
                        return cJSON_CreateNumber((double)n);
                snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, n);
                return tagged_raw(INT_TAG, buf);
        }
        case JSON_REAL:
                snprintf(buf, sizeof(buf), "%.17g", json_real_value(j));
                return tagged_raw(REAL_TAG, buf);
        case JSON_TRUE:
                return cJSON_CreateTrue();
        case JSON_FALSE:
                return cJSON_CreateFalse();
        case JSON_NULL:
                return cJSON_CreateNull();
        }
        return NULL;
}

/*
 * cJSON's blocks. A callback's tree is about 40 small blocks (a node and a string each), made
 * and freed within one request on one thread: they come from a per-thread arena, handed out in
 * order and taken back whole when its last block is freed (malloc and free cost ~9 k
 * instructions per callback). A block the arena has no room for, or one made on a thread whose
 * arena could not be made, is malloc's; free() takes back what is not the calling thread's
 * arena's. A tree must therefore be freed on the thread that made it, as every caller does (the
 * loop that parses a request deletes its tree before it returns). Not under AddressSanitizer,
 * which then sees every block's life.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_BYTES 0
#else
#define ARENA_BYTES (64 * 1024)
#endif

struct arena {
        char *base; /* ARENA_BYTES, made on first use; freed when the thread ends */
        size_t used, live;
};

static _Thread_local struct arena arena;
static pthread_key_t arena_key;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void *arena_alloc(size_t size)
{
        size_t need = (size + 15) & ~(size_t)15;

        if (!arena.base && (arena.base = malloc(ARENA_BYTES)) &&
            pthread_setspecific(arena_key, arena.base) != 0) {
                free(arena.base);
                arena.base = NULL;
        }
        if (!arena.base || need < size || need > ARENA_BYTES - arena.used)
                return malloc(size);
        arena.used += need;
        arena.live++;
        return arena.base + arena.used - need;
}

static void arena_free(void *p)
{
        if (arena.base && (char *)p >= arena.base && (char *)p < arena.base + ARENA_BYTES) {
                if (--arena.live == 0)
                        arena.used = 0;
                return;
        }
        free(p);
}

static void install_hooks(void)
{
        cJSON_Hooks hooks = {.malloc_fn = arena_alloc, .free_fn = arena_free};

        if (ARENA_BYTES && pthread_key_create(&arena_key, free) == 0)
                cJSON_InitHooks(&hooks);
}

int jsonfast_parse(const char *body, size_t len, cJSON **out, json_error_t *jerr)
{
        const char *end = NULL;
        cJSON *c = NULL;
        json_t *j;

        pthread_once(&hooks_once, install_hooks);
        if (!body)
                body = "";
        if (reads_alike((const unsigned char *)body, len) &&
            (c = cJSON_ParseWithLengthOpts(body, len, &end, 0)) && end &&
            only_space(end, body + len) && (cJSON_IsObject(c) || cJSON_IsArray(c)) &&
            keys_unique(c)) {
                *out = c;
                return 0;
        }
        cJSON_Delete(c);
        if (!(j = json_loadb(body, len, JSON_REJECT_DUPLICATES, jerr)))
                return -1;
        c = from_jansson(j);
        json_decref(j);
        if (!c)
                return -2;
        *out = c;
        return 0;
}

bool jsonfast_integer(const cJSON *v, int64_t *out)
{
        char *end;

        if (cJSON_IsNumber(v)) { /* only integers of at most 2^53 are numbers here */
                *out = (int64_t)v->valuedouble;
                return true;
        }
        if (cJSON_IsRaw(v) && v->valuestring && v->valuestring[0] == INT_TAG) {
                *out = strtoll(v->valuestring + 1, &end, 10);
                return true;
        }
        return false;
}
