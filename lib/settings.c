/* settings.c: the table of LIVEFLOW_* keys and the strict parser that fills struct settings. */
#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum setting_type { SETTING_STR, SETTING_INT, SETTING_SECRET };

struct setting {
        const char *name;
        enum setting_type type;
        const char *def; /* NULL: unset by default; REQUIRED: must be given; WORKERS_REQUIRE: by
                            workers */
        long long min, max;
        size_t offset;
        unsigned users;
        const char *desc;
};

static const char REQUIRED[] = "";
/* Required by the workers; optional for the receiver, which then runs without that store. */
static const char WORKERS_REQUIRE[] = "required by the workers";

#define OFF(f) offsetof(struct settings, f)
#define R      SETTINGS_RECEIVER
#define W      SETTINGS_WORKERS
#define A      SETTINGS_ALL
#define C      SETTINGS_CONSUMER
#define T      SETTINGS_CTL

/* One row per key: name, default, (bounds,) the field it fills, its users, a description. */
/* clang-format off */
#define SET_INT(name, def, min, max, field, users, desc) \
        {name, SETTING_INT, def, min, max, OFF(field), users, desc}
#define SET_STR(name, def, field, users, desc) \
        {name, SETTING_STR, def, 0, 0, OFF(field), users, desc}
#define SET_SECRET(name, def, field, users, desc) \
        {name, SETTING_SECRET, def, 0, 0, OFF(field), users, desc}
/* clang-format on */

