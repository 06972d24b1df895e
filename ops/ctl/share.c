/* share.c: `liveflow-ctl share set|list`: the write path of revenue_share (the anchor's ratio
 * in basis points from a time on, read by the settlement worker per tip), every change
 * recorded in revenue_share_history with who and why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_rebuild.h"
#include "db.h"
#include "log.h"
#include "stores.h"

#define ANCHOR_MAX 64  /* anchors.anchor_id */
#define REASON_MAX 255 /* revenue_share_history.reason */
#define BP_WHOLE   10000

/* What `share set` asks for, and what it found. */
struct share_change {
        const char *anchor, *reason;
        long long ratio_bp, from_ms;
        bool is_backdated;
        long long previous_bp; /* -1: none (the worker's default) */
        long long replaced_bp; /* -1: no row at from_ms */
        long long settled;     /* settlement_detail rows the change would reprice */
};

/* ------------------------------------------------------------------ reading */

static void on_i64(const struct db_col *cols, void *arg)
{
        *(long long *)arg = cols[0].is_null ? -1 : cols[0].i;
}

/* One integer (or -1 for no row / NULL): head, the anchor as a literal, then tail, whose one
 * %lld is from_ms. */
static enum db_result query_i64(struct db *db, const struct share_change *c, const char *head,
                                const char *tail, long long *out, char *errstr, size_t errstr_size)
{
        struct db_text t = {0};
        struct db_col col = {.type = DB_PARAM_I64};
        enum db_result r;

        *out = -1;
        db_text_add(&t, "%s", head);
        db_text_str(db, &t, c->anchor);
        db_text_add(&t, tail, c->from_ms);
        r = db_text_query(db, &t, &col, 1, on_i64, out, errstr, errstr_size);
        db_text_free(&t);
        return r;
}

/*
 * Within the change's transaction: the ratio in force just before from_ms, the row the change
 * would replace, and how many settled tips it would reprice: the anchor's from from_ms until
 * its next ratio. With lock, that last read locks the range of settlement_detail (FOR UPDATE
 * on its (anchor_id, tipped_at) index, gaps included), so no tip of the range settles until
 * the change commits.
 */
static enum db_result inspect(struct db *db, struct share_change *c, bool lock, char *errstr,
                              size_t errstr_size)
{
        char tail[512];
        long long next_ms = -1;
        enum db_result r;

        if ((r = query_i64(db, c, "SELECT ratio_bp FROM revenue_share WHERE anchor_id = ",
                           " AND effective_at < FROM_UNIXTIME(%lld / 1000) ORDER BY effective_at "
                           "DESC LIMIT 1",
                           &c->previous_bp, errstr, errstr_size)) != DB_OK ||
            (r = query_i64(db, c, "SELECT ratio_bp FROM revenue_share WHERE anchor_id = ",
                           " AND effective_at = FROM_UNIXTIME(%lld / 1000)", &c->replaced_bp,
                           errstr, errstr_size)) != DB_OK ||
            (r = query_i64(db, c,
                           "SELECT CAST(UNIX_TIMESTAMP(MIN(effective_at)) * 1000 AS SIGNED) FROM "
                           "revenue_share WHERE anchor_id = ",
                           " AND effective_at > FROM_UNIXTIME(%lld / 1000)", &next_ms, errstr,
                           errstr_size)) != DB_OK)
                return r;
        /* The tail keeps a %lld for from_ms; the next ratio's time is written in now. */
        if (next_ms >= 0)
                snprintf(tail, sizeof(tail),
                         " AND tipped_at >= FROM_UNIXTIME(%%lld / 1000) AND tipped_at < "
                         "FROM_UNIXTIME(%lld / 1000)%s",
                         next_ms, lock ? " FOR UPDATE" : "");
        else
                snprintf(tail, sizeof(tail), " AND tipped_at >= FROM_UNIXTIME(%%lld / 1000)%s",
                         lock ? " FOR UPDATE" : "");
        return query_i64(db, c, "SELECT COUNT(*) FROM settlement_detail WHERE anchor_id = ", tail,
                         &c->settled, errstr, errstr_size);
}

/* ------------------------------------------------------------------ share set */

static json_t *change_json(const struct share_change *c, bool executed, const char *outcome)
{
        char from[40];

        ctl_format_time(c->from_ms, from, sizeof(from));
        return json_pack("{s:s,s:I,s:s,s:b,s:s?,s:o,s:o,s:I,s:b,s:s}", "anchor_id", c->anchor,
                         "ratio_bp", (json_int_t)c->ratio_bp, "effective_at", from, "backdated",
                         c->is_backdated, "reason", c->reason, "previous_bp",
                         c->previous_bp < 0 ? json_null() : json_integer(c->previous_bp),
                         "replaces_bp",
                         c->replaced_bp < 0 ? json_null() : json_integer(c->replaced_bp),
                         "settled_tips_repriced", (json_int_t)c->settled, "executed", executed,
                         "outcome", outcome);
}

