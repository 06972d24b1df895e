/* routes.c: URL matching over the callers' endpoints (vendor_table[]) and the probes. */
#include "routes.h"

#include <string.h>

#include "vendor.h"

static const struct route probes[] = {
        {"/healthz", ROUTE_EXACT, "GET, HEAD", "healthz", "-", ROUTE_HEALTHZ},
        {"/readyz", ROUTE_EXACT, "GET, HEAD", "readyz", "-", ROUTE_READYZ},
        {"/metrics", ROUTE_EXACT, "GET, HEAD", "metrics", "-", ROUTE_METRICS},
};

static bool route_matches(const struct route *r, const char *url, const char **suffix)
{
        size_t len = strlen(r->path);

        if (strncmp(url, r->path, len) != 0)
                return false;
        if (url[len] == '\0' || (r->suffix != ROUTE_EXACT && url[len] == '/')) {
                if (suffix)
                        *suffix = url[len] ? url + len + 1 : "";
                return true;
        }
        return false;
}

const struct route *routes_match(const char *url, const char **suffix)
{
        for (size_t i = 0; i < vendor_count; i++)
                if (route_matches(&vendor_table[i].route, url, suffix))
                        return &vendor_table[i].route;
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
                if (route_matches(&probes[i], url, suffix))
                        return &probes[i];
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
