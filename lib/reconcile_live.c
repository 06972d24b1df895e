/* reconcile_live.c: reconcile's checks of what the tables alone cannot show: the live-stream
 * Redis keys against live_streams, and the tips of the reward topic against every ledger and
 * the dead-letter topic. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "contract.h"
#include "db.h"
#include "kafka.h"
#include "rebuild.h"
#include "reconcile_check.h"

#define TOPIC_TIMEOUT_MS 10000 /* metadata and watermarks */
#define READ_IDLE_MS     15000 /* a partition that gives nothing for this long is an error */
#define ID_BATCH         500   /* tip ids per IN (...) */

/* qsort() and bsearch() of n items; an empty array may have a NULL base, which they must not get.
 */
static void sort_items(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
        if (n > 1)
                qsort(base, n, size, cmp);
}

static void *find_item(const void *key, const void *base, size_t n, size_t size,
                       int (*cmp)(const void *, const void *))
{
        return n ? bsearch(key, base, n, size, cmp) : NULL;
}

/* ------------------------------------------------------------------ [5] live-stream keys */

static void on_stream_finding(const struct rebuild_finding *f, void *arg)
{
        struct reconcile *rc = ((void **)arg)[0];
        long long *found = ((void **)arg)[1];

        if ((*found)++ < rc->limit)
                reconcile_say(rc, "%s %s: Redis %s, live_streams says %s", f->what, f->id, f->redis,
                              f->mysql);
}

int reconcile_check_streams(struct reconcile *rc)
{
        char err[512];
        long long found = 0, checked = 0;
        void *arg[] = {rc, &found};

        reconcile_heading(rc, 5, "live_streams",
                          "set:live:online and hash:anchor:status:* vs live_streams, now");
        if (!rc->redis) {
                reconcile_say(rc, "skipped (--no-redis)");
                return 0;
        }
        if (rebuild_diff_streams(rc->db, rc->redis, on_stream_finding, arg, &checked, err,
                                 sizeof(err)) == -1) {
                fprintf(stderr, "reconcile: live streams: %s\n", err);
                return -1;
        }
        if (found > rc->limit)
                reconcile_say(rc, "... and %lld more", found - rc->limit);
        reconcile_say(rc, "%lld live stream(s) in live_streams", checked);
        if (found)
                reconcile_say(rc, "`liveflow-ctl rebuild redis --execute` repairs them");
        return reconcile_verdict(rc, found);
}

/* ------------------------------------------------------------------ [6] the reward topic */

/* A tip seen on the topic (or its DLQ), with where. */
struct seen_tip {
        char id[65];
        char group[64]; /* DLQ records: dlq.group */
        int partition;
        long long offset, amount;
        unsigned ledgers; /* bit per ledger that holds it */
};

struct tip_set {
        struct seen_tip *items;
        size_t n, cap;
        bool is_oom;
};

static void tip_add(struct tip_set *ts, const struct seen_tip *t)
{
        if (ts->is_oom)
                return;
        if (ts->n == ts->cap) {
                size_t cap = ts->cap ? 2 * ts->cap : 256;
                struct seen_tip *items = realloc(ts->items, cap * sizeof(*items));

                if (!items) {
                        ts->is_oom = true;
                        return;
                }
                ts->items = items;
                ts->cap = cap;
        }
        ts->items[ts->n++] = *t;
}

static int cmp_tip(const void *a, const void *b)
{
        const struct seen_tip *x = a, *y = b;
        int c = strcmp(x->id, y->id);

        return c ? c : strcmp(x->group, y->group);
}

/* What one topic read collects: tips in the range (or, for a DLQ, every tip with its group). */
struct topic_read {
        struct codec *codec;
        struct tip_set *tips;
        long long from_ms, to_ms;
        bool is_dlq;
        long long not_tips;
};

