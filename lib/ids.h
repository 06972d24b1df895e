/* ids.h: snowflake-style 63-bit ids, unique across instances without coordination. */
#ifndef LIVEFLOW_IDS_H
#define LIVEFLOW_IDS_H

#include <stdint.h>

struct ids;

/**
 * @brief A generator for worker `worker` (0..1023). Layout: 41 bits of milliseconds since
 * 2024-01-01, 10 bits of worker, 12 bits of sequence. @returns NULL when out of memory.
 */
struct ids *ids_new(unsigned int worker);

/** @brief Frees the generator; NULL is fine. */
void ids_destroy(struct ids *ids);

/** @brief The next id: strictly increasing for this generator, even if the clock steps back. */
uint64_t ids_next(struct ids *ids);

/** @brief A worker number from a stable instance name (FNV-1a), or from the pid when NULL. */
unsigned int ids_worker_from(const char *instance_id);

#endif
