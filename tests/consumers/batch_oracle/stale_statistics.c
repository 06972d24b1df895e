/*
 * stale_statistics.c: test_batch_oracle's record and audit roles, which rows a batch reads when
 * MariaDB's statistics lag behind the table. Past eq_range_index_dive_limit (200) ids MariaDB
 * estimates an IN list on an index from the index's distinct-value counts; taken when the table
 * held a few streams (a fresh install, or before an evening's burst of new streams) and not yet
 * retaken, they make one look-up per id look dearer than reading the whole table. A batch must
 * read the rows of its own ids and no others, whatever the statistics say.
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
#include "consumer.h"
#include "db.h"
#include "record.h"
#include "support.h"

#include "fixture.h"

#define OTHER_STREAMS 3000 /* live streams no record of the batch names */
#define BATCH         500  /* records per batch: the runtime's largest */

/* Runs sql on the side's own connection; a result set, if any, is read and dropped. */
static void run_sql(struct side *s, const char *sql)
{
        MYSQL_RES *res;

        cr_assert(mysql_query(s->mysql, sql) == 0, "%s: %s", sql, mysql_error(s->mysql));
        if ((res = mysql_store_result(s->mysql)))
                mysql_free_result(res);
}

/* OTHER_STREAMS live streams of other anchors, as a busy evening leaves live_streams. */
static void seed_other_streams(struct side *s)
{
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_streams (stream_id, anchor_id, room_id, vendor, status, "
                 "started_at, last_event_at) SELECT CONCAT('other-', seq), CONCAT('a-other-', "
                 "seq), CONCAT('r-other-', seq), 'tencent', 'live', NOW() - INTERVAL 2 HOUR, "
                 "NOW() FROM seq_1_to_%d",
                 OTHER_STREAMS);
        run_sql(s, sql);
}

/*
 * The statistics of live_streams as taken when it held ten streams: each secondary index's
 * distinct-value counts cut to 10 while the row count is today's, and not retaken.
 */
static void stale_statistics(struct side *s)
{
        run_sql(s, "ALTER TABLE live_streams STATS_AUTO_RECALC = 0");
        run_sql(s, "ANALYZE TABLE live_streams");
        run_sql(s, "UPDATE mysql.innodb_index_stats SET stat_value = LEAST(stat_value, 10) "
                   "WHERE database_name = DATABASE() AND table_name = 'live_streams' AND "
                   "stat_name LIKE 'n\\_diff\\_pfx%' AND index_name <> 'PRIMARY'");
        run_sql(s, "FLUSH TABLES live_streams");
        run_sql(s, "SET GLOBAL userstat = 1"); /* information_schema.TABLE_STATISTICS */
}

/* The plan of the query, "type key" of its first table (what the test relies on). */
static void plan_of(struct side *s, const char *query, char *out, size_t out_size)
{
        size_t size = strlen(query) + 16;
        char *sql = malloc(size);
        MYSQL_RES *res;
        MYSQL_ROW row = NULL;

        cr_assert(sql != NULL);
        snprintf(sql, size, "EXPLAIN %s", query);
        cr_assert(mysql_query(s->mysql, sql) == 0, "%s", mysql_error(s->mysql));
        res = mysql_store_result(s->mysql);
        cr_assert(res && (row = mysql_fetch_row(res)), "no plan");
        snprintf(out, out_size, "%s %s", row[3] ? row[3] : "", row[5] ? row[5] : "NULL");
        mysql_free_result(res);
        free(sql);
}

/*
 * The precondition: MariaDB reads the whole table for stream_id IN (prefix0 .. prefix<n-1>)
 * when no index is named, else the test shows nothing.
 */
static void expect_scan_without_index(struct side *s, const char *prefix, int n)
{
        size_t size = (size_t)n * 48 + 128, len;
        char *sql = malloc(size), plan[128];

        cr_assert(sql != NULL);
        len = (size_t)snprintf(sql, size, "SELECT * FROM live_streams WHERE stream_id IN (");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(sql + len, size - len, "%s'%s%d'", i ? ", " : "", prefix,
                                        i);
        snprintf(sql + len, size - len, ")");
        plan_of(s, sql, plan, sizeof(plan));
        cr_assert(strncmp(plan, "ALL ", 4) == 0,
                  "with these statistics MariaDB no longer scans (plan: %s): the test shows "
                  "nothing",
                  plan);
        free(sql);
}

