/*
 * batch_statements.c: test_batch_oracle's record and audit roles, how many statements a batch
 * costs. A set-based batch reads and writes with a fixed number of statements whatever its
 * size. Audit: the anchors of verdicts that name none, then which verdicts are logged and
 * which anchors rows exist in one statement, the existing rows locked and the warnings their
 * windows hold in another, then the live streams the bans close; the log rows, the anchors
 * rows and the notifications one insert each. Record: which events the ledger holds, then the new
 * files' streams and the files already stored in one statement; the ledger rows, the files and the
 * notifications one insert each.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "record.h"
#include "consumer.h"
#include "db.h"
#include "support.h"

#include "fixture.h"

#define VERDICTS 300

struct counts {
        long long select, insert;
};

static void on_status(const struct db_col *cols, void *arg)
{
        struct counts *c = arg;

        if (strcmp(cols[0].s, "Com_select") == 0)
                c->select = cols[1].i;
        else if (strcmp(cols[0].s, "Com_insert") == 0)
                c->insert = cols[1].i;
}

/* The statements the role's own connection has run so far. */
static struct counts statements(struct side *s)
{
        char name[64], err[512];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = name, .s_size = sizeof(name)},
                                {.type = DB_PARAM_I64}};
        struct db_text t = {0};
        struct counts c = {0};

        db_text_add(&t, "SHOW SESSION STATUS WHERE Variable_name IN ('Com_select', "
                        "'Com_insert')");
        cr_assert(db_text_query(s->db, &t, cols, 2, on_status, &c, err, sizeof(err)) == DB_OK, "%s",
                  err);
        db_text_free(&t);
        return c;
}

/*
 * VERDICTS verdicts of every kind the batch reads for: warnings of anchors with warnings
 * logged before (a window to read), bans of anchors live now (a stream to close), and
 * verdicts that name no anchor (found from their stream). The batch takes its set-based path
 * and runs four reads and three inserts, as many as for one verdict.
 */
Test(batch_oracle, audit_batch_costs_the_same_statements_whatever_its_size)
{
        struct apply_slot *slots = calloc(VERDICTS, sizeof(*slots));
        char(*errors)[512] = calloc(VERDICTS, sizeof(*errors));
        struct consumer_record *recs = calloc(VERDICTS, sizeof(*recs));
        char(*keys)[3][32] = calloc(VERDICTS, sizeof(*keys));
        long long base = ((long long)time(NULL) - 3600) * 1000;
        const char *seed[4];
        char seed_sql[3][768], err[512] = "";
        struct counts before, after;
        struct side s;

        cr_assert(slots && errors && recs && keys);
        /* 100 anchors ka-<i> with a warning each an hour before; 100 live on kl-<i>; 100
         * streams ks-<i> of anchors kn-<i> */
        snprintf(seed_sql[0], sizeof(seed_sql[0]),
                 "INSERT INTO live_audit_logs (event_id, event_type, event_time, anchor_id, "
                 "source, suggestion, score, punishment, severity, outcome) SELECT CONCAT('seed-', "
                 "seq), 'audit.image', FROM_UNIXTIME(%lld / 1000) - INTERVAL 1 HOUR, "
                 "CONCAT('ka-', seq), 'tencent.image', 'Review', 70, 'warn', 'warn', 'applied' "
                 "FROM seq_0_to_99",
                 base);
        snprintf(seed_sql[1], sizeof(seed_sql[1]),
                 "INSERT INTO live_streams (stream_id, anchor_id, vendor, status, started_at, "
                 "last_event_at) SELECT CONCAT('kl-', seq), CONCAT('kb-', seq), 'tencent', "
                 "'live', NOW() - INTERVAL 2 HOUR, NOW() FROM seq_100_to_199");
        snprintf(seed_sql[2], sizeof(seed_sql[2]),
                 "INSERT INTO live_streams (stream_id, anchor_id, vendor, status, started_at, "
                 "ended_at, last_event_at) SELECT CONCAT('ks-', seq), CONCAT('kn-', seq), "
                 "'tencent', 'ended', NOW() - INTERVAL 3 HOUR, NOW() - INTERVAL 2 HOUR, NOW() "
                 "FROM seq_200_to_299");
        for (int i = 0; i < 3; i++)
                seed[i] = seed_sql[i];
        seed[3] = NULL;
        open_side(&s, &audit_role, seed, 0);
        for (int i = 0; i < VERDICTS; i++) {
                bool is_warning = i < 100, names_anchor = i < 200;
                struct input in = {.event_key = keys[i][0],
                                   .event_type = "audit.image",
                                   .payload_name = "AuditVerdict",
                                   .stream_id = keys[i][1],
                                   .event_time_ms = base + i,
                                   .anchor_id = names_anchor ? keys[i][2] : NULL};

                snprintf(keys[i][0], sizeof(keys[i][0]), "count-%d", i);
                snprintf(keys[i][1], sizeof(keys[i][1]), "k%s-%d", i < 200 ? "v" : "s", i);
                snprintf(keys[i][2], sizeof(keys[i][2]), "k%s-%d", is_warning ? "a" : "b", i);
                in.payload =
                        is_warning
                                ? json_pack("{s:s,s:s,s:s,s:i}", "source", "tencent.image",
                                            "suggestion", "Review", "label", "Porn", "score", 70)
                                : json_pack("{s:s,s:s,s:s,s:i}", "source", "tencent.image",
                                            "suggestion", "Block", "label", "Polity", "score", 99);
                decode_into(&recs[i], &in, 100 + i);
                json_decref(in.payload);
                slots[i] = (struct apply_slot){&recs[i], APPLY_DONE, errors[i], sizeof(errors[i])};
        }
        before = statements(&s);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(audit_role.apply_many(s.state, slots, VERDICTS, err, sizeof(err)), APPLY_DONE,
                     "the batch went one verdict at a time: %s", err);
        after = statements(&s);
        cr_assert(db_commit(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        /* what the batch decided: every verdict logged, the live anchors' streams closed */
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_audit_logs WHERE "
                                                "event_id NOT LIKE 'seed-%%'"),
                     VERDICTS);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_audit_logs WHERE "
                                                "close_stream_id = CONCAT('kl-', "
                                                "SUBSTRING(anchor_id, 4))"),
                     100, "each ban of a live anchor closes its stream");
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_audit_logs WHERE "
                                                "anchor_id LIKE 'kn-%%' AND punishment = 'ban'"),
                     100, "a verdict naming no anchor bans its stream's");
        cr_expect_eq(support_query_int(s.mysql, "SELECT SUM(warning_count) FROM anchors WHERE "
                                                "anchor_id LIKE 'ka-%%'"),
                     100, "each warning counted on its anchor");
        cr_expect_leq(after.select - before.select, 4,
                      "the batch read with %lld statements for %d verdicts",
                      after.select - before.select, VERDICTS);
        cr_expect_leq(after.insert - before.insert, 3,
                      "the batch wrote with %lld inserts for %d verdicts",
                      after.insert - before.insert, VERDICTS);
        for (int i = 0; i < VERDICTS; i++)
                event_fini(&recs[i].ev);
        close_side(&s, &audit_role);
        free(recs);
        free(keys);
        free(slots);
        free(errors);
}

