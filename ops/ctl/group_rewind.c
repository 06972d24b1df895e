/*
 * group_rewind.c: `liveflow-ctl group rewind`: a plan of new committed offsets, applied by
 * joining the group as its only member. A broker takes a commit only from a member (the dev
 * broker refuses even an empty group's commit from outside), and a member that gets only some
 * of the partitions knows others are in the group: then nothing is committed.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_kafka.h"
#include "group.h"
#include "group_members.h"
#include "log.h"
#include "names.h"

enum rewind_mode { TO_NONE, TO_TIME, TO_OFFSET, SHIFT_BY, TO_EARLIEST, TO_LATEST };

struct rewind_opts {
        const char *group;
        const char *topic;
        int partition;
        enum rewind_mode mode;
        long long value; /* time (ms), offset or shift */
        bool execute;
};

static int set_mode(struct rewind_opts *o, enum rewind_mode m, const char *v)
{
        if (o->mode != TO_NONE)
                return -1;
        o->mode = m;
        switch (m) {
        case TO_TIME:
                return ctl_parse_time(v, &o->value);
        case TO_OFFSET:
                return ctl_parse_ll(v, 0, INT64_MAX, &o->value);
        case SHIFT_BY:
                return ctl_parse_ll(v, -INT64_MAX / 2, INT64_MAX / 2, &o->value);
        default:
                return 0;
        }
}

static int rewind_parse(struct rewind_opts *o, int argc, char **argv)
{
        static const struct option longopts[] = {
                {"to-time", required_argument, NULL, 'T'},
                {"to-offset", required_argument, NULL, 'O'},
                {"shift-by", required_argument, NULL, 'S'},
                {"to-earliest", no_argument, NULL, 'E'},
                {"to-latest", no_argument, NULL, 'L'},
                {"topic", required_argument, NULL, 't'},
                {"partition", required_argument, NULL, 'p'},
                {"execute", no_argument, NULL, 'x'},
                {NULL, 0, NULL, 0},
        };
        static const enum rewind_mode modes[128] = {['T'] = TO_TIME,
                                                    ['O'] = TO_OFFSET,
                                                    ['S'] = SHIFT_BY,
                                                    ['E'] = TO_EARLIEST,
                                                    ['L'] = TO_LATEST};
        const char *prog = "liveflow-ctl group rewind";
        long long n;
        int c;

        memset(o, 0, sizeof(*o));
        o->partition = -1;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                if (c == 't')
                        o->topic = optarg;
                else if (c == 'p' && ctl_parse_ll(optarg, 0, 100000, &n) == 0)
                        o->partition = (int)n;
                else if (c == 'x')
                        o->execute = true;
                else if (c <= 0 || c >= 128 || modes[c] == TO_NONE ||
                         set_mode(o, modes[c], optarg) == -1)
                        return ctl_usage_error(prog, "bad option or value (see --help)");
        }
        if (optind + 1 != argc)
                return ctl_usage_error(prog, "name exactly one GROUP");
        o->group = argv[optind];
        if (o->mode == TO_NONE)
                return ctl_usage_error(prog, "say where to: --to-time, --to-offset, --shift-by, "
                                             "--to-earliest or --to-latest");
        return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ the plan */

struct at_ctx {
        int64_t offset;
        long long ts;
};

static int take_first(const rd_kafka_message_t *m, struct ctlk_range *r, void *opaque)
{
        struct at_ctx *a = opaque;

        (void)r;
        a->offset = m->offset;
        a->ts = rd_kafka_message_timestamp(m, NULL);
        return -1;
}

