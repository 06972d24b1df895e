/* version.h: what was built (`git describe --always --dirty` and the commit, from the Makefile). */
#ifndef LIVEFLOW_VERSION_H
#define LIVEFLOW_VERSION_H

#include <stdbool.h>

extern const char liveflow_version[]; /* "unknown" when built outside a git checkout */
extern const char liveflow_commit[];

/**
 * @brief For main(): when argv has --version, prints "<prog> <version> (commit <commit>)" on
 * stdout and @returns true (the caller exits 0). Needs no configuration.
 */
bool version_requested(const char *prog, int argc, char **argv);

/** @brief Whether argv has --help or -h (the caller prints its usage on stdout, exits 0). */
bool help_requested(int argc, char **argv);

#endif
