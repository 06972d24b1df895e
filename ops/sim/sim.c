/*
 * liveflow-sim: a simulated evening against a running liveflow (see --help). It generates a
 * seeded population, pushes its profiles, then plays the evening in phases — streams begin,
 * the evening itself (visits with heartbeats, chats and likes, tips drawn by shared tags and
 * spending level, screenshots, recordings, moderation verdicts, a revenue-share change made
 * with liveflow-ctl), then the ends, a punishing verdict, an operator's forced close and ban,
 * withdrawals — every request signed as its sender would,
 * from a few threads with keep-alive connections, paced to --rate. With --verify it checks
 * every total it caused against MySQL and Redis (verify.c).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "db.h"
#include "sim.h"

const char *const sim_genders[3] = {"male", "female", "unknown"};
static const char *const age_bands[] = {"18-24", "25-34", "35-44", "45+"};
static const char *const regions[] = {"north", "south", "east", "west", "overseas"};
static const char *const tag_names[] = {"music", "dance",  "games", "chat",  "outdoor",
                                        "food",  "beauty", "sport", "study", "pets"};
#define NTAGS    (sizeof(tag_names) / sizeof(tag_names[0]))
#define NAGES    (sizeof(age_bands) / sizeof(age_bands[0]))
#define NREGIONS (sizeof(regions) / sizeof(regions[0]))

static const char usage[] =
        "usage: liveflow-sim [--seed N] [--duration SECONDS] [--rate REQUESTS_PER_S]\n"
        "                    [--anchors N] [--audiences N] [--threads N] [--verify]\n"
        "                    [--wait SECONDS] [--json]\n"
        "  plays a simulated evening against a running liveflow: a seeded population (anchors and\n"
        "  registered and guest audiences with gender, age band, region, tags, spending level),\n"
        "  their profiles, then streams beginning through Tencent, SRS, Agora and Alibaba, visits with\n"
        "  heartbeats, chats and likes, tips drawn by shared tags and spending level, screenshots,\n"
        "  moderation verdicts (a warning, a pass, a block that suspends and cuts a stream),\n"
        "  recordings, a revenue-share change (through liveflow-ctl share set), duplicates as\n"
        "  the senders retry, the ends, an operator's forced close and ban, withdrawals;\n"
        "  --duration (default 60) seconds of wall time at --rate (default 500) requests a\n"
        "  second from --threads (default 4).\n"
        "  --verify: then checks every total it caused against MySQL and Redis, waiting up to\n"
        "  --wait (default 120) seconds for the consumers to catch up.\n"
        "  Reads LIVEFLOW_RECEIVER_URL, LIVEFLOW_TENCENT_KEY, LIVEFLOW_HMAC_SECRET,\n"
        "  LIVEFLOW_SRS_TOKEN, LIVEFLOW_SRS_PUBLISH_KEY, LIVEFLOW_AGORA_SECRET,\n"
        "  LIVEFLOW_ALIBABA_KEY, LIVEFLOW_ALIBABA_DOMAIN (a vendor without its secret sits out),\n"
        "  LIVEFLOW_MYSQL_URL, LIVEFLOW_REDIS_URL (and for liveflow-ctl LIVEFLOW_KAFKA_BOOTSTRAP)\n"
        "  from the environment, else from .run/env (or LIVEFLOW_ENV_FILE).\n"
        "  exit 0 done (and verified), 1 requests failed or a total differs, 2 usage or connection\n";

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

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ configuration */

/* Adds K=V lines (with or without "export ") of path to the environment, for keys not set. */
static void load_env_file(const char *path)
{
        FILE *f = fopen(path, "r");
        char line[2048];

        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                char *p = line, *eq;

                line[strcspn(line, "\r\n")] = '\0';
                if (strncmp(p, "export ", 7) == 0)
                        p += 7;
                if (strncmp(p, "LIVEFLOW_", 9) != 0 || !(eq = strchr(p, '=')))
                        continue;
                *eq = '\0';
                if (!getenv(p))
                        setenv(p, eq + 1, 0);
        }
        fclose(f);
}

/* The first item of a comma-separated list, in a static copy per slot. */
static const char *first_of(const char *list, char *buf, size_t size)
{
        if (!list)
                return NULL;
        snprintf(buf, size, "%.*s", (int)strcspn(list, ","), list);
        return buf;
}

static int need(const char *name, const char **out)
{
        *out = getenv(name);
        if (!*out || !**out) {
                fprintf(stderr, "liveflow-sim: %s is not set (start the stack: make run)\n", name);
                return -1;
        }
        return 0;
}