/* Keeps a record that decodes to a tip (of the range, unless a DLQ); counts the rest. */
static void read_record(struct topic_read *tr, const rd_kafka_message_t *rkm)
{
        struct event ev = {0};
        struct seen_tip t = {.partition = rkm->partition, .offset = rkm->offset};
        char err[256];
        json_t *id, *ts, *amount;

        if (codec_decode(tr->codec, rkm->payload, rkm->len, &ev, err, sizeof(err)) == -1) {
                tr->not_tips++;
                return;
        }
        id = json_object_get(ev.payload, "tip_id");
        ts = json_object_get(ev.payload, "ts_ms");
        amount = json_object_get(ev.payload, "amount");
        if (!json_is_string(id) || !json_is_integer(ts) || strlen(json_string_value(id)) > 64) {
                tr->not_tips++;
        } else if (tr->is_dlq ||
                   (json_integer_value(ts) >= tr->from_ms && json_integer_value(ts) < tr->to_ms)) {
                snprintf(t.id, sizeof(t.id), "%s", json_string_value(id));
                t.amount = json_is_integer(amount) ? (long long)json_integer_value(amount) : 0;
                if (tr->is_dlq &&
                    kafka_header_get(rkm, "dlq.group", t.group, sizeof(t.group)) == -1)
                        snprintf(t.group, sizeof(t.group), "?");
                tip_add(tr->tips, &t);
        }
        event_fini(&ev);
}

/* Assigns every partition of topic from its low to its high watermark; *left counts the
 * records to read. @returns 0, or -1 with errstr. */
static int assign_all(rd_kafka_t *rk, const char *topic, long long *left, char *errstr,
                      size_t errstr_size)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, TOPIC_TIMEOUT_MS);
        int rc = -1;

        *left = 0;
        if (err || !md || md->topic_cnt != 1 || md->topics[0].err) {
                snprintf(errstr, errstr_size, "%s: no metadata: %s", topic,
                         rd_kafka_err2str(err                   ? err
                                          : md && md->topic_cnt ? md->topics[0].err
                                                                : err));
                goto done;
        }
        for (int i = 0; i < md->topics[0].partition_cnt; i++) {
                int32_t p = md->topics[0].partitions[i].id;
                int64_t lo = 0, hi = 0;

                if ((err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi,
                                                            TOPIC_TIMEOUT_MS))) {
                        snprintf(errstr, errstr_size, "%s [%d]: watermarks: %s", topic, (int)p,
                                 rd_kafka_err2str(err));
                        goto done;
                }
                if (hi > lo) {
                        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
                        *left += hi - lo;
                }
        }
        if (parts->cnt && (err = rd_kafka_assign(rk, parts))) {
                snprintf(errstr, errstr_size, "%s: assign: %s", topic, rd_kafka_err2str(err));
                goto done;
        }
        rc = 0;
done:
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_topic_destroy(rkt);
        return rc;
}

extern char **environ;

/* LIVEFLOW_KAFKA_PROP_<NAME> as librdkafka property <name> (`_` read as `.`), as every process. */
static int operator_props(rd_kafka_conf_t *conf, char *errstr, size_t errstr_size)
{
        static const char prefix[] = "LIVEFLOW_KAFKA_PROP_";

        for (char **e = environ; *e; e++) {
                const char *eq = strchr(*e, '=');
                char name[128];
                size_t n = 0;

                if (!eq || strncmp(*e, prefix, sizeof(prefix) - 1) != 0)
                        continue;
                for (const char *c = *e + sizeof(prefix) - 1; c < eq && n + 1 < sizeof(name); c++)
                        name[n++] = *c == '_' ? '.' : (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
                name[n] = '\0';
                if (kafka_conf_set(conf, name, eq + 1, errstr, errstr_size) == -1)
                        return -1;
        }
        return 0;
}

/* Reads the topic up to the high watermarks of the start (what was there when the check began). */
static int read_topic(const struct reconcile *rc, const char *topic, struct topic_read *tr,
                      char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        long long left = 0, idle_since = 0;
        int result = -1;

        /* No group is joined and nothing is committed: the group id only satisfies librdkafka. */
        if (kafka_conf_set(conf, "bootstrap.servers", rc->bootstrap, errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "group.id", "liveflow.reconcile", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) == -1 ||
            kafka_conf_set(conf, "enable.partition.eof", "true", errstr, errstr_size) == -1 ||
            operator_props(conf, errstr, errstr_size) == -1) {
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size))) {
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        if (assign_all(rk, topic, &left, errstr, errstr_size) == 0) {
                /* EOFs count down too: a partition may end below its high watermark (compaction,
                 * aborted transactions), and each partition says EOF once when it is read. */
                long long eofs = 0;
                rd_kafka_topic_partition_list_t *assigned = NULL;

                rd_kafka_assignment(rk, &assigned);
                eofs = assigned ? assigned->cnt : 0;
                if (assigned)
                        rd_kafka_topic_partition_list_destroy(assigned);
                result = 0;
                while (eofs > 0 && left > 0) {
                        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 500);

                        if (!rkm) {
                                if (!idle_since)
                                        idle_since = 1;
                                else if ((idle_since += 500) > READ_IDLE_MS) {
                                        snprintf(errstr, errstr_size,
                                                 "%s: %lld record(s) not read after %d s", topic,
                                                 left, READ_IDLE_MS / 1000);
                                        result = -1;
                                        break;
                                }
                                continue;
                        }
                        idle_since = 0;
                        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                eofs--;
                        else if (rkm->err) {
                                snprintf(errstr, errstr_size, "%s: %s", topic,
                                         rd_kafka_message_errstr(rkm));
                                result = -1;
                        } else {
                                read_record(tr, rkm);
                                left--;
                        }
                        rd_kafka_message_destroy(rkm);
                        if (result == -1)
                                break;
                }
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        if (result == 0 && tr->tips->is_oom) {
                snprintf(errstr, errstr_size, "out of memory");
                result = -1;
        }
        return result;
}

