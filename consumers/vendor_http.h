/*
 * vendor_http.h: the one HTTP client of the vendor APIs (consumers/vendor_api.c owns it), for
 * the per-vendor modules beside it (agora_api.c, alibaba_api.c).
 */
#ifndef LIVEFLOW_VENDOR_HTTP_H
#define LIVEFLOW_VENDOR_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

struct vendor_api;
struct settings;

/* One HTTP response, its body capped at 4 MiB. */
struct http_reply {
        long status;
        char *body; /* NUL-terminated once complete; NULL for an empty body */
        size_t len;
};

/**
 * @brief One request on the client's handle, bounded by LIVEFLOW_VENDOR_API_TIMEOUT_MS, no
 * redirects. headers and body (NULL: none) are borrowed for the call.
 * @returns 0 with rp filled (any HTTP status; free it with vendor_http_reply_fini()), or -1 on
 * a transport failure (always transient) with errstr.
 */
__attribute__((warn_unused_result)) int vendor_http_do(struct vendor_api *va, const char *method,
                                                       const char *url,
                                                       const struct curl_slist *headers,
                                                       const char *body, struct http_reply *rp,
                                                       char *errstr, size_t errstr_size);

/** @brief Frees the body and zeroes rp. */
void vendor_http_reply_fini(struct http_reply *rp);

/** @brief A status worth trying again: 408, 429 and every 5xx. */
bool vendor_http_is_transient(long status);

/** @brief The settings the client was made with (borrowed). */
const struct settings *vendor_api_settings(const struct vendor_api *va);

#endif
