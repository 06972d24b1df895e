/* tips.c: tips into the stats_tip ledger and hourly_reward_stats, once each. */
#include "tips.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
#include "reward.h"
#include "role_kit.h"

#define HOUR_MS 3600000LL

struct tips {
        struct db *db;
        struct db_stmt *insert_tip, *add_hourly, *anchor_gender, *audience_gender, *learn_gender;
        struct role_gate gate; /* unread, or stats_tip looked up first (role_kit.h) */
};

/* A Reward payload as the ledger needs it; strings borrowed from the event. */
struct reward {
        const char *tip_id, *audience_id, *anchor_id, *room_id;
        const char *anchor_gender, *audience_gender; /* NULL when absent */
        long long amount, gift_count, ts_ms;
};

struct tips *tips_new(struct db *db, struct metrics *metrics)
{
        struct tips *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->db = db;
        role_gate_init(&t->gate, metrics, "liveflow_stats_tip_batches_total",
                       "Batches of tips written set-based, by way: unread (written without looking "
                       "stats_tip up first), read_first (looked up first, after tips held before "
                       "were met), conflict (written unread, met a tip held before, looked up)");
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

/* ------------------------------------------------------------------ reading the event */

static const char *payload_text(const struct event *ev, const char *key)
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
        if (reward_check(ev, errstr, errstr_size) == -1) /* what every money role accepts */
                return -1;
        rw->tip_id = payload_text(ev, "tip_id");
        rw->audience_id = payload_text(ev, "audience_id");
        rw->anchor_id = payload_text(ev, "anchor_id");
        rw->room_id = payload_text(ev, "room_id");
        rw->anchor_gender = payload_text(ev, "anchor_gender");
        rw->audience_gender = payload_text(ev, "audience_gender");
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
                return apply_from_db(r);
        if (!*is_new)
                return APPLY_DONE; /* a replay: the hour has it already */
        if ((r = add_to_hour(t, &rw, anchor_gender, audience_gender, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        if (is_stated(rw.audience_gender)) {
                struct db_param p[] = {DB_STR(rw.audience_id), DB_STR(rw.audience_gender)};

                if ((r = db_exec(t->db, t->learn_gender, p, 2, NULL, NULL, errstr, errstr_size)) !=
                    DB_OK)
                        return apply_from_db(r);
        }
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ a batch at once */

/*
 * tips_apply() for a whole batch in up to six statements instead of up to five per tip: which
 * tips stats_tip holds already (skipped while batches meet none, see write_tips()), the genders on
 * file of the anchors and audiences the new tips do not state, one multi-row INSERT of the new
 * tips, one upsert of the hourly sums grouped here per (hour, anchor, genders), and one upsert of
 * the audience genders the new tips state. Ids are matched byte for byte; ids that MySQL's
 * collation could match to one another, an id MySQL returns in another spelling, a tip recorded
 * meanwhile, an overflowing sum or any statement error roll the batch back to tips_apply() per tip.
 */
struct batch_tip {
        struct reward rw;
        const struct event *ev;
        bool is_valid, is_new;
        const char *anchor_gender, *audience_gender; /* resolved, for the new ones */
        char audience_on_file[16];                   /* audience_gender when the tip states none */
};

/* An anchor or audience id of the new tips, with its gender (on file, then learned). */
struct batch_id {
        const char *id;
        char gender[16];
        char on_file[16]; /* audiences: the gender on file before the batch */
        bool is_learned;  /* a new tip stated it: it goes on file (unless it is there already) */
};

/* A row of hourly_reward_stats and what the new tips add to it. */
struct batch_hour {
        long long hour_s, amount, count;
        const char *anchor_id, *anchor_gender, *audience_gender;
};

struct tip_batch {
        struct tips *t;
        struct batch_tip *tips;
        struct keyset ids; /* tip_ids of the valid tips */
        struct batch_id *anchors, *audiences;
        struct batch_hour *hours;
        const char **scratch; /* n: ids to sort */
        size_t n, valid, anchor_cnt, audience_cnt, hour_cnt;
        bool is_mismatch; /* MySQL returned an id we cannot match byte for byte */
        struct db_text sql;
};

/* Reads every tip; invalid ones are refused at once (nothing was written for them). */
static void read_batch(struct tip_batch *b, struct apply_slot *const *slots)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_tip *bt = &b->tips[i];

                bt->ev = &slots[i]->rec->ev;
                if (read_reward(bt->ev, &bt->rw, slots[i]->error, slots[i]->error_size) == -1) {
                        slots[i]->result = APPLY_PERMANENT;
                        continue;
                }
                bt->is_valid = true;
                b->valid++;
                keyset_add(&b->ids, bt->rw.tip_id, i);
        }
        keyset_sort(&b->ids);
}

/*
 * Which tips stats_tip holds already; the first copy of each other tip_id is new (copies of
 * one tip_id sort in batch order). *held: how many it holds.
 */
static enum db_result find_new_tips(struct tip_batch *b, size_t *held, char *errstr,
                                    size_t errstr_size)
{
        struct keyset *ks = &b->ids;
        enum db_result r;

        if ((r = keyset_find_known(ks, b->t->db, &b->sql,
                                   "SELECT trace_id FROM stats_tip WHERE trace_id IN ", errstr,
                                   errstr_size)) != DB_OK)
                return r;
        b->is_mismatch = ks->is_mismatch;
        *held = 0;
        for (size_t i = 0; i < ks->n; i++) {
                b->tips[ks->items[i].index].is_new =
                        keyset_is_first(ks, i) && !ks->items[i].is_known;
                *held += ks->items[i].is_known;
        }
        return DB_OK;
}

/* As find_new_tips() when stats_tip holds none of the batch: the first copy of each is new. */
static void mark_first_copies(struct tip_batch *b)
{
        struct keyset *ks = &b->ids;

        for (size_t i = 0; i < ks->n; i++)
                b->tips[ks->items[i].index].is_new = keyset_is_first(ks, i);
}

/* ------------------------------------------------------------------ batch genders */

static int cmp_id_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct batch_id *)elem)->id);
}

