/* dlq.c: `liveflow-ctl dlq list|show` and the options and plan every dlq subcommand shares. */
#include "dlq.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "dlq_headers.h"
#include "log.h"
#include "names.h"

#define FILTER_HELP                                                                                \
        "  --topic T          a source topic or its .dlq (repeat; default every liveflow topic)\n" \
        "  --group G          records dead-lettered by consumer group G\n"                         \
        "  --error-class C    transient or permanent\n"                                            \
        "  --since T, --until T  dead-lettered in this range (Unix s or ms,\n"                     \
        "                     2026-12-05T20:00Z, -30m, now)\n"                                     \
        "  --key K            records with this key\n"                                             \
        "  --event-type E     records whose event_type header is E\n"                              \
        "  --partition P [--offset O]  one partition of the .dlq topic, or one record of it\n"     \
        "                     (one --topic)\n"                                                     \
        "  --json             one JSON document on stdout\n"

static const char list_usage[] =
        "usage: liveflow-ctl dlq list [FILTERS]\n"
        "  per .dlq topic: records, those past the replay progress, oldest and newest, and how\n"
        "  many per error class and per consumer group\n" FILTER_HELP;

static const char show_usage[] =
        "usage: liveflow-ctl dlq show [FILTERS] [--limit N]\n"
        "  the records with key, headers, the error and the decoded envelope (oldest first)\n"
        "  --limit N          show at most N records (default 20)\n" FILTER_HELP;

static const char replay_usage[] =
        "usage: liveflow-ctl dlq replay [FILTERS] [--execute] [--rate N] [--limit N]\n"
        "                               [--auto [--min-age D]] [--history]\n"
        "  writes each selected record back to its dlq.topic with its key, value and original\n"
        "  headers, without dlq.*, with replay.time, replay.by, replay.dlq_topic,\n"
        "  replay.dlq_partition and replay.dlq_offset. A dry run unless --execute.\n"
        "  Progress: the committed offsets of LIVEFLOW_CTL_REPLAY_GROUP, one per .dlq partition:\n"
        "  a run starts where the last one stopped, so a record is replayed once; a record a run\n"
        "  does not select is passed over (see --history).\n"
        "  --execute          replay (acks=all; progress committed after every ack)\n"
        "  --rate N           at most N records per second\n"
        "  --limit N          replay at most N records\n"
        "  --auto             only transient records older than --min-age (default 15m), and\n"
        "                     only when MySQL and Redis answer; permanent ones are passed over\n"
        "                     and a too recent one stops its partition (the cron entry)\n"
        "  --history          the records before the progress (passed over or replayed before);\n"
        "                     the progress does not move\n" FILTER_HELP;

/* ------------------------------------------------------------------ options */

enum {
        OPT_TOPIC = 256,
        OPT_GROUP,
        OPT_CLASS,
        OPT_SINCE,
        OPT_UNTIL,
        OPT_KEY,
        OPT_EVENT,
        OPT_PARTITION,
        OPT_OFFSET,
        OPT_LIMIT,
        OPT_EXECUTE,
        OPT_RATE,
        OPT_AUTO,
        OPT_MIN_AGE,
        OPT_HISTORY
};

static const struct option longopts[] = {
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"group", required_argument, NULL, OPT_GROUP},
        {"error-class", required_argument, NULL, OPT_CLASS},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"key", required_argument, NULL, OPT_KEY},
        {"event-type", required_argument, NULL, OPT_EVENT},
        {"partition", required_argument, NULL, OPT_PARTITION},
        {"offset", required_argument, NULL, OPT_OFFSET},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"execute", no_argument, NULL, OPT_EXECUTE},
        {"rate", required_argument, NULL, OPT_RATE},
        {"auto", no_argument, NULL, OPT_AUTO},
        {"min-age", required_argument, NULL, OPT_MIN_AGE},
        {"history", no_argument, NULL, OPT_HISTORY},
        {NULL, 0, NULL, 0},
};

static int add_topic(struct dlq_opts *o, const char *name)
{
        if (o->topic_cnt == DLQ_MAX_TOPICS || strlen(name) + sizeof(DLQ_SUFFIX) > 256)
                return -1;
        names_dlq_of(name, o->names[o->topic_cnt], sizeof(o->names[o->topic_cnt]));
        o->topics[o->topic_cnt] = o->names[o->topic_cnt];
        o->topic_cnt++;
        return 0;
}

