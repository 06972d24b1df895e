/*
 * snapshot_batch.c: the snapshot role a batch at once (snapshot_apply() per record in
 * snapshot.c stays the fallback and the oracle).
 */
#include "snapshot_role.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
#include "ledger.h"
#include "log.h"
#include "role_kit.h"

/*
 * snapshot_apply() for a whole batch in five statements instead of four to six per record:
 * which events the ledger holds already, the streams of the new screenshots with their covers
 * (locked, in key order), one multi-row ledger insert with each record's outcome, one
 * multi-row live_snapshots insert, and one update of every cover the batch moves. The outcomes
 * are worked out here in batch order, as one record at a time would. Ids are matched byte for
 * byte; ids that MySQL's collation could match to one another, an id MySQL returns in another
 * spelling, an event recorded meanwhile, a screenshot as old as the cover it meets (the URLs
 * would be compared in MySQL's collation) or any statement error roll the batch back to
 * snapshot_apply() per record.
 */
struct batch_shot {
        struct snapshot sn;
        struct apply_slot *slot;
        size_t index; /* batch order: ties keep it */
        bool is_valid, is_new;
        const char *outcome; /* for the new ones */
};

/* A stream of the new screenshots: its row and cover as locked, then as the batch leaves it. */
struct batch_stream {
        const char *stream_id;
        const char *vendor; /* of the batch's screenshots on it: a stream id is unique per vendor */
        bool exists, has_cover, is_moved;
        long long cover_ms;
        const struct batch_shot *cover; /* the batch's screenshot that is the cover now */
};

struct snapshot_batch {
        struct snapshot_state *st;
        struct batch_shot *shots;
        struct keyset ids;            /* event ids of the valid records */
        struct batch_stream *streams; /* streams of the new records, by stream_id */
        const char **scratch;         /* n: ids to sort */
        size_t n, valid, fresh, stream_cnt, moved;
        bool is_mismatch; /* MySQL returned an id we cannot match byte for byte */
        struct db_text sql;
};

static const char *event_id_of(const struct batch_shot *bs)
{
        return bs->slot->rec->ev.event_id;
}

static const char *stream_of(const struct batch_shot *bs)
{
        return bs->slot->rec->ev.stream_id;
}

static int cmp_str_ptr(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_stream_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct batch_stream *)elem)->stream_id);
}

static struct batch_stream *find_stream(const struct snapshot_batch *b, const char *stream_id)
{
        return bsearch(stream_id, b->streams, b->stream_cnt, sizeof(*b->streams), cmp_stream_key);
}

/* Reads every record; malformed ones are refused at once (nothing was written for them). */
static void read_batch(struct snapshot_batch *b, struct apply_slot *slots)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_shot *bs = &b->shots[i];

                bs->slot = &slots[i];
                bs->index = i;
                if (snapshot_read_event(&slots[i].rec->ev, &bs->sn, slots[i].error,
                                        slots[i].error_size) == -1) {
                        slots[i].result = APPLY_PERMANENT;
                        continue;
                }
                bs->is_valid = true;
                b->valid++;
                keyset_add(&b->ids, event_id_of(bs), i);
        }
        keyset_sort(&b->ids);
}

/*
 * Which events the ledger holds already; the first copy of each other event id is new. Copies
 * of one event id sort in batch order: the first is the new one.
 */
static enum db_result find_new_shots(struct snapshot_batch *b, char *errstr, size_t errstr_size)
{
        struct keyset *ks = &b->ids;
        enum db_result r;
        bool is_known = false;

        if ((r = ledger_find_known(b->st->ledger, ks, &b->sql, errstr, errstr_size)) != DB_OK)
                return r;
        b->is_mismatch = ks->is_mismatch;
        for (size_t i = 0; i < ks->n; i++) {
                struct batch_shot *bs = &b->shots[ks->items[i].index];

                if (keyset_is_first(ks, i))
                        is_known = ks->items[i].is_known;
                bs->is_new = keyset_is_first(ks, i) && !is_known;
                b->fresh += bs->is_new;
        }
        return DB_OK;
}

