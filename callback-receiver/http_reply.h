/* http_reply.h: the receiver's responses: JSON {"code":0} or {"code":N,"message":"..."}. */
#ifndef LIVEFLOW_RECEIVER_HTTP_REPLY_H
#define LIVEFLOW_RECEIVER_HTTP_REPLY_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* Headers added to a response besides Content-Type. Every pointer is borrowed; NULL omits. */
struct http_reply_opts {
        const char *trace_id; /* X-Request-Id */
        const char *allow;    /* Allow, on a 405 */
        bool must_close;      /* Connection: close (the rest of the request was not read) */
};

/**
 * @brief Writes the JSON body for status into out: {"code":0} for 200, else
 * {"code":<status>,"message":"<message>"} with message escaped (NULL reads as the status's
 * reason phrase; bytes outside printable ASCII become '?'). Truncates the message, never the JSON.
 * @returns the body's length, excluding the NUL. out_size must be at least 64.
 */
size_t http_reply_body(char *out, size_t out_size, unsigned int status, const char *message);

/**
 * @brief Queues status with the JSON body of http_reply_body(), Content-Type application/json,
 * the headers of opts (may be NULL) and, on a 503, Retry-After: 1.
 * @returns what MHD_queue_response() returned (MHD_NO also when out of memory).
 */
enum MHD_Result http_reply_json(struct MHD_Connection *conn, unsigned int status,
                                const char *message, const struct http_reply_opts *opts);

/**
 * @brief Queues status with body (len bytes of content_type) and the headers of opts.
 * mode says who owns body, as for MHD_create_response_from_buffer().
 */
enum MHD_Result http_reply_raw(struct MHD_Connection *conn, unsigned int status,
                               const char *content_type, void *body, size_t len,
                               enum MHD_ResponseMemoryMode mode,
                               const struct http_reply_opts *opts);

#endif
