/*
 * dlq_replay.c: `liveflow-ctl dlq replay`: dead letters back to their topic, once.
 *
 * Progress is the committed offset of LIVEFLOW_CTL_REPLAY_GROUP on each .dlq partition: the
 * next record a run looks at. A run that keeps progress joins that group (a broker takes
 * commits only from members; a second run at the same time gets part of the partitions and
 * refuses), reads from the progress to the end it saw at start, and commits the progress only
 * after every record produced before it was acknowledged (acks=all, idempotent). A crash
 * between the acks and the commit can replay those records once more; every liveflow effect
 * is idempotent, so that costs nothing but a log line.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "clock.h"
#include "dlq.h"
#include "dlq_headers.h"
#include "log.h"
#include "names.h"
#include "redis_conn.h"
#include "signals.h"

#define COMMIT_EVERY    100  /* records, */
#define COMMIT_EVERY_MS 1000 /* or this long: what a crash can replay twice */
#define RECORDS_SHOWN   1000

struct replay {
        struct ctl *ctl;
        const struct dlq_opts *opts;
        struct dlq_plan plan;
        rd_kafka_t *reader, *producer;
        struct ctlk_member *member;
        rd_kafka_topic_partition_list_t *progress; /* next offset per range, as committed */
        int64_t *next;                             /* next offset per range, as examined */
        long long *counts;                         /* replayed per range */
        bool keep_progress;
        long long now_ms, started_mono_ms;
        long long selected, passed, failed, uncommitted, settled_mono_ms;
        long long same_source; /* passed over: their source record was replayed by this run */
        int inflight, delivery_failed;
        char delivery_error[256];
        json_t *records, *stops;
        json_t *seen; /* "topic/partition/offset" of the source records replayed by this run */
        char errstr[512];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        struct replay *rp = m->_private;

        (void)rk;
        (void)opaque;
        if (!rp)
                return;
        rp->inflight--;
        if (m->err) {
                rp->delivery_failed++;
                snprintf(rp->delivery_error, sizeof(rp->delivery_error), "%s: %s",
                         rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        }
}

/* ------------------------------------------------------------------ stores (--auto) */

/* MySQL and Redis both answer, or *why says which does not. */
static bool stores_answer(const struct ctl *ctl, char *why, size_t why_size)
{
        const struct settings *s = &ctl->settings;
        char err[256];
        struct db *db;
        struct redis_conn *rc;
        bool ok;

        if (!(db = db_new(s->mysql_url, (int)s->mysql_timeout_s, err, sizeof(err)))) {
                snprintf(why, why_size, "MySQL does not answer: %s", err);
                return false;
        }
        ok = db_ping(db, err, sizeof(err)) == DB_OK;
        db_destroy(db);
        if (!ok) {
                snprintf(why, why_size, "MySQL does not answer: %s", err);
                return false;
        }
        if (!(rc = redis_conn_new(s->redis_url, (int)s->redis_timeout_ms, err, sizeof(err))) ||
            redis_conn_ping(rc, err, sizeof(err)) == -1) {
                redis_conn_destroy(rc);
                snprintf(why, why_size, "Redis does not answer: %s", err);
                return false;
        }
        redis_conn_destroy(rc);
        return true;
}

/* ------------------------------------------------------------------ progress */

static int commit_progress(struct replay *rp)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
        int rc = 0;

        for (size_t i = 0; i < rp->plan.range_cnt; i++) {
                rd_kafka_topic_partition_t *p = &rp->progress->elems[i];

                if (rp->next[i] > p->offset)
                        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset =
                                rp->next[i];
        }
        if (list->cnt > 0 &&
            (rc = ctlk_member_commit(rp->member, list, rp->errstr, sizeof(rp->errstr))) == 0)
                for (int i = 0; i < list->cnt; i++)
                        rd_kafka_topic_partition_list_find(rp->progress, list->elems[i].topic,
                                                           list->elems[i].partition)
                                ->offset = list->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(list);
        return rc;
}

