/*
 * audience_rows.h: what the audience role's engine keeps of one batch (private to
 * audience_batch.c, which reads and applies, and audience_write.c, which writes back): the
 * operations, the rows they touch, each table of rows indexed by its key.
 */
#ifndef LIVEFLOW_AUDIENCE_ROWS_H
#define LIVEFLOW_AUDIENCE_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include "audience_batch.h"

#define MINUTE_MS 60000LL

/* A string -> index map (open addressing, FNV-1a). */
struct strmap {
        size_t *slots; /* index + 1; 0 is empty */
        size_t cap;    /* a power of two */
        size_t n;
};

/* A growable array of fixed-size elements. */
struct vec {
        void *v;
        size_t n, cap, size;
};

#define AT(a, type, i) (&((type *)(a).v)[i])

struct op_row {
        struct aud_op op;
        bool is_new;                     /* first copy of its event (or a timeout) */
        char room[AUD_ROOM_MAX + 1];     /* resolved */
        char stream[AUD_STREAM_MAX + 1]; /* resolved: the session's stream, else the event's */
        long long session_id;            /* 0: none */
};

struct stream_row {
        char key[AUD_STREAM_MAX + 1];
        char room[AUD_ROOM_MAX + 1];
        long long session_id, ended_ms;
        bool is_live, found;
};

struct room_live_row {
        char key[AUD_ROOM_MAX + 1];
        char stream[AUD_STREAM_MAX + 1];
        long long session_id; /* 0: not live */
};

struct visit_row {
        char key[AUD_ROOM_MAX + AUD_KEY_MAX + 2]; /* room \x1f audience_key */
        char room[AUD_ROOM_MAX + 1];
        char akey[AUD_KEY_MAX + 1];
        char visit_id[65];
        char stream[AUD_STREAM_MAX + 1];
        long long session_id, entered_ms, last_seen_ms, left_ms; /* 0: NULL */
        bool is_open, dirty;
};

struct room_row {
        char key[AUD_ROOM_MAX + 1];
        long long online;
        bool dirty;
};

struct session_row {
        char key[24]; /* the id in decimal */
        long long id;
        char stream[AUD_STREAM_MAX + 1];
        long long views, uv, chats, likes, follows, unfollows, shares, watch_s, watch_visits,
                buckets[5], peak;
        bool has_viewers, has_interactions;
};

struct pair_row {
        char key[24 + AUD_KEY_MAX + 2]; /* session \x1f audience_key */
        long long session_id;
        char akey[AUD_KEY_MAX + 1];
        bool exists, is_new;
};

struct history_row {
        char visit_id[65];
        char akey[AUD_KEY_MAX + 1];
        char room[AUD_ROOM_MAX + 1];
        char stream[AUD_STREAM_MAX + 1];
        long long session_id, entered_ms, left_ms, seconds;
        const char *reason;
};

struct minute_row {
        char key[AUD_ROOM_MAX + 24];
        char room[AUD_ROOM_MAX + 1];
        long long minute_ms, chats, likes, follows, shares;
};

struct seen_row {
        char key[65];
};

/* A table: its rows and their index. */
struct table {
        struct vec rows;
        struct strmap map;
};

struct aud_batch {
        struct db *db;
        struct db_text t;
        struct vec ops;
        struct table seen, streams, room_lives, visits, rooms, sessions, pairs, minutes;
        struct vec history;
        struct table dirty_rooms, dirty_sessions; /* struct seen_row-sized keys; kept on reset */
        size_t applied, closed;
        bool is_oom;
};

/** @brief A zeroed element appended to a; NULL when out of memory. */
void *aud_vec_push(struct vec *a);

/** @brief The row of key in t, made (zeroed, key set) when absent and add is set; NULL
 * otherwise (b->is_oom set when it could not be made). */
void *aud_table_row(struct aud_batch *b, struct table *t, const char *key, bool add);
void aud_table_clear(struct table *t);
void aud_table_free(struct table *t);
void aud_table_init(struct table *t, size_t size);

/** @brief "out of memory" in errstr. @returns DB_RETRY. */
enum db_result aud_oom(char *errstr, size_t errstr_size);

/** @brief ", " before every list item but the first. */
void aud_sep(struct db_text *t, size_t i);

/**
 * @brief Writes what the batch changed (audience_write.c): the ledger, the visits, the
 * history, the session viewers, the rooms, the session figures, the room minutes, one
 * multi-row statement each. @returns DB_OK or the first failure.
 */
enum db_result aud_batch_write(struct aud_batch *b, char *errstr, size_t errstr_size);

#endif
