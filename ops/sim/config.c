/* config.c: liveflow-sim's options and the LIVEFLOW_* variables it reads (see --help). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "sim.h"

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

int sim_config_load(struct sim_config *c)
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

int sim_config_parse(int argc, char **argv, struct sim_config *c)
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
        int o, idx = 0;

        c->seed = 1;
        c->duration_s = 60;
        c->rate = 500;
        c->threads = 4;
        c->anchors = 12;
        c->audiences = 200;
        c->wait_s = 120;
        while ((o = getopt_long(argc, argv, "", opts, &idx)) != -1) {
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
                                fprintf(stderr,
                                        "liveflow-sim: --%s must be %lld to %lld, not \"%s\"\n",
                                        opts[idx].name, nums[i].min, nums[i].max, optarg);
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
