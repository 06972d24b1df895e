/*
 * tencent_payload.c: what each Tencent type becomes (vendor-callbacks §1.3): its event type,
 * topic and payload record, with the payload's fields read from the callback's own names,
 * checked against the consumers' columns, and refused by name when a required one is missing.
 */
#include "tencent.h"
#include "tencent_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "field_limits.h"
#include "jsonfast.h"

/*
 * The payload is built as a struct payload, not a JSON object: its fields are written as Avro
 * straight from it (codec_encode_direct()). A set that fails marks the payload, and
 * tencent_map_payload() answers 500 for it once.
 */

/* payload[to] = s, text of the document: UTF-8 without NUL, as jsonfast_parse() made it. */
static void set_string(struct payload *payload, const char *to, const char *s)
{
        payload_set_text(payload, to, s, strlen(s));
}

/* Copies root[from] into payload[to] as a string when it is text or an integer. */
static void copy_text(struct payload *payload, const char *to, const cJSON *root, const char *from)
{
        char buf[TEXT_INT_MAX];
        const char *s = tencent_read_text(tencent_member(root, from), buf, sizeof(buf));

        if (s)
                set_string(payload, to, s);
}

/* Copies root[from] into payload[to] as an integer when it is one (number or text). */
static void copy_int(struct payload *payload, const char *to, const cJSON *root, const char *from)
{
        int64_t n;

        if (tencent_read_int64(tencent_member(root, from), &n) == 0)
                payload_set_int(payload, to, n);
}

/* ------------------------------------------------------------ payload fields */

/* Sets payload[to] to the text s; 500 when out of memory. */
static int set_text(struct payload *payload, const char *to, const char *s,
                    struct webhook_verdict *v)
{
        if (payload_set_text(payload, to, s, strlen(s)) == -1)
                return webhook_refuse(v, 500, NULL, "out of memory");
        return 0;
}

/* Refuses a required field: "x is missing" when absent, else "x: expected <what>". */
static int refuse_field(struct webhook_verdict *v, const cJSON *root, const char *name,
                        const char *what)
{
        if (!tencent_member(root, name))
                return webhook_refuse(v, 400, NULL, "%s is missing", name);
        return webhook_refuse(v, 400, NULL, "%s: expected %s", name, what);
}

/*
 * Copies into payload[to] the first of root[name] and root[alt] (alt may be NULL) that is
 * non-empty text or an integer; when neither is, refuses with 400 naming `name`.
 */
static int require_text(struct payload *payload, const char *to, const cJSON *root,
                        const char *name, const char *alt, struct webhook_verdict *v)
{
        const char *const names[2] = {name, alt};

        for (int i = 0; i < 2 && names[i]; i++) {
                char buf[TEXT_INT_MAX];
                const char *s = tencent_read_text(tencent_member(root, names[i]), buf, sizeof(buf));

                if (s && *s)
                        return set_text(payload, to, s, v);
        }
        if (alt && !tencent_member(root, name) && tencent_member(root, alt))
                name = alt; /* the alternative was sent, and it is the one that is wrong */
        return refuse_field(v, root, name, "a non-empty string");
}

/* Like copy_text(), but an empty text counts as absent. */
static void copy_nonempty_text(struct payload *payload, const char *to, const cJSON *root,
                               const char *from)
{
        char buf[TEXT_INT_MAX];
        const char *s = tencent_read_text(tencent_member(root, from), buf, sizeof(buf));

        if (s && *s)
                set_string(payload, to, s);
}

/*
 * Copies at most max_chars UTF-8 characters of root[from] into payload[to]: for the moderation
 * excerpts (the OCR or speech text a verdict quotes), which are evidence, not identity. Refusing
 * a long one would lose the verdict, since Tencent stops retrying; the excerpt is cut at a
 * character boundary to fit its column instead.
 */
static void copy_excerpt(struct payload *payload, const char *to, const cJSON *root,
                         const char *from, size_t max_chars)
{
        char buf[TEXT_INT_MAX];
        const char *s = tencent_read_text(tencent_member(root, from), buf, sizeof(buf));
        size_t len, chars = 0, i = 0;

        if (!s || !*s)
                return;
        len = strlen(s);
        while (i < len && chars < max_chars) {
                i++;
                while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
                        i++; /* the continuation bytes of the character */
                chars++;
        }
        payload_set_text(payload, to, s, i);
}

/* Copies root[from] into payload[to] in ASCII lower case ("MP4" and "mp4" are one format). */
static void copy_lower_text(struct payload *payload, const char *to, const cJSON *root,
                            const char *from)
{
        const char *s = cJSON_GetStringValue(tencent_member(root, from));
        char *lower;

        if (!s || !*s)
                return;
        if (!(lower = strdup(s))) {
                payload->has_failed = true;
                return;
        }
        for (char *c = lower; *c; c++)
                *c = (char)tolower(
                        (unsigned char)*c); /* ASCII only: UTF-8 bytes stay as they are */
        set_string(payload, to, lower);
        free(lower);
}

