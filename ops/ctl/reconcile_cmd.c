/* reconcile_cmd.c: `liveflow-ctl reconcile`, the command of lib/reconcile.c (which
 * `liveflow-settlement reconcile` also runs). */
#include "ctl_rebuild.h"

#include <stdlib.h>
#include <string.h>

#include "reconcile.h"

/* The dispatcher took --json out of argv; reconcile reads it back from there. */
int ctl_reconcile_run(struct ctl *ctl, int argc, char **argv)
{
        char **args = calloc((size_t)argc + 2, sizeof(*args));
        int n = 0, rc;

        if (!args)
                return CTL_EXIT_USAGE;
        for (int i = 0; i < argc; i++)
                args[n++] = argv[i];
        if (ctl->json)
                args[n++] = (char *)"--json";
        args[n] = NULL;
        rc = reconcile_main(n, args);
        free(args);
        return rc;
}
