/*
 * audience_write.c: the audience engine's writes (see audience_batch.h): what a batch changed,
 * one multi-row statement per table, and the queries of the Redis projection.
 */
#include "audience_rows.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

/* ------------------------------------------------------------------ writing */

static enum db_result write_ledger(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_event_seen (event_id) VALUES ");
        for (size_t i = 0; i < b->ops.n; i++) {
                struct op_row *o = AT(b->ops, struct op_row, i);

                if (!o->is_new || !o->op.event_id[0])
                        continue;
                aud_sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, o->op.event_id);
                db_text_add(&b->t, ")");
        }
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static void add_time(struct db_text *t, long long ms)
{
        if (!ms) {
                db_text_add(t, "NULL");
                return;
        }
        db_text_add(t, "FROM_UNIXTIME(");
        db_text_i64(t, ms);
        db_text_add(t, " / 1000)");
}

static void add_id(struct db_text *t, long long id)
{
        if (id)
                db_text_i64(t, id);
        else
                db_text_add(t, "NULL");
}

static void add_str_or_null(struct aud_batch *b, const char *s)
{
        db_text_str(b->db, &b->t, s[0] ? s : NULL);
}

static enum db_result write_visits(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_visit (room_id, audience_key, is_open, visit_id, "
                           "session_id, stream_id, entered_at, last_seen_at, left_at) VALUES ");
        for (size_t i = 0; i < b->visits.rows.n; i++) {
                struct visit_row *v = AT(b->visits.rows, struct visit_row, i);

                if (!v->dirty)
                        continue;
                aud_sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, v->room);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, v->akey);
                db_text_add(&b->t, ", %d, ", v->is_open ? 1 : 0);
                add_str_or_null(b, v->visit_id);
                db_text_add(&b->t, ", ");
                add_id(&b->t, v->session_id);
                db_text_add(&b->t, ", ");
                add_str_or_null(b, v->stream);
                db_text_add(&b->t, ", ");
                add_time(&b->t, v->entered_ms);
                db_text_add(&b->t, ", ");
                add_time(&b->t, v->last_seen_ms);
                db_text_add(&b->t, ", ");
                add_time(&b->t, v->left_ms);
                db_text_add(&b->t, ")");
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE is_open = VALUES(is_open), visit_id = "
                           "VALUES(visit_id), session_id = VALUES(session_id), stream_id = "
                           "VALUES(stream_id), entered_at = VALUES(entered_at), last_seen_at = "
                           "VALUES(last_seen_at), left_at = VALUES(left_at)");
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static enum db_result write_history(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT IGNORE INTO live_watch_history (visit_id, audience_id, source, "
                           "room_id, session_id, stream_id, entered_at, left_at, seconds, "
                           "close_reason) VALUES ");
        for (size_t i = 0; i < b->history.n; i++) {
                struct history_row *h = AT(b->history, struct history_row, i);
                const char *colon = strchr(h->akey, ':');
                char source[8];

                snprintf(source, sizeof(source), "%.*s", colon ? (int)(colon - h->akey) : 0,
                         h->akey);
                aud_sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, h->visit_id);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, colon ? colon + 1 : h->akey);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, source);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, h->room);
                db_text_add(&b->t, ", ");
                add_id(&b->t, h->session_id);
                db_text_add(&b->t, ", ");
                add_str_or_null(b, h->stream);
                db_text_add(&b->t, ", ");
                add_time(&b->t, h->entered_ms ? h->entered_ms : h->left_ms);
                db_text_add(&b->t, ", ");
                add_time(&b->t, h->left_ms);
                db_text_add(&b->t, ", %lld, '%s')", h->seconds, h->reason);
        }
        return b->history.n ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static enum db_result write_pairs(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(
                &b->t,
                "INSERT IGNORE INTO audience_session_viewer (session_id, audience_key) VALUES ");
        for (size_t i = 0; i < b->pairs.rows.n; i++) {
                struct pair_row *p = AT(b->pairs.rows, struct pair_row, i);

                if (!p->is_new)
                        continue;
                aud_sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_i64(&b->t, p->session_id);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, p->akey);
                db_text_add(&b->t, ")");
        }
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

static enum db_result write_rooms(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        size_t listed = 0;

        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_room (room_id, online) VALUES ");
        for (size_t i = 0; i < b->rooms.rows.n; i++) {
                struct room_row *r = AT(b->rooms.rows, struct room_row, i);

                if (!r->dirty)
                        continue;
                aud_sep(&b->t, listed++);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, r->key);
                db_text_add(&b->t, ", %lld)", r->online);
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE online = VALUES(online)");
        return listed ? db_text_exec(b->db, &b->t, NULL, errstr, errstr_size) : DB_OK;
}

/* A viewer figure: the delta when the session had viewer events, else NULL (left as it is). */
static void add_viewer_figure(struct db_text *t, const struct session_row *s, long long v)
{
        if (s->has_viewers)
                db_text_i64(t, v);
        else
                db_text_add(t, "NULL");
}