/* One option; @returns 0, or -1 when its value is bad. */
static int apply_opt(struct dlq_opts *o, int c, const char *v)
{
        long long n;

        switch (c) {
        case OPT_TOPIC:
                return add_topic(o, v);
        case OPT_GROUP:
                o->filter.group = v;
                return 0;
        case OPT_CLASS:
                o->filter.error_class = v;
                return strcmp(v, DLQ_CLASS_TRANSIENT) == 0 || strcmp(v, DLQ_CLASS_PERMANENT) == 0
                               ? 0
                               : -1;
        case OPT_SINCE:
                return ctl_parse_time(v, &o->filter.since_ms);
        case OPT_UNTIL:
                return ctl_parse_time(v, &o->filter.until_ms);
        case OPT_KEY:
                o->filter.key = v;
                return 0;
        case OPT_EVENT:
                o->filter.event_type = v;
                return 0;
        case OPT_PARTITION:
                if (ctl_parse_ll(v, 0, 100000, &n) == -1)
                        return -1;
                o->filter.partition = (int)n;
                return 0;
        case OPT_OFFSET:
                return ctl_parse_ll(v, 0, INT64_MAX, &o->filter.offset);
        case OPT_LIMIT:
                return ctl_parse_ll(v, 1, INT64_MAX, &o->limit);
        case OPT_EXECUTE:
                o->execute = true;
                return 0;
        case OPT_RATE:
                if (ctl_parse_ll(v, 1, 1000000, &n) == -1)
                        return -1;
                o->rate = (double)n;
                return 0;
        case OPT_AUTO:
                o->auto_mode = true;
                return 0;
        case OPT_MIN_AGE:
                return ctl_parse_duration(v, &o->min_age_ms);
        case OPT_HISTORY:
                o->history = true;
                return 0;
        }
        return -1;
}

/* Options only `dlq replay` takes. */
static bool replay_only(int c)
{
        return c == OPT_EXECUTE || c == OPT_RATE || c == OPT_AUTO || c == OPT_MIN_AGE ||
               c == OPT_HISTORY;
}

static int check_opts(struct dlq_opts *o, const char *prog)
{
        if (o->filter.offset >= 0 && (o->filter.partition < 0 || o->topic_cnt != 1))
                return ctl_usage_error(prog, "--offset needs --partition and exactly one --topic");
        if (o->auto_mode && o->history)
                return ctl_usage_error(prog, "--auto reads past the progress; not with --history");
        if (o->topic_cnt == 0)
                for (size_t i = 0; names_topics[i]; i++)
                        if (add_topic(o, names_topics[i]) == -1)
                                return ctl_usage_error(prog, "too many topics");
        return CTL_EXIT_OK;
}

int dlq_opts_parse(struct dlq_opts *o, const char *which, int argc, char **argv)
{
        char prog[64];
        int c, idx = 0;

        snprintf(prog, sizeof(prog), "liveflow-ctl dlq %s", which);
        memset(o, 0, sizeof(*o));
        dlq_filter_init(&o->filter);
        o->limit = strcmp(which, "show") == 0 ? 20 : -1;
        o->min_age_ms = 15 * 60 * 1000;
        while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
                if (c == '?')
                        return ctl_usage_error(prog, "bad option (see --help)");
                if ((replay_only(c) && strcmp(which, "replay") != 0) ||
                    (c == OPT_LIMIT && strcmp(which, "list") == 0))
                        return ctl_usage_error(prog, "--%s is not an option of dlq %s",
                                               longopts[idx].name, which);
                if (apply_opt(o, c, optarg) == -1)
                        return ctl_usage_error(prog, "--%s: bad value \"%s\"", longopts[idx].name,
                                               optarg ? optarg : "");
        }
        if (optind < argc)
                return ctl_usage_error(prog, "unexpected argument \"%s\"", argv[optind]);
        return check_opts(o, prog);
}

/* ------------------------------------------------------------------ plan */

static int plan_topic(struct dlq_plan *p, rd_kafka_t *rk, const char *topic,
                      const struct dlq_filter *f, int timeout_ms, char *errstr, size_t errstr_size)
{
        int cnt;

        if (ctlk_partition_count(rk, topic, timeout_ms, &cnt, errstr, errstr_size) == -1)
                return -1;
        for (int part = 0; part < cnt; part++) {
                struct ctlk_range *r;
                int64_t lo, hi;

                if (f->partition >= 0 && part != f->partition)
                        continue;
                if (ctlk_watermarks(rk, topic, part, timeout_ms, &lo, &hi, errstr, errstr_size) ==
                    -1)
                        return -1;
                p->ranges = realloc(p->ranges, (p->range_cnt + 1) * sizeof(*p->ranges));
                p->lows = realloc(p->lows, (p->range_cnt + 1) * sizeof(*p->lows));
                r = &p->ranges[p->range_cnt];
                *r = (struct ctlk_range){.topic = topic, .partition = part, .start = lo, .end = hi};
                if (f->offset >= 0) {
                        r->start = f->offset > lo ? f->offset : lo;
                        r->end = f->offset + 1 < hi ? f->offset + 1 : hi;
                }
                p->lows[p->range_cnt++] = lo;
        }
        return 0;
}

