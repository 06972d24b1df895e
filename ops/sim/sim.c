/*
 * liveflow-sim: a simulated evening against a running liveflow (see --help). It generates a
 * seeded population and its plan (plan.c), pushes the profiles, then plays the evening in
 * phases — streams begin, the evening itself (visits with heartbeats, chats and likes, tips
 * drawn by shared tags and spending level, screenshots, recordings, moderation verdicts, a
 * revenue-share change made with liveflow-ctl), then the ends, a punishing verdict, an
 * operator's forced close and ban, withdrawals — every request written as its sender writes
 * it (jobs.c) and signed as it signs it (requests.c), from a few threads with keep-alive
 * connections, paced to --rate. With --verify it checks every total it caused against MySQL
 * and Redis (verify.c). This file plays the phases and holds main().
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "sim.h"

static struct sim S;

static struct {
        struct sim_phase *ph;
        atomic_size_t next;
        atomic_llong dups;
        long long phase_sent0; /* sim_sent() when the phase began */
        long long start_ms, rate;
} run;

/* ------------------------------------------------------------------ the threads */

static int current_phase;

static void *worker(void *arg)
{
        struct sim_conn c;

        (void)arg;
        if (sim_conn_open(&c, &S.cfg) == -1) {
                sim_note_error("no libcurl handle");
                return NULL;
        }
        for (;;) {
                size_t k = atomic_fetch_add(&run.next, 1);
                long long due, wait;

                if (k >= run.ph->n)
                        break;
                /* Paced: job k is due k / rate seconds into the phase. */
                due = run.start_ms + (long long)k * 1000 / run.rate;
                if ((wait = due - clock_mono_ms()) > 0)
                        usleep((useconds_t)wait * 1000);
                run.ph->jobs[k].at_ms = clock_wall_ms();
                sim_job_send(&c, &S, &run.ph->jobs[k], k, current_phase);
                if (run.ph->jobs[k].dup) {
                        atomic_fetch_add(&run.dups, 1);
                        sim_job_send(&c, &S, &run.ph->jobs[k], k, current_phase);
                }
        }
        sim_conn_close(&c);
        return NULL;
}

static void progress(const char *phase, size_t total, long long elapsed_ms, long long expect_ms,
                     bool final)
{
        long long sent = sim_sent() - run.phase_sent0, failed = sim_failed();
        double rate = elapsed_ms > 0 ? (double)sent * 1000.0 / (double)elapsed_ms : 0;
        size_t done = atomic_load(&run.next);

        if (done > total)
                done = total;
        if (S.cfg.json)
                return;
        if (S.cfg.is_tty)
                fprintf(stderr,
                        "\r%-8s %7zu/%-7zu jobs  %7.0f req/s  %lld errors  %4lld/%llds   %s", phase,
                        done, total, rate, failed, elapsed_ms / 1000, expect_ms / 1000,
                        final ? "\n" : "");
        else
                fprintf(stderr, "%s %zu/%zu jobs, %.0f req/s, %lld errors, %lld/%lld s\n", phase,
                        done, total, rate, failed, elapsed_ms / 1000, expect_ms / 1000);
}

static void play(int p, long long rate)
{
        pthread_t t[64];
        int n = (int)S.cfg.threads;
        long long begin = clock_mono_ms(), expect = (long long)S.phases[p].n * 1000 / rate,
                  last = 0;

        current_phase = p;
        run.ph = &S.phases[p];
        atomic_store(&run.next, 0);
        run.phase_sent0 = sim_sent();
        run.start_ms = begin;
        run.rate = rate;
        for (int i = 0; i < n; i++)
                pthread_create(&t[i], NULL, worker, NULL);
        for (;;) {
                long long el = clock_mono_ms() - begin;

                if (atomic_load(&run.next) >= S.phases[p].n + (size_t)n)
                        break;
                if (el - last >= (S.cfg.is_tty ? 500 : 5000)) {
                        progress(S.phases[p].name, S.phases[p].n, el, expect, false);
                        last = el;
                }
                usleep(100000);
        }
        for (int i = 0; i < n; i++)
                pthread_join(t[i], NULL);
        progress(S.phases[p].name, S.phases[p].n, clock_mono_ms() - begin, expect, true);
}

