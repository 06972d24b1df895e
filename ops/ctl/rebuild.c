/* rebuild.c: `liveflow-ctl rebuild redis|session|profile`: what the workers derive, derived
 * again from MySQL with the workers' own code (lib/rebuild.c, session_stats.c, profile_run.c). */
#include "rebuild.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_rebuild.h"
#include "db.h"
#include "log.h"
#include "profile_run.h"
#include "rebuild_audience.h"
#include "redis_conn.h"
#include "session_stats.h"
#include "stores.h"

/* ------------------------------------------------------------------ rebuild redis */

/* The findings of the diffs: all counted, the first `limit` listed. */
struct findings {
        json_t *list;
        long long count, limit;
};

static void on_finding(const struct rebuild_finding *f, void *arg)
{
        struct findings *fs = arg;

        if (fs->count++ < fs->limit)
                json_array_append_new(fs->list,
                                      json_pack("{s:s,s:s,s:s,s:s}", "what", f->what, "id", f->id,
                                                "redis", f->redis, "mysql", f->mysql));
}

/* What the diffs compared. */
struct compared {
        long long rooms, streams, audience_rooms;
};

/* Every diff. @returns 0 or -1 with errstr. */
static int diff_all(const struct ctl *ctl, struct ctl_stores *st, struct findings *fs,
                    struct compared *n, char *errstr, size_t errstr_size)
{
        fs->count = 0;
        json_array_clear(fs->list);
        if (rebuild_diff_rooms(st->db, st->redis, on_finding, fs, &n->rooms, errstr, errstr_size) ==
                    -1 ||
            rebuild_diff_streams(st->db, st->redis, on_finding, fs, &n->streams, errstr,
                                 errstr_size) == -1)
                return -1;
        return rebuild_diff_audience(st->db, st->redis, ctl->settings.reward_stats_ttl_s,
                                     on_finding, fs, &n->audience_rooms, errstr, errstr_size);
}

/* The audience role's keys: every room, then the hot ranking, with the role's code. */
static int rebuild_audience_all(const struct ctl *ctl, struct ctl_stores *st, json_t *doc,
                                char *errstr, size_t errstr_size)
{
        struct rebuild_audience *ra =
                rebuild_audience_new(st->db, st->redis, ctl->settings.reward_stats_ttl_s);
        struct rebuild_audience_cursor cur;
        struct rebuild_audience_count c = {0};
        long long ranked = 0;
        bool done = false;
        int rc = 0;

        if (!ra) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        rebuild_audience_cursor_init(&cur);
        while (rc == 0 && !done)
                rc = rebuild_audience_step(ra, &cur, 200, &done, &c, errstr, errstr_size);
        rebuild_audience_destroy(ra);
        if (rc == -1 ||
            rebuild_audience_rank(st->db, st->redis, ctl->settings.audience_rank_interval_s,
                                  ctl->settings.audience_rank_size, &ranked, errstr,
                                  errstr_size) == -1)
                return -1;
        log_info(NULL,
                 "rebuild redis: %lld audience room(s) and %lld session(s) rebuilt, %lld "
                 "online key(s) of unknown rooms deleted, %lld MySQL counter(s) set, %lld "
                 "room(s) ranked, by %s",
                 c.rooms, c.sessions, c.keys_deleted, c.mysql_counters, ranked, ctl->who);
        json_object_set_new(doc, "audience_rooms_rebuilt", json_integer(c.rooms));
        json_object_set_new(doc, "audience_sessions_rebuilt", json_integer(c.sessions));
        json_object_set_new(doc, "audience_keys_deleted", json_integer(c.keys_deleted));
        json_object_set_new(doc, "audience_mysql_counters_set", json_integer(c.mysql_counters));
        json_object_set_new(doc, "rank_rooms", json_integer(ranked));
        return 0;
}