int dlq_plan_build(struct dlq_plan *p, rd_kafka_t *rk, const struct dlq_opts *opts, int timeout_ms,
                   char *errstr, size_t errstr_size)
{
        memset(p, 0, sizeof(*p));
        for (int i = 0; i < opts->topic_cnt; i++) {
                snprintf(p->names[i], sizeof(p->names[i]), "%s", opts->topics[i]);
                if (plan_topic(p, rk, p->names[i], &opts->filter, timeout_ms, errstr,
                               errstr_size) == -1)
                        return -1;
        }
        return 0;
}

void dlq_plan_fini(struct dlq_plan *p)
{
        free(p->ranges);
        free(p->lows);
        memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------------ list */

struct list_ctx {
        const struct dlq_opts *opts;
        json_t *by_topic; /* topic -> its summary */
        const rd_kafka_topic_partition_list_t *progress;
};

static json_t *topic_summary(struct list_ctx *lc, const char *topic)
{
        json_t *t = json_object_get(lc->by_topic, topic);

        if (t)
                return t;
        t = json_pack("{s:s,s:i,s:i,s:n,s:n,s:{},s:{}}", "topic", topic, "count", 0, "pending", 0,
                      "oldest_ms", "newest_ms", "by_class", "by_group");
        json_object_set_new(lc->by_topic, topic, t);
        return t;
}

static void bump(json_t *obj, const char *key, const char *field)
{
        json_t *sub = field ? json_object_get(obj, field) : obj;
        const char *k = key && *key ? key : "(none)";
        json_t *v = json_object_get(sub, k);

        json_object_set_new(sub, k, json_integer(v ? json_integer_value(v) + 1 : 1));
}

static int64_t progress_of(const rd_kafka_topic_partition_list_t *progress, const char *topic,
                           int partition)
{
        rd_kafka_topic_partition_t *p =
                rd_kafka_topic_partition_list_find(progress, topic, partition);

        return p && p->offset >= 0 ? p->offset : -1;
}

static void minmax(json_t *t, const char *field, long long v, bool min)
{
        json_t *cur = json_object_get(t, field);

        if (json_is_null(cur) || (min ? v < json_integer_value(cur) : v > json_integer_value(cur)))
                json_object_set_new(t, field, json_integer(v));
}

static int list_record(const rd_kafka_message_t *m, struct ctlk_range *r, void *opaque)
{
        struct list_ctx *lc = opaque;
        struct dlq_record rec;
        json_t *t;

        dlq_record_parse(&rec, m);
        if (!dlq_filter_match(&lc->opts->filter, &rec) ||
            (lc->opts->filter.until_ms >= 0 && rec.dead_at_ms > lc->opts->filter.until_ms))
                return 0;
        t = topic_summary(lc, r->topic);
        json_object_set_new(t, "count",
                            json_integer(json_integer_value(json_object_get(t, "count")) + 1));
        if (m->offset >= progress_of(lc->progress, r->topic, r->partition))
                json_object_set_new(
                        t, "pending",
                        json_integer(json_integer_value(json_object_get(t, "pending")) + 1));
        minmax(t, "oldest_ms", rec.dead_at_ms, true);
        minmax(t, "newest_ms", rec.dead_at_ms, false);
        bump(t, rec.error_class, "by_class");
        bump(t, rec.group, "by_group");
        return 0;
}

static void print_counts(FILE *out, const char *label, json_t *obj)
{
        const char *k;
        json_t *v;
        bool first = true;

        fprintf(out, "  %s:", label);
        json_object_foreach(obj, k, v)
        {
                fprintf(out, "%s %s=%lld", first ? "" : ",", k, (long long)json_integer_value(v));
                first = false;
        }
        fputc('\n', out);
}

static void list_human(const json_t *doc, FILE *out)
{
        json_t *t;
        size_t i;

        json_array_foreach(json_object_get(doc, "topics"), i, t)
        {
                char oldest[40], newest[40];

                ctl_format_time(json_is_null(json_object_get(t, "oldest_ms"))
                                        ? -1
                                        : json_integer_value(json_object_get(t, "oldest_ms")),
                                oldest, sizeof(oldest));
                ctl_format_time(json_is_null(json_object_get(t, "newest_ms"))
                                        ? -1
                                        : json_integer_value(json_object_get(t, "newest_ms")),
                                newest, sizeof(newest));
                fprintf(out,
                        "%s: %lld record(s), %lld past the replay progress, oldest %s, newest %s\n",
                        json_string_value(json_object_get(t, "topic")), ctl_json_ll(t, "count"),
                        ctl_json_ll(t, "pending"), oldest, newest);
                if (json_integer_value(json_object_get(t, "count")) > 0) {
                        print_counts(out, "by error class", json_object_get(t, "by_class"));
                        print_counts(out, "by group", json_object_get(t, "by_group"));
                }
        }
        fprintf(out, "total: %lld record(s) in %zu .dlq topic(s)\n", ctl_json_ll(doc, "total"),
                json_array_size(json_object_get(doc, "topics")));
}

rd_kafka_topic_partition_list_t *dlq_plan_progress(struct ctl *ctl, const struct dlq_plan *p,
                                                   char *errstr, size_t errstr_size)
{
        rd_kafka_t *rk = ctlk_reader_new(ctl, ctl->settings.ctl_replay_group, errstr, errstr_size);
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);

        for (size_t i = 0; i < p->range_cnt; i++)
                rd_kafka_topic_partition_list_add(list, p->ranges[i].topic, p->ranges[i].partition);
        if (!rk || (list->cnt > 0 && ctlk_committed(rk, list, (int)ctl->settings.ctl_timeout_ms,
                                                    errstr, errstr_size) == -1)) {
                rd_kafka_topic_partition_list_destroy(list);
                list = NULL;
        }
        if (rk)
                rd_kafka_destroy(rk);
        return list;
}

