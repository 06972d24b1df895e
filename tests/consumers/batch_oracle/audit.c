/* audit.c: test_batch_oracle's audit role: batch against per-record, random verdicts, ids equal
 * under the collation and a replayed batch. */
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

/* ------------------------------------------------------------------ audit */

static const char *const audit_tables[] = {
        "SELECT event_id, event_type, event_time, trace_id, stream_id, anchor_id, source, "
        "suggestion, label, score, reason, punishment, severity, outcome, suspended_until, "
        "close_stream_id, close_vendor, close_method FROM live_audit_logs ORDER BY event_id",
        "SELECT anchor_id, status, suspended_until, admin_at, warning_count, gender FROM anchors "
        "ORDER BY anchor_id",
        "SELECT event_id, kind, anchor_id, room_id, stream_id, payload FROM notify_messages "
        "ORDER BY event_id",
        NULL};

/*
 * a-live streams st-live now (and st-live-old, an older session still marked live); a-banned is
 * banned; a-susp is suspended for a year; a-chain had a warning an hour before the base time (it
 * counts towards a window of the batch's); a-old had one two days before (it does not).
 */
static char audit_seed_live[1024], audit_seed_anchors[512], audit_seed_logs[1024];
static const char *const audit_seed[] = {audit_seed_live, audit_seed_anchors, audit_seed_logs,
                                         NULL};

/* Verdicts from an hour ago: a suspension from then is in force and closes a live stream. */
static long long audit_base_ms(void)
{
        return ((long long)time(NULL) - 3600) * 1000;
}

static void audit_seed_init(long long base_ms)
{
        snprintf(
                audit_seed_live, sizeof(audit_seed_live),
                "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, "
                "status, started_at, last_event_at) VALUES ('st-live', 'a-live', 'r-live', 41, "
                "'tencent', 'live', NOW() - INTERVAL 2 HOUR, NOW()), ('st-chain', 'a-chain', "
                "'r-chain', 42, 'tencent', 'live', NOW() - INTERVAL 2 HOUR, NOW()), ('st-live-old', "
                "'a-live', 'r-live', 43, 'tencent', 'live', NOW() - INTERVAL 3 HOUR, NOW())");
        snprintf(audit_seed_anchors, sizeof(audit_seed_anchors),
                 "INSERT INTO anchors (anchor_id, status, suspended_until, warning_count) VALUES "
                 "('a-banned', 'banned', NULL, 0), ('a-susp', 'suspended', "
                 "FROM_UNIXTIME(%lld / 1000) + INTERVAL 300 DAY, 0), "
                 "('a-chain', 'active', NULL, 1)",
                 base_ms);
        snprintf(
                audit_seed_logs, sizeof(audit_seed_logs),
                "INSERT INTO live_audit_logs (event_id, event_type, event_time, anchor_id, source, "
                "suggestion, score, punishment, severity, outcome) VALUES "
                "('seed-chain', 'audit.image', FROM_UNIXTIME(%lld / 1000), 'a-chain', "
                "'tencent.image', 'Review', 70, 'warn', 'warn', 'applied'), "
                "('seed-old', 'audit.image', FROM_UNIXTIME(%lld / 1000), 'a-old', "
                "'tencent.image', 'Review', 70, 'warn', 'warn', 'applied')",
                base_ms - 3600 * 1000, base_ms - 2 * 86400 * 1000LL);
}

static json_t *moderation(const char *suggestion, const char *label, long long score)
{
        json_t *p = json_pack("{s:s,s:s?,s:s?}", "source", "tencent.image", "suggestion",
                              suggestion, "label", label);

        if (score >= 0)
                json_object_set_new(p, "score", json_integer(score));
        return p;
}

static json_t *admin(const char *action, long long suspend_s)
{
        json_t *p = json_pack("{s:s,s:s,s:s}", "source", "admin", "action", action, "reason",
                              "operator");

        if (suspend_s >= 0)
                json_object_set_new(p, "suspend_s", json_integer(suspend_s));
        return p;
}

