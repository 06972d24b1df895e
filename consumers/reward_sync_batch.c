/*
 * reward_sync_batch.c: the reward-sync role a batch at once, apply_many() in MySQL
 * (publish_many() in Redis is in reward_sync_batch_publish.c; reward_apply() and
 * reward_publish() in reward_sync.c stay the fallback and the oracle,
 * tests/consumers/test_batch_oracle.c).
 */
#include "reward_sync_role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "role_kit.h"

/* ------------------------------------------------------------------ a batch at once (MySQL) */

/*
 * reward_apply() for a whole batch in five statements instead of five per tip: which tips
 * recharge holds already (skipped while batches meet none, see write_tips()), the live session of
 * each room, one upsert numbering every room's new tips (rooms in key order, so copies lock them in
 * one order), the numbers it reached, and one multi-row INSERT of the new tips with their numbers.
 * Ids are matched byte for byte; whatever MySQL's collation matches differently (ids differing only
 * in case), a tip recharge took meanwhile, or any statement error rolls the batch back to
 * reward_apply() per tip.
 */
struct batch_tip {
        struct tip t;
        struct apply_slot *slot;
        size_t index; /* batch order: ties keep it */
        bool is_valid, is_known, is_new;
        long long session_id, seq;
};

struct batch_room {
        const char *room_id;
        long long tips, amount, session_id, last_seq;
        bool has_session, has_seq;
};

struct reward_batch {
        struct reward_state *st;
        struct batch_tip *tips;
        struct batch_tip **by_id; /* valid tips by tip_id, then batch order */
        struct batch_room *rooms; /* rooms of the new tips, by room_id */
        const char **room_ids;    /* n: scratch for collect_rooms() */
        size_t n, valid, room_cnt;
        bool is_mismatch; /* MySQL returned an id we cannot match byte for byte */
        struct db_text sql;
};

static int cmp_tip_id(const void *a, const void *b)
{
        const struct batch_tip *x = *(struct batch_tip *const *)a,
                               *y = *(struct batch_tip *const *)b;
        int c = strcmp(x->t.tip_id, y->t.tip_id);

        return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int cmp_room_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct batch_room *)elem)->room_id);
}

/* The first valid tip of the batch with this tip_id, or NULL. */
static struct batch_tip *find_tip(const struct reward_batch *b, const char *tip_id)
{
        size_t lo = 0, hi = b->valid;

        while (lo < hi) { /* the lower bound: the first of equal ids is the earliest */
                size_t mid = lo + (hi - lo) / 2;

                if (strcmp(b->by_id[mid]->t.tip_id, tip_id) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < b->valid && strcmp(b->by_id[lo]->t.tip_id, tip_id) == 0 ? b->by_id[lo] : NULL;
}

static struct batch_room *find_room(const struct reward_batch *b, const char *room_id)
{
        return bsearch(room_id, b->rooms, b->room_cnt, sizeof(*b->rooms), cmp_room_key);
}

/* Reads every tip; invalid ones are refused at once (nothing was written for them). */
static void read_batch(struct reward_batch *b, struct apply_slot *slots)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_tip *bt = &b->tips[i];

                bt->slot = &slots[i];
                bt->index = i;
                if (reward_read_tip(&slots[i].rec->ev, &bt->t, slots[i].error,
                                    slots[i].error_size) == -1) {
                        slots[i].result = APPLY_PERMANENT;
                        continue;
                }
                bt->is_valid = true;
                b->by_id[b->valid++] = bt;
        }
        qsort(b->by_id, b->valid, sizeof(*b->by_id), cmp_tip_id);
}

/* Appends "(v1, v2, ...)" of every distinct tip_id of the batch. */
static void add_tip_ids(struct reward_batch *b)
{
        db_text_add(&b->sql, "(");
        for (size_t i = 0; i < b->valid; i++) {
                if (i && strcmp(b->by_id[i]->t.tip_id, b->by_id[i - 1]->t.tip_id) == 0)
                        continue;
                if (i)
                        db_text_add(&b->sql, ", ");
                db_text_str(b->st->db, &b->sql, b->by_id[i]->t.tip_id);
        }
        db_text_add(&b->sql, ")");
}

