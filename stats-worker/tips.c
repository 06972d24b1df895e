/* tips.c: tips into the stats_tip ledger and hourly_reward_stats, once each. */
#include "tips.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#define HOUR_MS 3600000LL

struct tips {
        struct db *db;
        struct db_stmt *insert_tip, *add_hourly, *anchor_gender, *audience_gender, *learn_gender;
};

/* A Reward payload as the ledger needs it; strings borrowed from the event. */
struct reward {
        const char *tip_id, *audience_id, *anchor_id, *room_id;
        const char *anchor_gender, *audience_gender; /* NULL when absent */
        long long amount, gift_count, ts_ms;
};

struct tips *tips_new(struct db *db)
{
        struct tips *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->db = db;
        /* A no-op update on a duplicate: affected rows say whether this call recorded the tip,
         * and unlike INSERT IGNORE, bad data is still an error rather than a warning. */
        t->insert_tip = db_stmt(
                db,
                "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, room_id, amount, gift_count, "
                "anchor_gender, audience_gender, tipped_at, hour) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(?)) ON DUPLICATE KEY UPDATE trace_id = trace_id");
        t->add_hourly = db_stmt(
                db,
                "INSERT INTO hourly_reward_stats (hour, anchor_id, anchor_gender, audience_gender, amount_sum, "
                "reward_count) VALUES (FROM_UNIXTIME(?), ?, ?, ?, ?, 1) ON DUPLICATE KEY UPDATE "
                "amount_sum = amount_sum + VALUES(amount_sum), reward_count = reward_count + 1");
        t->anchor_gender = db_stmt(db, "SELECT gender FROM anchors WHERE anchor_id = ?");
        t->audience_gender = db_stmt(db, "SELECT gender FROM audiences WHERE audience_id = ?");
        t->learn_gender = db_stmt(
                db,
                "INSERT INTO audiences (audience_id, gender) VALUES (?, ?) ON DUPLICATE KEY UPDATE gender = VALUES(gender)");
        if (!t->insert_tip || !t->add_hourly || !t->anchor_gender || !t->audience_gender ||
            !t->learn_gender) {
                tips_destroy(t);
                return NULL;
        }
        return t;
}

void tips_destroy(struct tips *t)
{
        free(t); /* the statements belong to the db */
}

static enum apply_result from_db(enum db_result r)
{
        return r == DB_OK || r == DB_DUPLICATE ? APPLY_DONE
               : r == DB_RETRY                 ? APPLY_RETRY
                                               : APPLY_PERMANENT;
}

/* ------------------------------------------------------------------ reading the event */

static const char *payload_str(const struct event *ev, const char *key)
{
        const char *s = json_string_value(json_object_get(ev->payload, key));

        return s && *s ? s : NULL;
}

