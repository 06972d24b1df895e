/*
 * srs_api.c: the SRS HTTP API for the vendor calls: kick a stream's publisher
 * (DELETE /api/v1/clients/{id}) and ask whether a stream is live (GET /api/v1/streams), on
 * vendor_api.c's HTTP client.
 */
#include "srs_api.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "settings.h"
#include "vendor_http.h"

#define SRS_PAGE      100
#define SRS_MAX_PAGES 100 /* 10,000 clients: beyond that the stream is not looked for */

/* The endpoint without trailing slashes, as a length for "%.*s". */
static int base_len(const char *endpoint)
{
        size_t n = strlen(endpoint);

        while (n > 0 && endpoint[n - 1] == '/')
                n--;
        return (int)n;
}

/*
 * Whether an entry of /api/v1/clients is the publisher of stream_id. SRS 4+ gives the stream
 * name as "name"; every version gives "url" as "/app/stream", which also matches a stream_id
 * of the "app/stream" form.
 */
static bool srs_is_publisher(const json_t *client, const char *stream_id)
{
        const char *name = json_string_value(json_object_get(client, "name"));
        const char *url = json_string_value(json_object_get(client, "url"));
        size_t n = strlen(stream_id), ulen = url ? strlen(url) : 0;

        if (!json_is_true(json_object_get(client, "publish")))
                return false;
        if (name && strcmp(name, stream_id) == 0)
                return true;
        return url && ulen > n && url[ulen - n - 1] == '/' &&
               strcmp(url + ulen - n, stream_id) == 0;
}

/* The client id, a string since SRS 4 and an integer before. */
static int srs_client_id(const json_t *client, char *id, size_t id_size)
{
        const json_t *v = json_object_get(client, "id");
        int n = -1;

        if (json_is_string(v))
                n = snprintf(id, id_size, "%s", json_string_value(v));
        else if (json_is_integer(v))
                n = snprintf(id, id_size, "%lld", (long long)json_integer_value(v));
        return n > 0 && (size_t)n < id_size ? 0 : -1;
}

/* Looks through one page; *count receives its length. @returns DONE with id, NOT_LIVE or RETRY. */
static enum vendor_drop srs_scan_page(const struct http_reply *rp, const char *stream_id, char *id,
                                      size_t id_size, size_t *count, char *errstr,
                                      size_t errstr_size)
{
        json_t *root = json_loads(rp->body ? rp->body : "", 0, NULL), *clients, *client;
        enum vendor_drop r = VENDOR_DROP_NOT_LIVE;
        size_t i;

        clients = json_object_get(root, "clients");
        if (!json_is_integer(json_object_get(root, "code")) ||
            json_integer_value(json_object_get(root, "code")) != 0 || !json_is_array(clients)) {
                snprintf(errstr, errstr_size, "SRS /api/v1/clients: unreadable reply (%zu bytes)",
                         rp->len);
                json_decref(root);
                return VENDOR_DROP_RETRY;
        }
        *count = json_array_size(clients);
        json_array_foreach(clients, i, client)
        {
                if (!srs_is_publisher(client, stream_id))
                        continue;
                if (srs_client_id(client, id, id_size) == -1) {
                        snprintf(errstr, errstr_size,
                                 "SRS /api/v1/clients: publisher of %s has no usable id",
                                 stream_id);
                        r = VENDOR_DROP_RETRY;
                } else {
                        r = VENDOR_DROP_DONE;
                }
                break;
        }
        json_decref(root);
        return r;
}

/* Pages through GET /api/v1/clients (SRS returns 10 by default) for the stream's publisher. */
static enum vendor_drop srs_find_publisher(struct vendor_api *va, const char *stream_id, char *id,
                                           size_t id_size, char *errstr, size_t errstr_size)
{
        const char *ep = vendor_api_settings(va)->srs_api_endpoint;
        char url[1024];

        for (int page = 0; page < SRS_MAX_PAGES; page++) {
                struct http_reply rp;
                enum vendor_drop r;
                size_t count = 0;

                snprintf(url, sizeof(url), "%.*s/api/v1/clients?start=%d&count=%d", base_len(ep),
                         ep, page * SRS_PAGE, SRS_PAGE);
                if (vendor_http_do(va, "GET", url, NULL, NULL, &rp, errstr, errstr_size) == -1)
                        return VENDOR_DROP_RETRY;
                if (rp.status != 200) {
                        long status = rp.status;

                        snprintf(errstr, errstr_size, "GET %s: HTTP %ld", url, status);
                        vendor_http_reply_fini(&rp);
                        return vendor_http_is_transient(status) ? VENDOR_DROP_RETRY
                                                                : VENDOR_DROP_FAILED;
                }
                r = srs_scan_page(&rp, stream_id, id, id_size, &count, errstr, errstr_size);
                vendor_http_reply_fini(&rp);
                if (r != VENDOR_DROP_NOT_LIVE || count < SRS_PAGE)
                        return r;
        }
        log_warn(NULL, "SRS lists more than %d clients; publisher of %s not looked for further",
                 SRS_PAGE * SRS_MAX_PAGES, stream_id);
        return VENDOR_DROP_NOT_LIVE;
}

