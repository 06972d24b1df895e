/* alibaba_api.c: ForbidLiveStream, an Alibaba RPC call signed with HMAC-SHA1 (alibaba_api.h). */
#include "alibaba_api.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "settings.h"
#include "vendor_http.h"

#define PARAMS_MAX 32
#define QUERY_MAX  4096

static bool is_set(const char *s)
{
        return s && *s;
}

bool alibaba_api_is_configured(const struct settings *s)
{
        return is_set(s->alibaba_access_key_id) && is_set(s->alibaba_access_key_secret) &&
               is_set(s->alibaba_push_domain);
}

/* RFC 3986 percent-encoding of s onto out[*at..size); -1 when it does not fit. */
static int encode(const char *s, char *out, size_t size, size_t *at)
{
        static const char hex[] = "0123456789ABCDEF";

        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                bool is_unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                     (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
                                     c == '~';

                if (*at + 4 > size)
                        return -1;
                if (is_unreserved) {
                        out[(*at)++] = (char)c;
                } else {
                        out[(*at)++] = '%';
                        out[(*at)++] = hex[c >> 4];
                        out[(*at)++] = hex[c & 15];
                }
        }
        out[*at] = '\0';
        return 0;
}

static int append(const char *s, char *out, size_t size, size_t *at)
{
        size_t len = strlen(s);

        if (*at + len + 1 > size)
                return -1;
        memcpy(out + *at, s, len + 1);
        *at += len;
        return 0;
}

static int cmp_param(const void *a, const void *b)
{
        return strcmp(((const struct alibaba_param *)a)->name,
                      ((const struct alibaba_param *)b)->name);
}

/* base64(HMAC-SHA1(secret + "&", to_sign)) into sig (at least 29 bytes). */
static int sign(const char *secret, const char *to_sign, char *sig, size_t sig_size)
{
        char key[300];
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        int n = snprintf(key, sizeof(key), "%s&", secret);
        int rc = -1;

        if (n > 0 && (size_t)n < sizeof(key) &&
            HMAC(EVP_sha1(), key, n, (const unsigned char *)to_sign, strlen(to_sign), mac,
                 &mac_len) &&
            sig_size >= 4 * ((mac_len + 2) / 3) + 1) {
                crypto_base64_encode(mac, mac_len, sig, sig_size);
                rc = 0;
        }
        OPENSSL_cleanse(key, sizeof(key));
        return rc;
}

int alibaba_api_signed_query(const char *method, const struct alibaba_param *params, size_t n,
                             const char *secret, char *out, size_t out_size)
{
        struct alibaba_param sorted[PARAMS_MAX];
        char *to_sign = NULL, sig[64];
        size_t at = 0, sat = 0, to_sign_size;
        int rc = -1;

        if (n > PARAMS_MAX)
                return -1;
        memcpy(sorted, params, n * sizeof(*params));
        qsort(sorted, n, sizeof(*sorted), cmp_param);
        for (size_t i = 0; i < n; i++)
                if ((i && append("&", out, out_size, &at) == -1) ||
                    encode(sorted[i].name, out, out_size, &at) == -1 ||
                    append("=", out, out_size, &at) == -1 ||
                    encode(sorted[i].value, out, out_size, &at) == -1)
                        return -1;
        /* The string to sign encodes the query once more: "%3D" for '=', "%253A" for ':'. */
        to_sign_size = strlen(method) + 8 + 3 * at + 1;
        if (!(to_sign = malloc(to_sign_size)))
                return -1;
        if (append(method, to_sign, to_sign_size, &sat) == 0 &&
            append("&%2F&", to_sign, to_sign_size, &sat) == 0 &&
            encode(out, to_sign, to_sign_size, &sat) == 0 &&
            sign(secret, to_sign, sig, sizeof(sig)) == 0 &&
            append("&Signature=", out, out_size, &at) == 0 && encode(sig, out, out_size, &at) == 0)
                rc = 0;
        free(to_sign);
        return rc;
}

/* Error codes saying there is no such stream pushing: nothing is left to cut. */
static bool is_not_live_code(const char *code)
{
        return code &&
               (strstr(code, "NotFound") || strstr(code, "NotExist") || strstr(code, "NotOnline"));
}

static enum vendor_drop outcome_of(const struct http_reply *rp, char *errstr, size_t errstr_size)
{
        json_t *root = rp->body ? json_loads(rp->body, 0, NULL) : NULL;
        const char *code = json_string_value(json_object_get(root, "Code"));
        const char *message = json_string_value(json_object_get(root, "Message"));
        enum vendor_drop r;

