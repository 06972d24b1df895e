/* routes.h: the receiver's URL table: which paths exist, their methods and metric labels. */
#ifndef LIVEFLOW_RECEIVER_ROUTES_H
#define LIVEFLOW_RECEIVER_ROUTES_H

#include <stdbool.h>

/* What the receiver does with a matched request. */
enum route_id {
        ROUTE_TENCENT, /* a Tencent CSS callback */
        ROUTE_HEALTHZ,
        ROUTE_READYZ,
        ROUTE_METRICS,
};

struct route {
        const char *path;     /* matched exactly */
        bool has_token;       /* also matches path + "/" + token (a secret in the URL) */
        const char *allow;    /* accepted methods, as the Allow header lists them */
        const char *endpoint; /* the endpoint label of liveflow_receiver_requests_total */
        const char *vendor;   /* the vendor label, or "-" for the probes */
        enum route_id id;
};

/**
 * @brief Finds the route of url (a path: libmicrohttpd has already split off the query).
 * @param token receives, for a has_token route, what follows path + "/" ("" when nothing
 *        does); it points into url. May be NULL.
 * @returns a row of the static table, or NULL when no route matches (404).
 */
const struct route *routes_match(const char *url, const char **token);

/** @brief True when r accepts method; HEAD is accepted wherever GET is. */
bool route_allows(const struct route *r, const char *method);

#endif
