/*
 * stream_batch.c: the stream role a batch at once (see stream_role.h for which step runs
 * where). stream_apply() per record stays the fallback and the oracle.
 *
 * apply_many(): which events the ledger holds already (and, for replays that need it, their
 * outcomes; skipped while batches meet no event held before, see write_batch()), which of the
 * batch's streams have a row (a plain read), those rows under FOR UPDATE in key order (a missing
 * row's gap is not locked: see find_existing()), the anchors of the begins; then every new event is
 * decided in batch order against the rows as the batch leaves them, exactly as stream_apply()
 * decides it, per stream in event order; then one multi-row insert each into live_events (with each
 * outcome), live_streams (every row the batch changed, as it leaves it: an upsert of those that
 * existed, a plain INSERT of the new) and session_handoff (each ended session as it was when it
 * ended). Session ids are taken in the same order as one record at a time would take them.
 *
 * publish_many() (stream_batch_publish.c): the batch's streams projected to Redis in one
 * transaction and one pipeline; the session.end records of the batch's events read from the
 * outbox in one query, produced together and waited for together (session_handoff_send_many();
 * not asked of the events apply took for the first time that ended no session, NOTE_NO_HANDOFF,
 * so a batch of begins asks nothing); then the vendor drops and cut-offs of the few records that
 * have them; then the batch's live.notify rows relayed without waiting for the broker (notify.h).
 */
#include "stream_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "ids.h"
#include "keyset.h"
#include "log.h"
#include "role_kit.h"

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

static int cmp_stream_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct sb_stream *)elem)->stream_id);
}

static struct sb_stream *find_stream(const struct stream_batch *b, const char *stream_id)
{
        return bsearch(stream_id, b->streams, b->stream_cnt, sizeof(*b->streams), cmp_stream_key);
}

static int cmp_anchor_key(const void *key, const void *elem)
{
        return strcmp(key, ((const struct sb_anchor *)elem)->anchor_id);
}

static struct sb_anchor *find_anchor(const struct stream_batch *b, const char *anchor_id)
{
        return bsearch(anchor_id, b->anchors, b->anchor_cnt, sizeof(*b->anchors), cmp_anchor_key);
}

/* replayed_event(): whether a replay of this event repeats what its first time decided. */
static bool replay_matters(const struct stream_event *se)
{
        return se->is_begin || se->close_method >= 2 || stream_is_ghost_close(se->ev);
}

/* replayed_event(): the note of a replay, from the outcome its first time recorded. */
static void note_from_outcome(struct consumer_record *rec, const struct stream_event *se,
                              const char *outcome)
{
        if (!se->is_begin && strcmp(outcome, "applied") == 0)
                rec->note = NOTE_VENDOR_DROP;
        else if (se->is_begin && strcmp(outcome, OUTCOME_CUTOFF_BANNED) == 0)
                rec->note = NOTE_CUTOFF_BANNED;
        else if (se->is_begin && strcmp(outcome, OUTCOME_CUTOFF_SUSPENDED) == 0)
                rec->note = NOTE_CUTOFF_SUSPENDED;
}

/* ------------------------------------------------------------------ reading */

/* role_batch_open()'s reader: one event; one that is not a stream event is refused. */
static int read_one(void *arg, size_t i)
{
        struct stream_batch *b = arg;
        struct sb_rec *r = &b->recs[i];
        struct apply_slot *slot = &b->rb.slots[i];

        r->slot = slot;
        if (stream_read_event(&slot->rec->ev, &r->se, slot->error, slot->error_size) == -1)
                return -1;
        slot->rec->publish = true; /* as stream_apply(): a replay re-projects Redis */
        slot->rec->note = 0;
        return 0;
}

/* The shared half's verdicts per record; the later copies and the known ones are replays. */
static void take_new_events(struct stream_batch *b)
{
        const struct keyset *ks = &b->rb.ids;

        for (size_t i = 0; i < b->n; i++) {
                b->recs[i].is_valid = b->rb.is_valid[i];
                b->recs[i].is_new = b->rb.is_new[i];
                b->recs[i].first = b->rb.first[i];
        }
        /* replayed_event() reads the outcome of a known begin or forced close */
        for (size_t i = 0; i < ks->n; i++)
                if (ks->items[i].is_known && replay_matters(&b->recs[ks->items[i].index].se))
                        b->needs_outcomes = true;
}

