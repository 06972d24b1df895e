/*
 * tencent.c: turns a Tencent Cloud CSS callback body into a liveflow event. Field facts come
 * from docs/vendor-callbacks §1: `t` is the expiry, `sign` = MD5(key + decimal text of t),
 * integers may be sent as numbers or as text, and there is no event id, so one is derived
 * from the natural key of each callback type.
 *
 * This file holds the verifier, the signature and the ids; the payloads of each type:
 * tencent_payload.c.
 */
#include "tencent.h"
#include "tencent_int.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "crypto.h"
#include "field_limits.h"
#include "fields.h"
#include "jsonfast.h"
#include "strlist.h"
#include "text.h"

const char *const tencent_topics[] = {TOPIC_STREAM, TOPIC_RECORD, TOPIC_SNAPSHOT,
                                      TOPIC_AUDIT,  TOPIC_OTHER,  NULL};

struct tencent {
        char **keys;
        size_t key_cnt;
        long long grace_s;
};

/*
 * Natural keys of the types other than 0 and 1 (vendor-callbacks §1.6). Each part lists
 * alternative field names; when a part is missing, the id falls back to the body.
 */
struct natural_key {
        long long type;
        const char *parts[3][2];
};

static const struct natural_key natural_keys[] = {
        {100, {{"record_file_id", "file_id"}, {"start_time", NULL}}},
        {332, {{"seq", NULL}}},
        {200, {{"pic_url", "pic_full_url"}}},
        {317, {{"streamId", "stream_id"}, {"img", NULL}, {"screenshotTime", NULL}}},
        {321, {{"sequence", NULL}, {"data_time", NULL}}},
        {314, {{"task_id", NULL}, {"callback_event", NULL}, {"msg", NULL}}},
};

/* ------------------------------------------------------------ the verifier */

void tencent_destroy(struct tencent *tc)
{
        if (!tc)
                return;
        strlist_free(tc->keys, tc->key_cnt);
        free(tc);
}

struct tencent *tencent_new(const char *keys, long long grace_s, char *errstr, size_t errstr_size)
{
        struct tencent *tc = calloc(1, sizeof(*tc));

        if (!tc) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        tc->grace_s = grace_s;
        if (strlist_copy(keys, TENCENT_KEY_MAX, "LIVEFLOW_TENCENT_KEY", "key", &tc->keys,
                         &tc->key_cnt, errstr, errstr_size) == -1) {
                tencent_destroy(tc);
                return NULL;
        }
        return tc;
}

size_t tencent_key_count(const struct tencent *tc)
{
        return tc ? tc->key_cnt : 0;
}

/* ------------------------------------------------------------ reading fields */

/*
 * obj[name], NULL when absent (or obj is not an object). cJSON_GetObjectItemCaseSensitive()
 * calls strcmp() on every member before the one asked for; a first byte that differs rules
 * out almost all of them for a few instructions.
 */
const cJSON *tencent_member(const cJSON *obj, const char *name)
{
        if (!cJSON_IsObject(obj))
                return NULL;
        for (const cJSON *c = obj->child; c; c = c->next)
                if (c->string && c->string[0] == name[0] && strcmp(c->string, name) == 0)
                        return c;
        return NULL;
}

/* The members this file reads of a callback, found in one pass over it. */
struct head {
        const cJSON *sign, *t, *event_type, *sequence, *stream_param;
        const cJSON *stream_ids[4]; /* by stream_id_names[] */
};

/* stream_id, or the other spellings Tencent uses (317 sends streamId; channel_id is an alias). */
static const char *const stream_id_names[] = {"stream_id", "streamId", "channel_id", "channelId"};

/* Sets *slot to c when name is key (the first of two equal keys, as a lookup would). */
static bool take(const cJSON **slot, const cJSON *c, const char *key, const char *name)
{
        if (strcmp(key, name) != 0)
                return false;
        if (!*slot)
                *slot = c;
        return true;
}

static void read_head(const cJSON *root, struct head *h)
{
        memset(h, 0, sizeof(*h));
        for (const cJSON *c = root->child; c; c = c->next) {
                const char *k = c->string;

                if (!k)
                        continue;
                switch (k[0]) {
                case 's':
                        (void)(take(&h->sign, c, k, "sign") ||
                               take(&h->sequence, c, k, "sequence") ||
                               take(&h->stream_param, c, k, "stream_param") ||
                               take(&h->stream_ids[0], c, k, stream_id_names[0]) ||
                               take(&h->stream_ids[1], c, k, stream_id_names[1]));
                        break;
                case 't':
                        take(&h->t, c, k, "t");
                        break;
                case 'e':
                        take(&h->event_type, c, k, "event_type");
                        break;
                case 'c':
                        (void)(take(&h->stream_ids[2], c, k, stream_id_names[2]) ||
                               take(&h->stream_ids[3], c, k, stream_id_names[3]));
                        break;
                }
        }
}

