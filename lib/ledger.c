/* ledger.c: the live_events ledger of the consumer roles (see ledger.h). */
#include "ledger.h"

#include <stdio.h>
#include <stdlib.h>

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
