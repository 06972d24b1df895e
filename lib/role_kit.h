/*
 * role_kit.h: the small pieces every consumer role's apply() uses: what a MySQL result means
 * for the record, and the fields of the event's payload; and the shared half of a role's
 * set-based apply_many() (struct role_batch): reading the batch, its event ids in key order,
 * which records are new to the ledger, the ledger's rows, and the checks that send a batch
 * back to one record at a time.
 *
 * A set-based role is then: role_batch_open() with the role's reader; the role's own
 * queries for the rows its new records touch, in key order, in as few statements as it can;
 * every new record decided in batch order on those rows, as apply() would decide it one at a
 * time; role_batch_write_ledger() and the role's multi-row writes; role_batch_result().
 * Anything it cannot decide as apply() would goes back with role_batch_fall_back().
 */
#ifndef LIVEFLOW_ROLE_KIT_H
#define LIVEFLOW_ROLE_KIT_H

#include <stdbool.h>

#include "codec.h"
#include "consumer.h"
#include "db.h"
#include "keyset.h"

struct ledger;

/**
 * @brief What a MySQL result means for the record: done (DB_OK, or DB_DUPLICATE: the
 * idempotent write happened before), retry (transient) or permanent (the data is wrong).
 */
enum apply_result apply_from_db(enum db_result r);

/** @brief The payload's string field key, or NULL when absent, null or not a string. */
const char *payload_str(const struct event *ev, const char *key);

/** @brief The payload's integer field key into *out; false (and *out kept) when not an integer. */
bool payload_int(const struct event *ev, const char *key, long long *out);

/** @brief The payload's integer field key, or dflt when it is not an integer. */
long long payload_int_or(const struct event *ev, const char *key, long long dflt);

/** @brief The payload's integer field key when it is in [0, max], else -1 (unknown). */
long long payload_count(const struct event *ev, const char *key, long long max);

/** @brief Whether the event is of event_type with a payload record named payload_name. */
bool event_is(const struct event *ev, const char *event_type, const char *payload_name);

/* ------------------------------------------------------------------ a batch at once */

/* FROM_UNIXTIME on MariaDB 10.11 stops in 2038: a later time goes one record at a time. */
#define ROLE_TIME_MAX_MS 2147483647999LL

/** @brief Whether ms is a time MySQL stores (0 .. ROLE_TIME_MAX_MS). */
bool role_time_storable(long long ms);

/** @brief strcmp() of two `const char *` array elements, for qsort() and bsearch(). */
int role_cmp_str(const void *a, const void *b);

/** @brief Appends the n strings to sql as quoted values separated by ", " (a row's columns). */
void role_text_strs(struct db *db, struct db_text *sql, const char *const *strs, size_t n);

/** @brief Sorts the n strings and keeps each distinct one once, in order. @returns how many. */
size_t role_distinct(const char **strs, size_t n);

/* The shared half of a set-based batch; zeroed, then role_batch_open(). */
struct role_batch {
        struct apply_slot *slots; /* the runtime's, n of them */
        size_t n;
        struct keyset ids;  /* the event ids of the valid records, in key order */
        bool *is_valid;     /* per slot: read() took it (else it is APPLY_PERMANENT) */
        bool *is_new;       /* per slot: the first copy of an event id the ledger lacks */
        size_t *first;      /* per slot: the batch index of the first copy of its event id */
        size_t fresh;       /* how many are new */
        bool is_unread;     /* taken for new without the look-up (role_batch_mark_unread()) */
        struct db_text sql; /* a statement buffer for the role */
};

/**
 * @brief Reads the batch: read(arg, i) for every slot (0, or -1 with slots[i].error set: the
 * slot is refused, APPLY_PERMANENT, nothing written for it); the valid records' event ids in
 * key order; which of them the ledger holds (one query). @returns DB_OK; DB_RETRY with errstr
 * when the batch must go one record at a time (event ids MySQL's collation might take for
 * one, or one returned in another spelling; out of memory); else what MySQL said.
 */
__attribute__((warn_unused_result)) enum db_result
role_batch_open(struct role_batch *b, struct ledger *ledger, struct apply_slot *slots, size_t n,
                int (*read)(void *arg, size_t i), void *arg, char *errstr, size_t errstr_size);

/**
 * @brief role_batch_open() without the look-up: reads the batch and sorts its event ids;
 * nothing is marked new yet (role_batch_look_up() or role_batch_mark_unread() next).
 * @returns DB_OK, or DB_RETRY with errstr (ids MySQL's collation might take for one; out of
 * memory).
 */
__attribute__((warn_unused_result)) enum db_result
role_batch_read(struct role_batch *b, struct apply_slot *slots, size_t n,
                int (*read)(void *arg, size_t i), void *arg, char *errstr, size_t errstr_size);

