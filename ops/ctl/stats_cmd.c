/*
 * stats_cmd.c: `liveflow-ctl stats` (see ctl_stats_usage): tips summed over a time range,
 * grouped by and filtered on dimensions. The anchor's and the audience's genders are the
 * ones liveflow-stats resolved when it counted the tip (hourly_reward_stats, stats_tip); the
 * other profile dimensions are read from anchors / audiences and their tags as they are now.
 */
#include "stats_cmd.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "stores.h"

#define MAX_BY      6
#define MAX_FILTERS 12
#define VALUE_MAX   128

enum side { SIDE_HOURLY, SIDE_ANCHOR, SIDE_ANCHOR_TAG, SIDE_AUDIENCE, SIDE_AUDIENCE_TAG };

struct dim {
        const char *name;
        const char *expr; /* over h (the tip table), a (anchors), u (audiences), at / ut (tags) */
        enum side side;
};

static const struct dim dims[] = {
        {"hour", "DATE_FORMAT(h.hour, '%Y-%m-%dT%H:00Z')", SIDE_HOURLY},
        {"day", "DATE_FORMAT(h.hour, '%Y-%m-%d')", SIDE_HOURLY},
        {"anchor", "h.anchor_id", SIDE_HOURLY},
        {"anchor_gender", "h.anchor_gender", SIDE_HOURLY},
        {"audience_gender", "h.audience_gender", SIDE_HOURLY},
        {"anchor_region", "IFNULL(a.region, 'unknown')", SIDE_ANCHOR},
        {"anchor_age_band", "IFNULL(a.age_band, 'unknown')", SIDE_ANCHOR},
        {"anchor_tag", "IFNULL(at.name, '(none)')", SIDE_ANCHOR_TAG},
        {"audience_region", "IFNULL(u.region, 'unknown')", SIDE_AUDIENCE},
        {"audience_age_band", "IFNULL(u.age_band, 'unknown')", SIDE_AUDIENCE},
        {"audience_type", "IFNULL(u.audience_type, 'unknown')", SIDE_AUDIENCE},
        {"audience_tag", "IFNULL(ut.name, '(none)')", SIDE_AUDIENCE_TAG},
};

#define NDIMS (sizeof(dims) / sizeof(dims[0]))

const char ctl_stats_usage[] =
        "usage: liveflow-ctl stats [--from TIME] [--to TIME] [--by DIM[,DIM...]]\n"
        "                          [--where DIM=VALUE]... [--limit N] [--json]\n"
        "  tips (amount in minor units, count) from --from (default -24h) to --to (default now),\n"
        "  whole hours, grouped by the --by dimensions (none: one total row) and kept to the rows\n"
        "  where each --where holds. Dimensions:\n"
        "    hour, day, anchor, anchor_gender, audience_gender      (hourly_reward_stats)\n"
        "    anchor_region, anchor_age_band, anchor_tag             (+ anchors, anchor_tags)\n"
        "    audience_region, audience_age_band, audience_type,\n"
        "    audience_tag                                           (stats_tip + audiences)\n"
        "  The genders are those resolved when the tip was counted; the other profile fields\n"
        "  and tags are the person's now ('unknown' / '(none)' when not known). A person with\n"
        "  several tags counts under each: rows grouped by a tag overlap. A query with an\n"
        "  audience dimension reads the tip ledger stats_tip instead of the hourly table.\n"
        "  TIME: Unix s or ms, now, -30m / -2h / -7d, or UTC YYYY-MM-DD[THH:MM[:SS]][Z].\n"
        "  exit 0 done, 1 the query failed, 2 usage or connection error\n";

struct query {
        const char *by[MAX_BY];
        size_t nby;
        const struct dim *by_dim[MAX_BY];
        const struct dim *where_dim[MAX_FILTERS];
        const char *where_val[MAX_FILTERS];
        size_t nwhere;
        long long from_ms, to_ms, limit;
};

static const struct dim *dim_find(const char *name, size_t len)
{
        for (size_t i = 0; i < NDIMS; i++)
                if (strlen(dims[i].name) == len && strncmp(dims[i].name, name, len) == 0)
                        return &dims[i];
        return NULL;
}

