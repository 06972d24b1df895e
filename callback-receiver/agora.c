/*
 * agora.c: turns an Agora NCS notice into a liveflow event. Facts from vendor-callbacks §3:
 * the signature is a hex HMAC of the raw body (V2: SHA-256, legacy: SHA-1), there is no
 * timestamp header, notifyMs is renewed on every retry, noticeId names the notice, a notice
 * may come twice and out of order, and numbers are sometimes sent as strings.
 *
 * An interactive (RTC) room is one stream session per channel: channel create opens it,
 * channel destroy ends it, and broadcaster joins and leaves in between (co-hosts) are
 * recorded against that session by the stream role (stream.join / stream.leave); a join
 * while the channel is not live opens the session, since NCS does not order its notices.
 */
#include "agora.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "contract.h"
#include "crypto.h"
#include "field_limits.h"
#include "fields.h"
#include "log.h"
#include "settings.h"
#include "strlist.h"

#define SHA256_HEX_LEN   64
#define SHA1_HEX_LEN     40
#define STREAM_MAX_CHARS FIELD_MAX_STREAM_ID
#define ANCHOR_MAX_CHARS FIELD_MAX_ANCHOR_ID
#define SEEN_MAX         64 /* unknown (productId, eventType) pairs logged once each */

enum product { PRODUCT_RTC = 1, PRODUCT_CLOUD_RECORDING = 3, PRODUCT_BROADCAST = 7 };

struct agora {
        char **secrets;
        size_t secret_cnt;
        bool accepts_sha1;
        bool is_anchor_uid; /* LIVEFLOW_AGORA_ANCHOR_FROM=uid */
        int64_t max_age_ms;
        pthread_mutex_t lock; /* guards seen */
        long long seen[SEEN_MAX][2];
        size_t seen_cnt;
};

/* The envelope of one notice; the pointers borrow from the parsed body. */
struct notice {
        const json_t *root, *payload;
        const char *notice_id;
        int64_t product, type, notify_ms;
        char id_buf[FIELDS_TEXT_INT_MAX];
};

/* ------------------------------------------------------------ the endpoint */

void agora_destroy(struct agora *ag)
{
        if (!ag)
                return;
        strlist_free(ag->secrets, ag->secret_cnt);
        pthread_mutex_destroy(&ag->lock);
        free(ag);
}

static int parse_anchor_from(const char *s, bool *is_uid, char *errstr, size_t errstr_size)
{
        if (!s || !*s || strcmp(s, "channel") == 0) {
                *is_uid = false;
                return 0;
        }
        if (strcmp(s, "uid") == 0) {
                *is_uid = true;
                return 0;
        }
        snprintf(errstr, errstr_size, "LIVEFLOW_AGORA_ANCHOR_FROM: \"%s\" is not channel or uid",
                 s);
        return -1;
}

int agora_check_config(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct agora *ag = agora_new(s, errstr, errstr_size);

        agora_destroy(ag);
        return ag ? 0 : -1;
}

struct agora *agora_new(const struct settings *s, char *errstr, size_t errstr_size)
{
        struct agora *ag = calloc(1, sizeof(*ag));

        if (!ag) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        pthread_mutex_init(&ag->lock, NULL);
        ag->accepts_sha1 = s->agora_accept_sha1 != 0;
        ag->max_age_ms = (s->agora_max_age_s > 0 ? s->agora_max_age_s : 600) * 1000;
        if (parse_anchor_from(s->agora_anchor_from, &ag->is_anchor_uid, errstr, errstr_size) ==
                    -1 ||
            strlist_copy(s->agora_secrets, AGORA_SECRET_MAX, "LIVEFLOW_AGORA_SECRET", "secret",
                         &ag->secrets, &ag->secret_cnt, errstr, errstr_size) == -1) {
                agora_destroy(ag);
                return NULL;
        }
        return ag;
}

