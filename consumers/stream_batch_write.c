/* stream_batch_write.c: writing what a stream batch decided (see stream_batch.h). */
#include "stream_batch.h"

#include <stdio.h>
#include <string.h>

#include "notify.h"
#include "text.h"

static void add_str(struct stream_batch *b, const char *s)
{
        db_text_add(&b->sql, ", ");
        db_text_str(b->st->db, &b->sql, s);
}

static void add_time(struct stream_batch *b, long long ms)
{
        db_text_add(&b->sql, ", ");
        if (ms >= 0)
                db_text_from_ms(&b->sql, ms);
        else
                db_text_add(&b->sql, "NULL");
}

static void add_int(struct stream_batch *b, long long v)
{
        db_text_add(&b->sql, ", ");
        if (v >= 0)
                db_text_i64(&b->sql, v);
        else
                db_text_add(&b->sql, "NULL");
}

/*
 * The rows the batch changed, as it leaves them: those that existed (locked) in one upsert
 * (updates), the new ones in one plain INSERT, which fails with a duplicate key (the batch is
 * tried again) if another transaction created one of them after the batch found it missing.
 */
static enum db_result write_streams(struct stream_batch *b, bool existing, char *errstr,
                                    size_t errstr_size)
{
        size_t rows = 0;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, "
                             "vendor, vendor_session, status, started_at, ended_at, duration_s, "
                             "close_method, close_reason, last_event_at) VALUES ");
        for (size_t i = 0; i < b->stream_cnt; i++) {
                const struct sb_stream *s = &b->streams[i];

                if (!s->is_changed || s->does_exist != existing)
                        continue;
                db_text_add(&b->sql, rows++ ? ", (" : "(");
                db_text_str(b->st->db, &b->sql, s->stream_id);
                add_str(b, s->anchor);
                add_str(b, s->room);
                add_int(b, s->session_id ? s->session_id : -1);
                add_str(b, s->vendor);
                add_str(b, s->vendor_session);
                add_str(b, s->status);
                add_time(b, s->started_ms);
                add_time(b, s->ended_ms);
                add_int(b, s->duration_s);
                add_int(b, s->close_method);
                add_str(b, s->close_reason);
                db_text_add(&b->sql, ", NOW(3))");
        }
        if (!rows)
                return DB_OK;
        if (existing)
                db_text_add(&b->sql,
                            " ON DUPLICATE KEY UPDATE anchor_id = VALUES(anchor_id), "
                            "room_id = VALUES(room_id), session_id = VALUES(session_id), "
                            "vendor = VALUES(vendor), vendor_session = VALUES(vendor_session), "
                            "status = VALUES(status), started_at = VALUES(started_at), "
                            "ended_at = VALUES(ended_at), duration_s = VALUES(duration_s), "
                            "close_method = VALUES(close_method), "
                            "close_reason = VALUES(close_reason), "
                            "last_event_at = VALUES(last_event_at)");
        return db_text_exec(b->st->db, &b->sql, NULL, errstr, errstr_size);
}

/* The outbox rows of the sessions the batch ended (INSERT IGNORE: recorded already is fine). */
static enum db_result write_handoffs(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT IGNORE INTO session_handoff (event_id, session_id, stream_id, "
                             "anchor_id, room_id, started_at, ended_at, duration_s, close_method) "
                             "VALUES ");
        for (size_t i = 0; i < b->n; i++) {
                const struct sb_rec *r = &b->recs[i];
                const struct sb_handoff *h = &r->handoff;

                if (!r->has_handoff)
                        continue;
                db_text_add(&b->sql, rows++ ? ", (" : "(");
                db_text_str(b->st->db, &b->sql, r->se.ev->event_id);
                add_int(b, h->session_id);
                add_str(b, r->se.ev->stream_id);
                add_str(b, h->anchor);
                add_str(b, h->room);
                add_time(b, h->started_ms);
                add_time(b, h->ended_ms);
                add_int(b, h->duration_s);
                add_int(b, h->close_method);
                db_text_add(&b->sql, ")");
        }
        return rows ? db_text_exec(b->st->db, &b->sql, NULL, errstr, errstr_size) : DB_OK;
}

/* role_batch_write_ledger()'s outcome of record i. */
static const char *outcome_of(void *arg, size_t i)
{
        return ((const struct stream_batch *)arg)->recs[i].outcome;
}

static enum db_result write_events(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        return role_batch_write_ledger(&b->rb, b->st->ledger, outcome_of, b, errstr, errstr_size);
}

/*
 * adopt_tips() of each session recorded from its end alone, on the row as that end left it
 * (a later event of the batch may have changed it since): one statement each, for the few.
 */
static enum db_result adopt_tips(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < b->n; i++) {
                const struct sb_handoff *w = &b->recs[i].only_end;
                enum db_result r;

                if (!b->recs[i].is_only_end || !w->session_id || w->started_ms < 0 ||
                    w->ended_ms < 0)
                        continue;
                db_text_reset(&b->sql);
                db_text_add(&b->sql,
                            "UPDATE recharge r SET r.session_id = %lld WHERE "
                            "r.session_id IS NULL AND r.room_id = COALESCE(",
                            w->session_id);
                db_text_str(b->st->db, &b->sql, w->room);
                db_text_add(&b->sql, ", ");
                db_text_str(b->st->db, &b->sql, w->anchor);
                db_text_add(&b->sql,
                            ") AND r.tipped_at BETWEEN FROM_UNIXTIME(%lld / 1000) AND "
                            "FROM_UNIXTIME(%lld / 1000)",
                            w->started_ms, w->ended_ms);
                if ((r = db_text_exec(b->st->db, &b->sql, NULL, errstr, errstr_size)) != DB_OK)
                        return r;
        }
        return DB_OK;
}

/* The batch's stream.live and stream.ended notifications, in batch order, in one insert. */
static enum db_result write_notifications(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        notify_text_begin(&b->sql);
        for (size_t i = 0; i < b->n; i++) {
                const struct sb_rec *r = &b->recs[i];
                const struct sb_handoff *w = &r->notify;
                char key[24];
                struct notify_msg m;

                if (!r->has_notify)
                        continue;
                text_int(key, sizeof(key), w->session_id);
                m = notify_msg_init(r->se.is_begin ? "stream.live" : "stream.ended", key,
                                    r->se.ev->event_time_ms);
                m.anchor_id = w->anchor;
                m.room_id = w->room;
                m.stream_id = r->se.ev->stream_id;
                m.session_id = w->session_id;
                m.cover_url = r->notify_cover;
                if (!r->se.is_begin) {
                        m.duration_s = w->duration_s;
                        m.close_method = w->close_method;
                        m.reason = r->notify_reason;
                }
                notify_text_row(b->st->notify, &b->sql, &m, rows++ == 0);
        }
        return notify_text_exec(b->st->notify, &b->sql, rows, errstr, errstr_size);
}

enum db_result stream_batch_write(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        /* The ledger's rows first: unread, a replay fails that insert and nothing is written. */
        if ((r = write_events(b, errstr, errstr_size)) != DB_OK)
                return r;
        if ((r = write_streams(b, true, errstr, errstr_size)) != DB_OK ||
            (r = write_streams(b, false, errstr, errstr_size)) != DB_OK ||
            (r = adopt_tips(b, errstr, errstr_size)) != DB_OK ||
            (r = write_handoffs(b, errstr, errstr_size)) != DB_OK ||
            (r = write_notifications(b, errstr, errstr_size)) != DB_OK)
                return role_batch_after_ledger(&b->rb, r);
        return DB_OK;
}
