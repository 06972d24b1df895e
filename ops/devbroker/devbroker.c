/*
 * devbroker.c: the dev Kafka broker: librdkafka's mock cluster with every liveflow topic
 * created up front, configured from LIVEFLOW_DEVBROKER_* variables.
 *
 * Limits of the mock cluster (librdkafka 2.0.2, see shared/local-stack-facts.md), which make
 * this a development and test broker only:
 *  - memory only: everything is gone when the process stops;
 *  - each partition keeps only its newest ~5 MiB or 100k batches and drops older ones
 *    silently, so a slow consumer sees offsets jump (size tests and benchmarks for it);
 *  - listeners bind 127.0.0.1 on ephemeral ports (no API to choose one), hence the
 *    bootstrap file;
 *  - the Admin API's CreateTopics and friends time out and topic auto-creation is always
 *    on with 4 partitions, hence the topics created here with their real partition count;
 *  - a consumer group rebalance waits session.timeout.ms - 1 s per round, transactions
 *    lack their semantics and offsets_for_times answers -1;
 *  - a round ends as soon as the leader's SyncGroup has set every member's assignment, and a
 *    member whose own SyncGroup comes after that is refused (INVALID_REQUEST) and joins again:
 *    members that start together (a process's lanes) get all their partitions one or two
 *    rounds late in about one start in four. Kafka answers that SyncGroup with the assignment.
 */
#include "devbroker.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "contract.h"
#include "log.h"

struct devbroker {
        rd_kafka_t *rk; /* the handle the mock cluster lives on; never produces */
        rd_kafka_mock_cluster_t *mc;
        int brokers;
};

/* The topics of the contract (CONTRACT.md §3), and live.session, liveflow's own hand-off of
 * the sessions the stream role closed; each also gets a "<topic>.dlq". */
static const char *const contract_topics[] = {
        LF_TOPIC_STREAM,  LF_TOPIC_RECORD,      LF_TOPIC_SNAPSHOT, LF_TOPIC_AUDIT,
        LF_TOPIC_REWARD,  LF_TOPIC_WITHDRAWAL,  LF_TOPIC_VIEWER,   LF_TOPIC_OTHER,
        LF_TOPIC_SESSION, LF_TOPIC_INTERACTION, LF_TOPIC_NOTIFY,
};

/* ------------------------------------------------------------------ configuration */

/* Parses a whole decimal integer in [min, max]; -1 on anything else. */
static int parse_bounded_int(const char *s, int min, int max, int *out)
{
        char *end;
        long v;

        if (!s || !*s || isspace((unsigned char)*s))
                return -1;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        *out = (int)v;
        return 0;
}

static int env_int(const char *name, int def, int min, int max, int *out, char *errstr,
                   size_t errstr_size)
{
        const char *s = getenv(name);

        if (!s) {
                *out = def;
                return 0;
        }
        if (parse_bounded_int(s, min, max, out) == -1) {
                snprintf(errstr, errstr_size, "%s: \"%s\" is not an integer in %d..%d", name, s,
                         min, max);
                return -1;
        }
        return 0;
}

/* Kafka's legal topic names: 1..249 of [A-Za-z0-9._-], and not "." or "..". */
static bool is_valid_topic_name(const char *s, size_t n)
{
        if (n == 0 || n > DEVBROKER_TOPIC_NAME_MAX)
                return false;
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
                        return false;
        return true;
}

/* Appends a topic unless one of that name is there already (the first definition wins). */
static int add_topic(struct devbroker_config *cfg, const char *name, size_t n, int partitions,
                     char *errstr, size_t errstr_size)
{
        for (int i = 0; i < cfg->topic_cnt; i++)
                if (strlen(cfg->topics[i].name) == n && memcmp(cfg->topics[i].name, name, n) == 0)
                        return 0;
        if (cfg->topic_cnt == DEVBROKER_MAX_TOPICS) {
                snprintf(errstr, errstr_size, "more than %d topics", DEVBROKER_MAX_TOPICS);
                return -1;
        }
        memcpy(cfg->topics[cfg->topic_cnt].name, name, n);
        cfg->topics[cfg->topic_cnt].name[n] = '\0';
        cfg->topics[cfg->topic_cnt].partitions = partitions;
        cfg->topic_cnt++;
        return 0;
}

static int add_contract_topics(struct devbroker_config *cfg, char *errstr, size_t errstr_size)
{
        char dlq[DEVBROKER_TOPIC_NAME_MAX + 1];
        size_t cnt = sizeof(contract_topics) / sizeof(contract_topics[0]);

        for (size_t i = 0; i < cnt; i++) {
                const char *t = contract_topics[i];

                snprintf(dlq, sizeof(dlq), "%s" LF_DLQ_SUFFIX, t);
                if (add_topic(cfg, t, strlen(t), cfg->partitions, errstr, errstr_size) == -1 ||
                    add_topic(cfg, dlq, strlen(dlq), cfg->partitions, errstr, errstr_size) == -1)
                        return -1;
        }
        return 0;
}