static int load_config(struct sim_config *c)
{
        static char tencent[256], publish[256], hmac[512], agora[256], alibaba[256], domain[256];
        const char *env_file = getenv("LIVEFLOW_ENV_FILE"), *secret;

        load_env_file(env_file && *env_file ? env_file : ".run/env");
        if (need("LIVEFLOW_RECEIVER_URL", &c->url) ||
            need("LIVEFLOW_TENCENT_KEY", &c->tencent_key) ||
            need("LIVEFLOW_HMAC_SECRET", &secret) || need("LIVEFLOW_SRS_TOKEN", &c->srs_token) ||
            need("LIVEFLOW_MYSQL_URL", &c->mysql_url) || need("LIVEFLOW_REDIS_URL", &c->redis_url))
                return -1;
        c->tencent_key = first_of(c->tencent_key, tencent, sizeof(tencent));
        c->srs_publish_key = first_of(getenv("LIVEFLOW_SRS_PUBLISH_KEY"), publish, sizeof(publish));
        c->agora_secret = first_of(getenv("LIVEFLOW_AGORA_SECRET"), agora, sizeof(agora));
        c->alibaba_key = first_of(getenv("LIVEFLOW_ALIBABA_KEY"), alibaba, sizeof(alibaba));
        c->alibaba_domain = first_of(getenv("LIVEFLOW_ALIBABA_DOMAIN"), domain, sizeof(domain));
        if (c->agora_secret && !*c->agora_secret)
                c->agora_secret = NULL;
        if (c->alibaba_key && (!*c->alibaba_key || !c->alibaba_domain || !*c->alibaba_domain))
                c->alibaba_key = NULL;
        first_of(secret, hmac, sizeof(hmac));
        if (strncmp(hmac, "whsec_", 6) != 0) {
                fprintf(stderr, "liveflow-sim: LIVEFLOW_HMAC_SECRET is not whsec_ + base64\n");
                return -1;
        }
        {
                int n = crypto_base64_decode(hmac + 6, strlen(hmac + 6), c->hmac_key,
                                             sizeof(c->hmac_key));

                if (n <= 0) {
                        fprintf(stderr, "liveflow-sim: LIVEFLOW_HMAC_SECRET: bad base64\n");
                        return -1;
                }
                c->hmac_key_len = (size_t)n;
        }
        return 0;
}

/* ------------------------------------------------------------------ jobs */

enum job_kind {
        J_PROFILES,
        J_BEGIN,
        J_SHOT,
        J_RECORD,
        J_VISIT,
        J_TIP,
        J_END,
        J_CLOSE,
        J_BAN,
        J_WITHDRAW,
        J_VERDICT,
};

struct job {
        enum job_kind kind;
        int anchor, audience, seq;
        long long amount;
        int chats, likes, beats;
        bool dup;      /* sent twice, as a sender's retry */
        char *body;    /* J_PROFILES: prepared */
        long long at_ms; /* when it was first sent: a retry repeats the times in its body */
};

struct phase {
        const char *name;
        struct job *jobs;
        size_t n, cap;
};

static struct sim S;

static struct {
        struct phase *ph;
        atomic_size_t next;
        atomic_llong dups;
        long long phase_sent0; /* sim_sent() when the phase began */
        long long start_ms, rate;
} run;

