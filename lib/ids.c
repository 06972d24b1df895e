/* ids.c: session ids; the worker bits keep concurrent instances apart. */
#include "ids.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define IDS_EPOCH_MS 1704067200000ULL /* 2024-01-01T00:00:00Z */

struct ids {
        unsigned int worker;
        uint64_t last_ms;
        unsigned int seq;
};

static uint64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct ids *ids_new(unsigned int worker)
{
        struct ids *ids = calloc(1, sizeof(*ids));

        if (ids)
                ids->worker = worker & 0x3ff;
        return ids;
}

void ids_destroy(struct ids *ids)
{
        free(ids);
}

uint64_t ids_next(struct ids *ids)
{
        uint64_t ms = wall_ms() - IDS_EPOCH_MS;

        /* A clock that steps back, or 4096 ids in one millisecond, borrows the next millisecond. */
        if (ms <= ids->last_ms) {
                ms = ids->last_ms;
                if (++ids->seq > 0xfff) {
                        ms++;
                        ids->seq = 0;
                }
        } else {
                ids->seq = 0;
        }
        ids->last_ms = ms;
        return (ms << 22) | ((uint64_t)ids->worker << 12) | ids->seq;
}

unsigned int ids_worker_from(const char *instance_id)
{
        uint32_t h = 2166136261u;

        if (!instance_id || !*instance_id)
                return (unsigned int)getpid() & 0x3ff;
        for (const char *p = instance_id; *p; p++) {
                h ^= (unsigned char)*p;
                h *= 16777619u;
        }
        return h & 0x3ff;
}
