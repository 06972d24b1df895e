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

struct sim {
        struct sim_config cfg;
        struct sim_anchor *anchors;
        struct sim_audience *audiences;
        /* expected totals of what the run caused */
        long long tips, tip_amount, chats, likes, visits, withdrawals;
        long long by_gender[3][3]; /* [anchor gender][audience gender] amount */
        long long by_gender_count[3][3];
};

extern const char *const sim_genders[3];

/**
 * @brief Checks every total the run caused against MySQL and Redis, retrying for up to
 * cfg.wait_s while the consumers catch up. Prints each difference on stderr.
 * @returns 0 all agree, 1 a difference remains, 2 a store could not be reached.
 */
int sim_verify(const struct sim *s, long long *checks, long long *diffs);

#endif
