/* support.c: helpers shared by the test suites. */
#include "support.h"

#include "crypto.h"
#include "url.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <mysql.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *support_fixture(const char *name)
{
        const char *v = getenv(name);

        if (v && *v)
                return v;
        if (getenv("FIXTURES_REQUIRED"))
                cr_assert_fail("fixture %s is not set (run the tests through `make test`)", name);
        cr_skip_test("fixture %s is not set", name);
        return NULL;
}

void support_unique_name(const char *prefix, char *out, size_t out_size)
{
        static int counter;

        snprintf(out, out_size, "%s_%d_%d", prefix, (int)getpid(), ++counter);
}

void support_bin_path(const char *name, char *out, size_t out_size)
{
        const char *build = getenv("LIVEFLOW_TEST_BUILD");

        snprintf(out, out_size, "%s/bin/%s", build && *build ? build : "build", name);
}

/* When this test binary started: a log older than that was left by an earlier run. */
static time_t binary_started;

__attribute__((constructor)) static void note_binary_start(void)
{
        binary_started = time(NULL);
}

pid_t support_spawn(char *const argv[], char *const env_add[], const char *log_path)
{
        struct stat st;
        pid_t pid;

        /* Names carry the test's pid, which the kernel reuses (pid_max 32768): a log of an
           earlier run under the same name is not this test's to append to. */
        if (log_path && stat(log_path, &st) == 0 && st.st_mtime < binary_started)
                unlink(log_path);
        pid = fork();

        if (pid != 0)
                return pid;
        if (log_path) {
                int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

                if (fd != -1) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                        close(fd);
                }
        }
        for (int i = 0; env_add && env_add[i]; i++)
                putenv(env_add[i]);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

int support_wait_exit(pid_t pid, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;
        int status;

        do {
                pid_t r = waitpid(pid, &status, WNOHANG);

                if (r == pid) {
                        if (WIFEXITED(status))
                                return WEXITSTATUS(status);
                        return 128 + WTERMSIG(status);
                }
                if (r == -1)
                        return -1;
                support_sleep_ms(10);
        } while (support_now_ms() < deadline);
        return -1;
}

char *support_read_file(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t n = 0, cap = 0;

        if (!f)
                return NULL;
        for (;;) {
                if (n + 4096 + 1 > cap) {
                        char *nb = realloc(buf, cap = (cap ? cap * 2 : 8192));

                        if (!nb) {
                                free(buf);
                                fclose(f);
                                return NULL;
                        }
                        buf = nb;
                }
                size_t r = fread(buf + n, 1, cap - n - 1, f);

                n += r;
                if (r == 0)
                        break;
        }
        fclose(f);
        buf[n] = '\0';
        if (len)
                *len = n;
        return buf;
}

long long support_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void support_sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
}

#include <arpa/inet.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>

void support_create_database(char *url, size_t url_size)
{
        const char *host = support_fixture("LIVEFLOW_TEST_MYSQL_HOST");
        const char *port = support_fixture("LIVEFLOW_TEST_MYSQL_PORT");
        const char *user = support_fixture("LIVEFLOW_TEST_MYSQL_USER");
        const char *pass = support_fixture("LIVEFLOW_TEST_MYSQL_PASSWORD");
        char db[64], sql[128], bin[512];
        MYSQL *mysql = mysql_init(NULL);

        support_unique_name("lft", db, sizeof(db));
        cr_assert(mysql_real_connect(mysql, host, user, pass, NULL, (unsigned)atoi(port), NULL, 0),
                  "mysql %s:%s: %s", host, port, mysql_error(mysql));
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
        cr_assert(mysql_query(mysql, sql) == 0, "%s", mysql_error(mysql));
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s CHARACTER SET utf8mb4", db);
        cr_assert(mysql_query(mysql, sql) == 0, "%s", mysql_error(mysql));
        mysql_close(mysql);
        snprintf(url, url_size, "mysql://%s:%s@%s:%s/%s", user, pass, host, port, db);
        support_bin_path("liveflow-migrate", bin, sizeof(bin));
        cr_assert(support_sh("LIVEFLOW_MYSQL_URL='%s' '%s' --dir sql >/dev/null", url, bin) == 0,
                  "migrations failed on %s", db);
}

int support_free_port(void)
{
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sin);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port;

        cr_assert(fd != -1);
        cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
        cr_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
        port = ntohs(sin.sin_port);
        close(fd);
        return port;
}

int support_silent_listener(int *port)
{
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sin);
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        cr_assert(fd != -1);
        cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
        cr_assert(listen(fd, 64) == 0);
        cr_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
        *port = ntohs(sin.sin_port);
        return fd;
}