/* ------------------------------------------------------------------ waits between phases */

static void on_i64(const struct db_col *cols, void *arg)
{
        *(long long *)arg = cols[0].is_null ? -1 : cols[0].i;
}

static long long count(struct db *db, const char *sql)
{
        struct db_text t = {0};
        struct db_col col = {.type = DB_PARAM_I64};
        long long v = -1;
        char err[256];

        db_text_add(&t, "%s", sql);
        if (db_text_query(db, &t, &col, 1, on_i64, &v, err, sizeof(err)) != DB_OK)
                v = -1;
        db_text_free(&t);
        return v;
}

/* Waits (bounded) until query gives at least want; @returns whether it did. */
static bool wait_for(struct db *db, const char *what, const char *sql, long long want,
                     int timeout_s)
{
        long long deadline = clock_mono_ms() + timeout_s * 1000LL, got = -1;

        while (clock_mono_ms() < deadline) {
                if ((got = count(db, sql)) >= want)
                        return true;
                usleep(250000);
        }
        fprintf(stderr, "liveflow-sim: %s: %lld of %lld after %d s; playing on\n", what, got, want,
                timeout_s);
        return false;
}

/* The revenue-share change: anchor 0 gets 60 % from the middle of the evening on. */
static long long share_change_ms;

/* liveflow-ctl beside this binary, else the one on PATH. */
static void ctl_path(char *out, size_t size)
{
        char self[4000];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        snprintf(out, size, "liveflow-ctl");
        if (n <= 0)
                return;
        self[n] = '\0';
        if ((slash = strrchr(self, '/'))) {
                *slash = '\0';
                snprintf(out, size, "%s/liveflow-ctl", self);
                if (access(out, X_OK) != 0)
                        snprintf(out, size, "liveflow-ctl");
        }
}

/* Runs liveflow-ctl with argv (its output on stderr, none with --json); @returns its exit
 * status, or -1 when it could not run. */
static int run_ctl(char *const argv[])
{
        pid_t pid;
        int status;

        fflush(stdout);
        fflush(stderr);
        if ((pid = fork()) == -1)
                return -1;
        if (pid == 0) {
                int out = S.cfg.json ? open("/dev/null", O_WRONLY) : STDERR_FILENO;

                if (out == -1 || dup2(out, STDOUT_FILENO) == -1)
                        _exit(127);
                execvp(argv[0], argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) == -1)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The change as an operator makes it: `liveflow-ctl share set`, its dry run, then --execute. */
static int share_change(long long at_ms)
{
        char ctl[4096], from[32];
        char *argv[] = {ctl,
                        (char *)"share",
                        (char *)"set",
                        S.anchors[0].id,
                        (char *)"6000",
                        (char *)"--from",
                        from,
                        (char *)"--reason",
                        (char *)"simulated evening",
                        NULL,
                        NULL};
        int rc;

        ctl_path(ctl, sizeof(ctl));
        snprintf(from, sizeof(from), "%lld", at_ms); /* 12 digits or more: milliseconds */
        if ((rc = run_ctl(argv)) == 0) {
                argv[9] = (char *)"--execute";
                rc = run_ctl(argv);
        }
        if (rc != 0) {
                sim_note_error("liveflow-ctl share set %s: exit %d", S.anchors[0].id, rc);
                return -1;
        }
        share_change_ms = at_ms;
        return 0;
}

long long sim_share_change_ms(void)
{
        return share_change_ms;
}

/* ------------------------------------------------------------------ main */

/* The four phases, each after what the one before caused is in MySQL (bounded waits). */
static void play_evening(struct db *db)
{
        const struct sim_config *c = &S.cfg;
        long long evening_start_ms;
        char sql[512];

        play(SIM_PHASE_PROFILES, c->rate);
        snprintf(sql, sizeof(sql),
                 "SELECT (SELECT COUNT(*) FROM anchors WHERE anchor_id LIKE 'sim%s\\_%%' AND "
                 "profile_ts_ms IS NOT NULL) + (SELECT COUNT(*) FROM audiences WHERE audience_id "
                 "LIKE 'sim%s\\_u%%' AND profile_ts_ms IS NOT NULL)",
                 c->run, c->run);
        wait_for(db, "profiles applied", sql, c->anchors + c->audiences, 60);
        play(SIM_PHASE_BEGIN, c->rate);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE 'sim%s\\_%%' AND "
                 "status = 'live'",
                 c->run);
        wait_for(db, "streams live", sql, c->anchors, 60);
        evening_start_ms = clock_wall_ms();
        share_change(evening_start_ms + c->duration_s * 1000 * 9 / 20);
        play(SIM_PHASE_EVENING, c->rate);
        /* Tencent's times are whole seconds: the ends come in a later second than any tip. */
        usleep(1500000);
        play(SIM_PHASE_END, c->rate);
}

