/* settings.h: every LIVEFLOW_* configuration key, parsed once from the environment. */
#ifndef LIVEFLOW_SETTINGS_H
#define LIVEFLOW_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

/* Which processes read a key; a key is validated only by the processes that use it. */
enum settings_user {
        SETTINGS_RECEIVER = 1 << 0,
        SETTINGS_CONSUMER = 1 << 1,
        SETTINGS_SETTLEMENT = 1 << 2,
        SETTINGS_STATS = 1 << 3,
        SETTINGS_CTL = 1 << 4, /* liveflow-ctl, the operator's tool */
        SETTINGS_WORKERS = SETTINGS_CONSUMER | SETTINGS_SETTLEMENT | SETTINGS_STATS,
        SETTINGS_ALL = 0xff,
};

struct kafka_prop {
        char *name; /* librdkafka property, e.g. "security.protocol" */
        char *value;
};

/* The parsed configuration. Strings are owned (settings_fini frees them); NULL when unset. */
struct settings {
        /* every process */
        char *log_level;
        char *log_format; /* "text" or "json" */
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
        long long http_max_connections_per_ip;
        long long http_probes; /* 1: /metrics, /healthz, /readyz also on the traffic port */
        long long http_header_timeout_ms;  /* accept or last answer -> complete headers */
        long long http_request_timeout_ms; /* complete headers -> complete body */
        long long http_connection_memory;  /* libmicrohttpd's pool per connection, bytes */
        long long max_body_bytes;
        long long ack_timeout_ms;
        char *spool_dir; /* NULL: no spool */
        long long spool_max_bytes;
        char *tencent_keys; /* comma-separated: several may be valid during rotation */
        long long tencent_grace_s;
        char *tencent_path_token;
        char *tencent_allow_ips;
        char *srs_token;
        char *srs_publish_keys;       /* comma-separated txSecret keys; NULL: no anti-leech check */
        long long srs_fail_open;      /* 1: allow on_publish when no anchor status store answers */
        long long srs_require_anchor; /* 1: refuse on_publish without anchor_id */
        long long srs_publish_unsigned;  /* 1: no publish key means no signature check */
        long long srs_store_retry_ms;    /* skip a failed store this long before reconnecting */
        long long srs_lookup_timeout_ms; /* an on_publish anchor lookup's deadline */
        char *agora_secrets;             /* comma-separated NCS secrets */
        long long agora_accept_sha1;     /* 1: Agora-Signature (SHA1) is accepted too */
        long long agora_max_age_s;       /* notifyMs freshness bound, both ways */
        char *agora_anchor_from;         /* "channel" or "uid" */
        char *alibaba_keys;              /* comma-separated callback auth keys */
        char *alibaba_domains;           /* comma-separated ingest domains */
        long long alibaba_max_skew_s;    /* ALI-LIVE-TIMESTAMP tolerance, both ways */
        char *hmac_secrets;              /* comma-separated whsec_ secrets */
        long long webhook_tolerance_s;
        long long webhook_replay_max;
        long long callback_lock_timeout_ms; /* Redis deadline of lock:callback:* */
        long long callback_lock_ttl_s;      /* how long a vendor callback's key says "done" */
        long long max_amount;
        long long events_max_batch;      /* POST /v1/events: events per request */
        long long events_max_body_bytes; /* POST /v1/events: body limit (413 above) */
        /* consumers and workers */
        char *role;
        char *group_id; /* overrides liveflow.<role> (shadow or test consumers) */
        long long session_timeout_ms;
        long long batch_max;
        long long batch_wait_ms;
        long long retry_backoff_ms;
        long long store_backoff_max_ms; /* store outage: longest wait between probes */
        long long leave_on_stop;        /* a static member leaves its group on SIGTERM */
        long long consumer_lanes;       /* group members (threads) the process runs */
        long long live_ttl_s;
        /* audit role: graded punishment of moderation verdicts */
        long long audit_warn_score;    /* a verdict scoring at least this is a warning */
        long long audit_suspend_score; /* a Block scoring at least this suspends */
        char *audit_ban_labels;        /* comma-separated labels whose Block bans for good */
        long long audit_suspend_s;     /* length of a suspension */
        long long audit_warn_escalate; /* this many warnings within the window suspend */
        long long audit_warn_window_s;
        /* stream role: the ghost sweep (consumers/stream_lifecycle.h) */
        long long stream_ghost_silence_s;    /* close a live stream silent this long; 0: never */
        long long stream_sweep_interval_s;   /* how often the sweep looks */
        long long stream_ghost_unverified_s; /* close unasked only after this much silence */
        /* vendor APIs the stream role calls to drop a stream it force-closed */
        char *tencent_api_endpoint;
        char *tencent_secret_id;
        char *tencent_secret_key;
        char *tencent_region; /* X-TC-Region; omitted when unset */
        char *tencent_push_domain;
        char *tencent_app;
        char *agora_api_endpoint;
        char *agora_customer_id;
        char *agora_customer_secret;
        char *agora_app_id;
        long long agora_kick_s; /* a forced close's kicking rule lasts this long; 0: cut only */
        char *alibaba_api_endpoint;
        char *alibaba_access_key_id;
        char *alibaba_access_key_secret;
        char *alibaba_push_domain;
        char *alibaba_app;
        char *alibaba_region;
        char *srs_api_endpoint;
        char *srs_playback_base; /* record.ready: public base URL of SRS's recordings */
        long long vendor_api_timeout_ms;
        /* reward-sync role: tips into recharge, room figures in Redis, live_room_realtime */
        long long reward_flush_tips;  /* fold a room into live_room_realtime at this many tips */
        long long reward_flush_s;     /* ... or when its oldest unfolded tip is this old */
        long long reward_dedup_ttl_s; /* lifetime of a tip's applied marker in Redis */
        long long reward_stats_ttl_s; /* live:stats:{session_id} lives this long after a tip */
        /* audience role (consumers/audience.h) */
        long long audience_visit_timeout_s;  /* close a visit with no heartbeat for this long */
        long long audience_sweep_interval_s; /* how often the timeout sweep looks */
        long long audience_rank_interval_s;  /* live:rank:hot is recomputed this often */
        long long audience_rank_size;        /* rooms kept in live:rank:hot */
        long long audience_keep_days;        /* the event ledger and closed visits kept this long */
        /* settlement worker (settlement-worker/settlement.h) */
        long long settlement_default_ratio_bp; /* anchor's share when revenue_share has no row */
        long long settlement_recompute_s;      /* sessions ended this recently are summed again */
        long long settlement_sweep_ms;         /* how often that sweep runs */
        /* stats worker (stats-worker/stats.h) */
        long long stats_profile_interval_s; /* one audience_profile run per period this long */
        long long stats_profile_high_pct;   /* percentile above which a spender is high */
        long long stats_profile_mid_pct;    /* ... mid; low at or below it */
        long long
                stats_profile_lock_ttl_s; /* lock:stats:profile:{period} lifetime, run time bound */
        long long affinity_interval_s;    /* one tag_affinity run per period this long */
        long long affinity_window_days;   /* the days of tips and watch time it counts */
        long long affinity_tip_weight;    /* weight of the tip share in a score */
        long long affinity_watch_weight;  /* weight of the watch share */
        long long stats_late_s; /* late tips/viewers update sessions ended this recently */
        /* liveflow-ctl (ops/ctl/) */
        long long ctl_timeout_ms;         /* how long a broker request may take */
        char *ctl_replay_group;           /* progress of dlq replay, one offset per partition */
        long long topic_partitions;       /* topics create: partitions of a new topic */
        long long topic_replication;      /* ... its replication factor */
        long long topic_min_insync;       /* ... min.insync.replicas */
        long long topic_retention_ms;     /* ... retention.ms of the event topics */
        long long topic_dlq_retention_ms; /* ... retention.ms of the .dlq twins */
};