/* The three money ledgers: each one's table and the group whose DLQ holds what it missed. */
static const struct {
        const char *table, *group;
} ledgers[] = {
        {"recharge", LF_GROUP_PREFIX "reward-sync"},
        {"settlement_detail", LF_GROUP_PREFIX "settlement"},
        {"stats_tip", LF_GROUP_PREFIX "stats"},
};
#define LEDGERS (sizeof(ledgers) / sizeof(ledgers[0]))

struct mark_ctx {
        struct tip_set *tips;
        unsigned bit;
};

static void mark_found(const struct db_col *cols, void *arg)
{
        struct mark_ctx *m = arg;
        struct seen_tip key = {0}, *t;

        snprintf(key.id, sizeof(key.id), "%s", cols[0].s);
        if ((t = find_item(&key, m->tips->items, m->tips->n, sizeof(key), cmp_tip)))
                t->ledgers |= m->bit;
}

/* Sets each tip's bit for every ledger that holds it, ID_BATCH ids per query. */
static int mark_ledgers(struct reconcile *rc, struct tip_set *tips, char *errstr,
                        size_t errstr_size)
{
        char id[65];
        struct db_col col = {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)};
        struct db_text sql = {0};
        int result = 0;

        for (size_t l = 0; l < LEDGERS && result == 0; l++) {
                struct mark_ctx m = {tips, 1u << l};

                for (size_t i = 0; i < tips->n && result == 0; i += ID_BATCH) {
                        db_text_reset(&sql);
                        /* BINARY: the ledgers' keys are matched byte for byte, as Kafka has them.
                         */
                        db_text_add(&sql, "SELECT trace_id FROM %s WHERE BINARY trace_id IN (",
                                    ledgers[l].table);
                        for (size_t j = i; j < tips->n && j < i + ID_BATCH; j++) {
                                if (j > i)
                                        db_text_add(&sql, ",");
                                db_text_str(rc->db, &sql, tips->items[j].id);
                        }
                        db_text_add(&sql, ")");
                        if (db_text_query(rc->db, &sql, &col, 1, mark_found, &m, errstr,
                                          errstr_size) != DB_OK)
                                result = -1;
                }
        }
        db_text_free(&sql);
        return result;
}

/* The DLQ record of tip for group, or NULL. */
static const struct seen_tip *in_dlq(const struct tip_set *dlq, const char *id, const char *group)
{
        struct seen_tip key = {0};

        snprintf(key.id, sizeof(key.id), "%s", id);
        snprintf(key.group, sizeof(key.group), "%s", group);
        return find_item(&key, dlq->items, dlq->n, sizeof(key), cmp_tip);
}