/*
 * Unix seconds in root[name] as ms, plus the microseconds in root[usec_name] when that is
 * sent and in range (usec_name may be NULL); -1 when absent, malformed or out of range.
 */
int64_t tencent_read_time_ms(const cJSON *root, const char *name, const char *usec_name)
{
        int64_t s, usec;

        if (tencent_read_int64(tencent_member(root, name), &s) == -1 || s <= 0 ||
            s >= INT64_MAX / 1000 - 1)
                return -1;
        if (!usec_name || tencent_read_int64(tencent_member(root, usec_name), &usec) == -1 ||
            usec < 0 || usec > 999999)
                usec = 0;
        return s * 1000 + usec / 1000;
}

/* Sets payload[to] to ms unless it is -1 (unknown). */
static void set_time_ms(struct payload *payload, const char *to, int64_t ms)
{
        if (ms >= 0)
                payload_set_int(payload, to, ms);
}

/* The moderation score: an integer, or the highest of an array of them (317 types it Array). */
static void copy_score(struct payload *payload, const cJSON *root, const char *from)
{
        const cJSON *scores = tencent_member(root, from), *item;
        int64_t n, best = -1;

        if (!cJSON_IsArray(scores)) {
                copy_int(payload, "score", root, from);
                return;
        }
        cJSON_ArrayForEach(item, scores) if (tencent_read_int64(item, &n) == 0 && n > best) best =
                n;
        if (best >= 0)
                payload_set_int(payload, "score", best);
}

/*
 * The recording session of a 100: callback_ext is a JSON object encoded as a string, with a
 * session_id ("do not rely on it", vendor-callbacks §1.4), so a bad one is simply ignored.
 */
static void copy_record_session(struct payload *payload, const cJSON *root)
{
        const cJSON *ext = tencent_member(root, "callback_ext");
        cJSON *parsed = NULL;
        json_error_t jerr;

        if (cJSON_IsString(ext)) {
                if (jsonfast_parse(ext->valuestring, strlen(ext->valuestring), &parsed, &jerr))
                        parsed = NULL;
                ext = parsed;
        }
        if (cJSON_IsObject(ext))
                copy_nonempty_text(payload, "session_key", ext, "session_id");
        cJSON_Delete(parsed);
}

/* ------------------------------------------------------------ payloads */

static int fill_stream_begin(const cJSON *root, struct payload *p, struct webhook_verdict *v)
{
        (void)v;
        copy_text(p, "sequence", root, "sequence");
        copy_text(p, "client_ip", root, "user_ip");
        copy_text(p, "stream_param", root, "stream_param");
        copy_text(p, "app", root, "app");
        copy_text(p, "node", root, "node");
        return 0;
}

static int fill_stream_end(const cJSON *root, struct payload *p, struct webhook_verdict *v)
{
        (void)v;
        copy_text(p, "sequence", root, "sequence");
        copy_int(p, "push_duration_ms", root, "push_duration"); /* ms, documented as a string */
        copy_int(p, "errcode", root, "errcode");
        copy_text(p, "errmsg", root, "errmsg");
        payload_set_int(p, "close_method", 1); /* ended by the stream */
        return 0;
}

/* 100: file_id is the VOD file id, record_file_id the recording's; either names the file. */
static int fill_record_file(const cJSON *root, struct payload *p, struct webhook_verdict *v)
{
        int64_t start_ms = tencent_read_time_ms(root, "start_time", "start_time_usec");
        int64_t end_ms = tencent_read_time_ms(root, "end_time", "end_time_usec");
        int64_t duration_s;

        if (require_text(p, "file_id", root, "file_id", "record_file_id", v) == -1 ||
            require_text(p, "video_url", root, "video_url", NULL, v) == -1)
                return -1;
        copy_lower_text(p, "file_format", root, "file_format");
        copy_int(p, "duration_s", root, "duration");
        copy_int(p, "file_size", root, "file_size");
        /* vendor-callbacks §1.4: the file starts at end_time - duration. */
        if (start_ms == -1 && end_ms != -1 &&
            tencent_read_int64(tencent_member(root, "duration"), &duration_s) == 0 &&
            duration_s >= 0 && duration_s < end_ms / 1000)
                start_ms = end_ms - duration_s * 1000;
        set_time_ms(p, "start_time_ms", start_ms);
        set_time_ms(p, "end_time_ms", end_ms);
        copy_record_session(p, root);
        return 0;
}

/* 332: one table of the doc spells the state field recordevent, the samples record_event. */
static int fill_record_status(const cJSON *root, struct payload *p, struct webhook_verdict *v)
{
        if (require_text(p, "record_event", root, "record_event", "recordevent", v) == -1)
                return -1;
        copy_nonempty_text(p, "session_key", root, "session_id");
        copy_nonempty_text(p, "seq", root, "seq");
        return 0;
}

