/* process_metrics.c: Prometheus' standard process_* series from /proc/self, and build_info. */
#include "process_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kafka.h"
#include "metrics.h"
#include "version.h"

enum stat_field { STAT_CPU_SECONDS, STAT_START_TICKS, STAT_VSIZE, STAT_RSS_BYTES };

/* One figure of /proc/self/stat (fields after the command name, which may hold spaces). */
static double self_stat(enum stat_field which)
{
        char buf[1024], *p;
        unsigned long long utime, stime, start, vsize;
        long long rss;
        FILE *f = fopen("/proc/self/stat", "r");
        size_t n;

        if (!f)
                return 0;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (!(p = strrchr(buf, ')')) ||
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                   "%*d %llu %llu %lld",
                   &utime, &stime, &start, &vsize, &rss) != 5)
                return 0;
        switch (which) {
        case STAT_CPU_SECONDS:
                return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
        case STAT_START_TICKS:
                return (double)start;
        case STAT_VSIZE:
                return (double)vsize;
        case STAT_RSS_BYTES:
                return (double)rss * (double)sysconf(_SC_PAGESIZE);
        }
        return 0;
}

static double cpu_seconds(void *arg)
{
        (void)arg;
        return self_stat(STAT_CPU_SECONDS);
}

static double resident_bytes(void *arg)
{
        (void)arg;
        return self_stat(STAT_RSS_BYTES);
}

static double virtual_bytes(void *arg)
{
        (void)arg;
        return self_stat(STAT_VSIZE);
}

static double open_fds(void *arg)
{
        DIR *d = opendir("/proc/self/fd");
        double n = 0;

        (void)arg;
        if (!d)
                return 0;
        while (readdir(d))
                n++;
        closedir(d);
        return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own descriptor */
}

static double max_fds(void *arg)
{
        struct rlimit rl;

        (void)arg;
        return getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (double)rl.rlim_cur
                       : 0;
}

/* Boot time (/proc/stat btime) plus the start ticks: the Unix time the process started. */
static long long start_time_seconds(void)
{
        char line[256];
        long long btime = 0;
        FILE *f = fopen("/proc/stat", "r");

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "btime %lld", &btime) == 1)
                        break;
        fclose(f);
        return btime + (long long)(self_stat(STAT_START_TICKS) / (double)sysconf(_SC_CLK_TCK));
}

void process_metrics_register(struct metrics *m)
{
        char labels[256];

        metrics_counter_fn(m, "process_cpu_seconds_total",
                           "Total user and system CPU time spent in seconds.", NULL, cpu_seconds,
                           NULL);
        metrics_gauge_fn(m, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL,
                         resident_bytes, NULL);
        metrics_gauge_fn(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL,
                         virtual_bytes, NULL);
        metrics_gauge_fn(m, "process_open_fds", "Number of open file descriptors.", NULL, open_fds,
                         NULL);
        metrics_gauge_fn(m, "process_max_fds", "Maximum number of open file descriptors.", NULL,
                         max_fds, NULL);
        metric_set(metrics_gauge(m, "process_start_time_seconds",
                                 "Start time of the process since unix epoch in seconds.", NULL),
                   start_time_seconds());
        snprintf(labels, sizeof(labels), "version=\"%s\",commit=\"%s\"", liveflow_version,
                 liveflow_commit);
        metric_set(metrics_gauge(m, "liveflow_build_info",
                                 "1, labelled with the version (git describe) and commit built",
                                 labels),
                   1);
        kafka_register_metrics(m);
}
