/* test_devbroker.c: the dev broker's configuration rules, and the binary end to end. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The Makefile gives tests -Ilib and -Itests only; the module's header sits beside it. */
#include "devbroker.h"
#include "support.h"

#define WAIT_MS 15000

static const char *const contract_topics[] = {
        "live.stream",      "live.record",     "live.snapshot", "live.audit",
        "live.reward",      "live.withdrawal", "live.viewer",   "live.other",
        "live.interaction", "live.notify",     "live.session",
};
#define CONTRACT_TOPIC_CNT (sizeof(contract_topics) / sizeof(contract_topics[0]))

/* ------------------------------------------------------------------ configuration */

static void env_clear(void)
{
        unsetenv("LIVEFLOW_DEVBROKER_BROKERS");
        unsetenv("LIVEFLOW_DEVBROKER_PARTITIONS");
        unsetenv("LIVEFLOW_DEVBROKER_TOPICS");
        unsetenv("LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE");
        unsetenv("LIVEFLOW_LOG_LEVEL");
}

static const struct devbroker_topic *find_topic(const struct devbroker_config *cfg,
                                                const char *name)
{
        for (int i = 0; i < cfg->topic_cnt; i++)
                if (strcmp(cfg->topics[i].name, name) == 0)
                        return &cfg->topics[i];
        return NULL;
}

TestSuite(devbroker_config, .init = env_clear);

Test(devbroker_config, defaults_to_the_contract_topics_and_their_dlq)
{
        static struct devbroker_config cfg;
        char errstr[256] = "";
        char dlq[64];

        cr_assert(eq(int, devbroker_config_load(&cfg, errstr, sizeof(errstr)), 0), "%s", errstr);
        cr_assert(eq(int, cfg.brokers, 1));
        cr_assert(eq(int, cfg.partitions, 6));
        cr_assert(eq(int, cfg.topic_cnt, 2 * (int)CONTRACT_TOPIC_CNT));
        cr_assert(cfg.bootstrap_file == NULL);
        for (size_t i = 0; i < CONTRACT_TOPIC_CNT; i++) {
                snprintf(dlq, sizeof(dlq), "%s.dlq", contract_topics[i]);
                cr_assert(find_topic(&cfg, contract_topics[i]) != NULL, "%s", contract_topics[i]);
                cr_assert(find_topic(&cfg, dlq) != NULL, "%s", dlq);
                cr_assert(eq(int, find_topic(&cfg, dlq)->partitions, 6));
        }
}