/* Streams of the new events (leaves touch no row); anchors of the new begins. */
static bool collect_keys(struct stream_batch *b)
{
        size_t cnt = 0;

        for (size_t i = 0; i < b->n; i++) {
                const struct sb_rec *r = &b->recs[i];

                if (!r->is_new || r->se.is_leave)
                        continue;
                /* a close by liveflow or an operator names no vendor: resolve_vendor() per record
                 */
                if (!role_time_storable(r->se.ev->event_time_ms) ||
                    !stream_is_stream_vendor(r->se.ev->vendor))
                        return false;
                b->scratch[cnt++] = r->se.ev->stream_id;
        }
        b->stream_cnt = role_distinct(b->scratch, cnt);
        for (size_t i = 0; i < b->stream_cnt; i++)
                b->streams[i] = (struct sb_stream){.stream_id = b->scratch[i]};
        if (keys_may_collide(b->scratch, b->stream_cnt))
                return false;
        for (size_t i = 0; i < b->n; i++) { /* one vendor per stream id in a batch */
                struct sb_rec *r = &b->recs[i];
                struct sb_stream *s;

                if (!r->is_new || r->se.is_leave)
                        continue;
                r->se.vendor = r->se.ev->vendor;
                s = find_stream(b, r->se.ev->stream_id);
                if (s->key_vendor && strcmp(s->key_vendor, r->se.vendor) != 0)
                        return false;
                s->key_vendor = r->se.vendor;
        }
        cnt = 0;
        for (size_t i = 0; i < b->n; i++) {
                const struct sb_rec *r = &b->recs[i];
                const char *a = r->se.ev->anchor_id;

                if (r->is_new && r->se.is_begin && a && *a)
                        b->scratch[cnt++] = a;
        }
        b->anchor_cnt = role_distinct(b->scratch, cnt);
        for (size_t i = 0; i < b->anchor_cnt; i++)
                b->anchors[i] = (struct sb_anchor){.anchor_id = b->scratch[i], .until_ms = -1};
        return !keys_may_collide(b->scratch, b->anchor_cnt);
}

/*
 * Ids per IN list. A list of 1 000 values or more (in_predicate_conversion_threshold) MariaDB
 * turns into a join with a table of the values, which may read, and lock, every row of
 * live_streams; so may a (vendor, stream_id) IN ((...), ...) of 500 pairs.
 */
#define IN_LIST_MAX 250

/*
 * "(vendor = v AND stream_id IN (...)) OR ..." of the batch's streams (existing_only: of those
 * whose row exists, at least one): for each vendor its ids, IN_LIST_MAX at a time, each an
 * equality on the whole primary key.
 */
static void add_stream_where(struct stream_batch *b, bool existing_only)
{
        size_t terms = 0;

        for (size_t v = 0; v < b->stream_cnt; v++) {
                const char *vendor = b->streams[v].key_vendor;
                size_t in_list = 0;
                bool is_seen = false;

                for (size_t i = 0; i < v && !is_seen; i++)
                        is_seen = strcmp(b->streams[i].key_vendor, vendor) == 0;
                if (is_seen)
                        continue;
                for (size_t i = v; i < b->stream_cnt; i++) {
                        if (strcmp(b->streams[i].key_vendor, vendor) != 0 ||
                            (existing_only && !b->streams[i].does_exist))
                                continue;
                        if (in_list == 0) {
                                db_text_add(&b->sql, terms++ ? ") OR (vendor = " : "(vendor = ");
                                db_text_str(b->st->db, &b->sql, vendor);
                                db_text_add(&b->sql, " AND stream_id IN (");
                        } else {
                                db_text_add(&b->sql, ", ");
                        }
                        db_text_str(b->st->db, &b->sql, b->streams[i].stream_id);
                        if (++in_list == IN_LIST_MAX) {
                                db_text_add(&b->sql, ")");
                                in_list = 0;
                        }
                }
                if (in_list)
                        db_text_add(&b->sql, ")");
        }
        db_text_add(&b->sql, ")");
}