/* Rows MariaDB has read from the side's live_streams so far. */
static long long rows_read(struct side *s)
{
        return support_query_int(s->mysql,
                                 "SELECT COALESCE(SUM(ROWS_READ), 0) FROM "
                                 "information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = "
                                 "DATABASE() AND TABLE_NAME = 'live_streams'");
}

/* A batch of BATCH records from in[], decoded; the caller frees it with free_records(). */
static struct consumer_record *decode_batch(const struct input *in, struct apply_slot *slots,
                                            char (*errors)[512])
{
        struct consumer_record *recs = calloc(BATCH, sizeof(*recs));

        cr_assert(recs != NULL);
        for (int i = 0; i < BATCH; i++) {
                decode_into(&recs[i], &in[i], 100 + i);
                slots[i] = (struct apply_slot){&recs[i], APPLY_DONE, errors[i], sizeof(errors[i])};
        }
        return recs;
}

static void free_records(struct consumer_record *recs)
{
        for (int i = 0; i < BATCH; i++)
                event_fini(&recs[i].ev);
        free(recs);
}

/* apply_many() of the batch in one transaction, committed; what it read from live_streams. */
static long long apply_committed(struct side *s, const struct consumer_role *role,
                                 struct apply_slot *slots)
{
        char err[512] = "";
        long long before = rows_read(s);

        cr_assert(db_begin(s->db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(role->apply_many(s->state, slots, BATCH, err, sizeof(err)), APPLY_DONE,
                     "the batch went one record at a time: %s", err);
        cr_assert(db_commit(s->db, err, sizeof(err)) == DB_OK, "%s", err);
        for (int i = 0; i < BATCH; i++)
                cr_assert_eq(slots[i].result, APPLY_DONE, "record %d: %s", i, slots[i].error);
        return rows_read(s) - before;
}

/* ------------------------------------------------------------------ record */

/*
 * BATCH files, each of its own stream rs-<i> live since T0 (session 100000 + i), among
 * OTHER_STREAMS other live streams: each file is linked to its session, and the batch reads
 * the rows of its BATCH streams, not the table.
 */
Test(batch_oracle, record_batch_reads_only_its_streams_whatever_the_statistics)
{
        struct apply_slot *slots = calloc(BATCH, sizeof(*slots));
        char(*errors)[512] = calloc(BATCH, sizeof(*errors));
        struct input *in = calloc(BATCH, sizeof(*in));
        char(*keys)[3][32] = calloc(BATCH, sizeof(*keys));
        struct consumer_record *recs;
        struct side s;
        char sql[512];
        long long read;

        cr_assert(slots && errors && in && keys);
        open_side(&s, &record_role, NULL, 0);
        seed_other_streams(&s);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, "
                 "status, started_at, last_event_at) SELECT CONCAT('rs-', seq), CONCAT('ra-', "
                 "seq), CONCAT('rr-', seq), 100000 + seq, 'tencent', 'live', "
                 "FROM_UNIXTIME(%lld / 1000), NOW() FROM seq_0_to_%d",
                 T0_MS, BATCH - 1);
        run_sql(&s, sql);
        stale_statistics(&s);
        expect_scan_without_index(&s, "rs-", BATCH);
        for (int i = 0; i < BATCH; i++) {
                snprintf(keys[i][0], sizeof(keys[i][0]), "rf-event-%d", i);
                snprintf(keys[i][1], sizeof(keys[i][1]), "rs-%d", i);
                snprintf(keys[i][2], sizeof(keys[i][2]), "rf-%d", i);
                in[i] = (struct input){.event_key = keys[i][0],
                                       .event_type = "record.file",
                                       .payload_name = "RecordFile",
                                       .stream_id = keys[i][1],
                                       .event_time_ms = T0_MS + 120000};
                in[i].payload = json_pack("{s:s,s:s,s:I}", "file_id", keys[i][2], "video_url",
                                          "https://vod.example/x.m3u8", "start_time_ms",
                                          (json_int_t)(T0_MS + 60000));
        }
        recs = decode_batch(in, slots, errors);
        read = apply_committed(&s, &record_role, slots);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_records WHERE "
                                                "session_id = 100000 + SUBSTRING(file_id, 4)"),
                     BATCH, "every file is linked to its stream's session");
        cr_expect(read < OTHER_STREAMS,
                  "the batch read %lld rows of live_streams for its %d streams: a scan", read,
                  BATCH);
        free_records(recs);
        free_inputs(in, BATCH);
        free(in);
        close_side(&s, &record_role);
        free(keys);
        free(slots);
        free(errors);
}

