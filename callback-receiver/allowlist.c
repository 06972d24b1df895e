/* allowlist.c: CIDR matching of a peer address, IPv4 and IPv6, on 16-byte keys. */
#include "allowlist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* IPv4 is stored as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one comparison covers both. */
struct cidr {
        unsigned char addr[16];
        int prefix_bits;
};

struct allowlist {
        struct cidr *cidrs;
        size_t cnt;
};

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool prefix_matches(const unsigned char *a, const unsigned char *b, int bits)
{
        int bytes = bits / 8, rest = bits % 8;

        if (memcmp(a, b, (size_t)bytes) != 0)
                return false;
        return rest == 0 || ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest))) == 0;
}

/* One entry: an address with an optional /bits. */
static int parse_cidr(const char *text, struct cidr *c)
{
        char buf[64], *slash, *end;
        int max_bits;
        long bits;

        snprintf(buf, sizeof(buf), "%s", text);
        if ((slash = strchr(buf, '/')))
                *slash = '\0';
        if (inet_pton(AF_INET, buf, c->addr + 12) == 1) {
                memcpy(c->addr, v4_mapped, sizeof(v4_mapped));
                max_bits = 32;
        } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
                max_bits = 128;
        } else {
                return -1;
        }
        bits = max_bits;
        if (slash && (!isdigit((unsigned char)slash[1]) ||
                      (bits = strtol(slash + 1, &end, 10)) > max_bits || *end))
                return -1;
        c->prefix_bits = (int)bits + (max_bits == 32 ? 96 : 0);
        return 0;
}

/* Adds the entry p[0..len), blanks trimmed; an empty entry is skipped. */
static int add_entry(struct allowlist *al, const char *key, const char *p, size_t len, char *errstr,
                     size_t errstr_size)
{
        char entry[64];
        size_t start = 0, end = len;

        while (start < end && isspace((unsigned char)p[start]))
                start++;
        while (end > start && isspace((unsigned char)p[end - 1]))
                end--;
        if (start == end)
                return 0;
        if (end - start < sizeof(entry)) {
                memcpy(entry, p + start, end - start);
                entry[end - start] = '\0';
                if (parse_cidr(entry, &al->cidrs[al->cnt]) == 0) {
                        al->cnt++;
                        return 0;
                }
        }
        snprintf(errstr, errstr_size, "%s: \"%.*s\" is not an address or CIDR block", key,
                 (int)(end - start), p + start);
        return -1;
}

struct allowlist *allowlist_new(const char *key, const char *cidrs, char *errstr,
                                size_t errstr_size)
{
        struct allowlist *al = calloc(1, sizeof(*al));
        const char *p = cidrs;

        /* Every entry takes at least two bytes with its comma: that bounds the count. */
        if (!al || (cidrs && !(al->cidrs = calloc(strlen(cidrs) / 2 + 1, sizeof(struct cidr))))) {
                free(al);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        while (p && *p) {
                size_t len = strcspn(p, ",");

                if (add_entry(al, key, p, len, errstr, errstr_size) == -1) {
                        allowlist_destroy(al);
                        return NULL;
                }
                p += len + (p[len] == ',');
        }
        return al;
}

void allowlist_destroy(struct allowlist *al)
{
        if (!al)
                return;
        free(al->cidrs);
        free(al);
}

bool allowlist_allows(const struct allowlist *al, const struct sockaddr *addr)
{
        unsigned char key[16];

        if (!al->cnt)
                return true;
        if (!addr)
                return false;
        if (addr->sa_family == AF_INET) {
                memcpy(key, v4_mapped, sizeof(v4_mapped));
                memcpy(key + 12, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
        } else if (addr->sa_family == AF_INET6) {
                memcpy(key, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, 16);
        } else {
                return false;
        }
        for (size_t i = 0; i < al->cnt; i++)
                if (prefix_matches(key, al->cidrs[i].addr, al->cidrs[i].prefix_bits))
                        return true;
        return false;
}
