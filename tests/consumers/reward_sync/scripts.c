/*
 * scripts.c: reward_batch_script (a batch's tips in one call) against reward_tip_script (one
 * call per tip) on the same tips, each in a Redis database of its own: the same replies and
 * the same keys, values and expiries. The tips cover a duplicate, a tip a rebuild covers, a
 * session and none.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward_sync_role.h"
#include "support.h"

#define TIPS 7
#define KEYS 8
#define ARGS 6

/* One tip's keys and arguments as reward_tip_call_fill() lays them out. */
struct script_tip {
        char keys[KEYS][64];
        char args[ARGS][32];
};

static void fill(struct script_tip *t, const char *tip, const char *room, long long session,
                 const char *audience, long long amount, long long seq, long long gifts)
{
        snprintf(t->keys[0], sizeof(t->keys[0]), "sc:tip:%s", tip);
        snprintf(t->keys[1], sizeof(t->keys[1]), "sc:earn:%s", room);
        snprintf(t->keys[2], sizeof(t->keys[2]), "sc:count:%s", room);
        snprintf(t->keys[3], sizeof(t->keys[3]), "sc:top:%s", room);
        snprintf(t->keys[4], sizeof(t->keys[4]), "sc:room_wm:%s", room);
        for (int k = 5; k < KEYS; k++)
                t->keys[k][0] = '\0';
        if (session) {
                snprintf(t->keys[5], sizeof(t->keys[5]), "sc:stats:%lld", session);
                snprintf(t->keys[6], sizeof(t->keys[6]), "sc:payers:%lld", session);
                snprintf(t->keys[7], sizeof(t->keys[7]), "sc:session_wm:%lld", session);
        }
        snprintf(t->args[0], sizeof(t->args[0]), "600");
        snprintf(t->args[1], sizeof(t->args[1]), "%lld", amount);
        snprintf(t->args[2], sizeof(t->args[2]), "%s", audience);
        snprintf(t->args[3], sizeof(t->args[3]), "%lld", seq);
        snprintf(t->args[4], sizeof(t->args[4]), "%lld", gifts);
        snprintf(t->args[5], sizeof(t->args[5]), "900");
}

static redisContext *connect_db(int db)
{
        redisContext *r = support_redis_connect(db, true, NULL, 0);

        /* A rebuild already covered room r1 through its tip 2, and session 77 through tip 1. */
        freeReplyObject(redisCommand(r, "SET sc:room_wm:r1 2"));
        freeReplyObject(redisCommand(r, "SET sc:session_wm:77 1"));
        return r;
}

/* A key's type and contents as one line (scores and members sorted by Redis), with its TTL. */
static void dump_key(redisContext *r, const char *key, char *out, size_t out_size)
{
        redisReply *type = redisCommand(r, "TYPE %s", key), *v = NULL, *ttl;
        size_t len;

        cr_assert(type && type->type == REDIS_REPLY_STATUS);
        if (strcmp(type->str, "string") == 0)
                v = redisCommand(r, "GET %s", key);
        else if (strcmp(type->str, "zset") == 0)
                v = redisCommand(r, "ZRANGE %s 0 -1 WITHSCORES", key);
        ttl = redisCommand(r, "TTL %s", key);
        cr_assert(ttl && ttl->type == REDIS_REPLY_INTEGER);
        len = (size_t)snprintf(out, out_size, "%s ttl>0=%d:", type->str, ttl->integer > 0);
        if (strcmp(type->str, "hash") == 0) {
                static const char *const fields[] = {"gift_amount", "gift_count", "tip_count",
                                                     "paying_users"};

                for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
                        redisReply *h = redisCommand(r, "HGET %s %s", key, fields[f]);

                        len += (size_t)snprintf(out + len, out_size - len, " %s=%s", fields[f],
                                                h && h->type == REDIS_REPLY_STRING ? h->str : "-");
                        freeReplyObject(h);
                }
        } else if (strcmp(type->str, "set") == 0) {
                redisReply *m = redisCommand(r, "SORT %s ALPHA", key);

                for (size_t i = 0; m && i < m->elements; i++)
                        len += (size_t)snprintf(out + len, out_size - len, " %s",
                                                m->element[i]->str);
                freeReplyObject(m);
        } else if (v && v->type == REDIS_REPLY_STRING) {
                snprintf(out + len, out_size - len, " %s", v->str);
        } else if (v && v->type == REDIS_REPLY_ARRAY) {
                for (size_t i = 0; i < v->elements; i++)
                        len += (size_t)snprintf(out + len, out_size - len, " %s",
                                                v->element[i]->str);
        }
        freeReplyObject(type);
        freeReplyObject(v);
        freeReplyObject(ttl);
}