static int parse(const char *prog, int argc, char **argv, struct query *q)
{
        q->to_ms = ctl_now_ms();
        q->from_ms = q->to_ms - 24LL * 3600 * 1000;
        q->limit = 1000;
        for (int i = 1; i < argc; i++) {
                const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

                if (strcmp(o, "--from") == 0 || strcmp(o, "--to") == 0) {
                        if (!v || ctl_parse_time(v, o[2] == 'f' ? &q->from_ms : &q->to_ms) == -1)
                                return ctl_usage_error(prog, "%s wants a TIME", o);
                } else if (strcmp(o, "--limit") == 0) {
                        if (!v || ctl_parse_ll(v, 1, 1000000, &q->limit) == -1)
                                return ctl_usage_error(prog, "--limit wants 1 to 1000000");
                } else if (strcmp(o, "--by") == 0) {
                        if (!v)
                                return ctl_usage_error(prog, "--by wants DIM[,DIM...]");
                        for (const char *p = v; *p;) {
                                size_t len = strcspn(p, ",");
                                const struct dim *d = dim_find(p, len);

                                if (!d)
                                        return ctl_usage_error(prog, "unknown dimension \"%.*s\"",
                                                               (int)len, p);
                                if (q->nby == MAX_BY)
                                        return ctl_usage_error(prog, "at most %d --by dimensions",
                                                               MAX_BY);
                                q->by_dim[q->nby++] = d;
                                p += len + (p[len] == ',');
                        }
                } else if (strcmp(o, "--where") == 0) {
                        const char *eq = v ? strchr(v, '=') : NULL;
                        const struct dim *d = eq ? dim_find(v, (size_t)(eq - v)) : NULL;

                        if (!d || strlen(eq + 1) > VALUE_MAX)
                                return ctl_usage_error(
                                        prog,
                                        "--where wants DIM=VALUE with a known DIM (see --help)");
                        if (q->nwhere == MAX_FILTERS)
                                return ctl_usage_error(prog, "at most %d --where", MAX_FILTERS);
                        q->where_dim[q->nwhere] = d;
                        q->where_val[q->nwhere++] = eq + 1;
                } else {
                        return ctl_usage_error(prog, "unknown argument \"%s\" (see --help)", o);
                }
                i++;
        }
        if (q->from_ms >= q->to_ms)
                return ctl_usage_error(prog, "--from is not before --to");
        return 0;
}

static bool uses(const struct query *q, enum side s)
{
        for (size_t i = 0; i < q->nby; i++)
                if (q->by_dim[i]->side == s)
                        return true;
        for (size_t i = 0; i < q->nwhere; i++)
                if (q->where_dim[i]->side == s)
                        return true;
        return false;
}

static void build(struct db *db, const struct query *q, struct db_text *t, bool *ledger)
{
        *ledger = uses(q, SIDE_AUDIENCE) || uses(q, SIDE_AUDIENCE_TAG);
        db_text_add(t, "SELECT ");
        for (size_t i = 0; i < q->nby; i++)
                db_text_add(t, "%s, ", q->by_dim[i]->expr);
        db_text_add(t, *ledger ? "CAST(SUM(h.amount) AS SIGNED), COUNT(*)"
                               : "CAST(SUM(h.amount_sum) AS SIGNED), CAST(SUM(h.reward_count) "
                                 "AS SIGNED)");
        db_text_add(t, *ledger ? " FROM stats_tip h" : " FROM hourly_reward_stats h");
        if (uses(q, SIDE_ANCHOR))
                db_text_add(t, " LEFT JOIN anchors a ON a.anchor_id = h.anchor_id");
        if (uses(q, SIDE_ANCHOR_TAG))
                db_text_add(t, " LEFT JOIN anchor_tags atl ON atl.anchor_id = h.anchor_id "
                               "LEFT JOIN tags at ON at.tag_id = atl.tag_id");
        if (uses(q, SIDE_AUDIENCE))
                db_text_add(t, " LEFT JOIN audiences u ON u.audience_id = h.audience_id");
        if (uses(q, SIDE_AUDIENCE_TAG))
                db_text_add(t, " LEFT JOIN audience_tags utl ON utl.audience_id = h.audience_id "
                               "LEFT JOIN tags ut ON ut.tag_id = utl.tag_id");
        db_text_add(t, " WHERE h.hour >= FROM_UNIXTIME(");
        db_text_i64(t, q->from_ms / 3600000 * 3600);
        db_text_add(t, ") AND h.hour < FROM_UNIXTIME(");
        db_text_i64(t, q->to_ms / 1000);
        db_text_add(t, ")");
        for (size_t i = 0; i < q->nwhere; i++) {
                db_text_add(t, " AND %s = ", q->where_dim[i]->expr);
                db_text_str(db, t, q->where_val[i]);
        }
        if (q->nby) {
                db_text_add(t, " GROUP BY ");
                for (size_t i = 0; i < q->nby; i++)
                        db_text_add(t, "%s%zu", i ? ", " : "", i + 1);
                db_text_add(t, " ORDER BY ");
                for (size_t i = 0; i < q->nby; i++)
                        db_text_add(t, "%zu, ", i + 1);
                db_text_add(t, "%zu DESC", q->nby + 1);
        }
        db_text_add(t, " LIMIT ");
        db_text_i64(t, q->limit);
}