/* "col IN (...) OR col IN (...)" of the n strings, IN_LIST_MAX at a time (n > 0). */
static void add_in_lists(struct stream_batch *b, const char *col, const char *const *strs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (i % IN_LIST_MAX == 0)
                        db_text_add(&b->sql, "%s%s IN (", i ? ") OR " : "", col);
                else
                        db_text_add(&b->sql, ", ");
                db_text_str(b->st->db, &b->sql, strs[i]);
        }
        db_text_add(&b->sql, ")");
}

/* The row's string columns, copied into one allocation of their own; NULL ones stay NULL. */
static bool keep_strs(struct sb_stream *s, const struct db_col *cols, const size_t *idx,
                      const char **out[], size_t cnt)
{
        size_t size = 0;
        char *p;

        for (size_t i = 0; i < cnt; i++)
                size += cols[idx[i]].is_null ? 0 : strlen(cols[idx[i]].s) + 1;
        if (!(s->db_strs = p = malloc(size ? size : 1)))
                return false;
        for (size_t i = 0; i < cnt; i++) {
                const struct db_col *c = &cols[idx[i]];
                size_t len;

                *out[i] = NULL;
                if (c->is_null)
                        continue;
                len = strlen(c->s) + 1;
                memcpy(p, c->s, len);
                *out[i] = p;
                p += len;
        }
        return true;
}

static void on_stream(const struct db_col *cols, void *arg)
{
        struct stream_batch *b = arg;
        struct sb_stream *s = find_stream(b, cols[0].s);
        static const size_t idx[] = {1, 2, 4, 5, 6, 11, 12};

        if (!s || s->found || !s->does_exist || cols[4].is_null ||
            strcmp(cols[4].s, s->key_vendor) != 0) {
                b->is_mismatch = true;
                return;
        }
        const char **strs[] = {&s->anchor, &s->room,         &s->vendor,   &s->vendor_session,
                               &s->status, &s->close_reason, &s->cover_url};

        if (!keep_strs(s, cols, idx, strs, sizeof(idx) / sizeof(*idx))) {
                b->is_oom = true;
                return;
        }
        s->found = true;
        s->session_id = cols[3].is_null ? 0 : cols[3].i;
        s->started_ms = cols[7].is_null ? -1 : cols[7].i;
        s->ended_ms = cols[8].is_null ? -1 : cols[8].i;
        s->duration_s = cols[9].is_null ? -1 : cols[9].i;
        s->close_method = cols[10].is_null ? -1 : cols[10].i;
}

static void on_exists(const struct db_col *cols, void *arg)
{
        struct stream_batch *b = arg;
        struct sb_stream *s = find_stream(b, cols[0].s);

        if (!s || s->does_exist || cols[1].is_null || strcmp(cols[1].s, s->key_vendor) != 0) {
                b->is_mismatch = true;
                return;
        }
        s->does_exist = true;
        b->exist_cnt++;
}

/*
 * Which of the batch's streams have a row, without locking. A locking read of a key that is
 * missing locks the gap where it would go (REPEATABLE READ): two batches at once (two copies
 * of the role, two lanes) that each lock gaps and then insert their new streams into the
 * other's deadlock. A stream found missing here is not locked; stream_batch_write() inserts it
 * with a plain INSERT, which fails (and the batch is tried again) if another transaction
 * created it meanwhile.
 */
static enum db_result find_existing(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        char id[1021], vendor[65];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = vendor, .s_size = sizeof(vendor)}};

        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT stream_id, vendor FROM live_streams FORCE INDEX (PRIMARY) "
                             "WHERE ");
        add_stream_where(b, false);
        return db_text_query(b->st->db, &b->sql, cols, 2, on_exists, b, errstr, errstr_size);
}

/* lock_row() for every stream of the batch that exists, in key order, with every column it
 * rewrites. */
