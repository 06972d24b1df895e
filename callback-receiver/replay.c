/*
 * replay.c: the replay memory (see replay.h). Entries live in a ring in insertion order, so
 * the oldest is dropped first, both when it expires and when the ring is full; a linear-probing
 * hash table of ring positions finds an id. Deletion shifts the following cluster back (no
 * tombstones), so a lookup never walks more than the table's live clusters. Ids reach the table
 * only after their request's signature was verified, so the unkeyed hash cannot be flooded by
 * outsiders.
 */
#include "replay.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct replay_entry {
        char *id;
        uint64_t hash;
        int64_t expires_ms;
};

struct replay {
        pthread_mutex_t lock;
        struct replay_entry *ring; /* cap entries; the live ones are head .. head + count - 1 */
        size_t cap, head, count;
        uint32_t *slots;  /* ring position + 1; 0 is an empty slot */
        size_t slot_mask; /* slot count - 1; at least twice cap, a power of two */
};

/* FNV-1a, 64 bits. */
static uint64_t hash_of(const char *s)
{
        uint64_t h = 14695981039346656037ULL;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

struct replay *replay_new(size_t max_entries)
{
        struct replay *r;
        size_t slots = 2;

        if (max_entries == 0 || max_entries > UINT32_MAX / 4 || !(r = calloc(1, sizeof(*r))))
                return NULL;
        pthread_mutex_init(&r->lock, NULL);
        while (slots < 2 * max_entries)
                slots *= 2;
        r->cap = max_entries;
        r->slot_mask = slots - 1;
        r->ring = calloc(max_entries, sizeof(*r->ring));
        r->slots = calloc(slots, sizeof(*r->slots));
        if (!r->ring || !r->slots) {
                replay_destroy(r);
                return NULL;
        }
        return r;
}

void replay_destroy(struct replay *r)
{
        if (!r)
                return;
        for (size_t i = 0; r->ring && i < r->count; i++)
                free(r->ring[(r->head + i) % r->cap].id);
        pthread_mutex_destroy(&r->lock);
        free(r->ring);
        free(r->slots);
        free(r);
}

/* ------------------------------------------------------------ the table (lock held) */

/* The slot holding id, or the empty slot where it would go. */
static size_t find_slot(const struct replay *r, const char *id, uint64_t hash)
{
        size_t i = hash & r->slot_mask;

        while (r->slots[i]) {
                const struct replay_entry *e = &r->ring[r->slots[i] - 1];

                if (e->hash == hash && strcmp(e->id, id) == 0)
                        break;
                i = (i + 1) & r->slot_mask;
        }
        return i;
}

/* Empties slot i and moves back every later entry of its cluster that may fill the gap. */
static void delete_slot(struct replay *r, size_t i)
{
        size_t j = i;

        for (;;) {
                size_t home;

                j = (j + 1) & r->slot_mask;
                if (!r->slots[j])
                        break;
                home = r->ring[r->slots[j] - 1].hash & r->slot_mask;
                /* The entry at j stays when its home lies cyclically in (i, j]. */
                if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                        continue;
                r->slots[i] = r->slots[j];
                i = j;
        }
        r->slots[i] = 0;
}

/* Drops the oldest entry. */
static void drop_head(struct replay *r)
{
        struct replay_entry *e = &r->ring[r->head];

        delete_slot(r, find_slot(r, e->id, e->hash));
        free(e->id);
        memset(e, 0, sizeof(*e));
        r->head = (r->head + 1) % r->cap;
        r->count--;
}

/*
 * Entries are dropped in insertion order, which is nearly expiry order (an expiry is the
 * insertion time plus a fixed window, or a little more); one that outlives its successors
 * only holds them back a little, and lookups check each entry's own expiry.
 */
static void drop_expired(struct replay *r, int64_t now_ms)
{
        while (r->count > 0 && r->ring[r->head].expires_ms <= now_ms)
                drop_head(r);
}

/* ------------------------------------------------------------ the verbs */

bool replay_contains(struct replay *r, const char *id, int64_t now_ms)
{
        uint64_t hash = hash_of(id);
        bool is_known;
        size_t i;

        pthread_mutex_lock(&r->lock);
        drop_expired(r, now_ms);
        i = find_slot(r, id, hash);
        is_known = r->slots[i] && r->ring[r->slots[i] - 1].expires_ms > now_ms;
        pthread_mutex_unlock(&r->lock);
        return is_known;
}

static int insert(struct replay *r, const char *id, uint64_t hash, int64_t expires_ms,
                  int64_t now_ms)
{
        size_t pos, slot;
        int rc = 0;
        char *copy = strdup(id);

        if (!copy)
                return -1;
        if (r->count == r->cap) {
                rc = r->ring[r->head].expires_ms > now_ms;
                drop_head(r);
        }
        pos = (r->head + r->count) % r->cap;
        r->ring[pos] = (struct replay_entry){.id = copy, .hash = hash, .expires_ms = expires_ms};
        r->count++;
        slot = find_slot(r, id, hash); /* after the drop, which may have moved the cluster */
        r->slots[slot] = (uint32_t)(pos + 1);
        return rc;
}

int replay_remember(struct replay *r, const char *id, int64_t expires_ms, int64_t now_ms)
{
        uint64_t hash = hash_of(id);
        size_t i;
        int rc = 0;

        pthread_mutex_lock(&r->lock);
        drop_expired(r, now_ms);
        i = find_slot(r, id, hash);
        if (r->slots[i]) {
                struct replay_entry *e = &r->ring[r->slots[i] - 1];

                if (expires_ms > e->expires_ms)
                        e->expires_ms = expires_ms;
        } else {
                rc = insert(r, id, hash, expires_ms, now_ms);
        }
        pthread_mutex_unlock(&r->lock);
        return rc;
}

size_t replay_count(struct replay *r)
{
        size_t n;

        pthread_mutex_lock(&r->lock);
        n = r->count;
        pthread_mutex_unlock(&r->lock);
        return n;
}
