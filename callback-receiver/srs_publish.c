/*
 * srs_publish.c: the on_publish decision. The anti-leech signature is checked first (it
 * needs no store), then the anchor's status, from the answer of a lookup made off the loop
 * (srs_lookup_wanted(), srs_lookup_start()) or, without one, asked at once. Each decision is
 * counted by reason; a refusal is logged.
 */
#include "srs.h"
#include "srs_int.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anchor_store.h"
#include "crypto.h"
#include "log.h"
#include "lookup_deadline.h"
#include "metrics.h"

static bool is_refusal(enum decision d)
{
        return d >= DENY_BANNED;
}

/* ------------------------------------------------------------ anti-leech signature */

/* txTime: 1 to 16 hex digits, the Unix time the push URL expires. */
static int parse_tx_time(const char *s, size_t len, uint64_t *out)
{
        uint64_t t = 0;

        if (len == 0 || len > TX_TIME_MAX)
                return -1;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                int digit = c >= '0' && c <= '9'   ? c - '0'
                            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                   : -1;

                if (digit < 0)
                        return -1;
                t = t << 4 | (uint64_t)digit;
        }
        *out = t;
        return 0;
}

/* Checks every key without stopping at a match, so timing says nothing about which matched. */
static bool secret_matches(const struct srs *srs, const char *stream, const char *anchor_id,
                           const char *tx_time, size_t tx_time_len, const char *secret)
{
        char msg[SRS_KEY_MAX + (STREAM_MAX_CHARS + ANCHOR_MAX_CHARS) * UTF8_MAX + TX_TIME_MAX];
        char md5[SECRET_LEN + 1];
        size_t stream_len = strlen(stream);                    /* bounded by srs_read_hook() */
        size_t anchor_len = anchor_id ? strlen(anchor_id) : 0; /* by srs_read_anchor_room() */
        bool is_match = false;

        for (size_t i = 0; i < srs->key_cnt; i++) {
                size_t key_len = strlen(srs->keys[i]), n = 0;

                memcpy(msg + n, srs->keys[i], key_len);
                n += key_len;
                memcpy(msg + n, stream, stream_len);
                n += stream_len;
                if (anchor_len)
                        memcpy(msg + n, anchor_id, anchor_len);
                n += anchor_len;
                memcpy(msg + n, tx_time, tx_time_len);
                n += tx_time_len;
                crypto_md5_hex(msg, n, md5);
                is_match |= crypto_hex_equal_nocase(md5, secret, SECRET_LEN);
        }
        explicit_bzero(msg, sizeof(msg));
        return is_match;
}

/*
 * txSecret = MD5(key + stream + anchor_id + txTime), anchor_id decoded ("" when the URL names
 * none) and txTime exactly as sent, and txTime not past. The anchor id is signed so that a
 * publisher cannot choose whose stream it is: without it a banned anchor could name another.
 */
static int check_signature(const struct srs *srs, const struct hook *h, const char *anchor_id,
                           int64_t now_ms, enum decision *d, struct webhook_verdict *v)
{
        size_t secret_len = 0, time_len = 0;
        const char *secret = srs_query_find(h->param, "txSecret", &secret_len);
        const char *tx_time = srs_query_find(h->param, "txTime", &time_len);
        int64_t now_s = now_ms / 1000;
        uint64_t expiry;

        if (!secret || !tx_time) {
                *d = DENY_SIGNATURE_MISSING;
                return webhook_refuse(v, 403, "missing", "param: %s is missing",
                                      secret ? "txTime" : "txSecret");
        }
        if (parse_tx_time(tx_time, time_len, &expiry) == -1) {
                *d = DENY_SIGNATURE_MISSING;
                return webhook_refuse(v, 403, "missing", "param: txTime: expected a hex Unix time");
        }
        if (secret_len != SECRET_LEN ||
            !secret_matches(srs, h->stream, anchor_id, tx_time, time_len, secret)) {
                *d = DENY_SIGNATURE_MISMATCH;
                return webhook_refuse(v, 403, "mismatch", "param: txSecret does not match");
        }
        if (now_s > 0 && expiry < (uint64_t)now_s) {
                *d = DENY_SIGNATURE_EXPIRED;
                return webhook_refuse(v, 403, "expired", "param: txTime expired %" PRIu64 " s ago",
                                      (uint64_t)now_s - expiry);
        }
        return 0;
}

/* ------------------------------------------------------------ the on_publish decision */

static enum decision judge(const struct anchor_record *a, int64_t now_ms)
{
        switch (a->status) {
        case ANCHOR_BANNED:
                return DENY_BANNED;
        case ANCHOR_SUSPENDED:
                /* A suspension with no recorded end lasts until it is lifted. */
                return a->suspended_until_ms == 0 || a->suspended_until_ms > now_ms
                               ? DENY_SUSPENDED
                               : ALLOW_SUSPENSION_OVER;
        case ANCHOR_ACTIVE:
                break;
        }
        return ALLOW_ACTIVE;
}