/* Waits for every ack, then commits the progress. @returns 0, or -1 (nothing committed). */
static int settle(struct replay *rp)
{
        if (rp->producer) {
                rd_kafka_flush(rp->producer, (int)rp->ctl->settings.ctl_timeout_ms * 3);
                if (rp->inflight > 0 || rp->delivery_failed > 0) {
                        snprintf(rp->errstr, sizeof(rp->errstr),
                                 "%d record(s) not acknowledged, %d refused (%s); progress kept "
                                 "where it was",
                                 rp->inflight, rp->delivery_failed, rp->delivery_error);
                        rp->failed += rp->inflight + rp->delivery_failed;
                        return -1;
                }
        }
        rp->uncommitted = 0;
        rp->settled_mono_ms = clock_mono_ms();
        return rp->keep_progress ? commit_progress(rp) : 0;
}

/* ------------------------------------------------------------------ one record */

static rd_kafka_headers_t *replay_headers(const struct replay *rp, const rd_kafka_message_t *m)
{
        rd_kafka_headers_t *orig = NULL, *h = rd_kafka_headers_new(12);
        const char *name;
        const void *val;
        size_t len;
        char buf[300];

        if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
                for (size_t i = 0; !rd_kafka_header_get_all(orig, i, &name, &val, &len); i++)
                        if (strncmp(name, DLQ_HEADER_PREFIX, strlen(DLQ_HEADER_PREFIX)) != 0 &&
                            strncmp(name, REPLAY_HEADER_PREFIX, strlen(REPLAY_HEADER_PREFIX)) != 0)
                                rd_kafka_header_add(h, name, -1, val, (ssize_t)len);
        snprintf(buf, sizeof(buf), "%lld", ctl_now_ms());
        rd_kafka_header_add(h, REPLAY_TIME, -1, buf, -1);
        snprintf(buf, sizeof(buf), "liveflow-ctl%s %s", rp->opts->auto_mode ? " --auto" : "",
                 rp->ctl->who);
        rd_kafka_header_add(h, REPLAY_BY, -1, buf, -1);
        rd_kafka_header_add(h, REPLAY_DLQ_TOPIC, -1, rd_kafka_topic_name(m->rkt), -1);
        snprintf(buf, sizeof(buf), "%d", (int)m->partition);
        rd_kafka_header_add(h, REPLAY_DLQ_PARTITION, -1, buf, -1);
        snprintf(buf, sizeof(buf), "%lld", (long long)m->offset);
        rd_kafka_header_add(h, REPLAY_DLQ_OFFSET, -1, buf, -1);
        return h;
}

static void pace(struct replay *rp)
{
        long long due, now;

        if (rp->opts->rate <= 0)
                return;
        due = rp->started_mono_ms + (long long)((double)rp->selected * 1000.0 / rp->opts->rate);
        while ((now = clock_mono_ms()) < due) {
                rd_kafka_poll(rp->producer, (int)(due - now));
        }
}