static const struct setting settings_table[] = {
        SET_STR("LIVEFLOW_LOG_LEVEL", "info", log_level, A, "error, warn, info or debug"),
        SET_STR("LIVEFLOW_LOG_FORMAT", "text", log_format, A,
                "text (one key=value line per event) or json (one JSON object per line)"),
        SET_STR("LIVEFLOW_ADMIN_ADDR", "127.0.0.1", admin_addr, A,
                "address of /metrics, /healthz, /readyz"),
        SET_INT("LIVEFLOW_ADMIN_PORT", "9100", 1, 65535, admin_port, A,
                "port of /metrics, /healthz, /readyz"),
        SET_STR("LIVEFLOW_KAFKA_BOOTSTRAP", REQUIRED, kafka_bootstrap, A,
                "Kafka bootstrap servers"),
        SET_STR("LIVEFLOW_INSTANCE_ID", NULL, instance_id, A,
                "stable instance name (static group membership, ids)"),
        SET_INT("LIVEFLOW_DRAIN_TIMEOUT_MS", "10000", 100, 600000, drain_timeout_ms, A,
                "deadline of the SIGTERM drain"),
        SET_SECRET("LIVEFLOW_MYSQL_URL", WORKERS_REQUIRE, mysql_url, W | R | T,
                   "mysql://user:pass@host:port/db"),
        SET_SECRET("LIVEFLOW_REDIS_URL", WORKERS_REQUIRE, redis_url, W | R | T,
                   "redis://host:port/db"),
        SET_INT("LIVEFLOW_MYSQL_TIMEOUT_S", "5", 1, 300, mysql_timeout_s, W | R | T,
                "MySQL connect/read/write timeout"),
        SET_INT("LIVEFLOW_REDIS_TIMEOUT_MS", "2000", 10, 60000, redis_timeout_ms, A,
                "Redis connect and command timeout"),
        SET_STR("LIVEFLOW_HTTP_ADDR", "127.0.0.1", http_addr, R,
                "address the receiver listens on (0.0.0.0: every interface; see README, production)"),
        SET_INT("LIVEFLOW_HTTP_PORT", "8080", 1, 65535, http_port, R,
                "port the receiver listens on"),
        SET_INT("LIVEFLOW_HTTP_THREADS", "0", 0, 64, http_threads, R,
                "event loops, each with its HTTP daemon and Kafka producer; 0: two for every three "
                "online CPUs, at least one"),
        SET_INT("LIVEFLOW_HTTP_MAX_CONNECTIONS", "1024", 1, 100000, http_max_connections, R,
                "concurrent connection limit"),
        SET_INT("LIVEFLOW_HTTP_TIMEOUT_S", "30", 1, 3600, http_timeout_s, R,
                "inactivity timeout of a connection"),
        SET_INT("LIVEFLOW_HTTP_PROBES", "0", 0, 1, http_probes, R,
                "1: also answer /metrics, /healthz, /readyz on the traffic port (default: admin only)"),
        SET_INT("LIVEFLOW_HTTP_MAX_CONNECTIONS_PER_IP", "256", 0, 100000,
                http_max_connections_per_ip, R,
                "concurrent connections from one address; 0: no limit (behind a proxy, raise it)"),
        SET_INT("LIVEFLOW_HTTP_HEADER_TIMEOUT_MS", "10000", 100, 3600000, http_header_timeout_ms, R,
                "a connection must send complete request headers within this (also idle keep-alive)"),
        SET_INT("LIVEFLOW_HTTP_REQUEST_TIMEOUT_MS", "30000", 100, 3600000, http_request_timeout_ms,
                R, "a request must send its whole body within this after its headers"),
        SET_INT("LIVEFLOW_HTTP_CONNECTION_MEMORY", "8192", 4096, 1048576, http_connection_memory, R,
                "bytes per connection for its request line and headers (431 when they do not "
                "fit, about 7 KiB at 8192) and its answer's; cleared after every request"),
        SET_INT("LIVEFLOW_MAX_BODY_BYTES", "65536", 256, 16777216, max_body_bytes, R,
                "request body limit (413 above)"),
        SET_INT("LIVEFLOW_ACK_TIMEOUT_MS", "5000", 50, 19000, ack_timeout_ms, R,
                "wait for the broker ack before 503"),
        SET_STR("LIVEFLOW_SPOOL_DIR", NULL, spool_dir, R,
                "durable spool for SRS events Kafka could not take; unset: 503 instead"),
        SET_INT("LIVEFLOW_SPOOL_MAX_BYTES", "268435456", 65536, 1099511627776LL, spool_max_bytes, R,
                "bound of the spool file"),
        SET_SECRET("LIVEFLOW_TENCENT_KEY", NULL, tencent_keys, R,
                   "Tencent callback key(s), comma-separated"),
        SET_INT("LIVEFLOW_TENCENT_GRACE_S", "900", 0, 86400, tencent_grace_s, R,
                "accept an expired t for this long (vendor retries)"),
        SET_SECRET("LIVEFLOW_TENCENT_PATH_TOKEN", NULL, tencent_path_token, R,
                   "require /callbacks/tencent/<token>"),
        SET_STR("LIVEFLOW_TENCENT_ALLOW_IPS", NULL, tencent_allow_ips, R,
                "source CIDR allowlist, comma-separated"),
        SET_SECRET("LIVEFLOW_SRS_TOKEN", NULL, srs_token, R, "?token= expected from SRS"),
        SET_SECRET("LIVEFLOW_SRS_PUBLISH_KEY", NULL, srs_publish_keys, R,
                   "on_publish anti-leech key(s) of txSecret, comma-separated; unset: no check"),
        SET_INT("LIVEFLOW_SRS_FAIL_OPEN", "1", 0, 1, srs_fail_open, R,
                "1: allow on_publish when no anchor status store answers; 0: refuse (503)"),
        SET_INT("LIVEFLOW_SRS_REQUIRE_ANCHOR", "1", 0, 1, srs_require_anchor, R,
                "1: refuse an on_publish whose push URL names no anchor_id"),
        SET_INT("LIVEFLOW_SRS_PUBLISH_UNSIGNED", "0", 0, 1, srs_publish_unsigned, R,
                "1: without LIVEFLOW_SRS_PUBLISH_KEY allow on_publish unsigned (trusted networks only); "
                "0: refuse it"),
        SET_INT("LIVEFLOW_SRS_LOOKUP_TIMEOUT_MS", "250", 10, 10000, srs_lookup_timeout_ms, R,
                "deadline of an on_publish anchor lookup (run off the HTTP threads); then "
                "LIVEFLOW_SRS_FAIL_OPEN decides"),
        SET_INT("LIVEFLOW_SRS_STORE_RETRY_MS", "1000", 0, 600000, srs_store_retry_ms, R,
                "after a store failed, skip it this long before reconnecting"),
        SET_SECRET("LIVEFLOW_AGORA_SECRET", NULL, agora_secrets, R,
                   "Agora NCS secret(s), comma-separated; unset: /callbacks/agora answers 503"),
        SET_INT("LIVEFLOW_AGORA_ACCEPT_SHA1", "0", 0, 1, agora_accept_sha1, R,
                "1: accept Agora-Signature (HMAC-SHA1) when Agora-Signature-V2 is absent"),
        SET_INT("LIVEFLOW_AGORA_MAX_AGE_S", "600", 1, 86400, agora_max_age_s, R,
                "refuse an NCS notice whose notifyMs is further than this from now"),
        SET_STR("LIVEFLOW_AGORA_ANCHOR_FROM", "channel", agora_anchor_from, R,
                "channel: anchor and room are the channel/stream name; uid: the anchor is the "
                "broadcaster's uid, the room the channel"),
        SET_SECRET(
                "LIVEFLOW_ALIBABA_KEY", NULL, alibaba_keys, R,
                "Alibaba callback auth key(s), comma-separated; unset: /callbacks/alibaba answers 503"),
        SET_STR("LIVEFLOW_ALIBABA_DOMAIN", NULL, alibaba_domains, R,
                "Alibaba ingest (push) domain(s) signed into ingest callbacks, comma-separated"),
        SET_INT("LIVEFLOW_ALIBABA_MAX_SKEW_S", "300", 1, 86400, alibaba_max_skew_s, R,
                "refuse an ALI-LIVE-TIMESTAMP further than this from now"),
        SET_SECRET("LIVEFLOW_HMAC_SECRET", NULL, hmac_secrets, R,
                   "Standard Webhooks whsec_ secret(s), comma-separated"),
        SET_INT("LIVEFLOW_WEBHOOK_TOLERANCE_S", "300", 1, 3600, webhook_tolerance_s, R,
                "webhook-timestamp tolerance, both ways"),
        SET_INT("LIVEFLOW_WEBHOOK_REPLAY_MAX", "100000", 1, 10000000, webhook_replay_max, R,
                "webhook-ids remembered against replays"),
        SET_INT("LIVEFLOW_CALLBACK_LOCK_TIMEOUT_MS", "250", 10, 10000, callback_lock_timeout_ms, R,
                "deadline of the duplicate-callback guard in Redis; past it the guard fails open"),
        SET_INT("LIVEFLOW_CALLBACK_LOCK_TTL_S", "900", 1, 86400, callback_lock_ttl_s, R,
                "a vendor callback's lock:callback key lives this long after its ack"),
        SET_INT("LIVEFLOW_MAX_AMOUNT", "100000000", 1, 9000000000000000000LL, max_amount, R,
                "largest tip or withdrawal, minor units"),
        SET_INT("LIVEFLOW_EVENTS_MAX_BATCH", "500", 1, 100000, events_max_batch, R,
                "POST /v1/events: events in one batch (413 above)"),
        SET_INT("LIVEFLOW_EVENTS_MAX_BODY_BYTES", "1048576", 256, 67108864, events_max_body_bytes,
                R, "POST /v1/events: body limit (413 above)"),
        SET_STR("LIVEFLOW_ROLE", NULL, role, SETTINGS_CONSUMER,
                "consumer role (or the first argument)"),
        SET_STR("LIVEFLOW_GROUP_ID", NULL, group_id, W, "consumer group; default liveflow.<role>"),
        SET_INT("LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS", "45000", 1000, 3600000, session_timeout_ms,
                W | T, "consumer group session timeout"),
        SET_INT("LIVEFLOW_BATCH_MAX", "500", 1, 100000, batch_max, W,
                "records per batch transaction"),
        SET_INT("LIVEFLOW_BATCH_WAIT_MS", "20", 0, 10000, batch_wait_ms, W,
                "how long to fill a batch"),
        SET_INT("LIVEFLOW_RETRY_BACKOFF_MS", "200", 0, 60000, retry_backoff_ms, W,
                "first retry delay, doubled per attempt"),
        SET_INT("LIVEFLOW_LEAVE_ON_STOP", "1", 0, 1, leave_on_stop, W,
                "1: a copy with LIVEFLOW_INSTANCE_ID leaves its group on SIGTERM (partitions handed over at "
                "once); 0: keeps them for its session timeout (rolling restarts)"),
        SET_INT("LIVEFLOW_CONSUMER_LANES", "1", 1, 64, consumer_lanes, W,
                "group members (lanes) the process runs, each on its own thread with its own "
                "MySQL, Redis and Kafka connections; raise it (to 2 on a 2-core host) when a "
                "role's batches wait on MySQL while a core is idle"),
        SET_INT("LIVEFLOW_STORE_BACKOFF_MAX_MS", "5000", 10, 600000, store_backoff_max_ms, W,
                "longest wait between probes of an unavailable MySQL or Redis (partitions held)"),
        SET_INT("LIVEFLOW_LIVE_TTL_S", "86400", 60, 31536000, live_ttl_s, W | T,
                "TTL of temp:live:{stream_id}"),
        /* audit role: a verdict's grade from its suggestion, score and label (consumers/audit.h) */
        SET_INT("LIVEFLOW_AUDIT_WARN_SCORE", "60", 0, 100, audit_warn_score, C,
                "verdicts scoring below this are not punished"),
        SET_INT("LIVEFLOW_AUDIT_SUSPEND_SCORE", "90", 0, 100, audit_suspend_score, C,
                "a Block scoring at least this suspends"),
        SET_STR("LIVEFLOW_AUDIT_BAN_LABELS", "Polity,Terror", audit_ban_labels, C,
                "labels whose Block bans for good, comma-separated"),
        SET_INT("LIVEFLOW_AUDIT_SUSPEND_S", "86400", 60, 31536000, audit_suspend_s, C,
                "length of a suspension"),
        SET_INT("LIVEFLOW_AUDIT_WARN_ESCALATE", "3", 1, 1000, audit_warn_escalate, C,
                "warnings within the window that suspend"),
        SET_INT("LIVEFLOW_AUDIT_WARN_WINDOW_S", "86400", 60, 31536000, audit_warn_window_s, C,
                "window of the warning count, by event time"),
        SET_INT("LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S", "300", 5, 86400, audience_visit_timeout_s, C,
                "audience role: a visit with no heartbeat for this long is closed (at its last sign)"),
        SET_INT("LIVEFLOW_AUDIENCE_SWEEP_INTERVAL_S", "10", 1, 3600, audience_sweep_interval_s, C,
                "audience role: how often timed-out visits are closed"),
        SET_INT("LIVEFLOW_AUDIENCE_RANK_INTERVAL_S", "600", 1, 86400, audience_rank_interval_s, C,
                "audience role: live:rank:hot is recomputed this often, over this much of the past"),
        SET_INT("LIVEFLOW_AUDIENCE_KEEP_DAYS", "8", 1, 3650, audience_keep_days, C,
                "audience role: event ids (replay protection) and closed visits are kept this long"),
        SET_INT("LIVEFLOW_AUDIENCE_RANK_SIZE", "100", 1, 100000, audience_rank_size, C,
                "audience role: rooms kept in live:rank:hot"),
        SET_INT("LIVEFLOW_STREAM_GHOST_SILENCE_S", "21600", 0, 31536000, stream_ghost_silence_s, C,
                "stream role: close a live stream with no stream event for this long; 0: never"),
        SET_INT("LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S", "86400", 1, 31536000,
                stream_ghost_unverified_s, C,
                "stream role: a silent stream whose vendor cannot be asked is closed only after this"),
        SET_INT("LIVEFLOW_STREAM_SWEEP_INTERVAL_S", "60", 1, 86400, stream_sweep_interval_s, C,
                "stream role: how often the ghost sweep runs"),
        /* vendor APIs: dropping a force-closed stream (consumers/vendor_api.h); unset skips the
           drop */
        SET_STR("LIVEFLOW_TENCENT_API_ENDPOINT", "https://live.tencentcloudapi.com",
                tencent_api_endpoint, C, "Tencent Cloud API 3.0 endpoint of CSS"),
        SET_SECRET("LIVEFLOW_TENCENT_SECRET_ID", NULL, tencent_secret_id, C,
                   "Tencent Cloud API SecretId"),
        SET_SECRET("LIVEFLOW_TENCENT_SECRET_KEY", NULL, tencent_secret_key, C,
                   "Tencent Cloud API SecretKey"),
        SET_STR("LIVEFLOW_TENCENT_REGION", NULL, tencent_region, C,
                "X-TC-Region of API calls (optional for CSS)"),
        SET_STR("LIVEFLOW_TENCENT_PUSH_DOMAIN", NULL, tencent_push_domain, C,
                "push domain (DomainName of DropLiveStream)"),
        SET_STR("LIVEFLOW_TENCENT_APP", "live", tencent_app, C,
                "push path (AppName of DropLiveStream)"),
        SET_STR("LIVEFLOW_AGORA_API_ENDPOINT", "https://api.agora.io", agora_api_endpoint, C,
                "Agora RESTful API (kicking-rule) endpoint"),
        SET_SECRET("LIVEFLOW_AGORA_CUSTOMER_ID", NULL, agora_customer_id, C,
                   "Agora RESTful API customer ID (HTTP Basic user)"),
        SET_SECRET("LIVEFLOW_AGORA_CUSTOMER_SECRET", NULL, agora_customer_secret, C,
                   "Agora RESTful API customer secret (HTTP Basic password)"),
        SET_STR("LIVEFLOW_AGORA_APP_ID", NULL, agora_app_id, C,
                "Agora App ID of the channels (appid of a kicking rule)"),
        SET_INT("LIVEFLOW_AGORA_KICK_S", "0", 0, 86430, agora_kick_s, C,
                "a forced close keeps the channel closed this long; 0: cut only, rejoin at once"),
        SET_STR("LIVEFLOW_ALIBABA_API_ENDPOINT", "https://live.aliyuncs.com", alibaba_api_endpoint,
                C, "Alibaba Cloud ApsaraVideo Live API endpoint"),
        SET_SECRET("LIVEFLOW_ALIBABA_ACCESS_KEY_ID", NULL, alibaba_access_key_id, C,
                   "Alibaba Cloud AccessKey ID"),
        SET_SECRET("LIVEFLOW_ALIBABA_ACCESS_KEY_SECRET", NULL, alibaba_access_key_secret, C,
                   "Alibaba Cloud AccessKey secret"),
        SET_STR("LIVEFLOW_ALIBABA_PUSH_DOMAIN", NULL, alibaba_push_domain, C,
                "ingest domain (DomainName of ForbidLiveStream)"),
        SET_STR("LIVEFLOW_ALIBABA_APP", "live", alibaba_app, C,
                "application (AppName of ForbidLiveStream)"),
        SET_STR("LIVEFLOW_ALIBABA_REGION", NULL, alibaba_region, C,
                "RegionId of API calls (optional)"),
        SET_STR("LIVEFLOW_SRS_PLAYBACK_BASE", NULL, srs_playback_base, C,
                "public base URL of SRS recordings (live.notify record.ready); unset: no playback URL"),
        SET_STR("LIVEFLOW_SRS_API_ENDPOINT", NULL, srs_api_endpoint, C,
                "SRS HTTP API, e.g. http://127.0.0.1:1985"),
        SET_INT("LIVEFLOW_VENDOR_API_TIMEOUT_MS", "5000", 100, 60000, vendor_api_timeout_ms, C,
                "whole-call timeout of a vendor API request"),
        /* reward-sync role (consumers/reward_sync.h) */
        SET_INT("LIVEFLOW_REWARD_FLUSH_TIPS", "100", 1, 1000000, reward_flush_tips, C,
                "fold a room's tips into live_room_realtime at this many"),
        SET_INT("LIVEFLOW_REWARD_FLUSH_S", "300", 1, 86400, reward_flush_s, C,
                "... or once its oldest unfolded tip is this old"),
        SET_INT("LIVEFLOW_REWARD_DEDUP_TTL_S", "604800", 60, 31536000, reward_dedup_ttl_s, C,
                "how long Redis remembers that a tip was counted"),
        SET_INT("LIVEFLOW_REWARD_STATS_TTL_S", "604800", 60, 31536000, reward_stats_ttl_s, C | T,
                "live:stats:{session_id} expires this long after its last tip"),
        /* settlement worker: revenue split and session summaries (settlement-worker/settlement.h)
         */
        SET_INT("LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP", "5000", 0, 10000,
                settlement_default_ratio_bp, SETTINGS_SETTLEMENT,
                "anchor's share in basis points when revenue_share has no row"),
        SET_INT("LIVEFLOW_SETTLEMENT_RECOMPUTE_S", "900", 0, 604800, settlement_recompute_s,
                SETTINGS_SETTLEMENT,
                "sessions ended within this many seconds are summed again (late recharge rows); 0: never"),
        SET_INT("LIVEFLOW_SETTLEMENT_SWEEP_MS", "10000", 100, 3600000, settlement_sweep_ms,
                SETTINGS_SETTLEMENT, "how often the session summaries are summed again"),
        /* stats worker: hourly tips, audience profiles, session statistics (stats-worker/stats.h)
         */
        SET_INT("LIVEFLOW_STATS_PROFILE_INTERVAL_S", "7200", 1, 2678400, stats_profile_interval_s,
                SETTINGS_STATS | T, "audience_profile is computed once per period of this length"),
        SET_INT("LIVEFLOW_STATS_PROFILE_HIGH_PCT", "90", 1, 99, stats_profile_high_pct,
                SETTINGS_STATS | T, "spenders above this percentile are high"),
        SET_INT("LIVEFLOW_STATS_PROFILE_MID_PCT", "50", 0, 98, stats_profile_mid_pct,
                SETTINGS_STATS | T, "... above this one mid, the rest low"),
        SET_INT("LIVEFLOW_STATS_PROFILE_LOCK_TTL_S", "600", 1, 86400, stats_profile_lock_ttl_s,
                SETTINGS_STATS | T,
                "lifetime of a period's profiling lock; also the longest a profiling statement may run"),
        SET_INT("LIVEFLOW_AFFINITY_INTERVAL_S", "7200", 1, 2678400, affinity_interval_s,
                SETTINGS_STATS | T, "tag_affinity is computed once per period of this length"),
        SET_INT("LIVEFLOW_AFFINITY_WINDOW_DAYS", "30", 1, 3650, affinity_window_days,
                SETTINGS_STATS | T,
                "tips and watch time of this many days count toward tag_affinity"),
        SET_INT("LIVEFLOW_AFFINITY_TIP_WEIGHT", "2", 0, 1000, affinity_tip_weight,
                SETTINGS_STATS | T, "weight of the tip share in a tag_affinity score"),
        SET_INT("LIVEFLOW_AFFINITY_WATCH_WEIGHT", "1", 0, 1000, affinity_watch_weight,
                SETTINGS_STATS | T, "weight of the watch time share in a tag_affinity score"),
        SET_INT("LIVEFLOW_STATS_LATE_S", "3600", 0, 604800, stats_late_s, SETTINGS_STATS,
                "tips and viewers arriving this long after their session's end still update live_statistics"),
        /* liveflow-ctl: broker waits, dlq replay progress, topics create (ops/ctl/) */
        SET_INT("LIVEFLOW_CTL_TIMEOUT_MS", "10000", 100, 600000, ctl_timeout_ms, T,
                "how long liveflow-ctl waits for one broker request"),
        SET_STR("LIVEFLOW_CTL_REPLAY_GROUP", "liveflow.ctl.dlq-replay", ctl_replay_group, T,
                "group whose committed offsets are the dlq replay progress"),
        SET_INT("LIVEFLOW_TOPIC_PARTITIONS", "6", 1, 10000, topic_partitions, T,
                "partitions of a topic liveflow-ctl creates"),
        SET_INT("LIVEFLOW_TOPIC_REPLICATION_FACTOR", "3", 1, 32, topic_replication, T,
                "replication factor of a topic liveflow-ctl creates"),
        SET_INT("LIVEFLOW_TOPIC_MIN_INSYNC_REPLICAS", "2", 1, 32, topic_min_insync, T,
                "min.insync.replicas of a topic liveflow-ctl creates (acks=all waits for these)"),
        SET_INT("LIVEFLOW_TOPIC_RETENTION_MS", "604800000", 60000, 31536000000LL,
                topic_retention_ms, T, "retention.ms of the event topics"),
        SET_INT("LIVEFLOW_DLQ_RETENTION_MS", "2592000000", 60000, 31536000000LL,
                topic_dlq_retention_ms, T, "retention.ms of the .dlq topics"),
        {"LIVEFLOW_ENV_FILE", SETTING_STR, NULL, 0, 0, 0, 0,
         "liveflow-ctl: file of export LIVEFLOW_...= lines (default .run/env when present)"},
        {"LIVEFLOW_CONFIG_FILE", SETTING_STR, NULL, 0, 0, 0, 0, "optional KEY = value file"},
};

