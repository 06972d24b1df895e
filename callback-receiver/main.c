/* liveflow-receiver: accepts vendor webhooks over HTTP and publishes them to Kafka. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "receiver.h"
#include "settings.h"
#include "signals.h"
#include "version.h"

#define EXIT_CONFIG 2

static void usage(FILE *out, const char *prog)
{
        fprintf(out,
                "usage: %s [--check-config] | --version | --help\n"
                "Accepts vendor and platform webhooks on LIVEFLOW_HTTP_ADDR:LIVEFLOW_HTTP_PORT and "
                "answers 200 once Kafka\nhas each event; /metrics /healthz /readyz on "
                "LIVEFLOW_ADMIN_ADDR:LIVEFLOW_ADMIN_PORT; drains on SIGTERM.\n"
                "configuration: LIVEFLOW_* environment variables (LIVEFLOW_KAFKA_BOOTSTRAP, "
                "LIVEFLOW_TENCENT_KEY, LIVEFLOW_HMAC_SECRET, ...; see the README)\n"
                "exit: 0 after a clean drain, 1 startup or drain failure, 2 bad configuration or "
                "usage\n",
                prog);
}

static int parse_args(int argc, char **argv, bool *is_check_only)
{
        *is_check_only = false;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--check-config") != 0) {
                        usage(stderr, argv[0]);
                        return -1;
                }
                *is_check_only = true;
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct settings s = {0};
        struct receiver *rcv = NULL;
        char errstr[512], about[512];
        bool is_check_only;
        int status = EXIT_FAILURE;

        if (version_requested("liveflow-receiver", argc, argv))
                return EXIT_SUCCESS;
        if (help_requested(argc, argv)) {
                usage(stdout, argv[0]);
                return EXIT_SUCCESS;
        }
        if (parse_args(argc, argv, &is_check_only) == -1) /* config */
                return EXIT_CONFIG;
        if (settings_load(&s, SETTINGS_RECEIVER, errstr, sizeof(errstr)) == -1 ||
            receiver_check_config(&s, errstr, sizeof(errstr)) == -1) {
                fprintf(stderr, "liveflow-receiver: %s\n", errstr);
                settings_fini(&s);
                return EXIT_CONFIG;
        }
        if (log_format_parse(s.log_format) == -1) {
                fprintf(stderr,
                        "liveflow-receiver: LIVEFLOW_LOG_FORMAT: \"%s\" is not text or json\n",
                        s.log_format);
                settings_fini(&s);
                return EXIT_CONFIG;
        }
        if (is_check_only) {
                printf("liveflow-receiver: configuration ok\n");
                settings_fini(&s);
                return EXIT_SUCCESS;
        }
        log_set_format((enum log_format)log_format_parse(s.log_format));
        log_init("receiver", (enum log_level)log_level_parse(s.log_level));
        signals_install();

        if (!(rcv = receiver_new(&s, errstr, sizeof(errstr)))) { /* connect */
                log_error(NULL, "startup failed: %s", errstr);
                goto out;
        }
        receiver_describe(rcv, about, sizeof(about));
        log_info(NULL, "ready %s", about);

        while (!signals_stop_requested()) /* loop */
                receiver_serve(rcv, 100 /* ms */);

        if (receiver_drain(rcv, s.drain_timeout_ms) == 0) /* drain */
                status = EXIT_SUCCESS;
out:
        receiver_destroy(rcv);
        settings_fini(&s);
        return status;
}