static int list_run(struct ctl *ctl, int argc, char **argv)
{
        struct dlq_opts opts;
        struct dlq_plan plan = {0};
        struct list_ctx lc = {.opts = &opts};
        rd_kafka_t *rk = NULL;
        char errstr[512];
        int rc = dlq_opts_parse(&opts, "list", argc, argv);
        long long total = 0;

        if (rc != CTL_EXIT_OK)
                return rc;
        rc = CTL_EXIT_USAGE;
        if (!(rk = ctlk_reader_new(ctl, NULL, errstr, sizeof(errstr))) ||
            dlq_plan_build(&plan, rk, &opts, (int)ctl->settings.ctl_timeout_ms, errstr,
                           sizeof(errstr)) == -1 ||
            !(lc.progress = dlq_plan_progress(ctl, &plan, errstr, sizeof(errstr))))
                goto out;
        lc.by_topic = json_object();
        for (int i = 0; i < opts.topic_cnt; i++)
                topic_summary(&lc, plan.names[i]);
        if (ctlk_scan(rk, plan.ranges, plan.range_cnt, list_record, &lc,
                      (int)ctl->settings.ctl_timeout_ms, errstr, sizeof(errstr)) == -1)
                goto out;
        {
                json_t *arr = json_array();

                for (int i = 0; i < opts.topic_cnt; i++) {
                        json_t *t = json_object_get(lc.by_topic, plan.names[i]);

                        total += json_integer_value(json_object_get(t, "count"));
                        json_array_append(arr, t);
                }
                log_info(NULL, "dlq list: %lld record(s) in %d .dlq topic(s) on %s", total,
                         opts.topic_cnt, ctl->settings.kafka_bootstrap);
                ctl_emit(ctl, json_pack("{s:o,s:I}", "topics", arr, "total", (json_int_t)total),
                         list_human);
        }
        rc = CTL_EXIT_OK;
out:
        if (rc != CTL_EXIT_OK)
                ctl_usage_error("liveflow-ctl dlq list", "%s", errstr);
        json_decref(lc.by_topic);
        if (lc.progress)
                rd_kafka_topic_partition_list_destroy(
                        (rd_kafka_topic_partition_list_t *)lc.progress);
        dlq_plan_fini(&plan);
        if (rk)
                rd_kafka_destroy(rk);
        return rc;
}

/* ------------------------------------------------------------------ show */

struct show_ctx {
        const struct dlq_opts *opts;
        struct codec *codec;
        json_t *records;
};