/* An integer sent as a JSON number or as decimal text ("1703732078"). */
int tencent_read_int64(const cJSON *v, int64_t *out)
{
        if (jsonfast_integer(v, out))
                return 0;
        return cJSON_IsString(v) ? fields_parse_decimal(v->valuestring, out) : -1;
}

/* A string as it is, an integer as its decimal text (in buf); NULL for anything else. */
const char *tencent_read_text(const cJSON *v, char *buf, size_t size)
{
        int64_t n;

        if (cJSON_IsString(v))
                return v->valuestring;
        if (jsonfast_integer(v, &n)) {
                text_int(buf, size, n);
                return buf;
        }
        return NULL;
}

/* ------------------------------------------------------------ signature */

/* Checks every key without stopping at a match, so timing says nothing about which matched. */
static bool sign_matches(const struct tencent *tc, const char *t_text, const char *sign)
{
        char msg[TENCENT_KEY_MAX + TEXT_INT_MAX], md5[SIGN_LEN + 1];
        size_t t_len = strlen(t_text);
        bool is_match = false;

        for (size_t i = 0; i < tc->key_cnt; i++) {
                size_t key_len = strlen(tc->keys[i]);

                memcpy(msg, tc->keys[i], key_len);
                memcpy(msg + key_len, t_text, t_len);
                crypto_md5_hex(msg, key_len + t_len, md5);
                is_match |= crypto_hex_equal_nocase(md5, sign, SIGN_LEN);
        }
        explicit_bzero(msg, sizeof(msg));
        return is_match;
}

static int verify(const struct tencent *tc, const struct head *h, int64_t now_ms,
                  struct webhook_verdict *v)
{
        const cJSON *sign = h->sign, *t = h->t;
        char buf[TEXT_INT_MAX];
        const char *t_text;
        int64_t expiry, now_s = now_ms / 1000;

        if (!sign || !t)
                return webhook_refuse(v, 401, "missing", "%s is missing", sign ? "t" : "sign");
        /* The signed text is t exactly as sent; a number's text is its decimal form. */
        if (tencent_read_int64(t, &expiry) == -1 ||
            !(t_text = tencent_read_text(t, buf, sizeof(buf))))
                return webhook_refuse(v, 401, "missing", "t: expected a Unix time in seconds");
        if (!cJSON_IsString(sign) || strlen(sign->valuestring) != SIGN_LEN)
                return webhook_refuse(v, 401, "mismatch", "sign: expected %d hex digits", SIGN_LEN);
        if (!sign_matches(tc, t_text, sign->valuestring))
                return webhook_refuse(v, 401, "mismatch", "sign does not match");
        /* Written as a subtraction from now so that a huge t cannot overflow. */
        if (expiry < now_s - tc->grace_s)
                return webhook_refuse(v, 401, "expired", "t expired %" PRId64 " s ago",
                                      now_s - expiry);
        return 0;
}

/* ------------------------------------------------------------ ids */

/*
 * event_id = lowercase hex SHA-256 of "tencent|<type>|<key>", the key being key2 ? "key|key2" :
 * key; hashed in parts, without the text being put together.
 */
static void event_id_of(char out[WEBHOOK_EVENT_ID_LEN + 1], long long type, const char *key,
                        const char *key2)
{
        char type_text[TEXT_LL_MAX];
        size_t type_len = text_int(type_text, sizeof(type_text), type);
        const void *parts[] = {"tencent|", type_text, "|", key, "|", key2};
        size_t lens[] = {8, type_len, 1, strlen(key), 1, key2 ? strlen(key2) : 0};

        crypto_sha256_hex_parts(parts, lens, key2 ? 6 : 4, out);
}

/*
 * The body without t and sign, keys sorted: what stays the same when Tencent re-signs. Made by
 * jansson from the body (its text is the id's: the same callback keeps its id), only for the
 * types without a natural key.
 */
static char *unsigned_body(const char *body, size_t len)
{
        json_t *copy = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        char *s;

        if (!copy)
                return NULL;
        json_object_del(copy, "t");
        json_object_del(copy, "sign");
        s = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(copy);
        return s;
}

/* The first present alternative of one natural-key part, as text; NULL when none is. */
static const char *natural_part(const cJSON *root, const char *const names[2], char *buf,
                                size_t size)
{
        for (int i = 0; i < 2 && names[i]; i++) {
                const char *s = tencent_read_text(tencent_member(root, names[i]), buf, size);

                if (s)
                        return s;
        }
        return NULL;
}