static int read_reward(const struct event *ev, struct reward *rw, char *errstr, size_t errstr_size)
{
        memset(rw, 0, sizeof(*rw));
        if (!ev->payload_name || strcmp(ev->payload_name, "Reward") != 0) {
                snprintf(errstr, errstr_size, "event_type %s with payload %s is not a tip",
                         ev->event_type, ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        rw->tip_id = payload_str(ev, "tip_id");
        rw->audience_id = payload_str(ev, "audience_id");
        rw->anchor_id = payload_str(ev, "anchor_id");
        rw->room_id = payload_str(ev, "room_id");
        rw->anchor_gender = payload_str(ev, "anchor_gender");
        rw->audience_gender = payload_str(ev, "audience_gender");
        rw->amount = (long long)json_integer_value(json_object_get(ev->payload, "amount"));
        rw->gift_count = (long long)json_integer_value(json_object_get(ev->payload, "gift_count"));
        rw->ts_ms = (long long)json_integer_value(json_object_get(ev->payload, "ts_ms"));
        if (!rw->tip_id || !rw->audience_id || !rw->anchor_id || !rw->room_id) {
                snprintf(errstr, errstr_size,
                         "tip without tip_id, audience_id, anchor_id or room_id");
                return -1;
        }
        if (rw->amount <= 0 || rw->gift_count < 0 || rw->ts_ms <= 0) {
                snprintf(errstr, errstr_size,
                         "tip %s: amount %lld, gift_count %lld or ts_ms %lld out of range",
                         rw->tip_id, rw->amount, rw->gift_count, rw->ts_ms);
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------ genders */

/* Only male and female tell something; unknown, absent or anything else asks the file. */
static bool is_stated(const char *gender)
{
        return gender && (strcmp(gender, "male") == 0 || strcmp(gender, "female") == 0);
}

/* The gender on file for id, or "unknown"; out holds at least 8 bytes. */
static enum db_result gender_on_file(struct tips *t, struct db_stmt *st, const char *id, char *out,
                                     size_t out_size, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(id)};
        struct db_col col = {.type = DB_PARAM_STR, .s = out, .s_size = out_size};
        bool found = false;
        enum db_result r = db_query_row(t->db, st, p, 1, &col, 1, &found, errstr, errstr_size);

        if (r != DB_OK || !found || col.is_null || !*out)
                snprintf(out, out_size, "unknown");
        return r;
}

static enum db_result resolve_gender(struct tips *t, struct db_stmt *st, const char *stated,
                                     const char *id, char *out, size_t out_size, char *errstr,
                                     size_t errstr_size)
{
        if (is_stated(stated)) {
                snprintf(out, out_size, "%s", stated);
                return DB_OK;
        }
        return gender_on_file(t, st, id, out, out_size, errstr, errstr_size);
}

/* ------------------------------------------------------------------ applying */

/* Records the tip in the ledger; *is_new is false when it was there already. */
static enum db_result record_tip(struct tips *t, const struct event *ev, const struct reward *rw,
                                 const char *anchor_gender, const char *audience_gender,
                                 bool *is_new, char *errstr, size_t errstr_size)
{
        long long hour_s = rw->ts_ms / HOUR_MS * (HOUR_MS / 1000);
        struct db_param p[] = {
                DB_STR(rw->tip_id),     DB_STR(ev->event_id),  DB_STR(rw->audience_id),
                DB_STR(rw->anchor_id),  DB_STR(rw->room_id),   DB_I64(rw->amount),
                DB_I64(rw->gift_count), DB_STR(anchor_gender), DB_STR(audience_gender),
                DB_I64(rw->ts_ms),      DB_I64(hour_s)};
        unsigned long long affected = 0;
        enum db_result r =
                db_exec(t->db, t->insert_tip, p, 11, &affected, NULL, errstr, errstr_size);

        *is_new = r == DB_OK && affected == 1;
        return r;
}

static enum db_result add_to_hour(struct tips *t, const struct reward *rw,
                                  const char *anchor_gender, const char *audience_gender,
                                  char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_I64(rw->ts_ms / HOUR_MS * (HOUR_MS / 1000)),
                               DB_STR(rw->anchor_id), DB_STR(anchor_gender),
                               DB_STR(audience_gender), DB_I64(rw->amount)};

        return db_exec(t->db, t->add_hourly, p, 5, NULL, NULL, errstr, errstr_size);
}

enum apply_result tips_apply(struct tips *t, const struct event *ev, struct tip *tip, bool *is_new,
                             char *errstr, size_t errstr_size)
{
        struct reward rw;
        char anchor_gender[16], audience_gender[16];
        enum db_result r;

        *is_new = false;
        if (read_reward(ev, &rw, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        *tip = (struct tip){rw.tip_id, rw.room_id, rw.ts_ms};
        if ((r = resolve_gender(t, t->anchor_gender, rw.anchor_gender, rw.anchor_id, anchor_gender,
                                sizeof(anchor_gender), errstr, errstr_size)) != DB_OK ||
            (r = resolve_gender(t, t->audience_gender, rw.audience_gender, rw.audience_id,
                                audience_gender, sizeof(audience_gender), errstr, errstr_size)) !=
                    DB_OK ||
            (r = record_tip(t, ev, &rw, anchor_gender, audience_gender, is_new, errstr,
                            errstr_size)) != DB_OK)
                return from_db(r);
        if (!*is_new)
                return APPLY_DONE; /* a replay: the hour has it already */
        if ((r = add_to_hour(t, &rw, anchor_gender, audience_gender, errstr, errstr_size)) != DB_OK)
                return from_db(r);
        if (is_stated(rw.audience_gender)) {
                struct db_param p[] = {DB_STR(rw.audience_id), DB_STR(rw.audience_gender)};

                if ((r = db_exec(t->db, t->learn_gender, p, 2, NULL, NULL, errstr, errstr_size)) !=
                    DB_OK)
                        return from_db(r);
        }
        return APPLY_DONE;
}
