/*
 * stream_projection.c: test_batch_oracle's stream projection to Redis. The batch's
 * publish_many() (plain commands in one MULTI/EXEC, a script only for an ended stream's
 * anchor) must leave every key as publish() per record leaves it (the script per stream), on
 * a Redis that already holds keys the batch must not overwrite: an anchor whose status hash
 * names another stream, and a stream that begins and ends in the same batch.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_conn.h"
#include "stream_lifecycle.h"

#include "fixture.h"

#define S(x) (T0_MS + (x)*1000LL)

/* st-y is live (a-y's hash names it); st-x ended long ago and a-x has gone live elsewhere. */
static const char *const proj_seed[] = {
        "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, "
        "vendor_session, status, started_at, ended_at, duration_s, close_method, last_event_at) "
        "VALUES ('st-y', 'a-y', 'r-y', 31, 'tencent', 'seqY', 'live', FROM_UNIXTIME(1700000000), "
        "NULL, NULL, NULL, NOW()), "
        "('st-x', 'a-x', 'r-x', 32, 'tencent', 'seqX', 'ended', FROM_UNIXTIME(1700000000), "
        "FROM_UNIXTIME(1700000100), 100, 1, NOW())",
        NULL};

/* What Redis held before the batch: as the projections of earlier batches left it. */
static const char *const *const redis_seed[] = {
        (const char *[]){"SADD", "set:live:online", "st-y", "st-other", NULL},
        (const char *[]){"HSET", "hash:anchor:status:a-y", "status", "live", "stream_id", "st-y",
                         "session_id", "31", "started_at", "1700000000", NULL},
        (const char *[]){"HSET", "hash:anchor:status:a-x", "status", "live", "stream_id",
                         "st-other", "session_id", "99", "started_at", "1700000500", NULL},
        (const char *[]){"HSET", "temp:live:st-y", "session_id", "31", NULL}, NULL};

static void seed_redis(struct side *s)
{
        char err[256];

        for (size_t i = 0; redis_seed[i]; i++) {
                int argc = 0;
                redisReply *r;

                while (redis_seed[i][argc])
                        argc++;
                r = redis_conn_cmd(s->redis, argc, (const char **)redis_seed[i], NULL, err,
                                   sizeof(err));
                cr_assert(r != NULL, "%s", err);
                freeReplyObject(r);
        }
}

static json_t *seq_payload(const char *sequence, int close_method)
{
        return close_method
                       ? json_pack("{s:s,s:i}", "sequence", sequence, "close_method", close_method)
                       : json_pack("{s:s}", "sequence", sequence);
}

static size_t proj_inputs(struct input *in)
{
        size_t n = 0;

        /* n1 begins and ends in the batch; n2 begins and stays live */
        in[n++] = (struct input){"b-n1", "stream.begin", "StreamBegin",
                                 "n1",   NULL,           seq_payload("q1", 0),
                                 S(10),  "a-n1",         "r-n1"};
        in[n++] =
                (struct input){"e-n1", "stream.end", "StreamEnd", "n1", NULL, seq_payload("q1", 1),
                               S(70),  NULL,         "r-n1"};
        in[n++] = (struct input){"b-n2", "stream.begin", "StreamBegin",
                                 "n2",   NULL,           seq_payload("q2", 0),
                                 S(20),  "a-n2",         "r-n2"};
        /* st-y ends: a-y's hash names it, so it goes offline */
        in[n++] = (struct input){"e-y",  "stream.end", "StreamEnd",
                                 "st-y", NULL,         seq_payload("seqY", 1),
                                 S(80),  NULL,         "r-y"};
        /* st-x's end again: a-x's hash names st-other, which must stay */
        in[n++] = (struct input){"e-x",  "stream.end", "StreamEnd",
                                 "st-x", NULL,         seq_payload("seqX", 1),
                                 S(100), NULL,         "r-x"};
        return n;
}