static enum decision decide_anchor(const struct srs *srs, const struct webhook_request *req,
                                   const char *anchor_id, struct anchor_record *a)
{
        if (!anchor_id)
                return srs->is_anchor_required ? DENY_NO_ANCHOR : ALLOW_NO_ANCHOR;
        if (!srs->lookup.fn)
                return ALLOW_CHECKS_OFF;
        if (req->anchor_answer && strcmp(req->anchor_answer->anchor_id, anchor_id) == 0) {
                if (req->anchor_answer->result != ANCHOR_LOOKUP_FOUND)
                        return srs->is_fail_open ? ALLOW_STORES_DOWN : DENY_STORES_DOWN;
                *a = req->anchor_answer->record;
                return judge(a, req->now_ms);
        }
        if (srs->lookup.fn(srs->lookup.ctx, anchor_id, req->trace_id, a) == ANCHOR_LOOKUP_FOUND)
                return judge(a, req->now_ms);
        return srs->is_fail_open ? ALLOW_STORES_DOWN : DENY_STORES_DOWN;
}

/* The refusal of an anchor decision (a signature refusal is written by check_signature()). */
static int refuse_anchor(enum decision d, const char *anchor_id, const struct anchor_record *a,
                         struct webhook_verdict *v)
{
        switch (d) {
        case DENY_BANNED:
                return webhook_refuse(v, 403, NULL, "anchor %s is banned", anchor_id);
        case DENY_SUSPENDED:
                if (a->suspended_until_ms)
                        return webhook_refuse(v, 403, NULL,
                                              "anchor %s is suspended until %" PRId64 " (Unix ms)",
                                              anchor_id, a->suspended_until_ms);
                return webhook_refuse(v, 403, NULL, "anchor %s is suspended", anchor_id);
        case DENY_NO_ANCHOR:
                return webhook_refuse(v, 400, NULL, "param: anchor_id is missing");
        default: /* DENY_STORES_DOWN: our fault, not the publisher's */
                return webhook_refuse(v, 503, NULL, "anchor status unavailable; retry");
        }
}

static void note_decision(struct srs *srs, const struct webhook_request *req, const struct hook *h,
                          const char *anchor_id, enum decision d, const struct webhook_verdict *v)
{
        metric_add(srs->decisions[d], 1);
        if (d == ALLOW_STORES_DOWN)
                log_warn(req->trace_id,
                         "srs on_publish stream=%s anchor=%s allowed unchecked: no "
                         "anchor status store answered (LIVEFLOW_SRS_FAIL_OPEN=1)",
                         h->stream, anchor_id);
        else if (is_refusal(d))
                log_info(req->trace_id, "srs on_publish stream=%s anchor=%s refused: %s", h->stream,
                         anchor_id ? anchor_id : "-", v->message);
}

/* Anti-leech signature first (it needs no store), then the anchor's status. */
int srs_authorize_publish(struct srs *srs, const struct webhook_request *req, const struct hook *h,
                          const struct webhook_event *ev, struct webhook_verdict *v)
{
        struct anchor_record a = {.status = ANCHOR_ACTIVE};
        enum decision d;
        int rc = 0;

        if (!srs->key_cnt && !srs->is_unsigned_allowed) {
                d = DENY_UNSIGNED;
                rc = webhook_refuse(v, 403, NULL,
                                    "on_publish: no LIVEFLOW_SRS_PUBLISH_KEY is configured, so the "
                                    "publisher cannot be identified");
        } else if (srs->key_cnt && check_signature(srs, h, ev->anchor_id, req->now_ms, &d, v) == -1)
                rc = -1;
        else if (is_refusal(d = decide_anchor(srs, req, ev->anchor_id, &a)))
                rc = refuse_anchor(d, ev->anchor_id, &a, v);
        note_decision(srs, req, h, ev->anchor_id, d, v);
        return rc;
}

/* The anchor srs_authorize_publish() would look up, or NULL (v is scratch). */
static const char *anchor_to_look_up(const struct srs *srs, const struct webhook_request *req,
                                     const struct hook *h, const struct webhook_event *ev,
                                     struct webhook_verdict *v)
{
        enum decision d;

        if (!h->rule || h->rule->kind != ACTION_PUBLISH || !ev->anchor_id || !srs->lookup.fn ||
            (!srs->key_cnt && !srs->is_unsigned_allowed))
                return NULL;
        if (srs->key_cnt && check_signature(srs, h, ev->anchor_id, req->now_ms, &d, v) == -1)
                return NULL;
        return ev->anchor_id;
}

int srs_lookup_wanted(struct srs *srs, const struct webhook_request *req, char *anchor_id,
                      size_t size)
{
        struct webhook_event ev = {0};
        struct webhook_verdict v = {0};
        struct hook h = {0};
        const char *wanted;
        json_t *root;
        int rc = 0;

        /* Only the deadline's own lookup has workers; a lookup set by hand runs in srs_map(). */
        if (!srs->deadline || srs->lookup.ctx != srs->deadline || !req->body || !req->len ||
            (req->method && strcmp(req->method, "GET") == 0) ||
            !(root = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, NULL)))
                return 0;
        if (json_is_object(root) && srs_read_hook(root, &h, &v) == 0 &&
            srs_read_anchor_room(&h, &ev, &v) == 0 &&
            (wanted = anchor_to_look_up(srs, req, &h, &ev, &v)) && strlen(wanted) < size) {
                memcpy(anchor_id, wanted, strlen(wanted) + 1);
                rc = 1;
        }
        webhook_event_fini(&ev);
        json_decref(root);
        return rc;
}

void srs_lookup_start(struct srs *srs, const char *anchor_id, const char *trace_id,
                      struct anchor_answer *ans, void (*done)(void *arg), void *arg)
{
        lookup_deadline_start(srs->deadline, anchor_id, trace_id, ans, done, arg);
}
