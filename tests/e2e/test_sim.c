/*
 * test_sim.c: liveflow-sim plays a short evening against a receiver and every worker started
 * on the test fixtures (a database of its own, groups of its own starting at the topics'
 * ends), and its --verify finds every total it caused in MySQL and Redis.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mysql.h>

#include "support.h"

#define TENCENT_KEY  "sim-tencent-key"
#define SRS_TOKEN    "sim-srs-token"
#define PUBLISH_KEY  "sim-publish-key"
#define HMAC_SECRET  "whsec_c2ltdWxhdGVkLWV2ZW5pbmctc2VjcmV0LWtleS0zMmI="
#define AGORA_SECRET "sim-agora-secret"
#define ALIBABA_KEY  "sim-alibaba-key"
#define ALIBABA_HOST "push.sim.example"
#define MAX_PROCS    12

static struct {
        char mysql_url[512], prefix[48], dir[256];
        int http_port;
        pid_t pids[MAX_PROCS];
        int n;
} fx;

static const char *const all_topics[] = {"live.stream",  "live.record", "live.snapshot",
                                         "live.audit",   "live.reward", "live.withdrawal",
                                         "live.viewer",  "live.other",  "live.interaction",
                                         "live.session", NULL};

static void setup(void)
{
        const char *d = getenv("LIVEFLOW_TEST_DIR");

        support_unique_name("sim", fx.prefix, sizeof(fx.prefix));
        support_create_database(fx.mysql_url, sizeof(fx.mysql_url));
        snprintf(fx.dir, sizeof(fx.dir), "%s", d && *d ? d : "/tmp");
}

static void teardown(void)
{
        for (int i = 0; i < fx.n; i++)
                if (fx.pids[i] > 0) {
                        kill(fx.pids[i], SIGTERM);
                        if (support_wait_exit(fx.pids[i], 15000) == -1) {
                                kill(fx.pids[i], SIGKILL);
                                support_wait_exit(fx.pids[i], 5000);
                        }
                }
        memset(&fx, 0, sizeof(fx));
}

TestSuite(sim, .init = setup, .fini = teardown, .timeout = 300);

static void start_receiver(void)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_http[64], log[512];
        char *argv[] = {bin, NULL};
        char *env[] = {e_boot,
                       e_mysql,
                       e_redis,
                       e_admin,
                       e_http,
                       (char *)"LIVEFLOW_HTTP_ADDR=127.0.0.1",
                       (char *)"LIVEFLOW_TENCENT_KEY=" TENCENT_KEY,
                       (char *)"LIVEFLOW_SRS_TOKEN=" SRS_TOKEN,
                       (char *)"LIVEFLOW_SRS_PUBLISH_KEY=" PUBLISH_KEY,
                       (char *)"LIVEFLOW_HMAC_SECRET=" HMAC_SECRET,
                       (char *)"LIVEFLOW_AGORA_SECRET=" AGORA_SECRET,
                       (char *)"LIVEFLOW_ALIBABA_KEY=" ALIBABA_KEY,
                       (char *)"LIVEFLOW_ALIBABA_DOMAIN=" ALIBABA_HOST,
                       (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000",
                       NULL};
        int admin = support_free_port();

        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        fx.http_port = support_free_port();
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", fx.mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", admin);
        snprintf(e_http, sizeof(e_http), "LIVEFLOW_HTTP_PORT=%d", fx.http_port);
        snprintf(log, sizeof(log), "%s/%s.receiver.log", fx.dir, fx.prefix);
        fx.pids[fx.n++] = support_spawn(argv, env, log);
        cr_assert(support_wait_ready(admin, 20000) == 0, "receiver not ready; see %s", log);
}

/* Starts a worker at the topics' ends without waiting for it; @returns its admin port. */
static int start(const char *binary, const char *role)
{
        char group[128], log[512];
        int admin;

        snprintf(group, sizeof(group), "%s.%s", fx.prefix, role ? role : binary);
        snprintf(log, sizeof(log), "%s/%s.%s.log", fx.dir, fx.prefix, role ? role : binary);
        support_group_at_end(group, all_topics);
        fx.pids[fx.n++] =
                support_spawn_worker(binary, role, fx.mysql_url, group, NULL, log, &admin);
        return admin;
}

