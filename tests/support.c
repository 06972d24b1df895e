/* support.c: helpers shared by the test suites. */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

pid_t support_spawn(char *const argv[], char *const env_add[], const char *log_path)
{
        pid_t pid = fork();

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

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
        (void)p;
        (void)arg;
        return size * n;
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