/**
 * @brief Which of the read batch's events the ledger holds (one query): the first copy of each
 * other event id is new. Again after role_batch_mark_unread() is fine. @returns as
 * role_batch_open().
 */
__attribute__((warn_unused_result)) enum db_result
role_batch_look_up(struct role_batch *b, struct ledger *ledger, char *errstr, size_t errstr_size);

/**
 * @brief The read batch taken for new without the look-up: the first copy of every event id.
 * role_batch_write_ledger() then writes with a plain INSERT, which fails whole with
 * DB_DUPLICATE on an event the ledger holds (see struct role_gate).
 */
void role_batch_mark_unread(struct role_batch *b);

/** @brief Whether the last role_batch_look_up() found an event the ledger held before. */
bool role_batch_met_held(const struct role_batch *b);

/**
 * @brief What a write after the ledger's returns, r, on the unread way: a duplicate key there
 * is not an event held before (the ledger's rows are written, and no savepoint takes them
 * back), so DB_RETRY: the batch goes one record at a time. Else r.
 */
enum db_result role_batch_after_ledger(const struct role_batch *b, enum db_result r);

/** @brief Frees what role_batch_open() allocated; the slots are the runtime's. */
void role_batch_close(struct role_batch *b);

/**
 * @brief One multi-row ledger insert: every new record with outcome(arg, i). A row MySQL skips
 * (recorded meanwhile) is DB_DUPLICATE, which role_batch_result() turns into a retry. On the
 * unread way (role_batch_mark_unread()) a plain INSERT: DB_DUPLICATE with nothing written.
 */
__attribute__((warn_unused_result)) enum db_result
role_batch_write_ledger(struct role_batch *b, struct ledger *ledger,
                        const char *(*outcome)(void *arg, size_t i), void *arg, char *errstr,
                        size_t errstr_size);

/** @brief A batch the set-based path cannot decide as apply() would: why into errstr, DB_RETRY. */
enum db_result role_batch_fall_back(const char *why, char *errstr, size_t errstr_size);

/**
 * @brief What apply_many() returns after r: APPLY_DONE for DB_OK; APPLY_RETRY for DB_RETRY
 * and DB_DUPLICATE (a row changed meanwhile: the runtime goes one record at a time), and for
 * anything else too, since a batch cannot pin a failure on one record.
 */
enum apply_result role_batch_result(enum db_result r);

/* ------------------------------------------------------------------ unread, then read first */

struct metric;
struct metrics;

/** @brief Ids MySQL's collation matches other than byte for byte: why into errstr, DB_RETRY. */
enum db_result role_batch_mismatch(char *errstr, size_t errstr_size);

/*
 * The way a money role writes a batch. In a stream of new records the look-up of what MySQL
 * holds finds nothing, so a batch first goes unread: every first copy is taken for new and the
 * writes say otherwise with a duplicate key (DB_DUPLICATE). The batch then undoes what it wrote
 * (back to a savepoint, or nothing when it wrote nothing before that key) and goes read first;
 * after that, batches read first until one finds nothing held before (a replay after a restart
 * is many such batches, each read once rather than written twice). A role whose first write is
 * its ledger insert needs no savepoint: unread, that insert is a plain INSERT
 * (role_batch_mark_unread()), which fails whole.
 */
struct role_gate {
        bool is_reading_first; /* read_first() sets it: whether it met rows held before */
        struct metric *m_unread, *m_read_first, *m_conflict;
};

/** @brief Registers the counter name (way="unread", "read_first", "conflict") with help. */
void role_gate_init(struct role_gate *g, struct metrics *m, const char *name, const char *help);

/* A role's two ways of writing one batch (arg is the role's batch). */
struct role_gate_ways {
        const char *savepoint; /* taken before unread(); NULL when it writes nothing first */
        enum db_result (*unread)(void *arg, char *errstr, size_t errstr_size);
        void (*forget)(void *arg); /* what unread() marked, before read_first(); may be NULL */
        enum db_result (*read_first)(void *arg, char *errstr, size_t errstr_size);
};

/**
 * @brief Writes the batch the way g is in (see struct role_gate), counting each way; sql is
 * the batch's statement buffer. @returns what the way that finished returned.
 */
__attribute__((warn_unused_result)) enum db_result
role_gate_write(struct role_gate *g, const struct role_gate_ways *ways, struct db *db,
                struct db_text *sql, void *arg, char *errstr, size_t errstr_size);

/**
 * @brief What apply_many() returns after the gate's r: a duplicate key met on the read-first
 * way (a row taken meanwhile) goes one record at a time; else apply_from_db().
 */
enum apply_result role_gate_result(enum db_result r);

#endif
