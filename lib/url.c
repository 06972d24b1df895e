/* url.c: strict parsers for the database URLs in LIVEFLOW_MYSQL_URL and LIVEFLOW_REDIS_URL. */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies [s, s+n) into dst, decoding %XX escapes; -1 when it does not fit or is malformed. */
static int copy_decoded(char *dst, size_t dst_size, const char *s, size_t n)
{
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (c == '%') {
                        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                            !isxdigit((unsigned char)s[i + 2]))
                                return -1;
                        char hex[3] = {s[i + 1], s[i + 2], 0};
                        c = (char)strtol(hex, NULL, 16);
                        i += 2;
                }
                if (o + 1 >= dst_size)
                        return -1;
                dst[o++] = c;
        }
        dst[o] = '\0';
        return 0;
}

static int parse_port(const char *s, size_t n, unsigned int *port)
{
        unsigned long v = 0;

        if (n == 0 || n > 5)
                return -1;
        for (size_t i = 0; i < n; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return -1;
                v = v * 10 + (unsigned long)(s[i] - '0');
        }
        if (v == 0 || v > 65535)
                return -1;
        *port = (unsigned int)v;
        return 0;
}

/* Splits "[user[:pass]@]host[:port]" into its parts; host may be empty. */
static int parse_authority(const char *a, size_t n, char *user, size_t user_size, char *pass,
                           size_t pass_size, char *host, size_t host_size, unsigned int *port)
{
        const char *at = memrchr(a, '@', n);
        const char *hp = a;
        size_t hn = n;

        if (at) {
                const char *colon = memchr(a, ':', (size_t)(at - a));
                size_t un = colon ? (size_t)(colon - a) : (size_t)(at - a);

                if (copy_decoded(user, user_size, a, un) == -1)
                        return -1;
                if (colon &&
                    copy_decoded(pass, pass_size, colon + 1, (size_t)(at - colon - 1)) == -1)
                        return -1;
                hp = at + 1;
                hn = n - (size_t)(hp - a);
        }
        const char *pc = memrchr(hp, ':', hn);
        size_t hostn = pc ? (size_t)(pc - hp) : hn;

        if (pc && parse_port(pc + 1, hn - hostn - 1, port) == -1)
                return -1;
        if (hostn + 1 > host_size)
                return -1;
        memcpy(host, hp, hostn);
        host[hostn] = '\0';
        return 0;
}

/* Copies url with any password replaced by "***", so error messages never leak it. */
static const char *redact(const char *url, char *out, size_t out_size)
{
        const char *scheme = url ? strstr(url, "://") : NULL;
        const char *at, *colon;

        snprintf(out, out_size, "%s", url ? url : "");
        if (!scheme || !(at = strchr(scheme + 3, '@')))
                return out;
        colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
        if (colon)
                snprintf(out, out_size, "%.*s***%s", (int)(colon + 1 - url), url, at);
        return out;
}

int url_parse_mysql(const char *url, struct mysql_url *out, char *errstr, size_t errstr_size)
{
        static const char scheme[] = "mysql://";
        const char *p, *slash, *query;
        char shown[512];

        memset(out, 0, sizeof(*out));
        out->port = 3306;
        if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
                snprintf(errstr, errstr_size, "\"%s\" is not a mysql:// URL",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        p = url + sizeof(scheme) - 1;
        slash = strchr(p, '/');
        if (!slash) {
                snprintf(errstr, errstr_size,
                         "\"%s\" names no database (mysql://user:pass@host:port/db)",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        if (parse_authority(p, (size_t)(slash - p), out->user, sizeof(out->user), out->password,
                            sizeof(out->password), out->host, sizeof(out->host),
                            &out->port) == -1) {
                snprintf(errstr, errstr_size, "\"%s\": bad user, host or port",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        query = strchr(slash, '?');
        size_t dbn = query ? (size_t)(query - slash - 1) : strlen(slash + 1);

        if (dbn == 0 || copy_decoded(out->database, sizeof(out->database), slash + 1, dbn) == -1) {
                snprintf(errstr, errstr_size, "\"%s\": bad or missing database name",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        if (query) {
                if (strncmp(query, "?socket=", 8) != 0 ||
                    copy_decoded(out->socket, sizeof(out->socket), query + 8, strlen(query + 8)) ==
                            -1 ||
                    out->socket[0] != '/') {
                        snprintf(errstr, errstr_size,
                                 "\"%s\": only ?socket=/absolute/path is understood",
                                 redact(url, shown, sizeof(shown)));
                        return -1;
                }
                out->port = 0;
        }
        if (!out->socket[0] && !out->host[0]) {
                snprintf(errstr, errstr_size, "\"%s\" names neither a host nor a socket",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        if (!out->user[0]) {
                snprintf(errstr, errstr_size, "\"%s\" names no user",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        return 0;
}

int url_parse_redis(const char *url, struct redis_url *out, char *errstr, size_t errstr_size)
{
        static const char scheme[] = "redis://";
        char user[64] = "", shown[512];
        unsigned int port = 6379;
        const char *p, *slash;

        memset(out, 0, sizeof(*out));
        if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
                snprintf(errstr, errstr_size, "\"%s\" is not a redis:// URL",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        p = url + sizeof(scheme) - 1;
        slash = strchr(p, '/');
        size_t an = slash ? (size_t)(slash - p) : strlen(p);

        if (parse_authority(p, an, user, sizeof(user), out->password, sizeof(out->password),
                            out->host, sizeof(out->host), &port) == -1 ||
            !out->host[0]) {
                snprintf(errstr, errstr_size, "\"%s\": bad host or port",
                         redact(url, shown, sizeof(shown)));
                return -1;
        }
        out->port = (int)port;
        if (slash && slash[1]) {
                char *end;
                long db = strtol(slash + 1, &end, 10);

                if (*end || db < 0 || db > 15) {
                        snprintf(errstr, errstr_size, "\"%s\": database must be 0..15",
                                 redact(url, shown, sizeof(shown)));
                        return -1;
                }
                out->db = (int)db;
        }
        return 0;
}
