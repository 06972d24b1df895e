/*
 * receiver_config.c: the receiver's own checks of its configuration, beyond the settings
 * table's (lib/settings.c): the listening addresses, the warning for a Tencent endpoint
 * reachable without a path token or allowlist, and each vendor module's check.
 */
#include "receiver.h"
#include "receiver_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "settings.h"
#include "vendor.h"

int receiver_listen_addr(const char *key, const char *addr, long long port,
                         struct sockaddr_storage *ss, char *errstr, size_t errstr_size)
{
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        memset(ss, 0, sizeof(*ss));
        if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port = htons((uint16_t)port);
                return 0;
        }
        if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons((uint16_t)port);
                return 0;
        }
        snprintf(errstr, errstr_size, "%s: \"%s\" is not an IP address", key, addr);
        return -1;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/*
 * Tencent's signature covers only t: a captured (t, sign) verifies for the whole grace, so on a
 * reachable address the path token or the source allowlist is what keeps forged callbacks
 * (a moderation "Block" bans an anchor) out. Said at every start and by --check-config.
 */
static void warn_if_exposed(const struct settings *s, const struct sockaddr_storage *ss)
{
        bool has_token = s->tencent_path_token && *s->tencent_path_token;
        bool has_allowlist = s->tencent_allow_ips && *s->tencent_allow_ips;

        if (is_loopback(ss) || has_token || has_allowlist)
                return;
        fprintf(stderr,
                "liveflow-receiver: warning: LIVEFLOW_HTTP_ADDR=%s is not loopback and neither "
                "LIVEFLOW_TENCENT_PATH_TOKEN nor LIVEFLOW_TENCENT_ALLOW_IPS is set: a captured "
                "Tencent callback can be replayed with other contents for "
                "LIVEFLOW_TENCENT_GRACE_S=%lld s (see README, production)\n",
                s->http_addr, s->tencent_grace_s);
}

int receiver_check_config(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct sockaddr_storage ss;

        if (log_level_parse(s->log_level) == -1) {
                snprintf(errstr, errstr_size,
                         "LIVEFLOW_LOG_LEVEL: \"%s\" is not error, warn, info or debug",
                         s->log_level);
                return -1;
        }
        if (receiver_listen_addr("LIVEFLOW_HTTP_ADDR", s->http_addr, s->http_port, &ss, errstr,
                                 errstr_size) == -1)
                return -1;
        warn_if_exposed(s, &ss);
        if (inet_pton(AF_INET, s->admin_addr, &((struct sockaddr_in *)&ss)->sin_addr) != 1) {
                snprintf(errstr, errstr_size, "LIVEFLOW_ADMIN_ADDR: \"%s\" is not an IPv4 address",
                         s->admin_addr);
                return -1;
        }
        for (size_t i = 0; vendor_modules[i]; i++)
                if (vendor_modules[i]->check_config &&
                    vendor_modules[i]->check_config(s, errstr, errstr_size) == -1)
                        return -1;
        return 0;
}
