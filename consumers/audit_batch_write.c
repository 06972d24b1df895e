/*
 * audit_batch_write.c: what the audit batch decided, written in one statement per table as
 * audit_apply()'s statements leave the rows: the new verdicts' live_audit_logs rows, the
 * anchors rows they changed, and their live.notify outbox rows.
 */
#include "audit_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
#include "log.h"
#include "notify.h"

void audit_batch_add_ms(struct db_text *t, long long ms)
{
        if (ms < 0)
                db_text_add(t, "NULL");
        else
                db_text_from_ms(t, ms);
}

/* A log row the insert returned: when it was decided (its created_at). */
static void on_log_row(const struct db_col *cols, void *arg)
{
        struct batch *b = arg;
        size_t at = keyset_find(&b->ids, cols[0].s);

        b->returned++;
        if (at == b->ids.n || cols[1].is_null) {
                b->is_mismatch = true;
                return;
        }
        b->bv[b->ids.items[at].index].decided_ms = cols[1].i;
}

/* The new verdicts' log rows, as insert_log() and set_log leave them, in batch order. */
static enum db_result write_logs(struct batch *b, char *errstr, size_t errstr_size)
{
        struct db *db = b->st->db;
        struct db_text *t = &b->sql;
        char id[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_I64}};
        size_t rows = 0;
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
        db_text_add(t, " RETURNING event_id, CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED)");
        b->returned = 0;
        r = db_text_query(db, t, cols, 2, on_log_row, b, errstr, errstr_size);
        if (r == DB_OK && (b->returned != rows || b->is_mismatch)) {
                /* Not the gate's duplicate: the rows are written; one verdict at a time. */
                snprintf(errstr, errstr_size, "live_audit_logs took %zu of %zu verdicts",
                         b->returned, rows);
                return DB_RETRY;
        }
        return r;
}

/*
 * The anchors rows as the last of their verdicts leaves them: the missing ones (every anchor of
 * the batch gets its row, as audit_apply() creates it) with a plain INSERT, which fails if
 * another instance created one meanwhile; the existing ones the batch changed with an upsert.
 */
/* An anchors row the write returned: its version (updated_at). */
static void on_anchor_row(const struct db_col *cols, void *arg)
{
        struct batch *b = arg;
        struct batch_anchor *ba = audit_batch_find_anchor(b, cols[0].s);

        b->returned++;
        if (!ba || cols[1].is_null) {
                b->is_mismatch = true;
                return;
        }
        ba->version_ms = cols[1].i;
}

static enum db_result write_anchors(struct batch *b, bool missing, char *errstr, size_t errstr_size)
{
        struct db_text *t = &b->sql;
        char id[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_I64}};
        size_t rows = 0;
        enum db_result r;

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
        db_text_add(t, " RETURNING anchor_id, CAST(UNIX_TIMESTAMP(updated_at) * 1000 AS SIGNED)");
        b->returned = 0;
        r = db_text_query(b->st->db, t, cols, 2, on_anchor_row, b, errstr, errstr_size);
        if (r == DB_OK && (b->returned != rows || b->is_mismatch)) {
                snprintf(errstr, errstr_size, "anchors returned %zu of %zu rows", b->returned,
                         rows);
                return DB_RETRY;
        }
        return r;
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

/*
 * What publish_many() would read back after the commit, from what the batch wrote and the
 * writes returned: left only when every verdict of the batch is new (a verdict logged before
 * projects its older log row, read from MySQL).
 */
static void hand_off(struct batch *b)
{
        struct audit_state *st = b->st;
        struct audit_handoff_row *rows = calloc(b->ids.n ? b->ids.n : 1, sizeof(*rows));
        size_t cnt = 0;

        audit_handoff_clear(st);
        for (size_t i = 0; rows && i < b->ids.n; i++) {
                const struct batch_verdict *bv = &b->bv[b->ids.items[i].index];
                const struct decision *d = &bv->d;
                const char *reason = bv->v.label ? bv->v.label : bv->v.reason;
                struct projection *pj = &rows[cnt].pj;

                if (!keyset_is_first(&b->ids, i))
                        continue;
                if (!bv->is_new || (reason && strlen(reason) >= sizeof(pj->reason)) ||
                    !(rows[cnt].event_id = strdup(bv->slot->rec->ev.event_id)))
                        goto drop;
                cnt++;
                snprintf(pj->anchor, sizeof(pj->anchor), "%s", bv->anchor);
                snprintf(pj->close_stream, sizeof(pj->close_stream), "%s", d->close_stream);
                snprintf(pj->close_vendor, sizeof(pj->close_vendor), "%s", d->close_vendor);
                snprintf(pj->reason, sizeof(pj->reason), "%s", reason ? reason : "");
                snprintf(pj->punishment, sizeof(pj->punishment), "%s",
                         audit_grade_name(d->punishment));
                pj->close_method = d->close_stream[0] ? d->close_method : 0;
                pj->decided_ms = bv->decided_ms;
                if (bv->anchor_ix != AUDIT_NO_ANCHOR) {
                        const struct batch_anchor *ba = &b->anchors[bv->anchor_ix];

                        snprintf(pj->status, sizeof(pj->status), "%s", ba->row.status);
                        pj->until_ms = ba->row.until_ms < 0 ? 0 : ba->row.until_ms;
                        pj->version_ms = ba->version_ms;
                        pj->has_anchor_row = true;
                }
        }
        if (!rows)
                return;
        st->handoff = rows;
        st->handoff_n = cnt;
        return;
drop:
        for (size_t i = 0; i < cnt; i++)
                free(rows[i].event_id);
        free(rows);
}

enum db_result audit_batch_write(struct batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        /* The log rows first: unread, a verdict logged before fails that plain INSERT whole. */
        if ((r = write_logs(b, errstr, errstr_size)) != DB_OK)
                return r;
        audit_steps_mark(&b->steps, "write_logs");
        /* From here a duplicate key (an anchors row created meanwhile) is a retry, not the gate's
         * conflict: the log rows are written. */
        if ((r = write_anchors(b, true, errstr, errstr_size)) != DB_OK ||
            (r = write_anchors(b, false, errstr, errstr_size)) != DB_OK)
                return r == DB_DUPLICATE ? DB_RETRY : r;
        audit_steps_mark(&b->steps, "write_anchors");
        if ((r = write_notifications(b, errstr, errstr_size)) != DB_OK)
                return r == DB_DUPLICATE ? DB_RETRY : r;
        audit_steps_mark(&b->steps, "write_notify");
        log_batch(b);
        hand_off(b);
        audit_steps_mark(&b->steps, "log");
        return DB_OK;
}
