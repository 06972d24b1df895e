/*
 * plan.c: liveflow-sim's seeded population (anchors and audiences with gender, age band,
 * region, tags and spending level) and its plan: the jobs of each phase, drawn from the seed,
 * with the totals they will cause.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sim.h"

const char *const sim_genders[3] = {"male", "female", "unknown"};
static const char *const age_bands[] = {"18-24", "25-34", "35-44", "45+"};
static const char *const regions[] = {"north", "south", "east", "west", "overseas"};
static const char *const tag_names[] = {"music", "dance",  "games", "chat",  "outdoor",
                                        "food",  "beauty", "sport", "study", "pets"};
#define NTAGS    (sizeof(tag_names) / sizeof(tag_names[0]))
#define NAGES    (sizeof(age_bands) / sizeof(age_bands[0]))
#define NREGIONS (sizeof(regions) / sizeof(regions[0]))

/* ------------------------------------------------------------------ random, seeded */

static uint64_t rng_state;

static uint64_t rnd64(void)
{
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static int rnd(int n)
{
        return (int)(rnd64() % (uint64_t)n);
}

/* ------------------------------------------------------------------ jobs */

static struct sim_job *add(struct sim_phase *p, enum sim_job_kind kind, int anchor)
{
        struct sim_job *j;

        if (p->n == p->cap) {
                p->cap = p->cap ? p->cap * 2 : 256;
                if (!(p->jobs = realloc(p->jobs, p->cap * sizeof(*p->jobs)))) {
                        fprintf(stderr, "liveflow-sim: out of memory\n");
                        exit(2);
                }
        }
        j = &p->jobs[p->n++];
        memset(j, 0, sizeof(*j));
        j->kind = kind;
        j->anchor = anchor;
        j->seq = (int)p->n;
        return j;
}

/* ------------------------------------------------------------------ population */

static void pick_tags(int tags[SIM_TAGS])
{
        tags[0] = rnd(NTAGS);
        do
                tags[1] = rnd(NTAGS);
        while (tags[1] == tags[0]);
}

static void populate(struct sim *s)
{
        struct sim_config *c = &s->cfg;

        s->anchors = calloc((size_t)c->anchors, sizeof(*s->anchors));
        s->audiences = calloc((size_t)c->audiences, sizeof(*s->audiences));
        if (!s->anchors || !s->audiences)
                exit(2);
        for (int i = 0; i < c->anchors; i++) {
                struct sim_anchor *a = &s->anchors[i];

                a->vendor = (enum sim_vendor)(i % SIM_VENDORS);
                if ((a->vendor == SIM_AGORA && !c->agora_secret) ||
                    (a->vendor == SIM_ALIBABA && !c->alibaba_key))
                        a->vendor = SIM_TENCENT; /* that vendor is not configured */
                snprintf(a->id, sizeof(a->id), "sim%s_a%d", c->run, i);
                snprintf(a->room, sizeof(a->room), "sim%s_r%d", c->run, i);
                snprintf(a->stream, sizeof(a->stream), "sim%s_s%d", c->run, i);
                if (a->vendor == SIM_AGORA) {
                        /* A Broadcast Streaming notice names the stream only: it is the anchor
                         * and the room too. */
                        snprintf(a->id, sizeof(a->id), "sim%s_g%d", c->run, i);
                        snprintf(a->room, sizeof(a->room), "%s", a->id);
                        snprintf(a->stream, sizeof(a->stream), "%s", a->id);
                }
                a->gender = rnd(10) < 6 ? 1 : rnd(10) < 9 ? 0 : 2;
                a->age_band = rnd(NAGES);
                a->region = rnd(NREGIONS);
                pick_tags(a->tags);
        }
        if (c->anchors > 1)
                s->anchors[c->anchors - 1].forced_close = true;
        for (int i = 0; i < c->audiences; i++) {
                struct sim_audience *u = &s->audiences[i];

                snprintf(u->id, sizeof(u->id), "sim%s_u%d", c->run, i);
                u->gender = rnd(10) < 6 ? 0 : rnd(10) < 9 ? 1 : 2;
                u->age_band = rnd(NAGES);
                u->region = rnd(NREGIONS);
                pick_tags(u->tags);
                u->guest = rnd(4) == 0;
                u->spend = u->guest ? 1 : 1 + rnd(3);
        }
}

static bool shares_tag(const struct sim_anchor *a, const struct sim_audience *u)
{
        for (int i = 0; i < SIM_TAGS; i++)
                for (int k = 0; k < SIM_TAGS; k++)
                        if (a->tags[i] == u->tags[k])
                                return true;
        return false;
}

/* An anchor for u: one sharing a tag four times in five, else any. */
static int pick_anchor(const struct sim *s, const struct sim_audience *u)
{
        int n = (int)s->cfg.anchors;

        if (rnd(5) < 4)
                for (int tries = 0; tries < 3 * n; tries++) {
                        int i = rnd(n);

                        if (shares_tag(&s->anchors[i], u))
                                return i;
                }
        return rnd(n);
}

static void json_tags(char *out, size_t size, const int tags[SIM_TAGS])
{
        snprintf(out, size, "[\"%s\",\"%s\"]", tag_names[tags[0]], tag_names[tags[1]]);
}

/* ------------------------------------------------------------------ the plan */

static void plan_profiles(struct sim *s)
{
        const long long t = clock_wall_ms() - 60000;
        char *buf = NULL, tags[64];
        size_t len = 0;
        FILE *f = NULL;
        int in_batch = 0, seq = 0;
        long long total = s->cfg.anchors + s->cfg.audiences;

        for (long long k = 0; k < total; k++) {
                if (!f) {
                        f = open_memstream(&buf, &len);
                        fputs("{\"events\":[", f);
                        in_batch = 0;
                }
                if (in_batch++)
                        fputc(',', f);
                if (k < s->cfg.anchors) {
                        const struct sim_anchor *a = &s->anchors[k];

                        json_tags(tags, sizeof(tags), a->tags);
                        fprintf(f,
                                "{\"event_id\":\"sim%s_p%d\",\"type\":\"profile\",\"ts\":%lld,"
                                "\"subject\":\"anchor\",\"anchor_id\":\"%s\",\"gender\":\"%s\","
                                "\"age_band\":\"%s\",\"region\":\"%s\",\"tags\":%s}",
                                s->cfg.run, seq++, t, a->id, sim_genders[a->gender],
                                age_bands[a->age_band], regions[a->region], tags);
                } else {
                        const struct sim_audience *u = &s->audiences[k - s->cfg.anchors];

                        json_tags(tags, sizeof(tags), u->tags);
                        fprintf(f,
                                "{\"event_id\":\"sim%s_p%d\",\"type\":\"profile\",\"ts\":%lld,"
                                "\"subject\":\"audience\",\"audience_id\":\"%s\",\"gender\":\"%s\","
                                "\"age_band\":\"%s\",\"region\":\"%s\",\"audience_type\":\"%s\","
                                "\"tags\":%s}",
                                s->cfg.run, seq++, t, u->id, sim_genders[u->gender],
                                age_bands[u->age_band], regions[u->region],
                                u->guest ? "guest" : "registered", tags);
                }
                if (in_batch == 50 || k == total - 1) {
                        fputs("]}", f);
                        fclose(f);
                        f = NULL;
                        add(&s->phases[SIM_PHASE_PROFILES], J_PROFILES, -1)->body = buf;
                        buf = NULL;
                }
        }
}

/* The punishing verdict: a Block for the first Alibaba anchor (Tencent when Alibaba sits out)
 * that has no other verdict. It comes at the end, in place of the stream's own end: the
 * suspension cuts the stream, so the stream ends by the verdict alone. */
static void plan_block(struct sim *s)
{
        for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < s->cfg.anchors; i++) {
                        struct sim_anchor *a = &s->anchors[i];

                        if (a->verdict || a->forced_close ||
                            a->vendor != (pass == 0 ? SIM_ALIBABA : SIM_TENCENT))
                                continue;
                        a->verdict = 3;
                        return;
                }
}