static char *hget(struct side *s, const char *key, const char *field)
{
        char err[256], *out;
        redisReply *r = redis_conn_cmd(s->redis, 3, (const char *[]){"HGET", key, field}, NULL, err,
                                       sizeof(err));

        cr_assert(r != NULL, "%s", err);
        out = strdup(r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
        freeReplyObject(r);
        return out;
}

static long long int_reply(struct side *s, int argc, const char **argv)
{
        char err[256];
        redisReply *r = redis_conn_cmd(s->redis, argc, argv, NULL, err, sizeof(err));
        long long v;

        cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "%s", err);
        v = r->integer;
        freeReplyObject(r);
        return v;
}

static void expect_hash_field(struct side *s, const char *key, const char *field, const char *want)
{
        char *got = hget(s, key, field);

        cr_expect_str_eq(got, want, "%s %s", key, field);
        free(got);
}

/* The keys the batch must leave, whatever the per-record path does. */
static void expect_projection(struct side *s)
{
        const char *online[] = {"SISMEMBER", "set:live:online", NULL};

        expect_hash_field(s, "hash:anchor:status:a-x", "stream_id", "st-other");
        expect_hash_field(s, "hash:anchor:status:a-x", "status", "live");
        expect_hash_field(s, "hash:anchor:status:a-y", "status", "offline");
        expect_hash_field(s, "hash:anchor:status:a-y", "stream_id", "(nil)");
        /* n1 was never live when a projection read it: its anchor has no hash */
        expect_hash_field(s, "hash:anchor:status:a-n1", "status", "(nil)");
        expect_hash_field(s, "hash:anchor:status:a-n2", "stream_id", "n2");
        expect_hash_field(s, "temp:live:n2", "anchor_id", "a-n2");
        expect_hash_field(s, "temp:live:n2", "room_id", "r-n2");
        cr_expect_gt(int_reply(s, 2, (const char *[]){"TTL", "temp:live:n2"}), 0);
        cr_expect_eq(int_reply(s, 2, (const char *[]){"EXISTS", "temp:live:n1"}), 0);
        cr_expect_eq(int_reply(s, 2, (const char *[]){"EXISTS", "temp:live:st-y"}), 0);
        online[2] = "n2";
        cr_expect_eq(int_reply(s, 3, online), 1, "n2 is live");
        online[2] = "st-other";
        cr_expect_eq(int_reply(s, 3, online), 1, "st-other is not the batch's");
        online[2] = "n1";
        cr_expect_eq(int_reply(s, 3, online), 0, "n1 ended in the batch");
        online[2] = "st-y";
        cr_expect_eq(int_reply(s, 3, online), 0, "st-y ended");
}

Test(batch_oracle, stream_projection_matches_per_record_on_a_seeded_redis)
{
        struct input in[MAX_RECS];
        size_t n = proj_inputs(in);

        for (unsigned seed = 1; seed <= 2; seed++) {
                struct side each, many;
                struct batch b1, b2;
                enum apply_result r1[MAX_RECS], r2[MAX_RECS];
                struct consumer_record *recs[MAX_RECS];
                size_t cnt = 0;
                char err[512];

                make_batch(&b1, in, n, seed);
                make_batch(&b2, in, n, seed);
                open_side(&each, &stream_lifecycle_role, proj_seed, 1);
                open_side(&many, &stream_lifecycle_role, proj_seed, 2);
                seed_redis(&each);
                seed_redis(&many);
                apply_each(&each, &stream_lifecycle_role, &b1, r1);
                apply_batch(&many, &stream_lifecycle_role, &b2, r2);
                cr_expect(many.took_fast_path, "seed %u: the batch went one at a time", seed);
                publish_each(&each, &stream_lifecycle_role, &b1, r1);
                /* publish_many() itself, without the runtime's fall-back to publish() */
                for (size_t i = 0; i < b2.n; i++)
                        if (r2[i] == APPLY_DONE && b2.recs[i].publish)
                                recs[cnt++] = &b2.recs[i];
                cr_assert(stream_lifecycle_role.publish_many(many.state, recs, cnt, err,
                                                             sizeof(err)) == 0,
                          "%s", err);
                expect_same_redis(&each, &many);
                expect_projection(&each);
                expect_projection(&many);
                close_side(&each, &stream_lifecycle_role);
                close_side(&many, &stream_lifecycle_role);
                free_batch(&b1);
                free_batch(&b2);
        }
        free_inputs(in, n);
}
