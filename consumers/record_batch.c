/*
 * record_batch.c: the record role a batch at once (record_apply() per record in record.c stays
 * the fallback and the oracle, tests/consumers/test_batch_oracle.c).
 */
#include "record_role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "keyset.h"
#include "log.h"
#include "notify.h"
#include "role_kit.h"

/*
 * record_apply() for a whole batch in three or four statements instead of three or four per
 * record: which events the ledger holds already (skipped while batches meet none, see
 * write_records()); the sessions of the new files' streams and which of
 * the new files live_records holds already (one statement); one multi-row ledger insert with
 * each record's outcome, and one multi-row upsert of the files (and the notifications' insert). The
 * outcomes are worked out here in batch order, as one record at a time would, and the upsert's
 * affected-row count must say the same. Ids are matched byte for byte; ids that MySQL's collation
 * could match to one another, an id MySQL returns in another spelling, a time FROM_UNIXTIME cannot
 * take, an event or file recorded meanwhile, or any statement error roll the batch back to
 * record_apply() per record.
 */
struct batch_rec {
        struct apply_slot *slot;
        struct record_file f;
        bool is_file, is_new;
        long long t_ms;    /* record_file_time() */
        long long session; /* found for it, 0 for none */
        const char *outcome;
};

/* A stream of the new files and its session span (times in ms; -1 when NULL). */
struct batch_stream {
        const char *stream_id;
        const char *vendor; /* of the batch's files on it: a stream id is unique per vendor */
        long long session, started_ms, ended_ms;
};

/* A file id of the new files: whether live_records holds it, and as which row. */
struct batch_file {
        const char *file_id;
        bool exists, has_session;
        char stream_id[KEYSET_ID_MAX + 1]; /* the row's */
};

struct record_batch {
        struct record_state *st;
        struct role_batch rb; /* the shared half: the slots, their event ids, which are new */
        struct batch_rec *recs;
        struct batch_stream *streams;
        struct batch_file *files;
        const char **scratch;
        size_t n, stream_cnt, file_cnt;
        unsigned long long want_affected; /* of the files' upsert */
        bool is_mismatch;
        struct db_text sql;
};

static int cmp_stream_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct batch_stream *)elem)->stream_id);
}

static struct batch_stream *find_stream(const struct record_batch *b, const char *stream_id)
{
        return bsearch(stream_id, b->streams, b->stream_cnt, sizeof(*b->streams), cmp_stream_key);
}

static int cmp_file_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct batch_file *)elem)->file_id);
}

static struct batch_file *find_file(const struct record_batch *b, const char *file_id)
{
        return bsearch(file_id, b->files, b->file_cnt, sizeof(*b->files), cmp_file_key);
}

/* role_batch_open()'s reader: one record; a malformed one is refused (nothing written). */
static int read_one(void *arg, size_t i)
{
        struct record_batch *b = arg;
        struct batch_rec *br = &b->recs[i];
        struct apply_slot *slot = &b->rb.slots[i];
        const struct event *ev = &slot->rec->ev;

        br->slot = slot;
        if (record_read_event(ev, &br->is_file, slot->error, slot->error_size) == -1 ||
            (br->is_file && record_read_file(ev, &br->f, slot->error, slot->error_size) == -1))
                return -1;
        br->t_ms = br->is_file ? record_file_time(ev, &br->f) : 0;
        return 0;
}

/*
 * The distinct streams and file ids of the new files. @returns false when two of either
 * might be one id to MySQL, or a file's time is one FROM_UNIXTIME cannot take.
 */
static bool collect_keys(struct record_batch *b)
{
        size_t cnt = 0;

        for (size_t i = 0; i < b->n; i++) {
                const struct batch_rec *br = &b->recs[i];

                if (!br->is_new || !br->is_file)
                        continue;
                if (!role_time_storable(br->t_ms))
                        return false;
                b->scratch[cnt++] = br->slot->rec->ev.stream_id;
        }
        b->stream_cnt = role_distinct(b->scratch, cnt);
        for (size_t i = 0; i < b->stream_cnt; i++)
                b->streams[i] = (struct batch_stream){.stream_id = b->scratch[i]};
        if (keys_may_collide(b->scratch, b->stream_cnt))
                return false;
        /* Two vendors' streams of one id in a batch: the per-record path tells them apart. */
        for (size_t i = 0; i < b->n; i++) {
                const struct event *ev = &b->recs[i].slot->rec->ev;
                struct batch_stream *bs;

                if (!b->recs[i].is_new || !b->recs[i].is_file ||
                    !(bs = find_stream(b, ev->stream_id)))
                        continue;
                if (bs->vendor && strcmp(bs->vendor, ev->vendor) != 0)
                        return false;
                bs->vendor = ev->vendor;
        }
        cnt = 0;
        for (size_t i = 0; i < b->n; i++)
                if (b->recs[i].is_new && b->recs[i].is_file)
                        b->scratch[cnt++] = b->recs[i].f.file_id;
        b->file_cnt = role_distinct(b->scratch, cnt);
        for (size_t i = 0; i < b->file_cnt; i++)
                b->files[i] = (struct batch_file){.file_id = b->scratch[i]};
        return !keys_may_collide(b->scratch, b->file_cnt);
}

