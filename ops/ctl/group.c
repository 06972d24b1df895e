/* group.c: `liveflow-ctl group status` and what `group rewind` shares with it. */
#include "group.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_kafka.h"
#include "group_members.h"
#include "log.h"
#include "names.h"

static const char status_usage[] =
        "usage: liveflow-ctl group status [GROUP...] [--topic T]... [--max-lag-seconds N]\n"
        "  per partition of each group (default: every liveflow role's group): the committed\n"
        "  offset, the end offset, the lag in records and in seconds (the age of the oldest\n"
        "  record not consumed yet: the one at the committed offset), and the members where the\n"
        "  broker can list them. Works with no copy of the role running.\n"
        "  --topic T            the topics of a group liveflow does not know (repeat)\n"
        "  --max-lag-seconds N  exit 1 when any group lags more than N seconds\n"
        "  --json               one JSON document on stdout\n";

static const char rewind_usage[] =
        "usage: liveflow-ctl group rewind GROUP (--to-time T | --to-offset N | --shift-by N |\n"
        "                                  --to-earliest | --to-latest) [--topic T]\n"
        "                                  [--partition P] [--execute]\n"
        "  prints the new committed offset of every partition (and how it was found); with\n"
        "  --execute joins GROUP as its only member, commits them and leaves. Refused while\n"
        "  other members are in the group: stop every copy of the role first.\n"
        "  --to-time T     the first record at or after T (offsets_for_times, or a search of\n"
        "                  record timestamps where the broker answers -1)\n"
        "  --to-offset N   offset N (kept within what the partition holds)\n"
        "  --shift-by N    the committed offset plus N (negative: back)\n"
        "  --to-earliest, --to-latest  the first record kept / the end\n"
        "  --topic T       only this topic (also: the topics of a group liveflow does not know)\n"
        "  --partition P   only this partition\n"
        "  --execute       commit (else a dry run)\n"
        "  --json          one JSON document on stdout\n";

int group_target_init(struct group_target *t, const char *group, const char *const *given,
                      int given_cnt, char *errstr, size_t errstr_size)
{
        const struct names_group *known = names_group_find(group);

        memset(t, 0, sizeof(*t));
        t->group = group;
        if (given_cnt > 0) {
                for (int i = 0; i < given_cnt && i < GROUP_MAX_TOPICS; i++)
                        t->topics[t->topic_cnt++] = given[i];
                return 0;
        }
        if (!known) {
                snprintf(errstr, errstr_size,
                         "liveflow does not know group %s: name its topics with --topic", group);
                return -1;
        }
        for (int i = 0; known->topics[i] && i < GROUP_MAX_TOPICS; i++)
                t->topics[t->topic_cnt++] = known->topics[i];
        return 0;
}

rd_kafka_topic_partition_list_t *group_partitions(rd_kafka_t *rk, const struct group_target *t,
                                                  const char *topic, int partition, int timeout_ms,
                                                  char *errstr, size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);

        for (int i = 0; i < t->topic_cnt; i++) {
                int cnt;

                if (topic && strcmp(topic, t->topics[i]) != 0)
                        continue;
                if (ctlk_partition_count(rk, t->topics[i], timeout_ms, &cnt, errstr, errstr_size) ==
                    -1) {
                        rd_kafka_topic_partition_list_destroy(list);
                        return NULL;
                }
                for (int p = 0; p < cnt; p++)
                        if (partition < 0 || p == partition)
                                rd_kafka_topic_partition_list_add(list, t->topics[i], p);
        }
        return list;
}

/* ------------------------------------------------------------------ status */

struct status_opts {
        const char *groups[64];
        int group_cnt;
        const char *topics[GROUP_MAX_TOPICS];
        int topic_cnt;
        long long max_lag_s; /* -1: no check */
};

static int status_parse(struct status_opts *o, int argc, char **argv)
{
        static const struct option longopts[] = {
                {"topic", required_argument, NULL, 't'},
                {"max-lag-seconds", required_argument, NULL, 'm'},
                {NULL, 0, NULL, 0},
        };
        const char *prog = "liveflow-ctl group status";
        int c;

        memset(o, 0, sizeof(*o));
        o->max_lag_s = -1;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                if (c == 't' && o->topic_cnt < GROUP_MAX_TOPICS)
                        o->topics[o->topic_cnt++] = optarg;
                else if (c == 'm' && ctl_parse_ll(optarg, 0, 100000000, &o->max_lag_s) == 0)
                        continue;
                else if (c != 't')
                        return ctl_usage_error(prog, "bad option or value (see --help)");
        }
        for (int i = optind; i < argc && o->group_cnt < 64; i++)
                o->groups[o->group_cnt++] = argv[i];
        if (o->group_cnt == 0)
                for (const struct names_group *g = names_groups; g->group; g++)
                        o->groups[o->group_cnt++] = g->group;
        return CTL_EXIT_OK;
}

