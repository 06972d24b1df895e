/*
 * vendor_api.c: cuts a force-closed stream at its vendor (Tencent DropLiveStream; SRS, Agora and
 * Alibaba in srs_api.c, agora_api.c and alibaba_api.c on this file's HTTP client).
 */
#include "vendor_api.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "log.h"
#include "settings.h"
#include "vendor_http.h"
#include "agora_api.h"
#include "alibaba_api.h"
#include "srs_api.h"

#define TENCENT_SERVICE      "live"
#define TENCENT_VERSION      "2018-08-01"
#define TENCENT_CONTENT_TYPE "application/json; charset=utf-8"
#define MAX_REPLY_BYTES      (4 << 20)

struct vendor_api {
        const struct settings *s;
        CURL *curl; /* one handle, reset per request, so connections are reused */
        char curl_error[CURL_ERROR_SIZE];
        bool has_warned_tencent, has_warned_srs, has_warned_agora, has_warned_alibaba,
                has_warned_other;
};

/* ------------------------------------------------------------------ life cycle */

struct vendor_api *vendor_api_new(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct vendor_api *va = calloc(1, sizeof(*va));

        /* Thread-safe since libcurl 7.84 and reference-counted; paired in vendor_api_destroy(). */
        if (!va || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                free(va);
                snprintf(errstr, errstr_size, "libcurl: global init failed");
                return NULL;
        }
        va->s = s;
        if (!(va->curl = curl_easy_init())) {
                curl_global_cleanup();
                free(va);
                snprintf(errstr, errstr_size, "libcurl: out of memory");
                return NULL;
        }
        return va;
}

void vendor_api_destroy(struct vendor_api *va)
{
        if (!va)
                return;
        curl_easy_cleanup(va->curl);
        curl_global_cleanup();
        free(va);
}

const char *vendor_drop_name(enum vendor_drop r)
{
        static const char *const names[] = {"done", "not_live", "skipped", "retry", "failed"};

        return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

/* ------------------------------------------------------------------ HTTP */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
        struct http_reply *rp = arg;
        size_t add = size * n;
        char *grown;

        if (rp->len + add > MAX_REPLY_BYTES)
                return 0; /* libcurl fails the transfer with CURLE_WRITE_ERROR */
        if (!(grown = realloc(rp->body, rp->len + add + 1)))
                return 0;
        rp->body = grown;
        memcpy(rp->body + rp->len, data, add);
        rp->len += add;
        rp->body[rp->len] = '\0';
        return add;
}

static void http_reply_fini(struct http_reply *rp)
{
        free(rp->body);
        memset(rp, 0, sizeof(*rp));
}

/*
 * One request with bounded time and no redirects. body NULL means no body. @returns 0 with
 * rp filled (any HTTP status), or -1 on a transport failure (always transient) with errstr.
 */
static int http_do(struct vendor_api *va, const char *method, const char *url,
                   const struct curl_slist *headers, const char *body, struct http_reply *rp,
                   char *errstr, size_t errstr_size)
{
        CURL *curl = va->curl;
        long timeout_ms = (long)va->s->vendor_api_timeout_ms;
        CURLcode rc;

        memset(rp, 0, sizeof(*rp));
        curl_easy_reset(curl);
        va->curl_error[0] = '\0';
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a process with threads */
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "liveflow");
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, va->curl_error);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, rp);
        if (headers)
                curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        if (body) {
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        if ((rc = curl_easy_perform(curl)) != CURLE_OK) {
                snprintf(errstr, errstr_size, "%s %s: %s", method, url,
                         va->curl_error[0] ? va->curl_error : curl_easy_strerror(rc));
                http_reply_fini(rp);
                return -1;
        }
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &rp->status);
        return 0;
}

/* A status that is worth trying again: throttling, the server's own trouble. */
static bool is_transient_status(long status)
{
        return status == 408 || status == 429 || status >= 500;
}

int vendor_http_do(struct vendor_api *va, const char *method, const char *url,
                   const struct curl_slist *headers, const char *body, struct http_reply *rp,
                   char *errstr, size_t errstr_size)
{
        return http_do(va, method, url, headers, body, rp, errstr, errstr_size);
}

void vendor_http_reply_fini(struct http_reply *rp)
{
        http_reply_fini(rp);
}

bool vendor_http_is_transient(long status)
{
        return is_transient_status(status);
}

const struct settings *vendor_api_settings(const struct vendor_api *va)
{
        return va->s;
}

/* ------------------------------------------------------------------ TC3-HMAC-SHA256 */

