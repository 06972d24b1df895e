/* live_statistics.c: test_stats's live_statistics: a session's figures over its window,
 * caught up with late records. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "crypto.h"
#include "support.h"

#include "fixture.h"

/* ------------------------------------------------------------------ live_statistics */

struct session_figures {
        long long gift_amount, gift_count, paying_users;
};

/* The gift figures: the room's tips in the window. */
static void expect_gifts(const struct tip_spec *tips, const char *const *rooms, size_t n,
                         const char *room, long long from_ms, long long to_ms,
                         struct session_figures *f)
{
        const char *payers[32];
        size_t payer_cnt = 0;

        f->gift_amount = f->gift_count = 0;
        for (size_t i = 0; i < n; i++) {
                size_t j = 0;

                if (strcmp(rooms[i], room) != 0 || tips[i].ts_ms < from_ms || tips[i].ts_ms > to_ms)
                        continue;
                f->gift_amount += tips[i].amount;
                f->gift_count++;
                while (j < payer_cnt && strcmp(payers[j], tips[i].audience) != 0)
                        j++;
                if (j == payer_cnt)
                        payers[payer_cnt++] = tips[i].audience;
        }
        f->paying_users = (long long)payer_cnt;
}

/* Waits until the session's live_statistics row reads f. */
static void wait_figures(long long session, const struct session_figures *f)
{
        char want[160], got[160] = "";
        long long deadline = support_now_ms() + 30000;

        /* The viewer columns are the audience role's: this worker leaves them NULL. */
        snprintf(want, sizeof(want), "%lld/%lld/%lld/-/-", f->gift_amount, f->gift_count,
                 f->paying_users);
        while (support_now_ms() < deadline) {
                support_query1(fx.mysql, got, sizeof(got),
                               "SELECT CONCAT_WS('/', gift_amount, gift_count, paying_users, "
                               "COALESCE(unique_viewers, '-'), COALESCE(peak_online, '-')) "
                               "FROM live_statistics WHERE session_id = %lld",
                               session);
                if (strcmp(got, want) == 0)
                        return;
                support_sleep_ms(100);
        }
        cr_assert_fail(
                "live_statistics of %lld: %s, want %s (amount/count/payers/viewers/peak; log %s)",
                session, got, want, fx.workers[0].log);
}

/* The session's figures with the first n tips (viewer figures are the audience role's). */
static void expect_figures(const struct tip_spec *tips, const char *const *rooms, size_t tip_cnt,
                           long long t0, long long t1, struct session_figures *f)
{
        expect_gifts(tips, rooms, tip_cnt, "sa", t0, t1, f);
}