static int show_record(const rd_kafka_message_t *m, struct ctlk_range *r, void *opaque)
{
        struct show_ctx *sc = opaque;
        struct dlq_record rec;

        (void)r;
        dlq_record_parse(&rec, m);
        if (!dlq_filter_match(&sc->opts->filter, &rec) ||
            (sc->opts->filter.until_ms >= 0 && rec.dead_at_ms > sc->opts->filter.until_ms))
                return 0;
        json_array_append_new(sc->records, dlq_record_json(&rec, sc->codec));
        return (long long)json_array_size(sc->records) >= sc->opts->limit ? -1 : 0;
}

static void show_human(const json_t *doc, FILE *out)
{
        json_t *rec;
        size_t i;

        json_array_foreach(json_object_get(doc, "records"), i, rec)
        {
                json_t *err = json_object_get(rec, "error");
                json_t *env = json_object_get(rec, "envelope");
                char *body = json_dumps(env ? env : json_object_get(rec, "value"),
                                        JSON_INDENT(2) | JSON_ENCODE_ANY);
                char *hdrs = json_dumps(json_object_get(rec, "headers"), JSON_COMPACT);
                char *key = json_dumps(json_object_get(rec, "key"), JSON_ENCODE_ANY);

                fprintf(out,
                        "%s/%lld@%lld key=%s\n  error: %s (%s, group %s, %lld attempt(s))\n"
                        "  headers: %s\n  %s%s%s: %s\n",
                        json_string_value(json_object_get(rec, "topic")),
                        ctl_json_ll(rec, "partition"), ctl_json_ll(rec, "offset"), key,
                        json_string_value(json_object_get(err, "message")),
                        json_string_value(json_object_get(err, "class")),
                        json_string_value(json_object_get(err, "group")),
                        ctl_json_ll(err, "attempts"), hdrs,
                        env ? "envelope" : "value (not an envelope: ",
                        env ? "" : json_string_value(json_object_get(rec, "decode_error")),
                        env ? "" : ")", body);
                free(body);
                free(hdrs);
                free(key);
        }
        fprintf(out, "%zu record(s)\n", json_array_size(json_object_get(doc, "records")));
}

static int show_run(struct ctl *ctl, int argc, char **argv)
{
        struct dlq_opts opts;
        struct dlq_plan plan = {0};
        struct show_ctx sc = {.opts = &opts};
        rd_kafka_t *rk = NULL;
        char errstr[512];
        int rc = dlq_opts_parse(&opts, "show", argc, argv);

        if (rc != CTL_EXIT_OK)
                return rc;
        rc = CTL_EXIT_USAGE;
        if (!(sc.codec = codec_new(errstr, sizeof(errstr))) ||
            !(rk = ctlk_reader_new(ctl, NULL, errstr, sizeof(errstr))) ||
            dlq_plan_build(&plan, rk, &opts, (int)ctl->settings.ctl_timeout_ms, errstr,
                           sizeof(errstr)) == -1)
                goto out;
        sc.records = json_array();
        if (ctlk_scan(rk, plan.ranges, plan.range_cnt, show_record, &sc,
                      (int)ctl->settings.ctl_timeout_ms, errstr, sizeof(errstr)) == -1)
                goto out;
        log_info(NULL, "dlq show: %zu record(s) from %d .dlq topic(s) on %s",
                 json_array_size(sc.records), opts.topic_cnt, ctl->settings.kafka_bootstrap);
        ctl_emit(ctl, json_pack("{s:O}", "records", sc.records), show_human);
        rc = CTL_EXIT_OK;
out:
        if (rc != CTL_EXIT_OK)
                ctl_usage_error("liveflow-ctl dlq show", "%s", errstr);
        json_decref(sc.records);
        dlq_plan_fini(&plan);
        if (rk)
                rd_kafka_destroy(rk);
        codec_destroy(sc.codec);
        return rc;
}

static int replay_run(struct ctl *ctl, int argc, char **argv)
{
        struct dlq_opts opts;
        int rc = dlq_opts_parse(&opts, "replay", argc, argv);

        return rc != CTL_EXIT_OK ? rc : dlq_replay_run(ctl, &opts);
}

const struct ctl_command dlq_commands[] = {
        {"list", "per .dlq topic: records, oldest/newest, by error class and group", list_usage,
         list_run, NULL},
        {"show", "records with key, headers, error and decoded envelope", show_usage, show_run,
         NULL},
        {"replay", "write records back to their topic (dry run unless --execute)", replay_usage,
         replay_run, NULL},
        {NULL, NULL, NULL, NULL, NULL},
};