/* ------------------------------------------------------------------ audit */

/*
 * BATCH bans among OTHER_STREAMS other live streams: va-<i> named in the verdict for i below
 * half, else found from the verdict's stream vs-<i> (an ended stream of va-<i>); every 50th
 * anchor is live on vl-<i>, which its ban closes. The batch reads the rows of its anchors and
 * streams, not the table.
 */
Test(batch_oracle, audit_batch_reads_only_its_live_streams_whatever_the_statistics)
{
        struct apply_slot *slots = calloc(BATCH, sizeof(*slots));
        char(*errors)[512] = calloc(BATCH, sizeof(*errors));
        struct input *in = calloc(BATCH, sizeof(*in));
        char(*keys)[3][32] = calloc(BATCH, sizeof(*keys));
        long long base = ((long long)time(NULL) - 3600) * 1000, read;
        struct consumer_record *recs;
        struct side s;
        char sql[512];

        cr_assert(slots && errors && in && keys);
        open_side(&s, &audit_role, NULL, 0);
        seed_other_streams(&s);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_streams (stream_id, anchor_id, vendor, status, started_at, "
                 "ended_at, last_event_at) SELECT CONCAT('vs-', seq), CONCAT('va-', seq), "
                 "'tencent', 'ended', NOW() - INTERVAL 3 HOUR, NOW() - INTERVAL 2 HOUR, NOW() "
                 "FROM seq_%d_to_%d",
                 BATCH / 2, BATCH - 1);
        run_sql(&s, sql);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO live_streams (stream_id, anchor_id, vendor, status, started_at, "
                 "last_event_at) SELECT CONCAT('vl-', seq), CONCAT('va-', seq), 'tencent', "
                 "'live', NOW() - INTERVAL 1 HOUR, NOW() FROM seq_0_to_%d_step_50",
                 BATCH - 1);
        run_sql(&s, sql);
        stale_statistics(&s);
        expect_scan_without_index(&s, "vs-", BATCH);
        for (int i = 0; i < BATCH; i++) {
                snprintf(keys[i][0], sizeof(keys[i][0]), "ban-%d", i);
                snprintf(keys[i][1], sizeof(keys[i][1]), "vs-%d", i);
                snprintf(keys[i][2], sizeof(keys[i][2]), "va-%d", i);
                in[i] = (struct input){.event_key = keys[i][0],
                                       .event_type = "audit.image",
                                       .payload_name = "AuditVerdict",
                                       .stream_id = keys[i][1],
                                       .event_time_ms = base + i,
                                       .anchor_id = i < BATCH / 2 ? keys[i][2] : NULL};
                in[i].payload = json_pack("{s:s,s:s,s:s,s:i}", "source", "tencent.image",
                                          "suggestion", "Block", "label", "Polity", "score", 99);
        }
        recs = decode_batch(in, slots, errors);
        read = apply_committed(&s, &audit_role, slots);
        cr_expect_eq(support_query_int(s.mysql,
                                       "SELECT COUNT(*) FROM live_audit_logs WHERE "
                                       "anchor_id = CONCAT('va-', SUBSTRING(stream_id, 4))"),
                     BATCH, "every verdict has its anchor");
        cr_expect_eq(support_query_int(s.mysql,
                                       "SELECT COUNT(*) FROM live_audit_logs WHERE "
                                       "close_stream_id = CONCAT('vl-', SUBSTRING(anchor_id, 4)) "
                                       "AND close_method = 3"),
                     BATCH / 50, "each ban of a live anchor closes its stream");
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_audit_logs WHERE "
                                                "close_stream_id IS NULL"),
                     BATCH - BATCH / 50, "a ban of an anchor not live closes nothing");
        cr_expect(read < OTHER_STREAMS,
                  "the batch read %lld rows of live_streams for its %d verdicts: a scan", read,
                  BATCH);
        free_records(recs);
        free_inputs(in, BATCH);
        free(in);
        close_side(&s, &audit_role);
        free(keys);
        free(slots);
        free(errors);
}

/* ------------------------------------------------------------------ audit: its locks */

