/* internal.c: the platform's own endpoints (see internal.h). */
#include "internal.h"

#include <stdlib.h>

const char *const internal_topics[] = {"live.reward", "live.withdrawal", "live.stream", "live.audit",
                                       NULL};

struct internal {
        int unused;
};

struct internal *internal_new(const struct settings *s, struct metrics *metrics, char *errstr,
                              size_t errstr_size)
{
        (void)s;
        (void)metrics;
        (void)errstr;
        (void)errstr_size;
        return calloc(1, sizeof(struct internal));
}

void internal_destroy(struct internal *in)
{
        free(in);
}

int internal_map(struct internal *in, enum internal_endpoint ep, const struct webhook_request *req,
                 struct webhook_event *ev, struct webhook_verdict *v)
{
        (void)in;
        (void)ep;
        (void)req;
        (void)ev;
        return webhook_refuse(v, 501, NULL, "not served yet");
}

void internal_acked(struct internal *in, const struct webhook_request *req,
                    const struct webhook_event *ev)
{
        (void)in;
        (void)req;
        (void)ev;
}
