/* stream_snapshot.c: test_batch_oracle's stream and snapshot roles: batch against per-record,
 * and ids equal under the collation. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "audit.h"
#include "codec.h"
#include "consumer.h"
#include "crypto.h"
#include "db.h"
#include "kafka.h"
#include "metrics.h"
#include "other.h"
#include "produce.h"
#include "record.h"
#include "redis_conn.h"
#include "settings.h"
#include "snapshot.h"
#include "stream_lifecycle.h"
#include "support.h"

#include "fixture.h"

/* ------------------------------------------------------------------ stream */

/* Session ids come from a clock: compared by their order, not their values. */
static const char *const stream_tables[] = {
        "SELECT consumer, event_id, vendor, event_type, stream_id, trace_id, event_time, "
        "received_at, kafka_topic, kafka_partition, kafka_offset, outcome FROM live_events "
        "ORDER BY consumer, event_id",
        "SELECT stream_id, anchor_id, room_id, DENSE_RANK() OVER (ORDER BY session_id), vendor, "
        "vendor_session, status, started_at, ended_at, duration_s, close_method, cover_url "
        "FROM live_streams ORDER BY stream_id",
        "SELECT event_id, DENSE_RANK() OVER (ORDER BY session_id), stream_id, anchor_id, room_id, "
        "started_at, ended_at, duration_s, close_method FROM session_handoff ORDER BY event_id",
        "SELECT trace_id, session_id IS NULL, DENSE_RANK() OVER (ORDER BY session_id) FROM "
        "recharge ORDER BY trace_id",
        "SELECT kind, anchor_id, room_id, stream_id, JSON_REMOVE(payload, '$.session_id') AS p "
        "FROM notify_messages ORDER BY stream_id, kind, anchor_id, room_id, p",
        NULL};

static const char *const stream_seed[] = {
        "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, "
        "vendor_session, status, started_at, ended_at, duration_s, close_method, last_event_at) "
        "VALUES ('st-live', 'a-live', 'r-live', 21, 'tencent', 'seqA', 'live', "
        "FROM_UNIXTIME(1700000000), NULL, NULL, NULL, NOW()), "
        "('st-ended', NULL, NULL, 22, 'tencent', 'seqB', 'ended', FROM_UNIXTIME(1700000000), "
        "FROM_UNIXTIME(1700000100), 100, 1, NOW()), "
        "('st-ended2', 'a-e2', NULL, 23, 'tencent', 'seqD', 'ended', NULL, "
        "FROM_UNIXTIME(1700000300.5), 0, 2, NOW())",
        "INSERT INTO anchors (anchor_id, status, suspended_until) VALUES "
        "('a-banned', 'banned', NULL), ('a-susp', 'suspended', FROM_UNIXTIME(1800000000)), "
        "('a-ok', 'active', NULL)",
        /* Tips no session took, for the sessions recorded from their end alone */
        "INSERT INTO recharge (trace_id, audience_id, anchor_id, room_id, amount, tipped_at) "
        "VALUES ('t-n2-in', 'u1', 'a-x', 'room-n2', 100, FROM_UNIXTIME(1700000050)), "
        "('t-n2-out', 'u1', 'a-x', 'room-n2', 100, FROM_UNIXTIME(1700000095)), "
        "('t-n1-in', 'u2', 'a-ok', 'room-n1', 7, FROM_UNIXTIME(1700000030))",
        NULL};

static json_t *begin_payload(const char *sequence)
{
        return json_pack("{s:s?}", "sequence", sequence);
}

static json_t *end_payload(const char *sequence, int close_method, long long push_ms)
{
        json_t *p = json_pack("{s:s?,s:i}", "sequence", sequence, "close_method", close_method);

        if (push_ms >= 0)
                json_object_set_new(p, "push_duration_ms", json_integer(push_ms));
        return p;
}

#define S(x) (T0_MS + (x)*1000LL)