/* Every room marked and rebuilt, then every stream projected. */
static int rebuild_all(const struct ctl *ctl, struct ctl_stores *st, json_t *doc, char *errstr,
                       size_t errstr_size)
{
        struct rebuild *rb = rebuild_new(st->db, st->redis, ctl->settings.live_ttl_s,
                                         ctl->settings.reward_stats_ttl_s);
        char room[65] = "";
        unsigned long long marked = 0;
        long long rooms = 0, projected = 0, orphans = 0;
        bool found = true;
        int rc = -1;

        if (!rb) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (rebuild_mark_all_rooms(rb, &marked, errstr, errstr_size) == -1)
                goto done;
        while (found) {
                if (rebuild_next_marked(rb, room, &found, errstr, errstr_size) == -1 ||
                    (found && rebuild_room(rb, room, NULL, NULL, errstr, errstr_size) == -1))
                        goto done;
                rooms += found;
        }
        if (rebuild_orphan_rooms(rb, &orphans, errstr, errstr_size) == -1 ||
            rebuild_streams(rb, &projected, errstr, errstr_size) == -1 ||
            rebuild_audience_all(ctl, st, doc, errstr, errstr_size) == -1)
                goto done;
        log_info(NULL,
                 "rebuild redis: %lld room(s) rebuilt from recharge, %lld key(s) of rooms "
                 "without tips deleted, %lld stream(s) projected from live_streams, by %s",
                 rooms, orphans, projected, ctl->who);
        json_object_set_new(doc, "orphan_keys_deleted", json_integer(orphans));
        json_object_set_new(doc, "rooms_rebuilt", json_integer(rooms));
        json_object_set_new(doc, "streams_projected", json_integer(projected));
        rc = 0;
done:
        rebuild_destroy(rb);
        return rc;
}

static void redis_human(const json_t *doc, FILE *out)
{
        const json_t *f;
        size_t i;
        long long diff = json_integer_value(json_object_get(doc, "differences"));
        bool executed = json_is_true(json_object_get(doc, "executed"));

        fprintf(out,
                "%s: %lld room(s), %lld live stream(s) and %lld audience room(s) compared with "
                "Redis\n",
                executed ? "rebuild redis" : "rebuild redis (dry run)", ctl_json_ll(doc, "rooms"),
                ctl_json_ll(doc, "live_streams"), ctl_json_ll(doc, "audience_rooms"));
        if (executed)
                fprintf(out,
                        "  rebuilt %lld room(s), deleted %lld key(s) of rooms without tips, "
                        "projected %lld stream(s), rebuilt %lld audience room(s) and %lld "
                        "session(s), deleted %lld online key(s) of unknown rooms, ranked %lld "
                        "room(s); after it:\n",
                        ctl_json_ll(doc, "rooms_rebuilt"), ctl_json_ll(doc, "orphan_keys_deleted"),
                        ctl_json_ll(doc, "streams_projected"),
                        (long long)json_integer_value(
                                json_object_get(doc, "audience_rooms_rebuilt")),
                        (long long)json_integer_value(
                                json_object_get(doc, "audience_sessions_rebuilt")),
                        (long long)json_integer_value(
                                json_object_get(doc, "audience_keys_deleted")),
                        ctl_json_ll(doc, "rank_rooms"));
        json_array_foreach(json_object_get(doc, "findings"), i, f)
                fprintf(out, "  %-6s %s: redis %s, mysql %s\n",
                        json_string_value(json_object_get(f, "what")),
                        json_string_value(json_object_get(f, "id")),
                        json_string_value(json_object_get(f, "redis")),
                        json_string_value(json_object_get(f, "mysql")));
        if ((long long)i < diff)
                fprintf(out, "  ... and %lld more\n", diff - (long long)i);
        if (diff == 0)
                fprintf(out, "  Redis agrees with MySQL\n");
        else if (executed)
                fprintf(out,
                        "  %lld difference(s) left (tips or stream events in flight? run again)\n",
                        diff);
        else
                fprintf(out,
                        "  %lld difference(s): `liveflow-ctl rebuild redis --execute` repairs them\n",
                        diff);
}