static enum db_result lock_streams(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        char id[1021], anchor[257], room[257], vendor[65], session[513], status[8], reason[1025],
                cover[8193];
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                {.type = DB_PARAM_STR, .s = anchor, .s_size = sizeof(anchor)},
                {.type = DB_PARAM_STR, .s = room, .s_size = sizeof(room)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = vendor, .s_size = sizeof(vendor)},
                {.type = DB_PARAM_STR, .s = session, .s_size = sizeof(session)},
                {.type = DB_PARAM_STR, .s = status, .s_size = sizeof(status)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = reason, .s_size = sizeof(reason)},
                {.type = DB_PARAM_STR, .s = cover, .s_size = sizeof(cover)},
        };

        db_text_reset(&b->sql);
        db_text_add(&b->sql,
                    "SELECT stream_id, anchor_id, room_id, session_id, vendor, "
                    "vendor_session, status, " EPOCH_MS("started_at") ", " EPOCH_MS(
                            "ended_at") ", duration_s, close_method, close_reason, cover_url "
                                        "FROM live_streams FORCE INDEX (PRIMARY) WHERE ");
        add_stream_where(b, true);
        db_text_add(&b->sql, " ORDER BY vendor, stream_id FOR UPDATE");
        return db_text_query(b->st->db, &b->sql, cols, 13, on_stream, b, errstr, errstr_size);
}

static void on_anchor(const struct db_col *cols, void *arg)
{
        struct stream_batch *b = arg;
        struct sb_anchor *a = find_anchor(b, cols[0].s);

        if (!a) {
                b->is_mismatch = true;
                return;
        }
        a->is_banned = !cols[1].is_null && cols[1].i;
        a->is_suspended = !cols[2].is_null && cols[2].i;
        a->until_ms = cols[3].is_null ? -1 : cols[3].i;
}

/* The standing of every anchor of the batch's begins (check_anchor() per begin). */
static enum db_result read_anchors(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        char id[257];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64}};

        if (!b->anchor_cnt)
                return DB_OK;
        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT anchor_id, status = 'banned', status = 'suspended' AND "
                             "suspended_until IS NOT NULL, " EPOCH_MS(
                                     "suspended_until") " "
                                                        "FROM anchors WHERE ");
        for (size_t i = 0; i < b->anchor_cnt; i++)
                b->scratch[i] = b->anchors[i].anchor_id;
        add_in_lists(b, "anchor_id", b->scratch, b->anchor_cnt);
        return db_text_query(b->st->db, &b->sql, cols, 4, on_anchor, b, errstr, errstr_size);
}

/* ------------------------------------------------------------------ deciding, in batch order */

/* check_anchor(): the outcome of a begin that made the stream live. */
static const char *anchor_outcome(const struct stream_batch *b, struct sb_rec *r)
{
        const struct event *ev = r->se.ev;
        const struct sb_anchor *a;

        if (!ev->anchor_id || !*ev->anchor_id || !(a = find_anchor(b, ev->anchor_id)))
                return "applied";
        if (a->is_banned) {
                r->slot->rec->note = NOTE_CUTOFF_BANNED;
                return OUTCOME_CUTOFF_BANNED;
        }
        if (a->is_suspended && a->until_ms > ev->event_time_ms) {
                r->slot->rec->note = NOTE_CUTOFF_SUSPENDED;
                return OUTCOME_CUTOFF_SUSPENDED;
        }
        return "applied";
}

/* begin_new(): insert_live or new_session. */
static void begin_new(struct stream_batch *b, struct sb_stream *s, const struct stream_event *se)
{
        const struct event *ev = se->ev;

        s->found = s->is_changed = true;
        s->anchor = ev->anchor_id;
        s->room = ev->room_id;
        s->session_id = (long long)ids_next(b->st->ids);
        s->vendor = se->vendor;
        s->vendor_session = se->sequence;
        s->status = "live";
        s->started_ms = ev->event_time_ms;
        s->ended_ms = s->duration_s = s->close_method = -1;
        s->close_reason = NULL;
}

static const char *coalesce(const char *a, const char *b)
{
        return a ? a : b;
}

/* apply_begin() on the row in memory. */
static const char *decide_begin(struct stream_batch *b, struct sb_stream *s, struct sb_rec *r)
{
        const struct event *ev = r->se.ev;
        long long newest = s->ended_ms > s->started_ms ? s->ended_ms : s->started_ms;
        bool is_same = stream_same_session(s->vendor_session, r->se.sequence);

        if (r->se.is_join && s->found && strcmp(s->status, "live") == 0) {
                s->anchor = coalesce(s->anchor, ev->anchor_id);
                s->room = coalesce(s->room, ev->room_id);
                s->is_changed = true;
                return "cohost_join";
        }
        if (!s->found || (!is_same && ev->event_time_ms >= newest)) {
                begin_new(b, s, &r->se);
                return anchor_outcome(b, r);
        }
        if (is_same && strcmp(s->status, "ended") == 0) {
                long long d;

                s->started_ms = ev->event_time_ms;
                if (s->ended_ms >= 0) {
                        d = (s->ended_ms - ev->event_time_ms) / 1000; /* TIMESTAMPDIFF */
                        s->duration_s = d < 0 ? 0 : d;
                } else {
                        s->duration_s = -1;
                }
                s->anchor = coalesce(s->anchor, ev->anchor_id);
                s->room = coalesce(s->room, ev->room_id);
                s->is_changed = true;
                return "late_begin";
        }
        if (is_same)
                s->is_changed = true; /* touch: the vendor said the session is live again */
        return is_same ? "already_live" : "stale";
}

