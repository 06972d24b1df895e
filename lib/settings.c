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

/* One row per key: name, type, default, bounds, field, users, description. */
static const struct setting settings_table[] = {
        {"LIVEFLOW_LOG_LEVEL", SETTING_STR, "info", 0, 0, OFF(log_level), A,
         "error, warn, info or debug"},
        {"LIVEFLOW_LOG_FORMAT", SETTING_STR, "text", 0, 0, OFF(log_format), A,
         "text (one key=value line per event) or json (one JSON object per line)"},
        {"LIVEFLOW_ADMIN_ADDR", SETTING_STR, "127.0.0.1", 0, 0, OFF(admin_addr), A,
         "address of /metrics, /healthz, /readyz"},
        {"LIVEFLOW_ADMIN_PORT", SETTING_INT, "9100", 1, 65535, OFF(admin_port), A,
         "port of /metrics, /healthz, /readyz"},
        {"LIVEFLOW_KAFKA_BOOTSTRAP", SETTING_STR, REQUIRED, 0, 0, OFF(kafka_bootstrap), A,
         "Kafka bootstrap servers"},
        {"LIVEFLOW_INSTANCE_ID", SETTING_STR, NULL, 0, 0, OFF(instance_id), A,
         "stable instance name (static group membership, ids)"},
        {"LIVEFLOW_DRAIN_TIMEOUT_MS", SETTING_INT, "10000", 100, 600000, OFF(drain_timeout_ms), A,
         "deadline of the SIGTERM drain"},
        {"LIVEFLOW_MYSQL_URL", SETTING_SECRET, WORKERS_REQUIRE, 0, 0, OFF(mysql_url), W | R | T,
         "mysql://user:pass@host:port/db"},
        {"LIVEFLOW_REDIS_URL", SETTING_SECRET, WORKERS_REQUIRE, 0, 0, OFF(redis_url), W | R | T,
         "redis://host:port/db"},
        {"LIVEFLOW_MYSQL_TIMEOUT_S", SETTING_INT, "5", 1, 300, OFF(mysql_timeout_s), W | R | T,
         "MySQL connect/read/write timeout"},
        {"LIVEFLOW_REDIS_TIMEOUT_MS", SETTING_INT, "2000", 10, 60000, OFF(redis_timeout_ms), A,
         "Redis connect and command timeout"},
        {"LIVEFLOW_HTTP_ADDR", SETTING_STR, "127.0.0.1", 0, 0, OFF(http_addr), R,
         "address the receiver listens on (0.0.0.0: every interface; see README, production)"},
        {"LIVEFLOW_HTTP_PORT", SETTING_INT, "8080", 1, 65535, OFF(http_port), R,
         "port the receiver listens on"},
        {"LIVEFLOW_HTTP_THREADS", SETTING_INT, "0", 0, 64, OFF(http_threads), R,
         "event loops, each with its HTTP daemon and Kafka producer; 0: one per online CPU"},
        {"LIVEFLOW_HTTP_MAX_CONNECTIONS", SETTING_INT, "1024", 1, 100000, OFF(http_max_connections),
         R, "concurrent connection limit"},
        {"LIVEFLOW_HTTP_TIMEOUT_S", SETTING_INT, "30", 1, 3600, OFF(http_timeout_s), R,
         "inactivity timeout of a connection"},
        {"LIVEFLOW_HTTP_PROBES", SETTING_INT, "0", 0, 1, OFF(http_probes), R,
         "1: also answer /metrics, /healthz, /readyz on the traffic port (default: admin only)"},
        {"LIVEFLOW_HTTP_MAX_CONNECTIONS_PER_IP", SETTING_INT, "256", 0, 100000,
         OFF(http_max_connections_per_ip), R,
         "concurrent connections from one address; 0: no limit (behind a proxy, raise it)"},
        {"LIVEFLOW_HTTP_HEADER_TIMEOUT_MS", SETTING_INT, "10000", 100, 3600000,
         OFF(http_header_timeout_ms), R,
         "a connection must send complete request headers within this (also idle keep-alive)"},
        {"LIVEFLOW_HTTP_REQUEST_TIMEOUT_MS", SETTING_INT, "30000", 100, 3600000,
         OFF(http_request_timeout_ms), R,
         "a request must send its whole body within this after its headers"},
        {"LIVEFLOW_MAX_BODY_BYTES", SETTING_INT, "65536", 256, 16777216, OFF(max_body_bytes), R,
         "request body limit (413 above)"},
        {"LIVEFLOW_ACK_TIMEOUT_MS", SETTING_INT, "5000", 50, 19000, OFF(ack_timeout_ms), R,
         "wait for the broker ack before 503"},
        {"LIVEFLOW_SPOOL_DIR", SETTING_STR, NULL, 0, 0, OFF(spool_dir), R,
         "durable spool for SRS events Kafka could not take; unset: 503 instead"},
        {"LIVEFLOW_SPOOL_MAX_BYTES", SETTING_INT, "268435456", 65536, 1099511627776LL,
         OFF(spool_max_bytes), R, "bound of the spool file"},
        {"LIVEFLOW_TENCENT_KEY", SETTING_SECRET, NULL, 0, 0, OFF(tencent_keys), R,
         "Tencent callback key(s), comma-separated"},
        {"LIVEFLOW_TENCENT_GRACE_S", SETTING_INT, "900", 0, 86400, OFF(tencent_grace_s), R,
         "accept an expired t for this long (vendor retries)"},
        {"LIVEFLOW_TENCENT_PATH_TOKEN", SETTING_SECRET, NULL, 0, 0, OFF(tencent_path_token), R,
         "require /callbacks/tencent/<token>"},
        {"LIVEFLOW_TENCENT_ALLOW_IPS", SETTING_STR, NULL, 0, 0, OFF(tencent_allow_ips), R,
         "source CIDR allowlist, comma-separated"},
        {"LIVEFLOW_SRS_TOKEN", SETTING_SECRET, NULL, 0, 0, OFF(srs_token), R,
         "?token= expected from SRS"},
        {"LIVEFLOW_SRS_PUBLISH_KEY", SETTING_SECRET, NULL, 0, 0, OFF(srs_publish_keys), R,
         "on_publish anti-leech key(s) of txSecret, comma-separated; unset: no check"},
        {"LIVEFLOW_SRS_FAIL_OPEN", SETTING_INT, "1", 0, 1, OFF(srs_fail_open), R,
         "1: allow on_publish when no anchor status store answers; 0: refuse (503)"},
        {"LIVEFLOW_SRS_REQUIRE_ANCHOR", SETTING_INT, "1", 0, 1, OFF(srs_require_anchor), R,
         "1: refuse an on_publish whose push URL names no anchor_id"},
        {"LIVEFLOW_SRS_PUBLISH_UNSIGNED", SETTING_INT, "0", 0, 1, OFF(srs_publish_unsigned), R,
         "1: without LIVEFLOW_SRS_PUBLISH_KEY allow on_publish unsigned (trusted networks only); "
         "0: refuse it"},
        {"LIVEFLOW_SRS_LOOKUP_TIMEOUT_MS", SETTING_INT, "250", 10, 10000,
         OFF(srs_lookup_timeout_ms), R,
         "deadline of an on_publish anchor lookup (run off the HTTP threads); then "
         "LIVEFLOW_SRS_FAIL_OPEN decides"},
        {"LIVEFLOW_SRS_STORE_RETRY_MS", SETTING_INT, "1000", 0, 600000, OFF(srs_store_retry_ms), R,
         "after a store failed, skip it this long before reconnecting"},
        {"LIVEFLOW_AGORA_SECRET", SETTING_SECRET, NULL, 0, 0, OFF(agora_secrets), R,
         "Agora NCS secret(s), comma-separated; unset: /callbacks/agora answers 503"},
        {"LIVEFLOW_AGORA_ACCEPT_SHA1", SETTING_INT, "0", 0, 1, OFF(agora_accept_sha1), R,
         "1: accept Agora-Signature (HMAC-SHA1) when Agora-Signature-V2 is absent"},
        {"LIVEFLOW_AGORA_MAX_AGE_S", SETTING_INT, "600", 1, 86400, OFF(agora_max_age_s), R,
         "refuse an NCS notice whose notifyMs is further than this from now"},
        {"LIVEFLOW_AGORA_ANCHOR_FROM", SETTING_STR, "channel", 0, 0, OFF(agora_anchor_from), R,
         "channel: anchor and room are the channel/stream name; uid: the anchor is the "
         "broadcaster's uid, the room the channel"},
        {"LIVEFLOW_ALIBABA_KEY", SETTING_SECRET, NULL, 0, 0, OFF(alibaba_keys), R,
         "Alibaba callback auth key(s), comma-separated; unset: /callbacks/alibaba answers 503"},
        {"LIVEFLOW_ALIBABA_DOMAIN", SETTING_STR, NULL, 0, 0, OFF(alibaba_domains), R,
         "Alibaba ingest (push) domain(s) signed into ingest callbacks, comma-separated"},
        {"LIVEFLOW_ALIBABA_MAX_SKEW_S", SETTING_INT, "300", 1, 86400, OFF(alibaba_max_skew_s), R,
         "refuse an ALI-LIVE-TIMESTAMP further than this from now"},
        {"LIVEFLOW_HMAC_SECRET", SETTING_SECRET, NULL, 0, 0, OFF(hmac_secrets), R,
         "Standard Webhooks whsec_ secret(s), comma-separated"},
        {"LIVEFLOW_WEBHOOK_TOLERANCE_S", SETTING_INT, "300", 1, 3600, OFF(webhook_tolerance_s), R,
         "webhook-timestamp tolerance, both ways"},
        {"LIVEFLOW_WEBHOOK_REPLAY_MAX", SETTING_INT, "100000", 1, 10000000, OFF(webhook_replay_max),
         R, "webhook-ids remembered against replays"},
        {"LIVEFLOW_CALLBACK_LOCK_TIMEOUT_MS", SETTING_INT, "250", 10, 10000,
         OFF(callback_lock_timeout_ms), R,
         "deadline of the duplicate-callback guard in Redis; past it the guard fails open"},
        {"LIVEFLOW_CALLBACK_LOCK_TTL_S", SETTING_INT, "900", 1, 86400, OFF(callback_lock_ttl_s), R,
         "a vendor callback's lock:callback key lives this long after its ack"},
        {"LIVEFLOW_MAX_AMOUNT", SETTING_INT, "100000000", 1, 9000000000000000000LL, OFF(max_amount),
         R, "largest tip or withdrawal, minor units"},
        {"LIVEFLOW_EVENTS_MAX_BATCH", SETTING_INT, "500", 1, 100000, OFF(events_max_batch), R,
         "POST /v1/events: events in one batch (413 above)"},
        {"LIVEFLOW_EVENTS_MAX_BODY_BYTES", SETTING_INT, "1048576", 256, 67108864,
         OFF(events_max_body_bytes), R, "POST /v1/events: body limit (413 above)"},
        {"LIVEFLOW_ROLE", SETTING_STR, NULL, 0, 0, OFF(role), SETTINGS_CONSUMER,
         "consumer role (or the first argument)"},
        {"LIVEFLOW_GROUP_ID", SETTING_STR, NULL, 0, 0, OFF(group_id), W,
         "consumer group; default liveflow.<role>"},
        {"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS", SETTING_INT, "45000", 1000, 3600000,
         OFF(session_timeout_ms), W | T, "consumer group session timeout"},
        {"LIVEFLOW_BATCH_MAX", SETTING_INT, "500", 1, 100000, OFF(batch_max), W,
         "records per batch transaction"},
        {"LIVEFLOW_BATCH_WAIT_MS", SETTING_INT, "20", 0, 10000, OFF(batch_wait_ms), W,
         "how long to fill a batch"},
        {"LIVEFLOW_RETRY_BACKOFF_MS", SETTING_INT, "200", 0, 60000, OFF(retry_backoff_ms), W,
         "first retry delay, doubled per attempt"},
        {"LIVEFLOW_LEAVE_ON_STOP", SETTING_INT, "1", 0, 1, OFF(leave_on_stop), W,
         "1: a copy with LIVEFLOW_INSTANCE_ID leaves its group on SIGTERM (partitions handed over at "
         "once); 0: keeps them for its session timeout (rolling restarts)"},
        {"LIVEFLOW_STORE_BACKOFF_MAX_MS", SETTING_INT, "5000", 10, 600000,
         OFF(store_backoff_max_ms), W,
         "longest wait between probes of an unavailable MySQL or Redis (partitions held)"},
        {"LIVEFLOW_LIVE_TTL_S", SETTING_INT, "86400", 60, 31536000, OFF(live_ttl_s), W | T,
         "TTL of temp:live:{stream_id}"},
        /* audit role: a verdict's grade from its suggestion, score and label (consumers/audit.h) */
        {"LIVEFLOW_AUDIT_WARN_SCORE", SETTING_INT, "60", 0, 100, OFF(audit_warn_score), C,
         "verdicts scoring below this are not punished"},
        {"LIVEFLOW_AUDIT_SUSPEND_SCORE", SETTING_INT, "90", 0, 100, OFF(audit_suspend_score), C,
         "a Block scoring at least this suspends"},
        {"LIVEFLOW_AUDIT_BAN_LABELS", SETTING_STR, "Polity,Terror", 0, 0, OFF(audit_ban_labels), C,
         "labels whose Block bans for good, comma-separated"},
        {"LIVEFLOW_AUDIT_SUSPEND_S", SETTING_INT, "86400", 60, 31536000, OFF(audit_suspend_s), C,
         "length of a suspension"},
        {"LIVEFLOW_AUDIT_WARN_ESCALATE", SETTING_INT, "3", 1, 1000, OFF(audit_warn_escalate), C,
         "warnings within the window that suspend"},
        {"LIVEFLOW_AUDIT_WARN_WINDOW_S", SETTING_INT, "86400", 60, 31536000,
         OFF(audit_warn_window_s), C, "window of the warning count, by event time"},
        {"LIVEFLOW_AUDIENCE_VISIT_TIMEOUT_S", SETTING_INT, "300", 5, 86400,
         OFF(audience_visit_timeout_s), C,
         "audience role: a visit with no heartbeat for this long is closed (at its last sign)"},
        {"LIVEFLOW_AUDIENCE_SWEEP_INTERVAL_S", SETTING_INT, "10", 1, 3600,
         OFF(audience_sweep_interval_s), C, "audience role: how often timed-out visits are closed"},
        {"LIVEFLOW_AUDIENCE_RANK_INTERVAL_S", SETTING_INT, "600", 1, 86400,
         OFF(audience_rank_interval_s), C,
         "audience role: live:rank:hot is recomputed this often, over this much of the past"},
        {"LIVEFLOW_AUDIENCE_KEEP_DAYS", SETTING_INT, "8", 1, 3650, OFF(audience_keep_days), C,
         "audience role: event ids (replay protection) and closed visits are kept this long"},
        {"LIVEFLOW_AUDIENCE_RANK_SIZE", SETTING_INT, "100", 1, 100000, OFF(audience_rank_size), C,
         "audience role: rooms kept in live:rank:hot"},
        {"LIVEFLOW_STREAM_GHOST_SILENCE_S", SETTING_INT, "21600", 0, 31536000,
         OFF(stream_ghost_silence_s), C,
         "stream role: close a live stream with no stream event for this long; 0: never"},
        {"LIVEFLOW_STREAM_GHOST_UNVERIFIED_SILENCE_S", SETTING_INT, "86400", 1, 31536000,
         OFF(stream_ghost_unverified_s), C,
         "stream role: a silent stream whose vendor cannot be asked is closed only after this"},
        {"LIVEFLOW_STREAM_SWEEP_INTERVAL_S", SETTING_INT, "60", 1, 86400,
         OFF(stream_sweep_interval_s), C, "stream role: how often the ghost sweep runs"},
        /* vendor APIs: dropping a force-closed stream (consumers/vendor_api.h); unset skips the
           drop */
        {"LIVEFLOW_TENCENT_API_ENDPOINT", SETTING_STR, "https://live.tencentcloudapi.com", 0, 0,
         OFF(tencent_api_endpoint), C, "Tencent Cloud API 3.0 endpoint of CSS"},
        {"LIVEFLOW_TENCENT_SECRET_ID", SETTING_SECRET, NULL, 0, 0, OFF(tencent_secret_id), C,
         "Tencent Cloud API SecretId"},
        {"LIVEFLOW_TENCENT_SECRET_KEY", SETTING_SECRET, NULL, 0, 0, OFF(tencent_secret_key), C,
         "Tencent Cloud API SecretKey"},
        {"LIVEFLOW_TENCENT_REGION", SETTING_STR, NULL, 0, 0, OFF(tencent_region), C,
         "X-TC-Region of API calls (optional for CSS)"},
        {"LIVEFLOW_TENCENT_PUSH_DOMAIN", SETTING_STR, NULL, 0, 0, OFF(tencent_push_domain), C,
         "push domain (DomainName of DropLiveStream)"},
        {"LIVEFLOW_TENCENT_APP", SETTING_STR, "live", 0, 0, OFF(tencent_app), C,
         "push path (AppName of DropLiveStream)"},
        {"LIVEFLOW_AGORA_API_ENDPOINT", SETTING_STR, "https://api.agora.io", 0, 0,
         OFF(agora_api_endpoint), C, "Agora RESTful API (kicking-rule) endpoint"},
        {"LIVEFLOW_AGORA_CUSTOMER_ID", SETTING_SECRET, NULL, 0, 0, OFF(agora_customer_id), C,
         "Agora RESTful API customer ID (HTTP Basic user)"},
        {"LIVEFLOW_AGORA_CUSTOMER_SECRET", SETTING_SECRET, NULL, 0, 0, OFF(agora_customer_secret),
         C, "Agora RESTful API customer secret (HTTP Basic password)"},
        {"LIVEFLOW_AGORA_APP_ID", SETTING_STR, NULL, 0, 0, OFF(agora_app_id), C,
         "Agora App ID of the channels (appid of a kicking rule)"},
        {"LIVEFLOW_AGORA_KICK_S", SETTING_INT, "0", 0, 86430, OFF(agora_kick_s), C,
         "a forced close keeps the channel closed this long; 0: cut only, rejoin at once"},
        {"LIVEFLOW_ALIBABA_API_ENDPOINT", SETTING_STR, "https://live.aliyuncs.com", 0, 0,
         OFF(alibaba_api_endpoint), C, "Alibaba Cloud ApsaraVideo Live API endpoint"},
        {"LIVEFLOW_ALIBABA_ACCESS_KEY_ID", SETTING_SECRET, NULL, 0, 0, OFF(alibaba_access_key_id),
         C, "Alibaba Cloud AccessKey ID"},
        {"LIVEFLOW_ALIBABA_ACCESS_KEY_SECRET", SETTING_SECRET, NULL, 0, 0,
         OFF(alibaba_access_key_secret), C, "Alibaba Cloud AccessKey secret"},
        {"LIVEFLOW_ALIBABA_PUSH_DOMAIN", SETTING_STR, NULL, 0, 0, OFF(alibaba_push_domain), C,
         "ingest domain (DomainName of ForbidLiveStream)"},
        {"LIVEFLOW_ALIBABA_APP", SETTING_STR, "live", 0, 0, OFF(alibaba_app), C,
         "application (AppName of ForbidLiveStream)"},
        {"LIVEFLOW_ALIBABA_REGION", SETTING_STR, NULL, 0, 0, OFF(alibaba_region), C,
         "RegionId of API calls (optional)"},
        {"LIVEFLOW_SRS_PLAYBACK_BASE", SETTING_STR, NULL, 0, 0, OFF(srs_playback_base), C,
         "public base URL of SRS recordings (live.notify record.ready); unset: no playback URL"},
        {"LIVEFLOW_SRS_API_ENDPOINT", SETTING_STR, NULL, 0, 0, OFF(srs_api_endpoint), C,
         "SRS HTTP API, e.g. http://127.0.0.1:1985"},
        {"LIVEFLOW_VENDOR_API_TIMEOUT_MS", SETTING_INT, "5000", 100, 60000,
         OFF(vendor_api_timeout_ms), C, "whole-call timeout of a vendor API request"},
        /* reward-sync role (consumers/reward_sync.h) */
        {"LIVEFLOW_REWARD_FLUSH_TIPS", SETTING_INT, "100", 1, 1000000, OFF(reward_flush_tips), C,
         "fold a room's tips into live_room_realtime at this many"},
        {"LIVEFLOW_REWARD_FLUSH_S", SETTING_INT, "300", 1, 86400, OFF(reward_flush_s), C,
         "... or once its oldest unfolded tip is this old"},
        {"LIVEFLOW_REWARD_DEDUP_TTL_S", SETTING_INT, "604800", 60, 31536000,
         OFF(reward_dedup_ttl_s), C, "how long Redis remembers that a tip was counted"},
        {"LIVEFLOW_REWARD_STATS_TTL_S", SETTING_INT, "604800", 60, 31536000,
         OFF(reward_stats_ttl_s), C | T,
         "live:stats:{session_id} expires this long after its last tip"},
        /* settlement worker: revenue split and session summaries (settlement-worker/settlement.h)
         */
        {"LIVEFLOW_SETTLEMENT_DEFAULT_RATIO_BP", SETTING_INT, "5000", 0, 10000,
         OFF(settlement_default_ratio_bp), SETTINGS_SETTLEMENT,
         "anchor's share in basis points when revenue_share has no row"},
        {"LIVEFLOW_SETTLEMENT_RECOMPUTE_S", SETTING_INT, "900", 0, 604800,
         OFF(settlement_recompute_s), SETTINGS_SETTLEMENT,
         "sessions ended within this many seconds are summed again (late recharge rows); 0: never"},
        {"LIVEFLOW_SETTLEMENT_SWEEP_MS", SETTING_INT, "10000", 100, 3600000,
         OFF(settlement_sweep_ms), SETTINGS_SETTLEMENT,
         "how often the session summaries are summed again"},
        /* stats worker: hourly tips, audience profiles, session statistics (stats-worker/stats.h)
         */
        {"LIVEFLOW_STATS_PROFILE_INTERVAL_S", SETTING_INT, "7200", 1, 2678400,
         OFF(stats_profile_interval_s), SETTINGS_STATS | T,
         "audience_profile is computed once per period of this length"},
        {"LIVEFLOW_STATS_PROFILE_HIGH_PCT", SETTING_INT, "90", 1, 99, OFF(stats_profile_high_pct),
         SETTINGS_STATS | T, "spenders above this percentile are high"},
        {"LIVEFLOW_STATS_PROFILE_MID_PCT", SETTING_INT, "50", 0, 98, OFF(stats_profile_mid_pct),
         SETTINGS_STATS | T, "... above this one mid, the rest low"},
        {"LIVEFLOW_STATS_PROFILE_LOCK_TTL_S", SETTING_INT, "600", 1, 86400,
         OFF(stats_profile_lock_ttl_s), SETTINGS_STATS | T,
         "lifetime of a period's profiling lock; also the longest a profiling statement may run"},
        {"LIVEFLOW_AFFINITY_INTERVAL_S", SETTING_INT, "7200", 1, 2678400, OFF(affinity_interval_s),
         SETTINGS_STATS | T, "tag_affinity is computed once per period of this length"},
        {"LIVEFLOW_AFFINITY_WINDOW_DAYS", SETTING_INT, "30", 1, 3650, OFF(affinity_window_days),
         SETTINGS_STATS | T, "tips and watch time of this many days count toward tag_affinity"},
        {"LIVEFLOW_AFFINITY_TIP_WEIGHT", SETTING_INT, "2", 0, 1000, OFF(affinity_tip_weight),
         SETTINGS_STATS | T, "weight of the tip share in a tag_affinity score"},
        {"LIVEFLOW_AFFINITY_WATCH_WEIGHT", SETTING_INT, "1", 0, 1000, OFF(affinity_watch_weight),
         SETTINGS_STATS | T, "weight of the watch time share in a tag_affinity score"},
        {"LIVEFLOW_STATS_LATE_S", SETTING_INT, "3600", 0, 604800, OFF(stats_late_s), SETTINGS_STATS,
         "tips and viewers arriving this long after their session's end still update live_statistics"},
        /* liveflow-ctl: broker waits, dlq replay progress, topics create (ops/ctl/) */
        {"LIVEFLOW_CTL_TIMEOUT_MS", SETTING_INT, "10000", 100, 600000, OFF(ctl_timeout_ms), T,
         "how long liveflow-ctl waits for one broker request"},
        {"LIVEFLOW_CTL_REPLAY_GROUP", SETTING_STR, "liveflow.ctl.dlq-replay", 0, 0,
         OFF(ctl_replay_group), T, "group whose committed offsets are the dlq replay progress"},
        {"LIVEFLOW_TOPIC_PARTITIONS", SETTING_INT, "6", 1, 10000, OFF(topic_partitions), T,
         "partitions of a topic liveflow-ctl creates"},
        {"LIVEFLOW_TOPIC_REPLICATION_FACTOR", SETTING_INT, "3", 1, 32, OFF(topic_replication), T,
         "replication factor of a topic liveflow-ctl creates"},
        {"LIVEFLOW_TOPIC_MIN_INSYNC_REPLICAS", SETTING_INT, "2", 1, 32, OFF(topic_min_insync), T,
         "min.insync.replicas of a topic liveflow-ctl creates (acks=all waits for these)"},
        {"LIVEFLOW_TOPIC_RETENTION_MS", SETTING_INT, "604800000", 60000, 31536000000LL,
         OFF(topic_retention_ms), T, "retention.ms of the event topics"},
        {"LIVEFLOW_DLQ_RETENTION_MS", SETTING_INT, "2592000000", 60000, 31536000000LL,
         OFF(topic_dlq_retention_ms), T, "retention.ms of the .dlq topics"},
        {"LIVEFLOW_ENV_FILE", SETTING_STR, NULL, 0, 0, 0, 0,
         "liveflow-ctl: file of export LIVEFLOW_...= lines (default .run/env when present)"},
        {"LIVEFLOW_CONFIG_FILE", SETTING_STR, NULL, 0, 0, 0, 0, "optional KEY = value file"},
};

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
