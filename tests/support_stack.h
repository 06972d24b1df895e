/*
 * support_stack.h: the built processes a test starts (receiver, consumer roles), requests signed
 * as a sender signs them, and what those processes wrote to a topic. Shared by the end-to-end
 * suites and the receiver's tests.
 */
#ifndef LIVEFLOW_TEST_SUPPORT_STACK_H
#define LIVEFLOW_TEST_SUPPORT_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ------------------------------------------------------------ processes */

/** One process of the stack under test. */
struct support_proc {
        pid_t pid;
        int admin_port;
        char log[256];
};

/**
 * @brief Starts liveflow-receiver (role NULL) or liveflow-consumer <role> against the fixtures
 * and mysql_url, as support_start_worker() does, without waiting for it: start every process
 * of a test, then support_procs_ready() them, so their group joins overlap. group (a role's,
 * NULL for the receiver) starts at the end of topics (NULL-terminated; NULL: where the group
 * is). The log is /tmp/<prefix>.<role or "receiver">.log.
 */
void support_proc_launch(struct support_proc *p, const char *prefix, const char *role,
                         const char *mysql_url, const char *group, const char *const topics[],
                         const char *const env[]);

/** @brief Waits for /readyz of each of the n processes; fails the test naming the log. */
void support_procs_ready(struct support_proc *const procs[], int n);

/** @brief Kills p when it still runs (SIGKILL) and reaps it; a stopped p is left alone. */
void support_proc_stop(struct support_proc *p);

/** The receiver and the stream role of an end-to-end test, with its own database. */
struct support_stream_stack {
        char mysql_url[512];
        char prefix[48]; /* unique to the test: its ids, group and logs start with it */
        int http_port;
        struct support_proc receiver, consumer;
        struct st_mysql *mysql;     /* a client of mysql_url */
        struct redisContext *redis; /* a client of the fixture Redis (db 0) */
};

/**
 * @brief Starts s: a prefix from name, a fresh migrated database and clients of it and of Redis,
 * then the receiver on a free HTTP port and the stream role in group
 * <group_before><prefix><group_after> (one per test: each needs every partition) at the end of
 * live.stream, both with LIVEFLOW_HTTP_PORT and env (at most 14); waits until both are ready.
 */
void support_stream_stack_start(struct support_stream_stack *s, const char *name,
                                const char *group_before, const char *group_after,
                                const char *const env[]);

/** @brief Stops both processes, closes the clients and clears s. */
void support_stream_stack_stop(struct support_stream_stack *s);

/**
 * @brief POSTs to s's receiver a Tencent push (event_type 1) or interrupt (0) of stream_id
 * (anchor a_<prefix>, room r_<prefix>) signed at t with key. @returns the status.
 */
long support_stream_stack_tencent(const struct support_stream_stack *s, const char *stream_id,
                                  int event_type, long long t, const char *key);

/* ------------------------------------------------------------ signing */

/**
 * @brief The Standard Webhooks signature of body under webhook-id id and webhook-timestamp ts:
 * "v1," + base64 HMAC-SHA256 over "id.ts.body" keyed with the base64 key_b64 (a secret without
 * its "whsec_" prefix), computed with OpenSSL's one-shot HMAC(), independently of crypto.c.
 */
void support_webhook_sign(const char *key_b64, const char *id, const char *ts, const char *body,
                          size_t body_len, char out[64]);

/**
 * @brief Agora's V2 signature of body (the Agora-Signature-V2 header): the hex HMAC-SHA256 of
 * body keyed with secret, computed with OpenSSL's one-shot HMAC(), independently of crypto.c.
 */
void support_agora_sign(const char *secret, const char *body, char v2[65]);

/**
 * @brief Alibaba's signature headers of a request to host signed with key now: h_ts
 * "ALI-LIVE-TIMESTAMP: <unix s>" and h_sig "ALI-LIVE-SIGNATURE: <hex MD5 of host|s|key>",
 * computed with OpenSSL's EVP_Digest(), independently of crypto.c.
 */
void support_alibaba_headers(const char *host, const char *key, char h_ts[64], char h_sig[64]);

/* ------------------------------------------------------------ stores */

typedef struct st_mysql MYSQL;
typedef struct redisContext redisContext;

/** @brief Whether stream_id is a member of set:live:online. */
bool support_stream_online(redisContext *redis, const char *stream_id);

/**
 * @brief Waits up to 5 s until stream_id's row in live_streams has status and its membership
 * of set:live:online is in_set; else fails the test naming the logs of the n procs.
 */
void support_wait_stream_state(MYSQL *mysql, redisContext *redis, const char *stream_id,
                               const char *status, bool in_set,
                               const struct support_proc *const procs[], int n);

/* ------------------------------------------------------------ topics */

/**
 * @brief How many records of topic have key, read from the beginning up to the end every
 * partition had at the call: no waiting for what might still come, so it proves an absence
 * (say, no dead letter) as soon as the writer is known to be past the record. header_name
 * (may be NULL) receives that header of the last of them. Fails the test when the topic can
 * not be read to those ends within 30 s.
 */
int support_count_records_now(const char *topic, const char *key, const char *header_name,
                              char *header_out, size_t header_size);

#endif