/* The distinct streams of the new records, by stream_id; false when two might be one. */
static bool collect_streams(struct snapshot_batch *b)
{
        size_t cnt = 0;

        for (size_t i = 0; i < b->n; i++)
                if (b->shots[i].is_new)
                        b->scratch[cnt++] = stream_of(&b->shots[i]);
        qsort(b->scratch, cnt, sizeof(*b->scratch), cmp_str_ptr);
        for (size_t i = 0; i < cnt; i++)
                if (i == 0 || strcmp(b->scratch[i], b->scratch[i - 1]) != 0)
                        b->streams[b->stream_cnt++] =
                                (struct batch_stream){.stream_id = b->scratch[i]};
        for (size_t i = 0; i < b->stream_cnt; i++)
                b->scratch[i] = b->streams[i].stream_id;
        if (keys_may_collide(b->scratch, b->stream_cnt))
                return false;
        /* Two vendors' streams of one id in a batch: the per-record path tells them apart. */
        for (size_t i = 0; i < b->n; i++) {
                const struct event *ev = &b->shots[i].slot->rec->ev;
                struct batch_stream *bst;

                if (!b->shots[i].is_new || !(bst = find_stream(b, stream_of(&b->shots[i]))))
                        continue;
                if (bst->vendor && strcmp(bst->vendor, ev->vendor) != 0)
                        return false;
                bst->vendor = ev->vendor;
        }
        return true;
}

/* Appends "((v1, s1), (v2, s2), ...)" of the given streams (all, or only the moved ones). */
static void add_stream_ids(struct snapshot_batch *b, bool only_moved)
{
        bool is_first = true;

        db_text_add(&b->sql, "(");
        for (size_t i = 0; i < b->stream_cnt; i++) {
                if (only_moved && !b->streams[i].is_moved)
                        continue;
                db_text_add(&b->sql, is_first ? "(" : ", (");
                is_first = false;
                db_text_str(b->st->db, &b->sql, b->streams[i].vendor);
                db_text_add(&b->sql, ", ");
                db_text_str(b->st->db, &b->sql, b->streams[i].stream_id);
                db_text_add(&b->sql, ")");
        }
        db_text_add(&b->sql, ")");
}

static void on_stream(const struct db_col *cols, void *arg)
{
        struct snapshot_batch *b = arg;
        struct batch_stream *bst = find_stream(b, cols[0].s);

        if (!bst || bst->exists) {
                b->is_mismatch = true;
                return;
        }
        bst->exists = true;
        bst->has_cover = !cols[1].is_null;
        bst->cover_ms = cols[1].i;
}

/*
 * The rows and covers of the batch's streams, locked until the commit (in key order, so that
 * copies lock them in one order), as offer_cover()'s update would lock them one at a time.
 */
static enum db_result lock_streams(struct snapshot_batch *b, char *errstr, size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_I64}};

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT stream_id, CAST(UNIX_TIMESTAMP(cover_time) * 1000 AS SIGNED) "
                             "FROM live_streams WHERE (vendor, stream_id) IN ");
        add_stream_ids(b, false);
        db_text_add(&b->sql, " ORDER BY stream_id FOR UPDATE");
        return db_text_query(b->st->db, &b->sql, cols, 2, on_stream, b, errstr, errstr_size);
}

/*
 * offer_cover() for every new record in batch order, on the covers as locked. @returns false
 * at a screenshot as old as the cover it meets: which one wins is MySQL's URL comparison.
 */
static bool offer_covers(struct snapshot_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_shot *bs = &b->shots[i];
                struct batch_stream *bst;

                if (!bs->is_new)
                        continue;
                bst = find_stream(b, stream_of(bs));
                if (!bst->exists) {
                        bs->outcome = "no_stream";
                        continue;
                }
                if (bst->has_cover && bs->sn.taken_ms == bst->cover_ms)
                        return false;
                if (bst->has_cover && bs->sn.taken_ms < bst->cover_ms) {
                        bs->outcome = "older_than_cover";
                        continue;
                }
                bs->outcome = "applied";
                b->moved += !bst->is_moved;
                bst->is_moved = bst->has_cover = true;
                bst->cover_ms = bs->sn.taken_ms;
                bst->cover = bs;
        }
        return true;
}

