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
        const char *def; /* NULL: unset by default; REQUIRED: must be given */
        long long min, max;
        size_t offset;
        unsigned users;
        const char *desc;
};

static const char REQUIRED[] = "";

#define OFF(f) offsetof(struct settings, f)
#define R SETTINGS_RECEIVER
#define W SETTINGS_WORKERS
#define A SETTINGS_ALL

/* One row per key: name, type, default, bounds, field, users, description. */
static const struct setting settings_table[] = {
        {"LIVEFLOW_LOG_LEVEL", SETTING_STR, "info", 0, 0, OFF(log_level), A, "error, warn, info or debug"},
        {"LIVEFLOW_ADMIN_ADDR", SETTING_STR, "127.0.0.1", 0, 0, OFF(admin_addr), A, "address of /metrics, /healthz, /readyz"},
        {"LIVEFLOW_ADMIN_PORT", SETTING_INT, "9100", 1, 65535, OFF(admin_port), A, "port of /metrics, /healthz, /readyz"},
        {"LIVEFLOW_KAFKA_BOOTSTRAP", SETTING_STR, REQUIRED, 0, 0, OFF(kafka_bootstrap), A, "Kafka bootstrap servers"},
        {"LIVEFLOW_INSTANCE_ID", SETTING_STR, NULL, 0, 0, OFF(instance_id), A, "stable instance name (static group membership, ids)"},
        {"LIVEFLOW_DRAIN_TIMEOUT_MS", SETTING_INT, "10000", 100, 600000, OFF(drain_timeout_ms), A, "deadline of the SIGTERM drain"},
        {"LIVEFLOW_MYSQL_URL", SETTING_SECRET, REQUIRED, 0, 0, OFF(mysql_url), W, "mysql://user:pass@host:port/db"},
        {"LIVEFLOW_REDIS_URL", SETTING_SECRET, REQUIRED, 0, 0, OFF(redis_url), W, "redis://host:port/db"},
        {"LIVEFLOW_MYSQL_TIMEOUT_S", SETTING_INT, "5", 1, 300, OFF(mysql_timeout_s), W, "MySQL connect/read/write timeout"},
        {"LIVEFLOW_REDIS_TIMEOUT_MS", SETTING_INT, "2000", 10, 60000, OFF(redis_timeout_ms), A, "Redis connect and command timeout"},
        {"LIVEFLOW_HTTP_ADDR", SETTING_STR, "0.0.0.0", 0, 0, OFF(http_addr), R, "address the receiver listens on"},
        {"LIVEFLOW_HTTP_PORT", SETTING_INT, "8080", 1, 65535, OFF(http_port), R, "port the receiver listens on"},
        {"LIVEFLOW_HTTP_THREADS", SETTING_INT, "2", 1, 64, OFF(http_threads), R, "HTTP worker threads"},
        {"LIVEFLOW_HTTP_MAX_CONNECTIONS", SETTING_INT, "1024", 1, 100000, OFF(http_max_connections), R, "concurrent connection limit"},
        {"LIVEFLOW_HTTP_TIMEOUT_S", SETTING_INT, "30", 1, 3600, OFF(http_timeout_s), R, "idle and slow-client timeout"},
        {"LIVEFLOW_MAX_BODY_BYTES", SETTING_INT, "65536", 256, 16777216, OFF(max_body_bytes), R, "request body limit (413 above)"},
        {"LIVEFLOW_ACK_TIMEOUT_MS", SETTING_INT, "5000", 50, 19000, OFF(ack_timeout_ms), R, "wait for the broker ack before 503"},
        {"LIVEFLOW_TENCENT_KEY", SETTING_SECRET, NULL, 0, 0, OFF(tencent_keys), R, "Tencent callback key(s), comma-separated"},
        {"LIVEFLOW_TENCENT_GRACE_S", SETTING_INT, "900", 0, 86400, OFF(tencent_grace_s), R, "accept an expired t for this long (vendor retries)"},
        {"LIVEFLOW_TENCENT_PATH_TOKEN", SETTING_SECRET, NULL, 0, 0, OFF(tencent_path_token), R, "require /callbacks/tencent/<token>"},
        {"LIVEFLOW_TENCENT_ALLOW_IPS", SETTING_STR, NULL, 0, 0, OFF(tencent_allow_ips), R, "source CIDR allowlist, comma-separated"},
        {"LIVEFLOW_SRS_TOKEN", SETTING_SECRET, NULL, 0, 0, OFF(srs_token), R, "?token= expected from SRS"},
        {"LIVEFLOW_HMAC_SECRET", SETTING_SECRET, NULL, 0, 0, OFF(hmac_secrets), R, "Standard Webhooks whsec_ secret(s), comma-separated"},
        {"LIVEFLOW_WEBHOOK_TOLERANCE_S", SETTING_INT, "300", 1, 3600, OFF(webhook_tolerance_s), R, "webhook-timestamp tolerance, both ways"},
        {"LIVEFLOW_MAX_AMOUNT", SETTING_INT, "100000000", 1, 9000000000000000000LL, OFF(max_amount), R, "largest tip or withdrawal, minor units"},
        {"LIVEFLOW_ROLE", SETTING_STR, NULL, 0, 0, OFF(role), SETTINGS_CONSUMER, "consumer role (or the first argument)"},
        {"LIVEFLOW_GROUP_ID", SETTING_STR, NULL, 0, 0, OFF(group_id), W, "consumer group; default liveflow.<role>"},
        {"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS", SETTING_INT, "45000", 1000, 3600000, OFF(session_timeout_ms), W, "consumer group session timeout"},
        {"LIVEFLOW_BATCH_MAX", SETTING_INT, "500", 1, 100000, OFF(batch_max), W, "records per batch transaction"},
        {"LIVEFLOW_BATCH_WAIT_MS", SETTING_INT, "20", 0, 10000, OFF(batch_wait_ms), W, "how long to fill a batch"},
        {"LIVEFLOW_RETRY_BACKOFF_MS", SETTING_INT, "200", 0, 60000, OFF(retry_backoff_ms), W, "first retry delay, doubled per attempt"},
        {"LIVEFLOW_LIVE_TTL_S", SETTING_INT, "86400", 60, 31536000, OFF(live_ttl_s), W, "TTL of temp:live:{stream_id}"},
        {"LIVEFLOW_CONFIG_FILE", SETTING_STR, NULL, 0, 0, 0, 0, "optional KEY = value file"},
};