static void set_human(const json_t *doc, FILE *out)
{
        const json_t *prev = json_object_get(doc, "previous_bp"),
                     *repl = json_object_get(doc, "replaces_bp");

        fprintf(out, "share set %s: %lld bp from %s%s\n",
                json_string_value(json_object_get(doc, "anchor_id")), ctl_json_ll(doc, "ratio_bp"),
                json_string_value(json_object_get(doc, "effective_at")),
                json_is_true(json_object_get(doc, "backdated")) ? " (backdated)" : "");
        if (json_is_null(prev))
                fprintf(out, "  before: no ratio (the settlement default)\n");
        else
                fprintf(out, "  before: %lld bp\n", (long long)json_integer_value(prev));
        if (!json_is_null(repl))
                fprintf(out, "  replaces the row of the same time (%lld bp)\n",
                        (long long)json_integer_value(repl));
        fprintf(out, "  %s\n", json_string_value(json_object_get(doc, "outcome")));
}

/* Writes the row and its history line; in the transaction inspect() opened. */
static enum db_result write_change(struct db *db, const struct ctl *ctl,
                                   const struct share_change *c, char *errstr, size_t errstr_size)
{
        struct db_stmt *upsert = db_stmt(
                db,
                "INSERT INTO revenue_share (anchor_id, effective_at, ratio_bp) VALUES "
                "(?, FROM_UNIXTIME(? / 1000), ?) ON DUPLICATE KEY UPDATE ratio_bp = VALUES(ratio_bp)");
        struct db_stmt *history = db_stmt(
                db,
                "INSERT INTO revenue_share_history (anchor_id, effective_at, ratio_bp, previous_bp, "
                "replaced_bp, is_backdated, changed_by, reason) VALUES (?, FROM_UNIXTIME(? / 1000), ?, ?, ?, ?, ?, ?)");
        struct db_param row[] = {DB_STR(c->anchor), DB_I64(c->from_ms), DB_I64(c->ratio_bp)};
        struct db_param hist[] = {DB_STR(c->anchor),
                                  DB_I64(c->from_ms),
                                  DB_I64(c->ratio_bp),
                                  c->previous_bp < 0 ? DB_NULL : DB_I64(c->previous_bp),
                                  c->replaced_bp < 0 ? DB_NULL : DB_I64(c->replaced_bp),
                                  DB_I64(c->is_backdated),
                                  DB_STR(ctl->who),
                                  DB_STR(c->reason)};
        enum db_result r;

        if (!upsert || !history) {
                snprintf(errstr, errstr_size, "out of memory");
                return DB_FATAL;
        }
        if ((r = db_exec(db, upsert, row, 3, NULL, NULL, errstr, errstr_size)) != DB_OK)
                return r;
        return db_exec(db, history, hist, 8, NULL, NULL, errstr, errstr_size);
}

/* Inspects and, with execute and nothing against it, writes; all in one transaction. */
static int apply_change(struct db *db, const struct ctl *ctl, struct share_change *c, bool execute,
                        const char **outcome, char *errstr, size_t errstr_size)
{
        int refused = 0;

        if (db_begin(db, errstr, errstr_size) != DB_OK)
                return -1;
        if (inspect(db, c, execute, errstr, errstr_size) != DB_OK)
                goto fail;
        if (c->settled > 0) {
                *outcome = "refused: settled tips would be repriced (a ratio applied to settled "
                           "tips is never rewritten; choose a time after the last settled tip)";
                refused = 1;
        } else if (c->replaced_bp == c->ratio_bp) {
                *outcome = "nothing to do: that ratio is in place already";
        } else if (!execute) {
                *outcome = "dry run: `--execute` writes it";
        } else if (write_change(db, ctl, c, errstr, errstr_size) != DB_OK) {
                goto fail;
        } else {
                *outcome = "written, and recorded in revenue_share_history";
        }
        if (db_commit(db, errstr, errstr_size) != DB_OK)
                goto fail;
        return refused;
fail:
        db_rollback(db);
        return -1;
}

