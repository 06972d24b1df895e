/* ctl_kafka.c: readers, watermarks, range scans and commit-only group members for liveflow-ctl. */
#include "ctl_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "kafka.h"
#include "log.h"

rd_kafka_t *ctlk_reader_new(const struct ctl *ctl, const char *group, char *errstr,
                            size_t errstr_size)
{
        char name[128];
        rd_kafka_conf_t *conf = kafka_conf_new(&ctl->settings, "liveflow-ctl", errstr, errstr_size);
        rd_kafka_t *rk;

        if (!conf)
                return NULL;
        snprintf(name, sizeof(name), "liveflow.ctl.reader-%d", (int)getpid());
        if (kafka_conf_set(conf, "group.id", group ? group : name, errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.partition.eof", "true", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "fetch.wait.max.ms", "50", errstr, errstr_size) == -1 ||
            kafka_conf_apply_operator(conf, &ctl->settings, errstr, errstr_size) == -1) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        if (!(rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
                return NULL;
        rd_kafka_poll_set_consumer(rk);
        return rk;
}

rd_kafka_t *ctlk_producer_new(const struct ctl *ctl,
                              void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                              char *errstr, size_t errstr_size)
{
        return kafka_producer_new(&ctl->settings, "liveflow-ctl", dr_cb, NULL, errstr, errstr_size);
}

int ctlk_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, int *cnt, char *errstr,
                         size_t errstr_size)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;

        *cnt = 0;
        err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        rd_kafka_topic_destroy(rkt);
        if (err) {
                snprintf(errstr, errstr_size, "metadata of %s: %s", topic, rd_kafka_err2str(err));
                return -1;
        }
        if (md->topic_cnt == 1 && !md->topics[0].err)
                *cnt = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        return 0;
}

int ctlk_watermarks(rd_kafka_t *rk, const char *topic, int partition, int timeout_ms, int64_t *lo,
                    int64_t *hi, char *errstr, size_t errstr_size)
{
        rd_kafka_resp_err_t err =
                rd_kafka_query_watermark_offsets(rk, topic, partition, lo, hi, timeout_ms);

        if (err) {
                snprintf(errstr, errstr_size, "end offsets of %s/%d: %s", topic, partition,
                         rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

int ctlk_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int timeout_ms,
                   char *errstr, size_t errstr_size)
{
        rd_kafka_resp_err_t err = rd_kafka_committed(rk, list, timeout_ms);

        if (err) {
                snprintf(errstr, errstr_size, "committed offsets: %s", rd_kafka_err2str(err));
                return -1;
        }
        for (int i = 0; i < list->cnt; i++)
                if (list->elems[i].err) {
                        snprintf(errstr, errstr_size, "committed offset of %s/%d: %s",
                                 list->elems[i].topic, list->elems[i].partition,
                                 rd_kafka_err2str(list->elems[i].err));
                        return -1;
                }
        return 0;
}

/* ------------------------------------------------------------------ scans */

static struct ctlk_range *range_of(struct ctlk_range *ranges, size_t n, const char *topic,
                                   int partition)
{
        for (size_t i = 0; i < n; i++)
                if (ranges[i].partition == partition && strcmp(ranges[i].topic, topic) == 0)
                        return &ranges[i];
        return NULL;
}

static size_t assign_ranges(rd_kafka_t *rk, struct ctlk_range *ranges, size_t n)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
        size_t open = 0;

        for (size_t i = 0; i < n; i++) {
                ranges[i].done = ranges[i].start >= ranges[i].end;
                if (ranges[i].done)
                        continue;
                rd_kafka_topic_partition_list_add(list, ranges[i].topic, ranges[i].partition)
                        ->offset = ranges[i].start;
                open++;
        }
        rd_kafka_assign(rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        return open;
}

/* One polled event. @returns 1 when it closed a range, 0 otherwise, -1 to stop, -2 on error. */
static int scan_one(rd_kafka_message_t *m, struct ctlk_range *ranges, size_t n, ctlk_record_fn fn,
                    void *opaque, char *errstr, size_t errstr_size)
{
        struct ctlk_range *r =
                m->rkt ? range_of(ranges, n, rd_kafka_topic_name(m->rkt), m->partition) : NULL;
        int rc;

        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (!r || r->done)
                        return 0;
                r->done = true;
                return 1;
        }
        if (m->err) {
                snprintf(errstr, errstr_size, "reading %s/%d: %s",
                         m->rkt ? rd_kafka_topic_name(m->rkt) : "?", m->partition,
                         rd_kafka_message_errstr(m));
                return -2;
        }
        if (!r || r->done || m->offset < r->start)
                return 0;
        if (m->offset >= r->end) {
                r->done = true;
                return 1;
        }
        if ((rc = fn(m, r, opaque)) == -1)
                return -1;
        if (rc == 1 || m->offset >= r->end - 1) {
                r->done = true;
                return 1;
        }
        return 0;
}

int ctlk_scan(rd_kafka_t *rk, struct ctlk_range *ranges, size_t n, ctlk_record_fn fn, void *opaque,
              int timeout_ms, char *errstr, size_t errstr_size)
{
        size_t open = assign_ranges(rk, ranges, n);
        long long last = clock_mono_ms();
        int rc = 0;

        while (open > 0 && rc == 0) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

                if (!m) {
                        if (clock_mono_ms() - last > timeout_ms) {
                                snprintf(errstr, errstr_size,
                                         "no record for %d ms with %zu partition(s) unread",
                                         timeout_ms, open);
                                rc = -2;
                        }
                        continue;
                }
                last = clock_mono_ms();
                rc = scan_one(m, ranges, n, fn, opaque, errstr, errstr_size);
                rd_kafka_message_destroy(m);
                if (rc == 1) {
                        open--;
                        rc = 0;
                }
        }
        rd_kafka_assign(rk, NULL);
        return rc == -2 ? -1 : rc == -1 ? 1 : 0;
}

/* ------------------------------------------------------------------ group membership */

struct ctlk_member {
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *assignment;
        bool assigned;
        bool cooperative;
};

/* Takes what the group gives and pauses it at once: the member only commits. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        struct ctlk_member *m = opaque;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                if (m->cooperative)
                        rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
                else
                        rd_kafka_assign(rk, parts);
                rd_kafka_pause_partitions(rk, parts);
                for (int i = 0; i < parts->cnt; i++)
                        rd_kafka_topic_partition_list_add(m->assignment, parts->elems[i].topic,
                                                          parts->elems[i].partition);
                m->assigned = true;
                return;
        }
        if (m->cooperative)
                rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
                rd_kafka_assign(rk, NULL);
        for (int i = 0; i < parts->cnt; i++)
                rd_kafka_topic_partition_list_del(m->assignment, parts->elems[i].topic,
                                                  parts->elems[i].partition);
}

static rd_kafka_conf_t *member_conf(const struct ctl *ctl, const char *group, bool cooperative,
                                    char *errstr, size_t errstr_size)
{
        long long session = ctl->settings.session_timeout_ms;
        char s_session[32], s_heartbeat[32];
        rd_kafka_conf_t *conf = kafka_conf_new(&ctl->settings, "liveflow-ctl", errstr, errstr_size);

        if (!conf)
                return NULL;
        snprintf(s_session, sizeof(s_session), "%lld", session);
        snprintf(s_heartbeat, sizeof(s_heartbeat), "%lld", session / 3 < 3000 ? session / 3 : 3000);
        if (kafka_conf_set(conf, "group.id", group, errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "partition.assignment.strategy",
                           cooperative ? "cooperative-sticky" : "range", errstr,
                           errstr_size) == -1 ||
            kafka_conf_set(conf, "session.timeout.ms", s_session, errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "heartbeat.interval.ms", s_heartbeat, errstr, errstr_size) == -1 ||
            kafka_conf_apply_operator(conf, &ctl->settings, errstr, errstr_size) == -1) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        return conf;
}

static int subscribe(rd_kafka_t *rk, const char *const topics[], char *errstr, size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
        rd_kafka_resp_err_t err;

        for (size_t i = 0; topics[i]; i++)
                rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        if (err)
                snprintf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(err));
        return err ? -1 : 0;
}

struct ctlk_member *ctlk_member_join(const struct ctl *ctl, const char *group,
                                     const char *const topics[], bool cooperative, char *errstr,
                                     size_t errstr_size)
{
        struct ctlk_member *m = calloc(1, sizeof(*m));
        rd_kafka_conf_t *conf = member_conf(ctl, group, cooperative, errstr, errstr_size);
        long long deadline = clock_mono_ms() + 3 * ctl->settings.session_timeout_ms +
                             ctl->settings.ctl_timeout_ms;

        if (!m || !conf) {
                if (conf)
                        rd_kafka_conf_destroy(conf);
                free(m);
                return NULL;
        }
        m->cooperative = cooperative;
        m->assignment = rd_kafka_topic_partition_list_new(8);
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_opaque(conf, m);
        if (!(m->rk = kafka_client_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
                goto fail;
        rd_kafka_poll_set_consumer(m->rk);
        if (subscribe(m->rk, topics, errstr, errstr_size) == -1)
                goto fail;
        while (!m->assigned && clock_mono_ms() < deadline)
                ctlk_member_poll(m, 200);
        if (m->assigned)
                return m;
        snprintf(errstr, errstr_size, "joining group %s: no assignment within %lld ms", group,
                 3 * ctl->settings.session_timeout_ms + ctl->settings.ctl_timeout_ms);
fail:
        ctlk_member_leave(m);
        return NULL;
}

const rd_kafka_topic_partition_list_t *ctlk_member_assignment(const struct ctlk_member *m)
{
        return m->assignment;
}

void ctlk_member_poll(struct ctlk_member *m, int timeout_ms)
{
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, timeout_ms);

        if (msg) {
                if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        log_warn(NULL, "group member: %s", rd_kafka_message_errstr(msg));
                rd_kafka_message_destroy(msg);
        }
}

static int commit_errors(const rd_kafka_topic_partition_list_t *list, char *errstr,
                         size_t errstr_size)
{
        for (int i = 0; i < list->cnt; i++)
                if (list->elems[i].err) {
                        snprintf(errstr, errstr_size, "commit of %s/%d: %s", list->elems[i].topic,
                                 list->elems[i].partition, rd_kafka_err2str(list->elems[i].err));
                        return -1;
                }
        return 0;
}

int ctlk_member_commit(struct ctlk_member *m, const rd_kafka_topic_partition_list_t *list,
                       char *errstr, size_t errstr_size)
{
        for (int attempt = 1;; attempt++) {
                rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(list);
                rd_kafka_resp_err_t err = rd_kafka_commit(m->rk, copy, 0);
                int rc = err ? -1 : commit_errors(copy, errstr, errstr_size);

                rd_kafka_topic_partition_list_destroy(copy);
                if (!err && rc == 0)
                        return 0;
                if (err)
                        snprintf(errstr, errstr_size, "commit: %s", rd_kafka_err2str(err));
                if (attempt >= 10 || (err && err != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS &&
                                      err != RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS))
                        return -1;
                ctlk_member_poll(m, 500);
        }
}

void ctlk_member_leave(struct ctlk_member *m)
{
        if (!m)
                return;
        if (m->rk) {
                rd_kafka_consumer_close(m->rk);
                rd_kafka_destroy(m->rk);
        }
        rd_kafka_topic_partition_list_destroy(m->assignment);
        free(m);
}