/* Appends "(id1, id2, ...)" of the first cnt ids (sorted, distinct). */
static void add_list(struct record_batch *b, size_t cnt, bool is_streams)
{
        db_text_add(&b->sql, "(");
        for (size_t i = 0; i < cnt; i++) {
                db_text_add(&b->sql, i ? ", " : "");
                db_text_str(b->st->db, &b->sql,
                            is_streams ? b->streams[i].stream_id : b->files[i].file_id);
        }
        db_text_add(&b->sql, ")");
}

/* A live_streams row of a new file's stream: id, vendor, session, started_at, ended_at. */
static void on_stream(struct record_batch *b, const struct db_col *cols)
{
        struct batch_stream *bs = find_stream(b, cols[0].s);

        if (!bs) {
                b->is_mismatch = true;
                return;
        }
        if (cols[1].is_null || !bs->vendor || strcmp(cols[1].s, bs->vendor) != 0)
                return; /* another vendor's stream of the same id */
        bs->session = cols[2].is_null ? 0 : cols[2].i;
        bs->started_ms = cols[3].is_null ? -1 : cols[3].i;
        bs->ended_ms = cols[4].is_null ? -1 : cols[4].i;
}

/* A live_records row of a new file: id, stream, session. */
static void on_file(struct record_batch *b, const struct db_col *cols)
{
        struct batch_file *bf = find_file(b, cols[0].s);

        if (!bf) {
                b->is_mismatch = true;
                return;
        }
        bf->exists = true;
        snprintf(bf->stream_id, sizeof(bf->stream_id), "%s", cols[1].is_null ? "" : cols[1].s);
        bf->has_session = !cols[2].is_null;
}

/* A row of find_rows(): its first column names the read it belongs to. */
static void on_row(const struct db_col *cols, void *arg)
{
        struct record_batch *b = arg;

        if (!cols[0].is_null && cols[0].s[0] == 's')
                on_stream(b, cols + 1);
        else if (!cols[0].is_null && cols[0].s[0] == 'f')
                on_file(b, cols + 1);
        else
                b->is_mismatch = true;
}

/*
 * In one statement: the session span of every stream of the new files (find_session() reads
 * the same row), and which of the new files live_records holds already, with their stream
 * and session. live_streams' index is named: past eq_range_index_dive_limit (200) ids MariaDB
 * estimates an IN list from the index's statistics, which lag behind a burst of new streams,
 * and then reads every row of live_streams instead of one look-up per id.
 */
static enum db_result find_rows(struct record_batch *b, char *errstr, size_t errstr_size)
{
        char tag[2], id[KEYSET_ID_MAX + 1], text[KEYSET_ID_MAX + 1];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = tag, .s_size = sizeof(tag)},
                                {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = text, .s_size = sizeof(text)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64}};

        for (size_t i = 0; i < b->stream_cnt; i++)
                b->streams[i].session = 0;
        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT 's', stream_id, vendor, session_id, "
                             "CAST(UNIX_TIMESTAMP(started_at) * 1000 AS SIGNED), "
                             "CAST(UNIX_TIMESTAMP(ended_at) * 1000 AS SIGNED) "
                             "FROM live_streams FORCE INDEX (live_streams_stream) "
                             "WHERE stream_id IN ");
        add_list(b, b->stream_cnt, true);
        db_text_add(&b->sql, " UNION ALL SELECT 'f', file_id, stream_id, session_id, NULL, NULL "
                             "FROM live_records FORCE INDEX (PRIMARY) WHERE file_id IN ");
        add_list(b, b->file_cnt, false);
        return db_text_query(b->st->db, &b->sql, cols, 6, on_row, b, errstr, errstr_size);
}

/* SESSION_HOLDS(t) on the stream's row as read. */
static long long session_at(const struct batch_stream *bs, long long t_ms)
{
        if (!bs || !bs->session || bs->started_ms < 0 || t_ms < bs->started_ms - 5000)
                return 0;
        return bs->ended_ms < 0 || t_ms <= bs->ended_ms + 60000 ? bs->session : 0;
}

/*
 * store_file() for every new file in batch order, on the rows as read: its session, its
 * outcome, and what the upsert will say. @returns false when a known row's stream differs
 * from the file's only in a way MySQL's collation might not see.
 */
