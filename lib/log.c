/*
 * log.c: formats each line completely in a stack buffer. Once log_init() ran, info and
 * debug lines are gathered in one process-wide buffer that a small thread writes every
 * LOG_FLUSH_MS (one write(2) for many lines: a busy receiver logs a line per request);
 * a warning or an error writes the buffer and itself at once, so what needs attention is
 * never late and the order of lines is kept. The buffer is written at exit too.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_LEVEL_INFO;
static char log_process[32] = "liveflow";
static pid_t log_pid; /* getpid() is a system call each time: taken once */

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

#define LOG_BUFFER_BYTES (64 * 1024)
#define LOG_FLUSH_MS     50

static pthread_mutex_t buf_lock = PTHREAD_MUTEX_INITIALIZER;
static char buf[LOG_BUFFER_BYTES];
static size_t buf_len;
static bool is_buffering;
static pthread_once_t flusher_once = PTHREAD_ONCE_INIT;

static void write_all(const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(STDERR_FILENO, p, n);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return; /* nowhere left to report it */
                }
                p += w;
                n -= (size_t)w;
        }
}

/* Under buf_lock. */
static void flush_locked(void)
{
        write_all(buf, buf_len);
        buf_len = 0;
}

void log_flush(void)
{
        pthread_mutex_lock(&buf_lock);
        flush_locked();
        pthread_mutex_unlock(&buf_lock);
}

static void *flusher_main(void *arg)
{
        const struct timespec pause = {0, LOG_FLUSH_MS * 1000000L};

        (void)arg;
        for (;;) {
                nanosleep(&pause, NULL);
                log_flush();
        }
        return NULL;
}

/* The flusher takes no signal: they stay with the threads that wait for them. */
static void start_flusher(void)
{
        sigset_t all, old;
        pthread_attr_t attr;
        pthread_t tid;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        if (pthread_create(&tid, &attr, flusher_main, NULL) == 0) {
                atexit(log_flush);
                is_buffering = true;
        }
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void log_init(const char *process, enum log_level level)
{
        snprintf(log_process, sizeof(log_process), "%s", process);
        log_current_level = level;
        log_pid = getpid();
        pthread_once(&flusher_once, start_flusher);
}

int log_level_parse(const char *s)
{
        static const char *const names[] = {"error", "warn", "info", "debug"};

        for (int i = 0; i < 4; i++)
                if (strcasecmp(s, names[i]) == 0)
                        return i;
        return -1;
}

/* Replaces control bytes so that one event is always exactly one line. */
static void sanitize(char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        *s = ' ';
}

/* Each thread's "YYYY-MM-DDTHH:MM:SS" of the second it last logged in. */
static _Thread_local time_t second_at = -1;
static _Thread_local char second_text[64];

void log_write(enum log_level level, const char *trace_id, const char *fmt, ...)
{
        char line[2048];
        struct timeval tv;
        struct tm tm;
        va_list ap;
        int n, m;

        gettimeofday(&tv, NULL);
        if (tv.tv_sec != second_at) { /* the date and time change once a second */
                gmtime_r(&tv.tv_sec, &tm);
                snprintf(second_text, sizeof(second_text), "%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
                second_at = tv.tv_sec;
        }
        n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s trace=%s ", second_text,
                     (long)(tv.tv_usec / 1000), log_process, (int)(log_pid ? log_pid : getpid()),
                     level_names[level], trace_id && *trace_id ? trace_id : "-");
        if (n < 0 || (size_t)n >= sizeof(line))
                return;
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m < 0)
                return;
        sanitize(line + n);
        n = (int)strlen(line);
        line[n++] = '\n';
        if (!is_buffering) {
                write_all(line, (size_t)n);
                return;
        }
        pthread_mutex_lock(&buf_lock);
        if (buf_len + (size_t)n > sizeof(buf))
                flush_locked();
        memcpy(buf + buf_len, line, (size_t)n);
        buf_len += (size_t)n;
        if (level <= LOG_LEVEL_WARN)
                flush_locked();
        pthread_mutex_unlock(&buf_lock);
}