/*
 * ledger_record() and ledger_set_outcome() for every new record in one insert. A row it skips
 * means another transaction recorded one of the events meanwhile (or MySQL matched two ids),
 * and the batch goes one record at a time.
 */
static enum db_result record_events(struct snapshot_batch *b, char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        ledger_text_begin(&b->sql);
        for (size_t i = 0; i < b->n; i++)
                if (b->shots[i].is_new)
                        ledger_text_row(b->st->ledger, &b->sql, b->shots[i].slot->rec,
                                        b->shots[i].outcome, rows++ == 0);
        return ledger_text_exec(b->st->ledger, &b->sql, rows, errstr, errstr_size);
}

/* One row of insert_snapshot. */
static void add_snapshot_row(struct snapshot_batch *b, const struct batch_shot *bs)
{
        struct db *db = b->st->db;
        const struct snapshot *sn = &bs->sn;
        const long long counts[] = {sn->width, sn->height, sn->file_size};

        db_text_add(&b->sql, "(");
        db_text_str(db, &b->sql, stream_of(bs));
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, bs->slot->rec->ev.vendor);
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, sn->pic_url);
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, sn->pic_full_url);
        for (size_t i = 0; i < 3; i++) {
                db_text_add(&b->sql, ", ");
                if (counts[i] >= 0)
                        db_text_i64(&b->sql, counts[i]);
                else
                        db_text_add(&b->sql, "NULL");
        }
        db_text_add(&b->sql, ", FROM_UNIXTIME(%lld / 1000), ", sn->taken_ms);
        db_text_str(db, &b->sql, event_id_of(bs));
        db_text_add(&b->sql, strcmp(bs->outcome, "no_stream") == 0 ? ", 1)" : ", NULL)");
}

/* insert_snapshot() for every new record. */
static enum db_result insert_snapshots(struct snapshot_batch *b, char *errstr, size_t errstr_size)
{
        bool is_first = true;

        db_text_reset(&b->sql);
        db_text_add(&b->sql,
                    "INSERT INTO live_snapshots (stream_id, vendor, pic_url, pic_full_url, "
                    "width, height, file_size, taken_at, event_id, cover_pending) VALUES ");
        for (size_t i = 0; i < b->n; i++) {
                if (!b->shots[i].is_new)
                        continue;
                db_text_add(&b->sql, is_first ? "" : ", ");
                is_first = false;
                add_snapshot_row(b, &b->shots[i]);
        }
        db_text_add(&b->sql, " ON DUPLICATE KEY UPDATE id = id");
        return db_text_exec(b->st->db, &b->sql, NULL, errstr, errstr_size);
}

/* Appends "CASE stream_id WHEN s1 THEN v1 ... END" of the moved streams' new covers. */
static void add_cover_case(struct snapshot_batch *b, bool is_time)
{
        struct db *db = b->st->db;

        db_text_add(&b->sql, "CASE stream_id");
        for (size_t i = 0; i < b->stream_cnt; i++) {
                const struct batch_stream *bst = &b->streams[i];
                const struct snapshot *sn;

                if (!bst->is_moved)
                        continue;
                sn = &bst->cover->sn;
                db_text_add(&b->sql, " WHEN ");
                db_text_str(db, &b->sql, bst->stream_id);
                db_text_add(&b->sql, " THEN ");
                if (is_time)
                        db_text_add(&b->sql, "FROM_UNIXTIME(%lld / 1000)", sn->taken_ms);
                else
                        db_text_str(db, &b->sql, sn->pic_full_url ? sn->pic_full_url : sn->pic_url);
        }
        db_text_add(&b->sql, " END");
}

/* The covers the batch moves, each to its newest screenshot, in one update. */
static enum db_result move_covers(struct snapshot_batch *b, char *errstr, size_t errstr_size)
{
        unsigned long long affected = 0;
        enum db_result r;

