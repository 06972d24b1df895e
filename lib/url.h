/* url.h: parsing of the mysql:// and redis:// URLs liveflow is configured with. */
#ifndef LIVEFLOW_URL_H
#define LIVEFLOW_URL_H

#include <stddef.h>

struct mysql_url {
        char user[64];
        char password[128];
        char host[256];
        unsigned int port; /* 0 when a socket is used */
        char database[64];
        char socket[108]; /* from ?socket=, empty otherwise */
};

struct redis_url {
        char host[256];
        int port;
        int db;
        char password[128]; /* from redis://:pass@host, empty otherwise */
};

/**
 * @brief Parses mysql://user:pass@host:port/db or mysql://user:pass@/db?socket=/path.
 * @returns 0 on success, -1 with a message naming the problem in errstr.
 * Percent-escapes in user and password are decoded.
 */
__attribute__((warn_unused_result)) int url_parse_mysql(const char *url, struct mysql_url *out,
                                                        char *errstr, size_t errstr_size);

/**
 * @brief Parses redis://[:password@]host[:port][/db].
 * @returns 0 on success, -1 with a message in errstr.
 */
__attribute__((warn_unused_result)) int url_parse_redis(const char *url, struct redis_url *out,
                                                        char *errstr, size_t errstr_size);

#endif
