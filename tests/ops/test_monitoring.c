/* test_monitoring.c: the operator's view. The Prometheus rules pass promtool's checks and unit
 * tests; a whole local stack (ops/stack.sh, two copies of the record role) with its private
 * Prometheus scrapes every process, and after signed traffic every Grafana panel's query and every
 * panel of the console page (read in headless Chromium) shows data; `make stop` leaves nothing. */
#include "support.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(monitoring, .timeout = 300);

/* ------------------------------------------------------------------ rules */

Test(monitoring, rules_pass_promtool_check_and_unit_tests)
{
        cr_assert(support_sh("command -v promtool >/dev/null") == 0,
                  "promtool is not installed (make deps installs the prometheus package)");
        cr_assert(support_sh("promtool check rules ops/prometheus/rules/*.yml") == 0,
                  "promtool check rules failed");
        cr_assert(support_sh("promtool test rules ops/prometheus/tests/*.yml") == 0,
                  "promtool test rules failed");
}

/* Every alert has its runbook: a README heading its runbook annotation points at, and a unit
 * test naming it. */
Test(monitoring, every_alert_has_a_runbook_and_a_unit_test)
{
        cr_assert(support_sh(
                          "n=0; for a in $(sed -n 's/^ *- alert: *//p' "
                          "ops/prometheus/rules/liveflow-alerts.yml); do n=$((n+1)); "
                          "grep -qx \"#### $a\" README.md || { echo \"$a: no README runbook\" >&2; "
                          "exit 1; }; "
                          "l=$(echo \"$a\" | tr A-Z a-z); "
                          "grep -q \"runbook: \\\"README.md#$l\\\"\" "
                          "ops/prometheus/rules/liveflow-alerts.yml || { echo \"$a: runbook "
                          "annotation\" >&2; exit 1; }; "
                          "grep -q \"alertname: $a$\" ops/prometheus/tests/*.yml || "
                          "{ echo \"$a: no unit test\" >&2; exit 1; }; done; [ $n -ge 13 ]") == 0);
}

/* A rule file whose tip-success threshold moved makes its unit test fail: the tests pin the
 * thresholds rather than pass whatever the rules say. */
Test(monitoring, rule_tests_catch_a_moved_threshold)
{
        char dir[] = "/tmp/lfrules.XXXXXX";

        cr_assert(mkdtemp(dir));
        cr_assert(support_sh("mkdir -p %s/rules %s/tests && "
                             "sed 's/< 0.95/< 0.90/' ops/prometheus/rules/liveflow-alerts.yml "
                             ">%s/rules/liveflow-alerts.yml && "
                             "cp ops/prometheus/tests/alerts_test.yml %s/tests/",
                             dir, dir, dir, dir) == 0);
        cr_assert(support_sh("! grep -q '< 0.95' %s/rules/liveflow-alerts.yml", dir) == 0);
        cr_expect(support_sh("promtool test rules %s/tests/alerts_test.yml >/dev/null 2>&1", dir) !=
                  0);
        support_sh("rm -rf %s", dir);
}