static int rebuild_redis_run(struct ctl *ctl, int argc, char **argv)
{
        static const char prog[] = "liveflow-ctl rebuild redis";
        struct ctl_change_opts o;
        struct ctl_stores st;
        struct findings fs = {.list = json_array()};
        struct compared n = {0};
        char err[512];
        json_t *doc;
        int npos, rc;

        if ((rc = ctl_change_parse(prog, argc, argv, &o, NULL, 0, &npos)) != 0 ||
            (rc = ctl_stores_open(ctl, prog, true, &st)) != CTL_EXIT_OK) {
                json_decref(fs.list);
                return rc;
        }
        fs.limit = o.limit;
        doc = json_pack("{s:b}", "executed", o.execute);
        if ((o.execute && rebuild_all(ctl, &st, doc, err, sizeof(err)) == -1) ||
            diff_all(ctl, &st, &fs, &n, err, sizeof(err)) == -1) {
                ctl_stores_close(&st);
                json_decref(fs.list);
                json_decref(doc);
                return ctl_usage_error(prog, "%s", err);
        }
        json_object_set_new(doc, "rooms", json_integer(n.rooms));
        json_object_set_new(doc, "live_streams", json_integer(n.streams));
        json_object_set_new(doc, "audience_rooms", json_integer(n.audience_rooms));
        json_object_set_new(doc, "differences", json_integer(fs.count));
        json_object_set_new(doc, "findings", fs.list);
        ctl_stores_close(&st);
        ctl_emit(ctl, doc, redis_human);
        return fs.count ? CTL_EXIT_LEFT : CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ rebuild session */

/* A viewer figure the row holds as NULL (no source reported viewers) reads -1: JSON null. */
static json_t *viewer_json(long long v)
{
        return v < 0 ? json_null() : json_integer(v);
}

static json_t *figures_json(const struct session_figures *f)
{
        return json_pack(
                "{s:s,s:s?,s:I,s:I,s:I,s:I,s:o,s:o}", "stream_id", f->stream_id, "anchor_id",
                f->has_anchor ? f->anchor_id : NULL, "duration_s", (json_int_t)f->duration_s,
                "gift_amount", (json_int_t)f->gift_amount, "gift_count", (json_int_t)f->gift_count,
                "paying_users", (json_int_t)f->paying_users, "unique_viewers",
                viewer_json(f->unique_viewers), "peak_online", viewer_json(f->peak_online));
}

/* The figures that differ between the row and the ledgers, by name. */
static json_t *changed_fields(const json_t *now, const json_t *want)
{
        json_t *changed = json_array();
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)want, key,
                            v) if (!now || !json_equal(json_object_get(now, key), v))
                json_array_append_new(changed, json_string(key));
        return changed;
}

static void session_human(const json_t *doc, FILE *out)
{
        const json_t *changed = json_object_get(doc, "changed"),
                     *want = json_object_get(doc, "ledgers");
        bool executed = json_is_true(json_object_get(doc, "executed"));
        const json_t *name;
        size_t i;

        fprintf(out, "%s session %lld (stream %s)\n", executed ? "rebuild" : "rebuild (dry run)",
                ctl_json_ll(doc, "session_id"),
                json_string_value(json_object_get(want, "stream_id")));
        if (!json_array_size(changed)) {
                fprintf(out, "  live_statistics agrees with the ledgers\n");
                return;
        }
        json_array_foreach(changed, i, name)
        {
                const char *k = json_string_value(name);
                json_t *was = json_object_get(json_object_get(doc, "live_statistics"), k);
                char *a = was ? json_dumps(was, JSON_ENCODE_ANY) : NULL;
                char *b = json_dumps(json_object_get(want, k), JSON_ENCODE_ANY);

                fprintf(out, "  %-15s %s -> %s\n", k, a ? a : "(no row)", b ? b : "?");
                free(a);
                free(b);
        }
        fprintf(out, executed ? "  written to live_statistics\n"
                              : "  `--execute` writes them to live_statistics\n");
}

