/*
 * audit_batch_write.c: what the audit batch decided, written in one statement per table as
 * audit_apply()'s statements leave the rows: the new verdicts' live_audit_logs rows, the
 * anchors rows they changed, and their live.notify outbox rows.
 */
#include "audit_batch.h"

#include <stdio.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "notify.h"

void audit_batch_add_ms(struct db_text *t, long long ms)
{
        if (ms < 0)
                db_text_add(t, "NULL");
        else
                db_text_add(t, "FROM_UNIXTIME(%lld / 1000)", ms);
}

/* The new verdicts' log rows, as insert_log() and set_log leave them, in batch order. */
static enum db_result write_logs(struct batch *b, char *errstr, size_t errstr_size)
{
        struct db *db = b->st->db;
        struct db_text *t = &b->sql;
        size_t rows = 0;
        unsigned long long affected = 0;
        enum db_result r;

        db_text_reset(t);
        db_text_add(t,
                    "INSERT INTO live_audit_logs (event_id, event_type, event_time, trace_id, "
                    "stream_id, anchor_id, source, suggestion, label, score, reason, punishment, "
                    "severity, outcome, suspended_until, close_stream_id, close_vendor, "
                    "close_method) VALUES ");
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                const struct consumer_record *rec = bv->slot->rec;
                const struct decision *d = &bv->d;
                bool has_close = d->close_stream[0] != '\0';

                if (!bv->is_new)
                        continue;
                db_text_add(t, rows++ ? ", (" : "(");
                db_text_str(db, t, rec->ev.event_id);
                db_text_add(t, ", ");
                db_text_str(db, t, rec->ev.event_type);
                db_text_add(t, ", ");
                audit_batch_add_ms(t, rec->ev.event_time_ms);
                db_text_add(t, ", ");
                db_text_str(db, t, rec->trace_id);
                db_text_add(t, ", ");
                db_text_str(db, t, rec->ev.stream_id);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->anchor[0] ? bv->anchor : NULL);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.source);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.suggestion);
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.label);
                db_text_add(t, ", ");
                if (bv->v.score >= 0)
                        db_text_i64(t, bv->v.score);
                else
                        db_text_add(t, "NULL");
                db_text_add(t, ", ");
                db_text_str(db, t, bv->v.reason);
                db_text_add(t, ", ");
                db_text_str(db, t, audit_grade_name(d->punishment));
                db_text_add(t, ", ");
                db_text_str(db, t, audit_grade_name(bv->v.severity));
                db_text_add(t, ", ");
                db_text_str(db, t, d->outcome);
                db_text_add(t, ", ");
                audit_batch_add_ms(t, d->status && strcmp(d->status, "suspended") == 0 ? d->until_ms
                                                                                       : -1);
                db_text_add(t, ", ");
                db_text_str(db, t, has_close ? d->close_stream : NULL);
                db_text_add(t, ", ");
                db_text_str(db, t, has_close && d->close_vendor[0] ? d->close_vendor : NULL);
                db_text_add(t, ", ");
                if (d->close_method)
                        db_text_i64(t, d->close_method);
                else
                        db_text_add(t, "NULL");
                db_text_add(t, ")");
        }
        if (!rows)
                return DB_OK;
        r = db_text_exec(db, t, &affected, errstr, errstr_size);
        if (r == DB_OK && affected != rows) {
                snprintf(errstr, errstr_size, "live_audit_logs took %llu of %zu verdicts", affected,
                         rows);
                return DB_DUPLICATE;
        }
        return r;
}

/*
 * The anchors rows as the last of their verdicts leaves them: the missing ones (every anchor of
 * the batch gets its row, as audit_apply() creates it) with a plain INSERT, which fails if
 * another instance created one meanwhile; the existing ones the batch changed with an upsert.
 */
static enum db_result write_anchors(struct batch *b, bool missing, char *errstr,
                                    size_t errstr_size)
{
        struct db_text *t = &b->sql;
        size_t rows = 0;

        db_text_reset(t);
        db_text_add(t, "INSERT INTO anchors (anchor_id, status, suspended_until, admin_at, "
                       "warning_count) VALUES ");
        for (size_t i = 0; i < b->anchor_cnt; i++) {
                const struct batch_anchor *ba = &b->anchors[i];

                if (missing ? ba->is_locked : !ba->is_locked || !ba->is_changed)
                        continue;
                db_text_add(t, rows++ ? ", (" : "(");
                db_text_str(b->st->db, t, ba->id);
                db_text_add(t, ", ");
                db_text_str(b->st->db, t, ba->row.status);
                db_text_add(t, ", ");
                audit_batch_add_ms(t, ba->row.until_ms);
                db_text_add(t, ", ");
                audit_batch_add_ms(t, ba->row.admin_at_ms);
                db_text_add(t, ", ");
                db_text_i64(t, ba->warnings);
                db_text_add(t, ")");
        }
        if (!rows)
                return DB_OK;
        if (!missing)
                db_text_add(t, " ON DUPLICATE KEY UPDATE status = VALUES(status), "
                               "suspended_until = VALUES(suspended_until), admin_at = "
                               "VALUES(admin_at), warning_count = warning_count + "
                               "VALUES(warning_count)");
        return db_text_exec(b->st->db, t, NULL, errstr, errstr_size);
}

/* live.notify: a warning, suspension or ban of each new verdict, in one statement. */
static enum db_result write_notifications(struct batch *b, char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        notify_text_begin(&b->sql);
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                struct notify_msg m;

                if (bv->is_new && audit_notify_msg(bv->slot->rec, bv->anchor, &bv->d, &m))
                        notify_text_row(b->st->notify, &b->sql, &m, rows++ == 0);
        }
        return notify_text_exec(b->st->notify, &b->sql, rows, errstr, errstr_size);
}

static void log_batch(const struct batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_verdict *bv = &b->bv[i];
                const struct consumer_record *rec = bv->slot->rec;

                if (!bv->is_valid)
                        continue;
                if (bv->is_new)
                        audit_log_decision(rec, &bv->v, bv->anchor, &bv->d);
                else
                        log_debug(rec->trace_id, "duplicate verdict %s stream=%s", rec->ev.event_id,
                                  rec->ev.stream_id ? rec->ev.stream_id : "-");
        }
}

enum db_result audit_batch_write(struct batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        if ((r = write_logs(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "write_logs");
        if ((r = write_anchors(b, true, errstr, errstr_size)) != DB_OK ||
            (r = write_anchors(b, false, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "write_anchors");
        if ((r = write_notifications(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "write_notify");
        log_batch(b);
        audit_steps_mark(&b->steps, "log");
        return DB_OK;
}