static struct job *add(struct phase *p, enum job_kind kind, int anchor)
{
        struct job *j;

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

static void populate(void)
{
        struct sim_config *c = &S.cfg;

        S.anchors = calloc((size_t)c->anchors, sizeof(*S.anchors));
        S.audiences = calloc((size_t)c->audiences, sizeof(*S.audiences));
        if (!S.anchors || !S.audiences)
                exit(2);
        for (int i = 0; i < c->anchors; i++) {
                struct sim_anchor *a = &S.anchors[i];

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
                S.anchors[c->anchors - 1].forced_close = true;
        for (int i = 0; i < c->audiences; i++) {
                struct sim_audience *u = &S.audiences[i];

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
static int pick_anchor(const struct sim_audience *u)
{
        int n = (int)S.cfg.anchors;

        if (rnd(5) < 4)
                for (int tries = 0; tries < 3 * n; tries++) {
                        int i = rnd(n);

                        if (shares_tag(&S.anchors[i], u))
                                return i;
                }
        return rnd(n);
}

static void json_tags(char *out, size_t size, const int tags[SIM_TAGS])
{
        snprintf(out, size, "[\"%s\",\"%s\"]", tag_names[tags[0]], tag_names[tags[1]]);
}

/* ------------------------------------------------------------------ the plan */

static struct phase phases[4] = {
        {.name = "profiles"}, {.name = "begin"}, {.name = "evening"}, {.name = "end"}};

static void plan_profiles(void)
{
        const long long t = now_ms() - 60000;
        char *buf = NULL, tags[64];
        size_t len = 0;
        FILE *f = NULL;
        int in_batch = 0, seq = 0;
        long long total = S.cfg.anchors + S.cfg.audiences;

        for (long long k = 0; k < total; k++) {
                if (!f) {
                        f = open_memstream(&buf, &len);
                        fputs("{\"events\":[", f);
                        in_batch = 0;
                }
                if (in_batch++)
                        fputc(',', f);
                if (k < S.cfg.anchors) {
                        const struct sim_anchor *a = &S.anchors[k];

                        json_tags(tags, sizeof(tags), a->tags);
                        fprintf(f,
                                "{\"event_id\":\"sim%s_p%d\",\"type\":\"profile\",\"ts\":%lld,"
                                "\"subject\":\"anchor\",\"anchor_id\":\"%s\",\"gender\":\"%s\","
                                "\"age_band\":\"%s\",\"region\":\"%s\",\"tags\":%s}",
                                S.cfg.run, seq++, t, a->id, sim_genders[a->gender],
                                age_bands[a->age_band], regions[a->region], tags);
                } else {
                        const struct sim_audience *u = &S.audiences[k - S.cfg.anchors];

                        json_tags(tags, sizeof(tags), u->tags);
                        fprintf(f,
                                "{\"event_id\":\"sim%s_p%d\",\"type\":\"profile\",\"ts\":%lld,"
                                "\"subject\":\"audience\",\"audience_id\":\"%s\",\"gender\":\"%s\","
                                "\"age_band\":\"%s\",\"region\":\"%s\",\"audience_type\":\"%s\","
                                "\"tags\":%s}",
                                S.cfg.run, seq++, t, u->id, sim_genders[u->gender],
                                age_bands[u->age_band], regions[u->region],
                                u->guest ? "guest" : "registered", tags);
                }
                if (in_batch == 50 || k == total - 1) {
                        fputs("]}", f);
                        fclose(f);
                        f = NULL;
                        add(&phases[0], J_PROFILES, -1)->body = buf;
                        buf = NULL;
                }
        }
}

/* The punishing verdict: a Block for the first Alibaba anchor (Tencent when Alibaba sits out)
 * that has no other verdict. It comes at the end, in place of the stream's own end: the
 * suspension cuts the stream, so the stream ends by the verdict alone. */
static void plan_block(void)
{
        for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < S.cfg.anchors; i++) {
                        struct sim_anchor *a = &S.anchors[i];

                        if (a->verdict || a->forced_close ||
                            a->vendor != (pass == 0 ? SIM_ALIBABA : SIM_TENCENT))
                                continue;
                        a->verdict = 3;
                        return;
                }
}

static void plan(void)
{
        const struct sim_config *c = &S.cfg;
        long long evening = c->rate * c->duration_s * 9 / 10;

        plan_profiles();
        for (int i = 0; i < c->anchors; i++) {
                add(&phases[1], J_BEGIN, i);
                if (S.anchors[i].vendor == SIM_TENCENT)
                        add(&phases[1], J_SHOT, i);
        }
        for (long long k = 0; k < evening; k++) {
                int r = rnd(100);

                if (r < 50) {
                        int u = rnd((int)c->audiences);
                        const struct sim_audience *au = &S.audiences[u];
                        struct job *j = add(&phases[2], J_TIP, pick_anchor(au));
                        struct sim_anchor *a = &S.anchors[j->anchor];

                        j->audience = u;
                        j->amount = (1 + rnd(10)) * (au->spend == 3   ? 100
                                                     : au->spend == 2 ? 20
                                                                      : 5);
                        j->dup = rnd(50) == 0;
                        a->tip_sum += j->amount;
                        a->tip_count++;
                        S.tips++;
                        S.tip_amount += j->amount;
                        S.by_gender[a->gender][au->gender] += j->amount;
                        S.by_gender_count[a->gender][au->gender]++;
                } else if (r < 88) {
                        int u = rnd((int)c->audiences);
                        struct job *j = add(&phases[2], J_VISIT, pick_anchor(&S.audiences[u]));

                        j->audience = u;
                        j->beats = rnd(3);
                        j->chats = rnd(4);
                        j->likes = rnd(3) ? 0 : 1 + rnd(20);
                        j->dup = rnd(50) == 0;
                        S.visits++;
                        S.chats += j->chats;
                        S.likes += j->likes;
                } else if (r < 97) {
                        int a = rnd((int)c->anchors);

                        if (S.anchors[a].vendor == SIM_TENCENT)
                                add(&phases[2], J_SHOT, a)->dup = rnd(20) == 0;
                        else
                                k--; /* SRS sends no screenshots: draw again */
                } else {
                        int a = rnd((int)c->anchors);

                        if (S.anchors[a].vendor == SIM_TENCENT)
                                add(&phases[2], J_RECORD, a)->dup = rnd(10) == 0;
                        else
                                k--;
                }
        }
        /* Moderation (Tencent 317): a warning for the first Tencent anchor, a pass for the next;
         * each sent twice, as Tencent retries. */
        for (int i = 0, n = 0; i < c->anchors && n < 2; i++)
                if (S.anchors[i].vendor == SIM_TENCENT && !S.anchors[i].forced_close) {
                        S.anchors[i].verdict = ++n;
                        add(&phases[2], J_VERDICT, i)->dup = true;
                }
        plan_block();
        /* The evening's order is random; the phases keep begin < evening < end. */
        for (size_t i = phases[2].n; i > 1; i--) {
                size_t k = (size_t)rnd((int)i);
                struct job t = phases[2].jobs[i - 1];

                phases[2].jobs[i - 1] = phases[2].jobs[k];
                phases[2].jobs[k] = t;
        }
        for (int i = 0; i < c->anchors; i++) {
                if (S.anchors[i].forced_close) {
                        add(&phases[3], J_CLOSE, i);
                        add(&phases[3], J_BAN, i);
                }
                if (S.anchors[i].verdict == 3)
                        add(&phases[3], J_VERDICT, i)->dup = true;
                else
                        add(&phases[3], J_END, i);
                add(&phases[3], J_WITHDRAW, i)->amount = 1 + rnd(5);
                S.withdrawals++;
        }
}

static void do_visit(struct sim_conn *c, const struct job *j, const char *msg_id)
{
        const struct sim_anchor *a = &S.anchors[j->anchor];
        const struct sim_audience *u = &S.audiences[j->audience];
        long long t = now_ms() - 20000;
        char body[8192];
        int n = 0, e = 0;

#define EV(type, fmt, ...)                                                                         \
        n += snprintf(body + n, sizeof(body) - (size_t)n,                                          \
                      "%s{\"event_id\":\"%s_%d\",\"type\":\"" type "\",\"ts\":%lld,"               \
                      "\"audience_id\":\"%s\",\"room_id\":\"%s\",\"stream_id\":\"%s\"" fmt "}",    \
                      e ? "," : "", msg_id, e, t + e * 1000, u->id, a->room, a->stream,            \
                      __VA_ARGS__),                                                                \
                e++
        n += snprintf(body, sizeof(body), "{\"events\":[");
        EV("enter", ",\"audience_type\":\"%s\"", u->guest ? "guest" : "registered");
        for (int i = 0; i < j->beats; i++)
                EV("heartbeat", "%s", "");
        for (int i = 0; i < j->chats; i++)
                EV("chat", "%s", "");
        if (j->likes)
                EV("like", ",\"count\":%d", j->likes);
        EV("exit", "%s", "");
#undef EV
        snprintf(body + n, sizeof(body) - (size_t)n, "]}");
        sim_post_signed(c, "/v1/events", msg_id, body);
}

/* A moderation verdict as its vendor sends it: Tencent 317 (Review, Pass or Block) or an
 * Alibaba image moderation POST (a Block). */
static void do_verdict(struct sim_conn *c, const struct job *j, const struct sim_anchor *a,
                       const char *id, size_t index)
{
        static const char *const suggestion[] = {"", "Review", "Pass", "Block"};
        static const char *const label[] = {"", "Ad", "Normal", "Porn"};
        static const int score[] = {0, 60, 0, 97};
        long long t = j->at_ms / 1000;
        char body[1024];

        if (a->vendor == SIM_ALIBABA) {
                snprintf(body, sizeof(body),
                         "{\"domain\":\"%s\",\"app\":\"live\",\"stream\":\"%s\","
                         "\"timestamp\":%lld,\"result\":[{\"scene\":\"porn\",\"label\":\"porn\","
                         "\"suggestion\":\"block\",\"rate\":%d.5}]}",
                         S.cfg.alibaba_domain, a->stream, t, score[a->verdict]);
                sim_post_alibaba(c, body);
                return;
        }
        snprintf(body, sizeof(body),
                 ",\"streamId\":\"%s\",\"suggestion\":\"%s\",\"label\":\"%s\","
                 "\"score\":[%d],\"type\":[1],\"img\":\"http://p.example/%s/%zu.jpg\","
                 "\"screenshotTime\":%lld,\"sendTime\":%lld",
                 a->stream, suggestion[a->verdict], label[a->verdict], score[a->verdict],
                 a->stream, index, t, t);
        sim_post_tencent(c, a, 317, id, body);
}

static void do_job(struct sim_conn *c, const struct job *j, size_t index, int phase)
{
        const struct sim_anchor *a = j->anchor >= 0 ? &S.anchors[j->anchor] : NULL;
        char id[96], body[1024], path[256], seq[96];

        snprintf(id, sizeof(id), "sim%s_%d_%zu", S.cfg.run, phase, index);
        switch (j->kind) {
        case J_PROFILES:
                sim_post_signed(c, "/v1/events", id, j->body);
                break;
        case J_BEGIN:
        case J_END:
                snprintf(seq, sizeof(seq), "%s_%d", a->stream, j->kind == J_BEGIN);
                switch (a->vendor) {
                case SIM_TENCENT:
                        sim_post_tencent(c, a, j->kind == J_BEGIN ? 1 : 0, seq, "");
                        break;
                case SIM_SRS:
                        sim_post_srs(c, a, j->anchor,
                                     j->kind == J_BEGIN ? "on_publish" : "on_unpublish");
                        break;
                case SIM_AGORA:
                        sim_post_agora(c, a, j->kind == J_BEGIN ? 1 : 2, seq);
                        break;
                case SIM_ALIBABA:
                case SIM_VENDORS:
                        sim_get_alibaba(c, a, j->kind == J_BEGIN ? "publish" : "publish_done");
                        break;
                }
                break;
        case J_SHOT: {
                long long t = now_ms() / 1000;
                char extra[512];

                snprintf(
                        extra, sizeof(extra),
                        ",\"pic_url\":\"/%s/%zu.jpg\",\"pic_full_url\":\"http://p.example/%s/%zu.jpg\","
                        "\"create_time\":%lld",
                        a->stream, index, a->stream, index, t);
                sim_post_tencent(c, a, 200, id, extra);
                break;
        }
        case J_RECORD: {
                long long t = now_ms() / 1000;
                char extra[512];

                snprintf(
                        extra, sizeof(extra),
                        ",\"file_id\":\"%s\",\"video_url\":\"http://v.example/%s.mp4\","
                        "\"duration\":60,\"file_size\":1048576,\"start_time\":%lld,\"end_time\":%lld",
                        id, id, t - 60, t);
                sim_post_tencent(c, a, 100, id, extra);
                break;
        }
        case J_VISIT:
                do_visit(c, j, id);
                break;
        case J_TIP: {
                const struct sim_audience *u = &S.audiences[j->audience];

                snprintf(body, sizeof(body),
                         "{\"trace_id\":\"%s\",\"audience_id\":\"%s\",\"anchor_id\":\"%s\","
                         "\"room_id\":\"%s\",\"amount\":%lld,\"gift_id\":\"g%d\",\"gift_count\":1,"
                         "\"ts\":%lld,\"audience_type\":\"%s\"}",
                         id, u->id, a->id, a->room, j->amount, u->spend, now_ms(),
                         u->guest ? "guest" : "registered");
                sim_post_signed(c, "/v1/rewards", id, body);
                break;
        }
        case J_CLOSE:
                snprintf(path, sizeof(path), "/v1/admin/streams/%s/close", a->stream);
                snprintf(
                        body, sizeof(body),
                        "{\"action\":\"close\",\"stream_id\":\"%s\",\"reason\":\"simulated operator\"}",
                        a->stream);
                sim_post_signed(c, path, id, body);
                break;
        case J_BAN:
                snprintf(path, sizeof(path), "/v1/admin/anchors/%s/ban", a->id);
                snprintf(
                        body, sizeof(body),
                        "{\"action\":\"ban\",\"anchor_id\":\"%s\",\"reason\":\"simulated operator\"}",
                        a->id);
                sim_post_signed(c, path, id, body);
                break;
        case J_VERDICT:
                do_verdict(c, j, a, id, index);
                break;
        case J_WITHDRAW:
                snprintf(body, sizeof(body),
                         "{\"request_id\":\"%s\",\"anchor_id\":\"%s\",\"amount\":%lld}", id, a->id,
                         j->amount);
                sim_post_signed(c, "/v1/withdrawals", id, body);
                break;
        }
}

/* ------------------------------------------------------------------ the threads */

static int current_phase;

static void *worker(void *arg)
{
        struct sim_conn c;

        (void)arg;
        if (sim_conn_open(&c, &S.cfg) == -1) {
                sim_note_error("no libcurl handle");
                return NULL;
        }
        for (;;) {
                size_t k = atomic_fetch_add(&run.next, 1);
                long long due, wait;

                if (k >= run.ph->n)
                        break;
                /* Paced: job k is due k / rate seconds into the phase. */
                due = run.start_ms + (long long)k * 1000 / run.rate;
                if ((wait = due - mono_ms()) > 0)
                        usleep((useconds_t)wait * 1000);
                run.ph->jobs[k].at_ms = now_ms();
                do_job(&c, &run.ph->jobs[k], k, current_phase);
                if (run.ph->jobs[k].dup) {
                        atomic_fetch_add(&run.dups, 1);
                        do_job(&c, &run.ph->jobs[k], k, current_phase);
                }
        }
        sim_conn_close(&c);
        return NULL;
}

static void progress(const char *phase, size_t total, long long elapsed_ms, long long expect_ms,
                     bool final)
{
        long long sent = sim_sent() - run.phase_sent0, failed = sim_failed();
        double rate = elapsed_ms > 0 ? (double)sent * 1000.0 / (double)elapsed_ms : 0;
        size_t done = atomic_load(&run.next);

        if (done > total)
                done = total;
        if (S.cfg.json)
                return;
        if (S.cfg.is_tty)
                fprintf(stderr,
                        "\r%-8s %7zu/%-7zu jobs  %7.0f req/s  %lld errors  %4lld/%llds   %s", phase,
                        done, total, rate, failed, elapsed_ms / 1000, expect_ms / 1000,
                        final ? "\n" : "");
        else
                fprintf(stderr, "%s %zu/%zu jobs, %.0f req/s, %lld errors, %lld/%lld s\n", phase,
                        done, total, rate, failed, elapsed_ms / 1000, expect_ms / 1000);
}

static long long evening_start_ms;

static void play(int p, long long rate)
{
        pthread_t t[64];
        int n = (int)S.cfg.threads;
        long long begin = mono_ms(), expect = (long long)phases[p].n * 1000 / rate, last = 0;

        current_phase = p;
        run.ph = &phases[p];
        atomic_store(&run.next, 0);
        run.phase_sent0 = sim_sent();
        run.start_ms = begin;
        run.rate = rate;
        for (int i = 0; i < n; i++)
                pthread_create(&t[i], NULL, worker, NULL);
        for (;;) {
                long long el = mono_ms() - begin;

                if (atomic_load(&run.next) >= phases[p].n + (size_t)n)
                        break;
                if (el - last >= (S.cfg.is_tty ? 500 : 5000)) {
                        progress(phases[p].name, phases[p].n, el, expect, false);
                        last = el;
                }
                usleep(100000);
        }
        for (int i = 0; i < n; i++)
                pthread_join(t[i], NULL);
        progress(phases[p].name, phases[p].n, mono_ms() - begin, expect, true);
}

/* ------------------------------------------------------------------ waits between phases */

static void on_i64(const struct db_col *cols, void *arg)
{
        *(long long *)arg = cols[0].is_null ? -1 : cols[0].i;
}

static long long count(struct db *db, const char *sql)
{
        struct db_text t = {0};
        struct db_col col = {.type = DB_PARAM_I64};
        long long v = -1;
        char err[256];

        db_text_add(&t, "%s", sql);
        if (db_text_query(db, &t, &col, 1, on_i64, &v, err, sizeof(err)) != DB_OK)
                v = -1;
        db_text_free(&t);
        return v;
}

/* Waits (bounded) until query gives at least want; @returns whether it did. */
static bool wait_for(struct db *db, const char *what, const char *sql, long long want,
                     int timeout_s)
{
        long long deadline = mono_ms() + timeout_s * 1000LL, got = -1;

        while (mono_ms() < deadline) {
                if ((got = count(db, sql)) >= want)
                        return true;
                usleep(250000);
        }
        fprintf(stderr, "liveflow-sim: %s: %lld of %lld after %d s; playing on\n", what, got, want,
                timeout_s);
        return false;
}

/* The revenue-share change: anchor 0 gets 60 % from the middle of the evening on. */
static long long share_change_ms;

/* liveflow-ctl beside this binary, else the one on PATH. */
static void ctl_path(char *out, size_t size)
{
        char self[4000];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        snprintf(out, size, "liveflow-ctl");
        if (n <= 0)
                return;
        self[n] = '\0';
        if ((slash = strrchr(self, '/'))) {
                *slash = '\0';
                snprintf(out, size, "%s/liveflow-ctl", self);
                if (access(out, X_OK) != 0)
                        snprintf(out, size, "liveflow-ctl");
        }
}

/* Runs liveflow-ctl with argv (its output on stderr, none with --json); @returns its exit
 * status, or -1 when it could not run. */
static int run_ctl(char *const argv[])
{
        pid_t pid;
        int status;

        fflush(stdout);
        fflush(stderr);
        if ((pid = fork()) == -1)
                return -1;
        if (pid == 0) {
                int out = S.cfg.json ? open("/dev/null", O_WRONLY) : STDERR_FILENO;

                if (out == -1 || dup2(out, STDOUT_FILENO) == -1)
                        _exit(127);
                execvp(argv[0], argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) == -1)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The change as an operator makes it: `liveflow-ctl share set`, its dry run, then --execute. */
static int share_change(long long at_ms)
{
        char ctl[4096], from[32];
        char *argv[] = {ctl,  (char *)"share",    (char *)"set", S.anchors[0].id, (char *)"6000",
                        (char *)"--from", from, (char *)"--reason", (char *)"simulated evening",
                        NULL, NULL};
        int rc;

        ctl_path(ctl, sizeof(ctl));
        snprintf(from, sizeof(from), "%lld", at_ms); /* 12 digits or more: milliseconds */
        if ((rc = run_ctl(argv)) == 0) {
                argv[9] = (char *)"--execute";
                rc = run_ctl(argv);
        }
        if (rc != 0) {
                sim_note_error("liveflow-ctl share set %s: exit %d", S.anchors[0].id, rc);
                return -1;
        }
        share_change_ms = at_ms;
        return 0;
}

long long sim_share_change_ms(void);
long long sim_share_change_ms(void)
{
        return share_change_ms;
}

/* ------------------------------------------------------------------ main */

static int parse(int argc, char **argv, struct sim_config *c)
{
        static const struct option opts[] = {
                {"seed", required_argument, NULL, 's'},
                {"duration", required_argument, NULL, 'd'},
                {"rate", required_argument, NULL, 'r'},
                {"threads", required_argument, NULL, 't'},
                {"anchors", required_argument, NULL, 'a'},
                {"audiences", required_argument, NULL, 'u'},
                {"wait", required_argument, NULL, 'w'},
                {"verify", no_argument, NULL, 'v'},
                {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct {
                int opt;
                long long *to, min, max;
        } nums[] = {
                {'d', &c->duration_s, 5, 86400},  {'r', &c->rate, 1, 100000},
                {'t', &c->threads, 1, 64},        {'a', &c->anchors, 2, 10000},
                {'u', &c->audiences, 1, 1000000}, {'w', &c->wait_s, 0, 3600},
        };
        int o;

        c->seed = 1;
        c->duration_s = 60;
        c->rate = 500;
        c->threads = 4;
        c->anchors = 12;
        c->audiences = 200;
        c->wait_s = 120;
        while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                char *end;

                if (o == 'h') {
                        fputs(usage, stdout);
                        exit(0);
                }
                if (o == 'v' || o == 'j') {
                        *(o == 'v' ? &c->verify : &c->json) = true;
                        continue;
                }
                if (o == 's') {
                        errno = 0;
                        c->seed = strtoull(optarg, &end, 10);
                        if (errno || *end || !*optarg)
                                goto bad;
                        continue;
                }
                if (o == '?')
                        goto bad;
                for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
                        if (nums[i].opt != o)
                                continue;
                        errno = 0;
                        *nums[i].to = strtoll(optarg, &end, 10);
                        if (errno || *end || !*optarg || *nums[i].to < nums[i].min ||
                            *nums[i].to > nums[i].max) {
                                fprintf(stderr, "liveflow-sim: %s must be %lld to %lld\n",
                                        argv[optind - 1], nums[i].min, nums[i].max);
                                return -1;
                        }
                }
        }
        if (optind < argc)
                goto bad;
        return 0;
bad:
        fputs(usage, stderr);
        return -1;
}

int main(int argc, char **argv)
{
        struct sim_config *c = &S.cfg;
        struct db *db;
        char err[512], sql[512];
        long long checks = 0, diffs = 0, t0;
        int vrc = 0, rc;

        if (parse(argc, argv, c) == -1)
                return 2;
        if (load_config(c) == -1)
                return 2;
        c->is_tty = isatty(STDERR_FILENO);
        rng_state = c->seed;
        snprintf(c->run, sizeof(c->run), "%llx", (unsigned long long)(now_ms() / 1000) & 0xffffff);
        if (!(db = db_new(c->mysql_url, 10, err, sizeof(err)))) {
                fprintf(stderr, "liveflow-sim: %s\n", err);
                return 2;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        populate();
        plan();
        if (!c->json)
                fprintf(stderr,
                        "liveflow-sim: run sim%s seed %llu: %lld anchors, %lld audiences, %zu "
                        "evening jobs in %lld s at %lld req/s against %s\n",
                        c->run, c->seed, c->anchors, c->audiences, phases[2].n, c->duration_s,
                        c->rate, c->url);
        t0 = mono_ms();
        play(0, c->rate);
        snprintf(sql, sizeof(sql),
                 "SELECT (SELECT COUNT(*) FROM anchors WHERE anchor_id LIKE 'sim%s\\_%%' AND "
                 "profile_ts_ms IS NOT NULL) + (SELECT COUNT(*) FROM audiences WHERE audience_id "
                 "LIKE 'sim%s\\_u%%' AND profile_ts_ms IS NOT NULL)",
                 c->run, c->run);
        wait_for(db, "profiles applied", sql, c->anchors + c->audiences, 60);
        play(1, c->rate);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM live_streams WHERE stream_id LIKE 'sim%s\\_%%' AND "
                 "status = 'live'",
                 c->run);
        wait_for(db, "streams live", sql, c->anchors, 60);
        evening_start_ms = now_ms();
        share_change(evening_start_ms + c->duration_s * 1000 * 9 / 20);
        play(2, c->rate);
        /* Tencent's times are whole seconds: the ends come in a later second than any tip. */
        usleep(1500000);
        play(3, c->rate);
        if (c->verify)
                vrc = sim_verify(&S, &checks, &diffs);
        db_destroy(db);
        rc = sim_failed() ? 1 : 0;
        if (vrc)
                rc = vrc;
        if (c->json) {
                char run_name[32];

                snprintf(run_name, sizeof(run_name), "sim%s", c->run);
                json_t *doc = json_pack(
                        "{s:s,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:s}", "run",
                        run_name, "seed", (json_int_t)c->seed, "requests", (json_int_t)sim_sent(),
                        "errors", (json_int_t)sim_failed(), "retried_copies",
                        (json_int_t)atomic_load(&run.dups), "seconds",
                        (double)(mono_ms() - t0) / 1000.0, "tips", (json_int_t)S.tips, "tip_amount",
                        (json_int_t)S.tip_amount, "visits", (json_int_t)S.visits, "chats",
                        (json_int_t)S.chats, "likes", (json_int_t)S.likes, "verified",
                        c->verify ? json_boolean(vrc == 0) : json_null(), "checks",
                        (json_int_t)checks, "differences", (json_int_t)diffs, "first_error",
                        sim_first_error());

                json_dumpf(doc, stdout, JSON_COMPACT);
                fputc('\n', stdout);
                json_decref(doc);
        } else
                fprintf(stderr,
                        "liveflow-sim: %lld requests (%lld retried copies), %lld errors, %lld tips "
                        "(%lld), %lld visits%s%s\n",
                        (long long)sim_sent(), (long long)atomic_load(&run.dups),
                        (long long)sim_failed(), S.tips, S.tip_amount, S.visits,
                        sim_first_error()[0] ? "; first error: " : "", sim_first_error());
        for (size_t p = 0; p < sizeof(phases) / sizeof(phases[0]); p++) {
                for (size_t k = 0; k < phases[p].n; k++)
                        free(phases[p].jobs[k].body);
                free(phases[p].jobs);
        }
        free(S.anchors);
        free(S.audiences);
        curl_global_cleanup();
        return rc;
}
