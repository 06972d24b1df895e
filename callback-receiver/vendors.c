/*
 * vendors.c: the table of the receiver's callers (vendor.h): one row per endpoint, one
 * module per vendor, and the thin adapters that give each module the table's signatures.
 */
#include "vendor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agora.h"
#include "alibaba.h"
#include "allowlist.h"
#include "contract.h"
#include "crypto.h"
#include "events.h"
#include "internal.h"
#include "log.h"
#include "settings.h"
#include "srs.h"
#include "tencent.h"

/* ------------------------------------------------------------ Tencent CSS */

/* The verifier and the optional source allowlist. */
struct tencent_endpoint {
        struct tencent *tc;
        struct allowlist *allow;
        bool is_vouched; /* a path token or an allowlist guards the route */
        bool is_exposed; /* listening beyond loopback with neither guard: verdicts are held */
};

static int tencent_check(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct tencent *tc = tencent_new(s->tencent_keys, s->tencent_grace_s, errstr, errstr_size);
        struct allowlist *al;

        if (!tc)
                return -1;
        tencent_destroy(tc);
        if (!(al = allowlist_new("LIVEFLOW_TENCENT_ALLOW_IPS", s->tencent_allow_ips, errstr,
                                 errstr_size)))
                return -1;
        allowlist_destroy(al);
        return 0;
}

static void tencent_close(void *state)
{
        struct tencent_endpoint *te = state;

        if (!te)
                return;
        tencent_destroy(te->tc);
        allowlist_destroy(te->allow);
        free(te);
}