static bool decide_files(struct record_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                struct batch_rec *br = &b->recs[i];
                struct batch_file *bf;
                const char *stream;
                bool is_same;

                if (!br->is_new)
                        continue;
                if (!br->is_file) {
                        br->outcome = "applied";
                        continue;
                }
                stream = br->slot->rec->ev.stream_id;
                br->session = session_at(find_stream(b, stream), br->t_ms);
                bf = find_file(b, br->f.file_id);
                if (!bf->exists) {
                        bf->exists = true;
                        bf->has_session = br->session != 0;
                        snprintf(bf->stream_id, sizeof(bf->stream_id), "%s", stream);
                        br->outcome = br->session ? "applied" : "no_session";
                        b->want_affected += 1;
                        continue;
                }
                is_same = strcmp(bf->stream_id, stream) == 0;
                if (!is_same) {
                        const char *pair[] = {bf->stream_id, stream};

                        if (keys_may_collide(pair, 2))
                                return false;
                }
                br->outcome = "duplicate_file";
                if (is_same && !bf->has_session && br->session) {
                        bf->has_session = true;
                        b->want_affected += 2;
                }
        }
        return true;
}

static struct db_param count_or_null(long long v)
{
        return v >= 0 ? DB_I64(v) : DB_NULL;
}

/* One row of upsert_file. */
static void add_file_row(struct record_batch *b, const struct batch_rec *br, bool is_first)
{
        struct db *db = b->st->db;
        const struct event *ev = &br->slot->rec->ev;
        const struct record_file *f = &br->f;
        const struct db_param nums[] = {count_or_null(f->duration_s), count_or_null(f->file_size)};
        const long long times[] = {f->start_ms, f->end_ms};

        db_text_add(&b->sql, is_first ? "(" : ", (");
        db_text_str(db, &b->sql, f->file_id);
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, ev->stream_id);
        db_text_add(&b->sql, ", ");
        if (br->session)
                db_text_i64(&b->sql, br->session);
        else
                db_text_add(&b->sql, "NULL");
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, f->session_key);
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, ev->vendor);
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, f->video_url);
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, f->file_format);
        for (size_t i = 0; i < 2; i++) {
                db_text_add(&b->sql, ", ");
                if (nums[i].type == DB_PARAM_I64)
                        db_text_i64(&b->sql, nums[i].i);
                else
                        db_text_add(&b->sql, "NULL");
        }
        for (size_t i = 0; i < 2; i++) {
                db_text_add(&b->sql, ", ");
                if (times[i] >= 0)
                        db_text_from_ms(&b->sql, times[i]);
                else
                        db_text_add(&b->sql, "NULL");
        }
        db_text_add(&b->sql, ", ");
        db_text_str(db, &b->sql, ev->trace_id);
        db_text_add(&b->sql, ")");
}

/* upsert_file for every new file, in batch order; the affected rows must be as decided. */
static enum db_result store_files(struct record_batch *b, char *errstr, size_t errstr_size)
{
        unsigned long long affected = 0;
        size_t rows = 0;
        enum db_result r;

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "INSERT INTO live_records (file_id, stream_id, session_id, "
                             "session_key, vendor, video_url, file_format, duration_s, file_size, "
                             "start_time, end_time, trace_id) VALUES ");
        for (size_t i = 0; i < b->n; i++)
                if (b->recs[i].is_new && b->recs[i].is_file)
                        add_file_row(b, &b->recs[i], rows++ == 0);
        if (!rows)
                return DB_OK;
        db_text_add(&b->sql, " ON DUPLICATE KEY UPDATE session_id = IF(stream_id = "
                             "VALUES(stream_id), COALESCE(session_id, VALUES(session_id)), "
                             "session_id)");
        if ((r = db_text_exec(b->st->db, &b->sql, &affected, errstr, errstr_size)) != DB_OK)
                return r;
        if (affected != b->want_affected) {
                snprintf(errstr, errstr_size, "files changed meanwhile (%llu rows, not %llu)",
                         affected, b->want_affected);
                return DB_DUPLICATE;
        }
        return DB_OK;
}

/* role_batch_write_ledger()'s outcome of record i. */
static const char *outcome_of(void *arg, size_t i)
{
        return ((const struct record_batch *)arg)->recs[i].outcome;
}

/* live.notify: the record.ready of every file the batch inserted, in one statement. */
static enum db_result notify_files(struct record_batch *b, char *errstr, size_t errstr_size)
{
        size_t rows = 0;

        notify_text_begin(&b->sql);
        for (size_t i = 0; i < b->n; i++) {
                struct batch_rec *br = &b->recs[i];
                char url[2400];
                struct notify_msg m;

                if (!br->is_new || !br->is_file ||
                    (strcmp(br->outcome, "applied") != 0 && strcmp(br->outcome, "no_session") != 0))
                        continue;
                m = record_file_msg(b->st, br->slot->rec, &br->f, br->session, url, sizeof(url));
                notify_text_row(b->st->notify, &b->sql, &m, rows++ == 0);
        }
        return notify_text_exec(b->st->notify, &b->sql, rows, errstr, errstr_size);
}

