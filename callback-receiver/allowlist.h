/* allowlist.h: source-address allowlists of CIDR blocks (LIVEFLOW_TENCENT_ALLOW_IPS). */
#ifndef LIVEFLOW_RECEIVER_ALLOWLIST_H
#define LIVEFLOW_RECEIVER_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct allowlist;

/**
 * @brief Parses a comma-separated list of IPv4/IPv6 addresses and CIDR blocks
 * ("203.0.113.0/24, 2001:db8::/32, 198.51.100.7"). NULL or blank makes an empty list,
 * which allows every address. key names the setting in errors.
 * @returns the list (allowlist_destroy() frees it), or NULL with errstr naming the entry.
 */
struct allowlist *allowlist_new(const char *key, const char *cidrs, char *errstr,
                                size_t errstr_size);

/** @brief Frees the list; NULL is fine. */
void allowlist_destroy(struct allowlist *al);

/** @brief True when the list is empty or holds addr (IPv4-mapped IPv6 is read as IPv4). */
bool allowlist_allows(const struct allowlist *al, const struct sockaddr *addr);

#endif
