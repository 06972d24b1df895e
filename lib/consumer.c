/* consumer.c: the consumer runtime's life cycle: connect, join the group, the loop, rebalances,
 * drain. */
#include "consumer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "consumer_lag.h"
#include "contract.h"
#include "db.h"
#include "dlq_headers.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "produce.h"
#include "redis_conn.h"
#include "settings.h"
#include "signals.h"
#include "store_breaker.h"

long long consumer_now_ms(void)
{
        return clock_wall_ms();
}

static void sleep_ms(long long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
}

void consumer_on_error(struct consumer *c, const rd_kafka_message_t *rkm)
{
        const char *topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "-";

        metric_add(c->m_consumer_errors, 1);
        if (rkm->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
            rkm->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
                /* The broker dropped records this group had not consumed yet: say it loudly. */
                metric_add(c->m_out_of_range, 1);
                log_error(NULL,
                          "offset out of range topic=%s partition=%d offset=%lld: records lost to "
                          "retention: %s",
                          topic, (int)rkm->partition, (long long)rkm->offset,
                          rd_kafka_message_errstr(rkm));
                return;
        }
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                return;
        log_warn(NULL, "consumer: topic=%s partition=%d: %s", topic, (int)rkm->partition,
                 rd_kafka_message_errstr(rkm));
}

static long long backoff_ms(const struct consumer *c, int attempt)
{
        return c->settings->retry_backoff_ms << (attempt > 1 ? attempt - 1 : 0);
}

/* Waits before the next attempt; false when a stop was requested meanwhile. */
bool consumer_backoff(struct consumer *c, int attempt)
{
        long long until = consumer_now_ms() + backoff_ms(c, attempt);

        while (consumer_now_ms() < until) {
                if (signals_stop_requested())
                        return false;
                /* Keep the group membership alive while we hold the partition. */
                rd_kafka_poll(c->producer, 0);
                sleep_ms(20);
        }
        return true;
}

/* ------------------------------------------------------------------ rebalance */

