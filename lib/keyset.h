/*
 * keyset.h: the shared half of a set-based batch (consumer_role.apply_many).
 *
 * A batch names its records by an id (an event id, a tip id, a stream id). The set holds
 * each record's id and its place in the batch, sorted by id (byte order) and, among copies of
 * one id, by place: the first copy of an id is the batch's earliest. On it sit what every
 * batch path asks: is this id's first copy, where is an id, might MySQL's collation take two
 * of the ids for one (then the batch goes one record at a time, which MySQL sorts out), and
 * which of the ids a table holds already, in one statement.
 */
#ifndef LIVEFLOW_KEYSET_H
#define LIVEFLOW_KEYSET_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

#define KEYSET_ID_MAX (255 * 4) /* the longest id a query returns: VARCHAR(255) in utf8mb4 */

/*
 * Ids per IN list of keyset_find_known(). A list of 1 000 values or more
 * (in_predicate_conversion_threshold) MariaDB turns into a join with a table of the values,
 * which it may drive from the table's side: a read, and in a locking read a lock, of every row.
 */
#define KEYSET_IN_LIST_MAX 250

struct keyset_item {
        const char *id; /* borrowed from the record */
        size_t index;   /* the record's place in the batch */
        bool is_known;  /* keyset_find_known(): the table holds this id */
};

struct keyset {
        struct keyset_item *items;
        size_t n, cap;
        bool is_mismatch; /* a query returned an id none of ours matches byte for byte */
};

/** @brief Room for cap ids. @returns 0, or -1 when out of memory. */
int keyset_init(struct keyset *ks, size_t cap);

/** @brief Frees the set's memory (not the ids); the set may be initialised again. */
void keyset_free(struct keyset *ks);

/** @brief Adds the id of the record at index (at most cap of them). */
void keyset_add(struct keyset *ks, const char *id, size_t index);

/** @brief Sorts by id, then by index; call once every id is added. */
void keyset_sort(struct keyset *ks);

/** @brief Whether item i is the first (earliest) copy of its id. */
bool keyset_is_first(const struct keyset *ks, size_t i);

/** @brief The position of the first copy of id, or ks->n when the set lacks it. */
size_t keyset_find(const struct keyset *ks, const char *id);

/**
 * @brief Whether two of the set's distinct ids might be one id to MySQL (a case-insensitive,
 * accent-folding PAD SPACE collation). Errs on the side of yes.
 */
bool keyset_may_collide(const struct keyset *ks);

/**
 * @brief Whether two of the n distinct ids might be one id to MySQL, as keyset_may_collide()
 * (reorders ids).
 */
bool keys_may_collide(const char **ids, size_t n);

/** @brief Appends "(id1, id2, ...)": each distinct id once, quoted, in key order. */
void keyset_add_list(const struct keyset *ks, struct db *db, struct db_text *t);

/**
 * @brief Runs `select` followed by the set's list (e.g. "SELECT event_id FROM live_events
 * WHERE consumer = 'x' AND event_id IN "): its first column is an id. Marks every copy of each
 * id it returns is_known; an id that matches none of ours byte for byte sets is_mismatch.
 * Past KEYSET_IN_LIST_MAX distinct ids still one statement: `select` (list) UNION ALL `select`
 * (list) ..., KEYSET_IN_LIST_MAX ids a list.
 */
enum db_result keyset_find_known(struct keyset *ks, struct db *db, struct db_text *t,
                                 const char *select, char *errstr, size_t errstr_size);

#endif
