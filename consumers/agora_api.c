/* agora_api.c: an Agora room's forced close, a kicking rule on its channel (agora_api.h). */
#include "agora_api.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "settings.h"
#include "vendor_http.h"

#define AGORA_PATH "/dev/v1/kicking-rule"

static bool is_set(const char *s)
{
        return s && *s;
}

bool agora_api_is_configured(const struct settings *s)
{
        return is_set(s->agora_customer_id) && is_set(s->agora_customer_secret) &&
               is_set(s->agora_app_id);
}

/* "Authorization: Basic base64(id:secret)"; NULL when out of memory. */
static struct curl_slist *basic_auth(const struct settings *s, struct curl_slist *h)
{
        char pair[600], b64[820], line[860];
        int n = snprintf(pair, sizeof(pair), "%s:%s", s->agora_customer_id,
                         s->agora_customer_secret);
        struct curl_slist *grown = NULL;

        if (n > 0 && (size_t)n < sizeof(pair)) {
                crypto_base64_encode(pair, (size_t)n, b64, sizeof(b64));
                snprintf(line, sizeof(line), "Authorization: Basic %s", b64);
                grown = curl_slist_append(h, line);
                OPENSSL_cleanse(line, sizeof(line));
                OPENSSL_cleanse(b64, sizeof(b64));
        }
        OPENSSL_cleanse(pair, sizeof(pair));
        if (!grown)
                curl_slist_free_all(h);
        return grown;
}

static enum vendor_drop outcome_of(const struct http_reply *rp, char *errstr, size_t errstr_size)
{
        json_t *root = rp->body ? json_loads(rp->body, 0, NULL) : NULL;
        const char *status = json_string_value(json_object_get(root, "status"));
        const char *message = json_string_value(json_object_get(root, "message"));
        enum vendor_drop r;

        if (rp->status == 200 && status && strcmp(status, "success") == 0) {
                r = VENDOR_DROP_DONE;
        } else {
                snprintf(errstr, errstr_size, "kicking-rule: HTTP %ld%s%s", rp->status,
                         message ? ": " : "", message ? message : "");
                /* A 200 without "success" is a reply we cannot read: ask again. */
                r = vendor_http_is_transient(rp->status) || rp->status == 200 ? VENDOR_DROP_RETRY
                                                                              : VENDOR_DROP_FAILED;
        }
        json_decref(root);
        return r;
}

enum vendor_drop agora_api_kick(struct vendor_api *va, const char *channel, char *errstr,
                                size_t errstr_size)
{
        const struct settings *s = vendor_api_settings(va);
        json_t *body = json_pack("{s:s,s:s,s:I,s:[s]}", "appid", s->agora_app_id, "cname", channel,
                                 "time_in_seconds", (json_int_t)s->agora_kick_s, "privileges",
                                 "join_channel");
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        char url[1024], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        struct http_reply rp;
        enum vendor_drop r = VENDOR_DROP_RETRY;

        json_decref(body);
        if (h)
                h = curl_slist_append(h, "Accept: application/json");
        if (h)
                h = basic_auth(s, h);
        snprintf(url, sizeof(url), "%s" AGORA_PATH, s->agora_api_endpoint);
        if (!text || !h) {
                snprintf(errstr, errstr_size, "out of memory");
        } else if (vendor_http_do(va, "POST", url, h, text, &rp, errstr, errstr_size) == 0) {
                r = outcome_of(&rp, errstr, errstr_size);
                vendor_http_reply_fini(&rp);
        }
        curl_slist_free_all(h);
        free(text);
        return r;
}

/* Live: the channel exists with a host (live broadcasting) or any user (communication). */
static enum vendor_state state_of(const struct http_reply *rp, char *errstr, size_t errstr_size)
{
        json_t *root = rp->status == 200 && rp->body ? json_loads(rp->body, 0, NULL) : NULL;
        const json_t *data = json_object_get(root, "data");
        const json_t *exists = json_object_get(data, "channel_exist");
        enum vendor_state st = VENDOR_STATE_UNKNOWN;

        if (!json_is_boolean(exists))
                snprintf(errstr, errstr_size, "channel user list: HTTP %ld, no channel_exist",
                         rp->status);
        else if (!json_is_true(exists))
                st = VENDOR_STATE_NOT_LIVE;
        else if (json_integer_value(json_object_get(data, "mode")) == 1)
                st = json_integer_value(json_object_get(data, "total")) > 0 ? VENDOR_STATE_LIVE
                                                                            : VENDOR_STATE_NOT_LIVE;
        else
                st = json_array_size(json_object_get(data, "broadcasters")) > 0
                             ? VENDOR_STATE_LIVE
                             : VENDOR_STATE_NOT_LIVE;
        json_decref(root);
        return st;
}

enum vendor_state agora_api_state(struct vendor_api *va, const char *channel, char *errstr,
                                  size_t errstr_size)
{
        const struct settings *s = vendor_api_settings(va);
        struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
        char url[1024], *escaped = curl_easy_escape(NULL, channel, 0);
        struct http_reply rp;
        enum vendor_state st = VENDOR_STATE_UNKNOWN;

        if (h)
                h = basic_auth(s, h);
        if (!h || !escaped) {
                snprintf(errstr, errstr_size, "out of memory");
        } else {
                snprintf(url, sizeof(url), "%s/dev/v1/channel/user/%s/%s?hosts_only=1",
                         s->agora_api_endpoint, s->agora_app_id, escaped);
                if (vendor_http_do(va, "GET", url, h, NULL, &rp, errstr, errstr_size) == 0) {
                        st = state_of(&rp, errstr, errstr_size);
                        vendor_http_reply_fini(&rp);
                }
        }
        curl_free(escaped);
        curl_slist_free_all(h);
        return st;
}