/* Revocation drains first: the current batch is already finished (we are inside poll only
 * between batches), so commit what is stored before giving the partitions away. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        struct consumer *c = opaque;
        rd_kafka_error_t *error = NULL;
        int was_assigned = c->assigned;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                error = rd_kafka_incremental_assign(rk, parts);
                if (!error && store_breaker_is_open(c->breaker) && !c->is_probing)
                        rd_kafka_pause_partitions(rk, parts); /* held like the others */
                c->joined = true;
                consumer_lag_assign(c->lag, parts);
                c->assigned += parts->cnt;
                log_info(NULL, "assigned %d partition(s), %d in all", parts->cnt, c->assigned);
        } else {
                if (c->item_cnt)
                        consumer_process_batch(c);
                rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);

                if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                        log_warn(NULL, "commit on revoke: %s (the records will be seen again)",
                                 rd_kafka_err2str(cerr));
                error = rd_kafka_incremental_unassign(rk, parts);
                consumer_lag_revoke(c->lag, parts);
                c->assigned -= parts->cnt;
                if (c->assigned < 0)
                        c->assigned = 0;
                log_info(NULL, "revoked %d partition(s), %d left", parts->cnt, c->assigned);
        }
        /* The series is the role's, summed over the process's lanes: each adds its change. */
        metric_add(c->m_assigned, c->assigned - was_assigned);
        if (error) {
                log_error(NULL, "rebalance: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
}

/* ------------------------------------------------------------------ life cycle */

static int open_stores(struct consumer *c, char *errstr, size_t errstr_size)
{
        const struct settings *s = c->settings;

        if (!(c->codec = codec_new(errstr, errstr_size)))
                return -1;
        if (!(c->db = db_new(s->mysql_url, (int)s->mysql_timeout_s, errstr, errstr_size)))
                return -1;
        if (!(c->redis =
                      redis_conn_new(s->redis_url, (int)s->redis_timeout_ms, errstr, errstr_size)))
                return -1;
        if (!(c->producer = kafka_producer_new(s, c->group, consumer_on_dlq_delivery, c, errstr,
                                               errstr_size)))
                return -1;
        return 0;
}

/*
 * This lane's view of the process's settings (borrowed strings): with several lanes, each is
 * its own group member, so its client.id and group.instance.id (when static membership is
 * configured) carry ".lane<N>". client.id goes in as the last operator property, so it wins
 * over kafka.c's default (the group) and an operator's own client.id gets the suffix too.
 */
static int lane_settings_init(struct consumer *c, const struct settings *s, char *errstr,
                              size_t errstr_size)
{
        const char *client_id = c->group;
        size_t n = 0;

        c->lane_settings = *s;
        if (c->lane_cnt == 1)
                return 0; /* the one member: named as the process, exactly as without lanes */
        if (!(c->lane_props = calloc(s->kafka_prop_cnt + 1, sizeof(*c->lane_props)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        for (size_t i = 0; i < s->kafka_prop_cnt; i++) {
                if (strcmp(s->kafka_props[i].name, "client.id") == 0)
                        client_id = s->kafka_props[i].value;
                else
                        c->lane_props[n++] = s->kafka_props[i];
        }
        snprintf(c->client_id, sizeof(c->client_id), "%s.lane%d", client_id, c->lane);
        c->lane_props[n++] = (struct kafka_prop){(char *)"client.id", c->client_id};
        c->lane_settings.kafka_props = c->lane_props;
        c->lane_settings.kafka_prop_cnt = n;
        if (s->instance_id) {
                snprintf(c->instance_id, sizeof(c->instance_id), "%s.lane%d", s->instance_id,
                         c->lane);
                c->lane_settings.instance_id = c->instance_id;
        }
        return 0;
}

struct consumer *consumer_new(const struct consumer_role *role, const struct settings *s, int lane,
                              int lane_cnt, struct metrics *metrics, char *errstr,
                              size_t errstr_size)
{
        struct consumer *c = calloc(1, sizeof(*c));

        if (!c) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        c->role = role;
        c->settings = &c->lane_settings;
        c->metrics = metrics;
        c->lane = lane;
        c->lane_cnt = lane_cnt;
        if (s->group_id)
                snprintf(c->group, sizeof(c->group), "%s", s->group_id);
        else
                snprintf(c->group, sizeof(c->group), LF_GROUP_PREFIX "%s", role->name);
        if (lane_settings_init(c, s, errstr, errstr_size) == -1)
                goto fail;
        s = c->settings;
        consumer_register_metrics(c);
        if (consumer_register_topic_metrics(c) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (!(c->lag = consumer_lag_new(metrics, role->name)) ||
            !(c->breaker = store_breaker_new(metrics, role->name, s->retry_backoff_ms,
                                             s->store_backoff_max_ms))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (open_stores(c, errstr, errstr_size) == -1)
                goto fail;
        c->env = (struct role_env){s,       c->db,      c->redis, metrics, c->producer,
                                   &c->ack, role->name, lane,     c->codec};
        if (role->open && role->open(&c->env, &c->state, errstr, errstr_size) == -1)
                goto fail;
        if (!(c->rk = kafka_consumer_new(s, c->group, role->topics, on_rebalance, consumer_on_stats,
                                         5000, c, errstr, errstr_size)))
                goto fail;
        consumer_lag_set_consumer(c->lag, c->rk);
        return c;
fail:
        consumer_destroy(c);
        return NULL;
}

void consumer_run(struct consumer *c)
{
        while (!signals_stop_requested()) {
                long long now;

                if (store_breaker_is_open(c->breaker) && !c->is_probing) {
                        consumer_wait_for_store(c);
                        continue;
                }
                c->collect_start_us = clock_mono_us();
                if (consumer_collect(c))
                        consumer_process_batch(c);
                else if (c->is_probing && consumer_now_ms() - c->probe_started_ms > 2000)
                        consumer_process_batch(
                                c); /* nothing came back (revoked?): the ping was it */
                rd_kafka_poll(c->producer, 0);
                now = consumer_now_ms();
                if (c->role->tick && now - c->last_tick_ms >= 1000) {
                        c->last_tick_ms = now;
                        c->role->tick(c->state, now);
                }
        }
}

/*
 * A static member (group.instance.id) does not leave its group when it closes, so its
 * partitions would sit unowned until its session times out. A planned stop leaves explicitly:
 * unsubscribing sends the LeaveGroup (with the instance id) before the close, and the revocation
 * commits what is stored, so the group hands the partitions over at once. A copy that comes back
 * at once (a rolling restart) can keep them instead: LIVEFLOW_LEAVE_ON_STOP=0.
 */
static void leave_group(struct consumer *c, int timeout_ms)
{
        long long deadline = consumer_now_ms() + timeout_ms;
        rd_kafka_resp_err_t err = rd_kafka_unsubscribe(c->rk);

        if (err) {
                log_warn(NULL, "leaving group %s: %s", c->group, rd_kafka_err2str(err));
                return;
        }
        while (c->assigned > 0 && consumer_now_ms() < deadline) {
                rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, 100); /* the revocation */

                if (rkm) /* fetched before the revocation: the next owner reads it */
                        rd_kafka_message_destroy(rkm);
        }
        log_info(NULL, "left group %s (static member %s), %d partition(s) still held", c->group,
                 c->settings->instance_id, c->assigned);
}

/*
 * While the group is stable: once a member leaves, the group rebalances and a commit from the
 * others is refused until they have joined again (a broker may answer "rebalance in progress"
 * even to the commit a revocation makes), so their finished records would be read again.
 */
int consumer_commit(struct consumer *c)
{
        rd_kafka_resp_err_t err;

        c->draining = true;
        if (c->item_cnt) /* records polled but not processed: they will be seen again */
                consumer_batch_clear(c);
        err = rd_kafka_commit(c->rk, NULL, 0);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
                return 0;
        log_warn(NULL, "commit before leaving group %s: %s (tried again as it leaves)", c->group,
                 rd_kafka_err2str(err));
        return -1;
}

int consumer_drain(struct consumer *c, int timeout_ms)
{
        rd_kafka_resp_err_t err;
        int rc = 0;

        c->draining = true;
        log_info(NULL, "draining: committing offsets and leaving group %s", c->group);
        if (c->item_cnt) /* records polled but not processed: they will be seen again */
                consumer_batch_clear(c);
        if (c->settings->instance_id && c->settings->leave_on_stop)
                leave_group(c, timeout_ms);
        err = rd_kafka_consumer_close(c->rk);
        if (err) {
                log_error(NULL, "consumer close: %s", rd_kafka_err2str(err));
                rc = -1;
        }
        if (rd_kafka_flush(c->producer, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            rd_kafka_outq_len(c->producer) > 0) {
                log_error(NULL, "%d produced record(s) not delivered at the deadline",
                          rd_kafka_outq_len(c->producer));
                rc = -1;
        }
        return rc;
}

void consumer_destroy(struct consumer *c)
{
        if (!c)
                return;
        consumer_batch_clear(c);
        if (c->state && c->role->close)
                c->role->close(c->state);
        consumer_lag_destroy(c->lag); /* before the consumer its scrapes read */
        if (c->rk)
                rd_kafka_destroy(c->rk);
        if (c->producer)
                rd_kafka_destroy(c->producer);
        db_destroy(c->db);
        redis_conn_destroy(c->redis);
        codec_destroy(c->codec);
        store_breaker_destroy(c->breaker);
        free(c->m_fetched);
        free(c->m_replayed);
        free(c->items);
        free(c->slots);
        free(c->recs);
        free(c->lane_props);
        free(c);
}

bool consumer_is_ready(void *arg, char *why, size_t why_size)
{
        struct consumer *c = arg;

        if (c->draining) {
                snprintf(why, why_size, "draining");
                return false;
        }
        if (!c->joined) { /* until then, records produced now would wait for the join */
                snprintf(why, why_size, "joining group %s", c->group);
                return false;
        }
        return store_breaker_ready(c->breaker, why, why_size);
}