static int parse_set(const char *prog, int argc, char **argv, struct share_change *c, bool *execute)
{
        const char *from = NULL, *bp = NULL;
        long long now = ctl_now_ms();

        memset(c, 0, sizeof(*c));
        *execute = false;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char **value = strcmp(a, "--from") == 0     ? &from
                                     : strcmp(a, "--reason") == 0 ? &c->reason
                                                                  : NULL;

                if (value) {
                        if (i + 1 >= argc)
                                return ctl_usage_error(prog, "%s wants a value", a);
                        *value = argv[++i];
                } else if (strcmp(a, "--execute") == 0) {
                        *execute = true;
                } else if (strcmp(a, "--backdate") == 0) {
                        c->is_backdated = true;
                } else if (a[0] == '-' && a[1]) {
                        return ctl_usage_error(prog, "unknown option %s (see --help)", a);
                } else if (!c->anchor) {
                        c->anchor = a;
                } else if (!bp) {
                        bp = a;
                } else {
                        return ctl_usage_error(prog, "unexpected argument \"%s\"", a);
                }
        }
        if (!c->anchor || !*c->anchor || strlen(c->anchor) > ANCHOR_MAX)
                return ctl_usage_error(prog, "wants an ANCHOR id of 1 to %d characters",
                                       ANCHOR_MAX);
        if (!bp || ctl_parse_ll(bp, 0, BP_WHOLE, &c->ratio_bp) == -1)
                return ctl_usage_error(prog,
                                       "BASIS_POINTS must be a whole number from 0 to %d, not "
                                       "\"%s\"",
                                       BP_WHOLE, bp ? bp : "");
        if (!from || ctl_parse_time(from, &c->from_ms) == -1)
                return ctl_usage_error(prog, "--from TIME is required (Unix s, ISO 8601 UTC, now)");
        if (c->reason && strlen(c->reason) > REASON_MAX)
                return ctl_usage_error(prog, "--reason is longer than %d characters", REASON_MAX);
        /* A little slack for "--from now": the seconds the command takes to start. */
        if (c->from_ms < now - 60000 && !c->is_backdated)
                return ctl_usage_error(prog,
                                       "--from is in the past: pass --backdate with a --reason "
                                       "to change a ratio after the fact");
        if (c->is_backdated && (!c->reason || !*c->reason))
                return ctl_usage_error(prog, "--backdate needs a --reason");
        c->is_backdated = c->is_backdated && c->from_ms < now;
        return 0;
}