/* The timestamp of the record at each range's start, by partition index. */
struct ts_ctx {
        long long *ts;
        struct ctlk_range *ranges;
};

static int take_ts(const rd_kafka_message_t *m, struct ctlk_range *r, void *opaque)
{
        struct ts_ctx *tc = opaque;

        tc->ts[r - tc->ranges] = rd_kafka_message_timestamp(m, NULL);
        return 1;
}

/* Offsets, lag and the oldest unconsumed record's age of every partition of list. */
static json_t *partitions_json(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list,
                               int timeout_ms, long long now, char *errstr, size_t errstr_size)
{
        struct ctlk_range *ranges = calloc((size_t)list->cnt + 1, sizeof(*ranges));
        long long *ts = calloc((size_t)list->cnt + 1, sizeof(*ts));
        struct ts_ctx tc = {.ts = ts, .ranges = ranges};
        json_t *arr = NULL;

        for (int i = 0; i < list->cnt; i++) {
                rd_kafka_topic_partition_t *p = &list->elems[i];
                int64_t lo, hi, from;

                if (ctlk_watermarks(rk, p->topic, p->partition, timeout_ms, &lo, &hi, errstr,
                                    errstr_size) == -1)
                        goto out;
                from = p->offset >= lo ? p->offset : lo;
                ranges[i] = (struct ctlk_range){.topic = p->topic,
                                                .partition = p->partition,
                                                .start = from,
                                                .end = from < hi ? from + 1 : from};
                ts[i] = -1;
                p->opaque = (void *)(intptr_t)hi;
        }
        if (ctlk_scan(rk, ranges, (size_t)list->cnt, take_ts, &tc, timeout_ms, errstr,
                      errstr_size) == -1)
                goto out;
        arr = json_array();
        for (int i = 0; i < list->cnt; i++) {
                rd_kafka_topic_partition_t *p = &list->elems[i];
                int64_t hi = (int64_t)(intptr_t)p->opaque;

                json_array_append_new(
                        arr, json_pack("{s:s,s:i,s:o,s:I,s:I,s:o,s:o}", "topic", p->topic,
                                       "partition", (int)p->partition, "committed",
                                       p->offset >= 0 ? json_integer(p->offset) : json_null(),
                                       "end", (json_int_t)hi, "lag",
                                       (json_int_t)(hi - ranges[i].start), "lag_seconds",
                                       ts[i] >= 0 ? json_real((double)(now - ts[i]) / 1000.0)
                                                  : json_null(),
                                       "oldest_unconsumed_ms",
                                       ts[i] >= 0 ? json_integer(ts[i]) : json_null()));
        }
out:
        free(ranges);
        free(ts);
        return arr;
}

static json_t *group_status(struct ctl *ctl, const struct status_opts *o, const char *group,
                            char *errstr, size_t errstr_size)
{
        struct group_target t;
        rd_kafka_t *rk = NULL;
        rd_kafka_topic_partition_list_t *list = NULL;
        json_t *parts = NULL, *doc = NULL, *p;
        int timeout = (int)ctl->settings.ctl_timeout_ms;
        long long lag = 0;
        double lag_s = 0;
        bool committed = false;
        size_t i;

        if (group_target_init(&t, group, o->topics, o->topic_cnt, errstr, errstr_size) == -1 ||
            !(rk = ctlk_reader_new(ctl, group, errstr, errstr_size)) ||
            !(list = group_partitions(rk, &t, NULL, -1, timeout, errstr, errstr_size)) ||
            ctlk_committed(rk, list, timeout, errstr, errstr_size) == -1 ||
            !(parts = partitions_json(rk, list, timeout, ctl_now_ms(), errstr, errstr_size)))
                goto out;
        json_array_foreach(parts, i, p)
        {
                lag += json_integer_value(json_object_get(p, "lag"));
                if (json_real_value(json_object_get(p, "lag_seconds")) > lag_s)
                        lag_s = json_real_value(json_object_get(p, "lag_seconds"));
                committed |= !json_is_null(json_object_get(p, "committed"));
        }
        doc = json_pack("{s:s,s:b,s:I,s:f,s:O}", "group", group, "committed", committed, "lag",
                        (json_int_t)lag, "lag_seconds", lag_s, "partitions", parts);
out:
        json_decref(parts);
        if (list)
                rd_kafka_topic_partition_list_destroy(list);
        if (rk)
                rd_kafka_destroy(rk);
        return doc;
}

