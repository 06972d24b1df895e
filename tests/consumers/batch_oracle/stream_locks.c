/*
 * stream_locks.c: test_batch_oracle's stream role, which rows a batch locks. A batch of a few
 * hundred streams reads its rows under FOR UPDATE, in apply_many() and again in publish_many()
 * (the projection to Redis). It must lock those rows and no other: a read that MariaDB turns
 * into a scan of live_streams locks every row it passes, and another copy of the role, or an
 * operator's close, then waits on streams the batch never named. The statistics are those of a
 * table that was small when they were taken, as on a fresh install. And publishing begins does
 * not wait on session_handoff, which holds nothing of theirs.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "db.h"
#include "kafka.h"
#include "metrics.h"
#include "produce.h"
#include "redis_conn.h"
#include "stream_lifecycle.h"
#include "support.h"

#include "fixture.h"

#define LOCK_STREAMS 520 /* a batch above 500 streams: IN lists of 1 000 values and more */

/* The seed: LOCK_STREAMS live streams lk-<i> and one the batch does not touch, lk-other. */
static char *lock_seed_rows(void)
{
        size_t size = 160 * (LOCK_STREAMS + 2) + 512, len;
        char *sql = malloc(size);

        cr_assert(sql != NULL);
        len = (size_t)snprintf(sql, size,
                               "INSERT INTO live_streams (stream_id, anchor_id, room_id, "
                               "session_id, vendor, vendor_session, status, started_at, "
                               "last_event_at) VALUES ('lk-other', 'a-other', 'r-other', 9000, "
                               "'tencent', 'q-other', 'live', FROM_UNIXTIME(1700000000), NOW())");
        for (int i = 0; i < LOCK_STREAMS; i++)
                len += (size_t)snprintf(sql + len, size - len,
                                        ", ('lk-%d', 'a-%d', 'r-%d', %d, 'tencent', 'q-%d', "
                                        "'live', FROM_UNIXTIME(1700000000), NOW())",
                                        i, i, i, 10000 + i, i);
        cr_assert(len < size);
        return sql;
}

/* A side whose live_streams statistics were taken while it was empty. */
static void open_lock_side(struct side *s, int redis_db)
{
        char *rows = lock_seed_rows();
        const char *const seed[] = {"ALTER TABLE live_streams STATS_AUTO_RECALC = 0", rows, NULL};

        open_side(s, &stream_lifecycle_role, seed, redis_db);
        free(rows);
}

/* The batch: the end of every lk-<i>'s session; or (begins) the start of new streams nb-<i>. */
static struct consumer_record *lock_batch(struct apply_slot *slots, char (*errors)[512],
                                          bool begins)
{
        struct consumer_record *recs = calloc(LOCK_STREAMS, sizeof(*recs));

        cr_assert(recs != NULL);
        for (int i = 0; i < LOCK_STREAMS; i++) {
                char key[32], stream[32], seq[32];
                struct input in = {.event_key = key,
                                   .event_type = begins ? "stream.begin" : "stream.end",
                                   .payload_name = begins ? "StreamBegin" : "StreamEnd",
                                   .stream_id = stream,
                                   .event_time_ms = T0_MS + 60000 + i};

                snprintf(key, sizeof(key), "%s-%d", begins ? "nb-begin" : "lk-end", i);
                snprintf(stream, sizeof(stream), "%s-%d", begins ? "nb" : "lk", i);
                snprintf(seq, sizeof(seq), "q-%d", i);
                in.payload = begins ? json_pack("{s:s}", "sequence", seq)
                                    : json_pack("{s:s,s:i}", "sequence", seq, "close_method", 1);
                decode_into(&recs[i], &in, 100 + i);
                json_decref(in.payload);
                slots[i] = (struct apply_slot){&recs[i], APPLY_DONE, errors[i], sizeof(errors[i])};
        }
        return recs;
}

static void free_lock_batch(struct consumer_record *recs)
{
        for (int i = 0; i < LOCK_STREAMS; i++)
                event_fini(&recs[i].ev);
        free(recs);
}