/**
 * @brief Loads the keys used by `user` from the environment, then from the optional
 * LIVEFLOW_CONFIG_FILE (KEY = value lines; the environment wins). Unknown LIVEFLOW_* keys
 * are logged as warnings. @returns 0, or -1 with errstr naming the key and value
 * (e.g. `LIVEFLOW_HTTP_PORT: "80x" is not an integer`). Call settings_fini() in both cases.
 */
__attribute__((warn_unused_result)) int settings_load(struct settings *s, unsigned user,
                                                      char *errstr, size_t errstr_size);

/**
 * @brief Reads a shell-sourceable file of `[export ]LIVEFLOW_KEY=value` lines (what `make run`
 * writes to .run/env) into the environment, without overriding a variable already set, so the
 * operator's environment wins. Other lines are ignored. @returns 0, or -1 with errstr.
 */
__attribute__((warn_unused_result)) int settings_import_env_file(const char *path, char *errstr,
                                                                 size_t errstr_size);

/** @brief Frees what settings_load() allocated; safe on a zeroed or half-loaded struct. */
void settings_fini(struct settings *s);

/** @brief Writes "KEY=value" for every key `user` reads, secrets masked, one per line. */
void settings_dump(const struct settings *s, unsigned user, char *out, size_t out_size);

/**
 * @brief Writes an environment file (systemd EnvironmentFile=, shell) with every key of the table:
 * a comment with its description, bounds and the processes that read it, then `KEY=default`
 * commented out, or `KEY=` left open for a key that must be given.
 */
void settings_write_example(FILE *out);

#endif
