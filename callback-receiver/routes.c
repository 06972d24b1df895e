/* routes.c: the table of the receiver's endpoints; a new vendor is one row here. */
#include "routes.h"

#include <string.h>

static const struct route routes[] = {
        {"/callbacks/tencent", ROUTE_TOKEN, "POST", "tencent", "tencent", ROUTE_TENCENT},
        {"/callbacks/srs", ROUTE_EXACT, "POST", "srs", "srs", ROUTE_SRS},
        {"/v1/rewards", ROUTE_EXACT, "POST", "rewards", "internal", ROUTE_REWARDS},
        {"/v1/withdrawals", ROUTE_EXACT, "POST", "withdrawals", "internal", ROUTE_WITHDRAWALS},
        {"/v1/admin", ROUTE_SUBPATH, "POST", "admin", "admin", ROUTE_ADMIN},
        {"/healthz", ROUTE_EXACT, "GET, HEAD", "healthz", "-", ROUTE_HEALTHZ},
        {"/readyz", ROUTE_EXACT, "GET, HEAD", "readyz", "-", ROUTE_READYZ},
        {"/metrics", ROUTE_EXACT, "GET, HEAD", "metrics", "-", ROUTE_METRICS},
};

const struct route *routes_match(const char *url, const char **suffix)
{
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
                const struct route *r = &routes[i];
                size_t len = strlen(r->path);

                if (strncmp(url, r->path, len) != 0)
                        continue;
                if (url[len] == '\0' || (r->suffix != ROUTE_EXACT && url[len] == '/')) {
                        if (suffix)
                                *suffix = url[len] ? url + len + 1 : "";
                        return r;
                }
        }
        return NULL;
}

bool route_allows(const struct route *r, const char *method)
{
        const char *p = r->allow;
        size_t len = strlen(method);

        if (strcmp(method, "HEAD") == 0 && route_allows(r, "GET"))
                return true;
        while (*p) {
                size_t n = strcspn(p, ", ");

                if (n == len && strncmp(p, method, len) == 0)
                        return true;
                p += n;
                p += strspn(p, ", ");
        }
        return false;
}
