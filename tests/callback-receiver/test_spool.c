/* test_spool.c: the receiver's durable spool: survives reopen, replays in order, cuts torn tails.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

#define MAX_BYTES (1 << 20)

static char dir[64];
static char errstr[256];

/* What a send function saw, and how many it accepts. */
static struct {
        char keys[16][64];
        char values[16][64];
        size_t value_lens[16];
        bool key_was_null[16];
        size_t seen;
        size_t accept;
} got;

static void setup(void)
{
        snprintf(dir, sizeof(dir), "/tmp/liveflow_spool_XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        memset(&got, 0, sizeof(got));
}

static void teardown(void)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(spool, .init = setup, .fini = teardown);

static size_t record_sends(void *arg, const struct webhook_event *recs, size_t n)
{
        (void)arg;
        for (size_t i = 0; i < n && got.seen < 16; i++, got.seen++) {
                got.key_was_null[got.seen] = recs[i].key == NULL;
                snprintf(got.keys[got.seen], 64, "%s", recs[i].key ? recs[i].key : "");
                memcpy(got.values[got.seen], recs[i].value, recs[i].value_len);
                got.value_lens[got.seen] = recs[i].value_len;
                cr_assert_str_eq(recs[i].topic, "live.viewer");
                cr_assert_str_eq(recs[i].event_type, "viewer.join");
        }
        return got.accept < n ? got.accept : n;
}

static void append(struct spool *sp, const char *key, const void *value, size_t len)
{
        const struct webhook_event rec = {.topic = "live.viewer",
                                          .key = key,
                                          .trace_id = "t1",
                                          .event_type = "viewer.join",
                                          .vendor = "srs",
                                          .event_id = "e1",
                                          .value = (void *)value,
                                          .value_len = len};

        cr_assert_eq(spool_append(sp, &rec, errstr, sizeof(errstr)), 0, "%s", errstr);
}

static long long file_size(void)
{
        char path[128];
        struct stat st;

        snprintf(path, sizeof(path), "%s/receiver.spool", dir);
        cr_assert_eq(stat(path, &st), 0);
        return (long long)st.st_size;
}

Test(spool, records_survive_a_reopen_and_replay_in_order_with_binary_values)
{
        struct spool *sp = spool_open(dir, MAX_BYTES, errstr, sizeof(errstr));

        cr_assert_not_null(sp, "%s", errstr);
        append(sp, "s1", "\xc3\x01\x00\xff", 4);
        append(sp, NULL, "", 0);
        append(sp, "s3", "abc", 3);
        spool_close(sp);

        sp = spool_open(dir, MAX_BYTES, errstr, sizeof(errstr));
        cr_assert_not_null(sp, "%s", errstr);
        cr_assert_eq(spool_pending(sp), 3);
        got.accept = 3;
        cr_assert_eq(spool_replay(sp, record_sends, NULL, errstr, sizeof(errstr)), 3, "%s", errstr);
        cr_assert_eq(got.seen, 3);
        cr_assert_str_eq(got.keys[0], "s1");
        cr_assert_eq(got.value_lens[0], 4);
        cr_assert_eq(memcmp(got.values[0], "\xc3\x01\x00\xff", 4), 0);
        cr_assert(got.key_was_null[1]);
        cr_assert_eq(got.value_lens[1], 0);
        cr_assert_str_eq(got.keys[2], "s3");
        cr_assert_eq(spool_pending(sp), 0);
        cr_assert_eq(file_size(), 0);
        spool_close(sp);
}

Test(spool, a_partial_replay_keeps_the_rest_durably)
{
        struct spool *sp = spool_open(dir, MAX_BYTES, errstr, sizeof(errstr));

        cr_assert_not_null(sp, "%s", errstr);
        append(sp, "a", "1", 1);
        append(sp, "b", "2", 1);
        append(sp, "c", "3", 1);
        got.accept = 1;
        cr_assert_eq(spool_replay(sp, record_sends, NULL, errstr, sizeof(errstr)), 1);
        cr_assert_eq(spool_pending(sp), 2);
        append(sp, "d", "4", 1); /* appends still work after the rewrite */
        spool_close(sp);

        memset(&got, 0, sizeof(got));
        sp = spool_open(dir, MAX_BYTES, errstr, sizeof(errstr));
        cr_assert_not_null(sp, "%s", errstr);
        cr_assert_eq(spool_pending(sp), 3);
        got.accept = 16;
        cr_assert_eq(spool_replay(sp, record_sends, NULL, errstr, sizeof(errstr)), 3);
        cr_assert_str_eq(got.keys[0], "b");
        cr_assert_str_eq(got.keys[1], "c");
        cr_assert_str_eq(got.keys[2], "d");
        spool_close(sp);
}

Test(spool, a_torn_append_is_cut_at_open)
{
        char path[128];
        struct spool *sp = spool_open(dir, MAX_BYTES, errstr, sizeof(errstr));
        long long whole;
        int fd;

        cr_assert_not_null(sp, "%s", errstr);
        append(sp, "a", "1", 1);
        append(sp, "b", "2", 1);
        spool_close(sp);
        whole = file_size();
        /* A crash in the middle of a third append: its header and half its body. */
        snprintf(path, sizeof(path), "%s/receiver.spool", dir);
        fd = open(path, O_WRONLY | O_APPEND);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd,
                           "LFS1\x40\x00\x00\x00"
                           "12345678"
                           "\x01\x00",
                           18),
                     18);
        close(fd);

        sp = spool_open(dir, MAX_BYTES, errstr, sizeof(errstr));
        cr_assert_not_null(sp, "%s", errstr);
        cr_assert_eq(spool_pending(sp), 2);
        cr_assert_eq(file_size(), whole);
        append(sp, "c", "3", 1);
        got.accept = 16;
        cr_assert_eq(spool_replay(sp, record_sends, NULL, errstr, sizeof(errstr)), 3);
        cr_assert_str_eq(got.keys[2], "c");
        spool_close(sp);
}

Test(spool, appends_beyond_the_bound_fail_and_nothing_is_sent_when_send_refuses)
{
        char big[512];
        struct spool *sp = spool_open(dir, 1024, errstr, sizeof(errstr));
        int ok = 0;

        cr_assert_not_null(sp, "%s", errstr);
        memset(big, 'x', sizeof(big));
        for (int i = 0; i < 4; i++) {
                const struct webhook_event rec = {.topic = "live.viewer",
                                                  .key = "k",
                                                  .event_type = "viewer.join",
                                                  .value = big,
                                                  .value_len = sizeof(big)};

                ok += spool_append(sp, &rec, errstr, sizeof(errstr)) == 0;
        }
        cr_assert_eq(ok, 1, "a 1 KiB spool takes one 0.5 KiB record");
        cr_assert(strstr(errstr, "full") != NULL, "%s", errstr);
        got.accept = 0;
        cr_assert_eq(spool_replay(sp, record_sends, NULL, errstr, sizeof(errstr)), 0);
        cr_assert_eq(spool_pending(sp), 1);
        spool_close(sp);
}

Test(spool, a_missing_directory_is_a_clear_error)
{
        cr_assert_null(spool_open("/nonexistent/liveflow", MAX_BYTES, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "/nonexistent/liveflow/receiver.spool") != NULL, "%s", errstr);
}