        if (rp->status == 200 && json_is_string(json_object_get(root, "RequestId")) && !code) {
                r = VENDOR_DROP_DONE;
        } else if (is_not_live_code(code)) {
                r = VENDOR_DROP_NOT_LIVE;
        } else {
                snprintf(errstr, errstr_size, "ForbidLiveStream: HTTP %ld %s%s%s", rp->status,
                         code ? code : "(no Code)", message ? ": " : "", message ? message : "");
                r = vendor_http_is_transient(rp->status) || rp->status == 200 ||
                                    (code && strncmp(code, "Throttling", 10) == 0)
                            ? VENDOR_DROP_RETRY
                            : VENDOR_DROP_FAILED;
        }
        json_decref(root);
        return r;
}

/*
 * One signed RPC GET of action on the stream, with extra parameters (NULL-terminated pairs
 * after the stream's own): rp filled on 0; -1 on a transport failure or a signing one.
 */
static int rpc_call(struct vendor_api *va, const char *action, const char *stream,
                    const struct alibaba_param *extra, size_t extra_n, struct http_reply *rp,
                    char *errstr, size_t errstr_size)
{
        const struct settings *s = vendor_api_settings(va);
        unsigned char raw[16];
        char nonce[33], ts[32], query[QUERY_MAX], url[QUERY_MAX + 256];
        time_t now = time(NULL);
        struct tm tm;
        struct alibaba_param params[PARAMS_MAX] = {
                {"Action", action},
                {"DomainName", s->alibaba_push_domain},
                {"AppName", is_set(s->alibaba_app) ? s->alibaba_app : "live"},
                {"StreamName", stream},
                {"Format", "JSON"},
                {"Version", "2016-11-01"},
                {"AccessKeyId", s->alibaba_access_key_id},
                {"SignatureMethod", "HMAC-SHA1"},
                {"SignatureVersion", "1.0"},
                {"SignatureNonce", nonce},
                {"Timestamp", ts},
        };
        size_t n = 11;

        if (is_set(s->alibaba_region))
                params[n++] = (struct alibaba_param){"RegionId", s->alibaba_region};
        for (size_t i = 0; i < extra_n && n < PARAMS_MAX; i++)
                params[n++] = extra[i];
        if (RAND_bytes(raw, sizeof(raw)) != 1 || !gmtime_r(&now, &tm) ||
            strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
                snprintf(errstr, errstr_size, "no random nonce or clock");
                return -1;
        }
        for (size_t i = 0; i < sizeof(raw); i++)
                snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
        if (alibaba_api_signed_query("GET", params, n, s->alibaba_access_key_secret, query,
                                     sizeof(query)) == -1) {
                snprintf(errstr, errstr_size, "%s: parameters too long to sign", action);
                return -1;
        }
        snprintf(url, sizeof(url), "%s/?%s", s->alibaba_api_endpoint, query);
        return vendor_http_do(va, "GET", url, NULL, NULL, rp, errstr, errstr_size);
}

enum vendor_drop alibaba_api_forbid(struct vendor_api *va, const char *stream, char *errstr,
                                    size_t errstr_size)
{
        static const struct alibaba_param extra[] = {
                {"LiveStreamType", "publisher"},
                {"Oneshot", "yes"}, /* cut now, do not blacklist: as Tencent's DropLiveStream */
        };
        struct http_reply rp;
        enum vendor_drop r;

        if (rpc_call(va, "ForbidLiveStream", stream, extra, 2, &rp, errstr, errstr_size) == -1)
                return VENDOR_DROP_RETRY;
        r = outcome_of(&rp, errstr, errstr_size);
        vendor_http_reply_fini(&rp);
        return r;
}

enum vendor_state alibaba_api_state(struct vendor_api *va, const char *stream, char *errstr,
                                    size_t errstr_size)
{
        struct http_reply rp;
        json_t *root, *list;
        enum vendor_state st = VENDOR_STATE_UNKNOWN;

        if (rpc_call(va, "DescribeLiveStreamsOnlineList", stream, NULL, 0, &rp, errstr,
                     errstr_size) == -1)
                return VENDOR_STATE_UNKNOWN;
        root = rp.status == 200 && rp.body ? json_loads(rp.body, 0, NULL) : NULL;
        list = json_object_get(json_object_get(root, "OnlineInfo"), "LiveStreamOnlineInfo");
        if (json_is_array(list))
                st = json_array_size(list) > 0 ? VENDOR_STATE_LIVE : VENDOR_STATE_NOT_LIVE;
        else
                snprintf(errstr, errstr_size,
                         "DescribeLiveStreamsOnlineList: HTTP %ld, no OnlineInfo", rp.status);
        json_decref(root);
        vendor_http_reply_fini(&rp);
        return st;
}