static int rebuild_session_run(struct ctl *ctl, int argc, char **argv)
{
        static const char prog[] = "liveflow-ctl rebuild session";
        struct ctl_change_opts o;
        struct ctl_stores st;
        struct session_stats *ss = NULL;
        struct session_figures now, want;
        const char *pos[1];
        long long session;
        bool has_row = false, found = false, computed = false;
        char err[512];
        json_t *doc, *j_now;
        int npos, rc;

        if ((rc = ctl_change_parse(prog, argc, argv, &o, pos, 1, &npos)) != 0)
                return rc;
        if (npos != 1 || ctl_parse_ll(pos[0], 1, INT64_MAX, &session) == -1)
                return ctl_usage_error(prog, "wants one SESSION_ID (a positive integer)");
        if ((rc = ctl_stores_open(ctl, prog, false, &st)) != CTL_EXIT_OK)
                return rc;
        if (!(ss = session_stats_new(st.db)) ||
            session_stats_current(ss, session, &now, &has_row, err, sizeof(err)) != DB_OK ||
            session_stats_derive(ss, session, &want, &found, err, sizeof(err)) != DB_OK ||
            (found && o.execute &&
             session_stats_compute(ss, session, false, &computed, &want, err, sizeof(err)) !=
                     DB_OK)) {
                session_stats_destroy(ss);
                ctl_stores_close(&st);
                return ctl_usage_error(prog, "%s", ss ? err : "out of memory");
        }
        session_stats_destroy(ss);
        ctl_stores_close(&st);
        if (!found) {
                fprintf(stderr,
                        "%s: session %lld is not in stats_session (liveflow-stats has not "
                        "seen it end): nothing to compute\n",
                        prog, session);
                return CTL_EXIT_LEFT;
        }
        j_now = has_row ? figures_json(&now) : NULL;
        doc = json_pack("{s:I,s:b,s:o?,s:o}", "session_id", (json_int_t)session, "executed",
                        o.execute, "live_statistics", j_now, "ledgers", figures_json(&want));
        json_object_set_new(doc, "changed", changed_fields(j_now, json_object_get(doc, "ledgers")));
        if (o.execute)
                log_info(NULL,
                         "rebuild session %lld: live_statistics written from the ledgers by %s",
                         session, ctl->who);
        ctl_emit(ctl, doc, session_human);
        return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ rebuild profile */

static void profile_human(const json_t *doc, FILE *out)
{
        char when[40];

        ctl_format_time(json_integer_value(json_object_get(doc, "period")) * 1000, when,
                        sizeof(when));
        fprintf(out,
                "%s audience_profile, period %s (%lld s): %lld audience(s), %lld would change\n",
                json_is_true(json_object_get(doc, "executed")) ? "rebuilt" : "rebuild (dry run)",
                when, ctl_json_ll(doc, "interval_s"), ctl_json_ll(doc, "audiences"),
                ctl_json_ll(doc, "changed"));
}

/* Stages the period's profile, counts what would change, and swaps it in with execute. */
static int profile_locked(const struct ctl *ctl, struct profile_run *pr, long long period,
                          bool execute, json_t *doc, char *errstr, size_t errstr_size)
{
        char instance[200];
        long long staged = 0, changed = 0, started = ctl_now_ms(), newer = -1;
        enum db_result r;

        if (profile_run_stage(pr, period, &staged, errstr, errstr_size) != DB_OK ||
            profile_run_diff(pr, &changed, errstr, errstr_size) != DB_OK)
                return -1;
        snprintf(instance, sizeof(instance), "liveflow-ctl:%s", ctl->who);
        /* The period's own run is replaced; a newer period's profile never is (exit 1). */
        if (execute && (r = profile_run_swap(pr, period, staged, started, instance, true, &newer,
                                             errstr, errstr_size)) != DB_OK)
                return r == DB_DUPLICATE && newer >= 0 ? 1 : -1;
        json_object_set_new(doc, "audiences", json_integer(staged));
        json_object_set_new(doc, "changed", json_integer(changed));
        if (execute)
                log_info(NULL, "rebuild profile period=%lld: %lld audience(s), %lld changed, by %s",
                         period, staged, changed, ctl->who);
        return 0;
}

static int profile_with_lock(const struct ctl *ctl, struct ctl_stores *st, long long period,
                             bool execute, json_t *doc, char *errstr, size_t errstr_size)
{
        const struct settings *s = &ctl->settings;
        struct profile_run *pr =
                profile_run_new(st->db, s->stats_profile_interval_s, s->stats_profile_high_pct,
                                s->stats_profile_mid_pct);
        char token[33], ignored[256];
        int rc = -1;

        if (!pr) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        switch (profile_run_lock(st->redis, period, s->stats_profile_lock_ttl_s, token, errstr,
                                 errstr_size)) {
        case PROFILE_LOCK_BUSY:
                snprintf(errstr, errstr_size,
                         "lock:stats:profile:%lld is held: a profile run of the period is under "
                         "way; try again when it is done",
                         period);
                rc = 1;
                break;
        case PROFILE_LOCK_ERROR:
                break;
        case PROFILE_LOCK_TAKEN:
                rc = profile_locked(ctl, pr, period, execute, doc, errstr, errstr_size);
                profile_run_unlock(st->redis, period, token, ignored, sizeof(ignored));
                break;
        }
        profile_run_destroy(pr);
        return rc;
}

static int rebuild_profile_run(struct ctl *ctl, int argc, char **argv)
{
        static const char prog[] = "liveflow-ctl rebuild profile";
        long long interval_s = ctl->settings.stats_profile_interval_s, at_ms = ctl_now_ms(), period;
        struct ctl_change_opts o;
        struct ctl_stores st;
        const char *pos[1];
        char err[512];
        json_t *doc;
        int npos, rc;

        if ((rc = ctl_change_parse(prog, argc, argv, &o, pos, 1, &npos)) != 0)
                return rc;
        if (npos == 1 && ctl_parse_time(pos[0], &at_ms) == -1)
                return ctl_usage_error(prog, "PERIOD \"%s\" is not a time", pos[0]);
        period = at_ms / 1000 / interval_s * interval_s;
        if ((rc = ctl_stores_open(ctl, prog, true, &st)) != CTL_EXIT_OK)
                return rc;
        doc = json_pack("{s:b,s:I,s:I}", "executed", o.execute, "period", (json_int_t)period,
                        "interval_s", (json_int_t)interval_s);
        rc = profile_with_lock(ctl, &st, period, o.execute, doc, err, sizeof(err));
        ctl_stores_close(&st);
        if (rc != 0) {
                json_decref(doc);
                fprintf(stderr, "%s: %s\n", prog, err);
                return rc == 1 ? CTL_EXIT_LEFT : CTL_EXIT_USAGE;
        }
        ctl_emit(ctl, doc, profile_human);
        return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ the table */

static const char redis_usage[] =
        "usage: liveflow-ctl rebuild redis [--execute] [--limit N] [--json]\n"
        "  compares what liveflow keeps in Redis with MySQL: every room's live:room:earnings,\n"
        "  live:room:recharge_count and live:room:top (the sums of recharge; keys of rooms without\n"
        "  a tip are \"orphan\"), set:live:online and hash:anchor:status:* (live_streams), the\n"
        "  audience role's live:room:online (\"viewers\": open visits), the audience fields of\n"
        "  live:stats (\"audience\": uv, peak_online, chats, likes, ...) and live:rank:hot\n"
        "  (\"rank\": missing while rooms are live), and lists the differences (N per run,\n"
        "  default 20).\n"
        "  --execute rebuilds them with the workers' code (every room and its recent sessions'\n"
        "  tip counters, every live stream, every stale member or hash, every room's viewers\n"
        "  and recent sessions' audience figures, the hot ranking), then compares again.\n"
        "  exit 0 Redis agrees (after the rebuild with --execute), 1 differences (listed),\n"
        "  2 usage or connection error\n";

static const char session_usage[] =
        "usage: liveflow-ctl rebuild session SESSION_ID [--execute] [--json]\n"
        "  computes the session's live_statistics tip figures from the stats_tip ledger as\n"
        "  liveflow-stats does (lib/session_stats.c; the viewer figures are the audience role's\n"
        "  and stay) and shows what would change; --execute writes them.\n"
        "  exit 0 done, 1 the session is unknown, 2 usage or connection error\n";

static const char profile_usage[] =
        "usage: liveflow-ctl rebuild profile [PERIOD] [--execute] [--json]\n"
        "  computes audience_profile as liveflow-stats does for the period holding PERIOD\n"
        "  (a time: Unix s, ISO 8601 UTC, -2h, now; default now) and counts the audiences whose\n"
        "  level, total or percentile would change; --execute swaps it in and records the run\n"
        "  (replacing the period's run), unless a newer period has a recorded run: its\n"
        "  profile stays. Takes the period's lock, as the workers do.\n"
        "  exit 0 done, 1 a run of the period holds the lock or a newer period ran,\n"
        "  2 usage or connection error\n";

const struct ctl_command ctl_rebuild_commands[] = {
        {"redis", "Redis room figures, live-stream and audience keys from MySQL", redis_usage,
         rebuild_redis_run, NULL},
        {"session", "one session's live_statistics from the ledgers", session_usage,
         rebuild_session_run, NULL},
        {"profile", "audience_profile for a period", profile_usage, rebuild_profile_run, NULL},
        {NULL, NULL, NULL, NULL, NULL},
};