/* In test_reward_sync.c's suite (its fixture is not used): a suite of its own leaks 48 bytes of
 * Criterion's under LeakSanitizer. */
Test(reward_sync, a_batch_script_call_equals_one_call_per_tip)
{
        struct script_tip tips[TIPS];
        const char *argv[3 + TIPS * (KEYS + ARGS)];
        long long one_by_one[TIPS];
        redisContext *a = connect_db(10), *b = connect_db(11);
        redisReply *reply;
        char nkeys[16];

        fill(&tips[0], "t1", "r1", 0, "fan1", 100, 1, 1); /* covered by the rebuild */
        fill(&tips[1], "t2", "r1", 0, "fan2", 250, 3, 2); /* counted */
        fill(&tips[2], "t2", "r1", 0, "fan2", 250, 3, 2); /* the same tip again */
        fill(&tips[3], "t3", "r2", 77, "fan1", 40, 1, 1); /* room counted, session covered */
        fill(&tips[4], "t4", "r2", 77, "fan3", 60, 2, 3); /* both counted */
        fill(&tips[5], "t5", "r2", 77, "fan1", 5, 3, 1);  /* a payer again */
        fill(&tips[6], "t6", "r3", 78, "fan4", 7, 1, 1);  /* another session */

        for (int i = 0; i < TIPS; i++) {
                const char *one[3 + KEYS + ARGS] = {"EVAL", reward_tip_script, "8"};

                for (int k = 0; k < KEYS; k++)
                        one[3 + k] = tips[i].keys[k];
                for (int g = 0; g < ARGS; g++)
                        one[3 + KEYS + g] = tips[i].args[g];
                reply = redisCommandArgv(a, 3 + KEYS + ARGS, one, NULL);
                cr_assert(reply && reply->type == REDIS_REPLY_INTEGER, "tip %d: %s", i,
                          reply && reply->str ? reply->str : "no reply");
                one_by_one[i] = reply->integer;
                freeReplyObject(reply);
        }

        snprintf(nkeys, sizeof(nkeys), "%d", TIPS * KEYS);
        argv[0] = "EVAL";
        argv[1] = reward_batch_script;
        argv[2] = nkeys;
        for (int i = 0; i < TIPS; i++) {
                for (int k = 0; k < KEYS; k++)
                        argv[3 + i * KEYS + k] = tips[i].keys[k];
                for (int g = 0; g < ARGS; g++)
                        argv[3 + TIPS * KEYS + i * ARGS + g] = tips[i].args[g];
        }
        reply = redisCommandArgv(b, 3 + TIPS * (KEYS + ARGS), argv, NULL);
        cr_assert(reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == TIPS, "%s",
                  reply && reply->str ? reply->str : "not an array of one reply per tip");
        for (int i = 0; i < TIPS; i++)
                cr_assert_eq(reply->element[i]->integer, one_by_one[i], "tip %d", i);
        freeReplyObject(reply);
        /* Not vacuous: a duplicate, a covered tip and counted ones. */
        cr_assert_eq(one_by_one[0], 1);
        cr_assert_eq(one_by_one[1], 2);
        cr_assert_eq(one_by_one[2], 0);

        reply = redisCommand(a, "KEYS sc:*");
        cr_assert(reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 10);
        for (size_t i = 0; i < reply->elements; i++) {
                char want[512], got[512];

                dump_key(a, reply->element[i]->str, want, sizeof(want));
                dump_key(b, reply->element[i]->str, got, sizeof(got));
                cr_assert_str_eq(got, want, "key %s", reply->element[i]->str);
        }
        freeReplyObject(reply);
        reply = redisCommand(b, "DBSIZE");
        cr_assert(reply && reply->type == REDIS_REPLY_INTEGER);
        {
                redisReply *ra = redisCommand(a, "DBSIZE");

                cr_assert_eq(reply->integer, ra->integer, "the same keys in both");
                freeReplyObject(ra);
        }
        freeReplyObject(reply);
        redisFree(a);
        redisFree(b);
}