/* 200: pic_url is a path without the domain, pic_full_url the whole URL (not in the legacy doc). */
static int fill_snapshot(const cJSON *root, struct payload *p, struct webhook_verdict *v)
{
        int64_t created_ms = tencent_read_time_ms(root, "create_time", NULL);

        if (require_text(p, "pic_url", root, "pic_url", "pic_full_url", v) == -1)
                return -1;
        if (created_ms == -1)
                return refuse_field(v, root, "create_time", "a Unix time in seconds");
        payload_set_int(p, "create_time_ms", created_ms);
        copy_nonempty_text(p, "pic_full_url", root, "pic_full_url");
        copy_int(p, "width", root, "width");
        copy_int(p, "height", root, "height");
        copy_int(p, "file_size", root, "file_size");
        return 0;
}

/* 317: camelCase names; the verdict is `suggestion` (Block, Review or Pass). */
static int fill_audit_image(const cJSON *root, struct payload *p, struct webhook_verdict *v)
{
        if (require_text(p, "suggestion", root, "suggestion", NULL, v) == -1 ||
            set_text(p, "source", "tencent.image", v) == -1)
                return -1;
        copy_nonempty_text(p, "label", root, "label");
        copy_nonempty_text(p, "sub_label", root, "subLabel");
        copy_nonempty_text(p, "img", root, "img");
        copy_excerpt(p, "reason", root, "ocrMsg", FIELD_MAX_REASON);
        copy_score(p, root, "score");
        return 0;
}

/*
 * 315: the documented verdict is HitFlag (0/1) with Score and label; no suggestion is
 * documented. A vendor suggestion is kept when one is sent; otherwise a hit becomes "Review"
 * (a person decides; nothing is punished on a flag alone) and no hit "Pass".
 */
static int fill_audit_audio(const cJSON *root, struct payload *p, struct webhook_verdict *v)
{
        int64_t hit;

        if (set_text(p, "source", "tencent.audio", v) == -1)
                return -1;
        copy_nonempty_text(p, "suggestion", root, "suggestion");
        if (!payload_get(p, "suggestion")) {
                if (tencent_read_int64(tencent_member(root, "HitFlag"), &hit) == -1 ||
                    (hit != 0 && hit != 1))
                        return refuse_field(v, root, "HitFlag", "0 or 1");
                if (set_text(p, "suggestion", hit ? "Review" : "Pass", v) == -1)
                        return -1;
        }
        copy_nonempty_text(p, "label", root, "label");
        copy_nonempty_text(p, "sub_label", root, "SubTag");
        copy_excerpt(p, "reason", root, "asr_text", FIELD_MAX_REASON);
        copy_score(p, root, "Score");
        return 0;
}

static const struct mapping mappings[] = {
        {TENCENT_STREAM_BEGIN, "stream.begin", TOPIC_STREAM, "StreamBegin", "stream_id", NULL,
         fill_stream_begin},
        {TENCENT_STREAM_END, "stream.end", TOPIC_STREAM, "StreamEnd", "stream_id", NULL,
         fill_stream_end},
        {TENCENT_RECORD_FILE, "record.file", TOPIC_RECORD, "RecordFile", "stream_id", "end_time",
         fill_record_file},
        {TENCENT_RECORD_STATUS, "record.status", TOPIC_RECORD, "RecordStatus", "stream_id", NULL,
         fill_record_status},
        {TENCENT_SNAPSHOT, "snapshot", TOPIC_SNAPSHOT, "Snapshot", "stream_id", "create_time",
         fill_snapshot},
        {TENCENT_AUDIT_IMAGE, "audit.image", TOPIC_AUDIT, "AuditVerdict", "streamId",
         "screenshotTime", fill_audit_image},
        {TENCENT_AUDIT_AUDIO, "audit.audio", TOPIC_AUDIT, "AuditVerdict", "stream_id", NULL,
         fill_audit_audio},
};

/*
 * Kept, not acted on yet (321 push abnormal, 314 relay, 348 live summary, unknown types):
 * the consumers of live.other read the raw body.
 */
static const struct mapping other_mapping = {-1, "other", TOPIC_OTHER, NULL, NULL, NULL, NULL};

const struct mapping *tencent_mapping_of(long long type)
{
        for (size_t i = 0; i < sizeof(mappings) / sizeof(mappings[0]); i++)
                if (mappings[i].type == type)
                        return &mappings[i];
        return &other_mapping;
}

int tencent_map_payload(const cJSON *root, const struct mapping *m, struct webhook_event *ev,
                        struct webhook_verdict *v)
{
        struct payload *p;

        ev->event_type = m->event_type;
        ev->topic = m->topic;
        ev->payload_name = m->payload_name;
        if (!m->fill)
                return 0;
        if (!(p = payload_new()))
                return webhook_refuse(v, 500, NULL, "out of memory");
        if (m->fill(root, p, v) == -1) {
                payload_destroy(p);
                return -1;
        }
        if (p->has_failed) {
                payload_destroy(p);
                return webhook_refuse(v, 500, NULL, "out of memory");
        }
        ev->fields = p;
        return 0;
}
