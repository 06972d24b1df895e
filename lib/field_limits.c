/* field_limits.c: the table of field widths shared by the receiver and the schema test. */
#include "field_limits.h"

const struct field_limit field_limits[] = {
        {"anchor_id", FIELD_MAX_ANCHOR_ID,
         "anchors.anchor_id recharge.anchor_id settlement.anchor_id withdrawal.anchor_id "
         "live_streams.anchor_id live_audit_logs.anchor_id"},
        {"audience_id", FIELD_MAX_AUDIENCE_ID, "recharge.audience_id audience_profile.audience_id"},
        {"room_id", FIELD_MAX_ROOM_ID, "recharge.room_id live_room_realtime.room_id"},
        {"stream_id", FIELD_MAX_STREAM_ID,
         "live_streams.stream_id live_events.stream_id live_records.stream_id "
         "live_audit_logs.stream_id"},
        {"trace_id", FIELD_MAX_TIP_ID, "recharge.trace_id settlement_detail.trace_id"},
        {"request_id", FIELD_MAX_REQUEST_ID, "withdrawal.request_id"},
        {"gift_id", FIELD_MAX_GIFT_ID, "recharge.gift_id"},
        {"reason", FIELD_MAX_REASON, "live_audit_logs.reason"},
        {"sequence", FIELD_MAX_SESSION, "live_streams.vendor_session"},
        {NULL, 0, NULL},
};

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
