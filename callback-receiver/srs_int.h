/*
 * srs_int.h: what the parts of the SRS endpoint share. srs.c makes the endpoint and maps a
 * hook to its event (ids, payloads); srs_hook.c reads a hook's fields and its push URL's
 * query; srs_publish.c decides on_publish (anti-leech signature, anchor status) and asks for
 * the anchor lookup that decision needs.
 */
#ifndef LIVEFLOW_RECEIVER_SRS_INT_H
#define LIVEFLOW_RECEIVER_SRS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anchor_store.h"
#include "webhook.h"

struct lookup_deadline;
struct metric;

#define TEXT_INT_MAX 24 /* decimal text of any int64, with sign and NUL */
#define SECRET_LEN   32 /* hex MD5 */
#define TX_TIME_MAX  16 /* hex digits of a 64-bit time */
#define UTF8_MAX     4  /* bytes per character */

/* Longest ids, in characters: what the consumers' columns hold (sql/001_core.sql). */
#define STREAM_MAX_CHARS 255  /* live_streams.stream_id */
#define CLIENT_MAX_CHARS 128  /* live_streams.vendor_session */
#define ANCHOR_MAX_CHARS 64   /* anchors.anchor_id, live_streams.room_id */
#define URL_MAX_CHARS    2048 /* live_records.video_url */

enum action_kind {
        ACTION_PUBLISH,
        ACTION_UNPUBLISH,
        ACTION_PLAY,
        ACTION_STOP,
        ACTION_DVR,
        ACTION_OTHER
};

#define KEY_PARTS_MAX 8

struct action_rule {
        const char *name;
        enum action_kind kind;
        bool is_publisher;                  /* param is the publisher's: anchor_id, room_id */
        const char *key[KEY_PARTS_MAX + 1]; /* the event id's natural key, NULL-terminated */
};

/* What liveflow reads of one hook; the strings are borrowed from the JSON body. */
struct hook {
        const json_t *root;
        const struct action_rule *rule; /* NULL: an action liveflow does not know */
        const char *action;
        const char *stream;    /* NULL when absent or empty */
        const char *client_id; /* NULL when absent or empty */
        const char *param;     /* without its leading '?'; NULL when absent or empty */
        char client_buf[TEXT_INT_MAX];
};

/* Allows first, then refusals: is_refusal() compares with DENY_BANNED. */
enum decision {
        ALLOW_ACTIVE,
        ALLOW_SUSPENSION_OVER,
        ALLOW_NO_ANCHOR,
        ALLOW_CHECKS_OFF,
        ALLOW_STORES_DOWN,
        DENY_BANNED,
        DENY_SUSPENDED,
        DENY_NO_ANCHOR,
        DENY_STORES_DOWN,
        DENY_SIGNATURE_MISSING,
        DENY_SIGNATURE_MISMATCH,
        DENY_SIGNATURE_EXPIRED,
        DENY_UNSIGNED, /* no LIVEFLOW_SRS_PUBLISH_KEY and unsigned publishing not allowed */
        DECISION_CNT
};

/* The SRS endpoint. */
struct srs {
        char **keys;
        size_t key_cnt;
        bool is_fail_open;
        bool is_anchor_required;
        bool is_unsigned_allowed;         /* LIVEFLOW_SRS_PUBLISH_UNSIGNED: no key is no check */
        struct anchor_store *store;       /* NULL: neither LIVEFLOW_REDIS_URL nor _MYSQL_URL set */
        struct lookup_deadline *deadline; /* the store's lookup, off the HTTP threads */
        struct anchor_lookup lookup;      /* fn NULL: anchor checks are off */
        struct metric *decisions[DECISION_CNT];
};

/* srs_hook.c */
/* A field that must be text when present: NULL when absent, null or empty. */
const char *srs_text_of(const json_t *root, const char *name);
/* The raw value of key in a query string ("a=1&b=2"), the first if repeated; NULL when absent. */
const char *srs_query_find(const char *qs, const char *key, size_t *len);
/* What liveflow reads of root into h; -1 with v set when the hook is refused. */
int srs_read_hook(const json_t *root, struct hook *h, struct webhook_verdict *v);
/* anchor_id and room_id of the publisher's push URL; the room defaults to the anchor. */
int srs_read_anchor_room(const struct hook *h, struct webhook_event *ev, struct webhook_verdict *v);

/* srs_publish.c: anti-leech signature first (it needs no store), then the anchor's status. */
int srs_authorize_publish(struct srs *srs, const struct webhook_request *req, const struct hook *h,
                          const struct webhook_event *ev, struct webhook_verdict *v);

#endif