#define SRS_ERROR_CLIENT_NOT_FOUND 2049 /* ERROR_RTMP_CLIENT_NOT_FOUND in srs_kernel_error.hpp */

static enum vendor_drop srs_kick(struct vendor_api *va, const char *id, char *errstr,
                                 size_t errstr_size)
{
        const char *ep = vendor_api_settings(va)->srs_api_endpoint;
        char *escaped = curl_easy_escape(NULL, id, 0), url[1024];
        struct http_reply rp;
        json_t *root;
        long long code;
        long status;

        if (!escaped) {
                snprintf(errstr, errstr_size, "out of memory");
                return VENDOR_DROP_RETRY;
        }
        snprintf(url, sizeof(url), "%.*s/api/v1/clients/%s", base_len(ep), ep, escaped);
        curl_free(escaped);
        if (vendor_http_do(va, "DELETE", url, NULL, NULL, &rp, errstr, errstr_size) == -1)
                return VENDOR_DROP_RETRY;
        root = json_loads(rp.body ? rp.body : "", 0, NULL);
        code = json_is_integer(json_object_get(root, "code"))
                       ? json_integer_value(json_object_get(root, "code"))
                       : -1;
        json_decref(root);
        status = rp.status;
        vendor_http_reply_fini(&rp);
        if (status == 404 || code == SRS_ERROR_CLIENT_NOT_FOUND)
                return VENDOR_DROP_NOT_LIVE; /* it left between the listing and the kick */
        if (status == 200 && code == 0)
                return VENDOR_DROP_DONE;
        snprintf(errstr, errstr_size, "DELETE %s: HTTP %ld code %lld", url, status, code);
        return vendor_http_is_transient(status) || status == 200 ? VENDOR_DROP_RETRY
                                                                 : VENDOR_DROP_FAILED;
}

enum vendor_drop srs_api_kick(struct vendor_api *va, const char *stream_id, char *errstr,
                              size_t errstr_size)
{
        char id[128];
        enum vendor_drop r = srs_find_publisher(va, stream_id, id, sizeof(id), errstr, errstr_size);

        return r == VENDOR_DROP_DONE ? srs_kick(va, id, errstr, errstr_size) : r;
}

/* Whether an entry of /api/v1/streams is stream_id with an active publisher. */
static bool srs_stream_is(const json_t *stream, const char *stream_id)
{
        const char *name = json_string_value(json_object_get(stream, "name"));
        const char *app = json_string_value(json_object_get(stream, "app"));
        size_t app_len = app ? strlen(app) : 0;

        if (!name)
                return false;
        return strcmp(name, stream_id) == 0 ||
               (app && strncmp(stream_id, app, app_len) == 0 && stream_id[app_len] == '/' &&
                strcmp(stream_id + app_len + 1, name) == 0);
}

/* Pages through GET /api/v1/streams: live when the stream is there with an active publisher. */
enum vendor_state srs_api_state(struct vendor_api *va, const char *stream_id, char *errstr,
                                size_t errstr_size)
{
        const char *ep = vendor_api_settings(va)->srs_api_endpoint;
        char url[1024];

        for (int page = 0; page < SRS_MAX_PAGES; page++) {
                struct http_reply rp;
                json_t *root, *streams, *st;
                size_t i, count;
                int found = 0; /* 1 live, -1 listed without an active publisher */

                snprintf(url, sizeof(url), "%.*s/api/v1/streams?start=%d&count=%d", base_len(ep),
                         ep, page * SRS_PAGE, SRS_PAGE);
                if (vendor_http_do(va, "GET", url, NULL, NULL, &rp, errstr, errstr_size) == -1)
                        return VENDOR_STATE_UNKNOWN;
                root = rp.status == 200 ? json_loads(rp.body ? rp.body : "", 0, NULL) : NULL;
                streams = json_object_get(root, "streams");
                if (!json_is_array(streams) ||
                    json_integer_value(json_object_get(root, "code")) != 0) {
                        snprintf(errstr, errstr_size, "GET %s: HTTP %ld, no stream list", url,
                                 rp.status);
                        json_decref(root);
                        vendor_http_reply_fini(&rp);
                        return VENDOR_STATE_UNKNOWN;
                }
                count = json_array_size(streams);
                json_array_foreach(streams, i, st)
                {
                        if (!srs_stream_is(st, stream_id))
                                continue;
                        found = json_is_true(
                                        json_object_get(json_object_get(st, "publish"), "active"))
                                        ? 1
                                        : -1;
                        break;
                }
                json_decref(root);
                vendor_http_reply_fini(&rp);
                if (found)
                        return found > 0 ? VENDOR_STATE_LIVE : VENDOR_STATE_NOT_LIVE;
                if (count < SRS_PAGE)
                        return VENDOR_STATE_NOT_LIVE;
        }
        snprintf(errstr, errstr_size, "SRS lists more than %d streams", SRS_PAGE * SRS_MAX_PAGES);
        return VENDOR_STATE_UNKNOWN;
}