/* Whether another session may lock the anchor's row now (NOWAIT: no waiting for it). */
static bool may_lock_anchor(MYSQL *other, const char *anchor_id)
{
        char sql[256];
        MYSQL_RES *res;

        snprintf(sql, sizeof(sql),
                 "SELECT anchor_id FROM anchors WHERE anchor_id = '%s' FOR UPDATE NOWAIT",
                 anchor_id);
        if (mysql_query(other, sql) != 0) {
                cr_assert_eq(mysql_errno(other), 1205, "%s", mysql_error(other));
                return false;
        }
        if ((res = mysql_store_result(other)))
                mysql_free_result(res);
        return true;
}

/*
 * BATCH verdicts of new anchors la-<i> on an anchors table of 1 500 others (small enough that
 * MariaDB may think a scan cheaper than BATCH look-ups): while the batch's transaction is
 * open, its own anchors are locked and another session may lock any other anchor. A scan
 * under FOR UPDATE would lock every row it passes, and another copy of the role, or an
 * operator's ban, would wait on anchors the batch never named.
 */
Test(batch_oracle, audit_batch_locks_only_its_anchors)
{
        struct apply_slot *slots = calloc(BATCH, sizeof(*slots));
        char(*errors)[512] = calloc(BATCH, sizeof(*errors));
        struct input *in = calloc(BATCH, sizeof(*in));
        char(*keys)[3][32] = calloc(BATCH, sizeof(*keys));
        long long base = ((long long)time(NULL) - 3600) * 1000;
        struct consumer_record *recs;
        char err[512] = "";
        MYSQL *other;
        struct side s;

        cr_assert(slots && errors && in && keys);
        open_side(&s, &audit_role, NULL, 0);
        run_sql(&s, "INSERT INTO anchors (anchor_id) SELECT CONCAT('other-', seq) FROM "
                    "seq_1_to_1500");
        for (int i = 0; i < BATCH; i++) {
                snprintf(keys[i][0], sizeof(keys[i][0]), "lock-%d", i);
                snprintf(keys[i][1], sizeof(keys[i][1]), "ls-%d", i);
                snprintf(keys[i][2], sizeof(keys[i][2]), "la-%d", i);
                in[i] = (struct input){.event_key = keys[i][0],
                                       .event_type = "audit.image",
                                       .payload_name = "AuditVerdict",
                                       .stream_id = keys[i][1],
                                       .event_time_ms = base + i,
                                       .anchor_id = keys[i][2]};
                in[i].payload = json_pack("{s:s,s:s,s:s,s:i}", "source", "tencent.image",
                                          "suggestion", i % 2 ? "Review" : "Block", "label", "Porn",
                                          "score", i % 2 ? 70 : 99);
        }
        recs = decode_batch(in, slots, errors);
        other = support_mysql_connect(s.url);
        run_sql(&s, "SET SESSION innodb_lock_wait_timeout = 1");
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(audit_role.apply_many(s.state, slots, BATCH, err, sizeof(err)), APPLY_DONE,
                     "the batch went one verdict at a time: %s", err);
        /* the batch's transaction is open: its anchors are locked, and only they */
        cr_assert(mysql_query(other, "SET SESSION innodb_lock_wait_timeout = 1") == 0);
        cr_expect(!may_lock_anchor(other, "la-7"), "an anchor of the batch is not locked");
        cr_expect(may_lock_anchor(other, "other-7"), "the batch locked an anchor it does not name");
        cr_expect(may_lock_anchor(other, "other-1500"),
                  "the batch locked an anchor it does not name");
        db_rollback(s.db);
        mysql_close(other);
        free_records(recs);
        free_inputs(in, BATCH);
        free(in);
        close_side(&s, &audit_role);
        free(keys);
        free(slots);
        free(errors);
}

/* A second copy of the role on the side's database: a connection of its own, the rest lent. */
static void *open_copy(struct side *s, const struct consumer_role *role, struct db **db)
{
        struct role_env env = {0};
        char err[512];
        void *state = NULL;

        cr_assert((*db = db_new(s->url, 5, err, sizeof(err))) != NULL, "%s", err);
        env.settings = &settings;
        env.db = *db;
        env.redis = s->redis;
        env.metrics = s->metrics;
        env.producer = s->producer;
        env.ack = &s->ack;
        env.role = role->name;
        env.lane = 2;
        cr_assert(role->open(&env, &state, err, sizeof(err)) == 0, "%s", err);
        return state;
}

