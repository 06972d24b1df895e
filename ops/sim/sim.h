/* sim.h: liveflow-sim's population, plan and expected totals, shared by sim.c and verify.c. */
#ifndef LIVEFLOW_SIM_H
#define LIVEFLOW_SIM_H

#include <stdbool.h>
#include <stddef.h>

#define SIM_ID_MAX 64
#define SIM_TAGS   2

enum sim_vendor { SIM_TENCENT, SIM_SRS, SIM_AGORA, SIM_ALIBABA, SIM_VENDORS };

struct sim_anchor {
        char id[SIM_ID_MAX], room[SIM_ID_MAX], stream[SIM_ID_MAX];
        int gender, age_band, region, tags[SIM_TAGS];
        enum sim_vendor vendor;
        bool forced_close; /* closed by an operator instead of its stream end */
        /* a moderation verdict on its stream: 0 none, 1 Review (a warning), 2 Pass, 3 Block
         * (a suspension that cuts the stream: it is ended by the verdict, not by its own end) */
        int verdict;
        /* expected */
        long long tip_sum, tip_count;
};

struct sim_audience {
        char id[SIM_ID_MAX];
        int gender, age_band, region, tags[SIM_TAGS], spend; /* spend 1 low .. 3 high */
        bool guest;
};

struct sim_config {
        const char *url, *tencent_key, *srs_token, *srs_publish_key, *mysql_url, *redis_url;
        const char *agora_secret, *alibaba_key, *alibaba_domain; /* NULL: that vendor sits out */
        unsigned char hmac_key[128];
        size_t hmac_key_len;
        unsigned long long seed;
        long long duration_s, rate, threads, anchors, audiences, wait_s;
        bool verify, json, is_tty;
        char run[24]; /* the ids' prefix: sim<run>_ */
};

/* plan.c: what the run does, phase by phase; each job one request (twice when dup). */
enum sim_job_kind {
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

struct sim_job {
        enum sim_job_kind kind;
        int anchor, audience, seq;
        long long amount;
        int chats, likes, beats;
        bool dup;        /* sent twice, as a sender's retry */
        char *body;      /* J_PROFILES: prepared */
        long long at_ms; /* when it was first sent: a retry repeats the times in its body */
};

/* The phases, played in this order, each after the one before has been sent. */
enum { SIM_PHASE_PROFILES, SIM_PHASE_BEGIN, SIM_PHASE_EVENING, SIM_PHASE_END, SIM_PHASES };

struct sim_phase {
        const char *name;
        struct sim_job *jobs;
        size_t n, cap;
};

struct sim {
        struct sim_config cfg;
        struct sim_phase phases[SIM_PHASES];
        struct sim_anchor *anchors;
        struct sim_audience *audiences;
        /* expected totals of what the run caused */
        long long tips, tip_amount, chats, likes, visits, withdrawals;
        long long by_gender[3][3]; /* [anchor gender][audience gender] amount */
        long long by_gender_count[3][3];
};

extern const char *const sim_genders[3];

/* requests.c: one keep-alive connection per thread; every request signed as its sender signs
 * it. A 5xx or no answer is tried again (6 times, backing off), as the vendors retry; any other
 * status than 200 counts as a failed request (sim_failed(), the first one in sim_first_error()). */
struct sim_conn {
        void *curl;
        char reply[512];
        size_t reply_len;
        const struct sim_config *cfg;
};

int sim_conn_open(struct sim_conn *c, const struct sim_config *cfg);
void sim_conn_close(struct sim_conn *c);
/* Standard Webhooks (rewards, withdrawals, events, admin): webhook-id is msg_id. */
void sim_post_signed(struct sim_conn *c, const char *path, const char *msg_id, const char *body);
/* Tencent: t ten minutes ahead, sign = md5(key + t); extra is JSON members to add. */
void sim_post_tencent(struct sim_conn *c, const struct sim_anchor *a, int type, const char *seq,
                      const char *extra);
/* SRS: ?token=; on_publish with txSecret = md5(publish key + stream + anchor + txTime). */
void sim_post_srs(struct sim_conn *c, const struct sim_anchor *a, int index, const char *action);
/* Agora Broadcast Streaming: type 1 publish_start, 2 publish_end; Agora-Signature-V2. */
void sim_post_agora(struct sim_conn *c, const struct sim_anchor *a, int type, const char *notice);
/* Alibaba ingest GET (publish, publish_done), ALI-LIVE-SIGNATURE = md5(domain|ts|key). */
void sim_get_alibaba(struct sim_conn *c, const struct sim_anchor *a, const char *action);
/* Alibaba's recording, snapshot and moderation POSTs: signed with the callback URL's host. */
void sim_post_alibaba(struct sim_conn *c, const char *body);
void sim_note_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long long sim_sent(void);
long long sim_failed(void);
const char *sim_first_error(void);

/**
 * @brief Draws the population and the jobs of every phase from cfg.seed, and adds up the
 * totals they will cause. Exits 2 when out of memory. sim_plan_free() frees what it made.
 */
void sim_plan(struct sim *s);
void sim_plan_free(struct sim *s);

/** @brief Sends job j, the index-th of phase, from s's population over c (jobs.c). */
void sim_job_send(struct sim_conn *c, const struct sim *s, const struct sim_job *j, size_t index,
                  int phase);

/**
 * @brief Reads the options (config.c); --help prints the usage and exits 0.
 * @returns 0, or -1 after printing what is wrong (exit 2).
 */
int sim_config_parse(int argc, char **argv, struct sim_config *c);

/**
 * @brief Reads the LIVEFLOW_* variables, from .run/env (or LIVEFLOW_ENV_FILE) for those not set.
 * @returns 0, or -1 after printing what is missing (exit 2).
 */
int sim_config_load(struct sim_config *c);

/** @brief When anchor 0's revenue-share change takes effect (ms), 0 if it was not made. */
long long sim_share_change_ms(void);

/**
 * @brief Checks every total the run caused against MySQL and Redis, retrying for up to
 * cfg.wait_s while the consumers catch up. Prints each difference on stderr.
 * @returns 0 all agree, 1 a difference remains, 2 a store could not be reached.
 */
int sim_verify(const struct sim *s, long long *checks, long long *diffs);

#endif
