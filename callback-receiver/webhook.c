/* webhook.c: the vendor-neutral result of reading one callback (see webhook.h). */
#include "webhook.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void webhook_event_fini(struct webhook_event *ev)
{
        if (!ev)
                return;
        json_decref(ev->payload);
        free(ev->stream_id);
        free(ev->anchor_id);
        free(ev->room_id);
        free(ev->value);
        free(ev->raw);
        memset(ev, 0, sizeof(*ev));
}

void webhook_batch_fini(struct webhook_batch *b)
{
        for (size_t i = 0; b->items && i < b->n; i++) {
                webhook_event_fini(&b->items[i].ev);
                free(b->items[i].raw);
        }
        free(b->items);
        b->items = NULL;
        b->n = 0;
}

int webhook_refuse(struct webhook_verdict *v, unsigned int status, const char *auth_failure,
                   const char *fmt, ...)
{
        va_list ap;

        v->status = status;
        v->auth_failure = auth_failure;
        va_start(ap, fmt);
        vsnprintf(v->message, sizeof(v->message), fmt, ap);
        va_end(ap);
        return -1;
}

const char *webhook_header(const struct webhook_request *req, const char *name)
{
        return req->lookup ? req->lookup(req->ctx, WEBHOOK_HEADER, name) : NULL;
}

const char *webhook_query(const struct webhook_request *req, const char *name)
{
        return req->lookup ? req->lookup(req->ctx, WEBHOOK_QUERY, name) : NULL;
}