static size_t stream_inputs(struct input *in, bool with_collation_pair)
{
        size_t n = 0;

#define BEGIN(key, stream, seq, t, anchor)                                                         \
        in[n++] = (struct input){key,    "stream.begin", "StreamBegin",                            \
                                 stream, NULL,           begin_payload(seq),                       \
                                 t,      anchor,         "room-" stream}
#define END(key, type, stream, seq, cm, push, t)                                                   \
        in[n++] = (struct input)                                                                   \
        {                                                                                          \
                key, type, "StreamEnd", stream, NULL, end_payload(seq, cm, push), t, NULL,         \
                        "room-" stream                                                             \
        }
        BEGIN("b-n1-s1", "n1", "s1", S(10), "a-ok");
        END("e-n1-s1", "stream.end", "n1", "s1", 1, 60000, S(70));
        BEGIN("b-n1-s2", "n1", "s2", S(200), "a-ok");
        BEGIN("b-live-again", "st-live", "seqA", S(20), "a-live");
        BEGIN("b-live-stale", "st-live", "seqX", S(-50), "a-live");
        END("e-ended-newer", "stream.end", "st-ended", "seqC", 1, 30000, S(500));
        BEGIN("b-ended-late", "st-ended", "seqB", S(1), "a-late");
        BEGIN("b-ended2-late", "st-ended2", "seqD", S(2), "a-late2"); /* its end came first */
        END("c-live-forced", "stream.close", "st-live", NULL, 2, -1, S(300));
        BEGIN("b-banned", "b1", "x1", S(5), "a-banned");
        BEGIN("b-susp", "s1", "y1", S(1000), "a-susp");
        END("e-no-row", "stream.end", "n2", "z1", 1, 60000, S(90)); /* t-n2-in is its tip */
        END("e-no-row-nopush", "stream.end", "n3", "z2", 1, -1, S(95));
        in[n++] = (struct input){"j-live",  "stream.join", "StreamBegin",
                                 "st-live", NULL,          begin_payload("seqJ"),
                                 S(40),     "a-cohost",    "room-j"};
        in[n++] = (struct input){"j-new",  "stream.join", "StreamBegin",
                                 "room-j", NULL,          begin_payload("seqK"),
                                 S(41),    "a-cohost",    "room-j"};
        in[n++] = (struct input){"l-live",  "stream.leave", "StreamEnd",
                                 "st-live", NULL,           end_payload("seqJ", 1, -1),
                                 S(45),     "a-cohost",     NULL};
        /* close_method 5: permanent, on both paths */
        END("e-bad", "stream.end", "n1", "s1", 5, -1, S(80));
        if (with_collation_pair) {
                BEGIN("b-case-upper", "Case-A", "c1", S(10), "a-ok");
                BEGIN("b-case-lower", "case-a", "c2", S(20), "a-ok");
        }
#undef BEGIN
#undef END
        return n;
}

Test(batch_oracle, stream_batch_matches_per_record)
{
        struct input in[MAX_RECS];
        size_t n = stream_inputs(in, false);

        for (unsigned seed = 1; seed <= 4; seed++)
                cr_expect(run_oracle(&stream_lifecycle_role, in, n, seed, stream_seed,
                                     stream_tables, 11),
                          "seed %u: the batch did not take the set-based path", seed);
        free_inputs(in, n);
}

/*
 * The batch writes its notifications as one notify_batch row; a replay of the batch (every
 * event in the ledger) writes no second row and no message again: a session's stream.live
 * only at its opening, its stream.ended only at the one change that ended it (not at a late
 * begin of an ended session, which the input holds).
 */
Test(batch_oracle, stream_replayed_batch_writes_no_second_bundle)
{
        struct input in[MAX_RECS];
        size_t n = stream_inputs(in, false);
        struct side s;
        struct batch b;
        enum apply_result r[MAX_RECS];
        char *before, *after;
        long long bundles, ended;

        open_side(&s, &stream_lifecycle_role, stream_seed, 0);
        make_batch(&b, in, n, 2);
        apply_batch(&s, &stream_lifecycle_role, &b, r);
        cr_expect(s.took_fast_path);
        bundles = support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_batch");
        cr_expect_eq(bundles, 1, "one row for the batch's notifications");
        ended = support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_messages WHERE kind = "
                                           "'stream.ended' AND stream_id = 'n2'");
        cr_expect_eq(ended, 1, "an end that came without its begin, told once");
        /* A late begin of a session ended before (the seed's) tells nothing again. */
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_messages WHERE "
                                                "stream_id = 'st-ended2'"),
                     0);
        before = dump(s.mysql, stream_tables[4]);
        free_batch(&b);
        make_batch(&b, in, n, 3);
        s.took_fast_path = false;
        apply_batch(&s, &stream_lifecycle_role, &b, r);
        cr_expect(s.took_fast_path);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_batch"), bundles);
        after = dump(s.mysql, stream_tables[4]);
        cr_expect_str_eq(before, after);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_messages GROUP BY "
                                                "event_id ORDER BY COUNT(*) DESC LIMIT 1"),
                     1, "every notification once");
        free(before);
        free(after);
        free_batch(&b);
        close_side(&s, &stream_lifecycle_role);
        free_inputs(in, n);
}

/*
 * The gate: the first batch goes unread; the second holds replays of the first's begins (one a
 * cut-off, whose replay cuts off again from its recorded outcome), so its ledger insert fails
 * and it is decided again after the look-up; the third reads first and finds nothing held;
 * the fourth goes unread again. Every turn ends as the per-record path ends.
 */