/* BATCH / 2 bans of new anchors na-<i>, i of one parity, decoded into slots. */
static struct consumer_record *ban_batch(int parity, struct input *in, char (*keys)[3][32],
                                         struct apply_slot *slots, char (*errors)[512])
{
        long long base = ((long long)time(NULL) - 3600) * 1000;
        struct consumer_record *recs = calloc(BATCH / 2, sizeof(*recs));

        cr_assert(recs != NULL);
        for (int j = 0; j < BATCH / 2; j++) {
                int i = 2 * j + parity;

                snprintf(keys[j][0], sizeof(keys[j][0]), "gap-%d", i);
                snprintf(keys[j][1], sizeof(keys[j][1]), "ns-%03d", i);
                snprintf(keys[j][2], sizeof(keys[j][2]), "na-%03d", i);
                in[j] = (struct input){.event_key = keys[j][0],
                                       .event_type = "audit.image",
                                       .payload_name = "AuditVerdict",
                                       .stream_id = keys[j][1],
                                       .event_time_ms = base + i,
                                       .anchor_id = keys[j][2]};
                in[j].payload = json_pack("{s:s,s:s,s:s,s:i}", "source", "tencent.image",
                                          "suggestion", "Block", "label", "Polity", "score", 99);
                decode_into(&recs[j], &in[j], 100 + i);
                slots[j] = (struct apply_slot){&recs[j], APPLY_DONE, errors[j], sizeof(errors[j])};
        }
        return recs;
}

/*
 * Two copies of the role (two lanes, two processes) each with a batch of bans of new anchors,
 * their ids interleaved in key order: while the first batch's transaction is open, the second
 * applies and commits without waiting for it. A locking read of the missing anchors would
 * lock the gaps where they go, and each batch's inserts would wait on the other's gaps.
 */
Test(batch_oracle, audit_batches_of_new_anchors_do_not_wait_on_each_other)
{
        struct apply_slot *slots[2];
        char(*errors[2])[512], (*keys[2])[3][32];
        struct input *in[2];
        struct consumer_record *recs[2];
        char err[512] = "";
        struct db *db2;
        struct side s;
        void *state2;

        open_side(&s, &audit_role, NULL, 0);
        state2 = open_copy(&s, &audit_role, &db2);
        for (int p = 0; p < 2; p++) {
                slots[p] = calloc(BATCH / 2, sizeof(*slots[p]));
                errors[p] = calloc(BATCH / 2, sizeof(*errors[p]));
                keys[p] = calloc(BATCH / 2, sizeof(*keys[p]));
                in[p] = calloc(BATCH / 2, sizeof(*in[p]));
                cr_assert(slots[p] && errors[p] && keys[p] && in[p]);
                recs[p] = ban_batch(p, in[p], keys[p], slots[p], errors[p]);
        }
        /* the second copy waits a second for a lock, not the server's default fifty */
        cr_assert(db_sql(db2, "SET SESSION innodb_lock_wait_timeout = 1", NULL, err, sizeof(err)) ==
                          DB_OK,
                  "%s", err);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(audit_role.apply_many(s.state, slots[0], BATCH / 2, err, sizeof(err)),
                     APPLY_DONE, "%s", err);
        cr_assert(db_begin(db2, err, sizeof(err)) == DB_OK, "%s", err);
        cr_expect_eq(audit_role.apply_many(state2, slots[1], BATCH / 2, err, sizeof(err)),
                     APPLY_DONE, "the second batch waited on the first's locks: %s", err);
        cr_assert(db_commit(db2, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert(db_commit(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM anchors WHERE anchor_id "
                                                "LIKE 'na-%%' AND status = 'banned'"),
                     BATCH);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_audit_logs WHERE "
                                                "punishment = 'ban'"),
                     BATCH);
        for (int p = 0; p < 2; p++) {
                for (int j = 0; j < BATCH / 2; j++)
                        event_fini(&recs[p][j].ev);
                free(recs[p]);
                free_inputs(in[p], BATCH / 2);
                free(in[p]);
                free(keys[p]);
                free(slots[p]);
                free(errors[p]);
        }
        audit_role.close(state2);
        db_destroy(db2);
        close_side(&s, &audit_role);
}