#undef R
#undef W
#undef A

#define TABLE_LEN (sizeof(settings_table) / sizeof(settings_table[0]))
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
                snprintf(errstr, errstr_size, "LIVEFLOW_CONFIG_FILE: %s: %s", path, strerror(errno));
                return -1;
        }
        while (fgets(line, sizeof(line), f)) {
                char *s = trim(line), *eq;

                lineno++;
                if (!*s || *s == '#')
                        continue;
                if (!(eq = strchr(s, '=')) || strncmp(s, "LIVEFLOW_", 9) != 0) {
                        snprintf(errstr, errstr_size, "%s:%d: expected LIVEFLOW_KEY = value", path, lineno);
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
                        if (k->def == REQUIRED) {
                                snprintf(errstr, errstr_size, "%s is not set (%s)", k->name, k->desc);
                                return -1;
                        }
                        if (!(v = k->def))
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
               strncmp(key, "LIVEFLOW_STACK_", 15) == 0 || strncmp(key, "LIVEFLOW_TEST_", 14) == 0 ||
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
                if (strncmp(key, PROP_PREFIX, strlen(PROP_PREFIX)) == 0 && n > strlen(PROP_PREFIX)) {
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
                    !getenv(src->file[i].key) && add_kafka_prop(s, src->file[i].key, src->file[i].value) == -1)
                        return -1;
                if (!is_known_key(src->file[i].key))
                        log_warn(NULL, "unknown configuration key %s ignored", src->file[i].key);
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
                snprintf(errstr, errstr_size, "LIVEFLOW_LOG_LEVEL: \"%s\" is not error, warn, info or debug",
                         s->log_level);
                goto out;
        }
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
                                     !v ? "" : k->type == SETTING_SECRET ? "***" : v);
                }
                if (n < 0)
                        return;
                o += (size_t)n;
        }
}