static size_t audit_inputs(struct input *in, long long base, bool with_collation_pair)
{
        size_t n = 0;

#define M(key, stream, anchor, t, sg, label, score)                                                \
        in[n++] = (struct input)                                                                   \
        {                                                                                          \
                key, "audit.image", "AuditVerdict", stream, NULL, moderation(sg, label, score),    \
                        base + (t)*1000LL, anchor, NULL                                            \
        }
#define A(key, anchor, t, action, suspend_s)                                                       \
        in[n++] = (struct input)                                                                   \
        {                                                                                          \
                key, "audit.admin", "AuditVerdict", NULL, NULL, admin(action, suspend_s),          \
                        base + (t)*1000LL, anchor, NULL                                            \
        }
        /* a-chain: with the seeded warning, the third warning in the window escalates */
        M("w-chain-1", NULL, "a-chain", 10, "Review", "Porn", 70);
        M("w-chain-2", NULL, "a-chain", 20, "Review", "Porn", 75);
        M("w-chain-3", NULL, "a-chain", 30, "Review", "Porn", 80);
        /* a-old: its seeded warning is outside the window: two warnings stay warnings */
        M("w-old-1", NULL, "a-old", 5, "Review", "Ads", 65);
        M("w-old-2", NULL, "a-old", 6, NULL, NULL, 66);
        /* a-win: four warnings, the last far outside the first three's window */
        M("w-win-1", NULL, "a-win", 0, "Review", "Ads", 61);
        M("w-win-2", NULL, "a-win", 100, "Review", "Ads", 62);
        M("w-win-3", NULL, "a-win", -200000, "Review", "Ads", 63);
        M("w-win-4", NULL, "a-win", 200, "Review", "Ads", 64);
        /* a-live: a ban by label closes its live stream; one verdict finds it by stream only */
        M("b-live", NULL, "a-live", 40, "Block", "Polity", 99);
        M("s-live-stream", "st-live", NULL, 41, "Block", "Porn", 95);
        /* a-cross's ban closes the verdict's own stream (a-chain's), not another */
        M("b-cross", "st-chain", "a-cross", 42, "Block", "Polity", 99);
        /* a-adm: an operator ban, an older automated suspension (superseded), an unban */
        A("adm-ban", "a-adm", 50, "ban", -1);
        M("s-adm-older", NULL, "a-adm", 45, "Block", "Porn", 95);
        A("adm-unban", "a-adm", 60, "unban", -1);
        A("adm-stale", "a-adm", 55, "ban", -1); /* older than the unban: stale */
        M("w-adm-after", NULL, "a-adm", 70, "Review", "Porn", 70);
        /* an operator's suspension of an anchor suspended longer already */
        A("adm-susp", "a-susp2", 80, "ban", 600);
        M("s-banned", NULL, "a-banned", 90, "Block", "Porn", 95); /* already banned */
        M("s-susp", NULL, "a-susp", 91, "Block", "Porn", 92);     /* never shortened */
        M("p-pass", NULL, "a-ok", 92, "Pass", NULL, 10);
        M("n-unknown", "st-unknown", NULL, 93, "Block", "Porn", 95); /* no anchor */
        M("bad-score", NULL, "a-ok", 94, "Review", NULL, 200);       /* permanent */
        A("bad-action", "a-ok", 95, "mute", -1);                     /* permanent */
        if (with_collation_pair) {
                M("c-upper", NULL, "Anc-C", 96, "Block", "Porn", 95);
                M("c-lower", NULL, "anc-c", 97, "Review", "Porn", 70);
        }
#undef M
#undef A
        return n;
}

Test(batch_oracle, audit_batch_matches_per_record)
{
        struct input in[MAX_RECS];
        long long base = audit_base_ms();
        size_t n = audit_inputs(in, base, false);

        audit_seed_init(base);
        for (unsigned seed = 1; seed <= 4; seed++)
                cr_expect(run_oracle(&audit_role, in, n, seed, audit_seed, audit_tables, 3),
                          "seed %u: the batch did not take the set-based path", seed);
        free_inputs(in, n);
}

/*
 * The gate: the first batch goes unread; the second holds a replay of the first's warning, so
 * its log rows' INSERT fails whole and it is decided again after the look-up (the replay
 * counts no warning twice); the third reads first and finds nothing logged before; the fourth
 * goes unread again. Every turn ends as the per-record path ends.
 */
Test(batch_oracle, audit_replay_goes_read_first_then_unread_again)
{
        struct input in[MAX_RECS];
        long long base = audit_base_ms();
        size_t n = audit_inputs(in, base, false);
        static const size_t first[] = {0, 3, 5, 9}, replay[] = {1, 0, 6, 12},
                            fresh[] = {2, 4, 7, 13, 14}, more[] = {8, 10, 11, 15, 16, 17, 18, 19};
        const struct turn turns[] = {{first, 4, {1, 0, 0}},
                                     {replay, 4, {1, 0, 1}},
                                     {fresh, 5, {1, 1, 1}},
                                     {more, 8, {2, 1, 1}}};

        audit_seed_init(base);
        run_turns(&audit_role, in, turns, 4, audit_seed, audit_tables);
        free_inputs(in, n);
}