static struct batch_id *find_id(struct batch_id *ids, size_t n, const char *id)
{
        return bsearch(id, ids, n, sizeof(*ids), cmp_id_key);
}

/* The distinct ids the scratch holds (cnt of them), in byte order, each "unknown" for now. */
static size_t collect_ids(struct tip_batch *b, size_t cnt, struct batch_id *out)
{
        size_t n = role_distinct(b->scratch, cnt);

        for (size_t i = 0; i < n; i++)
                out[i] = (struct batch_id){.id = b->scratch[i], .gender = "unknown"};
        return n;
}

/*
 * The anchors whose gender the new tips do not state, and the audiences they do not state or
 * put on file. @returns false when two of either might be one id to MySQL.
 */
static bool collect_genders(struct tip_batch *b)
{
        size_t cnt = 0;

        for (size_t i = 0; i < b->n; i++)
                if (b->tips[i].is_new && !is_stated(b->tips[i].rw.anchor_gender))
                        b->scratch[cnt++] = b->tips[i].rw.anchor_id;
        b->anchor_cnt = collect_ids(b, cnt, b->anchors);
        if (keys_may_collide(b->scratch, b->anchor_cnt))
                return false;
        cnt = 0;
        for (size_t i = 0; i < b->n; i++)
                if (b->tips[i].is_new)
                        b->scratch[cnt++] = b->tips[i].rw.audience_id;
        b->audience_cnt = collect_ids(b, cnt, b->audiences);
        return !keys_may_collide(b->scratch, b->audience_cnt);
}

struct gender_rows {
        struct tip_batch *b;
        struct batch_id *ids;
        size_t n;
};

static void on_gender(const struct db_col *cols, void *arg)
{
        struct gender_rows *g = arg;
        struct batch_id *id = find_id(g->ids, g->n, cols[0].s);

        if (!id) {
                g->b->is_mismatch = true;
                return;
        }
        if (!cols[1].is_null && *cols[1].s)
                snprintf(id->gender, sizeof(id->gender), "%s", cols[1].s);
}

