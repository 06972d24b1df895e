/*
 * vendor_api.h: asks the streaming vendor (Tencent CSS, SRS, Agora, Alibaba) to cut a stream
 * liveflow closed.
 */
#ifndef LIVEFLOW_VENDOR_API_H
#define LIVEFLOW_VENDOR_API_H

#include <stddef.h>

struct settings;

/* What a drop request came to: _DONE, _NOT_LIVE and _SKIPPED leave nothing to do. */
enum vendor_drop {
        VENDOR_DROP_DONE,     /* the vendor cut the stream */
        VENDOR_DROP_NOT_LIVE, /* the vendor says the stream is not (or no longer) live */
        VENDOR_DROP_SKIPPED,  /* no API configured for this vendor: nothing was sent */
        VENDOR_DROP_RETRY,    /* transient: timeout, connection, 5xx, throttling, garbled reply */
        VENDOR_DROP_FAILED,   /* the vendor refused (credentials, parameters): needs an operator */
};

struct vendor_api;

/**
 * @brief A client for the vendors' stream APIs, configured from the LIVEFLOW_TENCENT_* and
 * LIVEFLOW_SRS_API_ENDPOINT keys (which are read, not copied: s must outlive the client).
 * A vendor whose keys are missing is not an error here; its drops are skipped.
 * @returns a client the caller frees with vendor_api_destroy(), or NULL with errstr set.
 */
struct vendor_api *vendor_api_new(const struct settings *s, char *errstr, size_t errstr_size);

/** @brief Frees the client; NULL is fine. */
void vendor_api_destroy(struct vendor_api *va);

/**
 * @brief Asks `vendor` ("tencent", "srs", "agora" or "alibaba", the live_streams.vendor column)
 * to cut the push of stream_id: Tencent Cloud API 3.0 DropLiveStream; SRS's GET
 * /api/v1/clients to find the publisher and DELETE /api/v1/clients/{id}; an Agora kicking rule
 * on the channel (agora_api.h); Alibaba ForbidLiveStream (alibaba_api.h). Blocks for at most
 * LIVEFLOW_VENDOR_API_TIMEOUT_MS per HTTP request. Safe to repeat: a stream that is already gone is
 * VENDOR_DROP_NOT_LIVE. A vendor that is not configured (or unknown) is logged once and
 * VENDOR_DROP_SKIPPED. trace_id (may be NULL) goes into the log lines.
 * @returns the outcome; errstr says why for _RETRY and _FAILED.
 */
__attribute__((warn_unused_result)) enum vendor_drop
vendor_api_drop_stream(struct vendor_api *va, const char *vendor, const char *stream_id,
                       const char *trace_id, char *errstr, size_t errstr_size);

/* What the vendor says of a stream. */
enum vendor_state {
        VENDOR_STATE_LIVE,     /* the vendor has a publisher on it now */
        VENDOR_STATE_NOT_LIVE, /* the vendor says it is not live */
        VENDOR_STATE_UNKNOWN,  /* not asked (no API configured for the vendor) or no answer */
};

/**
 * @brief Asks `vendor` whether stream_id is live: Tencent Cloud API 3.0
 * DescribeLiveStreamState (StreamState active / inactive / forbid), SRS's GET
 * /api/v1/streams (listed with an active publisher), Agora's channel user list
 * (agora_api_state()) or Alibaba's DescribeLiveStreamsOnlineList (alibaba_api_state()). Blocks for
 * at most LIVEFLOW_VENDOR_API_TIMEOUT_MS per HTTP request. @returns the state; errstr says why for
 * VENDOR_STATE_UNKNOWN.
 */
__attribute__((warn_unused_result)) enum vendor_state
vendor_api_stream_state(struct vendor_api *va, const char *vendor, const char *stream_id,
                        const char *trace_id, char *errstr, size_t errstr_size);

/** @brief "live", "not_live" or "unknown". */
const char *vendor_state_name(enum vendor_state st);

/** @brief A readable name of an outcome ("done", "not_live", "skipped", "retry", "failed"). */
const char *vendor_drop_name(enum vendor_drop r);

/* One Tencent Cloud API 3.0 POST to sign; every pointer is borrowed for the call. */
struct tc3_request {
        const char *secret_id;
        const char *secret_key;
        const char *service;      /* "live" */
        const char *host;         /* the Host header as sent, e.g. "live.tencentcloudapi.com" */
        const char *content_type; /* the Content-Type header as sent */
        const char *payload;      /* the request body */
        size_t payload_len;
        long long timestamp; /* X-TC-Timestamp, Unix seconds; its UTC date is in the scope */
};

/**
 * @brief The Authorization header value of a TC3-HMAC-SHA256 signed POST to "/" with no query
 * string, signing the content-type and host headers: "TC3-HMAC-SHA256 Credential=<id>/<date>/
 * <service>/tc3_request, SignedHeaders=content-type;host, Signature=<64 hex>".
 * @returns 0, or -1 when out_size is too small or OpenSSL failed.
 */
__attribute__((warn_unused_result)) int vendor_api_tc3_authorization(const struct tc3_request *rq,
                                                                     char *out, size_t out_size);

#endif
