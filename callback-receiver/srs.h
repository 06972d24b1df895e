/* srs.h: SRS http_hooks callbacks: token, on_publish authorization, and mapping to events. */
#ifndef LIVEFLOW_RECEIVER_SRS_H
#define LIVEFLOW_RECEIVER_SRS_H

#include <stddef.h>

#include "webhook.h"

struct settings;
struct metrics;

/* Every topic srs_map() may choose, NULL-terminated. */
extern const char *const srs_topics[];

/* The SRS endpoint's state: the token, the anti-leech keys, the anchor status lookups. */
struct srs;

/**
 * @brief Makes the SRS endpoint from s (LIVEFLOW_SRS_TOKEN, ...). s and metrics are
 * borrowed and must outlive it. @returns NULL with errstr set on a bad setting.
 */
struct srs *srs_new(const struct settings *s, struct metrics *metrics, char *errstr,
                    size_t errstr_size);

/** @brief Frees the endpoint; NULL is fine. */
void srs_destroy(struct srs *srs);

/**
 * @brief Verifies one SRS callback and fills ev, as tencent_map() does (see webhook.h).
 * @returns 0, or -1 with v set (v->status 200: accepted already, nothing to produce).
 * Thread-safe.
 */
__attribute__((warn_unused_result)) int srs_map(struct srs *srs, const struct webhook_request *req,
                                                struct webhook_event *ev,
                                                struct webhook_verdict *v);

#endif
