/* consumer_hold.c: a store outage holds the partitions instead of dead-lettering records. */
#include "consumer_int.h"

#include <stdio.h>
#include <string.h>

#include "consumer_lag.h"
#include "db.h"
#include "log.h"
#include "redis_conn.h"

/* Before a step (an apply, a commit, a publish): consumer_outage_now() then sees its failure. */
void consumer_step_begins(struct consumer *c)
{
        db_clear_unavailable(c->db);
        redis_conn_clear_unavailable(c->redis);
}

/*
 * Whether the failure just seen was the store's (MySQL or Redis unreachable, gone, read-only,
 * a table missing) rather than the record's: then no attempt counts and nothing is
 * dead-lettered; the batch is held until the store answers. Sticky for the rest of the batch.
 */
bool consumer_outage_now(struct consumer *c)
{
        if (c->is_outage)
                return true;
        if (db_store_unavailable(c->db, c->outage_why, sizeof(c->outage_why)))
                c->outage_store = STORE_MYSQL;
        else if (redis_conn_unavailable(c->redis, c->outage_why, sizeof(c->outage_why)))
                c->outage_store = STORE_REDIS;
        else
                return false;
        c->is_outage = true;
        return true;
}

static void pause_assigned(struct consumer *c, bool pause)
{
        rd_kafka_topic_partition_list_t *parts = NULL;
        rd_kafka_resp_err_t err = rd_kafka_assignment(c->rk, &parts);

        if (!err && parts->cnt)
                err = pause ? rd_kafka_pause_partitions(c->rk, parts)
                            : rd_kafka_resume_partitions(c->rk, parts);
        if (err)
                log_error(NULL, "%s partitions: %s", pause ? "pausing" : "resuming",
                          rd_kafka_err2str(err));
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
}

/* Points each listed partition's next fetch at its offset (the partitions are paused). */
static void seek_back(struct consumer *c, rd_kafka_topic_partition_list_t *parts)
{
        rd_kafka_error_t *error;

        if (!parts->cnt)
                return;
        if ((error = rd_kafka_seek_partitions(c->rk, parts, 5000))) {
                log_error(NULL, "seek: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].err)
                        log_error(NULL, "seek topic=%s partition=%d offset=%lld: %s",
                                  parts->elems[i].topic, (int)parts->elems[i].partition,
                                  (long long)parts->elems[i].offset,
                                  rd_kafka_err2str(parts->elems[i].err));
}

/*
 * The store is unavailable: each partition of the batch goes back to its first unfinished
 * record (what follows it is neither stored nor dead-lettered now, and is read again), every
 * assigned partition pauses, and the breaker opens. Nothing is skipped: the records come back
 * once consumer_run() finds the store answering and resumes.
 */
void consumer_hold(struct consumer *c)
{
        rd_kafka_topic_partition_list_t *back = rd_kafka_topic_partition_list_new(8);

        for (size_t i = 0; i < c->item_cnt; i++) {
                struct item *it = &c->items[i];
                rd_kafka_topic_partition_t *tp =
                        rd_kafka_topic_partition_list_find(back, it->rec.topic, it->rec.partition);

                if (tp)
                        it->state = ITEM_STOPPED; /* after the partition's first unfinished one */
                else if (it->state != ITEM_DONE && it->state != ITEM_DEAD)
                        rd_kafka_topic_partition_list_add(back, it->rec.topic, it->rec.partition)
                                ->offset = it->rec.offset;
        }
        pause_assigned(c, true);
        seek_back(c, back);
        rd_kafka_topic_partition_list_destroy(back);
        c->is_probing = false;
        store_breaker_trip(c->breaker, c->outage_store, c->outage_why, c->assigned);
}

/* A record polled while the partitions are held (fetched before the pause): read it again. */
void consumer_put_back(struct consumer *c, rd_kafka_message_t *rkm)
{
        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);

        rd_kafka_topic_partition_list_add(one, rd_kafka_topic_name(rkm->rkt), rkm->partition)
                ->offset = rkm->offset;
        consumer_lag_pending(c->lag, rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                             (long long)rkm->offset,
                             (long long)rd_kafka_message_timestamp(rkm, NULL));
        rd_kafka_pause_partitions(c->rk, one);
        seek_back(c, one);
        rd_kafka_topic_partition_list_destroy(one);
        rd_kafka_message_destroy(rkm);
}

/* Whether the store that tripped the breaker answers a ping now. */
static bool store_answers(struct consumer *c, char *why, size_t why_size)
{
        if (store_breaker_store(c->breaker) == STORE_REDIS)
                return redis_conn_ping(c->redis, why, why_size) == 0;
        return db_ping(c->db, why, why_size) == DB_OK;
}

/*
 * While held: serves the group (rebalances, the poll interval) without taking records, and
 * once the back-off has passed pings the store. When it answers the partitions resume; the
 * next batch is the real test (a table that is still missing trips the breaker again).
 */
void consumer_wait_for_store(struct consumer *c)
{
        char why[256];
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, 100);

        if (rkm && rkm->err) {
                consumer_on_error(c, rkm);
                rd_kafka_message_destroy(rkm);
        } else if (rkm) {
                consumer_put_back(c, rkm);
        }
        rd_kafka_poll(c->producer, 0);
        if (!store_breaker_probe_due(c->breaker))
                return;
        if (!store_answers(c, why, sizeof(why))) {
                store_breaker_wait_more(c->breaker, why);
                return;
        }
        log_info(NULL, "%s answers again: resuming %d partition(s)",
                 store_kind_name(store_breaker_store(c->breaker)), c->assigned);
        c->is_probing = true;
        c->probe_started_ms = consumer_now_ms();
        pause_assigned(c, false);
}