#undef SET_INT
#undef SET_STR
#undef SET_SECRET
#undef R
#undef W
#undef A
#undef C
#undef T

#define TABLE_LEN   (sizeof(settings_table) / sizeof(settings_table[0]))
#define PROP_PREFIX "LIVEFLOW_KAFKA_PROP_"

extern char **environ;

/* A key=value pair from the optional config file. */
struct file_entry {
        char *key;
        char *value;
};

struct source {
        struct file_entry *file;
        size_t file_cnt;
};

static char *trim(char *s)
{
        char *e;

        while (isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

static void source_fini(struct source *src)
{
        for (size_t i = 0; i < src->file_cnt; i++) {
                free(src->file[i].key);
                free(src->file[i].value);
        }
        free(src->file);
}

static int source_add(struct source *src, const char *key, const char *value)
{
        struct file_entry *n = realloc(src->file, (src->file_cnt + 1) * sizeof(*n));

        if (!n)
                return -1;
        src->file = n;
        n[src->file_cnt].key = strdup(key);
        n[src->file_cnt].value = strdup(value);
        src->file_cnt++;
        return 0;
}

/* Reads KEY = value lines; '#' starts a comment. Errors name file:line. */
static int source_read_file(struct source *src, const char *path, char *errstr, size_t errstr_size)
{
        FILE *f = fopen(path, "r");
        char line[4096];
        int lineno = 0;

        if (!f) {
                snprintf(errstr, errstr_size, "LIVEFLOW_CONFIG_FILE: %s: %s", path,
                         strerror(errno));
                return -1;
        }
        while (fgets(line, sizeof(line), f)) {
                char *s = trim(line), *eq;

                lineno++;
                if (!*s || *s == '#')
                        continue;
                if (!(eq = strchr(s, '=')) || strncmp(s, "LIVEFLOW_", 9) != 0) {
                        snprintf(errstr, errstr_size, "%s:%d: expected LIVEFLOW_KEY = value", path,
                                 lineno);
                        fclose(f);
                        return -1;
                }
                *eq = '\0';
                if (source_add(src, trim(s), trim(eq + 1)) == -1) {
                        fclose(f);
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
        }
        fclose(f);
        return 0;
}

static const char *source_get(const struct source *src, const char *key)
{
        const char *v = getenv(key);

        if (v)
                return v;
        for (size_t i = 0; i < src->file_cnt; i++)
                if (strcmp(src->file[i].key, key) == 0)
                        return src->file[i].value;
        return NULL;
}

static int parse_int(const char *v, long long *out)
{
        char *end;

        errno = 0;
        if (!*v || isspace((unsigned char)*v))
                return -1;
        *out = strtoll(v, &end, 10);
        return errno || *end ? -1 : 0;
}

static int apply_one(struct settings *s, const struct setting *k, const char *v, char *errstr,
                     size_t errstr_size)
{
        char *base = (char *)s;

        if (k->type == SETTING_INT) {
                long long n;

                if (parse_int(v, &n) == -1) {
                        snprintf(errstr, errstr_size, "%s: \"%s\" is not an integer", k->name, v);
                        return -1;
                }
                if (n < k->min || n > k->max) {
                        snprintf(errstr, errstr_size, "%s: %lld is outside %lld..%lld", k->name, n,
                                 k->min, k->max);
                        return -1;
                }
                *(long long *)(base + k->offset) = n;
                return 0;
        }
        char **dst = (char **)(base + k->offset);

        free(*dst);
        if (!(*dst = strdup(v))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

static int load_table(struct settings *s, const struct source *src, unsigned user, char *errstr,
                      size_t errstr_size)
{
        for (size_t i = 0; i < TABLE_LEN; i++) {
                const struct setting *k = &settings_table[i];
                const char *v;

                if (!(k->users & user))
                        continue;
                v = source_get(src, k->name);
                if (!v || !*v) {
                        if (k->def == REQUIRED ||
                            (k->def == WORKERS_REQUIRE && (user & SETTINGS_WORKERS))) {
                                snprintf(errstr, errstr_size, "%s is not set (%s)", k->name,
                                         k->desc);
                                return -1;
                        }
                        if (k->def == WORKERS_REQUIRE || !(v = k->def))
                                continue;
                }
                if (apply_one(s, k, v, errstr, errstr_size) == -1)
                        return -1;
        }
        return 0;
}

/* LIVEFLOW_KAFKA_PROP_SECURITY_PROTOCOL=x becomes security.protocol=x. */
static int add_kafka_prop(struct settings *s, const char *key, const char *value)
{
        struct kafka_prop *n = realloc(s->kafka_props, (s->kafka_prop_cnt + 1) * sizeof(*n));
        char *name;

        if (!n)
                return -1;
        s->kafka_props = n;
        if (!(name = strdup(key + strlen(PROP_PREFIX))))
                return -1;
        for (char *p = name; *p; p++)
                *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        n[s->kafka_prop_cnt].name = name;
        if (!(n[s->kafka_prop_cnt].value = strdup(value))) {
                free(name);
                return -1;
        }
        s->kafka_prop_cnt++;
        return 0;
}

static bool is_known_key(const char *key)
{
        for (size_t i = 0; i < TABLE_LEN; i++)
                if (strcmp(settings_table[i].name, key) == 0)
                        return true;
        return strncmp(key, PROP_PREFIX, strlen(PROP_PREFIX)) == 0 ||
               strncmp(key, "LIVEFLOW_STACK_", 15) == 0 ||
               strncmp(key, "LIVEFLOW_TEST_", 14) == 0 ||
               strncmp(key, "LIVEFLOW_DEVBROKER_", 19) == 0 ||
               strcmp(key, "LIVEFLOW_RECEIVER_URL") == 0;
}

/* Collects Kafka properties and warns about keys no table knows (likely typos). */
static int scan_keys(struct settings *s, const struct source *src, char *errstr, size_t errstr_size)
{
        for (char **e = environ; *e; e++) {
                char key[256];
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : 0;

                if (!eq || n >= sizeof(key) || strncmp(*e, "LIVEFLOW_", 9) != 0)
                        continue;
                memcpy(key, *e, n);
                key[n] = '\0';
                if (strncmp(key, PROP_PREFIX, strlen(PROP_PREFIX)) == 0 &&
                    n > strlen(PROP_PREFIX)) {
                        if (add_kafka_prop(s, key, eq + 1) == -1) {
                                snprintf(errstr, errstr_size, "out of memory");
                                return -1;
                        }
                } else if (!is_known_key(key)) {
                        log_warn(NULL, "unknown configuration key %s ignored", key);
                }
        }
        for (size_t i = 0; i < src->file_cnt; i++) {
                if (strncmp(src->file[i].key, PROP_PREFIX, strlen(PROP_PREFIX)) == 0 &&
                    !getenv(src->file[i].key) &&
                    add_kafka_prop(s, src->file[i].key, src->file[i].value) == -1)
                        return -1;
                if (!is_known_key(src->file[i].key))
                        log_warn(NULL, "unknown configuration key %s ignored", src->file[i].key);
        }
        return 0;
}

/* Rules between keys that the table's per-key bounds cannot say. */
static int check_relations(const struct settings *s, unsigned user, char *errstr,
                           size_t errstr_size)
{
        if ((user & SETTINGS_CONSUMER) && s->audit_suspend_score < s->audit_warn_score) {
                snprintf(
                        errstr, errstr_size,
                        "LIVEFLOW_AUDIT_SUSPEND_SCORE: %lld is below LIVEFLOW_AUDIT_WARN_SCORE %lld",
                        s->audit_suspend_score, s->audit_warn_score);
                return -1;
        }
        if ((user & SETTINGS_STATS) && s->affinity_tip_weight + s->affinity_watch_weight == 0) {
                snprintf(
                        errstr, errstr_size,
                        "LIVEFLOW_AFFINITY_TIP_WEIGHT and LIVEFLOW_AFFINITY_WATCH_WEIGHT are both 0");
                return -1;
        }
        if ((user & SETTINGS_STATS) && s->stats_profile_mid_pct >= s->stats_profile_high_pct) {
                snprintf(
                        errstr, errstr_size,
                        "LIVEFLOW_STATS_PROFILE_MID_PCT: %lld is not below LIVEFLOW_STATS_PROFILE_HIGH_PCT %lld",
                        s->stats_profile_mid_pct, s->stats_profile_high_pct);
                return -1;
        }
        return 0;
}

int settings_load(struct settings *s, unsigned user, char *errstr, size_t errstr_size)
{
        struct source src = {0};
        const char *file = getenv("LIVEFLOW_CONFIG_FILE");
        int rc = -1;

        memset(s, 0, sizeof(*s));
        if (file && *file && source_read_file(&src, file, errstr, errstr_size) == -1)
                goto out;
        if (load_table(s, &src, user, errstr, errstr_size) == -1)
                goto out;
        if (log_level_parse(s->log_level) == -1) {
                snprintf(errstr, errstr_size,
                         "LIVEFLOW_LOG_LEVEL: \"%s\" is not error, warn, info or debug",
                         s->log_level);
                goto out;
        }
        if (check_relations(s, user, errstr, errstr_size) == -1)
                goto out;
        if (scan_keys(s, &src, errstr, errstr_size) == -1)
                goto out;
        rc = 0;
out:
        source_fini(&src);
        return rc;
}

void settings_fini(struct settings *s)
{
        char *base = (char *)s;

        for (size_t i = 0; i < TABLE_LEN; i++) {
                if (settings_table[i].type != SETTING_INT && settings_table[i].users) {
                        char **p = (char **)(base + settings_table[i].offset);

                        free(*p);
                        *p = NULL;
                }
        }
        for (size_t i = 0; i < s->kafka_prop_cnt; i++) {
                free(s->kafka_props[i].name);
                free(s->kafka_props[i].value);
        }
        free(s->kafka_props);
        s->kafka_props = NULL;
        s->kafka_prop_cnt = 0;
}

/* The processes that read a key, for the example file's comments. */
static void users_text(unsigned users, char *out, size_t size)
{
        static const struct {
                unsigned bit;
                const char *name;
        } names[] = {{SETTINGS_RECEIVER, "receiver"},
                     {SETTINGS_CONSUMER, "consumer"},
                     {SETTINGS_SETTLEMENT, "settlement"},
                     {SETTINGS_STATS, "stats"},
                     {SETTINGS_CTL, "ctl"}};
        size_t o = 0;

        out[0] = '\0';
        if ((users & SETTINGS_ALL) == SETTINGS_ALL) {
                snprintf(out, size, "every process");
                return;
        }
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && o < size; i++)
                if (users & names[i].bit)
                        o += (size_t)snprintf(out + o, size - o, "%s%s", o ? ", " : "",
                                              names[i].name);
}

void settings_write_example(FILE *out)
{
        fprintf(out,
                "# liveflow environment file: every LIVEFLOW_* setting with its default.\n"
                "# Generated from lib/settings.c's table (tests/ops/test_deploy.c keeps it so).\n"
                "# Lines left commented keep the default; uncomment to change one. Keys left\n"
                "# open (KEY=) must be given. Any LIVEFLOW_KAFKA_PROP_<NAME> is passed to\n"
                "# librdkafka as <name>, '_' read as '.'.\n");
        for (size_t i = 0; i < TABLE_LEN; i++) {
                const struct setting *k = &settings_table[i];
                char users[96];

                users_text(k->users ? k->users : SETTINGS_ALL, users, sizeof(users));
                fprintf(out, "\n# %s", k->desc);
                if (k->type == SETTING_INT)
                        fprintf(out, " [%lld..%lld]", k->min, k->max);
                if (k->type == SETTING_SECRET)
                        fprintf(out, " (secret)");
                fprintf(out, "\n# read by: %s\n", users);
                if (k->def == REQUIRED)
                        fprintf(out, "%s=\n", k->name);
                else if (k->def == WORKERS_REQUIRE)
                        fprintf(out, "# required by the workers\n%s=\n", k->name);
                else
                        fprintf(out, "#%s=%s\n", k->name, k->def ? k->def : "");
        }
}

void settings_dump(const struct settings *s, unsigned user, char *out, size_t out_size)
{
        const char *base = (const char *)s;
        size_t o = 0;

        out[0] = '\0';
        for (size_t i = 0; i < TABLE_LEN && o < out_size; i++) {
                const struct setting *k = &settings_table[i];
                int n;

                if (!(k->users & user))
                        continue;
                if (k->type == SETTING_INT)
                        n = snprintf(out + o, out_size - o, "%s=%lld\n", k->name,
                                     *(const long long *)(base + k->offset));
                else {
                        const char *v = *(char *const *)(base + k->offset);

                        n = snprintf(out + o, out_size - o, "%s=%s\n", k->name,
                                     !v                          ? ""
                                     : k->type == SETTING_SECRET ? "***"
                                                                 : v);
                }
                if (n < 0)
                        return;
                o += (size_t)n;
        }
}

/* Removes one level of matching single or double quotes around a shell value. */
static char *unquote(char *v)
{
        size_t n = strlen(v);

        if (n >= 2 && (v[0] == '\'' || v[0] == '"') && v[n - 1] == v[0]) {
                v[n - 1] = '\0';
                return v + 1;
        }
        return v;
}

int settings_import_env_file(const char *path, char *errstr, size_t errstr_size)
{
        FILE *f = fopen(path, "r");
        char line[4096];

        if (!f) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return -1;
        }
        while (fgets(line, sizeof(line), f)) {
                char *s = trim(line), *eq;

                if (strncmp(s, "export ", 7) == 0)
                        s = trim(s + 7);
                if (strncmp(s, "LIVEFLOW_", 9) != 0 || !(eq = strchr(s, '=')))
                        continue;
                *eq = '\0';
                if (setenv(trim(s), unquote(trim(eq + 1)), 0) == -1) {
                        snprintf(errstr, errstr_size, "%s: %s: %s", path, s, strerror(errno));
                        fclose(f);
                        return -1;
                }
        }
        fclose(f);
        return 0;
}