static void on_known_tip(const struct db_col *cols, void *arg)
{
        struct reward_batch *b = arg;
        struct batch_tip *bt = find_tip(b, cols[0].s);

        if (bt)
                bt->is_known = true;
        else
                b->is_mismatch = true;
}

/* As find_new_tips() when recharge holds none of the batch: the first copy of each is new. */
static void mark_first_copies(struct reward_batch *b)
{
        for (size_t i = 0; i < b->valid; i++)
                b->by_id[i]->is_new =
                        i == 0 || strcmp(b->by_id[i]->t.tip_id, b->by_id[i - 1]->t.tip_id) != 0;
}

/* Which tips recharge holds already; the first copy of each other tip_id is new. */
static enum db_result find_new_tips(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        char id[ID_MAX + 1];
        struct db_col col = {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)};
        enum db_result r;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT trace_id FROM recharge WHERE trace_id IN ");
        add_tip_ids(b);
        if ((r = db_text_query(b->st->db, &b->sql, &col, 1, on_known_tip, b, errstr,
                               errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < b->valid; i++) {
                struct batch_tip *bt = b->by_id[i];
                bool is_first = i == 0 || strcmp(bt->t.tip_id, b->by_id[i - 1]->t.tip_id) != 0;

                /* by_id sorts copies of one tip_id in batch order: the first is the new one. */
                bt->is_new = is_first && !find_tip(b, bt->t.tip_id)->is_known;
        }
        return DB_OK;
}

/*
 * The rooms of the new tips, each with its count and amount, in room_id order. @returns false
 * when a room's amounts overflow (number_tip() refuses the tip that does, one at a time).
 */
static bool collect_rooms(struct reward_batch *b, const char **ids)
{
        size_t n = 0;

        for (size_t i = 0; i < b->n; i++)
                if (b->tips[i].is_new)
                        ids[n++] = b->tips[i].t.room_id;
        n = role_distinct(ids, n);
        for (size_t i = 0; i < n; i++)
                b->rooms[b->room_cnt++] = (struct batch_room){.room_id = ids[i]};
        for (size_t i = 0; i < b->n; i++) {
                struct batch_room *room;

                if (!b->tips[i].is_new)
                        continue;
                room = find_room(b, b->tips[i].t.room_id);
                room->tips++;
                if (__builtin_add_overflow(room->amount, b->tips[i].t.amount, &room->amount))
                        return false;
        }
        return true;
}

/* Appends "(r1, r2, ...)" of the batch's rooms. */
static void add_room_ids(struct reward_batch *b)
{
        db_text_add(&b->sql, "(");
        for (size_t i = 0; i < b->room_cnt; i++) {
                if (i)
                        db_text_add(&b->sql, ", ");
                db_text_str(b->st->db, &b->sql, b->rooms[i].room_id);
        }
        db_text_add(&b->sql, ")");
}

static void on_live_session(const struct db_col *cols, void *arg)
{
        struct reward_batch *b = arg;
        struct batch_room *room = find_room(b, cols[0].s);

        if (!room) {
                b->is_mismatch = true;
                return;
        }
        if (room->has_session) /* newest first: the first row is the one live_session() takes */
                return;
        room->has_session = true;
        room->session_id = cols[1].is_null ? 0 : cols[1].i;
}

/* live_session() for every room at once. */
static enum db_result find_live_sessions(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        char room_id[ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = room_id, .s_size = sizeof(room_id)},
                                {.type = DB_PARAM_I64}};

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT room_id, session_id FROM live_streams WHERE room_id IN ");
        add_room_ids(b);
        db_text_add(&b->sql, " AND status = 'live' AND session_id IS NOT NULL "
                             "ORDER BY started_at DESC");
        return db_text_query(b->st->db, &b->sql, cols, 2, on_live_session, b, errstr, errstr_size);
}

