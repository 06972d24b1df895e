/* settings.h: every LIVEFLOW_* configuration key, parsed once from the environment. */
#ifndef LIVEFLOW_SETTINGS_H
#define LIVEFLOW_SETTINGS_H

#include <stddef.h>

/* Which processes read a key; a key is validated only by the processes that use it. */
enum settings_user {
        SETTINGS_RECEIVER = 1 << 0,
        SETTINGS_CONSUMER = 1 << 1,
        SETTINGS_SETTLEMENT = 1 << 2,
        SETTINGS_STATS = 1 << 3,
        SETTINGS_WORKERS = SETTINGS_CONSUMER | SETTINGS_SETTLEMENT | SETTINGS_STATS,
        SETTINGS_ALL = 0xff,
};

struct kafka_prop {
        char *name;  /* librdkafka property, e.g. "security.protocol" */
        char *value;
};

/* The parsed configuration. Strings are owned (settings_fini frees them); NULL when unset. */
struct settings {
        /* every process */
        char *log_level;
        char *admin_addr;
        long long admin_port;
        char *kafka_bootstrap;
        char *instance_id;
        long long drain_timeout_ms;
        struct kafka_prop *kafka_props;
        size_t kafka_prop_cnt;
        /* stores */
        char *mysql_url;
        char *redis_url;
        long long mysql_timeout_s;
        long long redis_timeout_ms;
        /* receiver */
        char *http_addr;
        long long http_port;
        long long http_threads;
        long long http_max_connections;
        long long http_timeout_s;
        long long max_body_bytes;
        long long ack_timeout_ms;
        char *tencent_keys;       /* comma-separated: several may be valid during rotation */
        long long tencent_grace_s;
        char *tencent_path_token;
        char *tencent_allow_ips;
        char *srs_token;
        char *hmac_secrets;       /* comma-separated whsec_ secrets */
        long long webhook_tolerance_s;
        long long max_amount;
        /* consumers and workers */
        char *role;
        char *group_id;           /* overrides liveflow.<role> (shadow or test consumers) */
        long long session_timeout_ms;
        long long batch_max;
        long long batch_wait_ms;
        long long retry_backoff_ms;
        long long live_ttl_s;
};

/**
 * @brief Loads the keys used by `user` from the environment, then from the optional
 * LIVEFLOW_CONFIG_FILE (KEY = value lines; the environment wins). Unknown LIVEFLOW_* keys
 * are logged as warnings. @returns 0, or -1 with errstr naming the key and value
 * (e.g. `LIVEFLOW_HTTP_PORT: "80x" is not an integer`). Call settings_fini() in both cases.
 */
__attribute__((warn_unused_result)) int settings_load(struct settings *s, unsigned user,
                                                      char *errstr, size_t errstr_size);

/** @brief Frees what settings_load() allocated; safe on a zeroed or half-loaded struct. */
void settings_fini(struct settings *s);

/** @brief Writes "KEY=value" for every key `user` reads, secrets masked, one per line. */
void settings_dump(const struct settings *s, unsigned user, char *out, size_t out_size);

#endif