/* Adds one "name" or "name:partitions" item of LIVEFLOW_DEVBROKER_TOPICS. */
static int add_extra_topic(struct devbroker_config *cfg, const char *item, size_t n, char *errstr,
                           size_t errstr_size)
{
        const char *colon = memchr(item, ':', n);
        size_t name_len = colon ? (size_t)(colon - item) : n;
        int partitions = cfg->partitions;

        if (colon) {
                char num[16];
                size_t num_len = n - name_len - 1;

                if (num_len >= sizeof(num))
                        return -1;
                memcpy(num, colon + 1, num_len);
                num[num_len] = '\0';
                if (parse_bounded_int(num, 1, 64, &partitions) == -1)
                        return -1;
        }
        if (!is_valid_topic_name(item, name_len))
                return -1;
        return add_topic(cfg, item, name_len, partitions, errstr, errstr_size);
}

static int add_extra_topics(struct devbroker_config *cfg, char *errstr, size_t errstr_size)
{
        static const char var[] = "LIVEFLOW_DEVBROKER_TOPICS";
        const char *list = getenv(var);
        const char *p = list;

        while (p && *p) {
                size_t n = strcspn(p, ",");

                if (n > 0 && add_extra_topic(cfg, p, n, errstr, errstr_size) == -1) {
                        snprintf(errstr, errstr_size,
                                 "%s: \"%.*s\" is not a topic name[:partitions 1..64] (in \"%s\")",
                                 var, (int)n, p, list);
                        return -1;
                }
                p += n + (p[n] == ',');
        }
        return 0;
}

static int log_level_load(int *out, char *errstr, size_t errstr_size)
{
        const char *s = getenv("LIVEFLOW_LOG_LEVEL");

        *out = LOG_LEVEL_INFO;
        if (!s || !*s)
                return 0;
        if ((*out = log_level_parse(s)) == -1) {
                snprintf(errstr, errstr_size,
                         "LIVEFLOW_LOG_LEVEL: \"%s\" is not error, warn, info or debug", s);
                return -1;
        }
        return 0;
}

int devbroker_config_load(struct devbroker_config *cfg, char *errstr, size_t errstr_size)
{
        const char *file = getenv("LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE");

        memset(cfg, 0, sizeof(*cfg));
        if (env_int("LIVEFLOW_DEVBROKER_BROKERS", 1, 1, 5, &cfg->brokers, errstr, errstr_size) ==
                    -1 ||
            env_int("LIVEFLOW_DEVBROKER_PARTITIONS", 6, 1, 64, &cfg->partitions, errstr,
                    errstr_size) == -1 ||
            log_level_load(&cfg->log_level, errstr, errstr_size) == -1)
                return -1;
        if (file && !*file) {
                snprintf(errstr, errstr_size, "LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE: is empty");
                return -1;
        }
        cfg->bootstrap_file = file;
        if (add_contract_topics(cfg, errstr, errstr_size) == -1 ||
            add_extra_topics(cfg, errstr, errstr_size) == -1)
                return -1;
        return 0;
}

/* ------------------------------------------------------------------ the waker */

/*
 * librdkafka 2.0.2's mock thread loses some wake-ups for commands sent from other threads
 * (it drains its wake-up pipe after serving its queue, so a command queued in between waits
 * for the thread's 1 s poll timeout): measured 1-4 s to create the 16 topics. While we send
 * commands, this thread connects to broker 1's listener every 5 ms; each connection wakes
 * the mock thread, which serves its queue first. 40 topics then take ~0.1 s.
 */
struct waker {
        pthread_t thread;
        atomic_bool is_stopping;
        bool is_running;
        struct sockaddr_in addr;
};

static void *waker_main(void *arg)
{
        struct waker *w = arg;
        const struct timespec interval = {0, 5 * 1000 * 1000};

        while (!atomic_load(&w->is_stopping)) {
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

                if (fd != -1) {
                        /* The outcome does not matter: the attempt alone wakes the thread. */
                        (void)connect(fd, (const struct sockaddr *)&w->addr, sizeof(w->addr));
                        close(fd);
                }
                nanosleep(&interval, NULL);
        }
        return NULL;
}

/* Starts the waker on the first "127.0.0.1:port" of bootstraps; without it, only slower. */
static void waker_start(struct waker *w, const char *bootstraps)
{
        const char *colon = strchr(bootstraps, ':');

        memset(w, 0, sizeof(*w));
        if (!colon)
                return;
        w->addr.sin_family = AF_INET;
        w->addr.sin_port = htons((uint16_t)atoi(colon + 1));
        w->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        atomic_init(&w->is_stopping, false);
        w->is_running = pthread_create(&w->thread, NULL, waker_main, w) == 0;
}

static void waker_stop(struct waker *w)
{
        if (!w->is_running)
                return;
        atomic_store(&w->is_stopping, true);
        pthread_join(w->thread, NULL);
        w->is_running = false;
}

/* ------------------------------------------------------------------ the cluster */

