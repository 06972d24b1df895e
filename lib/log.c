/* log.c: formats log lines completely in a stack buffer and writes each with one call. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_LEVEL_INFO;
static char log_process[32] = "liveflow";

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_init(const char *process, enum log_level level)
{
        snprintf(log_process, sizeof(log_process), "%s", process);
        log_current_level = level;
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

void log_write(enum log_level level, const char *trace_id, const char *fmt, ...)
{
        char line[2048];
        struct timeval tv;
        struct tm tm;
        va_list ap;
        int n, m;

        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s trace=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), log_process, (int)getpid(),
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
        if (write(STDERR_FILENO, line, (size_t)n) == -1)
                return; /* nowhere left to report it */
}