/* The natural key as a compact JSON array of texts (unambiguous); NULL when a part is absent. */
static char *natural_key(const cJSON *root, long long type)
{
        const struct natural_key *nk = NULL;
        json_t *parts;
        char *s;

        for (size_t i = 0; i < sizeof(natural_keys) / sizeof(natural_keys[0]); i++)
                if (natural_keys[i].type == type)
                        nk = &natural_keys[i];
        if (!nk || !(parts = json_array()))
                return NULL;
        for (int i = 0; i < 3 && nk->parts[i][0]; i++) {
                char buf[TEXT_INT_MAX];
                const char *text = natural_part(root, nk->parts[i], buf, sizeof(buf));

                if (!text || json_array_append_new(parts, json_string(text)) == -1) {
                        json_decref(parts);
                        return NULL;
                }
        }
        s = json_dumps(parts, JSON_COMPACT);
        json_decref(parts);
        return s;
}

/*
 * Push and interrupt of one session share `sequence`, so the type is part of the key, and
 * so is the stream: a sequence names one push session of one stream. Other types use their
 * natural key, and the signature-free body when they have none. Call after read_stream_id().
 */
static void make_event_id(struct webhook_event *ev, const cJSON *root, const struct head *h,
                          long long type, const char *body, size_t len)
{
        char buf[TEXT_INT_MAX], *key = NULL;
        const char *sequence = NULL;

        if (type == TENCENT_STREAM_BEGIN || type == TENCENT_STREAM_END)
                sequence = tencent_read_text(h->sequence, buf, sizeof(buf));
        if (sequence && *sequence) {
                event_id_of(ev->event_id, type, ev->stream_id ? ev->stream_id : "", sequence);
                return;
        }
        /* A natural key is a JSON array and the body an object: the two cannot collide. */
        if (!(key = natural_key(root, type)))
                key = unsigned_body(body, len);
        event_id_of(ev->event_id, type, key ? key : "", NULL);
        free(key);
}

/* ------------------------------------------------------------ ids of the stream, anchor, room */

/* Percent-decodes a form value; keeps the raw text when the result would not be clean UTF-8. */
static char *decode_form_value(const char *s, size_t len)
{
        char *out = fields_form_decode(s, len);

        return out ? out : strndup(s, len);
}

/* The decoded value of key in a query string ("a=1&b=2", a leading '?' allowed); NULL when absent
 * or empty. */
static char *query_value(const char *qs, const char *key)
{
        size_t key_len = strlen(key);

        if (*qs == '?')
                qs++;
        while (*qs) {
                size_t len = strcspn(qs, "&");

                if (len > key_len + 1 && qs[key_len] == '=' && memcmp(qs, key, key_len) == 0)
                        return decode_form_value(qs + key_len + 1, len - key_len - 1);
                qs += len;
                if (*qs == '&')
                        qs++;
        }
        return NULL;
}

/* The first of stream_id_names[] sent. */
static int read_stream_id(const struct head *h, struct webhook_event *ev, struct webhook_verdict *v)
{
        const char *const *names = stream_id_names;

        for (size_t i = 0; i < sizeof(h->stream_ids) / sizeof(h->stream_ids[0]); i++) {
                const cJSON *field = h->stream_ids[i];
                char buf[TEXT_INT_MAX];
                const char *s;

                if (!field)
                        continue;
                if (!(s = tencent_read_text(field, buf, sizeof(buf))) || !*s)
                        return webhook_refuse(v, 400, NULL, "%s: expected a non-empty string",
                                              names[i]);
                /* Longer would be a 200 and then a permanent dead letter: Tencent would not
                 * retry, the event would be lost. */
                if (!field_fits(s, strlen(s), FIELD_MAX_STREAM_ID))
                        return webhook_refuse(v, 400, NULL, "%s: longer than %d characters",
                                              names[i], FIELD_MAX_STREAM_ID);
                if (!(ev->stream_id = strdup(s)))
                        return webhook_refuse(v, 500, NULL, "out of memory");
                return 0;
        }
        return 0;
}

/* anchor_id and room_id come from the push URL's query string; the room defaults to the anchor. */
static int read_anchor_room(const struct head *h, struct webhook_event *ev,
                            struct webhook_verdict *v)
{
        const char *qs = cJSON_GetStringValue(h->stream_param);

