/*
 * audience.c: the audience role (see audience.h): records into operations, the room and
 * session of each, then a batch of operations applied in memory over the rows they touch
 * (read once, locked) and written back with a few multi-row statements (audience_batch.c).
 * Redis gets absolute values read back after the commit; tick() closes silent visits and
 * refreshes the hot ranking.
 */
#include "audience.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audience_batch.h"
#include "clock.h"
#include "contract.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "rebuild.h"
#include "rebuild_audience.h"
#include "redis_conn.h"
#include "settings.h"

static const char *const audience_topics[] = {LF_TOPIC_VIEWER, LF_TOPIC_INTERACTION, NULL};

#define SWEEP_MAX 500 /* timed-out visits closed per sweep transaction */

struct audience_state {
        struct db *db;
        struct redis_conn *redis;
        struct aud_batch *batch;
        long long visit_timeout_s, sweep_interval_s, rank_interval_s, rank_size, stats_ttl_s;
        long long keep_days;
        long long next_sweep_ms, next_rank_ms, next_purge_ms;
        struct metric *m_events, *m_skipped, *m_timeouts, *m_rank_rooms, *m_redis_lost;
        struct db_text text;
        struct rebuild_audience *rebuild;
        struct rebuild_epoch redis_epoch;
        struct rebuild_audience_cursor rebuild_cursor;
        struct rebuild_audience_count rebuilt;
        bool is_rebuilding;
};

static int audience_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        const struct settings *s = env->settings;
        struct audience_state *st = calloc(1, sizeof(*st));

        if (!st || !(st->batch = aud_batch_new(env->db)) ||
            !(st->rebuild = rebuild_audience_new(env->db, env->redis, s->reward_stats_ttl_s))) {
                if (st)
                        aud_batch_destroy(st->batch);
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        st->redis = env->redis;
        st->visit_timeout_s = s->audience_visit_timeout_s;
        st->sweep_interval_s = s->audience_sweep_interval_s;
        st->rank_interval_s = s->audience_rank_interval_s;
        st->rank_size = s->audience_rank_size;
        st->stats_ttl_s = s->reward_stats_ttl_s;
        st->keep_days = s->audience_keep_days;
        st->m_events =
                metrics_counter(env->metrics, "liveflow_audience_events_total",
                                "Viewer and interaction events applied (first copies)", NULL);
        st->m_skipped = metrics_counter(
                env->metrics, "liveflow_audience_skipped_total",
                "Events that changed nothing: duplicates, late copies, exits without a visit, "
                "profiles",
                NULL);
        st->m_timeouts = metrics_counter(env->metrics, "liveflow_audience_visit_timeouts_total",
                                         "Visits closed for want of a heartbeat", NULL);
        st->m_rank_rooms = metrics_gauge(env->metrics, "liveflow_audience_rank_rooms",
                                         "Rooms in live:rank:hot after its last refresh", NULL);
        st->m_redis_lost = metrics_counter(
                env->metrics, "liveflow_redis_data_lost_total",
                "Times Redis was found without liveflow's data (restarted empty or flushed) and "
                "a rebuild from MySQL was started",
                NULL);
        rebuild_epoch_init(&st->redis_epoch, "audience");
        log_info(NULL,
                 "audience: visits close after %lld s without a sign; live:rank:hot every %lld s "
                 "(top %lld)",
                 st->visit_timeout_s, st->rank_interval_s, st->rank_size);
        *state = st;
        return 0;
}

static void audience_close(void *state)
{
        struct audience_state *st = state;

        if (!st)
                return;
        aud_batch_destroy(st->batch);
        rebuild_audience_destroy(st->rebuild);
        db_text_free(&st->text);
        free(st);
}

/* ------------------------------------------------------------------ records into operations */

static const char *payload_str(const struct event *ev, const char *key)
{
        return json_string_value(json_object_get(ev->payload, key));
}

