/* support_worker.c: the fixture of a suite that runs one worker role (support_worker.h). */
#include "support_worker.h"

#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"

void support_worker_fx_open(struct support_worker_fx *fx, const char *prefix)
{
        char err[512];

        support_unique_name(prefix, fx->prefix, sizeof(fx->prefix));
        snprintf(fx->group, sizeof(fx->group), "test.%s", fx->prefix);
        snprintf(fx->log_path, sizeof(fx->log_path), "/tmp/%s.consumer.log", fx->prefix);
        support_create_database(fx->mysql_url, sizeof(fx->mysql_url));
        fx->mysql = support_mysql_connect(fx->mysql_url);
        fx->producer = support_producer();
        cr_assert((fx->codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
}

void support_worker_fx_close(struct support_worker_fx *fx)
{
        if (fx->pid > 0 && support_wait_exit(fx->pid, 0) == -1) {
                kill(fx->pid, SIGKILL);
                support_wait_exit(fx->pid, 5000);
        }
        if (fx->producer)
                rd_kafka_destroy(fx->producer);
        codec_destroy(fx->codec);
        if (fx->mysql)
                mysql_close(fx->mysql);
        memset(fx, 0, sizeof(*fx));
}
