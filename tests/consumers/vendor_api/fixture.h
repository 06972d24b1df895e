/*
 * fixture.h: what test_vendor_api.c shares with its parts (stream_role.c, cloud.c): the local
 * HTTP server standing in for the vendors' APIs, what it saw, and settings pointing at it.
 */
#ifndef LIVEFLOW_TEST_VENDOR_API_FIXTURE_H
#define LIVEFLOW_TEST_VENDOR_API_FIXTURE_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "settings.h"
#include "vendor_api.h"

/* A stream role reading the shared topics from the start drops other suites' streams too. */
#define MAX_REQUESTS 4096
#define SECRET_ID    "AKIDtestliveflow"
#define SECRET_KEY   "test-secret-key-liveflow"
#define AGORA_ID     "agora-customer-id"
#define AGORA_SECRET "agora-customer-secret"
#define ALI_KEY_ID   "LTAItestliveflow"
#define ALI_SECRET   "alibaba-access-key-secret"
#define ARGS_MAX     24

/* One request as the server saw it. */
struct seen {
        char method[8], path[256], start[16], authorization[512], host[128], content_type[96],
                action[64], version[32], timestamp[32], region[32], body[1024];
        /* the query's arguments, decoded (Alibaba's RPC calls carry everything there) */
        char arg_names[ARGS_MAX][32], arg_values[ARGS_MAX][160];
        int arg_cnt;
};

/* A local HTTP server standing in for Tencent's API and SRS's; answers are scripted per test. */
struct server {
        struct MHD_Daemon *daemon;
        int port;
        pthread_mutex_t lock;
        struct seen seen[MAX_REQUESTS];
        int seen_cnt;
        /* Tencent: the status and body of every POST, after delay_ms */
        int tencent_status;
        const char *tencent_body;
        int delay_ms;
        /* SRS: srs_total clients, the publisher of srs_stream at srs_publisher (-1: none) */
        int srs_total, srs_publisher;
        const char *srs_stream;
        bool srs_v3; /* integer ids and no "name", as SRS 3 lists clients */
        int delete_status;
        const char *delete_body;
        /* Agora's kicking-rule and Alibaba's RPC endpoint: scripted answers */
        int agora_status;
        const char *agora_body;
        int alibaba_status;
        const char *alibaba_body;
};

extern struct server srv;

int seen_count(void);
/* A snapshot of request i (the server thread may still be appending others). */
struct seen seen_at(int i);
/* The decoded query argument name of s, or NULL. */
const char *arg_of(const struct seen *s, const char *name);
/* Settings as a consumer loads them, the vendor keys pointing at the local server. */
void load_settings(struct settings *s, bool tencent, bool srs);
/* Settings with the Agora and/or Alibaba API keys pointing at the local server. */
void load_cloud_settings(struct settings *s, bool agora, bool alibaba);
/* One vendor_api_drop_stream() through a vendor_api made from s. */
enum vendor_drop drop(const struct settings *s, const char *vendor, const char *stream_id,
                      char *err, size_t err_size);

#endif