size_t agora_secret_count(const struct agora *ag)
{
        return ag ? ag->secret_cnt : 0;
}

/* ------------------------------------------------------------ signature */

static void hmac_hex(const EVP_MD *md, const char *key, const void *body, size_t len, char *out)
{
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;

        if (!HMAC(md, key, (int)strlen(key), body, len, mac, &mac_len))
                mac_len = 0; /* an empty MAC matches no header */
        crypto_hex(mac, mac_len, out);
        explicit_bzero(mac, sizeof(mac));
}

/* Every secret is tried without stopping at a match: timing says nothing about which did. */
static bool signature_matches(const struct agora *ag, const EVP_MD *md, size_t hex_len,
                              const struct webhook_request *req, const char *got)
{
        char want[2 * EVP_MAX_MD_SIZE + 1];
        bool is_match = false;

        if (strlen(got) != hex_len)
                return false;
        for (size_t i = 0; i < ag->secret_cnt; i++) {
                hmac_hex(md, ag->secrets[i], req->body ? req->body : "", req->len, want);
                is_match |= strlen(want) == hex_len && crypto_hex_equal_nocase(want, got, hex_len);
        }
        return is_match;
}

static int verify_signature(const struct agora *ag, const struct webhook_request *req,
                            struct webhook_verdict *v)
{
        const char *v2 = webhook_header(req, "Agora-Signature-V2");
        const char *v1 = webhook_header(req, "Agora-Signature");

        if (v2) {
                if (!signature_matches(ag, EVP_sha256(), SHA256_HEX_LEN, req, v2))
                        return webhook_refuse(v, 401, "mismatch",
                                              "Agora-Signature-V2 does not match");
                return 0;
        }
        if (v1 && ag->accepts_sha1) {
                if (!signature_matches(ag, EVP_sha1(), SHA1_HEX_LEN, req, v1))
                        return webhook_refuse(v, 401, "mismatch", "Agora-Signature does not match");
                return 0;
        }
        if (v1)
                return webhook_refuse(v, 401, "missing",
                                      "Agora-Signature-V2 is missing (Agora-Signature, SHA-1, "
                                      "is not accepted: LIVEFLOW_AGORA_ACCEPT_SHA1=0)");
        return webhook_refuse(v, 401, "missing", "Agora-Signature-V2 is missing");
}

/* ------------------------------------------------------------ the envelope */

static int read_int_field(const json_t *root, const char *name, int64_t *out,
                          struct webhook_verdict *v)
{
        const json_t *f = json_object_get(root, name);

        if (!f)
                return webhook_refuse(v, 400, NULL, "%s is missing", name);
        if (fields_int64(f, out) == -1)
                return webhook_refuse(v, 400, NULL, "%s: expected an integer", name);
        return 0;
}

static int read_notice(const json_t *root, struct notice *n, struct webhook_verdict *v)
{
        const json_t *id = json_object_get(root, "noticeId");

        n->root = root;
        if (!id)
                return webhook_refuse(v, 400, NULL, "noticeId is missing");
        if (!(n->notice_id = fields_text(id, n->id_buf, sizeof(n->id_buf))) || !*n->notice_id)
                return webhook_refuse(v, 400, NULL, "noticeId: expected a non-empty string");
        if (read_int_field(root, "productId", &n->product, v) == -1 ||
            read_int_field(root, "eventType", &n->type, v) == -1 ||
            read_int_field(root, "notifyMs", &n->notify_ms, v) == -1)
                return -1;
        n->payload = json_object_get(root, "payload");
        if (n->payload && !json_is_object(n->payload))
                return webhook_refuse(v, 400, NULL, "payload: expected an object");
        return 0;
}