/* librdkafka's syslog levels into our logger (kcat does the same). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        (void)rk;
        /* This handle only hosts the cluster and is meant to connect nowhere. */
        if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers"))
                level = 7;
        if (level <= 3)
                log_error(NULL, "rdkafka %s: %s", fac, buf);
        else if (level == 4)
                log_warn(NULL, "rdkafka %s: %s", fac, buf);
        else if (level <= 6)
                log_info(NULL, "rdkafka %s: %s", fac, buf);
        else
                log_debug(NULL, "rdkafka %s: %s", fac, buf);
}

static rd_kafka_t *client_new(char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;

        rd_kafka_conf_set_log_cb(conf, on_log);
        if (rd_kafka_conf_set(conf, "client.id", "liveflow-devbroker", errstr, errstr_size) !=
            RD_KAFKA_CONF_OK) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        /* rd_kafka_new() takes conf only when it succeeds. */
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size)))
                rd_kafka_conf_destroy(conf);
        return rk;
}

static int topics_create(struct devbroker *db, const struct devbroker_config *cfg, char *errstr,
                         size_t errstr_size)
{
        struct waker w;
        int rc = 0;

        waker_start(&w, devbroker_bootstraps(db));
        for (int i = 0; i < cfg->topic_cnt && rc == 0; i++) {
                const struct devbroker_topic *t = &cfg->topics[i];
                rd_kafka_resp_err_t err =
                        rd_kafka_mock_topic_create(db->mc, t->name, t->partitions, 1);

                if (err) {
                        snprintf(errstr, errstr_size, "creating topic %s (%d partitions): %s",
                                 t->name, t->partitions, rd_kafka_err2str(err));
                        rc = -1;
                }
        }
        waker_stop(&w);
        return rc;
}

struct devbroker *devbroker_new(const struct devbroker_config *cfg, char *errstr,
                                size_t errstr_size)
{
        struct devbroker *db = calloc(1, sizeof(*db));

        if (!db) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        db->brokers = cfg->brokers;
        if (!(db->rk = client_new(errstr, errstr_size)))
                goto fail;
        if (!(db->mc = rd_kafka_mock_cluster_new(db->rk, cfg->brokers))) {
                snprintf(errstr, errstr_size, "rd_kafka_mock_cluster_new(%d brokers) failed",
                         cfg->brokers);
                goto fail;
        }
        if (topics_create(db, cfg, errstr, errstr_size) == -1)
                goto fail;
        return db;

fail:
        devbroker_destroy(db);
        return NULL;
}

const char *devbroker_bootstraps(const struct devbroker *db)
{
        return rd_kafka_mock_cluster_bootstraps(db->mc);
}

int devbroker_set_up(struct devbroker *db, bool is_up, char *errstr, size_t errstr_size)
{
        struct waker w;
        int rc = 0;

        /* Broker ids run from 1 to broker_cnt (rd_kafka_mock_cluster_new()). A broker that
         * is down does not listen, so bringing them up may still take a second each. */
        waker_start(&w, devbroker_bootstraps(db));
        for (int32_t id = 1; id <= db->brokers && rc == 0; id++) {
                rd_kafka_resp_err_t err = is_up ? rd_kafka_mock_broker_set_up(db->mc, id)
                                                : rd_kafka_mock_broker_set_down(db->mc, id);

                if (err) {
                        snprintf(errstr, errstr_size, "broker %d %s: %s", (int)id,
                                 is_up ? "up" : "down", rd_kafka_err2str(err));
                        rc = -1;
                }
        }
        waker_stop(&w);
        return rc;
}

void devbroker_poll(struct devbroker *db, int timeout_ms)
{
        rd_kafka_poll(db->rk, timeout_ms);
}

int devbroker_write_bootstrap(const char *path, const char *bootstraps, char *errstr,
                              size_t errstr_size)
{
        char tmp[4096];
        FILE *fp;
        bool is_failed;
        int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());

        if (n < 0 || (size_t)n >= sizeof(tmp)) {
                snprintf(errstr, errstr_size, "%s: path too long", path);
                return -1;
        }
        if (!(fp = fopen(tmp, "w"))) {
                snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
                return -1;
        }
        /* fclose() reports a failed buffered write, so both results count. */
        is_failed = fprintf(fp, "%s\n", bootstraps) < 0;
        if (fclose(fp) == EOF)
                is_failed = true;
        if (is_failed) {
                snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
                unlink(tmp);
                return -1;
        }
        if (rename(tmp, path) == -1) {
                snprintf(errstr, errstr_size, "rename %s -> %s: %s", tmp, path, strerror(errno));
                unlink(tmp);
                return -1;
        }
        return 0;
}

void devbroker_destroy(struct devbroker *db)
{
        struct waker w;

        if (!db)
                return;
        if (db->mc) {
                waker_start(&w, devbroker_bootstraps(db)); /* the stop is a command too */
                rd_kafka_mock_cluster_destroy(db->mc);
                waker_stop(&w);
        }
        if (db->rk)
                rd_kafka_destroy(db->rk);
        free(db);
}
