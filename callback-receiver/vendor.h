/*
 * vendor.h: the receiver's table of callers. Each endpoint is one row (its route, how it is
 * admitted, verified and mapped, what happens when Kafka cannot take its event, what it is
 * answered); each vendor is one module, made once at startup and shared by its rows. Adding
 * a vendor is one module, one entry in vendor_modules[] and a row in vendor_table[].
 */
#ifndef LIVEFLOW_RECEIVER_VENDOR_H
#define LIVEFLOW_RECEIVER_VENDOR_H

#include <stdbool.h>
#include <stddef.h>

#include "routes.h"
#include "webhook.h"

struct settings;
struct metrics;

/* What the receiver does when Kafka did not acknowledge an endpoint's event. */
enum vendor_kafka_down {
        VENDOR_ANSWER_503, /* the caller retries: 503 with Retry-After */
        VENDOR_SPOOL,      /* the caller never retries (SRS): spool locally, answer 200 */
};

/* A vendor's state: made by open() from the settings, handed to its rows' functions. */
struct vendor_module {
        const char *name;
        /** Checks the module's settings without connecting (--check-config); NULL: none. */
        int (*check_config)(const struct settings *s, char *errstr, size_t errstr_size);
        /** Makes the state (s and metrics are borrowed for its life); NULL with errstr. */
        void *(*open)(const struct settings *s, struct metrics *metrics, char *errstr,
                      size_t errstr_size);
        /** Frees the state once no HTTP thread uses it; NULL is fine. */
        void (*close)(void *state);
        /** Writes " name=value" facts for the ready line; NULL: nothing. */
        void (*describe)(const void *state, char *out, size_t out_size);
};

/* One endpoint. The functions get the state of module and may be called from any HTTP thread. */
struct vendor {
        struct route route; /* route.id is ROUTE_VENDOR */
        const struct vendor_module *module;
        /** The configured secret path token of a ROUTE_TOKEN route, or NULL / "" for none. */
        const char *(*path_token)(const struct settings *s);
        /**
         * Before the body is read: headers, query and source only (req->body is NULL).
         * @returns 0, or -1 with v set (the request is answered v->status). NULL: admitted.
         */
        int (*admit)(void *state, const struct webhook_request *req, struct webhook_verdict *v);
        /** Verifies the whole request and fills ev (see webhook.h); 0, or -1 with v set. */
        int (*map)(void *state, const struct webhook_request *req, struct webhook_event *ev,
                   struct webhook_verdict *v);
        /**
         * Instead of map, for a request that carries several events (POST /v1/events): fills
         * batch (each item's raw is its event's own text); 0, or -1 with v set. The one answer
         * waits for the broker's ack of every event. NULL: the endpoint uses map.
         */
        int (*map_batch)(void *state, const struct webhook_request *req,
                         struct webhook_batch *batch, struct webhook_verdict *v);
        /**
         * Optional, with lookup_start: whether map would block on an anchor lookup; 1 with
         * the anchor id copied into anchor_id (size bytes), else 0.
         */
        int (*lookup_wanted)(void *state, const struct webhook_request *req, char *anchor_id,
                             size_t size);
        /**
         * Starts that lookup off the HTTP thread (the receiver has suspended the connection):
         * done(arg) runs once, from another thread, when ans is filled; map then gets ans as
         * req->anchor_answer.
         */
        void (*lookup_start)(void *state, const char *anchor_id, const char *trace_id,
                             struct anchor_answer *ans, void (*done)(void *arg), void *arg);
        /** The endpoint's body limit from the settings; NULL: LIVEFLOW_MAX_BODY_BYTES. */
        long long (*body_limit)(const struct settings *s);
        /** After the broker's ack of ev (the body may be gone); NULL: nothing to remember. */
        void (*acked)(void *state, const struct webhook_request *req,
                      const struct webhook_event *ev);
        enum vendor_kafka_down when_kafka_down;
        bool is_any_content_type; /* the vendor names no Content-Type: the body is JSON anyway */
        const char *ok_body;      /* the JSON body of a 200; NULL: {"code":0} */
};

/* The endpoints, in matching order, and how many there are. */
extern const struct vendor vendor_table[];
extern const size_t vendor_count;

/* Every module, NULL-terminated; the index of a module here is its state's index. */
extern const struct vendor_module *const vendor_modules[];

/** @brief The vendor row whose route r is, or NULL (a probe). */
const struct vendor *vendor_of(const struct route *r);

/** @brief The index of m in vendor_modules[] (m must be listed there). */
size_t vendor_module_index(const struct vendor_module *m);

#endif
