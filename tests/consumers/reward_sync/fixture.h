/*
 * fixture.h: what test_reward_sync.c shares with its parts (expect.c, dead_letters.c): the
 * fixture (the consumer, MariaDB, Redis, a producer), the test's names, the tips it sent, and
 * the checks and dead-letter reads the tests call.
 */
#ifndef LIVEFLOW_TEST_CONSUMERS_REWARD_SYNC_FIXTURE_H
#define LIVEFLOW_TEST_CONSUMERS_REWARD_SYNC_FIXTURE_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"
#include "support_worker.h"

#define MAX_ROOMS     4
#define MAX_AUDIENCES 20
#define MAX_TIPS      700
#define WAIT_MS       60000

/* One tip as the test sends it; room and audience index fx's names. */
struct sent_tip {
        char tip_id[64];
        int room, audience;
        long long amount, gift_count, ts_ms;
        const char *audience_gender, *anchor_gender, *audience_type; /* NULL: absent */
};

/* What one room's figures must be, from the distinct tips sent to it. */
struct room_want {
        long long earnings, count, gifts;
        long long by_audience[MAX_AUDIENCES];
        int payers;
};

/* One test's fixture: the consumer it runs, its stores and its producer. */
struct reward_fixture {
        struct support_worker_fx w;
        char redis_url[300];           /* what the consumer connects to (maybe through the relay) */
        long long sessions[MAX_ROOMS]; /* the room's live session; 0: not live */
        unsigned rand_state;
        redisContext *redis;
        struct support_proxy *proxy;
};
extern struct reward_fixture fx;

/* The test's names, all starting with fx.w.prefix. */
struct reward_ids {
        char rooms[MAX_ROOMS][64], anchors[MAX_ROOMS][64], audiences[MAX_AUDIENCES][64];
};
extern struct reward_ids ids;

/* Every distinct tip the test sent, in order. */
struct reward_sent {
        struct sent_tip tips[MAX_TIPS];
        int tip_cnt;
};
extern struct reward_sent sent;

/*
 * What live.reward.dlq holds for one key from this test's consumer, up to and including the
 * first record whose dlq.error.message contains `until`: how many, and that record's error.
 */
struct dead_letter {
        const char *key;
        const char *until;
        int count;
        bool is_found;
        char error_class[32];
        char message[512];
};

/* test_reward_sync.c */
/* Produces a value keyed like the receiver (anchor_id), without waiting for the ack. */
void produce_raw(const char *key, const void *value, size_t len, const char *event_type);
void flush(void);

/* expect.c */
/* Sums the distinct tips sent to each room: sent.tips holds each tip once. */
void want_rooms(struct room_want want[MAX_ROOMS]);
long long redis_int(const char *fmt, const char *arg);
long long recharge_rows(void);
void wait_recharge_rows(long long want);
/* Redis catches up with the commits: wait for every room of [0, rooms) to match the sums. */
void expect_redis(int rooms);
/* recharge holds each distinct tip once, with the amounts sent. */
void expect_recharge(int rooms);
void expect_realtime(int rooms);
/* The amounts of the first n tips sent to a room: one key per room, so they were numbered in this
 * order. */
long long first_tips_sum(int room, long long n);
/* Waits until live_room_realtime counts at least `count` tips of the room. */
void wait_folded(int room, long long at_least, long long *earnings, long long *count);
/* The counter of the consumer's /metrics line that starts with `series`, or -1. */
long long scrape(const char *series);

/* dead_letters.c */
/*
 * Reads live.reward.dlq until every key's `until` record was seen or timeout_ms passed, counting
 * only this test's group (the other tests' consumers dead-letter the same records). A key's
 * records are in one partition, in the order they were dead-lettered.
 */
void read_dead_letters(struct dead_letter *dl, int n, int timeout_ms);
/* A malformed record keyed `key`: a valid tip with `field` replaced, or another payload type. */
void send_bad_tip(const char *key, const char *field, json_t *value, const char *payload_name);

#endif
