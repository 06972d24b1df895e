/*
 * liveflow-devbroker: the embedded Kafka-protocol dev broker (librdkafka's mock cluster,
 * see devbroker.c for its limits). SIGUSR1 takes every broker down, SIGUSR2 brings them
 * back (outage tests); SIGTERM/SIGINT stop it. Exit 0 on a clean stop, 1 when it could not
 * start, 2 on a bad LIVEFLOW_DEVBROKER_* value.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devbroker.h"
#include "log.h"
#include "signals.h"
#include "version.h"

/* The last of SIGUSR1 (down) and SIGUSR2 (up) wins; the main loop applies it. */
static volatile sig_atomic_t brokers_wanted_up = 1;

static void on_outage_signal(int sig)
{
        brokers_wanted_up = sig == SIGUSR2;
}

/* SIGTERM/SIGINT come from the shared signals module; SIGUSR1/SIGUSR2 are ours. */
static void outage_signals_install(void)
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_outage_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGUSR2, &sa, NULL);
}

/*
 * librdkafka's threads inherit the signal mask of the thread that creates them; blocking
 * our signals around devbroker_new() keeps them on the main thread (librdkafka's advice).
 */
static void block_signals_in_threads(bool is_blocked)
{
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGUSR2);
        pthread_sigmask(is_blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* Brings the brokers to the state the last SIGUSR1/SIGUSR2 asked for. */
static void apply_wanted_state(struct devbroker *db, bool *is_up)
{
        bool wanted = brokers_wanted_up != 0;
        char errstr[256];

        if (wanted == *is_up)
                return;
        if (devbroker_set_up(db, wanted, errstr, sizeof(errstr)) == -1) {
                log_error(NULL, "%s", errstr);
                return;
        }
        *is_up = wanted;
        log_info(NULL, "%s", wanted ? "brokers up (SIGUSR2)" : "brokers down (SIGUSR1)");
}

static struct devbroker *start(const struct devbroker_config *cfg)
{
        struct devbroker *db;
        char errstr[512];

        block_signals_in_threads(true);
        db = devbroker_new(cfg, errstr, sizeof(errstr));
        block_signals_in_threads(false);
        if (!db) {
                log_error(NULL, "startup failed: %s", errstr);
                return NULL;
        }
        if (cfg->bootstrap_file &&
            devbroker_write_bootstrap(cfg->bootstrap_file, devbroker_bootstraps(db), errstr,
                                      sizeof(errstr)) == -1) {
                log_error(NULL, "startup failed: bootstrap file %s", errstr);
                devbroker_destroy(db);
                return NULL;
        }
        return db;
}

static void usage(FILE *out)
{
        fputs("usage: liveflow-devbroker [--version | --help]\n"
              "An embedded Kafka-protocol broker (librdkafka's mock cluster) with liveflow's "
              "topics, for the local\nstack and the tests; not for production. Writes its "
              "bootstrap address to LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE.\n"
              "configuration: LIVEFLOW_DEVBROKER_* environment variables (see ops/devbroker)\n"
              "exit: 0 on SIGTERM, 1 startup failure, 2 bad configuration or usage\n",
              out);
}

/* LIVEFLOW_LOG_FORMAT: text (the default) or json, as every liveflow process reads it. */
static int set_log_format(const char *format)
{
        if (format && log_format_parse(format) == -1) {
                fprintf(stderr,
                        "liveflow-devbroker: LIVEFLOW_LOG_FORMAT: \"%s\" is not text or json\n",
                        format);
                return -1;
        }
        log_set_format(format ? (enum log_format)log_format_parse(format) : LOG_FORMAT_TEXT);
        return 0;
}

int main(int argc, char **argv)
{
        static struct devbroker_config cfg; /* static: its topic table is ~32 KiB */
        struct devbroker *db;
        char errstr[512];
        bool is_up = true;

        if (version_requested("liveflow-devbroker", argc, argv))
                return EXIT_SUCCESS;
        if (help_requested(argc, argv)) {
                usage(stdout);
                return EXIT_SUCCESS;
        }
        if (argc > 1) {
                usage(stderr);
                return 2;
        }
        if (devbroker_config_load(&cfg, errstr, sizeof(errstr)) == -1) {
                fprintf(stderr, "liveflow-devbroker: %s\n", errstr);
                return 2;
        }
        if (set_log_format(getenv("LIVEFLOW_LOG_FORMAT")) == -1)
                return 2;
        log_init("devbroker", (enum log_level)cfg.log_level);
        signals_install();
        outage_signals_install();

        if (!(db = start(&cfg)))
                return EXIT_FAILURE;
        log_info(NULL, "ready bootstrap=%s brokers=%d partitions=%d topics=%d",
                 devbroker_bootstraps(db), cfg.brokers, cfg.partitions, cfg.topic_cnt);

        while (!signals_stop_requested()) {
                devbroker_poll(db, 100);
                apply_wanted_state(db, &is_up);
        }

        log_info(NULL, "stopping");
        if (cfg.bootstrap_file)
                unlink(cfg.bootstrap_file); /* the address dies with us */
        devbroker_destroy(db);
        return EXIT_SUCCESS;
}