/* insert_ended() on the row in memory. @returns false for a start MySQL cannot store. */
static bool insert_ended(struct stream_batch *b, struct sb_stream *s, const struct stream_event *se)
{
        const struct event *ev = se->ev;

        if (se->push_duration_ms >= 0 &&
            !role_time_storable(ev->event_time_ms - se->push_duration_ms))
                return false;
        s->found = s->is_changed = true;
        s->anchor = ev->anchor_id;
        s->room = ev->room_id;
        s->session_id = (long long)ids_next(b->st->ids);
        s->vendor = se->vendor;
        s->vendor_session = se->sequence;
        s->status = "ended";
        s->started_ms = se->push_duration_ms >= 0 ? ev->event_time_ms - se->push_duration_ms : -1;
        s->ended_ms = ev->event_time_ms;
        s->duration_s = stream_duration_s(se, -1);
        s->close_method = se->close_method;
        s->close_reason = stream_close_reason(se);
        return true;
}

/* apply_end() on the row in memory; NULL for a start MySQL cannot store. */
static const char *decide_end(struct stream_batch *b, struct sb_stream *s, struct sb_rec *r)
{
        const struct stream_event *se = &r->se;
        const struct event *ev = se->ev;
        bool is_live = s->found && strcmp(s->status, "live") == 0;
        bool is_same = stream_same_session(s->vendor_session, se->sequence);

        if (!s->found)
                return insert_ended(b, s, se) ? "end_before_begin" : NULL;
        if (is_live && (!se->sequence || is_same || ev->event_time_ms >= s->started_ms)) {
                s->status = "ended";
                s->duration_s = stream_duration_s(se, s->started_ms);
                s->ended_ms = ev->event_time_ms;
                s->close_method = se->close_method;
                s->close_reason = stream_close_reason(se);
                s->is_changed = true;
                if (se->close_method >= 2 || stream_is_ghost_close(ev))
                        r->slot->rec->note = NOTE_VENDOR_DROP; /* this close ended a live session */
                return "applied";
        }
        if (!is_live && se->sequence && !is_same && ev->event_time_ms > s->ended_ms &&
            ev->event_time_ms > s->started_ms)
                return insert_ended(b, s, se) ? "end_before_begin" : NULL;
        return is_live ? "stale" : "already_ended";
}

/* session_handoff_record(): the session the row holds now, when it ended. */
static void note_handoff(struct sb_rec *r, const struct sb_stream *s)
{
        if (strcmp(s->status, "ended") != 0 || !s->session_id || s->ended_ms < 0) {
                log_warn(NULL, "session hand-off: stream %s has no ended session to hand off",
                         s->stream_id);
                return;
        }
        r->has_handoff = true;
        r->handoff = (struct sb_handoff){s->session_id,
                                         s->started_ms,
                                         s->ended_ms,
                                         s->duration_s,
                                         s->close_method < 0 ? 1 : s->close_method,
                                         s->anchor,
                                         s->room};
}

