/*
 * replay.h: a bounded, in-process memory of acknowledged webhook-ids, each kept until its
 * expiry time, so that a replayed request is recognised without producing a second event.
 */
#ifndef LIVEFLOW_RECEIVER_REPLAY_H
#define LIVEFLOW_RECEIVER_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Thread-safe: every call takes the memory's mutex (these endpoints are not the hot path). */
struct replay;

/**
 * @brief Makes a memory of at most max_entries ids (>= 1). Its arrays are allocated at once
 * (about 28 bytes per entry, touched only as they fill) and the ids are copied on insertion.
 * @returns the memory (free it with replay_destroy()), or NULL when out of memory.
 */
struct replay *replay_new(size_t max_entries);

/** @brief Frees the memory and every id in it; NULL is fine. */
void replay_destroy(struct replay *r);

/**
 * @brief True when id was remembered and its expiry (Unix ms) is after now_ms. Entries that
 * expired are dropped on the way.
 */
bool replay_contains(struct replay *r, const char *id, int64_t now_ms);

/**
 * @brief Remembers id (copied) until expires_ms; an id already present keeps the later of its
 * two expiries. When the memory is full the oldest entry is dropped to make room, expired or
 * not (the deterministic event ids downstream still catch a replay of it).
 * @returns 1 when an entry that had not expired was dropped, 0 when not, -1 when out of memory
 * (the id is then not remembered).
 */
__attribute__((warn_unused_result)) int replay_remember(struct replay *r, const char *id,
                                                        int64_t expires_ms, int64_t now_ms);

/** @brief How many ids are held now (expired ones included until they are dropped). */
size_t replay_count(struct replay *r);

#endif
