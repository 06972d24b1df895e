/*
 * anchor_store.c: an anchor's standing read from Redis, then MySQL, on the HTTP thread that
 * asks. Each thread has its own Redis and MySQL connection, opened on its first lookup; a
 * store that failed is skipped for LIVEFLOW_SRS_STORE_RETRY_MS, so an outage costs each
 * thread one timeout per period rather than one per lookup.
 */
#include "anchor_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "contract.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"
#include "settings.h"
#include "url.h"

#define UTF8_MAX         4  /* bytes per character */
#define ANCHOR_MAX_CHARS 64 /* anchors.anchor_id */

#define ANCHOR_KEY_PREFIX LF_KEY_ANCHOR_STATUS
#define ANCHOR_SQL                                                                                 \
        "SELECT status, CAST(UNIX_TIMESTAMP(suspended_until) * 1000 AS SIGNED) FROM anchors "      \
        "WHERE anchor_id = ?"

enum store { STORE_REDIS, STORE_MYSQL, STORE_CNT };

static const char *const store_names[STORE_CNT] = {"redis", "mysql"};

/* One HTTP thread's connections to the stores. */
struct conns {
        struct redis_conn *redis; /* NULL until the first lookup, or after a failed connect */
        struct db *db;
        struct db_stmt *anchor_stmt;
        long long retry_us[STORE_CNT]; /* monotonic: a store that failed is skipped until then */
        struct conns *next;
};

struct anchor_store {
        unsigned long long id; /* tells this store's thread-local connections from another's */
        long long store_retry_us;
        const char *redis_url; /* borrowed from the settings; NULL when unset */
        const char *mysql_url;
        int redis_timeout_ms;
        int mysql_timeout_s;
        struct metric *lookup_seconds[STORE_CNT];
        struct metric *store_errors[STORE_CNT];
        pthread_mutex_t lock; /* guards conns; taken once per thread, not per lookup */
        struct conns *conns;
};

/* Ids are never reused, so connections cached for a destroyed store are never taken. */
static atomic_ullong next_store_id = 1;

static _Thread_local struct {
        unsigned long long store_id;
        struct conns *conns;
} thread_conns;

static bool is_set(const char *s)
{
        return s && *s;
}

/* ------------------------------------------------------------ configuration */

/* The URLs are parsed here only to be checked: each thread parses them again to connect. */
int anchor_store_check_config(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct redis_url ru;
        struct mysql_url mu;
        char why[256];
        int rc = 0;

        if (is_set(s->redis_url) && url_parse_redis(s->redis_url, &ru, why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "LIVEFLOW_REDIS_URL: %s", why);
                rc = -1;
        } else if (is_set(s->mysql_url) &&
                   url_parse_mysql(s->mysql_url, &mu, why, sizeof(why)) == -1) {
                snprintf(errstr, errstr_size, "LIVEFLOW_MYSQL_URL: %s", why);
                rc = -1;
        }
        explicit_bzero(&ru, sizeof(ru)); /* the passwords */
        explicit_bzero(&mu, sizeof(mu));
        return rc;
}

static void register_metrics(struct anchor_store *as, struct metrics *metrics)
{
        char labels[32];

        if (!metrics)
                return;
        for (int st = 0; st < STORE_CNT; st++) {
                snprintf(labels, sizeof(labels), "store=\"%s\"", store_names[st]);
                as->lookup_seconds[st] = metrics_histogram(
                        metrics, "liveflow_receiver_srs_anchor_lookup_seconds",
                        "Time to read an anchor's status for on_publish, by store", labels,
                        metrics_latency_bounds, metrics_latency_bound_cnt);
                as->store_errors[st] =
                        metrics_counter(metrics, "liveflow_receiver_srs_store_errors_total",
                                        "Anchor status reads that failed, by store", labels);
        }
}

struct anchor_store *anchor_store_new(const struct settings *s, struct metrics *metrics,
                                      char *errstr, size_t errstr_size)
{
        struct anchor_store *as = calloc(1, sizeof(*as));

        if (!as) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        as->id = atomic_fetch_add(&next_store_id, 1);
        pthread_mutex_init(&as->lock, NULL);
        as->store_retry_us = s->srs_store_retry_ms * 1000;
        as->redis_url = is_set(s->redis_url) ? s->redis_url : NULL;
        as->mysql_url = is_set(s->mysql_url) ? s->mysql_url : NULL;
        as->redis_timeout_ms = (int)s->redis_timeout_ms;
        as->mysql_timeout_s = (int)s->mysql_timeout_s;
        if (anchor_store_check_config(s, errstr, errstr_size) == -1)
                goto fail;
        /* mysql_init() would do this on the first lookup, from several threads at once. */
        if (as->mysql_url && mysql_library_init(0, NULL, NULL) != 0) {
                snprintf(errstr, errstr_size, "mysql_library_init failed");
                goto fail;
        }
        register_metrics(as, metrics);
        return as;

fail:
        anchor_store_destroy(as);
        return NULL;
}