/* The first record at or after off (< hi): its offset and timestamp. */
static int record_at(rd_kafka_t *rk, const char *topic, int partition, int64_t off, int64_t hi,
                     int timeout_ms, struct at_ctx *a, char *errstr, size_t errstr_size)
{
        struct ctlk_range r = {.topic = topic, .partition = partition, .start = off, .end = hi};

        a->offset = -1;
        if (ctlk_scan(rk, &r, 1, take_first, a, timeout_ms, errstr, errstr_size) == -1)
                return -1;
        if (a->offset < 0) {
                snprintf(errstr, errstr_size, "%s/%d: no record in [%lld, %lld)", topic, partition,
                         (long long)off, (long long)hi);
                return -1;
        }
        return 0;
}

/* The first offset in [lo, hi) whose record is at or after t (hi when none), by bisection. */
static int64_t search_time(rd_kafka_t *rk, const char *topic, int partition, int64_t lo, int64_t hi,
                           long long t, int timeout_ms, char *errstr, size_t errstr_size)
{
        struct at_ctx a;
        int64_t l = lo, r;

        if (lo >= hi ||
            record_at(rk, topic, partition, hi - 1, hi, timeout_ms, &a, errstr, errstr_size) == -1)
                return lo >= hi ? hi : -1;
        if (a.ts < t)
                return hi;
        r = a.offset;
        while (l < r) {
                int64_t mid = l + (r - l) / 2;

                if (record_at(rk, topic, partition, mid, hi, timeout_ms, &a, errstr, errstr_size) ==
                    -1)
                        return -1;
                if (a.ts >= t)
                        r = a.offset < r ? a.offset : mid;
                else
                        l = a.offset + 1;
        }
        return l;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
        return v < lo ? lo : v > hi ? hi : v;
}

/* offsets_for_times for every partition of list at once; -1 where the broker answered so. */
static rd_kafka_topic_partition_list_t *
times(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *list, long long t, int timeout_ms)
{
        rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_copy(list);

        for (int i = 0; i < q->cnt; i++)
                q->elems[i].offset = t;
        if (rd_kafka_offsets_for_times(rk, q, timeout_ms))
                for (int i = 0; i < q->cnt; i++)
                        q->elems[i].offset = -1;
        return q;
}

static int plan_one(rd_kafka_t *rk, const struct rewind_opts *o, rd_kafka_topic_partition_t *p,
                    int64_t by_time, int timeout_ms, json_t *plan, char *errstr, size_t errstr_size)
{
        int64_t lo, hi, cur = p->offset, target = -1;
        const char *method = "";

        if (ctlk_watermarks(rk, p->topic, p->partition, timeout_ms, &lo, &hi, errstr,
                            errstr_size) == -1)
                return -1;
        switch (o->mode) {
        case TO_EARLIEST:
                target = lo;
                method = "earliest";
                break;
        case TO_LATEST:
                target = hi;
                method = "latest";
                break;
        case TO_OFFSET:
                target = clamp(o->value, lo, hi);
                method = "offset";
                break;
        case SHIFT_BY:
                target = clamp((cur >= 0 ? cur : lo) + o->value, lo, hi);
                method = "shift";
                break;
        case TO_TIME:
                if (by_time >= 0) {
                        target = by_time;
                        method = "offsets_for_times";
                } else {
                        target = search_time(rk, p->topic, p->partition, lo, hi, o->value,
                                             timeout_ms, errstr, errstr_size);
                        method = "timestamp search (offsets_for_times answered -1)";
                }
                break;
        case TO_NONE:
                break;
        }
        if (target < 0)
                return -1;
        json_array_append_new(plan, json_pack("{s:s,s:i,s:o,s:I,s:I,s:I,s:s}", "topic", p->topic,
                                              "partition", (int)p->partition, "current",
                                              cur >= 0 ? json_integer(cur) : json_null(), "target",
                                              (json_int_t)target, "earliest", (json_int_t)lo, "end",
                                              (json_int_t)hi, "method", method));
        p->offset = target;
        return 0;
}

