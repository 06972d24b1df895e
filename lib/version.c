/* version.c: the build's version, from $(GEN)/version.h, which the Makefile rewrites only when
 * `git describe` changes (so a new commit rebuilds this file and relinks, nothing else). */
#include "version.h"

#include <stdio.h>
#include <string.h>

#include "liveflow_version.h"

const char liveflow_version[] = LIVEFLOW_VERSION;
const char liveflow_commit[] = LIVEFLOW_COMMIT;

bool version_requested(const char *prog, int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if (strcmp(argv[i], "--version") == 0) {
                        printf("%s %s (commit %s)\n", prog, liveflow_version, liveflow_commit);
                        return true;
                }
        }
        return false;
}

bool help_requested(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return true;
        }
        return false;
}