/* gender_on_file() for n ids at once: SELECT id_col, gender FROM table WHERE id_col IN (...). */
static enum db_result genders_on_file(struct tip_batch *b, const char *table, const char *id_col,
                                      struct batch_id *ids, size_t n, char *errstr,
                                      size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1], gender[16];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = gender, .s_size = sizeof(gender)}};
        struct gender_rows g = {b, ids, n};

        if (!n)
                return DB_OK;
        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT %s, gender FROM %s WHERE %s IN (", id_col, table, id_col);
        for (size_t i = 0; i < n; i++) {
                db_text_add(&b->sql, i ? ", " : "");
                db_text_str(b->t->db, &b->sql, ids[i].id);
        }
        db_text_add(&b->sql, ")");
        return db_text_query(b->t->db, &b->sql, cols, 2, on_gender, &g, errstr, errstr_size);
}

/*
 * resolve_gender() for every new tip in batch order: an audience gender a new tip states goes
 * on file at once, so a later tip of that audience that states none takes it, as one at a time.
 */
static void resolve_genders(struct tip_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_tip *bt = &b->tips[i];
                struct batch_id *aud;

                if (!bt->is_new)
                        continue;
                bt->anchor_gender =
                        is_stated(bt->rw.anchor_gender)
                                ? bt->rw.anchor_gender
                                : find_id(b->anchors, b->anchor_cnt, bt->rw.anchor_id)->gender;
                aud = find_id(b->audiences, b->audience_cnt, bt->rw.audience_id);
                if (is_stated(bt->rw.audience_gender)) {
                        snprintf(aud->gender, sizeof(aud->gender), "%s", bt->rw.audience_gender);
                        aud->is_learned = true;
                        bt->audience_gender = bt->rw.audience_gender;
                } else { /* a copy: a later tip of the batch may state another gender */
                        snprintf(bt->audience_on_file, sizeof(bt->audience_on_file), "%s",
                                 aud->gender);
                        bt->audience_gender = bt->audience_on_file;
                }
        }
}

/* ------------------------------------------------------------------ batch writes */

/* One row of insert_tip. */
static void add_tip_row(struct tip_batch *b, const struct batch_tip *bt)
{
        struct db *db = b->t->db;
        const struct reward *rw = &bt->rw;
        const char *ids[] = {rw->tip_id, bt->ev->event_id, rw->audience_id, rw->anchor_id,
                             rw->room_id};
        const char *genders[] = {bt->anchor_gender, bt->audience_gender};

        db_text_add(&b->sql, "(");
        role_text_strs(db, &b->sql, ids, 5);
        db_text_add(&b->sql, ", %lld, %lld, ", rw->amount, rw->gift_count);
        role_text_strs(db, &b->sql, genders, 2);
        db_text_add(&b->sql, ", FROM_UNIXTIME(%lld / 1000), FROM_UNIXTIME(%lld))", rw->ts_ms,
                    rw->ts_ms / HOUR_MS * (HOUR_MS / 1000));
}

/* insert_tip for every new tip. A plain INSERT: a duplicate key means another transaction
 * recorded one of the tips meanwhile (or MySQL matched two ids), and the batch goes one tip at
 * a time. */
static enum db_result insert_new_tips(struct tip_batch *b, char *errstr, size_t errstr_size)
{
        bool is_first = true;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT INTO stats_tip (trace_id, event_id, audience_id, anchor_id, "
                             "room_id, amount, gift_count, anchor_gender, audience_gender, "
                             "tipped_at, hour) VALUES ");
        for (size_t i = 0; i < b->n; i++) {
                if (!b->tips[i].is_new)
                        continue;
                db_text_add(&b->sql, is_first ? "" : ", ");
                is_first = false;
                add_tip_row(b, &b->tips[i]);
        }
        return db_text_exec(b->t->db, &b->sql, NULL, errstr, errstr_size);
}

static int cmp_hour(const void *a, const void *b)
{
        const struct batch_hour *x = a, *y = b;
        int c;

        if (x->hour_s != y->hour_s)
                return (x->hour_s > y->hour_s) - (x->hour_s < y->hour_s);
        if ((c = strcmp(x->anchor_id, y->anchor_id)) ||
            (c = strcmp(x->anchor_gender, y->anchor_gender)))
                return c;
        return strcmp(x->audience_gender, y->audience_gender);
}

