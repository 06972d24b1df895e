/*
 * fixture.h: what test_internal.c shares with its parts (admin.c, e2e*.c): the
 * secrets and samples, the unit fixture (one signed request mapped by internal_map_*()) and the
 * receiver fixture of suite internal_e2e (the built liveflow-receiver, signed POSTs, Kafka checks).
 */
#ifndef LIVEFLOW_TEST_INTERNAL_FIXTURE_H
#define LIVEFLOW_TEST_INTERNAL_FIXTURE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "codec.h"
#include "metrics.h"
#include "settings.h"
#include "support.h"
#include "internal.h" /* the program's header: a part is given -I<program dir> */

/* "liveflow-test-secret-of-32-bytes!" (33 bytes) and another key for the wrong-secret cases. */
#define SECRET_B64       "bGl2ZWZsb3ctdGVzdC1zZWNyZXQtb2YtMzItYnl0ZXMh"
#define SECRET           "whsec_" SECRET_B64
#define OTHER_SECRET_B64 "b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMh"
#define TOLERANCE_S      300
#define MAX_AMOUNT       100000000LL
#define NOW_S            1714564800LL

/* CONTRACT §2 Reward body with every field, and a withdrawal body (test_internal.c). */
extern const char reward_json[];
extern const char withdrawal_json[];

/* sha256 hex of "prefix|key", as the receiver derives event ids. */
void sha256_of(const char *prefix, const char *key, char out[65]);

/* ------------------------------------------------------------ unit fixture (test_internal.c) */

/* One request as internal_map() sees it, with its headers. */
struct internal_call {
        char id[300], ts[32], sig[64];
        const char *names[3];
        const char *values[3];
        struct webhook_request req;
};

extern struct internal_call call;
extern struct settings settings;
extern struct metrics *metrics;
extern struct internal *in;
extern struct webhook_event ev;
extern struct webhook_verdict verdict;

/* A fresh internal endpoint with secrets and a replay memory of replay_max ids. */
void make_internal(const char *secrets, long long replay_max);
/* Prepares call: body signed with key_b64 under id at ts_s, received at now_s. */
void prepare(const char *path_arg, const char *body, const char *id, long long ts_s,
             long long now_s, const char *key_b64);
int run(enum internal_endpoint ep);
/* Signs and maps body (to path_arg for admin) under id, received at the signing time. */
int map_as(enum internal_endpoint ep, const char *path_arg, const char *body, const char *id);
int map(enum internal_endpoint ep, const char *path_arg, const char *body);
/* The sample with field replaced by the JSON text value (NULL: removed); the caller frees it. */
char *edit(const char *sample, const char *field, const char *value);
void assert_refused(int rc, unsigned int status, const char *auth_failure, const char *in_message);
/* Encodes ev as the receiver does and decodes it again: the payload fits the schema. */
void roundtrip(struct event *out);
const char *payload_str(const struct event *e, const char *name);
long long payload_int(const struct event *e, const char *name);
bool is_null_field(const struct event *e, const char *name);
long long counter(const char *name, const char *labels);

/* ------------------------------------------------------------ receiver fixture (e2e.c) */

#define PARTITIONS 6 /* the fixture broker's topics */

struct other_proc {
        pid_t pid;
};

struct reply {
        long status;
        char body[65536];
};

/* The Standard Webhooks headers of one request. */
struct signed_headers {
        char id[128], ts[32], sig[64];
};

extern struct support_receiver rcv;
/* A second receiver of a test (two sharing Redis); the teardown kills it too. */
extern struct other_proc other;
/* One more request header for the next posts ("Name: value"), NULL for none. */
extern const char *extra_header;

void start_receiver_with(const char *secret_env, const char *extra_env);
/* A receiver (rcv) sharing the fixture Redis; redis_env receives its LIVEFLOW_REDIS_URL=... */
void start_sharing_redis(char *redis_env, size_t size);
void start_receiver(const char *secret_env);
struct signed_headers sign_now(const char *id, const char *body, long long offset_s,
                               const char *key_b64);
/* POSTs body as JSON to port with the headers h (NULL: unsigned), X-Request-Id trace_id. */
struct reply post_at(int port, const char *path, const char *body, const struct signed_headers *h,
                     const char *trace_id);
struct reply post(const char *path, const char *body, const struct signed_headers *h,
                  const char *trace_id);
/* Signs body now with the test secret under id and POSTs it. */
struct reply post_signed(const char *path, const char *body, const char *id, const char *trace_id);
struct reply get_metrics(void);
/* A reward body for this test: its own tip and anchor, so partitions and ids are its own. */
char *reward_for(const char *tip, const char *anchor);
void assert_key(const rd_kafka_message_t *rkm, const char *key);
void assert_header(const rd_kafka_message_t *rkm, const char *name, const char *want);

#endif