/* Every new event in batch order. @returns false when one cannot be decided here. */
static bool decide_all(struct stream_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                struct sb_rec *r = &b->recs[i];
                struct sb_stream *s;

                if (!r->is_valid || !r->is_new)
                        continue;
                if (r->se.is_leave) { /* a co-host left: the room's session ends with the room */
                        r->outcome = "cohost_leave";
                        r->slot->rec->note |= NOTE_NO_HANDOFF;
                        continue;
                }
                s = find_stream(b, r->se.ev->stream_id);
                r->outcome = r->se.is_begin ? decide_begin(b, s, r) : decide_end(b, s, r);
                if (!r->outcome)
                        return false;
                r->is_only_end = !r->se.is_begin && strcmp(r->outcome, "end_before_begin") == 0;
                if (r->is_only_end) /* adopt_tips() reads the row as this end leaves it */
                        r->only_end = (struct sb_handoff){
                                s->session_id,   s->started_ms, s->ended_ms, s->duration_s,
                                s->close_method, s->anchor,     s->room};
                if (stream_ends_session(&r->se, r->outcome))
                        note_handoff(r, s);
                else
                        r->slot->rec->note |= NOTE_NO_HANDOFF;
                /* notify_record_stream(): the fans' "went live", the room's "closed" */
                if (s->session_id &&
                    ((r->se.is_begin && strcmp(r->outcome, "applied") == 0) ||
                     (!r->se.is_begin && stream_ends_session(&r->se, r->outcome)))) {
                        r->has_notify = true;
                        r->notify = (struct sb_handoff){s->session_id, s->started_ms,   s->ended_ms,
                                                        s->duration_s, s->close_method, s->anchor,
                                                        s->room};
                        r->notify_cover = s->cover_url;
                        r->notify_reason = s->close_reason;
                }
        }
        return true;
}

/* replayed_event() for the copies of an event new in this batch: the first copy's outcome. */
static void note_replays(struct stream_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                struct sb_rec *r = &b->recs[i];
                const char *outcome;

                if (!r->is_valid || r->is_new || !b->recs[r->first].is_new)
                        continue;
                if (!replay_matters(&r->se))
                        continue;
                outcome = b->recs[r->first].outcome;
                note_from_outcome(r->slot->rec, &r->se, outcome);
        }
}

static void on_outcome(const struct db_col *cols, void *arg)
{
        struct stream_batch *b = arg;
        size_t i = keyset_find(&b->rb.ids, cols[0].s);

        if (i == b->rb.ids.n || cols[1].is_null)
                return;
        for (; i < b->rb.ids.n && strcmp(b->rb.ids.items[i].id, cols[0].s) == 0; i++) {
                struct sb_rec *r = &b->recs[b->rb.ids.items[i].index];

                if (b->rb.ids.items[i].is_known && replay_matters(&r->se))
                        note_from_outcome(r->slot->rec, &r->se, cols[1].s);
        }
}

/* replayed_event() for the events the ledger held before the batch. */
static enum db_result read_outcomes(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        char id[KEYSET_ID_MAX + 1], outcome[33];
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)},
                                {.type = DB_PARAM_STR, .s = outcome, .s_size = sizeof(outcome)}};
        size_t cnt = 0;

        if (!b->needs_outcomes)
                return DB_OK;
        for (size_t i = 0; i < b->rb.ids.n; i++)
                if (b->rb.ids.items[i].is_known && keyset_is_first(&b->rb.ids, i))
                        b->scratch[cnt++] = b->rb.ids.items[i].id;
        if (!cnt)
                return DB_OK;
        db_text_reset(&b->sql);
        db_text_add(&b->sql, "SELECT event_id, outcome FROM live_events WHERE consumer = "
                             "'stream' AND (");
        add_in_lists(b, "event_id", b->scratch, cnt);
        db_text_add(&b->sql, ")");
        return db_text_query(b->st->db, &b->sql, cols, 2, on_outcome, b, errstr, errstr_size);
}

