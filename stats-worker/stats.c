/* stats.c: the stats role on the consumer runtime: routes each record, runs the periodic work. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "log.h"
#include "affinity.h"
#include "profile.h"
#include "sessions.h"
#include "settings.h"
#include "tips.h"

#define REFRESH_MAX 100 /* sessions whose live_statistics one tick computes at most */

static const char *const stats_topics[] = {LF_TOPIC_REWARD, LF_TOPIC_VIEWER, LF_TOPIC_SESSION,
                                           NULL};

struct stats_state {
        struct tips *tips;
        struct sessions *sessions;
        struct profile *profile;
        struct affinity *affinity;
};

static void stats_close(void *state)
{
        struct stats_state *st = state;

        if (!st)
                return;
        affinity_destroy(st->affinity);
        profile_destroy(st->profile);
        sessions_destroy(st->sessions);
        tips_destroy(st->tips);
        free(st);
}

static int stats_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct stats_state *st = calloc(1, sizeof(*st));

        if (!st || !(st->tips = tips_new(env->db, env->metrics)) ||
            !(st->sessions = sessions_new(env->db, env->metrics, env->settings->stats_late_s))) {
                snprintf(errstr, errstr_size, "out of memory");
                stats_close(st);
                return -1;
        }
        if (!(st->profile =
                      profile_new(env->settings, env->redis, env->metrics, errstr, errstr_size))) {
                stats_close(st);
                return -1;
        }
        if (!(st->affinity =
                      affinity_new(env->settings, env->redis, env->metrics, errstr, errstr_size))) {
                stats_close(st);
                return -1;
        }
        *state = st;
        return 0;
}

/* A new tip may belong to a session that has ended already: its figures are due again. */
static enum apply_result apply_tip(struct stats_state *st, const struct consumer_record *rec,
                                   char *errstr, size_t errstr_size)
{
        struct tip tip;
        bool is_new = false;
        enum apply_result r = tips_apply(st->tips, &rec->ev, &tip, &is_new, errstr, errstr_size);

        if (r == APPLY_DONE && is_new)
                r = sessions_note_tip(st->sessions, tip.room_id, tip.ts_ms, errstr, errstr_size);
        if (r == APPLY_DONE)
                log_debug(rec->trace_id, "tip %s %s topic=%s partition=%d offset=%lld", tip.tip_id,
                          is_new ? "recorded" : "seen before", rec->topic, rec->partition,
                          rec->offset);
        return r;
}

static enum apply_result stats_apply(void *state, struct consumer_record *rec, char *errstr,
                                     size_t errstr_size)
{
        struct stats_state *st = state;
        const char *type = rec->ev.event_type;

        if (strcmp(type, "reward") == 0)
                return apply_tip(st, rec, errstr, errstr_size);
        if (strcmp(type, "viewer.join") == 0 || strcmp(type, "viewer.leave") == 0)
                return sessions_apply_viewer(st->sessions, &rec->ev, errstr, errstr_size);
        if (strcmp(type, "session.end") == 0) {
                log_info(rec->trace_id, "session.end stream=%s topic=%s partition=%d offset=%lld",
                         rec->ev.stream_id ? rec->ev.stream_id : "-", rec->topic, rec->partition,
                         rec->offset);
                return sessions_apply_end(st->sessions, &rec->ev, errstr, errstr_size);
        }
        /* Not an error: the topics carry more kinds of events (app viewer events by the
         * thousand) than this role needs. */
        log_debug(rec->trace_id, "skipped event_type=%s topic=%s partition=%d offset=%lld", type,
                  rec->topic, rec->partition, rec->offset);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ a batch at once */

/* The batch's tips, as tips_apply_many() takes them, and what it says of each. */
struct tip_run {
        struct apply_slot **slots;
        struct tip *tips;
        bool *is_new;
        size_t n;
};

static void log_tips(const struct tip_run *run)
{
        for (size_t i = 0; i < run->n; i++) {
                const struct consumer_record *rec = run->slots[i]->rec;

                if (run->slots[i]->result != APPLY_DONE)
                        continue;
                log_debug(rec->trace_id, "tip %s %s topic=%s partition=%d offset=%lld",
                          run->tips[i].tip_id, run->is_new[i] ? "recorded" : "seen before",
                          rec->topic, rec->partition, rec->offset);
        }
}

/*
 * The batch's other records one at a time, then its tips set-based (tips_apply_many() and
 * sessions_note_tips()). Tips touch no table the other records write, and a session.end marks
 * its session dirty whichever comes first, so the order changes nothing. A record other than a
 * tip that fails is not pinned on itself (it may have written something): the batch goes back
 * to stats_apply() one record at a time.
 */
static enum apply_result apply_run(struct stats_state *st, struct tip_run *run,
                                   struct apply_slot *slots, size_t n, char *errstr,
                                   size_t errstr_size)
{
        enum apply_result r;

        for (size_t i = 0; i < n; i++) {
                if (strcmp(slots[i].rec->ev.event_type, "reward") == 0) {
                        run->slots[run->n++] = &slots[i];
                        continue;
                }
                if ((r = stats_apply(st, slots[i].rec, errstr, errstr_size)) != APPLY_DONE)
                        return r;
        }
        if (!run->n)
                return APPLY_DONE;
        if ((r = tips_apply_many(st->tips, run->slots, run->n, run->tips, run->is_new, errstr,
                                 errstr_size)) != APPLY_DONE ||
            (r = sessions_note_tips(st->sessions, run->tips, run->is_new, run->n, errstr,
                                    errstr_size)) != APPLY_DONE)
                return r;
        log_tips(run);
        return APPLY_DONE;
}

static enum apply_result stats_apply_many(void *state, struct apply_slot *slots, size_t n,
                                          char *errstr, size_t errstr_size)
{
        struct tip_run run = {0};
        enum apply_result r = APPLY_RETRY;

        run.slots = calloc(n ? n : 1, sizeof(*run.slots));
        run.tips = calloc(n ? n : 1, sizeof(*run.tips));
        run.is_new = calloc(n ? n : 1, sizeof(*run.is_new));
        if (run.slots && run.tips && run.is_new)
                r = apply_run(state, &run, slots, n, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        free(run.slots);
        free(run.tips);
        free(run.is_new);
        return r;
}

static void stats_tick(void *state, long long now_ms)
{
        struct stats_state *st = state;
        char errstr[512];

        if (sessions_refresh(st->sessions, REFRESH_MAX, errstr, sizeof(errstr)) == -1)
                log_warn(NULL, "live_statistics: %s (tried again next tick)", errstr);
        profile_tick(st->profile, now_ms);
        affinity_tick(st->affinity, now_ms);
}

const struct consumer_role stats_role = {
        .name = "stats",
        .topics = stats_topics,
        .open = stats_open,
        .apply = stats_apply,
        .publish = NULL,
        .apply_many = stats_apply_many,
        .tick = stats_tick,
        .close = stats_close,
};