void sim_plan(struct sim *s)
{
        static const char *const names[SIM_PHASES] = {"profiles", "begin", "evening", "end"};
        const struct sim_config *c = &s->cfg;
        long long evening = c->rate * c->duration_s * 9 / 10;

        for (int p = 0; p < SIM_PHASES; p++)
                s->phases[p].name = names[p];
        rng_state = s->cfg.seed;
        populate(s);
        plan_profiles(s);
        for (int i = 0; i < c->anchors; i++) {
                add(&s->phases[SIM_PHASE_BEGIN], J_BEGIN, i);
                if (s->anchors[i].vendor == SIM_TENCENT)
                        add(&s->phases[SIM_PHASE_BEGIN], J_SHOT, i);
        }
        for (long long k = 0; k < evening; k++) {
                int r = rnd(100);

                if (r < 50) {
                        int u = rnd((int)c->audiences);
                        const struct sim_audience *au = &s->audiences[u];
                        struct sim_job *j =
                                add(&s->phases[SIM_PHASE_EVENING], J_TIP, pick_anchor(s, au));
                        struct sim_anchor *a = &s->anchors[j->anchor];

                        j->audience = u;
                        j->amount = (1 + rnd(10)) * (au->spend == 3   ? 100
                                                     : au->spend == 2 ? 20
                                                                      : 5);
                        j->dup = rnd(50) == 0;
                        a->tip_sum += j->amount;
                        a->tip_count++;
                        s->tips++;
                        s->tip_amount += j->amount;
                        s->by_gender[a->gender][au->gender] += j->amount;
                        s->by_gender_count[a->gender][au->gender]++;
                } else if (r < 88) {
                        int u = rnd((int)c->audiences);
                        struct sim_job *j = add(&s->phases[SIM_PHASE_EVENING], J_VISIT,
                                                pick_anchor(s, &s->audiences[u]));

                        j->audience = u;
                        j->beats = rnd(3);
                        j->chats = rnd(4);
                        j->likes = rnd(3) ? 0 : 1 + rnd(20);
                        j->dup = rnd(50) == 0;
                        s->visits++;
                        s->chats += j->chats;
                        s->likes += j->likes;
                } else if (r < 97) {
                        int a = rnd((int)c->anchors);

                        if (s->anchors[a].vendor == SIM_TENCENT)
                                add(&s->phases[SIM_PHASE_EVENING], J_SHOT, a)->dup = rnd(20) == 0;
                        else
                                k--; /* SRS sends no screenshots: draw again */
                } else {
                        int a = rnd((int)c->anchors);

                        if (s->anchors[a].vendor == SIM_TENCENT)
                                add(&s->phases[SIM_PHASE_EVENING], J_RECORD, a)->dup = rnd(10) == 0;
                        else
                                k--;
                }
        }
        /* Moderation (Tencent 317): a warning for the first Tencent anchor, a pass for the next;
         * each sent twice, as Tencent retries. */
        for (int i = 0, n = 0; i < c->anchors && n < 2; i++)
                if (s->anchors[i].vendor == SIM_TENCENT && !s->anchors[i].forced_close) {
                        s->anchors[i].verdict = ++n;
                        add(&s->phases[SIM_PHASE_EVENING], J_VERDICT, i)->dup = true;
                }
        plan_block(s);
        /* The evening's order is random; the phases keep begin < evening < end. */
        for (size_t i = s->phases[SIM_PHASE_EVENING].n; i > 1; i--) {
                size_t k = (size_t)rnd((int)i);
                struct sim_job t = s->phases[SIM_PHASE_EVENING].jobs[i - 1];

                s->phases[SIM_PHASE_EVENING].jobs[i - 1] = s->phases[SIM_PHASE_EVENING].jobs[k];
                s->phases[SIM_PHASE_EVENING].jobs[k] = t;
        }
        for (int i = 0; i < c->anchors; i++) {
                if (s->anchors[i].forced_close) {
                        add(&s->phases[SIM_PHASE_END], J_CLOSE, i);
                        add(&s->phases[SIM_PHASE_END], J_BAN, i);
                }
                if (s->anchors[i].verdict == 3)
                        add(&s->phases[SIM_PHASE_END], J_VERDICT, i)->dup = true;
                else
                        add(&s->phases[SIM_PHASE_END], J_END, i);
                add(&s->phases[SIM_PHASE_END], J_WITHDRAW, i)->amount = 1 + rnd(5);
                s->withdrawals++;
        }
}

void sim_plan_free(struct sim *s)
{
        for (size_t p = 0; p < SIM_PHASES; p++) {
                for (size_t k = 0; k < s->phases[p].n; k++)
                        free(s->phases[p].jobs[k].body);
                free(s->phases[p].jobs);
        }
        free(s->anchors);
        free(s->audiences);
}