/* Everything after role_batch_open(), when some record is new. */
static enum db_result write_new_records(struct record_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        if (!collect_keys(b))
                return role_batch_fall_back(
                        "ids that MySQL may match other than byte for byte, two "
                        "vendors' streams of one id, or a time out of MySQL's range",
                        errstr, errstr_size);
        if (b->stream_cnt && (r = find_rows(b, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->is_mismatch || !decide_files(b))
                return role_batch_fall_back("ids that MySQL matches other than byte for byte",
                                            errstr, errstr_size);
        if ((r = role_batch_write_ledger(&b->rb, b->st->ledger, outcome_of, b, errstr,
                                         errstr_size)) != DB_OK ||
            (r = role_batch_after_ledger(&b->rb, store_files(b, errstr, errstr_size))) != DB_OK)
                return r;
        return role_batch_after_ledger(&b->rb, notify_files(b, errstr, errstr_size));
}

/* The shared half's verdicts per record, once the batch knows which events are new. */
static enum db_result write_marked(struct record_batch *b, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < b->n; i++)
                b->recs[i].is_new = b->rb.is_new[i];
        return b->rb.fresh ? write_new_records(b, errstr, errstr_size) : DB_OK;
}

/* The batch with the ledger looked up first (the way every batch went before the gate). */
static enum db_result write_read_first(void *arg, char *errstr, size_t errstr_size)
{
        struct record_batch *b = arg;
        enum db_result r;

        if ((r = role_batch_look_up(&b->rb, b->st->ledger, errstr, errstr_size)) != DB_OK)
                return r;
        b->st->gate.is_reading_first = role_batch_met_held(&b->rb);
        return write_marked(b, errstr, errstr_size);
}

/* The batch without the look-up: every first copy is new, until the ledger says otherwise. */
static enum db_result write_unread(void *arg, char *errstr, size_t errstr_size)
{
        struct record_batch *b = arg;

        role_batch_mark_unread(&b->rb);
        return write_marked(b, errstr, errstr_size);
}

/* What write_unread() decided, once its ledger insert met an event held before (it wrote
 * nothing: the insert was its first write and failed whole). */
static void forget_unread(void *arg)
{
        struct record_batch *b = arg;

        for (size_t i = 0; i < b->n; i++) {
                b->recs[i].is_new = false;
                b->recs[i].session = 0;
                b->recs[i].outcome = NULL;
        }
        b->stream_cnt = b->file_cnt = 0;
        b->want_affected = 0;
        b->is_mismatch = false;
}

/* Unread, or the ledger looked up first (struct role_gate). */
static enum db_result write_records(struct record_batch *b, char *errstr, size_t errstr_size)
{
        static const struct role_gate_ways ways = {NULL, write_unread, forget_unread,
                                                   write_read_first};

        return role_gate_write(&b->st->gate, &ways, b->st->db, &b->sql, b, errstr, errstr_size);
}

/* The per-record log lines of record_apply(), for the batch. */
static void log_batch(const struct record_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                const struct batch_rec *br = &b->recs[i];
                const struct consumer_record *rec = br->slot->rec;

                if (br->slot->result == APPLY_PERMANENT)
                        continue;
                if (!br->is_new) {
                        log_debug(rec->trace_id, "duplicate event %s stream=%s", rec->ev.event_id,
                                  rec->ev.stream_id);
                        continue;
                }
                consumer_log_applied(rec, (const char *const[]){"stream", rec->ev.stream_id, "file",
                                                                br->is_file ? br->f.file_id : NULL,
                                                                "outcome", br->outcome, NULL});
        }
}

enum apply_result record_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                    size_t errstr_size)
{
        struct record_batch b = {.st = state, .n = n};
        enum db_result r = DB_RETRY;

        b.recs = calloc(n, sizeof(*b.recs));
        b.streams = calloc(n, sizeof(*b.streams));
        b.files = calloc(n, sizeof(*b.files));
        b.scratch = calloc(n, sizeof(*b.scratch));
        if (!b.recs || !b.streams || !b.files || !b.scratch)
                snprintf(errstr, errstr_size, "out of memory");
        else if ((r = role_batch_read(&b.rb, slots, n, read_one, &b, errstr, errstr_size)) ==
                         DB_OK &&
                 (r = write_records(&b, errstr, errstr_size)) == DB_OK)
                log_batch(&b);
        role_batch_close(&b.rb);
        db_text_free(&b.sql);
        free(b.recs);
        free(b.streams);
        free(b.files);
        free(b.scratch);
        return role_batch_result(r);
}