static void on_counter(const struct db_col *cols, void *arg)
{
        *(long long *)arg = cols[1].is_null ? -1 : cols[1].i;
}

/* The first column of the first row of sql on the side's own connection, as text. */
static const char *query_one(struct side *s, const char *sql)
{
        static char out[64];
        MYSQL_RES *res;
        MYSQL_ROW row = NULL;

        cr_assert(mysql_query(s->mysql, sql) == 0, "%s", mysql_error(s->mysql));
        res = mysql_store_result(s->mysql);
        cr_assert(res && (row = mysql_fetch_row(res)), "%s: no row", sql);
        snprintf(out, sizeof(out), "%s", row[0] ? row[0] : "NULL");
        mysql_free_result(res);
        return out;
}

/* Whether another session may lock the stream's row now (NOWAIT: no waiting for it). */
static bool may_lock(MYSQL *other, const char *stream_id)
{
        char sql[256];
        MYSQL_RES *res;

        snprintf(sql, sizeof(sql),
                 "SELECT stream_id FROM live_streams WHERE vendor = 'tencent' AND stream_id = "
                 "'%s' FOR UPDATE NOWAIT",
                 stream_id);
        if (mysql_query(other, sql) != 0) {
                cr_assert_eq(mysql_errno(other), 1205, "%s", mysql_error(other));
                return false;
        }
        res = mysql_store_result(other);
        cr_assert(res != NULL && mysql_num_rows(res) == 1, "%s: no row", stream_id);
        mysql_free_result(res);
        return true;
}

Test(batch_oracle, stream_batch_locks_only_its_own_rows)
{
        struct apply_slot *slots = calloc(LOCK_STREAMS, sizeof(*slots));
        char(*errors)[512] = calloc(LOCK_STREAMS, sizeof(*errors));
        struct consumer_record *recs;
        struct side s;
        char err[512] = "";

        cr_assert(slots && errors);
        open_lock_side(&s, 0);
        recs = lock_batch(slots, errors, false);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(
                stream_lifecycle_role.apply_many(s.state, slots, LOCK_STREAMS, err, sizeof(err)),
                APPLY_DONE, "%s", err);
        /* the batch's transaction is open: its rows are locked, and only they */
        cr_expect(!may_lock(s.mysql, "lk-7"), "a stream of the batch is not locked");
        cr_expect(!may_lock(s.mysql, "lk-519"), "a stream of the batch is not locked");
        cr_expect(may_lock(s.mysql, "lk-other"), "the batch locked a stream it does not touch");
        db_rollback(s.db);
        free_lock_batch(recs);
        close_side(&s, &stream_lifecycle_role);
        free(slots);
        free(errors);
}

/* A command on set:live:online and one member (NULL: none); its integer reply as text. */
static const char *redis_do(struct side *s, const char *cmd, const char *member)
{
        static char out[24];
        char err[256];
        const char *argv[] = {cmd, "set:live:online", member};
        redisReply *r = redis_conn_cmd(s->redis, member ? 3 : 2, argv, NULL, err, sizeof(err));

        cr_assert(r != NULL, "%s", err);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
        snprintf(out, sizeof(out), "%lld", r->integer);
        freeReplyObject(r);
        return out;
}

static const char *online(struct side *s, const char *stream_id)
{
        return redis_do(s, "SISMEMBER", stream_id);
}

