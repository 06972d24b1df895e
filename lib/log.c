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
static enum log_format log_format = LOG_FORMAT_TEXT;

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

void log_set_format(enum log_format format)
{
        log_format = format;
}

int log_format_parse(const char *s)
{
        if (strcasecmp(s, "text") == 0)
                return LOG_FORMAT_TEXT;
        if (strcasecmp(s, "json") == 0)
                return LOG_FORMAT_JSON;
        return -1;
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

/* The calling thread's tag (log_set_thread_tag()); "" when none. */
static _Thread_local char thread_tag[32];

void log_set_thread_tag(const char *tag)
{
        snprintf(thread_tag, sizeof(thread_tag), "%s", tag ? tag : "");
}

/* Each thread's "YYYY-MM-DDTHH:MM:SS" of the second it last logged in. */
static _Thread_local time_t second_at = -1;
static _Thread_local char second_text[64];

/* Appends s to out[*n..size) as the inside of a JSON string; stops short rather than overflow. */
static void json_escape(char *out, size_t size, size_t *n, const char *s)
{
        for (; *s && *n + 7 < size; s++) {
                unsigned char ch = (unsigned char)*s;

                if (ch == '"' || ch == '\\') {
                        out[(*n)++] = '\\';
                        out[(*n)++] = (char)ch;
                } else if (ch < 0x20 || ch == 0x7f) {
                        *n += (size_t)snprintf(out + *n, size - *n, "\\u%04x", ch);
                } else {
                        out[(*n)++] = (char)ch;
                }
        }
        out[*n] = '\0';
}

/* One JSON object with the text line's fields: time, process, pid, level, trace, msg. */
static int format_json(char *line, size_t size, const char *when, enum log_level level,
                       const char *trace, const char *msg)
{
        size_t n = 0;
        int k = snprintf(line, size, "{\"time\":\"%s\",\"process\":\"", when);

        if (k < 0 || (size_t)k >= size)
                return -1;
        n = (size_t)k;
        json_escape(line, size, &n, log_process);
        k = snprintf(line + n, size - n, "\",\"pid\":%d,\"level\":\"%s\",\"trace\":\"",
                     (int)(log_pid ? log_pid : getpid()), level_names[level]);
        if (k < 0 || (size_t)k >= size - n)
                return -1;
        n += (size_t)k;
        json_escape(line, size, &n, trace);
        if (thread_tag[0]) {
                if (n + 12 >= size)
                        return -1;
                memcpy(line + n, "\",\"thread\":\"", 12);
                n += 12;
                json_escape(line, size, &n, thread_tag);
        }
        if (n + 9 >= size)
                return -1;
        memcpy(line + n, "\",\"msg\":\"", 9);
        n += 9;
        json_escape(line, size - 3, &n, msg);
        memcpy(line + n, "\"}", 3);
        return (int)(n + 2);
}

void log_write(enum log_level level, const char *trace_id, const char *fmt, ...)
{
        char line[4096], msg[2048], when[96];
        const char *trace;
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
        snprintf(when, sizeof(when), "%s.%03ldZ", second_text, (long)(tv.tv_usec / 1000));
        va_start(ap, fmt);
        m = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (m < 0)
                return;
        trace = trace_id && *trace_id ? trace_id : "-";
        if (log_format == LOG_FORMAT_JSON) {
                if ((n = format_json(line, sizeof(line) - 1, when, level, trace, msg)) < 0)
                        return;
        } else {
                sanitize(msg);
                n = snprintf(line, sizeof(line) - 1, "%s %s[%d] %s trace=%s %s%s%s", when,
                             log_process, (int)(log_pid ? log_pid : getpid()), level_names[level],
                             trace, thread_tag, thread_tag[0] ? " " : "", msg);
                if (n < 0)
                        return;
                if ((size_t)n >= sizeof(line) - 1)
                        n = (int)sizeof(line) - 2; /* cut: one line still */
        }
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
