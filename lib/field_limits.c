/* field_limits.c: the table of field widths shared by the receiver and the schema test. */
#include "field_limits.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

const struct field_limit field_limits[] = {
        {"anchor_id", FIELD_MAX_ANCHOR_ID,
         "anchors.anchor_id recharge.anchor_id settlement.anchor_id withdrawal.anchor_id "
         "live_streams.anchor_id live_audit_logs.anchor_id anchor_tags.anchor_id "
         "notify_outbox.anchor_id"},
        {"audience_id", FIELD_MAX_AUDIENCE_ID,
         "recharge.audience_id audience_profile.audience_id audiences.audience_id "
         "audience_tags.audience_id"},
        {"room_id", FIELD_MAX_ROOM_ID,
         "recharge.room_id live_room_realtime.room_id live_streams.room_id "
         "audience_visit.room_id live_watch_history.room_id"},
        {"stream_id", FIELD_MAX_STREAM_ID,
         "live_streams.stream_id live_events.stream_id live_records.stream_id "
         "live_audit_logs.stream_id live_snapshots.stream_id live_watch_history.stream_id"},
        {"trace_id", FIELD_MAX_TIP_ID, "recharge.trace_id settlement_detail.trace_id"},
        {"request_id", FIELD_MAX_REQUEST_ID, "withdrawal.request_id"},
        {"gift_id", FIELD_MAX_GIFT_ID, "recharge.gift_id"},
        {"reason", FIELD_MAX_REASON, "live_audit_logs.reason"},
        {"sequence", FIELD_MAX_SESSION, "live_streams.vendor_session"},
        {"session_key", FIELD_MAX_SESSION, "live_records.session_key"},
        {"file_id", FIELD_MAX_FILE_ID, "live_records.file_id"},
        {"video_url", FIELD_MAX_URL, "live_records.video_url"},
        {"pic_url", FIELD_MAX_URL, "live_snapshots.pic_url live_streams.cover_url"},
        {"pic_full_url", FIELD_MAX_URL, "live_snapshots.pic_full_url"},
        {"client_id", FIELD_MAX_CLIENT_ID,
         "stats_viewer_event.client_id live_watch_history.audience_id"},
        {"label", FIELD_MAX_LABEL, "live_audit_logs.label"},
        {"source", FIELD_MAX_VERDICT, "live_audit_logs.source"},
        {"suggestion", FIELD_MAX_VERDICT, "live_audit_logs.suggestion"},
        {"file_format", FIELD_MAX_FORMAT, "live_records.file_format"},
        {"subject_id", FIELD_MAX_ANCHOR_ID, "anchors.anchor_id audiences.audience_id"},
        {"age_band", FIELD_MAX_AGE_BAND, "anchors.age_band audiences.age_band"},
        {"region", FIELD_MAX_REGION, "anchors.region audiences.region"},
        {"tag", FIELD_MAX_TAG, "tags.name tag_affinity.anchor_tag tag_affinity.audience_tag"},
        {NULL, 0, NULL},
};

/*
 * field_limit_of() is asked for every text field of every request, mostly for names that have
 * no row: a walk over the table cost a strcmp() per row. Instead the rows sit once in an
 * open-addressed hash of their names, built on first use; a name is hashed once and compared
 * only with a row whose hash is the same.
 */
#define ROWS  (sizeof(field_limits) / sizeof(field_limits[0]) - 1)
#define SLOTS 64 /* a power of two, at least twice the rows, so a probe ends soon */
_Static_assert(2 * ROWS <= SLOTS, "field_limits: more rows than the index holds");

static struct {
        uint32_t hash;
        const struct field_limit *row; /* NULL: an empty slot, where a probe ends */
} slots[SLOTS];
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

/* FNV-1a of a name's bytes. */
static uint32_t name_hash(const char *s)
{
        uint32_t h = 2166136261u;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 16777619u;
        return h;
}

static void slots_build(void)
{
        for (const struct field_limit *f = field_limits; f->field; f++) {
                const uint32_t h = name_hash(f->field);
                size_t i = h & (SLOTS - 1);

                while (slots[i].row)
                        i = (i + 1) & (SLOTS - 1);
                slots[i].hash = h;
                slots[i].row = f;
        }
}

const struct field_limit *field_limit_of(const char *field)
{
        uint32_t h;

        if (!field)
                return NULL;
        pthread_once(&slots_once, slots_build);
        h = name_hash(field);
        for (size_t i = h & (SLOTS - 1); slots[i].row; i = (i + 1) & (SLOTS - 1))
                if (slots[i].hash == h && strcmp(slots[i].row->field, field) == 0)
                        return slots[i].row;
        return NULL;
}

bool field_fits(const char *s, size_t len, size_t max_chars)
{
        size_t chars = 0;

        if (len <= max_chars) /* a character is at least one byte */
                return true;
        for (size_t i = 0; i < len; i++)
                if (((unsigned char)s[i] & 0xc0) != 0x80) /* not a continuation byte */
                        chars++;
        return chars <= max_chars;
}
