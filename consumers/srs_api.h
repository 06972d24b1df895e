/*
 * srs_api.h: SRS for vendor_api.c (LIVEFLOW_SRS_API_ENDPOINT, the HTTP API of SRS 3 to 6;
 * the caller checks that it is set).
 */
#ifndef LIVEFLOW_SRS_API_H
#define LIVEFLOW_SRS_API_H

#include <stddef.h>

#include "vendor_api.h"

/**
 * @brief Kicks the publisher of stream_id ("stream" or "app/stream"): finds it in
 * GET /api/v1/clients, then DELETE /api/v1/clients/{id}.
 * @returns VENDOR_DROP_DONE, VENDOR_DROP_NOT_LIVE (no such publisher, or it left meanwhile),
 * VENDOR_DROP_RETRY or VENDOR_DROP_FAILED with errstr.
 */
__attribute__((warn_unused_result)) enum vendor_drop
srs_api_kick(struct vendor_api *va, const char *stream_id, char *errstr, size_t errstr_size);

/**
 * @brief Whether stream_id is listed in GET /api/v1/streams with an active publisher.
 * @returns VENDOR_STATE_LIVE, VENDOR_STATE_NOT_LIVE, or VENDOR_STATE_UNKNOWN with errstr.
 */
__attribute__((warn_unused_result)) enum vendor_state
srs_api_state(struct vendor_api *va, const char *stream_id, char *errstr, size_t errstr_size);

#endif