/*
 * VERDICTS records of every kind the record batch reads for: files of live sessions (linked),
 * files live_records holds already (duplicates), recording states. Two reads and three
 * inserts, as for one record.
 */
Test(batch_oracle, record_batch_costs_the_same_statements_whatever_its_size)
{
        struct apply_slot *slots = calloc(VERDICTS, sizeof(*slots));
        char(*errors)[512] = calloc(VERDICTS, sizeof(*errors));
        struct consumer_record *recs = calloc(VERDICTS, sizeof(*recs));
        char(*keys)[3][32] = calloc(VERDICTS, sizeof(*keys));
        static const char *const seed[] = {
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, "
                "status, started_at, last_event_at) SELECT CONCAT('ps-', seq), CONCAT('pa-', "
                "seq), CONCAT('pr-', seq), 200000 + seq, 'tencent', 'live', "
                "FROM_UNIXTIME(1700000000), NOW() FROM seq_0_to_99",
                "INSERT INTO live_records (file_id, stream_id, vendor, video_url, trace_id) "
                "SELECT CONCAT('pf-', seq), CONCAT('ps-', seq), 'tencent', "
                "'https://vod.example/old.m3u8', 'seed' FROM seq_100_to_199",
                NULL};
        char err[512] = "";
        struct counts before, after;
        struct side s;

        cr_assert(slots && errors && recs && keys);
        open_side(&s, &record_role, seed, 0);
        for (int i = 0; i < VERDICTS; i++) {
                bool is_file = i < 200;
                struct input in = {.event_key = keys[i][0],
                                   .event_type = is_file ? "record.file" : "record.status",
                                   .payload_name = is_file ? "RecordFile" : "RecordStatus",
                                   .stream_id = keys[i][1],
                                   .event_time_ms = T0_MS + 120000};

                snprintf(keys[i][0], sizeof(keys[i][0]), "count-%d", i);
                snprintf(keys[i][1], sizeof(keys[i][1]), "ps-%d", i);
                snprintf(keys[i][2], sizeof(keys[i][2]), "pf-%d", i);
                in.payload = is_file ? json_pack("{s:s,s:s,s:I}", "file_id", keys[i][2],
                                                 "video_url", "https://vod.example/x.m3u8",
                                                 "start_time_ms", (json_int_t)(T0_MS + 60000))
                                     : json_pack("{s:s,s:s,s:s}", "record_event", "record_start",
                                                 "session_key", "k", "seq", keys[i][0]);
                decode_into(&recs[i], &in, 100 + i);
                json_decref(in.payload);
                slots[i] = (struct apply_slot){&recs[i], APPLY_DONE, errors[i], sizeof(errors[i])};
        }
        before = statements(&s);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(record_role.apply_many(s.state, slots, VERDICTS, err, sizeof(err)), APPLY_DONE,
                     "the batch went one record at a time: %s", err);
        after = statements(&s);
        cr_assert(db_commit(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_records WHERE "
                                                "session_id = 200000 + SUBSTRING(file_id, 4)"),
                     100, "a file of a live session is linked to it");
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_events WHERE "
                                                "outcome = 'duplicate_file'"),
                     100, "a file stored before is a duplicate");
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_events WHERE "
                                                "outcome = 'applied'"),
                     200);
        cr_expect_leq(after.select - before.select, 2,
                      "the batch read with %lld statements for %d records",
                      after.select - before.select, VERDICTS);
        cr_expect_leq(after.insert - before.insert, 3,
                      "the batch wrote with %lld inserts for %d records",
                      after.insert - before.insert, VERDICTS);
        for (int i = 0; i < VERDICTS; i++)
                event_fini(&recs[i].ev);
        close_side(&s, &record_role);
        free(recs);
        free(keys);
        free(slots);
        free(errors);
}
