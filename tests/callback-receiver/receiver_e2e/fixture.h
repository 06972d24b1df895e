/*
 * fixture.h: what test_receiver_e2e.c shares with its parts (edges.c): the receiver process, the
 * Tencent sample and the signed bodies made from it, and the HTTP exchanges with the receiver.
 */
#ifndef LIVEFLOW_TEST_CALLBACK_RECEIVER_RECEIVER_E2E_FIXTURE_H
#define LIVEFLOW_TEST_CALLBACK_RECEIVER_RECEIVER_E2E_FIXTURE_H

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "codec.h"
#include "crypto.h"
#include "support.h"

#define KEY            "e2e-tencent-key"
#define PATH_TOKEN     "s3cr3t-path-token"
#define MAX_BODY_BYTES 4096
#define PARTITIONS     6 /* the fixture broker's topics */

/* What one HTTP exchange returned. */
struct reply {
        long status;
        char body[65536];
        char request_id[128];
        char retry_after[16];
        char allow[64];
};

extern struct support_receiver rcv; /* the probes are on its admin port */
/* The Tencent push sample (shared/payloads/tencent-css/push.json) without t and sign. */
extern const char push_sample[];
/* Whether the receiver's log says it could not bind its port. */
void start_receiver_with(const char *bootstrap, const char *const extra_env[]);
void start_receiver(const char *const extra_env[]);
/* SIGTERM, then the drain must end with exit 0. */
void keep_header(const char *line, size_t len, const char *name, char *out, size_t size);
size_t on_header(char *line, size_t size, size_t n, void *arg);
/* The probes answer on the admin port only (LIVEFLOW_HTTP_PROBES=0, the default). */
bool is_probe_path(const char *path);
/* method "POST" sends body (may be NULL); content_type NULL sends none; trace_id NULL sends none.
 */
struct reply http(const char *method, const char *path, const char *body, const char *content_type,
                  const char *trace_id);
struct reply post_json(const char *path, const char *body, const char *trace_id);
/* The push sample for stream_id, with t = now + t_offset_s and sign = MD5(key + t). */
char *signed_push(const char *stream_id, const char *key, long long t_offset_s);
/* Sends raw bytes on a new connection and reads what comes back until the receiver closes it or
 * wait_ms passes; the text read (NUL-terminated) in out. @returns how long it took (edges.c). */
long long raw_exchange(const char *request, char *out, size_t out_size, int wait_ms);
/* A dev broker of this test's own, so taking it down touches no other test. */
pid_t start_private_broker(char *bootstrap, size_t bootstrap_size);
/* How many records of topic on bootstrap have each key: reads every partition to its end. */
void count_keys(const char *bootstrap, const char *topic, char keys[][64], int key_cnt,
                int counts[]);

#endif