/* The committed dashboards are what ops/grafana/generate.py writes. */
Test(monitoring, dashboards_are_what_the_generator_writes)
{
        char dir[] = "/tmp/lfdash.XXXXXX";

        cr_assert(mkdtemp(dir));
        cr_assert(support_sh("python3 ops/grafana/generate.py %s", dir) == 0);
        cr_expect(support_sh("diff -r %s ops/grafana/dashboards >&2", dir) == 0,
                  "ops/grafana/dashboards differs from what ops/grafana/generate.py writes");
        cr_expect(support_sh("python3 ops/grafana/generate.py --check ops/grafana/dashboards") == 0,
                  "the dashboards are not well formed");
        /* The check itself finds a repeated panel id. */
        cr_expect(
                support_sh(
                        "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                        "d[\"panels\"][2][\"id\"]=d[\"panels\"][1][\"id\"]; "
                        "json.dump(d,open(sys.argv[2]+\"/x.json\",\"w\"))' "
                        "ops/grafana/dashboards/liveflow-money.json %s && rm %s/liveflow-*.json && "
                        "! python3 ops/grafana/generate.py --check %s 2>/dev/null",
                        dir, dir, dir) == 0);
        support_sh("rm -rf %s", dir);
}

/* The cron wrapper records each outcome for Prometheus and passes the exit status on. */
Test(monitoring, reconcile_metrics_records_the_outcome_and_keeps_the_status)
{
        char dir[] = "/tmp/lfrec.XXXXXX", path[64];
        char *text;

        cr_assert(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/liveflow_reconcile.prom", dir);
        cr_assert_eq(support_sh("sh ops/reconcile-metrics.sh %s sh -c 'exit 1' 2>/dev/null", dir),
                     1);
        cr_assert((text = support_read_file(path, NULL)));
        cr_expect(strstr(text, "\nliveflow_reconcile_exit_code 1\n"), "%s", text);
        cr_expect(strstr(text, "\nliveflow_reconcile_agree 0\n"), "%s", text);
        free(text);
        cr_assert(support_sh("promtool check metrics <%s", path) == 0);
        cr_assert_eq(support_sh("sh ops/reconcile-metrics.sh %s true", dir), 0);
        cr_assert((text = support_read_file(path, NULL)));
        cr_expect(strstr(text, "\nliveflow_reconcile_agree 1\n"), "%s", text);
        free(text);
        cr_expect_eq(support_sh("sh ops/reconcile-metrics.sh %s/missing true 2>/dev/null", dir), 2);
        support_sh("rm -rf %s", dir);
}

/* ------------------------------------------------------------------ HTTP and JSON */

struct buf {
        char *data;
        size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
        struct buf *b = arg;
        char *nd = realloc(b->data, b->len + size * n + 1);

        if (!nd)
                return 0;
        memcpy(nd + b->len, p, size * n);
        b->data = nd;
        b->len += size * n;
        b->data[b->len] = '\0';
        return size * n;
}

/* GETs url; returns the parsed JSON body (NULL when none) and the status in *status. */
static json_t *get_json(const char *url, long *status)
{
        CURL *curl = curl_easy_init();
        struct buf b = {0};
        json_t *j = NULL;

        *status = 0;
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
        if (curl_easy_perform(curl) == CURLE_OK) {
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
                if (b.data)
                        j = json_loads(b.data, 0, NULL);
        }
        curl_easy_cleanup(curl);
        free(b.data);
        return j;
}

/* ------------------------------------------------------------------ the stack */

static const char *build_dir(void)
{
        const char *b = getenv("LIVEFLOW_TEST_BUILD");

        return b && *b ? b : "build";
}

static struct {
        char dir[64];
        int prom_port, http_port;
        int started;
} stk;

/* A run of n free loopback ports from 20000-32767 (below the ephemeral range). @returns the first.
 */
static int free_port_run(int n)
{
        for (int attempt = 0; attempt < 200; attempt++) {
                int base = 20000 + (int)(((unsigned)rand() ^ (unsigned)getpid()) % 12000), i;

                for (i = 0; i < n; i++) {
                        struct sockaddr_in sin = {.sin_family = AF_INET,
                                                  .sin_port = htons((uint16_t)(base + i))};
                        int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

                        sin.sin_addr.s_addr = htonl(INADDR_ANY);
                        ok = fd != -1 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
                        if (fd != -1)
                                close(fd);
                        if (!ok)
                                break;
                }
                if (i == n)
                        return base;
        }
        cr_assert_fail("no run of %d free ports", n);
        return 0;
}

static void stack_stop(void)
{
        if (!stk.started)
                return;
        support_sh("LIVEFLOW_STACK_DIR=%s sh ops/stack.sh stop >>%s/stop.log 2>&1", stk.dir,
                   stk.dir);
        stk.started = 0;
}

static void stack_fini(void)
{
        stack_stop();
        if (stk.dir[0] && !getenv("LIVEFLOW_TEST_KEEP"))
                support_sh("rm -rf %s", stk.dir);
}

/* Starts ops/stack.sh in its own directory on free ports, two copies of the record role, and a
 * Prometheus scraping every second. Another test run may take a port between the check and the
 * bind: a start that fails on a busy port is tried again on other ports. */
static void stack_start(void)
{
        srand((unsigned)getpid());
        snprintf(stk.dir, sizeof(stk.dir), "/tmp/lfmon.XXXXXX");
        cr_assert(mkdtemp(stk.dir));
        for (int attempt = 1;; attempt++) {
                int base = free_port_run(24), rc;

                stk.prom_port = base + 3;
                stk.http_port = base + 2;
                stk.started = 1;
                rc = support_sh("env -u LIVEFLOW_STACK_COPIES_RECORD LIVEFLOW_STACK_DIR=%s "
                                "LIVEFLOW_STACK_MYSQL_PORT=%d LIVEFLOW_STACK_REDIS_PORT=%d "
                                "LIVEFLOW_STACK_HTTP_PORT=%d LIVEFLOW_STACK_PROMETHEUS_PORT=%d "
                                "LIVEFLOW_STACK_TEXTFILE_PORT=%d "
                                "LIVEFLOW_STACK_ADMIN_PORT=%d LIVEFLOW_STACK_SCRAPE_INTERVAL=1s "
                                "LIVEFLOW_STACK_COPIES_RECORD=2 "
                                "sh ops/stack.sh start %s >>%s/start.log 2>&1",
                                stk.dir, base, base + 1, stk.http_port, stk.prom_port, base + 4,
                                base + 5, build_dir(), stk.dir);
                if (rc == 0)
                        return;
                cr_assert(attempt < 3 &&
                                  support_sh("grep -q 'is in use' %s/start.log", stk.dir) == 0,
                          "ops/stack.sh start failed (see %s/start.log)", stk.dir);
                support_sh("mv %s/start.log %s/start-%d.log", stk.dir, stk.dir, attempt);
        }
}

/* The process names `ops/stack.sh status` lists as up, with their ports, into names (one
 * "name port" per line). @returns how many. */
static int stack_status(char *names, size_t size)
{
        char path[128], line[512];
        FILE *f;
        int n = 0;

        snprintf(path, sizeof(path), "%s/status.txt", stk.dir);
        cr_assert(support_sh("LIVEFLOW_STACK_DIR=%s sh ops/stack.sh status >%s", stk.dir, path) ==
                  0);
        cr_assert((f = fopen(path, "r")));
        names[0] = '\0';
        while (fgets(line, sizeof(line), f)) {
                char name[128], state[16];
                int pid, port;

                if (sscanf(line, " %127s %15s pid %d port %d", name, state, &pid, &port) == 4 &&
                    strcmp(state, "up") == 0) {
                        size_t len = strlen(names);

                        snprintf(names + len, size - len, "%s %d\n", name, port);
                        n++;
                }
        }
        fclose(f);
        return n;
}

/* Waits until Prometheus has scraped `want` liveflow targets, all up. */
static void wait_targets_up(int want)
{
        char url[128];
        long long deadline = support_now_ms() + 30000;
        int up = 0, total = 0;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/targets?state=active",
                 stk.prom_port);
        do {
                long status;
                json_t *j = get_json(url, &status), *t;
                size_t i;

                up = total = 0;
                json_array_foreach(json_object_get(json_object_get(j, "data"), "activeTargets"), i,
                                   t)
                {
                        const char *job = json_string_value(
                                json_object_get(json_object_get(t, "labels"), "job"));
                        const char *health = json_string_value(json_object_get(t, "health"));

                        if (!job || strcmp(job, "liveflow") != 0)
                                continue;
                        total++;
                        up += health && strcmp(health, "up") == 0;
                }
                json_decref(j);
                if (total == want && up == want)
                        return;
                support_sleep_ms(250);
        } while (support_now_ms() < deadline);
        cr_assert_fail("Prometheus: %d of %d liveflow targets up, %d expected", up, total, want);
}

/* A sample's value is a number (Prometheus writes "NaN" for 0/0). */
static int is_number(json_t *sample_value)
{
        const char *s = json_string_value(json_array_get(sample_value, 1));

        return s && !isnan(strtod(s, NULL));
}

/* Runs an instant query. @returns 1 when it has a sample whose value is a number, 0 when it
 * returned nothing (or only NaN), -1 on an error (written to err). */
static int query_has_data(const char *expr, char *err, size_t err_size)
{
        char url[4096];
        char *q = curl_easy_escape(NULL, expr, 0);
        json_t *j, *data, *r, *sample;
        const char *type;
        long status;
        size_t i;
        int found = 0;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s", stk.prom_port, q);
        curl_free(q);
        j = get_json(url, &status);
        if (!j || status != 200) {
                const char *e = json_string_value(json_object_get(j, "error"));

                snprintf(err, err_size, "HTTP %ld: %s", status, e ? e : "no JSON answer");
                json_decref(j);
                return -1;
        }
        data = json_object_get(j, "data");
        type = json_string_value(json_object_get(data, "resultType"));
        r = json_object_get(data, "result");
        if (type && strcmp(type, "scalar") == 0) {
                found = is_number(r);
        } else {
                json_array_foreach(r, i, sample)
                {
                        found |= is_number(json_object_get(sample, "value"));
                }
        }
        json_decref(j);
        return found;
}

/* Grafana's built-in variables and the dashboards' own, replaced the way Grafana would. */
static void expand_vars(const char *in, char *out, size_t size)
{
        static const char *const vars[][2] = {
                {"$__rate_interval", "1m"}, {"${__rate_interval}", "1m"},
                {"$__interval", "15s"},     {"$__range", "15m"},
                {"${role}", ".+"},          {"$role", ".+"},
                {"${process}", ".+"},       {"$process", ".+"},
        };
        size_t o = 0;

        while (*in && o + 1 < size) {
                size_t k;

                for (k = 0; k < sizeof(vars) / sizeof(vars[0]); k++) {
                        size_t n = strlen(vars[k][0]);

                        if (strncmp(in, vars[k][0], n) == 0) {
                                o += (size_t)snprintf(out + o, size - o, "%s", vars[k][1]);
                                in += n;
                                break;
                        }
                }
                if (k == sizeof(vars) / sizeof(vars[0]))
                        out[o++] = *in++;
                if (o >= size)
                        o = size - 1;
        }
        out[o] = '\0';
}

/* Checks every target of every panel (rows' panels too) of one dashboard; appends failures to
 * report. @returns the number of queries run. */
static int check_panels(const char *file, json_t *panels, char *report, size_t size)
{
        json_t *p;
        size_t i;
        int n = 0;

        json_array_foreach(panels, i, p)
        {
                json_t *t;
                size_t k;

                n += check_panels(file, json_object_get(p, "panels"), report, size);
                json_array_foreach(json_object_get(p, "targets"), k, t)
                {
                        const char *expr = json_string_value(json_object_get(t, "expr"));
                        char expanded[2048], err[512];
                        int r;

                        if (!expr)
                                continue;
                        expand_vars(expr, expanded, sizeof(expanded));
                        r = query_has_data(expanded, err, sizeof(err));
                        n++;
                        if (r != 1) {
                                size_t len = strlen(report);

                                snprintf(report + len, size - len, "\n  %s \"%s\": %s: %s", file,
                                         json_string_value(json_object_get(p, "title")),
                                         r == 0 ? "no data" : err, expanded);
                        }
                }
        }
        return n;
}

/* Every panel query of ops/grafana/dashboards/ against the stack's Prometheus. */
static void check_dashboards(void)
{
        DIR *d = opendir("ops/grafana/dashboards");
        struct dirent *e;
        static char report[16384];
        int queries = 0, files = 0;

        cr_assert(d, "ops/grafana/dashboards is missing");
        report[0] = '\0';
        while ((e = readdir(d))) {
                char path[512];
                json_error_t jerr;
                json_t *dash;
                size_t len = strlen(e->d_name);

                if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
                        continue;
                snprintf(path, sizeof(path), "ops/grafana/dashboards/%s", e->d_name);
                dash = json_load_file(path, 0, &jerr);
                cr_assert(dash, "%s: %s (line %d)", path, jerr.text, jerr.line);
                cr_assert(json_string_value(json_object_get(dash, "uid")), "%s: no uid", path);
                queries += check_panels(e->d_name, json_object_get(dash, "panels"), report,
                                        sizeof(report));
                files++;
                json_decref(dash);
        }
        closedir(d);
        cr_assert(files >= 4, "%d dashboards, 4 expected", files);
        cr_assert(queries > 0);
        cr_assert(report[0] == '\0', "panels without data:%s", report);
        printf("dashboards: %d panel queries over %d dashboards returned data\n", queries, files);
}

/* Opens the console page in headless Chromium; every panel must show a figure and every graph
 * must have been drawn from the API. */
static void check_console(void)
{
        char path[160];
        char *dom, *p;
        int panels = 0, graphs = 0, svgs = 0;

        snprintf(path, sizeof(path), "%s/console.html", stk.dir);
        cr_assert(support_sh("command -v chromium >/dev/null") == 0,
                  "chromium is not installed (make deps)");
        cr_assert(support_sh("timeout 90 chromium --headless --no-sandbox --disable-gpu "
                             "--disable-quic --no-first-run --disable-background-networking "
                             "--disable-component-update --disable-sync --disable-dev-shm-usage "
                             "--user-data-dir=%s/chromium --window-size=1400,1000 "
                             "--virtual-time-budget=10000 --dump-dom "
                             "http://127.0.0.1:%d/consoles/liveflow.html >%s 2>%s/chromium.log",
                             stk.dir, stk.prom_port, path, stk.dir) == 0,
                  "chromium failed (see %s/chromium.log)", stk.dir);
        cr_assert((dom = support_read_file(path, NULL)));
        cr_assert(strstr(dom, "error executing template") == NULL, "the console does not render");
        for (p = dom; (p = strstr(p, "class=\"lf-panel\"")); p++) {
                char *end = strstr(p, "</td>");

                cr_assert(end);
                *end = '\0';
                cr_expect(strstr(p, "lf-nodata") == NULL && strstr(p, "NaN") == NULL,
                          "console panel without data: %.300s", p);
                *end = '<';
                panels++;
        }
        for (p = dom; (p = strstr(p, "class=\"lf-graph\"")); p++)
                graphs++;
        for (p = dom; (p = strstr(p, "<svg")); p++)
                svgs++;
        /* The per-role table: the record role (two copies, traffic) has a figure in every cell. */
        cr_assert((p = strstr(dom, "class=\"lf-role\" id=\"role-record\"")),
                  "the per-role table has no record row");
        {
                char *end = strstr(p, "</tr>");

                cr_assert(end);
                *end = '\0';
                cr_expect(strstr(p, "<td>2</td>"), "the record row does not count 2 copies: %s", p);
                cr_expect(strstr(p, "<td>-</td>") == NULL && strstr(p, "NaN") == NULL,
                          "the record row lacks a figure: %s", p);
                *end = '<';
        }
        cr_assert(panels >= 10, "%d console panels", panels);
        cr_assert(graphs >= 4 && svgs >= graphs, "%d graphs, %d drawn", graphs, svgs);
        free(dom);
        printf("console: %d panels with data, %d graphs drawn\n", panels, graphs);
}

Test(monitoring, stack_prometheus_dashboards_and_console_show_every_process, .fini = stack_fini)
{
        static char names[4096];
        char role[64], expect[128], pidfiles[256];
        FILE *roles;
        int n, liveflow = 0;

        cr_assert(support_sh("command -v prometheus >/dev/null") == 0,
                  "prometheus is not installed (make deps)");
        stack_start();
        n = stack_status(names, sizeof(names));

        /* Every role, the second copy of record, the workers, the receiver and the services. */
        cr_assert(support_sh("'%s/bin/liveflow-consumer' --list-roles >%s/roles.txt", build_dir(),
                             stk.dir) == 0);
        snprintf(expect, sizeof(expect), "%s/roles.txt", stk.dir);
        cr_assert((roles = fopen(expect, "r")));
        while (fscanf(roles, "%63s", role) == 1) {
                snprintf(expect, sizeof(expect), "consumer-%s ", role);
                cr_expect(strstr(names, expect), "status lacks %s:\n%s", expect, names);
                liveflow++;
        }
        fclose(roles);
        cr_assert(liveflow > 0);
        for (const char *const *w =
                     (const char *const[]){"receiver ", "consumer-record@2 ", "settlement ",
                                           "stats ", "prometheus ", "textfile ", "mariadb ",
                                           "redis ", "devbroker ", NULL};
             *w; w++)
                cr_expect(strstr(names, *w), "status lacks %s:\n%s", *w, names);
        liveflow += 4; /* record@2, settlement, stats, receiver */
        cr_assert_eq(n, liveflow + 5, "status lists %d processes up:\n%s", n, names);
        wait_targets_up(liveflow);

        /* Signed traffic in bursts a few scrapes apart, so that every counter has moved
         * between two scrapes (a series born with its first increment shows no rate). */
        for (int i = 0; i < 3; i++) {
                cr_assert(support_sh("sh ops/sample-traffic.sh %s/env 2 >>%s/traffic.log 2>&1",
                                     stk.dir, stk.dir) == 0,
                          "sample traffic was not answered as it should (see %s/traffic.log)",
                          stk.dir);
                support_sleep_ms(2500);
        }
        /* A record the audit role cannot decode goes to live.audit.dlq; the DLQ listing the
         * cron job makes then counts it by class and group. */
        cr_assert(
                support_sh(
                        ". %s/env && printf 'not avro' | kcat -P -b \"$LIVEFLOW_KAFKA_BOOTSTRAP\" "
                        "-t live.audit -k lfmon-garbage",
                        stk.dir) == 0,
                "kcat could not produce to the stack's broker");
        cr_assert(
                support_sh(
                        ". %s/env && for i in $(seq 80); do "
                        "sh ops/dlq-metrics.sh %s/prometheus/textfile '%s/bin/liveflow-ctl' dlq "
                        "list --json >>%s/dlq.log 2>&1; grep -q "
                        "'^liveflow_dlq_records{topic=\"live.audit.dlq\",class=\"permanent\"} [1-9]' "
                        "%s/prometheus/textfile/liveflow_dlq.prom && exit 0; sleep 0.25; done; exit 1",
                        stk.dir, stk.dir, build_dir(), stk.dir, stk.dir) == 0,
                "the undecodable record did not show in the DLQ listing (see %s/dlq.log)", stk.dir);
        for (long long deadline = support_now_ms() + 20000;;) {
                char err[256];

                if (query_has_data("sum(rate(liveflow_consumer_records_total{role=\"settlement\","
                                   "outcome=\"applied\"}[1m])) > 0",
                                   err, sizeof(err)) == 1)
                        break;
                cr_assert(support_now_ms() < deadline, "no settled tip reached Prometheus");
                support_sleep_ms(500);
        }
        support_sleep_ms(2500); /* a rule evaluation after the last scrape */
        {
                char err[256];

                /* make run's first reconciliation, recorded as the cron job records it. */
                cr_expect(query_has_data("liveflow_reconcile_agree == 1", err, sizeof(err)) == 1,
                          "no reconcile result in Prometheus");
        }

        check_dashboards();
        check_console();

        /* Scaling record down to one copy: the target list and Prometheus follow, and the copy
         * left reports every partition once (no stale series of the copy that went). */
        cr_assert(
                support_sh(
                        "LIVEFLOW_STACK_DIR=%s sh ops/stack.sh scale record 1 >>%s/scale.log 2>&1",
                        stk.dir, stk.dir) == 0,
                "stack.sh scale failed (see %s/scale.log)", stk.dir);
        cr_assert(support_sh("! grep -q 'consumer-record@2' %s/prometheus/targets.json", stk.dir) ==
                  0);
        wait_targets_up(liveflow - 1);
        for (long long deadline = support_now_ms() + 30000;;) {
                char err[256];

                if (query_has_data("max(count by (topic, partition) "
                                   "(liveflow_consumer_lag_seconds{role=\"record\"})) == 1 and "
                                   "sum(liveflow_consumer_assigned_partitions{role=\"record\"}) == "
                                   "count(count by (topic, partition) "
                                   "(liveflow_consumer_lag_seconds{role=\"record\"}))",
                                   err, sizeof(err)) == 1)
                        break;
                cr_assert(support_now_ms() < deadline,
                          "after scaling record to one copy, its partitions are not reported once");
                support_sleep_ms(500);
        }

        /* make stop stops everything, Prometheus included, and leaves no PID file. */
        stack_stop();
        snprintf(pidfiles, sizeof(pidfiles), "ls %s/pid/*.pid >/dev/null 2>&1", stk.dir);
        cr_assert(support_sh("%s", pidfiles) != 0, "PID files left after stop");
        cr_assert(support_sh("! ss -Hltn 'sport = :%d' | grep -q .", stk.prom_port) == 0,
                  "Prometheus still listens after stop");
}