/* notifyMs is signed and renewed on every retry: a notice far from now is a replay. */
static int check_fresh(const struct agora *ag, const struct notice *n, int64_t now_ms,
                       struct webhook_verdict *v)
{
        /* Written as comparisons against now so that no huge notifyMs can overflow. */
        if (n->notify_ms < now_ms - ag->max_age_ms)
                return webhook_refuse(v, 401, "expired", "notifyMs is %" PRId64 " s old",
                                      (now_ms - n->notify_ms) / 1000);
        if (n->notify_ms > now_ms + ag->max_age_ms)
                return webhook_refuse(v, 401, "expired", "notifyMs is in the future");
        return 0;
}

/* event_id = lowercase hex SHA-256 of "agora|<productId>|<eventType>|<noticeId>". */
static int make_event_id(const struct notice *n, struct webhook_event *ev)
{
        char *key = NULL;
        int len = asprintf(&key, "agora|%" PRId64 "|%" PRId64 "|%s", n->product, n->type,
                           n->notice_id);

        if (len < 0)
                return -1;
        crypto_sha256_hex(key, (size_t)len, ev->event_id);
        free(key);
        return 0;
}

/* ------------------------------------------------------------ payload fields */

static const char *payload_text(const struct notice *n, const char *name, char *buf, size_t size)
{
        const char *s = fields_text(json_object_get(n->payload, name), buf, size);

        return s && *s ? s : NULL;
}

/* A required non-empty text of the payload, copied into p[to]. */
static int require(const struct notice *n, json_t *p, const char *to, const char *name,
                   struct webhook_verdict *v)
{
        char buf[FIELDS_TEXT_INT_MAX];
        const char *s = payload_text(n, name, buf, sizeof(buf));

        if (!s)
                return webhook_refuse(v, 400, NULL, "payload.%s is missing or empty", name);
        return fields_put(p, to, s) == -1 ? webhook_refuse(v, 500, NULL, "out of memory") : 0;
}

static int copy(const struct notice *n, json_t *p, const char *to, const char *name)
{
        char buf[FIELDS_TEXT_INT_MAX];

        return fields_put(p, to, payload_text(n, name, buf, sizeof(buf)));
}

/*
 * Broadcast Streaming file names: {entryPoint}/{streamName}/{sessionid}_{sessiondate}_... :
 * the session id is what the base name starts with, up to its first '_'.
 */
static int put_session_key(json_t *p, const char *file)
{
        const char *base = strrchr(file, '/');
        size_t len;
        char *key;
        int rc;

        base = base ? base + 1 : file;
        len = strcspn(base, "_.");
        if (len == 0 || base[len] != '_' || !(key = strndup(base, len)))
                return 0;
        rc = fields_put(p, "session_key", key);
        free(key);
        return rc;
}

/* The file's date: the base name's last "_YYYYMMDDhhmmss" (UTC) before the extension, in ms. */
static int64_t file_date_ms(const char *file)
{
        const char *us = strrchr(file, '_');
        struct tm tm = {0};
        char digits[15];

        if (!us || strspn(us + 1, "0123456789") < 14)
                return -1;
        memcpy(digits, us + 1, 14);
        digits[14] = '\0';
        if (sscanf(digits, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec) != 6 ||
            tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
            tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
                return -1;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm) * 1000;
}

/* ------------------------------------------------------------ payloads */

/* What one fill needs: the notice, the event (its time, as a fallback for files). */
struct fill_ctx {
        const struct notice *n;
        const struct webhook_event *ev;
};

static int fill_bcast_begin(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        return copy(c->n, p, "client_ip", "clientIp") || copy(c->n, p, "app", "domain") ||
                               copy(c->n, p, "node", "nodeIp")
                       ? webhook_refuse(v, 500, NULL, "out of memory")
                       : 0;
}

