/* http_reply.c: builds and queues the receiver's JSON responses with libmicrohttpd. */
#include "http_reply.h"

#include <stdio.h>
#include <string.h>

#include "text.h"

static const char *reason_phrase(unsigned int status)
{
        const char *s = MHD_get_reason_phrase_for(status);

        return s && *s ? s : "error";
}

/* JSON string escaping for our own messages; anything unexpected is replaced, not trusted. */
static size_t escape_into(char *out, size_t size, const char *s)
{
        size_t n = 0;

        for (; *s && n + 2 < size; s++) {
                unsigned char c = (unsigned char)*s;

                if (c == '"' || c == '\\') {
                        out[n++] = '\\';
                        out[n++] = (char)c;
                } else {
                        out[n++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
                }
        }
        out[n] = '\0';
        return n;
}

size_t http_reply_body(char *out, size_t out_size, unsigned int status, const char *message)
{
        char escaped[512];
        size_t room;
        int n;

        if (status == 200)
                return text_copy(out, out_size, "{\"code\":0}");
        /* Leave room for the code and the closing quote and brace, whatever the message. */
        room = out_size > 40 ? out_size - 40 : 1;
        escape_into(escaped, room < sizeof(escaped) ? room : sizeof(escaped),
                    message ? message : reason_phrase(status));
        n = snprintf(out, out_size, "{\"code\":%u,\"message\":\"%s\"}", status, escaped);
        return n < 0 ? 0 : (size_t)n;
}

static void add_headers(struct MHD_Response *rsp, unsigned int status,
                        const struct http_reply_opts *opts)
{
        if (status == 503)
                MHD_add_response_header(rsp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        if (!opts)
                return;
        if (opts->trace_id)
                MHD_add_response_header(rsp, "X-Request-Id", opts->trace_id);
        if (opts->allow)
                MHD_add_response_header(rsp, MHD_HTTP_HEADER_ALLOW, opts->allow);
        if (opts->must_close)
                MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONNECTION, "close");
}

enum MHD_Result http_reply_raw(struct MHD_Connection *conn, unsigned int status,
                               const char *content_type, void *body, size_t len,
                               enum MHD_ResponseMemoryMode mode, const struct http_reply_opts *opts)
{
        struct MHD_Response *rsp = MHD_create_response_from_buffer(len, body, mode);
        enum MHD_Result ret;

        if (!rsp)
                return MHD_NO;
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        add_headers(rsp, status, opts);
        ret = MHD_queue_response(conn, status, rsp);
        MHD_destroy_response(rsp); /* the connection holds its own reference */
        return ret;
}

enum MHD_Result http_reply_json(struct MHD_Connection *conn, unsigned int status,
                                const char *message, const struct http_reply_opts *opts)
{
        char body[512];
        size_t len = http_reply_body(body, sizeof(body), status, message);

        return http_reply_raw(conn, status, "application/json", body, len, MHD_RESPMEM_MUST_COPY,
                              opts);
}