Test(batch_oracle, stream_projection_locks_only_its_own_rows)
{
        struct apply_slot *slots = calloc(LOCK_STREAMS, sizeof(*slots));
        char(*errors)[512] = calloc(LOCK_STREAMS, sizeof(*errors));
        struct consumer_record **ptrs = calloc(LOCK_STREAMS, sizeof(*ptrs));
        struct consumer_record *recs;
        struct side s;
        char err[512] = "";
        MYSQL_RES *res;
        MYSQL_ROW row = NULL;

        cr_assert(slots && errors && ptrs);
        open_lock_side(&s, 9);
        recs = lock_batch(slots, errors, false);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(
                stream_lifecycle_role.apply_many(s.state, slots, LOCK_STREAMS, err, sizeof(err)),
                APPLY_DONE, "%s", err);
        cr_assert(db_commit(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        for (int i = 0; i < LOCK_STREAMS; i++) { /* online, as the begins' projection left them */
                char stream[32];

                snprintf(stream, sizeof(stream), "lk-%d", i);
                redis_do(&s, "SADD", stream);
        }
        redis_do(&s, "SADD", "lk-other");
        for (int i = 0; i < LOCK_STREAMS; i++)
                ptrs[i] = &recs[i];
        /*
         * Another session holds lk-other; a projection that reached for it would wait a second
         * and fail instead of waiting the server's default fifty.
         */
        cr_assert(db_sql(s.db, "SET SESSION innodb_lock_wait_timeout = 1", NULL, err,
                         sizeof(err)) == DB_OK,
                  "%s", err);
        cr_assert(mysql_query(s.mysql, "START TRANSACTION") == 0, "%s", mysql_error(s.mysql));
        cr_assert(may_lock(s.mysql, "lk-other"));
        cr_expect_eq(
                stream_lifecycle_role.publish_many(s.state, ptrs, LOCK_STREAMS, err, sizeof(err)),
                0, "the projection waited on a stream it does not touch: %s", err);
        cr_assert(mysql_query(s.mysql, "ROLLBACK") == 0, "%s", mysql_error(s.mysql));
        /* and it projected every stream of the batch: they ended and left the set */
        cr_expect_str_eq(online(&s, "lk-7"), "0");
        cr_expect_str_eq(online(&s, "lk-519"), "0");
        cr_expect_str_eq(online(&s, "lk-other"), "1");
        cr_expect_str_eq(redis_do(&s, "SCARD", NULL), "1");
        cr_assert(mysql_query(s.mysql,
                              "SELECT COUNT(*) FROM live_streams WHERE status = 'ended'") == 0,
                  "%s", mysql_error(s.mysql));
        res = mysql_store_result(s.mysql);
        cr_assert(res && (row = mysql_fetch_row(res)));
        cr_expect_str_eq(row[0], "520");
        mysql_free_result(res);
        free_lock_batch(recs);
        close_side(&s, &stream_lifecycle_role);
        free(ptrs);
        free(slots);
        free(errors);
}

/*
 * The outbox holds a session.end only of an event that ended a session: publishing begins
 * that apply took for the first time does not look there (session_handoff is locked by
 * another session meanwhile; a look would wait a second and fail), one record at a time or a
 * batch at once.
 */
Test(batch_oracle, stream_publish_of_new_begins_does_not_read_the_outbox)
{
        struct apply_slot *slots = calloc(LOCK_STREAMS, sizeof(*slots));
        char(*errors)[512] = calloc(LOCK_STREAMS, sizeof(*errors));
        struct consumer_record **ptrs = calloc(LOCK_STREAMS, sizeof(*ptrs));
        struct consumer_record *recs;
        struct side s;
        char err[512] = "";

        cr_assert(slots && errors && ptrs);
        open_lock_side(&s, 10);
        recs = lock_batch(slots, errors, true);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(stream_lifecycle_role.apply_many(s.state, slots, LOCK_STREAMS - 1, err,
                                                      sizeof(err)),
                     APPLY_DONE, "%s", err);
        cr_assert(db_commit(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(
                stream_lifecycle_role.apply(s.state, &recs[LOCK_STREAMS - 1], err, sizeof(err)),
                APPLY_DONE, "%s", err);
        cr_assert(db_commit(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        for (int i = 0; i < LOCK_STREAMS; i++)
                ptrs[i] = &recs[i];
        cr_assert(db_sql(s.db, "SET SESSION lock_wait_timeout = 1", NULL, err, sizeof(err)) ==
                          DB_OK,
                  "%s", err);
        cr_assert(mysql_query(s.mysql, "LOCK TABLES session_handoff WRITE") == 0, "%s",
                  mysql_error(s.mysql));
        cr_expect_eq(stream_lifecycle_role.publish_many(s.state, ptrs, LOCK_STREAMS - 1, err,
                                                        sizeof(err)),
                     0, "the batch's publish read the outbox: %s", err);
        cr_expect_eq(
                stream_lifecycle_role.publish(s.state, &recs[LOCK_STREAMS - 1], err, sizeof(err)),
                0, "the record's publish read the outbox: %s", err);
        cr_assert(mysql_query(s.mysql, "UNLOCK TABLES") == 0, "%s", mysql_error(s.mysql));
        /* and they went live */
        cr_expect_str_eq(online(&s, "nb-0"), "1");
        cr_expect_str_eq(online(&s, "nb-519"), "1");
        cr_expect_str_eq(redis_do(&s, "SCARD", NULL), "520");
        free_lock_batch(recs);
        close_side(&s, &stream_lifecycle_role);
        free(ptrs);
        free(slots);
        free(errors);
}

/* The statements the role's connection has run (MariaDB's own session counter). */
static long long statements_run(struct side *s)
{
        char name[64], err[256];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = name, .s_size = sizeof(name)},
                                {.type = DB_PARAM_I64}};
        struct db_text sql = {0};
        long long n = -1;

        db_text_add(&sql, "SHOW SESSION STATUS LIKE 'Questions'");
        cr_assert(db_text_query(s->db, &sql, cols, 2, on_counter, &n, err, sizeof(err)) == DB_OK,
                  "%s", err);
        db_text_free(&sql);
        cr_assert(n >= 0);
        return n;
}

/*
 * A batch that ends 520 sessions hands them all off (520 session.end records, each waited for)
 * in a few statements and one wait, not a read and a wait per record.
 */
Test(batch_oracle, stream_publish_of_a_batch_of_ends_is_a_few_statements)
{
        struct apply_slot *slots = calloc(LOCK_STREAMS, sizeof(*slots));
        char(*errors)[512] = calloc(LOCK_STREAMS, sizeof(*errors));
        struct consumer_record **ptrs = calloc(LOCK_STREAMS, sizeof(*ptrs));
        struct consumer_record *recs;
        struct side s;
        char err[512] = "";
        long long before;

        cr_assert(slots && errors && ptrs);
        open_lock_side(&s, 15);
        recs = lock_batch(slots, errors, false);
        cr_assert(db_begin(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(
                stream_lifecycle_role.apply_many(s.state, slots, LOCK_STREAMS, err, sizeof(err)),
                APPLY_DONE, "%s", err);
        cr_assert(db_commit(s.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_str_eq(query_one(&s, "SELECT COUNT(*) FROM session_handoff"), "520");
        for (int i = 0; i < LOCK_STREAMS; i++)
                ptrs[i] = &recs[i];
        before = statements_run(&s);
        cr_expect_eq(
                stream_lifecycle_role.publish_many(s.state, ptrs, LOCK_STREAMS, err, sizeof(err)),
                0, "%s", err);
        /*
         * A few statements a batch (the projection's, the outbox's, the live.notify relay's
         * pages), far from one a record; +1: statements_run()'s own SHOW.
         */
        cr_expect_leq(statements_run(&s) - before, 1 + 40, "%lld statements for one batch",
                      statements_run(&s) - before);
        free_lock_batch(recs);
        close_side(&s, &stream_lifecycle_role);
        free(ptrs);
        free(slots);
        free(errors);
}

/* ------------------------------------------------------------------ two batches at once */

static void on_peer_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        (void)rk;
        produce_ack_report(opaque, rkm);
}

/* A second copy of the role on s's database (its own connection and producer). */
static void open_peer(struct side *peer, const struct side *s)
{
        struct role_env env = {0};
        char err[512];

        memset(peer, 0, sizeof(*peer));
        snprintf(peer->url, sizeof(peer->url), "%s", s->url);
        peer->mysql = support_mysql_connect(peer->url);
        cr_assert((peer->db = db_new(peer->url, 5, err, sizeof(err))) != NULL, "%s", err);
        cr_assert((peer->metrics = metrics_new()) != NULL);
        cr_assert((peer->redis = redis_conn_new(support_fixture("LIVEFLOW_TEST_REDIS_URL"), 2000,
                                                err, sizeof(err))) != NULL,
                  "%s", err);
        cr_assert((peer->producer = kafka_producer_new(&settings, "oracle", on_peer_delivery,
                                                       &peer->ack, err, sizeof(err))) != NULL,
                  "%s", err);
        env.settings = &settings;
        env.db = peer->db;
        env.redis = peer->redis;
        env.metrics = peer->metrics;
        env.producer = peer->producer;
        env.ack = &peer->ack;
        env.role = stream_lifecycle_role.name;
        cr_assert(stream_lifecycle_role.open(&env, &peer->state, err, sizeof(err)) == 0, "%s", err);
}

/* Begins of new streams g-<first>, g-<first + 2>, ...: n of them. */
static struct consumer_record *interleaved_begins(struct apply_slot *slots, char (*errors)[512],
                                                  int first, int n)
{
        struct consumer_record *recs = calloc((size_t)n, sizeof(*recs));

        cr_assert(recs != NULL);
        for (int i = 0; i < n; i++) {
                char key[32], stream[32], seq[32];
                struct input in = {.event_key = key,
                                   .event_type = "stream.begin",
                                   .payload_name = "StreamBegin",
                                   .stream_id = stream,
                                   .event_time_ms = T0_MS + 60000 + i};

                snprintf(key, sizeof(key), "g-begin-%d", first + 2 * i);
                snprintf(stream, sizeof(stream), "g-%03d", first + 2 * i);
                snprintf(seq, sizeof(seq), "q-%d", first + 2 * i);
                in.payload = json_pack("{s:s}", "sequence", seq);
                decode_into(&recs[i], &in, 100 + i);
                json_decref(in.payload);
                slots[i] = (struct apply_slot){&recs[i], APPLY_DONE, errors[i], sizeof(errors[i])};
        }
        return recs;
}

/*
 * Two copies of the role (two lanes, or two processes after a rebalance) apply batches of new
 * streams at once, the ids interleaved in key order: neither waits for the other (a batch that
 * locked the gaps where its new rows go would make the other's inserts wait, and both
 * deadlock when each inserts into the other's gaps).
 */
Test(batch_oracle, stream_batches_of_new_streams_at_once_do_not_wait_on_each_other)
{
        struct apply_slot slots_a[20], slots_b[20];
        char errors_a[20][512], errors_b[20][512], err[512] = "";
        struct consumer_record *recs_a, *recs_b;
        struct side a, b;

        open_side(&a, &stream_lifecycle_role, NULL, 0);
        open_peer(&b, &a);
        recs_a = interleaved_begins(slots_a, errors_a, 0, 20);
        recs_b = interleaved_begins(slots_b, errors_b, 1, 20);
        cr_assert(db_sql(b.db, "SET SESSION innodb_lock_wait_timeout = 1", NULL, err,
                         sizeof(err)) == DB_OK,
                  "%s", err);
        cr_assert(db_begin(a.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert_eq(stream_lifecycle_role.apply_many(a.state, slots_a, 20, err, sizeof(err)),
                     APPLY_DONE, "%s", err);
        /* a's transaction is open */
        cr_assert(db_begin(b.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_expect_eq(stream_lifecycle_role.apply_many(b.state, slots_b, 20, err, sizeof(err)),
                     APPLY_DONE, "the second batch waited on the first: %s", err);
        cr_expect(db_commit(b.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_assert(db_commit(a.db, err, sizeof(err)) == DB_OK, "%s", err);
        cr_expect_str_eq(query_one(&a, "SELECT COUNT(*) FROM live_streams WHERE status = 'live'"),
                         "40");
        for (int i = 0; i < 20; i++) {
                event_fini(&recs_a[i].ev);
                event_fini(&recs_b[i].ev);
        }
        free(recs_a);
        free(recs_b);
        close_side(&b, &stream_lifecycle_role);
        close_side(&a, &stream_lifecycle_role);
}
