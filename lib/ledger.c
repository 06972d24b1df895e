/* ledger.c: the live_events ledger of the consumer roles (see ledger.h). */
#include "ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ledger {
        struct db *db;
        char consumer[33];
        struct db_stmt *insert, *set_outcome;
};

struct ledger *ledger_new(struct db *db, const char *consumer)
{
        struct ledger *l = calloc(1, sizeof(*l));

        if (!l)
                return NULL;
        l->db = db;
        snprintf(l->consumer, sizeof(l->consumer), "%s", consumer);
        l->insert = db_stmt(
                db,
                "INSERT IGNORE INTO live_events (consumer, event_id, vendor, event_type, stream_id, "
                "trace_id, event_time, received_at, kafka_topic, kafka_partition, kafka_offset) "
                "VALUES (?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000), ?, ?, ?)");
        l->set_outcome = db_stmt(
                db, "UPDATE live_events SET outcome = ? WHERE consumer = ? AND event_id = ?");
        if (!l->insert || !l->set_outcome) {
                free(l);
                return NULL;
        }
        return l;
}

void ledger_destroy(struct ledger *l)
{
        free(l);
}

enum db_result ledger_record(struct ledger *l, const struct consumer_record *rec, bool *first,
                             char *errstr, size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        struct db_param p[] = {
                DB_STR(l->consumer),       DB_STR(ev->event_id),        DB_STR(ev->vendor),
                DB_STR(ev->event_type),    DB_STR(ev->stream_id),       DB_STR(ev->trace_id),
                DB_I64(ev->event_time_ms), DB_I64(ev->receive_time_ms), DB_STR(rec->topic),
                DB_I64(rec->partition),    DB_I64(rec->offset)};
        unsigned long long affected = 0;
        enum db_result r = db_exec(l->db, l->insert, p, 11, &affected, NULL, errstr, errstr_size);

        *first = r == DB_OK && affected == 1;
        return r;
}

enum db_result ledger_set_outcome(struct ledger *l, const char *event_id, const char *outcome,
                                  char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(outcome), DB_STR(l->consumer), DB_STR(event_id)};

        return db_exec(l->db, l->set_outcome, p, 3, NULL, NULL, errstr, errstr_size);
}

enum db_result ledger_find_known(struct ledger *l, struct keyset *ks, struct db_text *t,
                                 char *errstr, size_t errstr_size)
{
        char name[2 * sizeof(l->consumer) + 1], select[200];

        db_escape(l->db, name, l->consumer, strlen(l->consumer));
        snprintf(select, sizeof(select),
                 "SELECT event_id FROM live_events WHERE consumer = '%s' AND event_id IN ", name);
        return keyset_find_known(ks, l->db, t, select, errstr, errstr_size);
}

#define LEDGER_TEXT_COLS                                                                           \
        "live_events (consumer, event_id, vendor, event_type, stream_id, trace_id, event_time, "   \
        "received_at, kafka_topic, kafka_partition, kafka_offset, outcome) VALUES "

void ledger_text_begin(struct db_text *t)
{
        db_text_reset(t);
        db_text_add(t, "INSERT IGNORE INTO " LEDGER_TEXT_COLS);
}

void ledger_text_begin_unread(struct db_text *t)
{
        db_text_reset(t);
        db_text_add(t, "INSERT INTO " LEDGER_TEXT_COLS);
}

void ledger_text_row(struct ledger *l, struct db_text *t, const struct consumer_record *rec,
                     const char *outcome, bool is_first_row)
{
        const struct event *ev = &rec->ev;

        db_text_add(t, is_first_row ? "(" : ", (");
        db_text_str(l->db, t, l->consumer);
        db_text_add(t, ", ");
        db_text_str(l->db, t, ev->event_id);
        db_text_add(t, ", ");
        db_text_str(l->db, t, ev->vendor);
        db_text_add(t, ", ");
        db_text_str(l->db, t, ev->event_type);
        db_text_add(t, ", ");
        db_text_str(l->db, t, ev->stream_id);
        db_text_add(t, ", ");
        db_text_str(l->db, t, ev->trace_id);
        db_text_add(t, ", ");
        db_text_from_ms(t, (long long)ev->event_time_ms);
        db_text_add(t, ", ");
        db_text_from_ms(t, (long long)ev->receive_time_ms);
        db_text_add(t, ", ");
        db_text_str(l->db, t, rec->topic);
        db_text_add(t, ", ");
        db_text_i64(t, rec->partition);
        db_text_add(t, ", ");
        db_text_i64(t, rec->offset);
        db_text_add(t, ", ");
        db_text_str(l->db, t, outcome);
        db_text_add(t, ")");
}

enum db_result ledger_text_exec(struct ledger *l, const struct db_text *t, size_t rows,
                                char *errstr, size_t errstr_size)
{
        unsigned long long affected = 0;
        enum db_result r;

        if (!rows)
                return DB_OK;
        if ((r = db_text_exec(l->db, t, &affected, errstr, errstr_size)) != DB_OK)
                return r;
        if (affected != rows) {
                snprintf(errstr, errstr_size, "%llu of %zu events recorded meanwhile",
                         (unsigned long long)rows - affected, rows);
                return DB_DUPLICATE;
        }
        return DB_OK;
}