        if (!qs)
                return 0;
        ev->anchor_id = query_value(qs, "anchor_id");
        ev->room_id = query_value(qs, "room_id");
        if (ev->anchor_id && !field_fits(ev->anchor_id, strlen(ev->anchor_id), FIELD_MAX_ANCHOR_ID))
                return webhook_refuse(v, 400, NULL,
                                      "stream_param: anchor_id longer than %d characters",
                                      FIELD_MAX_ANCHOR_ID);
        if (ev->room_id && !field_fits(ev->room_id, strlen(ev->room_id), FIELD_MAX_ROOM_ID))
                return webhook_refuse(v, 400, NULL,
                                      "stream_param: room_id longer than %d characters",
                                      FIELD_MAX_ROOM_ID);
        if (!ev->room_id && ev->anchor_id && !(ev->room_id = strdup(ev->anchor_id)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* ------------------------------------------------------------ the verb */

/* event_time, else the type's own time field; a malformed one is not worth losing the event over.
 */
static int64_t event_time_of(const cJSON *root, const struct mapping *m, int64_t now_ms)
{
        int64_t ms = tencent_read_time_ms(root, "event_time", NULL);

        if (ms == -1 && m->time_field)
                ms = tencent_read_time_ms(root, m->time_field, NULL);
        return ms == -1 ? now_ms : ms;
}

/* sequence names the push session (live_streams.vendor_session): it must fit there. */
static int check_sequence(const struct head *h, struct webhook_verdict *v)
{
        char buf[TEXT_INT_MAX];
        const char *s = tencent_read_text(h->sequence, buf, sizeof(buf));

        if (s && !field_fits(s, strlen(s), FIELD_MAX_SESSION))
                return webhook_refuse(v, 400, NULL, "sequence: longer than %d characters",
                                      FIELD_MAX_SESSION);
        return 0;
}

static int map_fields(const cJSON *root, const struct head *h, const struct webhook_request *req,
                      struct webhook_event *ev, struct webhook_verdict *v)
{
        const cJSON *type_field = h->event_type;
        const struct mapping *m;
        int64_t type;

        if (!type_field)
                return webhook_refuse(v, 400, NULL, "event_type is missing");
        if (tencent_read_int64(type_field, &type) == -1)
                return webhook_refuse(v, 400, NULL, "event_type: expected an integer");
        m = tencent_mapping_of((long long)type);
        if (read_stream_id(h, ev, v) == -1 || read_anchor_room(h, ev, v) == -1)
                return -1;
        if (m->stream_field && !ev->stream_id)
                return webhook_refuse(v, 400, NULL, "%s is missing", m->stream_field);
        if (check_sequence(h, v) == -1)
                return -1;
        ev->event_time_ms = event_time_of(root, m, req->now_ms);
        ev->vendor = "tencent";
        ev->key = ev->stream_id;
        make_event_id(ev, root, h, (long long)type, req->body, req->len);
        return tencent_map_payload(root, m, ev, v);
}

/*
 * Tencent sends 321 (push abnormal) and 314 (relay) without t and sign in its own samples.
 * Such a callback is kept, marked "other.unverified", only when the caller's source was vouched
 * for (path token or allowlist): nothing acts on live.other, and the mark keeps it so.
 */
static bool may_go_unsigned(const struct head *h, const struct webhook_verdict *v)
{
        int64_t type;

        if (!v->auth_failure || strcmp(v->auth_failure, "missing") != 0 || h->sign || h->t ||
            tencent_read_int64(h->event_type, &type) == -1)
                return false;
        return type == 321 || type == 314;
}

static int map_any(const struct tencent *tc, const struct webhook_request *req, bool is_vouched,
                   struct webhook_event *ev, struct webhook_verdict *v)
{
        const int64_t now_ms = req->now_ms;
        json_error_t jerr;
        cJSON *root = NULL;
        struct head h;
        int rc;

        if (!tc->key_cnt)
                return webhook_refuse(
                        v, 503, NULL,
                        "no Tencent callback key is configured (LIVEFLOW_TENCENT_KEY)");
        /* Duplicate keys are refused: two "sign" fields must not be read two ways. */
        if ((rc = jsonfast_parse(req->body, req->len, &root, &jerr)) == -2)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (rc == -1)
                return webhook_refuse(v, 400, NULL, "body: malformed JSON at line %d column %d: %s",
                                      jerr.line, jerr.column, jerr.text);
        if (!cJSON_IsObject(root)) {
                rc = webhook_refuse(v, 400, NULL, "body: expected a JSON object");
        } else {
                read_head(root, &h);
                if ((rc = verify(tc, &h, now_ms, v)) == 0) {
                        rc = map_fields(root, &h, req, ev, v);
                } else if (is_vouched && may_go_unsigned(&h, v)) {
                        memset(v, 0, sizeof(*v));
                        if ((rc = map_fields(root, &h, req, ev, v)) == 0)
                                ev->event_type = "other.unverified";
                }
        }
        cJSON_Delete(root);
        if (rc == -1)
                webhook_event_fini(ev);
        return rc;
}

int tencent_map(const struct tencent *tc, const struct webhook_request *req,
                struct webhook_event *ev, struct webhook_verdict *v)
{
        return map_any(tc, req, false, ev, v);
}

int tencent_map_vouched(const struct tencent *tc, const struct webhook_request *req,
                        struct webhook_event *ev, struct webhook_verdict *v)
{
        return map_any(tc, req, true, ev, v);
}