struct rows_ctx {
        const struct query *q;
        json_t *rows;
};

static void on_row(const struct db_col *cols, void *arg)
{
        struct rows_ctx *rc = arg;
        json_t *row = json_object();
        size_t n = rc->q->nby;

        for (size_t i = 0; i < n; i++)
                json_object_set_new(row, rc->q->by_dim[i]->name,
                                    cols[i].is_null ? json_null() : json_string(cols[i].s));
        json_object_set_new(row, "amount", json_integer(cols[n].is_null ? 0 : cols[n].i));
        json_object_set_new(row, "tips", json_integer(cols[n + 1].is_null ? 0 : cols[n + 1].i));
        json_array_append_new(rc->rows, row);
}

static void human(const json_t *doc, FILE *out)
{
        const json_t *by = json_object_get(doc, "by"), *rows = json_object_get(doc, "rows"), *r, *d;
        size_t i, j;

        fprintf(out, "tips from %s to %s (%s)\n", json_string_value(json_object_get(doc, "from")),
                json_string_value(json_object_get(doc, "to")),
                json_string_value(json_object_get(doc, "source")));
        json_array_foreach(by, j, d) fprintf(out, "%-20s ", json_string_value(d));
        fprintf(out, "%16s %10s\n", "amount", "tips");
        json_array_foreach(rows, i, r)
        {
                json_array_foreach(by, j, d)
                {
                        const char *v = json_string_value(json_object_get(r, json_string_value(d)));

                        fprintf(out, "%-20s ", v ? v : "-");
                }
                fprintf(out, "%16lld %10lld\n", ctl_json_ll(r, "amount"), ctl_json_ll(r, "tips"));
        }
        if (i == 0)
                fprintf(out, "(no tips)\n");
}

int ctl_stats_run(struct ctl *ctl, int argc, char **argv)
{
        static const char prog[] = "liveflow-ctl stats";
        struct query q = {0};
        struct db_col cols[MAX_BY + 2];
        char vals[MAX_BY][VALUE_MAX * 4 + 1], from[40], to[40], err[512];
        struct rows_ctx rc = {&q, NULL};
        struct ctl_stores st;
        struct db_text t = {0};
        json_t *by;
        enum db_result r;
        bool ledger;
        int code;

        if ((code = parse(prog, argc, argv, &q)) != 0)
                return code;
        if ((code = ctl_stores_open(ctl, prog, false, &st)) != CTL_EXIT_OK)
                return code;
        memset(cols, 0, sizeof(cols));
        for (size_t i = 0; i < q.nby; i++)
                cols[i] = (struct db_col){
                        .type = DB_PARAM_STR, .s = vals[i], .s_size = sizeof(vals[i])};
        cols[q.nby].type = DB_PARAM_I64;
        cols[q.nby + 1].type = DB_PARAM_I64;
        build(st.db, &q, &t, &ledger);
        rc.rows = json_array();
        r = db_text_query(st.db, &t, cols, q.nby + 2, on_row, &rc, err, sizeof(err));
        db_text_free(&t);
        ctl_stores_close(&st);
        if (r != DB_OK) {
                json_decref(rc.rows);
                fprintf(stderr, "%s: %s\n", prog, err);
                return CTL_EXIT_LEFT;
        }
        by = json_array();
        for (size_t i = 0; i < q.nby; i++)
                json_array_append_new(by, json_string(q.by_dim[i]->name));
        ctl_format_time(q.from_ms / 3600000 * 3600000, from, sizeof(from));
        ctl_format_time(q.to_ms, to, sizeof(to));
        ctl_emit(ctl,
                 json_pack("{s:s,s:s,s:s,s:o,s:o}", "from", from, "to", to, "source",
                           ledger ? "stats_tip" : "hourly_reward_stats", "by", by, "rows", rc.rows),
                 human);
        return CTL_EXIT_OK;
}
