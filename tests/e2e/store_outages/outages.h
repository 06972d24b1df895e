/*
 * outages.h: what the parts of test_store_outages share: its sizes, the processes and stores
 * of the test (fx), and the verbs one part offers another. Test code: cr_assert() on failure.
 */
#ifndef LIVEFLOW_TEST_STORE_OUTAGES_H
#define LIVEFLOW_TEST_STORE_OUTAGES_H

#include <hiredis/hiredis.h>
#include <mysql.h>
#include <stdbool.h>
#include <sys/types.h>

#include "support.h"

#define TIPS        300
#define ANCHORS     12 /* each with its own room */
#define AUDIENCES   40
#define STREAMS     10  /* streams of their own anchors and rooms */
#define QUIET_FROM  190 /* see tip_anchor() */
#define SENDERS     2
#define RATE        40 /* tips posted per second at most */
#define RATIO_BP    4500
#define REDIS_DB    12 /* no other suite uses it */
#define WAIT_MS     60000
#define HOUR_MS     3600000LL
#define TIP_STEP_MS 10000LL /* between two tips' ts */
#define KEY_RAW     "liveflow-outage-tip-secret-32by!"
#define TENCENT_KEY "outage-callback-key"
#define EPOCH_KEY   "liveflow:redis:epoch:reward-sync"

struct worker {
        const char *name, *binary, *role;
        char group[96], log[256];
        pid_t pid;
        int admin_port;
};

struct outage_fixture {
        char prefix[32];
        char mysql_url[512];
        char secret[96];
        char receiver_log[256];
        pid_t receiver;
        int http_port;
        long long base_ms; /* the first tip's ts */
        struct worker w[4];
        MYSQL *mysql;
        redisContext *redis;
        struct support_reader *dlq[3];
        long long gross[ANCHORS], count[ANCHORS], share[ANCHORS];
};

extern struct outage_fixture fx;

enum { W_SYNC, W_SETTLE, W_STATS, W_STREAM };

extern const char *const dlq_topics[3];

/* test_store_outages.c: ids, the test's Redis connection, the workers' metrics, posting. */
void anchor_id(int a, char *out, size_t size);
void room_id(int a, char *out, size_t size);
void stream_id(int s, char *out, size_t size);
void redis_url(char *out, size_t size);
void redis_connect(void);
long long unavailable(const struct worker *w, const char *store);
void wait_unavailable(const struct worker *w, const char *store, long long want, const char *what);
void post_until(int limit, bool wait);
void post_stream(int s, bool is_begin);

/* servers.c: the three outages, in the order the test plays them. */
void outage_tables_away(void);
void outage_mariadb_restart(void);
void outage_redis_restart_empty(void);

/* checks.c: what must hold afterwards (each waits up to WAIT_MS for the roles). */
void redis_get(const char *key, char *out, size_t size);
void wait_redis(int first_room, bool with_streams);
void wait_rows(const char *what, long long want, const char *sql);
void check_ledgers(void);
void check_redis(void);
void check_streams(void);
void check_dlqs(void);
void check_reconcile(void);

#endif