size_t support_curl_body(char *p, size_t size, size_t n, void *arg)
{
        struct support_body *b = arg;
        size_t have = strnlen(b->buf, b->cap), len = size * n;

        if (b->cap == 0)
                return size * n;
        if (len > b->cap - 1 - have) /* keep what fits */
                len = b->cap - 1 - have;
        memcpy(b->buf + have, p, len);
        b->buf[have + len] = '\0';
        return size * n;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
        (void)p;
        (void)arg;
        return size * n;
}

long support_request(const struct support_request *rq, struct support_body into)
{
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        CURL *curl = curl_easy_init();
        long status = 0;
        char url[4096];
        CURLcode rc;

        cr_assert_not_null(curl);
        h = curl_slist_append(h, "Expect:");
        for (size_t i = 0; rq->headers && rq->headers[i]; i++)
                h = curl_slist_append(h, rq->headers[i]);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", rq->port, rq->path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
        if (rq->body)
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, support_curl_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &into);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, rq->timeout_ms ? (long)rq->timeout_ms : 10000L);
        rc = curl_easy_perform(curl);
        cr_assert(rc == CURLE_OK, "%s %s: %s; log: %s", rq->method, url, curl_easy_strerror(rc),
                  rq->log_path ? rq->log_path : "-");
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(curl);
        curl_slist_free_all(h);
        return status;
}

struct support_reply support_http(int port, const char *method, const char *path, const char *body,
                                  const char *const headers[])
{
        const struct support_request rq = {
                .port = port, .method = method, .path = path, .body = body, .headers = headers};
        struct support_reply r = {0};

        r.status = support_request(&rq, SUPPORT_BODY(r.body));
        return r;
}

void support_tencent_sign(const char *key, long long t, char sign[33])
{
        char text[256];

        snprintf(text, sizeof(text), "%s%lld", key, t);
        crypto_md5_hex(text, strlen(text), sign);
}

void support_tencent_stream_body(char *out, size_t out_size, const char *stream_id, bool is_begin,
                                 long long event_time, const char *anchor, const char *room,
                                 long long push_duration, const char *key, long long t)
{
        char sign[33], duration[64] = "";

        support_tencent_sign(key, t, sign);
        if (!is_begin)
                snprintf(duration, sizeof(duration), ",\"push_duration\":\"%lld\"", push_duration);
        snprintf(
                out, out_size,
                "{\"app\":\"test.domain.com\",\"appid\":12345678,\"appname\":\"live\","
                "\"channel_id\":\"%s\",\"errcode\":%d,\"errmsg\":\"%s\",\"event_time\":%lld,"
                "\"event_type\":%d,\"node\":\"42.81.194.37\",\"sequence\":\"2210464508206756938\","
                "\"sign\":\"%s\",\"stream_id\":\"%s\",\"stream_param\":\"anchor_id=%s&room_id=%s\","
                "\"t\":%lld,\"user_ip\":\"1.1.1.1\"%s}",
                stream_id, is_begin ? 0 : 1, is_begin ? "ok" : "recv rtmp deleteStream", event_time,
                is_begin ? 1 : 0, sign, stream_id, anchor, room, t, duration);
}

/* Whether r's log says it could not listen on a port. */
static bool receiver_cannot_listen(const struct support_receiver *r)
{
        char *log = support_read_file(r->log_path, NULL);
        bool found = log && strstr(log, "cannot listen") != NULL;

        free(log);
        return found;
}