/* number_tip() for every room at once: each room's counter moves by its count of new tips. */
static enum db_result number_rooms(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT INTO live_room_sync (room_id, tip_seq, earnings_pending, "
                             "count_pending, pending_since) VALUES ");
        for (size_t i = 0; i < b->room_cnt; i++) {
                db_text_add(&b->sql, i ? ", (" : "(");
                db_text_str(b->st->db, &b->sql, b->rooms[i].room_id);
                db_text_add(&b->sql, ", %lld, %lld, %lld, NOW(3))", b->rooms[i].tips,
                            b->rooms[i].amount, b->rooms[i].tips);
        }
        db_text_add(&b->sql, " ON DUPLICATE KEY UPDATE tip_seq = tip_seq + VALUES(tip_seq), "
                             "earnings_pending = earnings_pending + VALUES(earnings_pending), "
                             "count_pending = count_pending + VALUES(count_pending), "
                             "pending_since = COALESCE(pending_since, VALUES(pending_since))");
        return db_text_exec(b->st->db, &b->sql, NULL, errstr, errstr_size);
}

static void on_room_seq(const struct db_col *cols, void *arg)
{
        struct reward_batch *b = arg;
        struct batch_room *room = find_room(b, cols[0].s);

        if (!room || room->has_seq) {
                b->is_mismatch = true;
                return;
        }
        room->has_seq = true;
        room->last_seq = cols[1].i;
}

/*
 * The numbers the upsert reached. This transaction holds the rooms' rows since the upsert, so
 * a room's new tips are last - tips + 1 .. last, handed out in batch order.
 */
static enum db_result read_room_seqs(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        char room_id[ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = room_id, .s_size = sizeof(room_id)},
                                {.type = DB_PARAM_I64}};
        enum db_result r;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT room_id, tip_seq FROM live_room_sync WHERE room_id IN ");
        add_room_ids(b);
        if ((r = db_text_query(b->st->db, &b->sql, cols, 2, on_room_seq, b, errstr, errstr_size)) !=
            DB_OK)
                return r;
        for (size_t i = 0; i < b->room_cnt; i++) {
                b->is_mismatch |= !b->rooms[i].has_seq;
                b->rooms[i].last_seq -= b->rooms[i].tips; /* the number before the first tip */
        }
        for (size_t i = 0; i < b->n && !b->is_mismatch; i++) {
                struct batch_tip *bt = &b->tips[i];
                struct batch_room *room;

                if (!bt->is_new)
                        continue;
                room = find_room(b, bt->t.room_id);
                bt->seq = ++room->last_seq;
                bt->session_id = room->session_id;
        }
        return DB_OK;
}

/* One row of insert_tip, with its room_seq. */
static void add_tip_row(struct reward_batch *b, const struct batch_tip *bt)
{
        struct db *db = b->st->db;
        const struct tip *t = &bt->t;
        const char *ids[] = {t->tip_id, t->audience_id, t->anchor_id, t->room_id};
        const char *kinds[] = {t->audience_gender ? t->audience_gender : "unknown",
                               t->anchor_gender ? t->anchor_gender : "unknown", t->audience_type};

        db_text_add(&b->sql, "(");
        role_text_strs(db, &b->sql, ids, 4);
        if (bt->session_id)
                db_text_add(&b->sql, ", %lld, %lld, %lld, ", bt->session_id, bt->seq, t->amount);
        else
                db_text_add(&b->sql, ", NULL, %lld, %lld, ", bt->seq, t->amount);
        db_text_str(db, &b->sql, t->gift_id);
        db_text_add(&b->sql, ", %lld, ", t->gift_count);
        role_text_strs(db, &b->sql, kinds, 3);
        db_text_add(&b->sql, ", FROM_UNIXTIME(%lld / 1000))", t->ts_ms);
}