static void status_human(const json_t *doc, FILE *out)
{
        json_t *g, *p;
        size_t i, j;
        const char *said = NULL; /* the last reason members are unknown: said once */

        json_array_foreach(json_object_get(doc, "groups"), i, g)
        {
                json_t *m = json_object_get(g, "members");
                const char *why = json_string_value(json_object_get(m, "why"));

                fprintf(out, "%s: lag %lld record(s), %.1f s%s; members: ",
                        json_string_value(json_object_get(g, "group")), ctl_json_ll(g, "lag"),
                        json_real_value(json_object_get(g, "lag_seconds")),
                        json_is_true(json_object_get(g, "committed")) ? ""
                                                                      : " (nothing committed yet)");
                if (json_is_true(json_object_get(m, "known")))
                        fprintf(out, "%zu (%s)\n", json_array_size(json_object_get(m, "members")),
                                json_string_value(json_object_get(m, "state")));
                else if (why && said && strcmp(why, said) == 0)
                        fprintf(out, "unknown (as above)\n");
                else
                        fprintf(out, "unknown: %s\n", (said = why) ? why : "");
                json_array_foreach(json_object_get(g, "partitions"), j, p)
                {
                        if (json_integer_value(json_object_get(p, "lag")) == 0)
                                continue;
                        fprintf(out, "  %s/%lld committed %lld end %lld lag %lld (%.1f s)\n",
                                json_string_value(json_object_get(p, "topic")),
                                ctl_json_ll(p, "partition"),
                                json_is_null(json_object_get(p, "committed"))
                                        ? -1LL
                                        : (long long)json_integer_value(
                                                  json_object_get(p, "committed")),
                                ctl_json_ll(p, "end"), ctl_json_ll(p, "lag"),
                                json_real_value(json_object_get(p, "lag_seconds")));
                }
        }
        json_array_foreach(json_object_get(doc, "over"), i, g)
                fprintf(out, "over --max-lag-seconds: %s\n", json_string_value(g));
}

static int status_run(struct ctl *ctl, int argc, char **argv)
{
        struct status_opts o;
        char errstr[512] = "";
        json_t *groups = json_array(), *over = json_array(), *members;
        rd_kafka_t *rk = NULL;
        int rc = status_parse(&o, argc, argv);

        if (rc != CTL_EXIT_OK)
                goto out;
        rc = CTL_EXIT_USAGE;
        if (!(rk = ctlk_reader_new(ctl, NULL, errstr, sizeof(errstr))))
                goto out;
        members =
                group_members(rk, o.groups, (size_t)o.group_cnt, (int)ctl->settings.ctl_timeout_ms);
        for (int i = 0; i < o.group_cnt; i++) {
                json_t *g = group_status(ctl, &o, o.groups[i], errstr, sizeof(errstr));

                if (!g) {
                        json_decref(members);
                        goto out;
                }
                json_object_set(g, "members", json_object_get(members, o.groups[i]));
                if (o.max_lag_s >= 0 &&
                    json_real_value(json_object_get(g, "lag_seconds")) > (double)o.max_lag_s)
                        json_array_append_new(over, json_string(o.groups[i]));
                log_info(NULL, "group status: %s lag %lld record(s), %.1f s on %s", o.groups[i],
                         ctl_json_ll(g, "lag"), json_real_value(json_object_get(g, "lag_seconds")),
                         ctl->settings.kafka_bootstrap);
                json_array_append_new(groups, g);
        }
        json_decref(members);
        rc = json_array_size(over) > 0 ? CTL_EXIT_LEFT : CTL_EXIT_OK;
        ctl_emit(ctl, json_pack("{s:O,s:O}", "groups", groups, "over", over), status_human);
out:
        if (rc == CTL_EXIT_USAGE && *errstr)
                ctl_usage_error("liveflow-ctl group status", "%s", errstr);
        json_decref(groups);
        json_decref(over);
        if (rk)
                rd_kafka_destroy(rk);
        return rc;
}

const struct ctl_command group_commands[] = {
        {"status", "per partition: committed, end, lag in records and seconds; members",
         status_usage, status_run, NULL},
        {"rewind", "move a stopped group's offsets (dry run unless --execute)", rewind_usage,
         group_rewind_run, NULL},
        {NULL, NULL, NULL, NULL, NULL},
};