void support_receiver_start(struct support_receiver *r, const char *prefix, const char *bootstrap,
                            const char *const env[])
{
        char bin[256], name[64], port_env[64], admin_env[64], boot_env[512];
        char *argv[] = {bin, NULL};
        char *all[32];
        int n = 0, ready = -1;

        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        snprintf(boot_env, sizeof(boot_env), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 bootstrap ? bootstrap : support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        all[n++] = port_env;
        all[n++] = admin_env;
        all[n++] = boot_env;
        for (size_t i = 0; env && env[i]; i++) {
                cr_assert(n < 31, "too many variables for the receiver");
                all[n++] = (char *)env[i];
        }
        all[n] = NULL;
        /*
         * A port found free may be taken before the receiver binds it (as the local port of a
         * connection another test opens meanwhile, which a wildcard bind conflicts with): then
         * the receiver exits saying so, and it starts again on other ports.
         */
        for (int attempt = 0; attempt < 3 && ready != 0; attempt++) {
                support_unique_name(prefix, name, sizeof(name));
                snprintf(r->log_path, sizeof(r->log_path), "/tmp/liveflow_e2e_%s.log", name);
                r->port = support_free_port();
                snprintf(port_env, sizeof(port_env), "LIVEFLOW_HTTP_PORT=%d", r->port);
                r->admin_port = support_free_port();
                snprintf(admin_env, sizeof(admin_env), "LIVEFLOW_ADMIN_PORT=%d", r->admin_port);
                r->pid = support_spawn(argv, all, r->log_path);
                cr_assert(r->pid > 0);
                /* Ready, or exited (then at once: a taken port is known without the timeout) */
                bool exited = false;

                for (long long deadline = support_now_ms() + 30000;
                     (ready = support_wait_ready(r->admin_port, 250)) != 0 && !exited &&
                     support_now_ms() < deadline;)
                        exited = support_wait_exit(r->pid, 0) != -1;
                if (ready != 0 && (exited || support_wait_exit(r->pid, 0) != -1) &&
                    receiver_cannot_listen(r))
                        continue;
                break;
        }
        cr_assert(ready == 0, "receiver not ready; log: %s", r->log_path);
}

void support_receiver_stop(struct support_receiver *r, bool keep_log)
{
        cr_assert(kill(r->pid, SIGTERM) == 0);
        cr_assert(support_wait_exit(r->pid, 15000) == 0, "drain failed; log: %s", r->log_path);
        r->pid = 0;
        if (!keep_log)
                unlink(r->log_path); /* kept only when something failed */
}

void support_receiver_kill(struct support_receiver *r)
{
        if (r->pid > 0) {
                kill(r->pid, SIGKILL);
                support_wait_exit(r->pid, 5000);
        }
        r->pid = 0;
}

int support_receiver_check_config(char *const env[], char **out)
{
        char bin[256], name[64], log_path[512];
        char *argv[] = {bin, (char *)"--check-config", NULL};
        int rc;

        support_bin_path("liveflow-receiver", bin, sizeof(bin));
        support_unique_name("check", name, sizeof(name));
        snprintf(log_path, sizeof(log_path), "/tmp/liveflow_e2e_%s.log", name);
        rc = support_wait_exit(support_spawn(argv, env, log_path), 10000);
        if (out) {
                *out = support_read_file(log_path, NULL);
                if (!*out)
                        *out = strdup("");
                cr_assert_not_null(*out);
        }
        unlink(log_path);
        return rc;
}

char *support_json_edit(const char *json, const char *field, json_t *value)
{
        json_t *root = json_loads(json, 0, NULL);
        char *s;

        cr_assert(root != NULL);
        if (json_is_null(value))
                json_object_del(root, field);
        else
                json_object_set(root, field, value);
        json_decref(value);
        s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        return s;
}

int support_wait_ready(int port, int timeout_ms)
{
        long long deadline = support_now_ms() + timeout_ms;
        char url[64];

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
        do {
                CURL *curl = curl_easy_init();
                long status = 0;

                curl_easy_setopt(curl, CURLOPT_URL, url);
                curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L);
                curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
                if (curl_easy_perform(curl) == CURLE_OK)
                        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_cleanup(curl);
                if (status == 200)
                        return 0;
                support_sleep_ms(50);
        } while (support_now_ms() < deadline);
        return -1;
}