Test(devbroker_config, rejects_a_bad_count_naming_the_variable)
{
        static const char *const bad[] = {"abc", "0", "65", "6x", "", " 6", "-1"};
        static struct devbroker_config cfg;
        char errstr[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                setenv("LIVEFLOW_DEVBROKER_PARTITIONS", bad[i], 1);
                cr_assert(eq(int, devbroker_config_load(&cfg, errstr, sizeof(errstr)), -1),
                          "\"%s\" accepted", bad[i]);
                cr_assert(strstr(errstr, "LIVEFLOW_DEVBROKER_PARTITIONS") != NULL, "%s", errstr);
        }
        env_clear();
        setenv("LIVEFLOW_DEVBROKER_BROKERS", "6", 1);
        cr_assert(eq(int, devbroker_config_load(&cfg, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "LIVEFLOW_DEVBROKER_BROKERS: \"6\"") != NULL, "%s", errstr);
}

Test(devbroker_config, adds_extra_topics_once_with_their_partitions)
{
        static struct devbroker_config cfg;
        char errstr[256] = "";

        setenv("LIVEFLOW_DEVBROKER_PARTITIONS", "3", 1);
        setenv("LIVEFLOW_DEVBROKER_TOPICS", "test.a,test.b:1,,live.stream:9,test.a", 1);
        cr_assert(eq(int, devbroker_config_load(&cfg, errstr, sizeof(errstr)), 0), "%s", errstr);
        cr_assert(eq(int, cfg.topic_cnt, 2 * (int)CONTRACT_TOPIC_CNT + 2));
        cr_assert(eq(int, find_topic(&cfg, "test.a")->partitions, 3));
        cr_assert(eq(int, find_topic(&cfg, "test.b")->partitions, 1));
        cr_assert(eq(int, find_topic(&cfg, "live.stream")->partitions, 3), "first one wins");
}

Test(devbroker_config, rejects_a_bad_topic_name)
{
        static const char *const bad[] = {"a b", "x:0", "x:65", "x:", "..", "a/b"};
        static struct devbroker_config cfg;
        char errstr[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                setenv("LIVEFLOW_DEVBROKER_TOPICS", bad[i], 1);
                cr_assert(eq(int, devbroker_config_load(&cfg, errstr, sizeof(errstr)), -1),
                          "\"%s\" accepted", bad[i]);
                cr_assert(strstr(errstr, "LIVEFLOW_DEVBROKER_TOPICS") != NULL, "%s", errstr);
        }
}

/* ------------------------------------------------------------------ the binary */

struct broker_child {
        pid_t pid;
        char dir[64];
        char bootstrap_file[128];
        char log_path[128];
        char bootstraps[512];
};

/* True once the child's log holds line; fails the test if the child died first. */
static bool log_has(const struct broker_child *bc, const char *line)
{
        char *log = support_read_file(bc->log_path, NULL);
        bool found = log && strstr(log, line);

        free(log);
        return found;
}

static void wait_log(const struct broker_child *bc, const char *line)
{
        long long deadline = support_now_ms() + WAIT_MS;

        while (!log_has(bc, line) && support_now_ms() < deadline)
                support_sleep_ms(20);
        cr_assert(log_has(bc, line), "no \"%s\" in %s", line, bc->log_path);
}

static pid_t spawn_broker(struct broker_child *bc, const char *partitions)
{
        static char env_topics[] = "LIVEFLOW_DEVBROKER_TOPICS=test.extra:2";
        char bin[512], env_file[200], env_parts[64];
        char *argv[] = {bin, NULL};
        char *env[] = {env_file, env_parts, env_topics, NULL};

        strcpy(bc->dir, "/tmp/lftdb.XXXXXX");
        cr_assert(mkdtemp(bc->dir) != NULL, "mkdtemp");
        snprintf(bc->bootstrap_file, sizeof(bc->bootstrap_file), "%s/bootstrap", bc->dir);
        snprintf(bc->log_path, sizeof(bc->log_path), "%s/devbroker.log", bc->dir);
        snprintf(env_file, sizeof(env_file), "LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE=%s",
                 bc->bootstrap_file);
        snprintf(env_parts, sizeof(env_parts), "LIVEFLOW_DEVBROKER_PARTITIONS=%s", partitions);
        support_bin_path("liveflow-devbroker", bin, sizeof(bin));
        cr_assert(access(bin, X_OK) == 0, "%s is not built", bin);
        return bc->pid = support_spawn(argv, env, bc->log_path);
}

/* Starts the broker and waits for its bootstrap file (the sign that it is ready). */
static void broker_start(struct broker_child *bc)
{
        long long deadline = support_now_ms() + WAIT_MS;
        char *text = NULL;

        spawn_broker(bc, "6");
        while (!(text = support_read_file(bc->bootstrap_file, NULL))) {
                cr_assert(eq(int, support_wait_exit(bc->pid, 0), -1), "devbroker exited early");
                cr_assert(support_now_ms() < deadline, "no bootstrap file after %d ms", WAIT_MS);
                support_sleep_ms(10);
        }
        text[strcspn(text, "\n")] = '\0';
        snprintf(bc->bootstraps, sizeof(bc->bootstraps), "%s", text);
        free(text);
        cr_assert(strncmp(bc->bootstraps, "127.0.0.1:", 10) == 0, "%s", bc->bootstraps);
        wait_log(bc, "ready bootstrap=");
}

/* SIGTERM, then the exit status; the temporary directory goes too. */
static int broker_stop(struct broker_child *bc)
{
        int status;

        kill(bc->pid, SIGTERM);
        status = support_wait_exit(bc->pid, WAIT_MS);
        if (status == -1) {
                kill(bc->pid, SIGKILL);
                waitpid(bc->pid, NULL, 0);
        }
        unlink(bc->bootstrap_file);
        unlink(bc->log_path);
        rmdir(bc->dir);
        return status;
}

/* A client of the broker; is_quiet drops its log lines (for a broker that is down). */
static rd_kafka_t *client_new(rd_kafka_type_t type, const char *bootstraps, bool is_quiet)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[256];
        rd_kafka_t *rk;

        cr_assert(
                eq(int,
                   rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr)),
                   RD_KAFKA_CONF_OK));
        if (is_quiet)
                cr_assert(eq(int, rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)),
                             RD_KAFKA_CONF_OK));
        if (type == RD_KAFKA_PRODUCER) {
                cr_assert(eq(int,
                             rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                                               sizeof(errstr)),
                             RD_KAFKA_CONF_OK));
        } else {
                cr_assert(eq(int,
                             rd_kafka_conf_set(conf, "group.id", "test_devbroker", errstr,
                                               sizeof(errstr)),
                             RD_KAFKA_CONF_OK));
                cr_assert(eq(int,
                             rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                                               sizeof(errstr)),
                             RD_KAFKA_CONF_OK));
        }
        rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        cr_assert(rk != NULL, "rd_kafka_new: %s", errstr);
        return rk;
}