/*
 * A random mix of verdicts over a few anchors (seeded rows among them): warnings close
 * enough to escalate, on equal times too, suspensions, bans, operators' bans and unbans,
 * verdicts whose anchor comes from their stream, times days apart.
 */
static size_t audit_random_inputs(struct input *in, long long base, unsigned seed, char keys[][24])
{
        static const char *const anchors[] = {"a-live", "a-chain", "a-banned", "a-r1", "a-r2"};
        static const char *const streams[] = {"st-live", "st-chain", "st-unknown"};
        size_t n = 0;

        for (int i = 0; i < 40; i++) {
                int kind = rand_r(&seed) % 20;
                const char *anchor = anchors[rand_r(&seed) % 5];
                /* a grid of ten-minute steps: equal times happen, windows end within the mix */
                long long t = base + (long long)(rand_r(&seed) % 300 - 250) * 600 * 1000;
                json_t *p;

                snprintf(keys[n], 24, "r-%u-%d", seed, i);
                if (kind < 9) /* a warning */
                        p = moderation("Review", "Ads", 60 + rand_r(&seed) % 30);
                else if (kind < 12)
                        p = moderation("Block", "Porn", 90 + rand_r(&seed) % 10);
                else if (kind < 13)
                        p = moderation("Block", "Terror", 99);
                else if (kind < 14)
                        p = moderation("Pass", NULL, 5);
                else if (kind < 16)
                        p = admin(rand_r(&seed) % 2 ? "ban" : "unban", -1);
                else
                        p = moderation(kind % 2 ? "Review" : "Block", "Porn", 70 + kind);
                in[n] = (struct input){keys[n],
                                       kind == 14 || kind == 15 ? "audit.admin" : "audit.image",
                                       "AuditVerdict",
                                       NULL,
                                       NULL,
                                       p,
                                       t,
                                       anchor,
                                       NULL};
                if (kind >= 16) { /* no anchor in the envelope: live_streams names it */
                        in[n].anchor_id = NULL;
                        in[n].stream_id = streams[rand_r(&seed) % 3];
                }
                n++;
        }
        return n;
}

Test(batch_oracle, audit_random_verdicts_end_as_per_record)
{
        struct input in[MAX_RECS];
        char keys[MAX_RECS][24];
        long long base = audit_base_ms();

        audit_seed_init(base);
        for (unsigned seed = 21; seed <= 24; seed++) {
                size_t n = audit_random_inputs(in, base, seed, keys);

                cr_expect(run_oracle(&audit_role, in, n, seed, audit_seed, audit_tables, 7),
                          "seed %u: the batch did not take the set-based path", seed);
                free_inputs(in, n);
        }
}

Test(batch_oracle, audit_collation_equal_ids_end_as_per_record)
{
        struct input in[MAX_RECS];
        long long base = audit_base_ms();
        size_t n = audit_inputs(in, base, true);

        audit_seed_init(base);
        /* Either path is fine here; what counts is the end state. */
        run_oracle(&audit_role, in, n, 11, audit_seed, audit_tables, 5);
        free_inputs(in, n);
}

Test(batch_oracle, audit_replayed_batch_changes_nothing)
{
        struct input in[MAX_RECS];
        long long base = audit_base_ms();
        size_t n = audit_inputs(in, base, false);
        struct side s;
        struct batch b;
        enum apply_result r[MAX_RECS];
        char *before[3], *after;
        long long bundles;

        audit_seed_init(base);
        open_side(&s, &audit_role, audit_seed, 0);
        make_batch(&b, in, n, 2);
        apply_batch(&s, &audit_role, &b, r);
        cr_expect(s.took_fast_path);
        for (size_t i = 0; i < 3; i++)
                before[i] = dump(s.mysql, audit_tables[i]);
        bundles = support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_batch");
        cr_expect_eq(bundles, 1, "one row for the batch's punishments");
        free_batch(&b);
        make_batch(&b, in, n, 3);
        s.took_fast_path = false;
        apply_batch(&s, &audit_role, &b, r);
        cr_expect(s.took_fast_path);
        for (size_t i = 0; i < 3; i++) {
                after = dump(s.mysql, audit_tables[i]);
                cr_expect_str_eq(before[i], after);
                free(after);
                free(before[i]);
        }
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_batch"), bundles,
                     "a replayed batch wrote a second bundle");
        free_batch(&b);
        close_side(&s, &audit_role);
        free_inputs(in, n);
}