/*
 * The hourly rows of the new tips, each with its sum and count, in key order (so that copies
 * lock them in one order). @returns false when a row's sum overflows (add_hourly refuses the
 * tip that does, one at a time).
 */
static bool collect_hours(struct tip_batch *b)
{
        size_t n = 0;

        for (size_t i = 0; i < b->n; i++) {
                const struct batch_tip *bt = &b->tips[i];

                if (bt->is_new)
                        b->hours[n++] =
                                (struct batch_hour){bt->rw.ts_ms / HOUR_MS * (HOUR_MS / 1000),
                                                    bt->rw.amount,
                                                    1,
                                                    bt->rw.anchor_id,
                                                    bt->anchor_gender,
                                                    bt->audience_gender};
        }
        qsort(b->hours, n, sizeof(*b->hours), cmp_hour);
        b->hour_cnt = 0;
        for (size_t i = 0; i < n; i++) {
                struct batch_hour *last = b->hour_cnt ? &b->hours[b->hour_cnt - 1] : NULL;

                if (!last || cmp_hour(last, &b->hours[i]) != 0) {
                        b->hours[b->hour_cnt++] = b->hours[i];
                        continue;
                }
                last->count++;
                if (__builtin_add_overflow(last->amount, b->hours[i].amount, &last->amount))
                        return false;
        }
        return true;
}

/* add_hourly for every row at once. */
static enum db_result add_to_hours(struct tip_batch *b, char *errstr, size_t errstr_size)
{
        struct db *db = b->t->db;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT INTO hourly_reward_stats (hour, anchor_id, anchor_gender, "
                             "audience_gender, amount_sum, reward_count) VALUES ");
        for (size_t i = 0; i < b->hour_cnt; i++) {
                const struct batch_hour *h = &b->hours[i];
                const char *key[] = {h->anchor_id, h->anchor_gender, h->audience_gender};

                db_text_add(&b->sql, "%s(FROM_UNIXTIME(%lld), ", i ? ", " : "", h->hour_s);
                role_text_strs(db, &b->sql, key, 3);
                db_text_add(&b->sql, ", %lld, %lld)", h->amount, h->count);
        }
        db_text_add(&b->sql, " ON DUPLICATE KEY UPDATE amount_sum = amount_sum + "
                             "VALUES(amount_sum), reward_count = reward_count + "
                             "VALUES(reward_count)");
        return db_text_exec(db, &b->sql, NULL, errstr, errstr_size);
}

/*
 * learn_gender for every audience whose gender a new tip states (the last one stated), but
 * for those whose row says so already: a fan tips many times and states the same gender each
 * time, and the upsert would lock and rewrite the row for nothing.
 */
static enum db_result learn_genders(struct tip_batch *b, char *errstr, size_t errstr_size)
{
        bool is_first = true;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT INTO audiences (audience_id, gender) VALUES ");
        for (size_t i = 0; i < b->audience_cnt; i++) {
                if (!b->audiences[i].is_learned ||
                    strcmp(b->audiences[i].gender, b->audiences[i].on_file) == 0)
                        continue;
                const char *row[] = {b->audiences[i].id, b->audiences[i].gender};

                db_text_add(&b->sql, is_first ? "(" : ", (");
                is_first = false;
                role_text_strs(b->t->db, &b->sql, row, 2);
                db_text_add(&b->sql, ")");
        }
        if (is_first)
                return DB_OK;
        db_text_add(&b->sql, " ON DUPLICATE KEY UPDATE gender = VALUES(gender)");
        return db_text_exec(b->t->db, &b->sql, NULL, errstr, errstr_size);
}

/* Everything after find_new_tips(), when some tip is new; ids MySQL may match other than byte
 * for byte go to tips_apply() per tip. */