static int partition_count(const rd_kafka_metadata_t *md, const char *topic)
{
        for (int i = 0; i < md->topic_cnt; i++)
                if (strcmp(md->topics[i].topic, topic) == 0)
                        return md->topics[i].err ? -1 : md->topics[i].partition_cnt;
        return -1;
}

static void assert_topics(rd_kafka_t *rk)
{
        const rd_kafka_metadata_t *md;
        char dlq[64];

        cr_assert(eq(int, rd_kafka_metadata(rk, 1, NULL, &md, WAIT_MS), 0));
        for (size_t i = 0; i < CONTRACT_TOPIC_CNT; i++) {
                snprintf(dlq, sizeof(dlq), "%s.dlq", contract_topics[i]);
                cr_assert(eq(int, partition_count(md, contract_topics[i]), 6), "%s",
                          contract_topics[i]);
                cr_assert(eq(int, partition_count(md, dlq), 6), "%s", dlq);
        }
        cr_assert(eq(int, partition_count(md, "test.extra"), 2));
        rd_kafka_metadata_destroy(md);
}

struct delivery {
        rd_kafka_resp_err_t err;
        int32_t partition;
        int64_t offset;
        bool is_done;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        struct delivery *d = rkm->_private;

        (void)rk;
        (void)opaque;
        d->err = rkm->err;
        d->partition = rkm->partition;
        d->offset = rkm->offset;
        d->is_done = true;
}

static void produce_one(const char *bootstraps, struct delivery *d)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char value[] = "tip"; /* RD_KAFKA_V_VALUE takes a non-const pointer */
        char errstr[256];
        rd_kafka_resp_err_t err;
        rd_kafka_t *rk;

        rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr));
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        cr_assert(rk != NULL, "%s", errstr);
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("live.reward"), RD_KAFKA_V_KEY("anchor-7", 8),
                                RD_KAFKA_V_VALUE(value, 3),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADER("trace_id", "9f2c1e0a", -1),
                                RD_KAFKA_V_HEADER("event_type", "reward", -1), RD_KAFKA_V_OPAQUE(d),
                                RD_KAFKA_V_END);
        cr_assert(eq(int, err, RD_KAFKA_RESP_ERR_NO_ERROR), "%s", rd_kafka_err2str(err));
        rd_kafka_flush(rk, WAIT_MS);
        rd_kafka_destroy(rk);
        cr_assert(d->is_done, "no delivery report");
        cr_assert(eq(int, d->err, 0), "%s", rd_kafka_err2str(d->err));
}