/* The plan as JSON; list's offsets become the targets. */
static json_t *make_plan(rd_kafka_t *rk, const struct rewind_opts *o,
                         rd_kafka_topic_partition_list_t *list, int timeout_ms, char *errstr,
                         size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *t =
                o->mode == TO_TIME ? times(rk, list, o->value, timeout_ms) : NULL;
        json_t *plan = json_array();
        int rc = 0;

        for (int i = 0; i < list->cnt && rc == 0; i++)
                rc = plan_one(rk, o, &list->elems[i], t ? t->elems[i].offset : -1, timeout_ms, plan,
                              errstr, errstr_size);
        if (t)
                rd_kafka_topic_partition_list_destroy(t);
        if (rc == 0)
                return plan;
        json_decref(plan);
        return NULL;
}

/* ------------------------------------------------------------------ applying it */

/* Named members on a broker that describes groups; NULL when none or it cannot tell. */
static const char *described_members(rd_kafka_t *rk, const char *group, int timeout_ms, char *why,
                                     size_t why_size)
{
        json_t *all = group_members(rk, &group, 1, timeout_ms);
        json_t *g = json_object_get(all, group), *m;
        size_t i, n = 0;

        if (json_is_true(json_object_get(g, "known")) &&
            json_array_size(json_object_get(g, "members")) > 0) {
                n = (size_t)snprintf(why, why_size, "group %s has active members:", group);
                json_array_foreach(json_object_get(g, "members"), i, m) if (n < why_size) n +=
                        (size_t)snprintf(why + n, why_size - n, " %s@%s",
                                         json_string_value(json_object_get(m, "client_id")),
                                         json_string_value(json_object_get(m, "host")));
        }
        json_decref(all);
        return n ? why : NULL;
}

/* A partition the group gave someone else, or NULL when this member holds them all. */
static const rd_kafka_topic_partition_t *held_elsewhere(const rd_kafka_topic_partition_list_t *all,
                                                        const rd_kafka_topic_partition_list_t *mine,
                                                        int *cnt)
{
        const rd_kafka_topic_partition_t *first = NULL;

        *cnt = 0;
        for (int i = 0; i < all->cnt; i++)
                if (!rd_kafka_topic_partition_list_find(mine, all->elems[i].topic,
                                                        all->elems[i].partition)) {
                        (*cnt)++;
                        if (!first)
                                first = &all->elems[i];
                }
        return first;
}

/* @returns CTL_EXIT_OK, CTL_EXIT_LEFT (refused: members) or CTL_EXIT_USAGE, with errstr. */
static int apply(struct ctl *ctl, rd_kafka_t *rk, const struct group_target *t,
                 const rd_kafka_topic_partition_list_t *targets, char *errstr, size_t errstr_size)
{
        int timeout = (int)ctl->settings.ctl_timeout_ms, others = 0;
        rd_kafka_topic_partition_list_t *all =
                group_partitions(rk, t, NULL, -1, timeout, errstr, errstr_size);
        const rd_kafka_topic_partition_t *p;
        struct ctlk_member *m = NULL;
        int rc = CTL_EXIT_USAGE;

        if (!all)
                return CTL_EXIT_USAGE;
        if (described_members(rk, t->group, timeout, errstr, errstr_size)) {
                rc = CTL_EXIT_LEFT;
                goto out;
        }
        if (!(m = ctlk_member_join(ctl, t->group, t->topics, true, errstr, errstr_size)))
                goto out;
        if ((p = held_elsewhere(all, ctlk_member_assignment(m), &others))) {
                snprintf(errstr, errstr_size,
                         "group %s has other active members: they hold %d of its %d partitions "
                         "(%s/%d first); the broker cannot name them: stop every copy of the role "
                         "(a static member counts until its session times out) and try again",
                         t->group, others, all->cnt, p->topic, (int)p->partition);
                rc = CTL_EXIT_LEFT;
                goto out;
        }
        rc = ctlk_member_commit(m, targets, errstr, errstr_size) == 0 ? CTL_EXIT_OK
                                                                      : CTL_EXIT_USAGE;
out:
        ctlk_member_leave(m);
        rd_kafka_topic_partition_list_destroy(all);
        return rc;
}

