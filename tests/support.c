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