/* Everything after the batch knows which events are new, when some are. */
static enum db_result write_new_events(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        enum db_result r;

        if (!collect_keys(b))
                return role_batch_fall_back("ids that MySQL may match other than byte for "
                                            "byte, or a time out of MySQL's range",
                                            errstr, errstr_size);
        if (b->stream_cnt && (r = find_existing(b, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->exist_cnt && !b->is_mismatch && (r = lock_streams(b, errstr, errstr_size)) != DB_OK)
                return r;
        for (size_t i = 0; i < b->stream_cnt; i++) /* a row that exists stays until it is locked */
                if (b->streams[i].does_exist && !b->streams[i].found)
                        b->is_mismatch = true;
        if (b->is_oom) {
                snprintf(errstr, errstr_size, "out of memory");
                return DB_RETRY;
        }
        if ((r = read_anchors(b, errstr, errstr_size)) != DB_OK)
                return r;
        if (b->is_mismatch)
                return role_batch_fall_back("ids that MySQL matches other than byte for byte",
                                            errstr, errstr_size);
        if (!decide_all(b))
                return role_batch_fall_back("a start out of MySQL's range", errstr, errstr_size);
        return stream_batch_write(b, errstr, errstr_size);
}

/* The batch with the ledger looked up first (and the outcomes of the replays that need them). */
static enum db_result write_read_first(void *arg, char *errstr, size_t errstr_size)
{
        struct stream_batch *b = arg;
        enum db_result r;

        if ((r = role_batch_look_up(&b->rb, b->st->ledger, errstr, errstr_size)) != DB_OK)
                return r;
        b->st->gate.is_reading_first = role_batch_met_held(&b->rb);
        take_new_events(b);
        if ((r = read_outcomes(b, errstr, errstr_size)) != DB_OK || !b->rb.fresh)
                return r;
        return write_new_events(b, errstr, errstr_size);
}

/*
 * The batch without the look-up: the first copy of every event is new and decided so, its
 * ledger row with the outcome decided; a replay among them fails the ledger's insert, the
 * batch's first write, and the batch is decided again after the look-up.
 */
static enum db_result write_unread(void *arg, char *errstr, size_t errstr_size)
{
        struct stream_batch *b = arg;

        role_batch_mark_unread(&b->rb);
        take_new_events(b);
        return b->rb.fresh ? write_new_events(b, errstr, errstr_size) : DB_OK;
}

/* What write_unread() decided: the rows as read, the outcomes, the notes (session ids taken
 * for it stay unused: they are unique, not consecutive). */
static void forget_unread(void *arg)
{
        struct stream_batch *b = arg;

        for (size_t i = 0; i < b->n; i++) {
                struct sb_rec *r = &b->recs[i];

                *r = (struct sb_rec){.slot = r->slot, .se = r->se};
                r->slot->rec->note = 0;
        }
        for (size_t i = 0; i < b->stream_cnt; i++)
                free(b->streams[i].db_strs);
        b->stream_cnt = b->anchor_cnt = b->exist_cnt = 0;
        b->is_mismatch = b->is_oom = b->needs_outcomes = false;
}

/* Unread, or the ledger looked up first (struct role_gate). */
static enum db_result write_batch(struct stream_batch *b, char *errstr, size_t errstr_size)
{
        static const struct role_gate_ways ways = {NULL, write_unread, forget_unread,
                                                   write_read_first};

        return role_gate_write(&b->st->gate, &ways, b->st->db, &b->sql, b, errstr, errstr_size);
}

static void log_batch(const struct stream_batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                const struct sb_rec *r = &b->recs[i];
                const struct consumer_record *rec = r->slot->rec;

                if (!r->is_valid)
                        continue;
                if (!r->is_new)
                        log_debug(rec->trace_id, "duplicate event %s stream=%s", rec->ev.event_id,
                                  rec->ev.stream_id);
                else
                        consumer_log_applied(rec,
                                             (const char *const[]){"stream", rec->ev.stream_id,
                                                                   "outcome", r->outcome, NULL});
        }
}

enum apply_result stream_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                    size_t errstr_size)
{
        struct stream_batch b = {.st = state, .n = n};
        enum db_result r = DB_RETRY;

        b.recs = calloc(n, sizeof(*b.recs));
        b.streams = calloc(n, sizeof(*b.streams));
        b.anchors = calloc(n, sizeof(*b.anchors));
        b.scratch = calloc(n, sizeof(*b.scratch));
        if (!b.recs || !b.streams || !b.anchors || !b.scratch)
                snprintf(errstr, errstr_size, "out of memory");
        else if ((r = role_batch_read(&b.rb, slots, n, read_one, &b, errstr, errstr_size)) ==
                         DB_OK &&
                 (r = write_batch(&b, errstr, errstr_size)) == DB_OK) {
                note_replays(&b);
                log_batch(&b);
        }
        role_batch_close(&b.rb);
        db_text_free(&b.sql);
        for (size_t i = 0; b.streams && i < b.stream_cnt; i++)
                free(b.streams[i].db_strs);
        free(b.recs);
        free(b.streams);
        free(b.anchors);
        free(b.scratch);
        return role_batch_result(r);
}