/* One line per (tip, ledger) missing: dead-lettered (named) or lost. @returns the findings. */
static long long report_missing(struct reconcile *rc, const struct tip_set *tips,
                                const struct tip_set *dlq)
{
        long long found = 0;

        for (size_t i = 0; i < tips->n; i++) {
                const struct seen_tip *t = &tips->items[i];

                for (size_t l = 0; l < LEDGERS; l++) {
                        const struct seen_tip *d;

                        if (t->ledgers & (1u << l))
                                continue;
                        d = in_dlq(dlq, t->id, ledgers[l].group);
                        if (found++ >= rc->limit)
                                continue;
                        if (d)
                                reconcile_say(
                                        rc,
                                        "tip %s (amount %lld, %s [%d] offset %lld): not in %s, "
                                        "dead-lettered by %s at %s.dlq [%d] offset %lld",
                                        t->id, t->amount, rc->reward_topic, t->partition, t->offset,
                                        ledgers[l].table, ledgers[l].group, rc->reward_topic,
                                        d->partition, d->offset);
                        else
                                reconcile_say(
                                        rc,
                                        "tip %s (amount %lld, %s [%d] offset %lld): not in %s "
                                        "and not in %s.dlq for %s",
                                        t->id, t->amount, rc->reward_topic, t->partition, t->offset,
                                        ledgers[l].table, rc->reward_topic, ledgers[l].group);
                }
        }
        if (found > rc->limit)
                reconcile_say(rc, "... and %lld more", found - rc->limit);
        return found;
}

/* Sorts by id and keeps the first of each id (a tip posted twice is one tip). */
static void dedupe(struct tip_set *ts)
{
        size_t n = 0;

        sort_items(ts->items, ts->n, sizeof(*ts->items), cmp_tip);
        for (size_t i = 0; i < ts->n; i++)
                if (!n || cmp_tip(&ts->items[n - 1], &ts->items[i]) != 0)
                        ts->items[n++] = ts->items[i];
        ts->n = n;
}

static int topic_tips(struct reconcile *rc, struct codec *codec, struct tip_set *tips,
                      struct tip_set *dlq, long long *not_tips, char *errstr, size_t errstr_size)
{
        char dlq_topic[300];
        struct topic_read tr = {codec, tips, rc->from_s * 1000, rc->to_s * 1000, false, 0};
        struct topic_read dr = {codec, dlq, 0, 0, true, 0};

        snprintf(dlq_topic, sizeof(dlq_topic), "%s" LF_DLQ_SUFFIX, rc->reward_topic);
        if (read_topic(rc, rc->reward_topic, &tr, errstr, errstr_size) == -1 ||
            read_topic(rc, dlq_topic, &dr, errstr, errstr_size) == -1)
                return -1;
        *not_tips = tr.not_tips;
        dedupe(tips);
        for (size_t i = 0; i < tips->n; i++) /* the group field is the DLQ's only */
                tips->items[i].group[0] = '\0';
        dedupe(dlq);
        return 0;
}

int reconcile_check_topic(struct reconcile *rc)
{
        struct tip_set tips = {0}, dlq = {0};
        struct codec *codec = NULL;
        long long found = -1, not_tips = 0;
        char err[512];

        reconcile_heading(rc, 6, "reward_topic",
                          "every tip of %s in the range in recharge, settlement_detail and "
                          "stats_tip, or in %s" LF_DLQ_SUFFIX,
                          rc->reward_topic, rc->reward_topic);
        if (!rc->bootstrap) {
                reconcile_say(rc, "skipped (--no-topic, or LIVEFLOW_KAFKA_BOOTSTRAP not set)");
                return 0;
        }
        if (!(codec = codec_new(err, sizeof(err))) ||
            topic_tips(rc, codec, &tips, &dlq, &not_tips, err, sizeof(err)) == -1 ||
            mark_ledgers(rc, &tips, err, sizeof(err)) == -1)
                fprintf(stderr, "reconcile: %s: %s\n", rc->reward_topic, err);
        else
                found = report_missing(rc, &tips, &dlq);
        if (found >= 0)
                reconcile_say(rc,
                              "%zu tip(s) on %s in the range, %zu dead letter(s), %lld record(s) "
                              "not tips",
                              tips.n, rc->reward_topic, dlq.n, not_tips);
        codec_destroy(codec);
        free(tips.items);
        free(dlq.items);
        return reconcile_verdict(rc, found);
}