static enum db_result write_sessions(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        static const char *const viewer_cols[] = {"views",        "unique_viewers", "total_watch_s",
                                                  "watch_visits", "watch_lt_1m",    "watch_1_5m",
                                                  "watch_5_15m",  "watch_15_60m",   "watch_gt_60m"};
        static const char *const count_cols[] = {"chats", "likes", "follows", "unfollows",
                                                 "shares"};

        if (!b->sessions.rows.n)
                return DB_OK;
        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO live_statistics (session_id, stream_id, views, "
                           "unique_viewers, total_watch_s, watch_visits, watch_lt_1m, watch_1_5m, "
                           "watch_5_15m, watch_15_60m, watch_gt_60m, peak_online, avg_watch_s, "
                           "chats, likes, follows, unfollows, shares) VALUES ");
        for (size_t i = 0; i < b->sessions.rows.n; i++) {
                struct session_row *s = AT(b->sessions.rows, struct session_row, i);
                long long viewer[] = {s->views,        s->uv,         s->watch_s,
                                      s->watch_visits, s->buckets[0], s->buckets[1],
                                      s->buckets[2],   s->buckets[3], s->buckets[4]};

                aud_sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_i64(&b->t, s->id);
                db_text_add(&b->t, ", ");
                db_text_str(b->db, &b->t, s->stream);
                for (size_t c = 0; c < sizeof(viewer) / sizeof(viewer[0]); c++) {
                        db_text_add(&b->t, ", ");
                        add_viewer_figure(&b->t, s, viewer[c]);
                }
                db_text_add(&b->t, ", ");
                add_viewer_figure(&b->t, s, s->peak);
                db_text_add(&b->t, ", ");
                if (s->has_viewers && s->watch_visits)
                        db_text_i64(&b->t, s->watch_s / s->watch_visits);
                else
                        db_text_add(&b->t, "NULL");
                db_text_add(&b->t, ", %lld, %lld, %lld, %lld, %lld)", s->chats, s->likes,
                            s->follows, s->unfollows, s->shares);
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE ");
        for (size_t c = 0; c < sizeof(viewer_cols) / sizeof(viewer_cols[0]); c++)
                db_text_add(&b->t,
                            "%s = IF(VALUES(%s) IS NULL, %s, COALESCE(%s, 0) + VALUES(%s)), ",
                            viewer_cols[c], viewer_cols[c], viewer_cols[c], viewer_cols[c],
                            viewer_cols[c]);
        db_text_add(&b->t, "peak_online = IF(VALUES(peak_online) IS NULL, peak_online, "
                           "GREATEST(COALESCE(peak_online, 0), VALUES(peak_online))), "
                           "avg_watch_s = IF(watch_visits > 0, total_watch_s DIV watch_visits, "
                           "avg_watch_s)");
        for (size_t c = 0; c < sizeof(count_cols) / sizeof(count_cols[0]); c++)
                db_text_add(&b->t, ", %s = COALESCE(%s, 0) + VALUES(%s)", count_cols[c],
                            count_cols[c], count_cols[c]);
        return db_text_exec(b->db, &b->t, NULL, errstr, errstr_size);
}

static enum db_result write_minutes(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        if (!b->minutes.rows.n)
                return DB_OK;
        db_text_reset(&b->t);
        db_text_add(&b->t, "INSERT INTO audience_room_minute (room_id, minute, chats, likes, "
                           "follows, shares) VALUES ");
        for (size_t i = 0; i < b->minutes.rows.n; i++) {
                struct minute_row *m = AT(b->minutes.rows, struct minute_row, i);

                aud_sep(&b->t, i);
                db_text_add(&b->t, "(");
                db_text_str(b->db, &b->t, m->room);
                db_text_add(&b->t, ", FROM_UNIXTIME(%lld), %lld, %lld, %lld, %lld)",
                            m->minute_ms / 1000, m->chats, m->likes, m->follows, m->shares);
        }
        db_text_add(&b->t, " ON DUPLICATE KEY UPDATE chats = chats + VALUES(chats), likes = likes "
                           "+ VALUES(likes), follows = follows + VALUES(follows), shares = shares "
                           "+ VALUES(shares)");
        return db_text_exec(b->db, &b->t, NULL, errstr, errstr_size);
}

/* ------------------------------------------------------------------ the verb */

enum db_result aud_batch_write(struct aud_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result (*const writers[])(struct aud_batch *, char *, size_t) = {
                write_ledger, write_visits,   write_history, write_pairs,
                write_rooms,  write_sessions, write_minutes};
        long long t[8];
        enum db_result r;

        t[0] = clock_mono_us();
        for (size_t i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
                if ((r = writers[i](b, errstr, errstr_size)) != DB_OK)
                        return r;
                t[i + 1] = clock_mono_us();
        }
        log_debug(NULL,
                  "audience writes us: ledger %lld visits %lld history %lld viewers %lld rooms "
                  "%lld sessions %lld minutes %lld",
                  t[1] - t[0], t[2] - t[1], t[3] - t[2], t[4] - t[3], t[5] - t[4], t[6] - t[5],
                  t[7] - t[6]);
        return DB_OK;
}

/* ------------------------------------------------------------------ Redis projection queries */

bool aud_batch_rooms_query(struct aud_batch *b, struct db_text *t)
{
        if (!b->dirty_rooms.rows.n)
                return false;
        db_text_reset(t);
        db_text_add(t, "SELECT room_id, online FROM audience_room WHERE room_id IN (");
        for (size_t i = 0; i < b->dirty_rooms.rows.n; i++) {
                aud_sep(t, i);
                db_text_str(b->db, t, AT(b->dirty_rooms.rows, struct room_row, i)->key);
        }
        db_text_add(t, ")");
        return true;
}

bool aud_batch_sessions_query(struct aud_batch *b, struct db_text *t)
{
        if (!b->dirty_sessions.rows.n)
                return false;
        db_text_reset(t);
        db_text_add(t, "SELECT session_id, views, unique_viewers, peak_online, chats, likes, "
                       "follows, shares FROM live_statistics WHERE session_id IN (");
        for (size_t i = 0; i < b->dirty_sessions.rows.n; i++) {
                aud_sep(t, i);
                db_text_add(t, "%s", AT(b->dirty_sessions.rows, struct seen_row, i)->key);
        }
        db_text_add(t, ")");
        return true;
}