/* The run's summary: one JSON document on stdout with --json, else a line on stderr. */
static void report(int vrc, long long checks, long long diffs, double seconds)
{
        const struct sim_config *c = &S.cfg;
        char run_name[32];
        json_t *doc;

        if (!c->json) {
                fprintf(stderr,
                        "liveflow-sim: %lld requests (%lld retried copies), %lld errors, %lld tips "
                        "(%lld), %lld visits%s%s\n",
                        (long long)sim_sent(), (long long)atomic_load(&run.dups),
                        (long long)sim_failed(), S.tips, S.tip_amount, S.visits,
                        sim_first_error()[0] ? "; first error: " : "", sim_first_error());
                return;
        }
        snprintf(run_name, sizeof(run_name), "sim%s", c->run);
        doc = json_pack(
                "{s:s,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:s}", "run", run_name,
                "seed", (json_int_t)c->seed, "requests", (json_int_t)sim_sent(), "errors",
                (json_int_t)sim_failed(), "retried_copies", (json_int_t)atomic_load(&run.dups),
                "seconds", seconds, "tips", (json_int_t)S.tips, "tip_amount",
                (json_int_t)S.tip_amount, "visits", (json_int_t)S.visits, "chats",
                (json_int_t)S.chats, "likes", (json_int_t)S.likes, "verified",
                c->verify ? json_boolean(vrc == 0) : json_null(), "checks", (json_int_t)checks,
                "differences", (json_int_t)diffs, "first_error", sim_first_error());
        json_dumpf(doc, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(doc);
}

int main(int argc, char **argv)
{
        struct sim_config *c = &S.cfg;
        struct db *db;
        char err[512];
        long long checks = 0, diffs = 0, t0;
        int vrc = 0, rc;

        if (sim_config_parse(argc, argv, c) == -1 || sim_config_load(c) == -1)
                return 2;
        c->is_tty = isatty(STDERR_FILENO);
        snprintf(c->run, sizeof(c->run), "%llx",
                 (unsigned long long)(clock_wall_ms() / 1000) & 0xffffff);
        if (!(db = db_new(c->mysql_url, 10, err, sizeof(err)))) {
                fprintf(stderr, "liveflow-sim: %s\n", err);
                return 2;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        sim_plan(&S);
        if (!c->json)
                fprintf(stderr,
                        "liveflow-sim: run sim%s seed %llu: %lld anchors, %lld audiences, %zu "
                        "evening jobs in %lld s at %lld req/s against %s\n",
                        c->run, c->seed, c->anchors, c->audiences, S.phases[SIM_PHASE_EVENING].n,
                        c->duration_s, c->rate, c->url);
        t0 = clock_mono_ms();
        play_evening(db);
        if (c->verify)
                vrc = sim_verify(&S, &checks, &diffs);
        db_destroy(db);
        rc = vrc ? vrc : sim_failed() ? 1 : 0;
        report(vrc, checks, diffs, (double)(clock_mono_ms() - t0) / 1000.0);
        sim_plan_free(&S);
        curl_global_cleanup();
        return rc;
}
