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

/*
 * Appends s to out[*n..size - 1) (*n < size); with is_sanitized, control bytes become blanks, so
 * that one event is always exactly one line. Stops short when full.
 */
static void put_text(char *out, size_t size, size_t *n, const char *s, bool is_sanitized)
{
        size_t len = strlen(s), room = size - 1 - *n;

        if (len > room)
                len = room;
        memcpy(out + *n, s, len);
        if (is_sanitized)
                for (size_t i = *n; i < *n + len; i++)
                        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                                out[i] = ' ';
        *n += len;
}

/* Appends the decimal digits of v (at least `width`, zero-padded). */
static void put_uint(char *out, size_t size, size_t *n, unsigned long v, int width)
{
        char digits[24];
        int k = 0;

        do {
                digits[k++] = (char)('0' + v % 10);
                v /= 10;
        } while (v || k < width);
        while (k > 0 && *n + 1 < size)
                out[(*n)++] = digits[--k];
}

/*
 * The text line, "time process[pid] LEVEL trace=<id> [tag ]msg", built by appending (a printf of
 * the whole line cost as much again as formatting the message). @returns its length.
 */
static size_t format_text(char *line, size_t size, const char *when, enum log_level level,
                          const char *trace, const char *msg)
{
        size_t n = 0;

        put_text(line, size, &n, when, false);
        put_text(line, size, &n, " ", false);
        put_text(line, size, &n, log_process, false);
        put_text(line, size, &n, "[", false);
        put_uint(line, size, &n, (unsigned long)(log_pid ? log_pid : getpid()), 1);
        put_text(line, size, &n, "] ", false);
        put_text(line, size, &n, level_names[level], false);
        put_text(line, size, &n, " trace=", false);
        put_text(line, size, &n, trace, false);
        put_text(line, size, &n, " ", false);
        if (thread_tag[0]) {
                put_text(line, size, &n, thread_tag, false);
                put_text(line, size, &n, " ", false);
        }
        put_text(line, size, &n, msg, true);
        return n;
}

void log_write_msg(enum log_level level, const char *trace_id, const char *msg)
{
        char line[4096], when[64];
        const char *trace = trace_id && *trace_id ? trace_id : "-";
        struct timeval tv;
        struct tm tm;
        size_t w = 0;
        int n;

        gettimeofday(&tv, NULL);
        if (tv.tv_sec != second_at) { /* the date and time change once a second */
                gmtime_r(&tv.tv_sec, &tm);
                snprintf(second_text, sizeof(second_text), "%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
                second_at = tv.tv_sec;
        }
        put_text(when, sizeof(when), &w, second_text, false);
        put_text(when, sizeof(when), &w, ".", false);
        put_uint(when, sizeof(when), &w, (unsigned long)(tv.tv_usec / 1000), 3);
        put_text(when, sizeof(when), &w, "Z", false);
        when[w] = '\0';
        if (log_format == LOG_FORMAT_JSON) {
                if ((n = format_json(line, sizeof(line) - 1, when, level, trace, msg)) < 0)
                        return;
        } else {
                n = (int)format_text(line, sizeof(line) - 1, when, level, trace, msg);
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

void log_write(enum log_level level, const char *trace_id, const char *fmt, ...)
{
        char msg[2048];
        va_list ap;
        int m;

        va_start(ap, fmt);
        m = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (m >= 0)
                log_write_msg(level, trace_id, msg);
}