static enum db_result write_new_tips(struct tip_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        if (!collect_genders(b))
                return role_batch_mismatch(errstr, errstr_size);
        if ((r = genders_on_file(b, "anchors", "anchor_id", b->anchors, b->anchor_cnt, errstr,
                                 errstr_size)) != DB_OK ||
            (r = genders_on_file(b, "audiences", "audience_id", b->audiences, b->audience_cnt,
                                 errstr, errstr_size)) != DB_OK)
                return r;
        if (b->is_mismatch)
                return role_batch_mismatch(errstr, errstr_size);
        for (size_t i = 0; i < b->audience_cnt; i++)
                memcpy(b->audiences[i].on_file, b->audiences[i].gender,
                       sizeof(b->audiences[i].on_file));
        resolve_genders(b);
        if (!collect_hours(b)) {
                snprintf(errstr, errstr_size, "an hour's amounts overflow");
                return DB_FATAL;
        }
        if ((r = insert_new_tips(b, errstr, errstr_size)) != DB_OK ||
            (r = add_to_hours(b, errstr, errstr_size)) != DB_OK)
                return r;
        return learn_genders(b, errstr, errstr_size);
}

/* The batch with stats_tip looked up first (the way every batch went before write_unread()). */
static enum db_result write_read_first(void *arg, char *errstr, size_t errstr_size)
{
        struct tip_batch *b = arg;
        enum db_result r;
        size_t held = 0;
        bool any_new = false;

        if ((r = find_new_tips(b, &held, errstr, errstr_size)) == DB_OK && b->is_mismatch)
                r = role_batch_mismatch(errstr, errstr_size);
        if (r != DB_OK)
                return r;
        b->t->gate.is_reading_first = held > 0;
        for (size_t i = 0; i < b->n; i++)
                any_new |= b->tips[i].is_new;
        return any_new ? write_new_tips(b, errstr, errstr_size) : DB_OK;
}

/* The batch without the look-up: every first copy is new, until stats_tip says otherwise. */
static enum db_result write_unread(void *arg, char *errstr, size_t errstr_size)
{
        struct tip_batch *b = arg;

        mark_first_copies(b);
        return write_new_tips(b, errstr, errstr_size);
}

static void forget_unread(void *arg)
{
        ((struct tip_batch *)arg)->is_mismatch = false;
}

/*
 * Unread, or stats_tip looked up first (struct role_gate). Nothing of the batch's tips is
 * written before the INSERT into stats_tip (the gender look-ups are reads) and MySQL rolls a
 * failed statement back by itself, so the unread way needs no savepoint.
 */
static enum db_result write_tips(struct tip_batch *b, char *errstr, size_t errstr_size)
{
        static const struct role_gate_ways ways = {NULL, write_unread, forget_unread,
                                                   write_read_first};

        return role_gate_write(&b->t->gate, &ways, b->t->db, &b->sql, b, errstr, errstr_size);
}

static enum apply_result apply_batch(struct tip_batch *b, struct apply_slot *const *slots,
                                     struct tip *tips, bool *is_new, char *errstr,
                                     size_t errstr_size)
{
        enum db_result r;

        read_batch(b, slots);
        if (!b->valid)
                return APPLY_DONE;
        r = write_tips(b, errstr, errstr_size);
        if (r != DB_OK)
                return role_gate_result(r);
        for (size_t i = 0; i < b->n; i++) {
                const struct reward *rw = &b->tips[i].rw;

                tips[i] = (struct tip){rw->tip_id, rw->room_id, rw->ts_ms};
                is_new[i] = b->tips[i].is_new;
        }
        return APPLY_DONE;
}

enum apply_result tips_apply_many(struct tips *t, struct apply_slot *const *slots, size_t n,
                                  struct tip *tips, bool *is_new, char *errstr, size_t errstr_size)
{
        struct tip_batch b = {.t = t, .n = n};
        enum apply_result r = APPLY_RETRY;

        b.tips = calloc(n, sizeof(*b.tips));
        b.anchors = calloc(n, sizeof(*b.anchors));
        b.audiences = calloc(n, sizeof(*b.audiences));
        b.hours = calloc(n, sizeof(*b.hours));
        b.scratch = calloc(n, sizeof(*b.scratch));
        if (b.tips && b.anchors && b.audiences && b.hours && b.scratch &&
            keyset_init(&b.ids, n) == 0)
                r = apply_batch(&b, slots, tips, is_new, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        db_text_free(&b.sql);
        free(b.tips);
        keyset_free(&b.ids);
        free(b.anchors);
        free(b.audiences);
        free(b.hours);
        free(b.scratch);
        return r;
}
