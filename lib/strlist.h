/* strlist.h: comma-separated setting values ("k1, k2,k3"), read one item at a time. */
#ifndef LIVEFLOW_STRLIST_H
#define LIVEFLOW_STRLIST_H

#include <stddef.h>

/**
 * @brief Calls fn(item, len, arg) for each comma-separated item of list, blanks (spaces and
 * tabs) around it trimmed, empty items skipped; item is not NUL-terminated. NULL is an empty
 * list. Stops at the first fn that returns -1.
 * @returns 0, or -1 when fn did.
 */
int strlist_each(const char *list, int (*fn)(const char *item, size_t len, void *arg), void *arg);

/**
 * @brief Appends a copy of each item of list (as strlist_each() walks it) to *items, *cnt of
 * them (malloc'd; NULL and 0 to start). An item longer than max bytes is refused with
 * "<setting>: <what> N is longer than max bytes".
 * @returns 0, or -1 with errstr (the items copied so far stay: strlist_free() them).
 */
int strlist_copy(const char *list, size_t max, const char *setting, const char *what, char ***items,
                 size_t *cnt, char *errstr, size_t errstr_size);

/** @brief Wipes (they are often secrets) and frees the cnt items and the array. */
void strlist_free(char **items, size_t cnt);

#endif