static const char *committed_text(const json_t *v, char *buf, size_t size)
{
        if (json_is_null(v))
                return "none";
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return buf;
}

static void rewind_human(const json_t *doc, FILE *out)
{
        json_t *p;
        size_t i;
        char buf[32];

        fprintf(out, "%s group %s:\n",
                json_is_true(json_object_get(doc, "dry_run"))
                        ? "plan (dry run, --execute to apply) for"
                        : "rewind of",
                json_string_value(json_object_get(doc, "group")));
        json_array_foreach(json_object_get(doc, "plan"), i, p)
                fprintf(out, "  %s/%lld: %s -> %lld (%s)\n",
                        json_string_value(json_object_get(p, "topic")), ctl_json_ll(p, "partition"),
                        committed_text(json_object_get(p, "current"), buf, sizeof(buf)),
                        ctl_json_ll(p, "target"), json_string_value(json_object_get(p, "method")));
        if (json_is_string(json_object_get(doc, "refused")))
                fprintf(out, "refused: %s\n", json_string_value(json_object_get(doc, "refused")));
        else if (json_is_true(json_object_get(doc, "applied")))
                fprintf(out, "applied: committed for %zu partition(s)\n",
                        json_array_size(json_object_get(doc, "plan")));
}

int group_rewind_run(struct ctl *ctl, int argc, char **argv)
{
        struct rewind_opts o;
        struct group_target t;
        char errstr[1024] = "";
        const char *only[1];
        rd_kafka_t *rk = NULL;
        rd_kafka_topic_partition_list_t *list = NULL;
        json_t *plan = NULL, *doc;
        int timeout = (int)ctl->settings.ctl_timeout_ms;
        int rc = rewind_parse(&o, argc, argv);

        if (rc != CTL_EXIT_OK)
                return rc;
        only[0] = o.topic;
        rc = CTL_EXIT_USAGE;
        if (group_target_init(&t, o.group, only, o.topic && !names_group_known(o.group) ? 1 : 0,
                              errstr, sizeof(errstr)) == -1 ||
            !(rk = ctlk_reader_new(ctl, o.group, errstr, sizeof(errstr))) ||
            !(list = group_partitions(rk, &t, o.topic, o.partition, timeout, errstr,
                                      sizeof(errstr))) ||
            ctlk_committed(rk, list, timeout, errstr, sizeof(errstr)) == -1 ||
            !(plan = make_plan(rk, &o, list, timeout, errstr, sizeof(errstr))))
                goto out;
        rc = o.execute ? apply(ctl, rk, &t, list, errstr, sizeof(errstr)) : CTL_EXIT_OK;
        doc = json_pack("{s:s,s:b,s:O,s:b}", "group", o.group, "dry_run", !o.execute, "plan", plan,
                        "applied", o.execute && rc == CTL_EXIT_OK);
        if (rc == CTL_EXIT_LEFT)
                json_object_set_new(doc, "refused", json_string(errstr));
        log_info(NULL, "group rewind: %s %s %d partition(s) on %s%s%s", o.group,
                 !o.execute          ? "planned"
                 : rc == CTL_EXIT_OK ? "committed"
                                     : "did not commit",
                 list->cnt, ctl->settings.kafka_bootstrap, rc == CTL_EXIT_OK ? "" : ": ",
                 rc == CTL_EXIT_OK ? "" : errstr);
        if (rc != CTL_EXIT_USAGE)
                ctl_emit(ctl, doc, rewind_human);
        else
                json_decref(doc);
out:
        if (rc == CTL_EXIT_USAGE && *errstr)
                ctl_usage_error("liveflow-ctl group rewind", "%s", errstr);
        json_decref(plan);
        if (list)
                rd_kafka_topic_partition_list_destroy(list);
        if (rk)
                rd_kafka_destroy(rk);
        return rc;
}