static int share_set_run(struct ctl *ctl, int argc, char **argv)
{
        static const char prog[] = "liveflow-ctl share set";
        struct share_change c;
        struct ctl_stores st;
        const char *outcome = "";
        char err[512];
        bool execute;
        int rc;

        if ((rc = parse_set(prog, argc, argv, &c, &execute)) != 0 ||
            (rc = ctl_stores_open(ctl, prog, false, &st)) != CTL_EXIT_OK)
                return rc;
        rc = apply_change(st.db, ctl, &c, execute, &outcome, err, sizeof(err));
        ctl_stores_close(&st);
        if (rc == -1)
                return ctl_usage_error(prog, "%s", err);
        if (execute && rc == 0 && strncmp(outcome, "written", 7) == 0)
                log_info(NULL,
                         "share set anchor=%s ratio_bp=%lld from_ms=%lld backdated=%d by %s: %s",
                         c.anchor, c.ratio_bp, c.from_ms, c.is_backdated, ctl->who,
                         c.reason ? c.reason : "-");
        ctl_emit(ctl, change_json(&c, execute && rc == 0, outcome), set_human);
        return rc == 1 ? CTL_EXIT_LEFT : CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ share list */

struct list_ctx {
        json_t *rows;
};

static void on_share_row(const struct db_col *cols, void *arg)
{
        json_t *rows = ((struct list_ctx *)arg)->rows;

        json_array_append_new(rows, json_pack("{s:s,s:s,s:I,s:I,s:s?,s:s?,s:s?}", "anchor_id",
                                              cols[0].s, "effective_at", cols[1].s, "ratio_bp",
                                              (json_int_t)cols[2].i, "settled_tips",
                                              (json_int_t)cols[3].i, "changed_by",
                                              cols[4].is_null ? NULL : cols[4].s, "reason",
                                              cols[5].is_null ? NULL : cols[5].s, "changed_at",
                                              cols[6].is_null ? NULL : cols[6].s));
}

static void list_human(const json_t *doc, FILE *out)
{
        const json_t *r;
        size_t i;

        fprintf(out, "%-24s %-24s %8s %8s  %s\n", "anchor", "effective_at (UTC)", "ratio_bp",
                "settled", "last change");
        json_array_foreach(json_object_get(doc, "ratios"), i, r)
        {
                const char *by = json_string_value(json_object_get(r, "changed_by"));
                const char *why = json_string_value(json_object_get(r, "reason"));

                fprintf(out, "%-24s %-24s %8lld %8lld  %s%s%s\n",
                        json_string_value(json_object_get(r, "anchor_id")),
                        json_string_value(json_object_get(r, "effective_at")),
                        ctl_json_ll(r, "ratio_bp"), ctl_json_ll(r, "settled_tips"),
                        by ? by : "(written outside liveflow-ctl)", why ? ": " : "",
                        why ? why : "");
        }
        if (i == 0)
                fprintf(out,
                        "(no ratios: every anchor gets LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP)\n");
}

static int share_list_run(struct ctl *ctl, int argc, char **argv)
{
        static const char prog[] = "liveflow-ctl share list";
        char a[ANCHOR_MAX + 1], when[32], by[161], why[REASON_MAX + 1], at[32], err[512];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = a, .s_size = sizeof(a)},
                                {.type = DB_PARAM_STR, .s = when, .s_size = sizeof(when)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_STR, .s = by, .s_size = sizeof(by)},
                                {.type = DB_PARAM_STR, .s = why, .s_size = sizeof(why)},
                                {.type = DB_PARAM_STR, .s = at, .s_size = sizeof(at)}};
        struct list_ctx lc = {json_array()};
        struct ctl_stores st;
        struct db_text t = {0};
        enum db_result r;
        int rc;

        if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
                json_decref(lc.rows);
                return ctl_usage_error(prog, "wants at most one ANCHOR");
        }
        if ((rc = ctl_stores_open(ctl, prog, false, &st)) != CTL_EXIT_OK) {
                json_decref(lc.rows);
                return rc;
        }
        /* Each row with the settled tips in its span and the last recorded change of it. */
        db_text_add(
                &t,
                "SELECT s.anchor_id, DATE_FORMAT(s.effective_at, '%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ'), "
                "s.ratio_bp, (SELECT COUNT(*) FROM settlement_detail d WHERE d.anchor_id = s.anchor_id "
                "AND d.tipped_at >= s.effective_at AND d.tipped_at < COALESCE((SELECT MIN(n.effective_at) "
                "FROM revenue_share n WHERE n.anchor_id = s.anchor_id AND n.effective_at > s.effective_at), "
                "'9999-12-31')), h.changed_by, h.reason, DATE_FORMAT(h.changed_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ') "
                "FROM revenue_share s LEFT JOIN revenue_share_history h ON h.id = (SELECT MAX(x.id) FROM "
                "revenue_share_history x WHERE x.anchor_id = s.anchor_id AND x.effective_at = s.effective_at)");
        if (argc == 2) {
                db_text_add(&t, " WHERE s.anchor_id = ");
                db_text_str(st.db, &t, argv[1]);
        }
        db_text_add(&t, " ORDER BY s.anchor_id, s.effective_at");
        r = db_text_query(st.db, &t, cols, 7, on_share_row, &lc, err, sizeof(err));
        db_text_free(&t);
        ctl_stores_close(&st);
        if (r != DB_OK) {
                json_decref(lc.rows);
                return ctl_usage_error(prog, "%s", err);
        }
        ctl_emit(ctl, json_pack("{s:o}", "ratios", lc.rows), list_human);
        return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ the table */

static const char set_usage[] =
        "usage: liveflow-ctl share set ANCHOR BASIS_POINTS --from TIME [--backdate --reason R]\n"
        "                              [--reason R] [--execute] [--json]\n"
        "  the anchor gets BASIS_POINTS (0..10000) of each tip's gross from TIME on (Unix s,\n"
        "  ISO 8601 UTC, now), until the anchor's next ratio. A TIME in the past needs --backdate\n"
        "  and a --reason. A change that would reprice a settled tip (settlement_detail from\n"
        "  TIME until the next ratio) is refused. A dry run without --execute; each change is\n"
        "  recorded in revenue_share_history with user@host and the reason.\n"
        "  exit 0 done (or the plan), 1 refused (settled tips), 2 usage or connection error\n";

static const char list_usage[] =
        "usage: liveflow-ctl share list [ANCHOR] [--json]\n"
        "  every ratio (or the anchor's): from when, basis points, the settled tips it priced,\n"
        "  and who changed it last and why\n";

const struct ctl_command ctl_share_commands[] = {
        {"set", "set an anchor's ratio from a time on", set_usage, share_set_run, NULL},
        {"list", "the ratios and their history", list_usage, share_list_run, NULL},
        {NULL, NULL, NULL, NULL, NULL},
};
