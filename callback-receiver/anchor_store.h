/*
 * anchor_store.h: an anchor's standing (active, suspended, banned) read on the HTTP thread
 * that needs it: Redis's status hash first (the audit consumer's projection), MySQL `anchors`
 * when Redis has no answer. Used by SRS's on_publish authorization.
 */
#ifndef LIVEFLOW_RECEIVER_ANCHOR_STORE_H
#define LIVEFLOW_RECEIVER_ANCHOR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct settings;
struct metrics;

/* An anchor's standing as the audit consumer records it. */
enum anchor_status {
        ANCHOR_ACTIVE,
        ANCHOR_SUSPENDED,
        ANCHOR_BANNED,
};

struct anchor_record {
        enum anchor_status status;
        int64_t suspended_until_ms; /* Unix ms; 0: no end recorded */
        const char *store;          /* who answered, for logs: a static string ("redis") */
};

/* What an anchor lookup could say. */
enum anchor_lookup_result {
        ANCHOR_LOOKUP_FOUND, /* *anchor is filled; an anchor no store has a record of is active */
        ANCHOR_LOOKUP_UNAVAILABLE, /* no store could answer: the caller's fail-open policy decides
                                    */
};

#define ANCHOR_ID_BYTES_MAX 256 /* 64 characters of up to 4 bytes (anchors.anchor_id) */

/* A lookup answered off the HTTP thread, kept by the request that waited for it. */
struct anchor_answer {
        char anchor_id[ANCHOR_ID_BYTES_MAX + 1]; /* what was looked up */
        enum anchor_lookup_result result;
        struct anchor_record record; /* with ANCHOR_LOOKUP_FOUND */
};

/*
 * How a caller learns an anchor's status. fn is called from the HTTP threads at once, so
 * it must be thread-safe; anchor_id and trace_id (for logs, may be NULL) are borrowed.
 */
struct anchor_lookup {
        enum anchor_lookup_result (*fn)(void *ctx, const char *anchor_id, const char *trace_id,
                                        struct anchor_record *anchor);
        void *ctx;
};

/* The stores and each HTTP thread's connections to them. */
struct anchor_store;

/**
 * @brief Checks LIVEFLOW_REDIS_URL and LIVEFLOW_MYSQL_URL of s, when set, without connecting.
 * @returns 0, or -1 with errstr naming the key.
 */
__attribute__((warn_unused_result)) int anchor_store_check_config(const struct settings *s,
                                                                  char *errstr, size_t errstr_size);

/**
 * @brief Makes the store from s: LIVEFLOW_REDIS_URL (LIVEFLOW_REDIS_TIMEOUT_MS),
 * LIVEFLOW_MYSQL_URL (LIVEFLOW_MYSQL_TIMEOUT_S), LIVEFLOW_SRS_STORE_RETRY_MS (a store that
 * failed is skipped that long by the thread that saw it fail). Connects nothing: each
 * thread opens its own connections on its first lookup. Registers
 * liveflow_receiver_srs_anchor_lookup_seconds and _srs_store_errors_total in metrics (may be
 * NULL). s and metrics are borrowed and must outlive it.
 * @returns the store (anchor_store_destroy() frees it), or NULL with errstr set.
 */
struct anchor_store *anchor_store_new(const struct settings *s, struct metrics *metrics,
                                      char *errstr, size_t errstr_size);

/**
 * @brief Frees the store and every thread's connections, so call it once no thread uses it
 * any more. NULL is fine.
 */
void anchor_store_destroy(struct anchor_store *as);

/** @brief True when at least one store is configured (else lookups are pointless). */
bool anchor_store_is_configured(const struct anchor_store *as);

/**
 * @brief The lookup over as (Redis, then MySQL). as is borrowed and must outlive every call.
 */
struct anchor_lookup anchor_store_lookup(struct anchor_store *as);

#endif