static int hmac(const void *key, size_t key_len, const char *msg, unsigned char mac[32])
{
        const void *parts[] = {msg};
        const size_t lens[] = {strlen(msg)};

        return crypto_hmac_sha256(key, key_len, parts, lens, 1, mac);
}

/* The derived key: HMAC over date, service and "tc3_request", starting from "TC3" + key. */
static int tc3_signing_key(const char *secret_key, const char *date, const char *service,
                           unsigned char key[32])
{
        char first[256];
        unsigned char k_date[32], k_service[32];
        int n = snprintf(first, sizeof(first), "TC3%s", secret_key);
        int rc = -1;

        if (n > 0 && (size_t)n < sizeof(first) && hmac(first, (size_t)n, date, k_date) == 0 &&
            hmac(k_date, 32, service, k_service) == 0 &&
            hmac(k_service, 32, "tc3_request", key) == 0)
                rc = 0;
        OPENSSL_cleanse(first, sizeof(first));
        OPENSSL_cleanse(k_date, sizeof(k_date));
        OPENSSL_cleanse(k_service, sizeof(k_service));
        return rc;
}

int vendor_api_tc3_authorization(const struct tc3_request *rq, char *out, size_t out_size)
{
        char payload_hash[65], canonical_hash[65], date[16], canonical[1024], to_sign[512], sig[65];
        unsigned char key[32], mac[32];
        time_t t = (time_t)rq->timestamp;
        struct tm tm;
        int n;

        if (!gmtime_r(&t, &tm) || strftime(date, sizeof(date), "%Y-%m-%d", &tm) == 0)
                return -1;
        crypto_sha256_hex(rq->payload, rq->payload_len, payload_hash);
        /* Method, URI, query, headers (lower case, sorted), signed header names, payload hash. */
        n = snprintf(canonical, sizeof(canonical),
                     "POST\n/\n\ncontent-type:%s\nhost:%s\n\ncontent-type;host\n%s",
                     rq->content_type, rq->host, payload_hash);
        if (n < 0 || (size_t)n >= sizeof(canonical))
                return -1;
        crypto_sha256_hex(canonical, (size_t)n, canonical_hash);
        n = snprintf(to_sign, sizeof(to_sign), "TC3-HMAC-SHA256\n%lld\n%s/%s/tc3_request\n%s",
                     rq->timestamp, date, rq->service, canonical_hash);
        if (n < 0 || (size_t)n >= sizeof(to_sign) ||
            tc3_signing_key(rq->secret_key, date, rq->service, key) == -1 ||
            hmac(key, 32, to_sign, mac) == -1)
                return -1;
        OPENSSL_cleanse(key, sizeof(key));
        crypto_hex(mac, 32, sig);
        n = snprintf(out, out_size,
                     "TC3-HMAC-SHA256 Credential=%s/%s/%s/tc3_request, "
                     "SignedHeaders=content-type;host, Signature=%s",
                     rq->secret_id, date, rq->service, sig);
        return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

/* ------------------------------------------------------------------ Tencent DropLiveStream */

/* Error codes saying the stream is not pushing (any more): the drop has nothing left to do. */
static const char *const tencent_not_live_codes[] = {
        "ResourceNotFound.StreamNotAlive",  "ResourceUnavailable.StreamNotExist",
        "FailedOperation.StreamNotExist",   "FailedOperation.HasNotLivingStream",
        "InternalError.HasNotLivingStream", NULL,
};

/* Error code prefixes of failures that may pass on a later try. */
static const char *const tencent_transient_prefixes[] = {
        "InternalError",
        "RequestLimitExceeded",
        "LimitExceeded",
        "ResourceUnavailable",
        "ResourceInsufficient",
        "FailedOperation.CallOtherSvr",
        "FailedOperation.NetworkError",
        NULL,
};

static bool tencent_is_configured(const struct settings *s)
{
        return s->tencent_api_endpoint && *s->tencent_api_endpoint && s->tencent_secret_id &&
               s->tencent_secret_key && s->tencent_push_domain && s->tencent_app;
}

/* The Host header for url: host, plus ":port" when the URL names one; lower case (TC3 signs it). */
static int url_host(const char *url, char *host, size_t host_size)
{
        CURLU *u = curl_url();
        char *h = NULL, *port = NULL;
        int n = -1;

        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
                /* Without CURLU_DEFAULT_PORT this fails when the URL has no explicit port. */
                if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
                        port = NULL;
                n = port ? snprintf(host, host_size, "%s:%s", h, port)
                         : snprintf(host, host_size, "%s", h);
        }
        curl_free(h);
        curl_free(port);
        curl_url_cleanup(u);
        if (n <= 0 || (size_t)n >= host_size)
                return -1;
        for (char *p = host; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        return 0;
}

static bool code_is_in(const char *code, const char *const list[], bool as_prefix)
{
        for (size_t i = 0; list[i]; i++)
                if (as_prefix ? strncmp(code, list[i], strlen(list[i])) == 0
                              : strcmp(code, list[i]) == 0)
                        return true;
        return false;
}

/* API 3.0 answers 200 with {"Response": {"RequestId": ..., "Error": {"Code", "Message"}}}. */
static enum vendor_drop tencent_outcome(const struct http_reply *rp, char *errstr,
                                        size_t errstr_size)
{
        json_t *root, *response, *error;
        const char *code, *request_id;
        enum vendor_drop r;

        if (rp->status != 200) {
                snprintf(errstr, errstr_size, "DropLiveStream: HTTP %ld", rp->status);
                return is_transient_status(rp->status) ? VENDOR_DROP_RETRY : VENDOR_DROP_FAILED;
        }
        root = json_loads(rp->body ? rp->body : "", 0, NULL);
        response = json_object_get(root, "Response");
        error = json_object_get(response, "Error");
        code = json_string_value(json_object_get(error, "Code"));
        request_id = json_string_value(json_object_get(response, "RequestId"));
        if (!json_is_object(response) || (error && !code)) {
                snprintf(errstr, errstr_size, "DropLiveStream: unreadable reply (%zu bytes)",
                         rp->len);
                r = VENDOR_DROP_RETRY;
        } else if (!error) {
                r = VENDOR_DROP_DONE;
        } else if (code_is_in(code, tencent_not_live_codes, false)) {
                r = VENDOR_DROP_NOT_LIVE;
        } else {
                const char *message = json_string_value(json_object_get(error, "Message"));

                snprintf(errstr, errstr_size, "DropLiveStream: %s: %s (RequestId %s)", code,
                         message ? message : "", request_id ? request_id : "-");
                r = code_is_in(code, tencent_transient_prefixes, true) ? VENDOR_DROP_RETRY
                                                                       : VENDOR_DROP_FAILED;
        }
        json_decref(root);
        return r;
}

/* Appends to a list that is freed when the append fails: NULL in, NULL out. */
static struct curl_slist *append_or_free(struct curl_slist *h, const char *line)
{
        struct curl_slist *n = h ? curl_slist_append(h, line) : NULL;

        if (h && !n)
                curl_slist_free_all(h);
        return n;
}

/*
 * Headers of one signed call of action; @returns NULL when out of memory or the request cannot
 * be signed.
 */
static struct curl_slist *tencent_headers_of(const struct settings *s, const char *action,
                                             const char *host, const char *body, long long now_s)
{
        struct tc3_request rq = {
                .secret_id = s->tencent_secret_id,
                .secret_key = s->tencent_secret_key,
                .service = TENCENT_SERVICE,
                .host = host,
                .content_type = TENCENT_CONTENT_TYPE,
                .payload = body,
                .payload_len = strlen(body),
                .timestamp = now_s,
        };
        char auth[512], line[640];
        struct curl_slist *h;
        const char *fixed[] = {"Content-Type: " TENCENT_CONTENT_TYPE,
                               "X-TC-Version: " TENCENT_VERSION, "Expect:"};

        if (vendor_api_tc3_authorization(&rq, auth, sizeof(auth)) == -1)
                return NULL;
        snprintf(line, sizeof(line), "Authorization: %s", auth);
        h = curl_slist_append(NULL, line);
        snprintf(line, sizeof(line), "X-TC-Action: %s", action);
        h = append_or_free(h, line);
        /* The Host sent must be the host signed, whatever libcurl would have written. */
        snprintf(line, sizeof(line), "Host: %s", host);
        h = append_or_free(h, line);
        snprintf(line, sizeof(line), "X-TC-Timestamp: %lld", now_s);
        h = append_or_free(h, line);
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
                h = append_or_free(h, fixed[i]);
        if (s->tencent_region && *s->tencent_region) {
                snprintf(line, sizeof(line), "X-TC-Region: %s", s->tencent_region);
                h = append_or_free(h, line);
        }
        return h;
}

static struct curl_slist *tencent_headers(const struct settings *s, const char *host,
                                          const char *body, long long now_s)
{
        return tencent_headers_of(s, "DropLiveStream", host, body, now_s);
}

static enum vendor_drop tencent_drop(struct vendor_api *va, const char *stream_id, char *errstr,
                                     size_t errstr_size)
{
        const struct settings *s = va->s;
        json_t *params = json_pack("{s:s,s:s,s:s}", "StreamName", stream_id, "DomainName",
                                   s->tencent_push_domain, "AppName", s->tencent_app);
        char *body = params ? json_dumps(params, JSON_COMPACT) : NULL;
        struct curl_slist *headers = NULL;
        struct http_reply rp;
        enum vendor_drop r = VENDOR_DROP_RETRY;
        char host[300];

        json_decref(params);
        if (url_host(s->tencent_api_endpoint, host, sizeof(host)) == -1) {
                snprintf(errstr, errstr_size, "LIVEFLOW_TENCENT_API_ENDPOINT: \"%s\" is not a URL",
                         s->tencent_api_endpoint);
                r = VENDOR_DROP_FAILED;
        } else if (!body || !(headers = tencent_headers(s, host, body, (long long)time(NULL)))) {
                snprintf(errstr, errstr_size,
                         "DropLiveStream: cannot build the request (out of memory?)");
        } else if (http_do(va, "POST", s->tencent_api_endpoint, headers, body, &rp, errstr,
                           errstr_size) == 0) {
                r = tencent_outcome(&rp, errstr, errstr_size);
                http_reply_fini(&rp);
        }
        curl_slist_free_all(headers);
        free(body);
        return r;
}

/* ------------------------------------------------------------------ dispatch */

/* Says once per vendor (at WARN) that drops are skipped; later skips only at DEBUG. */
static enum vendor_drop skip(bool *has_warned, const char *trace_id, const char *vendor,
                             const char *stream_id, const char *why)
{
        if (!*has_warned)
                log_warn(trace_id,
                         "vendor drop skipped for vendor %s (stream=%s): %s; this is said once",
                         vendor, stream_id, why);
        else
                log_debug(trace_id, "vendor drop skipped vendor=%s stream=%s", vendor, stream_id);
        *has_warned = true;
        return VENDOR_DROP_SKIPPED;
}

enum vendor_drop vendor_api_drop_stream(struct vendor_api *va, const char *vendor,
                                        const char *stream_id, const char *trace_id, char *errstr,
                                        size_t errstr_size)
{
        enum vendor_drop r;

        errstr[0] = '\0';
        if (vendor && strcmp(vendor, "tencent") == 0) {
                if (!tencent_is_configured(va->s))
                        return skip(&va->has_warned_tencent, trace_id, vendor, stream_id,
                                    "LIVEFLOW_TENCENT_SECRET_ID, LIVEFLOW_TENCENT_SECRET_KEY and "
                                    "LIVEFLOW_TENCENT_PUSH_DOMAIN are not all set");
                r = tencent_drop(va, stream_id, errstr, errstr_size);
        } else if (vendor && strcmp(vendor, "srs") == 0) {
                if (!va->s->srs_api_endpoint || !*va->s->srs_api_endpoint)
                        return skip(&va->has_warned_srs, trace_id, vendor, stream_id,
                                    "LIVEFLOW_SRS_API_ENDPOINT is not set");
                r = srs_api_kick(va, stream_id, errstr, errstr_size);
        } else if (vendor && strcmp(vendor, "agora") == 0) {
                if (!agora_api_is_configured(va->s))
                        return skip(
                                &va->has_warned_agora, trace_id, vendor, stream_id,
                                "LIVEFLOW_AGORA_CUSTOMER_ID, LIVEFLOW_AGORA_CUSTOMER_SECRET and "
                                "LIVEFLOW_AGORA_APP_ID are not all set");
                r = agora_api_kick(va, stream_id, errstr, errstr_size);
        } else if (vendor && strcmp(vendor, "alibaba") == 0) {
                if (!alibaba_api_is_configured(va->s))
                        return skip(&va->has_warned_alibaba, trace_id, vendor, stream_id,
                                    "LIVEFLOW_ALIBABA_ACCESS_KEY_ID, "
                                    "LIVEFLOW_ALIBABA_ACCESS_KEY_SECRET and "
                                    "LIVEFLOW_ALIBABA_PUSH_DOMAIN are not all set");
                r = alibaba_api_forbid(va, stream_id, errstr, errstr_size);
        } else {
                return skip(&va->has_warned_other, trace_id, vendor ? vendor : "(none)", stream_id,
                            "liveflow knows no stream API of this vendor");
        }
        if (r == VENDOR_DROP_DONE || r == VENDOR_DROP_NOT_LIVE)
                log_info(trace_id, "vendor drop vendor=%s stream=%s outcome=%s", vendor, stream_id,
                         vendor_drop_name(r));
        else
                log_warn(trace_id, "vendor drop vendor=%s stream=%s outcome=%s: %s", vendor,
                         stream_id, vendor_drop_name(r), errstr);
        return r;
}

/* ------------------------------------------------------------------ is the stream live? */

const char *vendor_state_name(enum vendor_state st)
{
        switch (st) {
        case VENDOR_STATE_LIVE:
                return "live";
        case VENDOR_STATE_NOT_LIVE:
                return "not_live";
        case VENDOR_STATE_UNKNOWN:
                return "unknown";
        }
        return "?";
}

/* DescribeLiveStreamState answers StreamState "active", "inactive" or "forbid". */
static enum vendor_state tencent_state_of(const struct http_reply *rp, char *errstr,
                                          size_t errstr_size)
{
        json_t *root, *response;
        const char *state, *code;
        enum vendor_state r = VENDOR_STATE_UNKNOWN;

        if (rp->status != 200) {
                snprintf(errstr, errstr_size, "DescribeLiveStreamState: HTTP %ld", rp->status);
                return VENDOR_STATE_UNKNOWN;
        }
        root = json_loads(rp->body ? rp->body : "", 0, NULL);
        response = json_object_get(root, "Response");
        state = json_string_value(json_object_get(response, "StreamState"));
        code = json_string_value(json_object_get(json_object_get(response, "Error"), "Code"));
        if (state && strcmp(state, "active") == 0)
                r = VENDOR_STATE_LIVE;
        else if (state && (strcmp(state, "inactive") == 0 || strcmp(state, "forbid") == 0))
                r = VENDOR_STATE_NOT_LIVE;
        else if (code && code_is_in(code, tencent_not_live_codes, false))
                r = VENDOR_STATE_NOT_LIVE;
        else
                snprintf(errstr, errstr_size, "DescribeLiveStreamState: %s",
                         code ? code : "no StreamState in the reply");
        json_decref(root);
        return r;
}

static enum vendor_state tencent_state(struct vendor_api *va, const char *stream_id, char *errstr,
                                       size_t errstr_size)
{
        const struct settings *s = va->s;
        json_t *params = json_pack("{s:s,s:s,s:s}", "AppName", s->tencent_app, "DomainName",
                                   s->tencent_push_domain, "StreamName", stream_id);
        char *body = params ? json_dumps(params, JSON_COMPACT) : NULL;
        struct curl_slist *headers = NULL;
        enum vendor_state r = VENDOR_STATE_UNKNOWN;
        struct http_reply rp;
        char host[300];

        json_decref(params);
        if (url_host(s->tencent_api_endpoint, host, sizeof(host)) == -1)
                snprintf(errstr, errstr_size, "LIVEFLOW_TENCENT_API_ENDPOINT: \"%s\" is not a URL",
                         s->tencent_api_endpoint);
        else if (!body || !(headers = tencent_headers_of(s, "DescribeLiveStreamState", host, body,
                                                         (long long)time(NULL))))
                snprintf(errstr, errstr_size, "DescribeLiveStreamState: cannot build the request");
        else if (http_do(va, "POST", s->tencent_api_endpoint, headers, body, &rp, errstr,
                         errstr_size) == 0) {
                r = tencent_state_of(&rp, errstr, errstr_size);
                http_reply_fini(&rp);
        }
        curl_slist_free_all(headers);
        free(body);
        return r;
}

enum vendor_state vendor_api_stream_state(struct vendor_api *va, const char *vendor,
                                          const char *stream_id, const char *trace_id, char *errstr,
                                          size_t errstr_size)
{
        enum vendor_state r;

        errstr[0] = '\0';
        if (vendor && strcmp(vendor, "tencent") == 0 && tencent_is_configured(va->s)) {
                r = tencent_state(va, stream_id, errstr, errstr_size);
        } else if (vendor && strcmp(vendor, "srs") == 0 && va->s->srs_api_endpoint &&
                   *va->s->srs_api_endpoint) {
                r = srs_api_state(va, stream_id, errstr, errstr_size);
        } else if (vendor && strcmp(vendor, "agora") == 0 && agora_api_is_configured(va->s)) {
                r = agora_api_state(va, stream_id, errstr, errstr_size);
        } else if (vendor && strcmp(vendor, "alibaba") == 0 && alibaba_api_is_configured(va->s)) {
                r = alibaba_api_state(va, stream_id, errstr, errstr_size);
        } else {
                snprintf(errstr, errstr_size, "no stream API of vendor %s is configured",
                         vendor ? vendor : "(none)");
                return VENDOR_STATE_UNKNOWN;
        }
        log_info(trace_id, "vendor state vendor=%s stream=%s state=%s%s%s", vendor, stream_id,
                 vendor_state_name(r), *errstr ? ": " : "", errstr);
        return r;
}