Test(batch_oracle, stream_replay_goes_read_first_then_unread_again)
{
        struct input in[MAX_RECS];
        size_t n = stream_inputs(in, false);
        static const size_t first[] = {0, 3, 9, 11}, replay[] = {1, 9, 8, 0},
                            fresh[] = {2, 5, 6, 16}, more[] = {10, 13, 14, 15, 7};
        const struct turn turns[] = {{first, 4, {1, 0, 0}},
                                     {replay, 4, {1, 0, 1}},
                                     {fresh, 4, {1, 1, 1}},
                                     {more, 5, {2, 1, 1}}};

        run_turns(&stream_lifecycle_role, in, turns, 4, stream_seed, stream_tables);
        free_inputs(in, n);
}

Test(batch_oracle, stream_collation_equal_ids_end_as_per_record)
{
        struct input in[MAX_RECS];
        size_t n = stream_inputs(in, true);

        run_oracle(&stream_lifecycle_role, in, n, 9, stream_seed, stream_tables, 13);
        free_inputs(in, n);
}

/* ------------------------------------------------------------------ snapshot */

static const char *const snapshot_tables[] = {
        "SELECT consumer, event_id, vendor, event_type, stream_id, trace_id, event_time, "
        "received_at, kafka_topic, kafka_partition, kafka_offset, outcome FROM live_events "
        "ORDER BY consumer, event_id",
        "SELECT stream_id, vendor, pic_url, pic_full_url, width, height, file_size, taken_at, "
        "event_id, cover_pending FROM live_snapshots ORDER BY event_id",
        "SELECT vendor, stream_id, cover_url, cover_time FROM live_streams ORDER BY stream_id",
        NULL};

/* sc1 with a cover taken at T0 + 100 s; sc2 without one; sc3 has no row (its shots wait). */
static const char *const snapshot_seed[] = {
        "INSERT INTO live_streams (stream_id, session_id, vendor, status, started_at, cover_url, "
        "cover_time, last_event_at) VALUES ('sc1', 31, 'tencent', 'live', "
        "FROM_UNIXTIME(1700000000), 'https://old/cover.jpg', FROM_UNIXTIME(1700000100), NOW()), "
        "('sc2', 32, 'tencent', 'live', FROM_UNIXTIME(1700000000), NULL, NULL, NOW()), "
        "('Case-S', 33, 'tencent', 'live', FROM_UNIXTIME(1700000000), NULL, NULL, NOW())",
        NULL};

static json_t *shot_payload(const char *url, long long taken_ms, bool has_full)
{
        return json_pack("{s:s,s:s?,s:I,s:i,s:i,s:I}", "pic_url", url, "pic_full_url",
                         has_full ? "https://cdn/full.jpg" : NULL, "create_time_ms",
                         (json_int_t)taken_ms, "width", 1280, "height", 720, "file_size",
                         (json_int_t)30670);
}

static size_t snapshot_inputs(struct input *in, bool with_collation_pair)
{
        size_t n = 0;

#define SHOT(key, stream, url, t, full)                                                            \
        in[n++] = (struct input){key,    "snapshot", "Snapshot",                                   \
                                 stream, NULL,       shot_payload(url, t, full),                   \
                                 0,      NULL,       NULL}
        SHOT("p-sc1-older", "sc1", "/a/older.jpg", S(50), false);    /* older than the cover */
        SHOT("p-sc1-newer", "sc1", "/a/newer.jpg", S(200), true);    /* the cover now */
        SHOT("p-sc1-newest", "sc1", "/a/newest.jpg", S(300), false); /* newer still */
        SHOT("p-sc2-first", "sc2", "/b/first.jpg", S(10), false);    /* the first cover */
        SHOT("p-sc2-second", "sc2", "/b/second.jpg", S(20), false);
        SHOT("p-sc3-pending", "sc3", "/c/pending.jpg", S(30), false); /* no row: pending */
        /* a time MySQL cannot store: permanent, on both paths */
        SHOT("p-bad-time", "sc2", "/b/bad.jpg", 4102444800000LL, false);
        if (with_collation_pair) {
                SHOT("p-case-upper", "Case-S", "/d/upper.jpg", S(40), false);
                SHOT("p-case-lower", "case-s", "/d/lower.jpg", S(41), false);
        }
#undef SHOT
        return n;
}

Test(batch_oracle, snapshot_batch_matches_per_record)
{
        struct input in[MAX_RECS];
        size_t n = snapshot_inputs(in, false);

        for (unsigned seed = 1; seed <= 3; seed++)
                cr_expect(
                        run_oracle(&snapshot_role, in, n, seed, snapshot_seed, snapshot_tables, 0),
                        "seed %u: the batch did not take the set-based path", seed);
        free_inputs(in, n);
}

Test(batch_oracle, snapshot_collation_equal_ids_end_as_per_record)
{
        struct input in[MAX_RECS];
        size_t n = snapshot_inputs(in, true);

        run_oracle(&snapshot_role, in, n, 5, snapshot_seed, snapshot_tables, 0);
        free_inputs(in, n);
}