static const struct {
        const char *event_type;
        enum aud_kind kind;
} kinds[] = {
        {"viewer.enter", AUD_ENTER},
        {"viewer.join", AUD_ENTER},
        {"viewer.heartbeat", AUD_HEARTBEAT},
        {"viewer.exit", AUD_EXIT},
        {"viewer.leave", AUD_EXIT},
        {"interaction.chat", AUD_CHAT},
        {"interaction.like", AUD_LIKE},
        {"interaction.follow", AUD_FOLLOW},
        {"interaction.unfollow", AUD_UNFOLLOW},
        {"interaction.share", AUD_SHARE},
};

/*
 * The operation of one record: 1 filled, 0 nothing to do (another kind of event on these
 * topics), -1 malformed (why in errstr).
 */
static int read_op(const struct consumer_record *rec, struct aud_op *op, char *errstr,
                   size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        const char *who, *source;
        json_t *count;
        size_t i;

        memset(op, 0, sizeof(*op));
        for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
                if (strcmp(ev->event_type, kinds[i].event_type) == 0)
                        break;
        if (i == sizeof(kinds) / sizeof(kinds[0]))
                return 0;
        op->kind = kinds[i].kind;
        if (ev->payload_name && strcmp(ev->payload_name, "Viewer") == 0) {
                /* A vendor's player (SRS client_id, Agora uid): keyed by the vendor's name. */
                who = payload_str(ev, "client_id");
                source = ev->vendor && *ev->vendor && strlen(ev->vendor) <= 8 ? ev->vendor
                                                                              : "vendor";
                op->ts_ms = ev->event_time_ms;
        } else if (ev->payload_name && strcmp(ev->payload_name, "AudienceEvent") == 0) {
                json_t *ts = json_object_get(ev->payload, "ts_ms");

                who = payload_str(ev, "audience_id");
                source = "app";
                op->ts_ms = json_is_integer(ts) ? json_integer_value(ts) : ev->event_time_ms;
        } else {
                snprintf(errstr, errstr_size, "%s with payload %s", ev->event_type,
                         ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        if (!who || !*who || strlen(who) > AUD_AUDIENCE_MAX) {
                snprintf(errstr, errstr_size, "%s: audience id missing or longer than %d bytes",
                         ev->event_type, AUD_AUDIENCE_MAX);
                return -1;
        }
        if ((!ev->stream_id || !*ev->stream_id) && (!ev->room_id || !*ev->room_id) &&
            op->kind < AUD_CHAT) {
                snprintf(errstr, errstr_size, "%s names no stream and no room", ev->event_type);
                return -1;
        }
        if ((ev->stream_id && strlen(ev->stream_id) > AUD_STREAM_MAX) ||
            (ev->room_id && strlen(ev->room_id) > AUD_ROOM_MAX)) {
                snprintf(errstr, errstr_size, "stream_id or room_id longer than its column");
                return -1;
        }
        snprintf(op->event_id, sizeof(op->event_id), "%s", ev->event_id);
        snprintf(op->audience_key, sizeof(op->audience_key), "%s:%s", source, who);
        snprintf(op->stream_id, sizeof(op->stream_id), "%s", ev->stream_id ? ev->stream_id : "");
        snprintf(op->room_id, sizeof(op->room_id), "%s", ev->room_id ? ev->room_id : "");
        count = json_object_get(ev->payload, "count");
        op->count = json_is_integer(count) && json_integer_value(count) > 0
                            ? json_integer_value(count)
                            : 1;
        return 1;
}

/* ------------------------------------------------------------------ applying */

static enum apply_result from_db(enum db_result r)
{
        return r == DB_RETRY ? APPLY_RETRY : r == DB_OK ? APPLY_DONE : APPLY_PERMANENT;
}

static void count_outcome(struct audience_state *st)
{
        size_t applied = aud_batch_applied(st->batch), ops = aud_batch_count(st->batch);

        metric_add(st->m_events, (long long)applied);
        metric_add(st->m_skipped, (long long)(ops - applied));
}

static enum apply_result audience_apply_many(void *state, struct apply_slot *slots, size_t n,
                                             char *errstr, size_t errstr_size)
{
        struct audience_state *st = state;
        enum db_result r;

        aud_batch_reset(st->batch);
        for (size_t i = 0; i < n; i++) {
                struct aud_op op;
                int rc = read_op(slots[i].rec, &op, slots[i].error, slots[i].error_size);

                slots[i].result = rc == -1 ? APPLY_PERMANENT : APPLY_DONE;
                slots[i].rec->publish = true;
                if (rc == 0)
                        metric_add(st->m_skipped, 1);
                if (rc == 1 && aud_batch_add(st->batch, &op) == -1) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return APPLY_RETRY;
                }
        }
        if ((r = aud_batch_apply(st->batch, errstr, errstr_size)) != DB_OK)
                return from_db(r);
        count_outcome(st);
        return APPLY_DONE;
}

static enum apply_result audience_apply(void *state, struct consumer_record *rec, char *errstr,
                                        size_t errstr_size)
{
        struct apply_slot slot = {.rec = rec, .error = errstr, .error_size = errstr_size};
        enum apply_result r = audience_apply_many(state, &slot, 1, errstr, errstr_size);

        return r == APPLY_DONE ? slot.result : r;
}

/* ------------------------------------------------------------------ Redis */

/* Redis commands being built: argv[i] (malloc'd) of argc[i] words, their keys and values. */
struct projection {
        const char ***argv;
        int *argc;
        size_t n, cmd_cap;
        char (*keys)[128];
        char (*values)[16][24];
        size_t used, cap;
        long long ttl_s;
};

static bool projection_init(struct projection *p, size_t keys, size_t cmds)
{
        p->cap = keys ? keys : 1;
        p->cmd_cap = cmds ? cmds : 1;
        p->argv = calloc(p->cmd_cap, sizeof(*p->argv));
        p->argc = calloc(p->cmd_cap, sizeof(*p->argc));
        p->keys = calloc(p->cap, sizeof(*p->keys));
        p->values = calloc(p->cap, sizeof(*p->values));
        return p->argv && p->argc && p->keys && p->values;
}

static void on_online(const struct db_col *cols, void *arg)
{
        struct projection *p = arg;
        const char **argv;

        if (p->used >= p->cap || p->n >= p->cmd_cap || !(argv = calloc(3, sizeof(*argv))))
                return;
        snprintf(p->keys[p->used], sizeof(p->keys[0]), LF_KEY_ROOM_ONLINE "%s", cols[0].s);
        snprintf(p->values[p->used][0], sizeof(p->values[0][0]), "%lld",
                 cols[1].i > 0 ? cols[1].i : 0);
        argv[0] = "SET";
        argv[1] = p->keys[p->used];
        argv[2] = p->values[p->used][0];
        p->argv[p->n] = argv;
        p->argc[p->n++] = 3;
        p->used++;
}

/* live:stats fields and the live_statistics columns they come from, in query order. */
static const char *const stats_fields[] = {"views", "uv",      "peak_online", "chats",
                                           "likes", "follows", "shares"};
#define STATS_FIELDS (sizeof(stats_fields) / sizeof(stats_fields[0]))

static void on_stats(const struct db_col *cols, void *arg)
{
        struct projection *p = arg;
        const char **argv, **expire;
        int argc = 2;

        if (p->used >= p->cap || p->n + 2 > p->cmd_cap ||
            !(argv = calloc(2 + 2 * STATS_FIELDS, sizeof(*argv))))
                return;
        snprintf(p->keys[p->used], sizeof(p->keys[0]), LF_KEY_SESSION_STATS "%lld", cols[0].i);
        argv[0] = "HSET";
        argv[1] = p->keys[p->used];
        for (size_t f = 0; f < STATS_FIELDS; f++) {
                if (cols[1 + f].is_null)
                        continue; /* unknown, not zero */
                snprintf(p->values[p->used][f], sizeof(p->values[0][0]), "%lld", cols[1 + f].i);
                argv[argc++] = stats_fields[f];
                argv[argc++] = p->values[p->used][f];
        }
        if (argc == 2) {
                free(argv);
                return;
        }
        p->argv[p->n] = argv;
        p->argc[p->n++] = argc;
        if ((expire = calloc(3, sizeof(*expire)))) {
                snprintf(p->values[p->used][15], sizeof(p->values[0][0]), "%lld", p->ttl_s);
                expire[0] = "EXPIRE";
                expire[1] = p->keys[p->used];
                expire[2] = p->values[p->used][15];
                p->argv[p->n] = expire;
                p->argc[p->n++] = 3;
        }
        p->used++;
}

static void projection_free(struct projection *p)
{
        for (size_t i = 0; i < p->n; i++)
                free((void *)p->argv[i]);
        free(p->argv);
        free(p->argc);
        free(p->keys);
        free(p->values);
}

/*
 * Writes the current figures of every room and session the batch touched (absolute values
 * read from MySQL: a replay or a second publish writes the same thing).
 */
static int project(struct audience_state *st, char *errstr, size_t errstr_size)
{
        struct projection p = {.ttl_s = st->stats_ttl_s};
        struct db_col room_cols[2] = {{.type = DB_PARAM_STR}, {.type = DB_PARAM_I64}};
        struct db_col stat_cols[1 + STATS_FIELDS];
        char room[AUD_ROOM_MAX + 1];
        size_t rooms, sessions;
        int rc = -1;

        room_cols[0].s = room;
        room_cols[0].s_size = sizeof(room);
        for (size_t i = 0; i < 1 + STATS_FIELDS; i++)
                stat_cols[i] = (struct db_col){.type = DB_PARAM_I64};
        rooms = aud_batch_dirty_rooms(st->batch);
        sessions = aud_batch_dirty_sessions(st->batch);
        if (!rooms && !sessions)
                return 0;
        if (!projection_init(&p, rooms + sessions, rooms + 2 * sessions)) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        if (aud_batch_rooms_query(st->batch, &st->text) &&
            db_text_query(st->db, &st->text, room_cols, 2, on_online, &p, errstr, errstr_size) !=
                    DB_OK)
                goto out;
        if (aud_batch_sessions_query(st->batch, &st->text) &&
            db_text_query(st->db, &st->text, stat_cols, 1 + STATS_FIELDS, on_stats, &p, errstr,
                          errstr_size) != DB_OK)
                goto out;
        if (p.n && redis_conn_pipeline(st->redis, p.n, p.argc, p.argv, errstr, errstr_size) == -1)
                goto out;
        aud_batch_clear_dirty(st->batch);
        rc = 0;
out:
        projection_free(&p);
        return rc;
}

static int audience_publish_many(void *state, struct consumer_record *const *recs, size_t n,
                                 char *errstr, size_t errstr_size)
{
        (void)recs;
        (void)n;
        return project(state, errstr, errstr_size);
}

static int audience_publish(void *state, struct consumer_record *rec, char *errstr,
                            size_t errstr_size)
{
        (void)rec;
        return project(state, errstr, errstr_size);
}

/* ------------------------------------------------------------------ tick: timeouts, ranking */

struct sweep {
        struct aud_batch *batch;
        bool is_oom;
};

static void on_silent_visit(const struct db_col *cols, void *arg)
{
        struct sweep *sw = arg;
        struct aud_op op = {.kind = AUD_TIMEOUT, .ts_ms = cols[2].i};

        snprintf(op.room_id, sizeof(op.room_id), "%s", cols[0].s);
        snprintf(op.audience_key, sizeof(op.audience_key), "%s", cols[1].s);
        if (aud_batch_add(sw->batch, &op) == -1)
                sw->is_oom = true;
}

/* Closes visits silent for the timeout, SWEEP_MAX per transaction. @returns how many. */
static long long sweep_visits(struct audience_state *st, char *err, size_t err_size)
{
        char room[AUD_ROOM_MAX + 1], key[AUD_KEY_MAX + 1];
        struct db_col cols[3] = {{.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                                 {.type = DB_PARAM_STR, .s = key, .s_size = sizeof(key)},
                                 {.type = DB_PARAM_I64}};
        struct sweep sw = {.batch = st->batch};
        long long closed;

        aud_batch_reset(st->batch);
        db_text_reset(&st->text);
        db_text_add(&st->text,
                    "SELECT room_id, audience_key, ROUND(UNIX_TIMESTAMP(last_seen_at) * 1000) "
                    "FROM audience_visit WHERE is_open = 1 AND last_seen_at < NOW(3) - INTERVAL "
                    "%lld SECOND LIMIT %d",
                    st->visit_timeout_s, SWEEP_MAX);
        if (db_begin(st->db, err, err_size) != DB_OK)
                return -1;
        if (db_text_query(st->db, &st->text, cols, 3, on_silent_visit, &sw, err, err_size) !=
                    DB_OK ||
            sw.is_oom || aud_batch_apply(st->batch, err, err_size) != DB_OK ||
            db_commit(st->db, err, err_size) != DB_OK) {
                if (sw.is_oom)
                        snprintf(err, err_size, "out of memory");
                db_rollback(st->db);
                return -1;
        }
        closed = (long long)aud_batch_closed(st->batch);
        metric_add(st->m_timeouts, closed);
        if (project(st, err, err_size) == -1)
                log_warn(NULL, "audience: figures of timed-out visits not in Redis yet: %s", err);
        return closed;
}

/* The hot ranking, with the code `liveflow-ctl rebuild redis` runs too. */
static void refresh_rank(struct audience_state *st)
{
        long long ranked = 0;
        char err[512];

        if (rebuild_audience_rank(st->db, st->redis, st->rank_interval_s, st->rank_size, &ranked,
                                  err, sizeof(err)) == -1)
                log_warn(NULL, "audience: live:rank:hot not refreshed: %s", err);
        else
                metric_set(st->m_rank_rooms, ranked);
}

/* ------------------------------------------------------------------ Redis that lost its data */

#define REBUILD_STEP_ROOMS 20  /* rooms per step of the rebuild */
#define REBUILD_TICK_MS    500 /* rebuild work per tick before the partitions get their turn */

/*
 * Redis restarted empty, flushed, or reloaded an older copy: every room's online count and
 * every recent session's audience figures are rebuilt from MySQL, for up to REBUILD_TICK_MS a
 * tick (batches are applied between), then the ranking.
 */
static void check_redis_epoch(struct audience_state *st)
{
        bool is_lost = false;
        char err[512];

        if (rebuild_epoch_check(st->redis, &st->redis_epoch, &is_lost, err, sizeof(err)) == -1)
                return; /* Redis unreachable: the projections fail and retry meanwhile */
        if (!is_lost)
                return;
        metric_add(st->m_redis_lost, 1);
        rebuild_audience_cursor_init(&st->rebuild_cursor);
        memset(&st->rebuilt, 0, sizeof(st->rebuilt));
        st->is_rebuilding = true;
        log_warn(NULL,
                 "redis holds none of liveflow's data, or an older copy (new, restarted or "
                 "flushed; epoch now %s): rebuilding the audience keys from MySQL",
                 st->redis_epoch.token);
}

static void rebuild_step(struct audience_state *st)
{
        long long deadline = clock_mono_ms() + REBUILD_TICK_MS;
        char err[512];
        bool done = false;

        if (!st->is_rebuilding)
                return;
        while (!done && clock_mono_ms() < deadline) {
                if (rebuild_audience_step(st->rebuild, &st->rebuild_cursor, REBUILD_STEP_ROOMS,
                                          &done, &st->rebuilt, err, sizeof(err)) == -1) {
                        log_warn(NULL, "audience: rebuilding the Redis keys: %s (tried again)",
                                 err);
                        return;
                }
        }
        if (!done)
                return;
        st->is_rebuilding = false;
        st->next_rank_ms = 0;
        log_info(NULL,
                 "audience: %lld room(s) and %lld session(s) rebuilt in Redis from MySQL, %lld "
                 "key(s) of unknown rooms deleted, %lld MySQL counter(s) set from their rows",
                 st->rebuilt.rooms, st->rebuilt.sessions, st->rebuilt.keys_deleted,
                 st->rebuilt.mysql_counters);
}

#define PURGE_EVERY_MS (10 * 60 * 1000)
#define PURGE_ROWS     10000 /* per table and run: a backlog is worked off run by run */

/*
 * Forgets what no replay can need any more: event ids and closed visits older than
 * LIVEFLOW_AUDIENCE_KEEP_DAYS (beyond Kafka's retention), room minutes older than a day (the
 * ranking reads one interval).
 */
static void purge(struct audience_state *st)
{
        static const char *const what[] = {
                "DELETE FROM audience_event_seen WHERE seen_at < NOW(3) - INTERVAL %lld DAY "
                "LIMIT %d",
                "DELETE FROM audience_visit WHERE is_open = 0 AND COALESCE(left_at, last_seen_at) "
                "< NOW(3) - INTERVAL %lld DAY LIMIT %d",
                "DELETE FROM audience_room_minute WHERE minute < NOW() - INTERVAL %lld DAY LIMIT "
                "%d",
        };
        long long days[] = {st->keep_days, st->keep_days, st->rank_interval_s / 86400 + 1};
        unsigned long long gone, total = 0;
        char err[512];

        for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
                db_text_reset(&st->text);
                db_text_add(&st->text, what[i], days[i], PURGE_ROWS);
                if (db_text_exec(st->db, &st->text, &gone, err, sizeof(err)) != DB_OK) {
                        log_warn(NULL, "audience: purge: %s (again in %d min)", err,
                                 PURGE_EVERY_MS / 60000);
                        return;
                }
                total += gone;
        }
        if (total)
                log_info(NULL,
                         "audience: purged %llu old event ids, closed visits and room minutes",
                         total);
}

static void audience_tick(void *state, long long now_ms)
{
        struct audience_state *st = state;
        char err[512] = "";
        long long closed;

        (void)now_ms;
        if (clock_wall_ms() >= st->next_sweep_ms) {
                st->next_sweep_ms = clock_wall_ms() + st->sweep_interval_s * 1000;
                do {
                        closed = sweep_visits(st, err, sizeof(err));
                } while (closed == SWEEP_MAX);
                if (closed < 0)
                        log_warn(NULL, "audience: visit timeout sweep: %s (again in %lld s)", err,
                                 st->sweep_interval_s);
                else if (closed > 0)
                        log_info(NULL, "audience: closed %lld visits silent for %lld s", closed,
                                 st->visit_timeout_s);
        }
        if (clock_wall_ms() >= st->next_purge_ms) {
                st->next_purge_ms = clock_wall_ms() + PURGE_EVERY_MS;
                purge(st);
        }
        check_redis_epoch(st);
        rebuild_step(st);
        if (clock_wall_ms() >= st->next_rank_ms && !st->is_rebuilding) {
                st->next_rank_ms = clock_wall_ms() + st->rank_interval_s * 1000;
                refresh_rank(st);
        }
}

const struct consumer_role audience_role = {
        .name = "audience",
        .topics = audience_topics,
        .open = audience_open,
        .apply = audience_apply,
        .publish = audience_publish,
        .apply_many = audience_apply_many,
        .publish_many = audience_publish_many,
        .tick = audience_tick,
        .close = audience_close,
};