/* True for an IPv4 address in 127.0.0.0/8 or ::1. */
static bool is_loopback_text(const char *addr)
{
        struct in_addr a4;
        struct in6_addr a6;

        if (addr && inet_pton(AF_INET, addr, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        return addr && inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static void *tencent_open(const struct settings *s, struct metrics *metrics, char *errstr,
                          size_t errstr_size)
{
        struct tencent_endpoint *te = calloc(1, sizeof(*te));

        (void)metrics;
        if (!te) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (!(te->tc = tencent_new(s->tencent_keys, s->tencent_grace_s, errstr, errstr_size)) ||
            !(te->allow = allowlist_new("LIVEFLOW_TENCENT_ALLOW_IPS", s->tencent_allow_ips, errstr,
                                        errstr_size))) {
                tencent_close(te);
                return NULL;
        }
        if (!tencent_key_count(te->tc))
                log_warn(NULL, "LIVEFLOW_TENCENT_KEY is not set: /callbacks/tencent answers 503");
        te->is_vouched = (s->tencent_path_token && *s->tencent_path_token) ||
                         (s->tencent_allow_ips && *s->tencent_allow_ips);
        te->is_exposed = !te->is_vouched && !is_loopback_text(s->http_addr);
        if (te->is_exposed)
                log_warn(NULL, "tencent: reachable beyond loopback with neither "
                               "LIVEFLOW_TENCENT_PATH_TOKEN nor LIVEFLOW_TENCENT_ALLOW_IPS: "
                               "moderation verdicts are kept on live.other as other.unverified, "
                               "not acted on");
        return te;
}

static void tencent_describe(const void *state, char *out, size_t out_size)
{
        const struct tencent_endpoint *te = state;

        snprintf(out, out_size, " tencent_keys=%zu", tencent_key_count(te->tc));
}

static const char *tencent_path_token(const struct settings *s)
{
        return s->tencent_path_token;
}

static int tencent_admit(void *state, const struct webhook_request *req, struct webhook_verdict *v)
{
        const struct tencent_endpoint *te = state;

        if (!allowlist_allows(te->allow, req->client_addr))
                return webhook_refuse(v, 403, NULL, "source address not allowed");
        return 0;
}

static int tencent_map_any(void *state, const struct webhook_request *req, struct webhook_event *ev,
                           struct webhook_verdict *v)
{
        const struct tencent_endpoint *te = state;

        int rc = te->is_vouched ? tencent_map_vouched(te->tc, req, ev, v)
                                : tencent_map(te->tc, req, ev, v);

        /*
         * Tencent's signature covers only t: a captured (t, sign) verifies with any body for the
         * whole grace. A punishing verdict (a ban, a forced close) therefore needs a second
         * signal, the path token or the source allowlist; without either on a reachable
         * address it is kept, marked, and not acted on.
         */
        if (rc == 0 && te->is_exposed && ev->topic && strcmp(ev->topic, LF_TOPIC_AUDIT) == 0) {
                ev->topic = LF_TOPIC_OTHER;
                ev->event_type = "other.unverified";
        }
        return rc;
}

static const struct vendor_module tencent_module = {
        .name = "tencent",
        .check_config = tencent_check,
        .open = tencent_open,
        .close = tencent_close,
        .describe = tencent_describe,
};

/* ------------------------------------------------------------ SRS */

/* SRS cannot sign: its http_hooks URL carries ?token=, compared in constant time. */
struct srs_endpoint {
        struct srs *srs;
        const char *token; /* borrowed from the settings; NULL or "": the endpoint answers 503 */
};

static void srs_close(void *state)
{
        struct srs_endpoint *se = state;

        if (!se)
                return;
        srs_destroy(se->srs);
        free(se);
}

static void *srs_open(const struct settings *s, struct metrics *metrics, char *errstr,
                      size_t errstr_size)
{
        struct srs_endpoint *se = calloc(1, sizeof(*se));

        if (!se) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        se->token = s->srs_token;
        if (!(se->srs = srs_new(s, metrics, errstr, errstr_size))) {
                srs_close(se);
                return NULL;
        }
        return se;
}

static int srs_admit(void *state, const struct webhook_request *req, struct webhook_verdict *v)
{
        const struct srs_endpoint *se = state;
        const char *got = webhook_query(req, "token");
        size_t len = got ? strlen(got) : 0;

        if (!se->token || !*se->token)
                return webhook_refuse(v, 503, NULL, "LIVEFLOW_SRS_TOKEN is not configured");
        if (!got)
                return webhook_refuse(v, 401, "missing", "token: missing");
        if (len != strlen(se->token) || !crypto_equal(got, se->token, len))
                return webhook_refuse(v, 401, "mismatch", "token: mismatch");
        return 0;
}

static int srs_map_any(void *state, const struct webhook_request *req, struct webhook_event *ev,
                       struct webhook_verdict *v)
{
        struct srs_endpoint *se = state;

        return srs_map(se->srs, req, ev, v);
}

static int srs_lookup_wanted_any(void *state, const struct webhook_request *req, char *anchor_id,
                                 size_t size)
{
        struct srs_endpoint *se = state;

        return srs_lookup_wanted(se->srs, req, anchor_id, size);
}

static void srs_lookup_start_any(void *state, const char *anchor_id, const char *trace_id,
                                 struct anchor_answer *ans, void (*done)(void *arg), void *arg)
{
        struct srs_endpoint *se = state;

        srs_lookup_start(se->srs, anchor_id, trace_id, ans, done, arg);
}

static const struct vendor_module srs_module = {
        .name = "srs",
        .check_config = srs_check_config,
        .open = srs_open,
        .close = srs_close,
};

/* ------------------------------------------------------------ the platform's own endpoints */

static void *internal_open(const struct settings *s, struct metrics *metrics, char *errstr,
                           size_t errstr_size)
{
        return internal_new(s, metrics, errstr, errstr_size);
}

static void internal_close(void *state)
{
        internal_destroy(state);
}

static int rewards_map(void *state, const struct webhook_request *req, struct webhook_event *ev,
                       struct webhook_verdict *v)
{
        return internal_map_rewards(state, req, ev, v);
}

static int withdrawals_map(void *state, const struct webhook_request *req, struct webhook_event *ev,
                           struct webhook_verdict *v)
{
        return internal_map_withdrawals(state, req, ev, v);
}

static int admin_map(void *state, const struct webhook_request *req, struct webhook_event *ev,
                     struct webhook_verdict *v)
{
        return internal_map_admin(state, req, ev, v);
}

static void internal_acked_any(void *state, const struct webhook_request *req,
                               const struct webhook_event *ev)
{
        internal_acked(state, req, ev);
}

static const struct vendor_module internal_module = {
        .name = "internal",
        .check_config = internal_check_config,
        .open = internal_open,
        .close = internal_close,
};

/* ------------------------------------------------------------ the app gateway's events */

/*
 * POST /v1/events: verified as the internal endpoints (its own replay memory of webhook-ids,
 * the same secrets), with the batch limits of its own.
 */
struct events_endpoint {
        struct internal *in;
        struct metrics *metrics;
        long long max_batch;
};

static void events_close(void *state)
{
        struct events_endpoint *ee = state;

        if (!ee)
                return;
        internal_destroy(ee->in);
        free(ee);
}

static void *events_open(const struct settings *s, struct metrics *metrics, char *errstr,
                         size_t errstr_size)
{
        struct events_endpoint *ee = calloc(1, sizeof(*ee));

        if (!ee) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        ee->metrics = metrics;
        ee->max_batch = s->events_max_batch;
        if (!(ee->in = internal_new(s, metrics, errstr, errstr_size))) {
                events_close(ee);
                return NULL;
        }
        return ee;
}

static int events_map_any(void *state, const struct webhook_request *req,
                          struct webhook_batch *batch, struct webhook_verdict *v)
{
        struct events_endpoint *ee = state;

        return events_map(ee->in, ee->metrics, ee->max_batch, req, batch, v);
}

static void events_acked(void *state, const struct webhook_request *req,
                         const struct webhook_event *ev)
{
        struct events_endpoint *ee = state;

        internal_acked(ee->in, req, ev);
}

static long long events_body_limit(const struct settings *s)
{
        return s->events_max_body_bytes;
}

static const struct vendor_module events_module = {
        .name = "events",
        .check_config = internal_check_config,
        .open = events_open,
        .close = events_close,
};

/* ------------------------------------------------------------ Agora NCS */

static void *agora_open(const struct settings *s, struct metrics *metrics, char *errstr,
                        size_t errstr_size)
{
        struct agora *ag = agora_new(s, errstr, errstr_size);

        (void)metrics;
        if (ag && !agora_secret_count(ag))
                log_info(NULL, "LIVEFLOW_AGORA_SECRET is not set: /callbacks/agora answers 503");
        return ag;
}

static void agora_close(void *state)
{
        agora_destroy(state);
}

static void agora_describe(const void *state, char *out, size_t out_size)
{
        snprintf(out, out_size, " agora_secrets=%zu", agora_secret_count(state));
}

static int agora_map_any(void *state, const struct webhook_request *req, struct webhook_event *ev,
                         struct webhook_verdict *v)
{
        return agora_map(state, req, ev, v);
}

static const struct vendor_module agora_module = {
        .name = "agora",
        .check_config = agora_check_config,
        .open = agora_open,
        .close = agora_close,
        .describe = agora_describe,
};

/* ------------------------------------------------------------ Alibaba ApsaraVideo Live */

static void *alibaba_open(const struct settings *s, struct metrics *metrics, char *errstr,
                          size_t errstr_size)
{
        struct alibaba *al = alibaba_new(s, errstr, errstr_size);

        (void)metrics;
        if (al && !alibaba_key_count(al))
                log_info(NULL, "LIVEFLOW_ALIBABA_KEY is not set: /callbacks/alibaba answers 503");
        return al;
}

static void alibaba_close(void *state)
{
        alibaba_destroy(state);
}

static void alibaba_describe(const void *state, char *out, size_t out_size)
{
        snprintf(out, out_size, " alibaba_keys=%zu", alibaba_key_count(state));
}

static int alibaba_map_any(void *state, const struct webhook_request *req, struct webhook_event *ev,
                           struct webhook_verdict *v)
{
        return alibaba_map(state, req, ev, v);
}

static const struct vendor_module alibaba_module = {
        .name = "alibaba",
        .check_config = alibaba_check_config,
        .open = alibaba_open,
        .close = alibaba_close,
        .describe = alibaba_describe,
};

/* ------------------------------------------------------------ the tables */

const struct vendor_module *const vendor_modules[] = {
        &tencent_module, &srs_module, &internal_module, &events_module, &agora_module,
        &alibaba_module, NULL,
};

#define ROUTE(path, suffix, allow, endpoint, vendor)                                               \
        {                                                                                          \
                path, suffix, allow, endpoint, vendor, ROUTE_VENDOR                                \
        }

const struct vendor vendor_table[] = {
        {
                .route = ROUTE("/callbacks/tencent", ROUTE_TOKEN, "POST", "tencent", "tencent"),
                .module = &tencent_module,
                .path_token = tencent_path_token,
                .admit = tencent_admit,
                .map = tencent_map_any,
                .when_kafka_down = VENDOR_ANSWER_503,
        },
        {
                /* GET: on_hls_notify, whose URL template SRS fetches (srs.c) */
                .route = ROUTE("/callbacks/srs", ROUTE_EXACT, "GET, POST", "srs", "srs"),
                .module = &srs_module,
                .admit = srs_admit,
                .map = srs_map_any,
                .lookup_wanted = srs_lookup_wanted_any,
                .lookup_start = srs_lookup_start_any,
                .when_kafka_down = VENDOR_SPOOL,
        },
        {
                .route = ROUTE("/callbacks/agora", ROUTE_EXACT, "POST", "agora", "agora"),
                .module = &agora_module,
                .map = agora_map_any,
                .when_kafka_down = VENDOR_ANSWER_503,
        },
        {
                /* Ingest callbacks are GET with the event in the query; the rest POST JSON. */
                .route =
                        ROUTE("/callbacks/alibaba", ROUTE_EXACT, "GET, POST", "alibaba", "alibaba"),
                .module = &alibaba_module,
                .map = alibaba_map_any,
                .when_kafka_down = VENDOR_ANSWER_503,
                .is_any_content_type = true,
        },
        {
                .route = ROUTE("/v1/rewards", ROUTE_EXACT, "POST", "rewards", "internal"),
                .module = &internal_module,
                .map = rewards_map,
                .acked = internal_acked_any,
                .when_kafka_down = VENDOR_ANSWER_503,
        },
        {
                .route = ROUTE("/v1/withdrawals", ROUTE_EXACT, "POST", "withdrawals", "internal"),
                .module = &internal_module,
                .map = withdrawals_map,
                .acked = internal_acked_any,
                .when_kafka_down = VENDOR_ANSWER_503,
        },
        {
                .route = ROUTE("/v1/events", ROUTE_EXACT, "POST", "events", "internal"),
                .module = &events_module,
                .map_batch = events_map_any,
                .body_limit = events_body_limit,
                .acked = events_acked,
                .when_kafka_down = VENDOR_ANSWER_503,
        },
        {
                .route = ROUTE("/v1/admin", ROUTE_SUBPATH, "POST", "admin", "admin"),
                .module = &internal_module,
                .map = admin_map,
                .acked = internal_acked_any,
                .when_kafka_down = VENDOR_ANSWER_503,
        },
};

const size_t vendor_count = sizeof(vendor_table) / sizeof(vendor_table[0]);

const struct vendor *vendor_of(const struct route *r)
{
        if (!r || r->id != ROUTE_VENDOR)
                return NULL;
        return (const struct vendor *)(const void *)((const char *)r -
                                                     offsetof(struct vendor, route));
}

size_t vendor_module_index(const struct vendor_module *m)
{
        size_t i = 0;

        while (vendor_modules[i] && vendor_modules[i] != m)
                i++;
        return i;
}