/* A stream end by the vendor (close_method 1); the RTC session key when NCS sends sid. */
static int fill_end(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        char buf[FIELDS_TEXT_INT_MAX];
        const char *sid = fields_text(json_object_get(c->n->root, "sid"), buf, sizeof(buf));

        if (fields_put(p, "sequence", sid) == -1 || fields_put_int(p, "close_method", 1) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

static int fill_rtc_begin(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        char buf[FIELDS_TEXT_INT_MAX];
        const char *sid = fields_text(json_object_get(c->n->root, "sid"), buf, sizeof(buf));

        if (fields_put(p, "sequence", sid) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

static int fill_viewer(const struct fill_ctx *c, json_t *p, const char *action,
                       struct webhook_verdict *v)
{
        if (fields_put(p, "action", action) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return require(c->n, p, "client_id", "uid", v);
}

static int fill_viewer_join(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        return fill_viewer(c, p, "join", v);
}

static int fill_viewer_leave(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        return fill_viewer(c, p, "leave", v);
}

/* 7/3 and 7/101: fileName is the object's path in the customer's storage. */
static int fill_bcast_record(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        char buf[FIELDS_TEXT_INT_MAX], fmt[16];
        const char *file = payload_text(c->n, "fileName", buf, sizeof(buf));

        if (!file)
                return webhook_refuse(v, 400, NULL, "payload.fileName is missing or empty");
        if (fields_put(p, "file_id", file) || fields_put(p, "video_url", file) ||
            fields_put(p, "file_format", fields_file_format(file, fmt, sizeof(fmt))) ||
            put_session_key(p, file))
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (file_date_ms(file) > 0 && fields_put_int(p, "end_time_ms", file_date_ms(file)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

static int put_snapshot(json_t *p, const char *file, int64_t fallback_ms, struct webhook_verdict *v)
{
        int64_t created_ms = file_date_ms(file);

        if (fields_put(p, "pic_url", file) ||
            fields_put_int(p, "create_time_ms", created_ms > 0 ? created_ms : fallback_ms))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

static int fill_bcast_snapshot(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        char buf[FIELDS_TEXT_INT_MAX];
        const char *file = payload_text(c->n, "fileName", buf, sizeof(buf));

        if (!file)
                return webhook_refuse(v, 400, NULL, "payload.fileName is missing or empty");
        return put_snapshot(p, file, c->ev->event_time_ms, v);
}

/* "pass", "review", "block" in any case -> Pass, Review, Block (what the audit role grades). */
static const char *suggestion_of(const char *s)
{
        static const char *const names[] = {"Pass", "Review", "Block"};

        for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
                if (strcasecmp(s, names[i]) == 0)
                        return names[i];
        return NULL;
}

/* The highest output other than neutral (porn, sexy), as 0-100. */
static int64_t moderation_score(const json_t *outputs)
{
        const char *name;
        json_t *value;
        double best = -1;

        json_object_foreach((json_t *)outputs, name, value)
        {
                if (strcmp(name, "neutral") != 0 && json_is_number(value) &&
                    json_number_value(value) > best)
                        best = json_number_value(value);
        }
        if (best < 0 || best > 1)
                return -1;
        return (int64_t)(best * 100 + 0.5);
}

static int fill_bcast_audit(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        const json_t *porn = json_object_get(json_object_get(c->n->payload, "results"), "porn");
        const char *sg = json_string_value(json_object_get(c->n->payload, "suggestion"));
        int64_t score = moderation_score(json_object_get(porn, "outputs"));

        if (!sg)
                return webhook_refuse(v, 400, NULL, "payload.suggestion is missing");
        if (!suggestion_of(sg))
                return webhook_refuse(v, 400, NULL,
                                      "payload.suggestion: expected pass, review or block");
        if (fields_put(p, "source", "agora.moderation") ||
            fields_put(p, "suggestion", suggestion_of(sg)) ||
            fields_put(p, "label", json_string_value(json_object_get(porn, "scene"))) ||
            copy(c->n, p, "img", "fileName") || (score >= 0 && fields_put_int(p, "score", score)))
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* The file of a 3/31 worth naming: the first playable one, else the first. */
static const json_t *uploaded_file(const json_t *details)
{
        const json_t *list = json_object_get(details, "fileList"), *item, *first = NULL;
        size_t i;

        json_array_foreach(list, i, item)
        {
                if (!json_is_string(json_object_get(item, "fileName")))
                        continue;
                if (!first)
                        first = item;
                if (json_is_true(json_object_get(item, "isPlayable")))
                        return item;
        }
        return first;
}

static int fill_cloud_record(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        const json_t *file = uploaded_file(json_object_get(c->n->payload, "details"));
        char buf[FIELDS_TEXT_INT_MAX], fmt[16], *id = NULL;
        const char *sid = payload_text(c->n, "sid", buf, sizeof(buf));
        const char *name = json_string_value(json_object_get(file, "fileName"));
        int64_t start_ms;
        int rc = 0;

        if (!name || !*name)
                return webhook_refuse(v, 400, NULL, "payload.details.fileList: no fileName");
        /* Cloud recording names files per recording (sid); the id joins the two. */
        if (asprintf(&id, "%s/%s", sid ? sid : "", name) < 0)
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (fields_put(p, "file_id", id) || fields_put(p, "video_url", name) ||
            fields_put(p, "file_format", fields_file_format(name, fmt, sizeof(fmt))) ||
            fields_put(p, "session_key", sid))
                rc = webhook_refuse(v, 500, NULL, "out of memory");
        else if (fields_int64(json_object_get(file, "sliceStartTime"), &start_ms) == 0 &&
                 start_ms > 0 && fields_put_int(p, "start_time_ms", start_ms))
                rc = webhook_refuse(v, 500, NULL, "out of memory");
        free(id);
        return rc;
}

static int fill_cloud_snapshot(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v)
{
        const char *file = json_string_value(
                json_object_get(json_object_get(c->n->payload, "details"), "fileName"));

        if (!file || !*file)
                return webhook_refuse(v, 400, NULL, "payload.details.fileName is missing");
        return put_snapshot(p, file, c->ev->event_time_ms, v);
}

/* ------------------------------------------------------------ the mapping table */

/* Who the anchor of an event is (see agora.h). */
enum anchor_rule {
        ANCHOR_OF_STREAM,      /* the channel/stream name (channel), none (uid) */
        ANCHOR_OF_BROADCASTER, /* the channel name (channel), the payload's uid (uid) */
        ANCHOR_NEVER,          /* a verdict: the audit role uses the stream's recorded anchor */
};

struct mapping {
        int64_t product, type;
        const char *event_type;
        const char *topic;
        const char *payload_name; /* NULL: null payload */
        const char *stream_field; /* the payload field naming the stream */
        enum anchor_rule anchor;
        int (*fill)(const struct fill_ctx *c, json_t *p, struct webhook_verdict *v);
};

#define BCAST PRODUCT_BROADCAST
#define RTC   PRODUCT_RTC
#define CREC  PRODUCT_CLOUD_RECORDING

static const struct mapping mappings[] = {
        {BCAST, 1, "stream.begin", LF_TOPIC_STREAM, "StreamBegin", "streamName", ANCHOR_OF_STREAM,
         fill_bcast_begin},
        {BCAST, 2, "stream.end", LF_TOPIC_STREAM, "StreamEnd", "streamName", ANCHOR_OF_STREAM,
         fill_end},
        {BCAST, 3, "record.file", LF_TOPIC_RECORD, "RecordFile", "streamName", ANCHOR_OF_STREAM,
         fill_bcast_record},
        {BCAST, 101, "record.file", LF_TOPIC_RECORD, "RecordFile", "streamName", ANCHOR_OF_STREAM,
         fill_bcast_record},
        {BCAST, 4, "snapshot", LF_TOPIC_SNAPSHOT, "Snapshot", "streamName", ANCHOR_OF_STREAM,
         fill_bcast_snapshot},
        {BCAST, 102, "snapshot", LF_TOPIC_SNAPSHOT, "Snapshot", "streamName", ANCHOR_OF_STREAM,
         fill_bcast_snapshot},
        {BCAST, 5, "audit.image", LF_TOPIC_AUDIT, "AuditVerdict", "streamName", ANCHOR_NEVER,
         fill_bcast_audit},
        {BCAST, 103, "audit.image", LF_TOPIC_AUDIT, "AuditVerdict", "streamName", ANCHOR_NEVER,
         fill_bcast_audit},
        {RTC, 101, "stream.begin", LF_TOPIC_STREAM, "StreamBegin", "channelName", ANCHOR_OF_STREAM,
         fill_rtc_begin},
        {RTC, 102, "stream.end", LF_TOPIC_STREAM, "StreamEnd", "channelName", ANCHOR_OF_STREAM,
         fill_end},
        {RTC, 103, "stream.join", LF_TOPIC_STREAM, "StreamBegin", "channelName",
         ANCHOR_OF_BROADCASTER, fill_rtc_begin},
        {RTC, 104, "stream.leave", LF_TOPIC_STREAM, "StreamEnd", "channelName",
         ANCHOR_OF_BROADCASTER, fill_end},
        {RTC, 105, "viewer.join", LF_TOPIC_VIEWER, "Viewer", "channelName", ANCHOR_OF_STREAM,
         fill_viewer_join},
        {RTC, 106, "viewer.leave", LF_TOPIC_VIEWER, "Viewer", "channelName", ANCHOR_OF_STREAM,
         fill_viewer_leave},
        {RTC, 111, "viewer.leave", LF_TOPIC_VIEWER, "Viewer", "channelName", ANCHOR_OF_STREAM,
         fill_viewer_leave},
        {RTC, 112, "viewer.join", LF_TOPIC_VIEWER, "Viewer", "channelName", ANCHOR_OF_STREAM,
         fill_viewer_join},
        {CREC, 31, "record.file", LF_TOPIC_RECORD, "RecordFile", "cname", ANCHOR_OF_STREAM,
         fill_cloud_record},
        {CREC, 45, "snapshot", LF_TOPIC_SNAPSHOT, "Snapshot", "cname", ANCHOR_OF_STREAM,
         fill_cloud_snapshot},
};

/* Kept, not acted on (7/11 media info, 3/40 recorder started, every unknown pair). */
static const struct mapping other_mapping = {0,    0,    "other",          LF_TOPIC_OTHER,
                                             NULL, NULL, ANCHOR_OF_STREAM, NULL};

/* The field that names the stream of each product, for the notices mapped to "other". */
static const char *stream_field_of(int64_t product)
{
        return product == RTC ? "channelName" : product == CREC ? "cname" : "streamName";
}

static const struct mapping *mapping_of(const struct notice *n)
{
        for (size_t i = 0; i < sizeof(mappings) / sizeof(mappings[0]); i++)
                if (mappings[i].product == n->product && mappings[i].type == n->type)
                        return &mappings[i];
        return &other_mapping;
}

/* An unknown (productId, eventType) is logged once per process, not once per notice. */
static void note_unknown(struct agora *ag, const struct notice *n, const char *trace_id)
{
        bool is_new = true;

        if ((n->product == BCAST && n->type == 11) || (n->product == CREC && n->type == 40))
                return; /* known, kept on live.other on purpose */
        pthread_mutex_lock(&ag->lock);
        for (size_t i = 0; i < ag->seen_cnt && is_new; i++)
                is_new = !(ag->seen[i][0] == n->product && ag->seen[i][1] == n->type);
        if (is_new && ag->seen_cnt < SEEN_MAX) {
                ag->seen[ag->seen_cnt][0] = n->product;
                ag->seen[ag->seen_cnt][1] = n->type;
                ag->seen_cnt++;
        }
        pthread_mutex_unlock(&ag->lock);
        if (is_new)
                log_info(trace_id,
                         "agora: productId %" PRId64 " eventType %" PRId64
                         " is not mapped: kept on live.other (logged once)",
                         n->product, n->type);
}

/* ------------------------------------------------------------ ids and time */

static int read_ids(const struct agora *ag, const struct notice *n, const struct mapping *m,
                    struct webhook_event *ev, struct webhook_verdict *v)
{
        const char *field = m->stream_field ? m->stream_field : stream_field_of(n->product);
        char buf[FIELDS_TEXT_INT_MAX], uid_buf[FIELDS_TEXT_INT_MAX];
        const char *stream = payload_text(n, field, buf, sizeof(buf)), *anchor = NULL;

        if (m->stream_field && !stream)
                return webhook_refuse(v, 400, NULL, "payload.%s is missing or empty", field);
        if (webhook_set_id(&ev->stream_id, stream, STREAM_MAX_CHARS, field, v) == -1)
                return -1;
        if (m->anchor == ANCHOR_OF_BROADCASTER && ag->is_anchor_uid)
                anchor = payload_text(n, "uid", uid_buf, sizeof(uid_buf));
        else if (m->anchor != ANCHOR_NEVER && !ag->is_anchor_uid)
                anchor = stream;
        if (webhook_set_id(&ev->anchor_id, anchor, ANCHOR_MAX_CHARS, "anchor", v) == -1 ||
            webhook_set_id(&ev->room_id, stream, ANCHOR_MAX_CHARS, "room", v) == -1)
                return -1;
        ev->key = ev->stream_id;
        return 0;
}

/* eventMs, else the payload's ts (s) or sendts (ms), else notifyMs. */
static int64_t event_time_of(const struct notice *n)
{
        int64_t t;

        if (fields_int64(json_object_get(n->root, "eventMs"), &t) == 0 && t > 0)
                return t;
        if (fields_int64(json_object_get(n->payload, "ts"), &t) == 0 && t > 0 &&
            t < INT64_MAX / 1000)
                return t * 1000;
        if (fields_int64(json_object_get(n->payload, "sendts"), &t) == 0 && t > 0)
                return t;
        return n->notify_ms;
}

/* ------------------------------------------------------------ the verb */

static int map_notice(struct agora *ag, const struct webhook_request *req, const struct notice *n,
                      struct webhook_event *ev, struct webhook_verdict *v)
{
        const struct mapping *m = mapping_of(n);
        const struct fill_ctx c = {n, ev};
        json_t *p;

        if (m->stream_field && !n->payload)
                return webhook_refuse(v, 400, NULL, "payload is missing");
        if (read_ids(ag, n, m, ev, v) == -1)
                return -1;
        if (make_event_id(n, ev) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        ev->vendor = "agora";
        ev->event_type = m->event_type;
        ev->topic = m->topic;
        ev->payload_name = m->payload_name;
        ev->event_time_ms = event_time_of(n);
        if (!m->fill) {
                note_unknown(ag, n, req->trace_id);
                return 0;
        }
        if (!(p = json_object()))
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (m->fill(&c, p, v) == -1) {
                json_decref(p);
                return -1;
        }
        ev->payload = p;
        return 0;
}

int agora_map(struct agora *ag, const struct webhook_request *req, struct webhook_event *ev,
              struct webhook_verdict *v)
{
        struct notice n = {0};
        json_t *root;
        int rc;

        if (!ag->secret_cnt)
                return webhook_refuse(v, 503, NULL,
                                      "no Agora NCS secret is configured (LIVEFLOW_AGORA_SECRET)");
        if (verify_signature(ag, req, v) == -1)
                return -1;
        if (webhook_json_body(req, &root, v) == -1) /* one "eventType" field, one reading */
                return -1;
        if ((rc = read_notice(root, &n, v)) == 0 && (rc = check_fresh(ag, &n, req->now_ms, v)) == 0)
                rc = map_notice(ag, req, &n, ev, v);
        json_decref(root);
        if (rc == -1)
                webhook_event_fini(ev);
        return rc;
}