        if (!b->moved)
                return DB_OK;
        db_text_reset(&b->sql);
        db_text_add(&b->sql, "UPDATE live_streams SET cover_url = ");
        add_cover_case(b, false);
        db_text_add(&b->sql, ", cover_time = ");
        add_cover_case(b, true);
        db_text_add(&b->sql, " WHERE (vendor, stream_id) IN ");
        add_stream_ids(b, true);
        if ((r = db_text_exec(b->st->db, &b->sql, &affected, errstr, errstr_size)) != DB_OK)
                return r;
        if (affected != b->moved) {
                snprintf(errstr, errstr_size, "%llu of %zu covers moved", affected, b->moved);
                return DB_RETRY;
        }
        return DB_OK;
}

/* A batch the set-based path cannot pin on one record: snapshot_apply() per record. */
static enum db_result fall_back(const char *why, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s", why);
        return DB_RETRY;
}

/* Everything after find_new_shots(), when some record is new. */
static enum db_result write_new_shots(struct snapshot_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        if (!collect_streams(b))
                return fall_back("stream ids that MySQL may match other than byte for byte", errstr,
                                 errstr_size);
        if ((r = lock_streams(b, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->is_mismatch)
                return fall_back("stream ids that MySQL matches other than byte for byte", errstr,
                                 errstr_size);
        if (!offer_covers(b))
                return fall_back("a screenshot as old as its stream's cover", errstr, errstr_size);
        if ((r = record_events(b, errstr, errstr_size)) != DB_OK ||
            (r = insert_snapshots(b, errstr, errstr_size)) != DB_OK)
                return r;
        return move_covers(b, errstr, errstr_size);
}

/* The per-record log lines of snapshot_apply(), for the batch. */
static void log_batch(const struct snapshot_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_shot *bs = &b->shots[i];
                const struct consumer_record *rec = bs->slot->rec;

                if (!bs->is_valid)
                        continue;
                if (!bs->is_new) {
                        log_debug(rec->trace_id, "duplicate event %s stream=%s", rec->ev.event_id,
                                  rec->ev.stream_id);
                        continue;
                }
                log_info(rec->trace_id,
                         "snapshot stream=%s taken_ms=%lld outcome=%s topic=%s partition=%d "
                         "offset=%lld",
                         rec->ev.stream_id, bs->sn.taken_ms, bs->outcome, rec->topic,
                         rec->partition, rec->offset);
        }
}

static enum apply_result apply_batch(struct snapshot_batch *b, struct apply_slot *slots,
                                     char *errstr, size_t errstr_size)
{
        enum db_result r = DB_OK;

        read_batch(b, slots);
        if (!b->valid)
                return APPLY_DONE;
        if (keyset_may_collide(&b->ids))
                r = fall_back("event ids that MySQL may match other than byte for byte", errstr,
                              errstr_size);
        if (r == DB_OK && (r = find_new_shots(b, errstr, errstr_size)) == DB_OK && b->is_mismatch)
                r = fall_back("event ids that MySQL matches other than byte for byte", errstr,
                              errstr_size);
        if (r == DB_OK && b->fresh)
                r = write_new_shots(b, errstr, errstr_size);
        if (r != DB_OK)
                return r == DB_DUPLICATE ? APPLY_RETRY : apply_from_db(r);
        log_batch(b);
        return APPLY_DONE;
}

enum apply_result snapshot_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                      size_t errstr_size)
{
        struct snapshot_batch b = {.st = state, .n = n};
        enum apply_result r = APPLY_RETRY;

        b.shots = calloc(n, sizeof(*b.shots));
        b.streams = calloc(n, sizeof(*b.streams));
        b.scratch = calloc(n, sizeof(*b.scratch));
        if (b.shots && b.streams && b.scratch && keyset_init(&b.ids, n) == 0)
                r = apply_batch(&b, slots, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        db_text_free(&b.sql);
        free(b.shots);
        keyset_free(&b.ids);
        free(b.streams);
        free(b.scratch);
        return r;
}