static void assert_header(const rd_kafka_message_t *rkm, const char *name, const char *want)
{
        rd_kafka_headers_t *hdrs;
        const void *value;
        size_t size;

        cr_assert(eq(int, rd_kafka_message_headers(rkm, &hdrs), 0), "no headers");
        cr_assert(eq(int, rd_kafka_header_get_last(hdrs, name, &value, &size), 0), "%s", name);
        cr_assert(eq(sz, size, strlen(want)));
        cr_assert(memcmp(value, want, size) == 0, "%s", name);
}

static void consume_one(const char *bootstraps, const struct delivery *d)
{
        rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, bootstraps, false);
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
        long long deadline = support_now_ms() + WAIT_MS;
        rd_kafka_message_t *rkm = NULL;

        rd_kafka_topic_partition_list_add(parts, "live.reward", d->partition)->offset = d->offset;
        cr_assert(eq(int, rd_kafka_assign(rk, parts), 0));
        rd_kafka_topic_partition_list_destroy(parts);
        while (!rkm && support_now_ms() < deadline) {
                rkm = rd_kafka_consumer_poll(rk, 200);
                if (rkm && rkm->err) {
                        rd_kafka_message_destroy(rkm);
                        rkm = NULL;
                }
        }
        cr_assert(rkm != NULL, "nothing consumed");
        cr_assert(eq(i64, rkm->offset, d->offset));
        cr_assert(eq(sz, rkm->key_len, 8));
        cr_assert(memcmp(rkm->key, "anchor-7", 8) == 0);
        cr_assert(eq(sz, rkm->len, 3));
        assert_header(rkm, "trace_id", "9f2c1e0a");
        assert_header(rkm, "event_type", "reward");
        rd_kafka_message_destroy(rkm);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

TestSuite(devbroker, .timeout = 60);

Test(devbroker, serves_the_contract_topics_and_stops_cleanly)
{
        struct broker_child bc;
        struct delivery d = {0};
        rd_kafka_t *rk;

        broker_start(&bc);
        rk = client_new(RD_KAFKA_PRODUCER, bc.bootstraps, false);
        assert_topics(rk);
        rd_kafka_destroy(rk);
        produce_one(bc.bootstraps, &d);
        consume_one(bc.bootstraps, &d);

        cr_assert(eq(int, broker_stop(&bc), 0));
}

Test(devbroker, stop_removes_its_bootstrap_file)
{
        struct broker_child bc;
        char path[128];

        broker_start(&bc);
        snprintf(path, sizeof(path), "%s", bc.bootstrap_file);
        kill(bc.pid, SIGTERM);
        cr_assert(eq(int, support_wait_exit(bc.pid, WAIT_MS), 0));
        cr_assert(access(path, F_OK) == -1, "%s is still there", path);
        broker_stop(&bc);
}

Test(devbroker, bad_partition_count_exits_2_naming_the_variable)
{
        struct broker_child bc;
        char *log;

        spawn_broker(&bc, "abc");
        cr_assert(eq(int, support_wait_exit(bc.pid, WAIT_MS), 2));
        log = support_read_file(bc.log_path, NULL);
        cr_assert(log && strstr(log, "LIVEFLOW_DEVBROKER_PARTITIONS: \"abc\"") != NULL, "%s",
                  log ? log : "(no log)");
        free(log);
        broker_stop(&bc);
}

/* A fresh client's metadata request: answered (0) or not within timeout_ms. */
static rd_kafka_resp_err_t metadata_probe(const char *bootstraps, int timeout_ms)
{
        rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, bootstraps, true);
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);

        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        return err;
}

Test(devbroker, sigusr1_takes_the_brokers_down_and_sigusr2_brings_them_back)
{
        struct broker_child bc;

        broker_start(&bc);
        kill(bc.pid, SIGUSR1);
        wait_log(&bc, "brokers down (SIGUSR1)");
        cr_assert(metadata_probe(bc.bootstraps, 1500) != RD_KAFKA_RESP_ERR_NO_ERROR,
                  "a down broker answered");
        kill(bc.pid, SIGUSR2);
        wait_log(&bc, "brokers up (SIGUSR2)");
        cr_assert(eq(int, metadata_probe(bc.bootstraps, WAIT_MS), 0));
        cr_assert(eq(int, broker_stop(&bc), 0));
}
