/* routes.c: the table of the receiver's endpoints; a new vendor is one row here. */
#include "routes.h"

#include <string.h>

static const struct route routes[] = {
        {"/callbacks/tencent", true, "POST", "tencent", "tencent", ROUTE_TENCENT},
        {"/healthz", false, "GET, HEAD", "healthz", "-", ROUTE_HEALTHZ},
        {"/readyz", false, "GET, HEAD", "readyz", "-", ROUTE_READYZ},
        {"/metrics", false, "GET, HEAD", "metrics", "-", ROUTE_METRICS},
};

const struct route *routes_match(const char *url, const char **token)
{
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
                const struct route *r = &routes[i];
                size_t len = strlen(r->path);

                if (strncmp(url, r->path, len) != 0)
                        continue;
                if (url[len] == '\0' || (r->has_token && url[len] == '/')) {
                        if (token)
                                *token = url[len] ? url + len + 1 : "";
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
