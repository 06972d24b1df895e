/* stores.c: MySQL and Redis connections and the shared options of the store subcommands. */
#include "stores.h"

#include <string.h>

#include "db.h"
#include "redis_conn.h"

/* The stores' timeout for these commands: their reads go over whole tables (every room's
 * sums, every live stream), longer than a worker's per-record statements may take. */
#define STORE_TIMEOUT_S 300

int ctl_stores_open(const struct ctl *ctl, const char *prog, bool need_redis, struct ctl_stores *st)
{
        const struct settings *s = &ctl->settings;
        char err[512];

        memset(st, 0, sizeof(*st));
        if (!s->mysql_url || !*s->mysql_url)
                return ctl_usage_error(prog, "LIVEFLOW_MYSQL_URL is not set (nor in .run/env)");
        if (need_redis && (!s->redis_url || !*s->redis_url))
                return ctl_usage_error(prog, "LIVEFLOW_REDIS_URL is not set (nor in .run/env)");
        if (!(st->db = db_new(s->mysql_url,
                              s->mysql_timeout_s > STORE_TIMEOUT_S ? (int)s->mysql_timeout_s
                                                                   : STORE_TIMEOUT_S,
                              err, sizeof(err))))
                return ctl_usage_error(prog, "%s", err);
        if (need_redis && !(st->redis = redis_conn_new(s->redis_url, (int)s->redis_timeout_ms, err,
                                                       sizeof(err)))) {
                ctl_stores_close(st);
                return ctl_usage_error(prog, "%s", err);
        }
        return CTL_EXIT_OK;
}

void ctl_stores_close(struct ctl_stores *st)
{
        redis_conn_destroy(st->redis);
        db_destroy(st->db);
        memset(st, 0, sizeof(*st));
}

int ctl_change_parse(const char *prog, int argc, char **argv, struct ctl_change_opts *o,
                     const char **pos, int max_pos, int *npos)
{
        o->execute = false;
        o->limit = 20;
        *npos = 0;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];

                if (strcmp(a, "--execute") == 0) {
                        o->execute = true;
                } else if (strcmp(a, "--limit") == 0 || strncmp(a, "--limit=", 8) == 0) {
                        const char *v = a[7] == '=' ? a + 8 : i + 1 < argc ? argv[++i] : NULL;

                        if (ctl_parse_ll(v, 0, 1000000, &o->limit) == -1)
                                return ctl_usage_error(prog, "--limit wants a count, not \"%s\"",
                                                       v ? v : "");
                } else if (a[0] == '-' && a[1] && strcmp(a, "--") != 0) {
                        return ctl_usage_error(prog, "unknown option %s (see --help)", a);
                } else if (strcmp(a, "--") != 0) {
                        if (*npos >= max_pos)
                                return ctl_usage_error(prog, "unexpected argument \"%s\"", a);
                        pos[(*npos)++] = a;
                }
        }
        return 0;
}
