/*
 * routes.h: the receiver's URL matching: the callers' endpoints (vendor_table[]) and the
 * probes, their methods and metric labels.
 */
#ifndef LIVEFLOW_RECEIVER_ROUTES_H
#define LIVEFLOW_RECEIVER_ROUTES_H

#include <stdbool.h>

/* What the receiver does with a matched request. */
enum route_id {
        ROUTE_VENDOR, /* a caller's endpoint: a row of vendor_table[] (vendor.h) */
        ROUTE_HEALTHZ,
        ROUTE_READYZ,
        ROUTE_METRICS,
};

/* What may follow a route's path. */
enum route_suffix {
        ROUTE_EXACT,   /* nothing: the path is matched exactly */
        ROUTE_TOKEN,   /* optionally "/" + a secret path token (kept out of the logs) */
        ROUTE_SUBPATH, /* "/" + the rest of the path, handed to the endpoint (e.g. /v1/admin/...) */
};

struct route {
        const char *path; /* matched exactly, or as the prefix of suffix */
        enum route_suffix suffix;
        const char *allow;    /* accepted methods, as the Allow header lists them */
        const char *endpoint; /* the endpoint label of liveflow_receiver_requests_total */
        const char *vendor;   /* the vendor label, or "-" for the probes */
        enum route_id id;
};

/**
 * @brief Finds the route of url (a path: libmicrohttpd has already split off the query).
 * @param suffix receives, for a ROUTE_TOKEN or ROUTE_SUBPATH route, what follows path + "/"
 *        ("" when nothing does); it points into url. May be NULL.
 * @returns a vendor row's route or a probe's, or NULL when no route matches (404).
 */
const struct route *routes_match(const char *url, const char **suffix);

/** @brief True when r accepts method; HEAD is accepted wherever GET is. */
bool route_allows(const struct route *r, const char *method);

#endif