void anchor_store_destroy(struct anchor_store *as)
{
        struct conns *c, *next;

        if (!as)
                return;
        for (c = as->conns; c; c = next) {
                next = c->next;
                redis_conn_destroy(c->redis);
                db_destroy(c->db);
                free(c);
        }
        if (thread_conns.store_id == as->id)
                thread_conns.store_id = 0;
        pthread_mutex_destroy(&as->lock);
        free(as);
}

bool anchor_store_is_configured(const struct anchor_store *as)
{
        return as && (as->redis_url || as->mysql_url);
}

/* ------------------------------------------------------------ lookups */

/* What one store said. */
enum store_answer {
        STORE_FOUND,     /* the anchor's status */
        STORE_NO_RECORD, /* Redis: the hash has no anchor_status field */
        STORE_BAD_VALUE, /* a value that cannot be read: this anchor's record is broken */
        STORE_FAILED,    /* unreachable or an error: the store is skipped for a while */
};

static struct conns *conns_for_thread(struct anchor_store *as)
{
        struct conns *c;

        if (thread_conns.store_id == as->id)
                return thread_conns.conns;
        if (!(c = calloc(1, sizeof(*c))))
                return NULL;
        pthread_mutex_lock(&as->lock);
        c->next = as->conns;
        as->conns = c;
        pthread_mutex_unlock(&as->lock);
        thread_conns.store_id = as->id;
        thread_conns.conns = c;
        return c;
}

static int parse_status(const char *s, size_t len, enum anchor_status *out)
{
        static const char *const names[] = {[ANCHOR_ACTIVE] = "active",
                                            [ANCHOR_SUSPENDED] = "suspended",
                                            [ANCHOR_BANNED] = "banned"};

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strlen(names[i]) == len && memcmp(s, names[i], len) == 0) {
                        *out = (enum anchor_status)i;
                        return 0;
                }
        return -1;
}

/* Strict decimal: digits only, no sign or blanks, within int64. */
static int parse_ms(const char *s, size_t len, int64_t *out)
{
        int64_t n = 0;

        if (len == 0 || len > 18) /* 18 digits cannot overflow */
                return -1;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                n = n * 10 + (s[i] - '0');
        }
        *out = n;
        return 0;
}

/* HMGET anchor_status suspended_until: [status or nil, Unix ms or nil]. */
static enum store_answer read_hmget(const redisReply *r, struct anchor_record *a, char *errstr,
                                    size_t errstr_size)
{
        const redisReply *status, *until;

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                snprintf(errstr, errstr_size, "HMGET: unexpected reply type %d", r->type);
                return STORE_FAILED;
        }
        status = r->element[0];
        until = r->element[1];
        if (status->type == REDIS_REPLY_NIL)
                return STORE_NO_RECORD;
        if (status->type != REDIS_REPLY_STRING ||
            parse_status(status->str, status->len, &a->status) == -1) {
                snprintf(errstr, errstr_size, "anchor_status is not active, suspended or banned");
                return STORE_BAD_VALUE;
        }
        a->suspended_until_ms = 0;
        if (until->type == REDIS_REPLY_STRING && until->len > 0 &&
            parse_ms(until->str, until->len, &a->suspended_until_ms) == -1) {
                snprintf(errstr, errstr_size, "suspended_until is not Unix milliseconds");
                return STORE_BAD_VALUE;
        }
        a->store = store_names[STORE_REDIS];
        return STORE_FOUND;
}

static enum store_answer redis_anchor(struct anchor_store *as, struct conns *c,
                                      const char *anchor_id, struct anchor_record *a, char *errstr,
                                      size_t errstr_size)
{
        char key[sizeof(ANCHOR_KEY_PREFIX) + ANCHOR_MAX_CHARS * UTF8_MAX];
        const char *argv[] = {"HMGET", key, "anchor_status", "suspended_until"};
        enum store_answer answer;
        redisReply *r;

        snprintf(key, sizeof(key), ANCHOR_KEY_PREFIX "%s", anchor_id);
        if (!c->redis &&
            !(c->redis = redis_conn_new(as->redis_url, as->redis_timeout_ms, errstr, errstr_size)))
                return STORE_FAILED;
        if (!(r = redis_conn_cmd(c->redis, 4, argv, NULL, errstr, errstr_size)))
                return STORE_FAILED;
        answer = read_hmget(r, a, errstr, errstr_size);
        freeReplyObject(r);
        return answer;
}