Test(stats, session_statistics_count_the_window_and_catch_up_with_late_records)
{
        const long long t0 = 1767229200000LL, t1 = t0 + 600000; /* a 10-minute session */
        const long long session = (long long)getpid() * 1000 + 7, late_s = 10;
        const struct viewer_spec viewers[] = {
                {"c1", true, t0 + 10000, 1},  {"c2", true, t0 + 20000, 1},
                {"c2", true, t0 + 25000, 2},  {"c3", true, t0 + 30000, 1},
                {"c1", false, t0 + 40000, 1}, {"c4", false, t0 + 50000, 1},
                {"c4", true, t0 + 60000, 1},  {"c5", true, t0 + 60000, 1},
                {"c1", true, t0 + 70000, 2},  {"c3", false, t0 + 80000, 1},
                {"c6", true, t0 - 100000, 1}, {"c7", true, t1 + 100000, 1},
                {"c8", true, t0 + 65000, 1}, /* late: after the session.end */
        };
        const struct tip_spec tips[] = {
                {"g1", "u1", "sa", 100, t0 + 5000, NULL, NULL},
                {"g2", "u2", "sa", 50, t0 + 100000, NULL, NULL},
                {"g3", "u1", "sa", 25, t1, NULL, NULL},
                {"g4", "u3", "sa", 10, t0 - 1, NULL, NULL},
                {"g5", "u4", "sa", 999, t1 + 1, NULL, NULL},
                {"g6", "u5", "ob", 70, t0 + 100000, NULL, NULL},
                {"g7", "u6", "sa", 70, t0 + 300000, NULL, NULL}, /* late */
                {"g8", "u7", "sa", 40, t0 + 400000, NULL, NULL}, /* later than LIVEFLOW_STATS_LATE_S
                                                                  */
        };
        const char *const rooms[] = {"sa", "sa", "sa", "sa", "sa", "ob", "sa", "sa"};
        const size_t viewer_first = 12, tip_first = 6;
        struct session_figures f;
        char stream[96], anchor[96], computed[32], again[32] = "", sql[160];
        long long closed_ms;

        use_redis_db(7);
        id_of(stream, sizeof(stream), "stream");
        id_of(anchor, sizeof(anchor), "sa");
        start_worker(0, (const char *const[]){"LIVEFLOW_STATS_LATE_S=10", NULL});
        for (size_t i = 0; i < viewer_first; i++)
                produce_viewer(stream, &viewers[i]);
        produce_viewer(stream, &viewers[3]); /* a replay: counted once */
        for (size_t i = 0; i < tip_first; i++)
                produce_tip(&tips[i], rooms[i]);
        flush();
        wait_at_least((long long)tip_first, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        wait_at_least((long long)viewer_first, 30000, "viewer events in the ledger",
                      "SELECT COUNT(*) FROM stats_viewer_event");
        produce_session_end(stream, anchor, session, t0, t1);
        flush();
        expect_figures(tips, rooms, tip_first, t0, t1, &f);
        wait_figures(session, &f);
        cr_assert_eq(
                support_query_int(fx.mysql,
                                  "SELECT duration_s FROM live_statistics WHERE session_id = %lld",
                                  session),
                (t1 - t0) / 1000);

        /* A tip of the window that arrives after the end, within late_s of it: it alone marks
         * the session for computing again. Then a late viewer. */
        produce_tip(&tips[tip_first], rooms[tip_first]);
        flush();
        expect_figures(tips, rooms, tip_first + 1, t0, t1, &f);
        wait_figures(session, &f);
        produce_viewer(stream, &viewers[viewer_first]);
        flush();
        wait_at_least((long long)viewer_first + 1, 30000, "viewer events in the ledger",
                      "SELECT COUNT(*) FROM stats_viewer_event");
        wait_figures(session, &f);

        /* The session.end again: computed again, to the same figures. */
        support_query1(fx.mysql, computed, sizeof(computed),
                       "SELECT computed_at FROM live_statistics WHERE session_id = %lld", session);
        produce_session_end(stream, anchor, session, t0, t1);
        flush();
        for (long long deadline = support_now_ms() + 20000; support_now_ms() < deadline;
             support_sleep_ms(100)) {
                support_query1(fx.mysql, again, sizeof(again),
                               "SELECT computed_at FROM live_statistics WHERE session_id = %lld",
                               session);
                if (strcmp(again, computed) != 0)
                        break;
        }
        cr_assert_str_neq(again, computed, "the replayed session.end was not computed again");
        wait_figures(session, &f);

        /* Past late_s after the worker saw the end, a tip of the window no longer counts. */
        closed_ms =
                support_query_int(fx.mysql,
                                  "SELECT CAST(UNIX_TIMESTAMP(closed_at) * 1000 AS SIGNED) FROM "
                                  "stats_session WHERE session_id = %lld",
                                  session);
        if (closed_ms + late_s * 1000 + 1000 > wall_ms())
                support_sleep_ms((int)(closed_ms + late_s * 1000 + 1000 - wall_ms()));
        produce_tip(&tips[tip_first + 1], rooms[tip_first + 1]);
        flush();
        wait_at_least((long long)tip_first + 2, 30000, "tips in the ledger",
                      "SELECT COUNT(*) FROM stats_tip");
        support_sleep_ms(2500); /* two ticks: time enough to compute, had it been marked */
        snprintf(sql, sizeof(sql), "SELECT dirty FROM stats_session WHERE session_id = %lld",
                 session);
        cr_assert_eq(support_query_int(fx.mysql, "%s", sql), 0);
        wait_figures(session, &f);
        stop_worker_expect_clean_exit(0);
}