static int produce(struct replay *rp, const rd_kafka_message_t *m, const char *target)
{
        rd_kafka_headers_t *h = replay_headers(rp, m);
        rd_kafka_resp_err_t err;

        pace(rp);
        do {
                err = rd_kafka_producev(
                        rp->producer, RD_KAFKA_V_TOPIC(target), RD_KAFKA_V_KEY(m->key, m->key_len),
                        RD_KAFKA_V_VALUE(m->payload, m->len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                        RD_KAFKA_V_OPAQUE(rp), RD_KAFKA_V_END);
                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(rp->producer, 100);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err) {
                rd_kafka_headers_destroy(h);
                snprintf(rp->errstr, sizeof(rp->errstr), "produce to %s: %s", target,
                         rd_kafka_err2str(err));
                return -1;
        }
        rp->inflight++;
        rd_kafka_poll(rp->producer, 0);
        return 0;
}

static void add_stop(struct replay *rp, const rd_kafka_message_t *m, const char *reason)
{
        json_array_append_new(rp->stops,
                              json_pack("{s:s,s:i,s:I,s:s}", "topic", rd_kafka_topic_name(m->rkt),
                                        "partition", (int)m->partition, "offset",
                                        (json_int_t)m->offset, "reason", reason));
}

/* Why this record stops its partition here (it may be selected later), or NULL. */
static const char *stop_reason(const struct replay *rp, const struct dlq_record *rec)
{
        const struct dlq_opts *o = rp->opts;

        if (o->filter.until_ms >= 0 && rec->dead_at_ms > o->filter.until_ms)
                return "dead-lettered after --until";
        if (o->auto_mode && strcmp(rec->error_class, DLQ_CLASS_TRANSIENT) == 0 &&
            rp->now_ms - rec->dead_at_ms < o->min_age_ms)
                return "transient but younger than --min-age";
        return NULL;
}

static bool selected(const struct replay *rp, const struct dlq_record *rec)
{
        return dlq_filter_match(&rp->opts->filter, rec) &&
               (!rp->opts->auto_mode || strcmp(rec->error_class, DLQ_CLASS_TRANSIENT) == 0);
}

static void note_record(struct replay *rp, const struct dlq_record *rec, const char *target)
{
        const rd_kafka_message_t *m = rec->m;

        if (json_array_size(rp->records) >= RECORDS_SHOWN)
                return;
        json_array_append_new(rp->records,
                              json_pack("{s:s,s:i,s:I,s:s,s:s%,s:s,s:s,s:s}", "dlq_topic",
                                        rd_kafka_topic_name(m->rkt), "partition", (int)m->partition,
                                        "offset", (json_int_t)m->offset, "to_topic", target, "key",
                                        m->key ? (const char *)m->key : "", m->key ? m->key_len : 0,
                                        "event_type", rec->event_type, "error_class",
                                        rec->error_class, "group", rec->group));
}

/*
 * One source record dead-lettered by several groups (live.reward by reward-sync, settlement
 * and stats) is one replay: the source topic reaches every group again anyway.
 */
static bool replayed_already(struct replay *rp, const struct dlq_record *rec)
{
        char key[320];

        if (rec->source_partition < 0 || rec->source_offset < 0)
                return false;
        snprintf(key, sizeof(key), "%s/%lld/%lld", rec->dlq_topic, rec->source_partition,
                 rec->source_offset);
        if (json_object_get(rp->seen, key))
                return true;
        json_object_set_new(rp->seen, key, json_true());
        return false;
}

static int replay_record(const rd_kafka_message_t *m, struct ctlk_range *r, void *opaque)
{
        struct replay *rp = opaque;
        size_t i = (size_t)(r - rp->plan.ranges);
        struct dlq_record rec;
        const char *why;
        char target[256];

        if (signals_stop_requested()) {
                add_stop(rp, m, "stopped by a signal (progress kept up to here)");
                return -1;
        }
        dlq_record_parse(&rec, m);
        if ((why = stop_reason(rp, &rec))) {
                add_stop(rp, m, why);
                return 1;
        }
        if (!selected(rp, &rec)) {
                rp->passed++;
                rp->next[i] = m->offset + 1;
                return 0;
        }
        if (rp->opts->limit > 0 && rp->selected >= rp->opts->limit) {
                add_stop(rp, m, "--limit reached");
                return -1;
        }
        if (replayed_already(rp, &rec)) {
                rp->same_source++;
                rp->next[i] = m->offset + 1;
                return 0;
        }
        snprintf(target, sizeof(target), "%s", rec.dlq_topic);
        if (!*target) {
                add_stop(rp, m, "no dlq.topic header: cannot tell where it belongs");
                rp->failed++;
                return 1;
        }
        note_record(rp, &rec, target);
        rp->selected++;
        if (rp->opts->execute) {
                if (produce(rp, m, target) == -1) {
                        rp->failed++;
                        return -1;
                }
                rp->counts[i]++;
        }
        rp->next[i] = m->offset + 1;
        if (rp->opts->execute &&
            (++rp->uncommitted >= COMMIT_EVERY ||
             clock_mono_ms() - rp->settled_mono_ms >= COMMIT_EVERY_MS) &&
            settle(rp) == -1)
                return -1;
        return 0;
}

/* ------------------------------------------------------------------ the run */

/* Joins the replay group over the plan's topics; refuses when others hold any partition. */
static int join(struct replay *rp)
{
        const char *topics[DLQ_MAX_TOPICS + 1] = {0};
        const rd_kafka_topic_partition_list_t *got;
        int n = 0;

        for (int t = 0; t < rp->opts->topic_cnt; t++)
                for (size_t i = 0; i < rp->plan.range_cnt; i++)
                        if (rp->plan.ranges[i].topic == rp->plan.names[t]) {
                                topics[n++] = rp->plan.names[t];
                                break;
                        }
        if (n == 0)
                return 0;
        if (!(rp->member = ctlk_member_join(rp->ctl, rp->ctl->settings.ctl_replay_group, topics,
                                            false, rp->errstr, sizeof(rp->errstr))))
                return -1;
        got = ctlk_member_assignment(rp->member);
        for (size_t i = 0; i < rp->plan.range_cnt; i++)
                if (!rd_kafka_topic_partition_list_find(got, rp->plan.ranges[i].topic,
                                                        rp->plan.ranges[i].partition)) {
                        snprintf(rp->errstr, sizeof(rp->errstr),
                                 "another member of %s holds %s/%d (a replay running elsewhere?); "
                                 "nothing replayed",
                                 rp->ctl->settings.ctl_replay_group, rp->plan.ranges[i].topic,
                                 rp->plan.ranges[i].partition);
                        return -1;
                }
        return 0;
}

/* Where each range starts and ends given the progress and the mode. */
static void set_ranges(struct replay *rp)
{
        bool single = rp->opts->filter.offset >= 0;

        for (size_t i = 0; i < rp->plan.range_cnt; i++) {
                struct ctlk_range *r = &rp->plan.ranges[i];
                int64_t prog = rp->progress->elems[i].offset;

                if (single) {
                        /* one named record: wherever the progress is */
                } else if (rp->opts->history) {
                        r->end = prog < 0 ? r->start : (prog < r->end ? prog : r->end);
                } else if (prog > r->start) {
                        r->start = prog < r->end ? prog : r->end;
                }
                rp->next[i] = prog < 0 ? rp->plan.lows[i] : prog;
                if (!single && !rp->opts->history && prog < 0)
                        rp->next[i] = r->start;
        }
}

static int prepare(struct replay *rp)
{
        struct ctl *ctl = rp->ctl;
        int timeout = (int)ctl->settings.ctl_timeout_ms;

        if (!(rp->reader = ctlk_reader_new(ctl, NULL, rp->errstr, sizeof(rp->errstr))) ||
            dlq_plan_build(&rp->plan, rp->reader, rp->opts, timeout, rp->errstr,
                           sizeof(rp->errstr)) == -1)
                return -1;
        if (rp->keep_progress && join(rp) == -1)
                return -1;
        if (!(rp->progress = dlq_plan_progress(ctl, &rp->plan, rp->errstr, sizeof(rp->errstr))))
                return -1;
        rp->next = calloc(rp->plan.range_cnt + 1, sizeof(*rp->next));
        rp->counts = calloc(rp->plan.range_cnt + 1, sizeof(*rp->counts));
        set_ranges(rp);
        if (rp->opts->execute &&
            !(rp->producer = ctlk_producer_new(ctl, on_delivery, rp->errstr, sizeof(rp->errstr))))
                return -1;
        return 0;
}

static void log_partitions(const struct replay *rp)
{
        for (size_t i = 0; i < rp->plan.range_cnt; i++) {
                const struct ctlk_range *r = &rp->plan.ranges[i];

                if (rp->counts[i] == 0 && rp->next[i] <= rp->progress->elems[i].offset)
                        continue;
                if (rp->keep_progress)
                        log_info(NULL,
                                 "dlq replay: %s/%d: replayed %lld record(s), progress now "
                                 "%lld, on %s",
                                 r->topic, r->partition, rp->counts[i],
                                 (long long)rp->progress->elems[i].offset,
                                 rp->ctl->settings.kafka_bootstrap);
                else if (rp->counts[i] > 0)
                        log_info(NULL, "dlq replay: %s/%d: replayed %lld record(s) on %s", r->topic,
                                 r->partition, rp->counts[i], rp->ctl->settings.kafka_bootstrap);
        }
}

static json_t *progress_json(const struct replay *rp)
{
        json_t *arr = json_array();

        for (size_t i = 0; rp->progress && i < rp->plan.range_cnt; i++)
                json_array_append_new(
                        arr, json_pack("{s:s,s:i,s:I}", "topic", rp->progress->elems[i].topic,
                                       "partition", (int)rp->progress->elems[i].partition, "offset",
                                       (json_int_t)rp->progress->elems[i].offset));
        return arr;
}

static void replay_human(const json_t *doc, FILE *out)
{
        json_t *v;
        size_t i;
        bool dry = json_is_true(json_object_get(doc, "dry_run"));

        json_array_foreach(json_object_get(doc, "records"), i, v) fprintf(
                out, "%s %s/%lld@%lld -> %s key=%s event_type=%s (%s, %s)\n",
                dry ? "would replay" : "replayed",
                json_string_value(json_object_get(v, "dlq_topic")), ctl_json_ll(v, "partition"),
                ctl_json_ll(v, "offset"), json_string_value(json_object_get(v, "to_topic")),
                json_string_value(json_object_get(v, "key")),
                json_string_value(json_object_get(v, "event_type")),
                json_string_value(json_object_get(v, "error_class")),
                json_string_value(json_object_get(v, "group")));
        json_array_foreach(json_object_get(doc, "stopped"), i, v)
                fprintf(out, "stopped at %s/%lld@%lld: %s\n",
                        json_string_value(json_object_get(v, "topic")), ctl_json_ll(v, "partition"),
                        ctl_json_ll(v, "offset"), json_string_value(json_object_get(v, "reason")));
        fprintf(out,
                "%s %lld record(s), passed over %lld, %lld more dead letter(s) of the same source "
                "record(s), failed %lld%s\n",
                dry ? "dry run: would replay" : "replayed", ctl_json_ll(doc, "replayed"),
                ctl_json_ll(doc, "passed_over"), ctl_json_ll(doc, "same_source"),
                ctl_json_ll(doc, "failed"), dry ? " (--execute to replay)" : "");
        if (json_is_string(json_object_get(doc, "error")))
                fprintf(out, "error: %s\n", json_string_value(json_object_get(doc, "error")));
}

static int finish(struct replay *rp, int rc)
{
        json_t *doc =
                json_pack("{s:b,s:b,s:b,s:I,s:I,s:I,s:O,s:O,s:o}", "dry_run", !rp->opts->execute,
                          "auto", rp->opts->auto_mode, "history", rp->opts->history, "replayed",
                          (json_int_t)rp->selected, "passed_over", (json_int_t)rp->passed, "failed",
                          (json_int_t)rp->failed, "records", rp->records, "stopped", rp->stops,
                          "progress", progress_json(rp));

        json_object_set_new(doc, "same_source", json_integer(rp->same_source));
        if (rc != CTL_EXIT_OK)
                json_object_set_new(doc, "error", json_string(rp->errstr));
        if (rp->progress)
                log_partitions(rp);
        log_info(NULL,
                 "dlq replay%s: %s %lld record(s), passed over %lld, failed %lld, from %d "
                 ".dlq topic(s) on %s",
                 rp->opts->auto_mode ? " --auto" : "",
                 rp->opts->execute ? "replayed" : "would replay", rp->selected, rp->passed,
                 rp->failed, rp->opts->topic_cnt, rp->ctl->settings.kafka_bootstrap);
        if (rc != CTL_EXIT_OK)
                log_error(NULL, "dlq replay: %s", rp->errstr);
        ctl_emit(rp->ctl, doc, replay_human);
        return rc;
}

static void replay_fini(struct replay *rp)
{
        if (rp->producer) {
                rd_kafka_flush(rp->producer, 5000);
                rd_kafka_destroy(rp->producer);
        }
        ctlk_member_leave(rp->member);
        if (rp->reader)
                rd_kafka_destroy(rp->reader);
        if (rp->progress)
                rd_kafka_topic_partition_list_destroy(rp->progress);
        free(rp->next);
        free(rp->counts);
        dlq_plan_fini(&rp->plan);
        json_decref(rp->records);
        json_decref(rp->stops);
        json_decref(rp->seen);
}

static int check_auto(struct replay *rp)
{
        const struct settings *s = &rp->ctl->settings;

        if (!s->mysql_url || !s->redis_url) {
                snprintf(rp->errstr, sizeof(rp->errstr),
                         "--auto checks the stores first: set LIVEFLOW_MYSQL_URL and "
                         "LIVEFLOW_REDIS_URL");
                return CTL_EXIT_USAGE;
        }
        return stores_answer(rp->ctl, rp->errstr, sizeof(rp->errstr)) ? CTL_EXIT_OK : CTL_EXIT_LEFT;
}

int dlq_replay_run(struct ctl *ctl, const struct dlq_opts *opts)
{
        struct replay rp = {.ctl = ctl, .opts = opts};
        int rc = CTL_EXIT_OK;

        rp.keep_progress = opts->execute && !opts->history && opts->filter.offset < 0;
        if (opts->execute)
                signals_install(); /* SIGTERM/SIGINT: stop, wait for the acks, commit, exit */
        rp.now_ms = ctl_now_ms();
        rp.started_mono_ms = rp.settled_mono_ms = clock_mono_ms();
        rp.records = json_array();
        rp.stops = json_array();
        rp.seen = json_object();
        if (opts->auto_mode && (rc = check_auto(&rp)) != CTL_EXIT_OK)
                goto out;
        if (prepare(&rp) == -1) {
                /* another run holding partitions is "something left"; the rest is connection */
                rc = strstr(rp.errstr, "another member") ? CTL_EXIT_LEFT : CTL_EXIT_USAGE;
                goto out;
        }
        if (ctlk_scan(rp.reader, rp.plan.ranges, rp.plan.range_cnt, replay_record, &rp,
                      (int)ctl->settings.ctl_timeout_ms, rp.errstr, sizeof(rp.errstr)) == -1)
                rc = CTL_EXIT_USAGE;
        if (opts->execute && settle(&rp) == -1)
                rc = CTL_EXIT_LEFT;
        if (rc == CTL_EXIT_OK && signals_stop_requested()) {
                snprintf(rp.errstr, sizeof(rp.errstr),
                         "stopped by a signal; the rest waits for the next run");
                rc = CTL_EXIT_LEFT;
        }
        if (rc == CTL_EXIT_OK && rp.failed > 0) {
                if (!*rp.errstr)
                        snprintf(rp.errstr, sizeof(rp.errstr), "%lld record(s) not replayed",
                                 rp.failed);
                rc = CTL_EXIT_LEFT;
        }
out:
        rc = finish(&rp, rc);
        replay_fini(&rp);
        return rc;
}