Test(sim, a_short_evening_verifies_exactly)
{
        static const char *const roles[] = {"stream",      "record", "snapshot", "audit",
                                            "reward-sync", "other",  "audience", "profiles"};
        char bin[512];
        int rc;

        int admin[MAX_PROCS], n = 0;

        start_receiver();
        /* Together: each joins its group in a few seconds, and they need not wait in turn. */
        for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
                admin[n++] = start("liveflow-consumer", roles[i]);
        admin[n++] = start("liveflow-settlement", NULL);
        admin[n++] = start("liveflow-stats", NULL);
        for (int i = 0; i < n; i++)
                cr_assert(support_wait_ready(admin[i], 30000) == 0,
                          "worker %d not ready; see %s/%s.*.log", i, fx.dir, fx.prefix);
        support_bin_path("liveflow-sim", bin, sizeof(bin));
        rc = support_sh(
                "LIVEFLOW_ENV_FILE=/dev/null LIVEFLOW_RECEIVER_URL=http://127.0.0.1:%d "
                "LIVEFLOW_TENCENT_KEY=%s LIVEFLOW_SRS_TOKEN=%s LIVEFLOW_SRS_PUBLISH_KEY=%s "
                "LIVEFLOW_HMAC_SECRET=%s LIVEFLOW_AGORA_SECRET=%s LIVEFLOW_ALIBABA_KEY=%s "
                "LIVEFLOW_ALIBABA_DOMAIN=%s LIVEFLOW_MYSQL_URL='%s' LIVEFLOW_REDIS_URL='%s' "
                "LIVEFLOW_KAFKA_BOOTSTRAP='%s' "
                "'%s' --seed 11 --duration 8 --rate 100 --anchors 8 --audiences 80 "
                "--verify --wait 120 --json >%s/%s.sim.json 2>%s/%s.sim.log",
                fx.http_port, TENCENT_KEY, SRS_TOKEN, PUBLISH_KEY, HMAC_SECRET, AGORA_SECRET,
                ALIBABA_KEY, ALIBABA_HOST, fx.mysql_url, support_fixture("LIVEFLOW_TEST_REDIS_URL"),
                support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), bin, fx.dir, fx.prefix, fx.dir,
                fx.prefix);
        cr_assert_eq(rc, 0, "liveflow-sim --verify exited %d; see %s/%s.sim.log", rc, fx.dir,
                     fx.prefix);
        /* Every vendor played its part: 8 anchors, two streams of each. One Block verdict
         * suspended an anchor and cut its stream, and the share change went through
         * liveflow-ctl (which keeps the history). */
        {
                MYSQL *m = support_mysql_connect(fx.mysql_url);

                cr_assert_eq(support_query_int(m, "SELECT COUNT(DISTINCT vendor) FROM live_streams "
                                                  "WHERE status = 'ended'"),
                             4);
                cr_assert_eq(support_query_int(m,
                                               "SELECT COUNT(*) FROM anchors a JOIN live_streams "
                                               "s ON s.anchor_id = a.anchor_id WHERE a.status = "
                                               "'suspended' AND s.close_method = 3"),
                             1);
                cr_assert_eq(support_query_int(m,
                                               "SELECT COUNT(*) FROM notify_messages WHERE kind = "
                                               "'anchor.suspended' AND sent_at IS NOT NULL"),
                             1);
                cr_assert_eq(support_query_int(m, "SELECT COUNT(*) FROM revenue_share_history"), 1);
                mysql_close(m);
        }
        {
                char path[512];
                char *json;

                snprintf(path, sizeof(path), "%s/%s.sim.json", fx.dir, fx.prefix);
                json = support_read_file(path, NULL);
                cr_assert(json && strstr(json, "\"verified\":true") && strstr(json, "\"errors\":0"),
                          "%s", json ? json : "(no summary)");
                free(json);
        }
}

Test(sim, bad_usage_and_no_receiver_are_exit_2)
{
        char bin[512];

        support_bin_path("liveflow-sim", bin, sizeof(bin));
        cr_assert_eq(support_sh("'%s' --rate 0 2>/dev/null", bin), 2);
        /* The message names the option, not its value. */
        cr_assert_eq(support_sh("'%s' --rate 0 2>&1 | grep -q -- '--rate must be 1 to'", bin), 0);
        cr_assert_eq(support_sh("'%s' --bogus 2>/dev/null", bin), 2);
        cr_assert_eq(support_sh("env -i LIVEFLOW_ENV_FILE=/dev/null '%s' 2>/dev/null", bin), 2);
        cr_assert_eq(support_sh("'%s' --help >/dev/null", bin), 0);
}
