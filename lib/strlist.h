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

#endif
