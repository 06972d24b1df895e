/* srs.c: SRS http_hooks callbacks (see srs.h). */
#include "srs.h"

#include <stdlib.h>

const char *const srs_topics[] = {"live.stream", "live.record", "live.viewer", "live.other", NULL};

struct srs {
        int unused;
};

struct srs *srs_new(const struct settings *s, struct metrics *metrics, char *errstr,
                    size_t errstr_size)
{
        (void)s;
        (void)metrics;
        (void)errstr;
        (void)errstr_size;
        return calloc(1, sizeof(struct srs));
}

void srs_destroy(struct srs *srs)
{
        free(srs);
}

int srs_map(struct srs *srs, const struct webhook_request *req, struct webhook_event *ev,
            struct webhook_verdict *v)
{
        (void)srs;
        (void)req;
        (void)ev;
        return webhook_refuse(v, 501, NULL, "SRS callbacks are not served yet");
}