static int open_db(struct anchor_store *as, struct conns *c, char *errstr, size_t errstr_size)
{
        if (!(c->db = db_new(as->mysql_url, as->mysql_timeout_s, errstr, errstr_size)))
                return -1;
        if (!(c->anchor_stmt = db_stmt(c->db, ANCHOR_SQL))) {
                snprintf(errstr, errstr_size, "out of memory");
                db_destroy(c->db);
                c->db = NULL;
                return -1;
        }
        return 0;
}

/* The anchors row; no row is an active anchor (the table lists those with a history). */
static enum store_answer mysql_anchor(struct anchor_store *as, struct conns *c,
                                      const char *anchor_id, struct anchor_record *a, char *errstr,
                                      size_t errstr_size)
{
        char status[16];
        struct db_param p[] = {DB_STR(anchor_id)};
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = status, .s_size = sizeof(status)},
                                {.type = DB_PARAM_I64}};
        bool found;

        if (!c->db && open_db(as, c, errstr, errstr_size) == -1)
                return STORE_FAILED;
        if (db_query_row(c->db, c->anchor_stmt, p, 1, cols, 2, &found, errstr, errstr_size) !=
            DB_OK)
                return STORE_FAILED;
        a->store = store_names[STORE_MYSQL];
        a->status = ANCHOR_ACTIVE;
        a->suspended_until_ms = 0;
        if (!found)
                return STORE_FOUND;
        if (cols[0].is_null || parse_status(status, strlen(status), &a->status) == -1) {
                snprintf(errstr, errstr_size,
                         "anchors.status \"%s\" is not active, suspended or banned", status);
                return STORE_BAD_VALUE;
        }
        a->suspended_until_ms = cols[1].is_null || cols[1].i < 0 ? 0 : cols[1].i;
        return STORE_FOUND;
}

/* One store, timed and counted; a store failure makes this thread skip it for a while. */
static enum store_answer ask_store(struct anchor_store *as, struct conns *c, enum store st,
                                   const char *anchor_id, const char *trace_id,
                                   struct anchor_record *a)
{
        long long start_us = clock_mono_us();
        char errstr[512] = "";
        enum store_answer answer;

        if (start_us < c->retry_us[st])
                return STORE_FAILED; /* failed a moment ago: not worth a timeout yet */
        answer = st == STORE_REDIS ? redis_anchor(as, c, anchor_id, a, errstr, sizeof(errstr))
                                   : mysql_anchor(as, c, anchor_id, a, errstr, sizeof(errstr));
        metric_observe(as->lookup_seconds[st], (double)(clock_mono_us() - start_us) / 1e6);
        if (answer == STORE_FOUND || answer == STORE_NO_RECORD)
                return answer;
        metric_add(as->store_errors[st], 1);
        if (answer == STORE_BAD_VALUE) {
                log_warn(trace_id, "srs: anchor %s status from %s: %s", anchor_id, store_names[st],
                         errstr);
                return answer;
        }
        c->retry_us[st] = clock_mono_us() + as->store_retry_us;
        log_warn(trace_id, "srs: anchor %s status from %s: %s; %s skipped for %lld ms", anchor_id,
                 store_names[st], errstr, store_names[st], as->store_retry_us / 1000);
        return answer;
}

/* Redis first (the audit consumer's projection), MySQL when Redis has no answer. */
static enum anchor_lookup_result store_lookup(void *ctx, const char *anchor_id,
                                              const char *trace_id, struct anchor_record *a)
{
        struct anchor_store *as = ctx;
        struct conns *c = conns_for_thread(as);
        enum store_answer from_redis = STORE_FAILED;

        if (!c)
                return ANCHOR_LOOKUP_UNAVAILABLE;
        if (as->redis_url &&
            (from_redis = ask_store(as, c, STORE_REDIS, anchor_id, trace_id, a)) == STORE_FOUND)
                return ANCHOR_LOOKUP_FOUND;
        if (as->mysql_url && ask_store(as, c, STORE_MYSQL, anchor_id, trace_id, a) == STORE_FOUND)
                return ANCHOR_LOOKUP_FOUND;
        /* Redis is the only store, and it holds nothing against the anchor. */
        if (!as->mysql_url && from_redis == STORE_NO_RECORD) {
                *a = (struct anchor_record){.status = ANCHOR_ACTIVE, .store = "redis"};
                return ANCHOR_LOOKUP_FOUND;
        }
        return ANCHOR_LOOKUP_UNAVAILABLE;
}

struct anchor_lookup anchor_store_lookup(struct anchor_store *as)
{
        return (struct anchor_lookup){.fn = store_lookup, .ctx = as};
}