int support_sh(const char *fmt, ...)
{
        char cmd[4096];
        va_list ap;
        int st;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        st = system(cmd);
        return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------ stores and Kafka */

MYSQL *support_mysql_connect(const char *url)
{
        struct mysql_url u;
        char err[256];
        MYSQL *mysql = mysql_init(NULL);

        cr_assert(url_parse_mysql(url, &u, err, sizeof(err)) == 0, "%s", err);
        cr_assert(
                mysql_real_connect(mysql, u.host, u.user, u.password, u.database, u.port, NULL, 0),
                "%s", mysql_error(mysql));
        cr_assert(mysql_query(mysql, "SET time_zone = '+00:00'") == 0);
        return mysql;
}

static void query1v(MYSQL *mysql, char *out, size_t out_size, const char *fmt, va_list ap)
{
        char sql[2048];
        MYSQL_RES *res;
        MYSQL_ROW row;

        vsnprintf(sql, sizeof(sql), fmt, ap);
        out[0] = '\0';
        cr_assert(mysql_query(mysql, sql) == 0, "%s: %s", sql, mysql_error(mysql));
        res = mysql_store_result(mysql);
        if (res && (row = mysql_fetch_row(res)) && row[0])
                snprintf(out, out_size, "%s", row[0]);
        if (res)
                mysql_free_result(res);
}

void support_query1(MYSQL *mysql, char *out, size_t out_size, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        query1v(mysql, out, out_size, fmt, ap);
        va_end(ap);
}

void support_wait_value(MYSQL *mysql, int timeout_ms, const char *log_prefix, const char *want,
                        const char *fmt, ...)
{
        char got[4096] = "", sql[4096];
        long long deadline = support_now_ms() + timeout_ms;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        while (support_now_ms() < deadline) {
                support_query1(mysql, got, sizeof(got), "%s", sql);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(50);
        }
        cr_assert_fail("%s gave \"%s\", want \"%s\" (logs /tmp/%s.*.log)", sql, got, want,
                       log_prefix);
}

long long support_query_int(MYSQL *mysql, const char *fmt, ...)
{
        char v[64];
        va_list ap;

        va_start(ap, fmt);
        query1v(mysql, v, sizeof(v), fmt, ap);
        va_end(ap);
        return atoll(v);
}

/* ------------------------------------------------------------ worker processes */

#define WORKER_ENV_MAX 32

pid_t support_spawn_worker(const char *binary, const char *role, const char *mysql_url,
                           const char *group, const char *const extra_env[], const char *log_path,
                           int *admin_port)
{
        char bin[512], e_boot[512], e_mysql[600], e_redis[300], e_admin[64], e_group[160];
        char *argv[] = {bin, (char *)role, NULL};
        char *env[WORKER_ENV_MAX];
        int n = 0;
        pid_t pid;

        support_bin_path(binary, bin, sizeof(bin));
        *admin_port = support_free_port();
        snprintf(e_boot, sizeof(e_boot), "LIVEFLOW_KAFKA_BOOTSTRAP=%s",
                 support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"));
        snprintf(e_mysql, sizeof(e_mysql), "LIVEFLOW_MYSQL_URL=%s", mysql_url);
        snprintf(e_redis, sizeof(e_redis), "LIVEFLOW_REDIS_URL=%s",
                 support_fixture("LIVEFLOW_TEST_REDIS_URL"));
        snprintf(e_admin, sizeof(e_admin), "LIVEFLOW_ADMIN_PORT=%d", *admin_port);
        env[n++] = e_boot;
        env[n++] = e_mysql;
        env[n++] = e_redis;
        env[n++] = e_admin;
        env[n++] = (char *)"LIVEFLOW_KAFKA_SESSION_TIMEOUT_MS=3000";
        env[n++] = (char *)"LIVEFLOW_RETRY_BACKOFF_MS=50";
        if (group) {
                snprintf(e_group, sizeof(e_group), "LIVEFLOW_GROUP_ID=%s", group);
                env[n++] = e_group;
        }
        for (int i = 0; extra_env && extra_env[i]; i++) {
                cr_assert(n < WORKER_ENV_MAX - 1, "too many variables for %s", binary);
                env[n++] = (char *)extra_env[i];
        }
        env[n] = NULL;
        pid = support_spawn(argv, env, log_path);
        cr_assert(pid > 0);
        return pid;
}

pid_t support_start_worker(const char *binary, const char *role, const char *mysql_url,
                           const char *group, const char *const extra_env[], const char *log_path,
                           int *admin_port)
{
        pid_t pid = support_spawn_worker(binary, role, mysql_url, group, extra_env, log_path,
                                         admin_port);

        cr_assert(support_wait_ready(*admin_port, 20000) == 0, "%s %s not ready; see %s", binary,
                  role ? role : "", log_path);
        return pid;
}

/* ------------------------------------------------------------ fixture servers */

void support_command_line(pid_t pid, char *out, size_t size)
{
        char path[64], *args;
        size_t len = 0, n = 0;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        cr_assert((args = support_read_file(path, &len)) != NULL, "%s", path);
        out[0] = '\0';
        for (size_t i = 0; i < len; i += strlen(args + i) + 1) {
                cr_assert(strchr(args + i, '\'') == NULL, "a quote in %s", path);
                n += (size_t)snprintf(out + n, size - n, "%s'%s'", n ? " " : "", args + i);
                cr_assert(n < size, "%s is too long", path);
        }
        free(args);
}

/* ------------------------------------------------------------ Redis */

redisContext *support_redis_connect(int db, bool is_flushed, char *url, size_t url_size)
{
        const char *port = support_fixture("LIVEFLOW_TEST_REDIS_PORT");
        redisContext *c = redisConnect("127.0.0.1", atoi(port));

        cr_assert(c && !c->err, "redis 127.0.0.1:%s: %s", port, c ? c->errstr : "out of memory");
        support_redis_do(c, "SELECT %d", db);
        if (is_flushed)
                support_redis_do(c, "FLUSHDB");
        if (url)
                snprintf(url, url_size, "redis://127.0.0.1:%s/%d", port, db);
        return c;
}

void support_redis_do(redisContext *c, const char *fmt, ...)
{
        va_list ap;
        redisReply *r;

        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
        cr_assert(r && r->type != REDIS_REPLY_ERROR, "redis %s: %s", fmt, r ? r->str : c->errstr);
        freeReplyObject(r);
}