/* insert_tip() for every new tip. A plain INSERT: a duplicate key means another transaction
 * took one of the tips meanwhile, and the batch goes one tip at a time. */
static enum db_result insert_new_tips(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        bool is_first = true;

        db_text_reset(&b->sql);
        db_text_add(&b->sql,
                    "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, session_id, "
                    "room_seq, amount, gift_id, gift_count, audience_gender, anchor_gender, "
                    "audience_type, tipped_at) VALUES ");
        for (size_t i = 0; i < b->n; i++) {
                if (!b->tips[i].is_new)
                        continue;
                if (!is_first)
                        db_text_add(&b->sql, ", ");
                is_first = false;
                add_tip_row(b, &b->tips[i]);
        }
        return db_text_exec(b->st->db, &b->sql, NULL, errstr, errstr_size);
}

static enum db_result write_new_tips(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        if (!b->room_cnt)
                return DB_OK; /* every tip was in recharge already */
        if ((r = find_live_sessions(b, errstr, errstr_size)) != DB_OK ||
            (r = number_rooms(b, errstr, errstr_size)) != DB_OK ||
            (r = read_room_seqs(b, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->is_mismatch)
                return role_batch_mismatch(errstr, errstr_size); /* reward_apply() per tip */
        return insert_new_tips(b, errstr, errstr_size);
}

static void log_batch_tips(const struct reward_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_tip *bt = &b->tips[i];
                const struct consumer_record *rec = bt->slot->rec;

                if (!bt->is_valid)
                        continue;
                if (!bt->is_new) { /* its session and number are the first copy's, not read here */
                        log_info(rec->trace_id,
                                 "reward tip=%s room=%s amount=%lld outcome=duplicate topic=%s "
                                 "partition=%d offset=%lld",
                                 bt->t.tip_id, bt->t.room_id, bt->t.amount, rec->topic,
                                 rec->partition, rec->offset);
                        continue;
                }
                log_info(rec->trace_id,
                         "reward tip=%s room=%s amount=%lld session=%lld seq=%lld outcome=applied "
                         "topic=%s partition=%d offset=%lld",
                         bt->t.tip_id, bt->t.room_id, bt->t.amount, bt->session_id, bt->seq,
                         rec->topic, rec->partition, rec->offset);
        }
}

/* Copies a string into a row's field; false when it does not fit (recharge would not hold it). */
static bool copy_id(char *out, size_t size, const char *s)
{
        size_t len = strlen(s);

        if (len >= size)
                return false;
        memcpy(out, s, len + 1);
        return true;
}

/*
 * Keeps the rows the batch wrote (st->known) and names each in its records' notes, the later
 * copies of a new tip taking the first one's row (recharge holds that one): publish_many()
 * projects them as written. Duplicates of tips recharge held before keep note 0, read back.
 */
static void remember_rows(struct reward_batch *b)
{
        struct known_rows *k = &b->st->known;
        size_t m = 0;

        k->gen = (k->gen + 1) & 0x7fffffffULL; /* a note stays a positive long long */
        k->n = 0;
        for (size_t i = 0; i < b->n; i++)
                m += b->tips[i].is_new;
        if (m > k->cap) {
                struct tip_row *rows = realloc(k->rows, m * sizeof(*rows));

                if (!rows)
                        return; /* every row is read back */
                k->rows = rows;
                k->cap = m;
        }
        for (size_t i = 0; i < b->n; i++) {
                struct batch_tip *bt = &b->tips[i];
                struct tip_row *row = &k->rows[k->n];

                if (!bt->is_new)
                        continue;
                if (!copy_id(row->audience_id, sizeof(row->audience_id), bt->t.audience_id) ||
                    !copy_id(row->room_id, sizeof(row->room_id), bt->t.room_id))
                        continue;
                row->session_id = bt->session_id;
                row->amount = bt->t.amount;
                row->gift_count = bt->t.gift_count;
                row->room_seq = bt->seq;
                bt->slot->rec->note = (long long)((k->gen << 32) | (unsigned long long)++k->n);
        }
        for (size_t i = 0; i < b->n; i++) {
                struct batch_tip *bt = &b->tips[i], *first;

                if (!bt->is_valid || bt->is_new)
                        continue;
                first = find_tip(b, bt->t.tip_id);
                if (first && first->is_new)
                        bt->slot->rec->note = first->slot->rec->note;
        }
}

/* The rooms, their numbers and the tips of the batch whose is_new flags are set. */
static enum db_result write_marked(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        if (!collect_rooms(b, b->room_ids)) {
                snprintf(errstr, errstr_size, "a room's amounts overflow");
                return DB_FATAL;
        }
        return write_new_tips(b, errstr, errstr_size);
}

/* The batch with recharge looked up first (the way every batch went before write_tips()). */
static enum db_result write_read_first(void *arg, char *errstr, size_t errstr_size)
{
        struct reward_batch *b = arg;
        enum db_result r;
        bool is_held = false;

        if ((r = find_new_tips(b, errstr, errstr_size)) == DB_OK && b->is_mismatch)
                r = role_batch_mismatch(errstr, errstr_size);
        if (r != DB_OK)
                return r;
        for (size_t i = 0; i < b->valid; i++)
                is_held |= b->by_id[i]->is_known;
        b->st->gate.is_reading_first = is_held;
        return write_marked(b, errstr, errstr_size);
}

/* The batch without the look-up: every first copy is new, until recharge says otherwise. */
static enum db_result write_unread(void *arg, char *errstr, size_t errstr_size)
{
        struct reward_batch *b = arg;

        mark_first_copies(b);
        return write_marked(b, errstr, errstr_size);
}

/* What write_unread() marked, once rolled back to the savepoint (the rooms' numbers too). */
static void forget_unread(void *arg)
{
        struct reward_batch *b = arg;

        for (size_t i = 0; i < b->n; i++)
                b->tips[i].is_new = b->tips[i].is_known = false;
        b->room_cnt = 0;
        b->is_mismatch = false;
}

/* Unread behind a savepoint, or recharge looked up first (struct role_gate). */
static enum db_result write_tips(struct reward_batch *b, char *errstr, size_t errstr_size)
{
        static const struct role_gate_ways ways = {"reward_batch", write_unread, forget_unread,
                                                   write_read_first};

        return role_gate_write(&b->st->gate, &ways, b->st->db, &b->sql, b, errstr, errstr_size);
}

static enum apply_result apply_batch_tips(struct reward_batch *b, struct apply_slot *slots,
                                          char *errstr, size_t errstr_size)
{
        enum db_result r;

        for (size_t i = 0; i < b->n; i++)
                slots[i].rec->note = 0; /* publish reads back what remember_rows() leaves */
        read_batch(b, slots);
        if (!b->valid)
                return APPLY_DONE;
        r = write_tips(b, errstr, errstr_size);
        if (r != DB_OK)
                return role_gate_result(r);
        for (size_t i = 0; i < b->n; i++)
                /* Duplicates too: the first copy may have committed without reaching Redis. */
                b->tips[i].slot->rec->publish = b->tips[i].is_valid;
        remember_rows(b);
        log_batch_tips(b);
        return APPLY_DONE;
}

enum apply_result reward_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                    size_t errstr_size)
{
        struct reward_batch b = {.st = state, .n = n};
        enum apply_result r = APPLY_RETRY;

        b.tips = calloc(n, sizeof(*b.tips));
        b.by_id = calloc(n, sizeof(*b.by_id));
        b.rooms = calloc(n, sizeof(*b.rooms));
        b.room_ids = calloc(n, sizeof(*b.room_ids));
        if (b.tips && b.by_id && b.rooms && b.room_ids)
                r = apply_batch_tips(&b, slots, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        db_text_free(&b.sql);
        free(b.tips);
        free(b.by_id);
        free(b.rooms);
        free(b.room_ids);
        return r;
}
