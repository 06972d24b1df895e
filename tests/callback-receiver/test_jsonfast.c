/*
 * test_jsonfast.c: the receiver's request parser (callback-receiver/jsonfast.c): jansson's
 * reading of a body whichever parser ran, and cJSON's blocks from each thread's arena — trees
 * alive together beyond the arena's room, freed in any order, on several threads at once.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../callback-receiver/jsonfast.h" /* the Makefile gives tests no -I<program dir> */

/* A callback-sized document (~700 bytes) whose values say which one it is. */
static size_t doc(char *out, size_t size, int i)
{
        return (size_t)snprintf(
                out, size,
                "{\"app\":\"push.example.test\",\"appid\":1250000001,\"channel_id\":\"s-%d\","
                "\"event_time\":1700000000%03d,\"event_type\":1,\"node\":\"10.0.0.%d\","
                "\"sequence\":\"seq-%d\",\"sign\":\"0123456789abcdef0123456789abcdef\","
                "\"stream_id\":\"s-%d\",\"stream_param\":\"txSecret=ab&anchor_id=a-%d&room_id=r-%d"
                "&app_ver=3.12.0&os=android-14&net=wifi&codec=h264&fps=30&res=1920x1080\","
                "\"t\":1900000000,\"user_ip\":\"127.0.0.1\",\"nested\":{\"list\":[1,2,3,"
                "{\"deep\":\"d-%d\",\"more\":[\"x\",\"y\",\"z\",\"w\"]}],\"flag\":true,"
                "\"nothing\":null,\"text\":\"caf\\u00e9 \\\"quoted\\\"\"},\"width\":1920}",
                i, i % 1000, i % 250, i, i, i, i, i);
}

/* The tree says it is document i. */
static void expect_doc(const cJSON *root, int i)
{
        char want[32];
        const cJSON *nested = cJSON_GetObjectItemCaseSensitive(root, "nested");
        const cJSON *deep = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(nested, "list"), 3);
        int64_t n = 0;

        snprintf(want, sizeof(want), "s-%d", i);
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "stream_id")),
                         want);
        snprintf(want, sizeof(want), "d-%d", i);
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(deep, "deep")),
                         want);
        cr_assert(jsonfast_integer(cJSON_GetObjectItemCaseSensitive(root, "event_time"), &n));
        cr_assert(eq(i64, n, 1700000000000LL + i % 1000));
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(nested, "text")),
                         "caf\xc3\xa9 \"quoted\"");
}

static cJSON *parse_doc(int i)
{
        char body[1024];
        size_t len = doc(body, sizeof(body), i);
        json_error_t jerr;
        cJSON *root = NULL;

        cr_assert(eq(int, jsonfast_parse(body, len, &root, &jerr), 0), "%s", jerr.text);
        return root;
}

/* 300 callbacks' trees (~1 MB of blocks) alive at once, far more than one arena holds. */
#define MANY 300

Test(jsonfast, trees_alive_together_beyond_the_arena_read_right_and_free_in_any_order)
{
        static cJSON *trees[MANY];

        for (int round = 0; round < 3; round++) {
                for (int i = 0; i < MANY; i++)
                        trees[i] = parse_doc(i + round * MANY);
                for (int i = 0; i < MANY; i++)
                        expect_doc(trees[i], i + round * MANY);
                /* freed from both ends and the middle, the arena's blocks among malloc's */
                for (int i = 0; i < MANY / 2; i++) {
                        cJSON_Delete(trees[i]);
                        cJSON_Delete(trees[MANY - 1 - i]);
                        if (i % 7 == 0) { /* one made and freed while the rest are alive */
                                cJSON *t = parse_doc(9999);

                                expect_doc(t, 9999);
                                cJSON_Delete(t);
                        }
                }
        }
}

static void *parse_many(void *arg)
{
        int base = *(int *)arg;
        cJSON *kept = NULL;

        for (int i = 0; i < 5000; i++) {
                cJSON *t = parse_doc(base + i);

                expect_doc(t, base + i);
                if (i % 3 == 0) { /* a tree kept across the next parses */
                        cJSON_Delete(kept);
                        kept = t;
                } else {
                        cJSON_Delete(t);
                }
        }
        cJSON_Delete(kept);
        return NULL;
}

Test(jsonfast, threads_parsing_at_once_each_read_their_own_trees)
{
        pthread_t th[4];
        int bases[4] = {0, 100000, 200000, 300000};

        for (int i = 0; i < 4; i++)
                cr_assert(eq(int, pthread_create(&th[i], NULL, parse_many, &bases[i]), 0));
        for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
}

static int parse_text(const char *s, cJSON **root, json_error_t *jerr)
{
        return jsonfast_parse(s, strlen(s), root, jerr);
}

Test(jsonfast, a_body_is_read_as_jansson_reads_it)
{
        json_error_t jerr;
        cJSON *root = NULL;
        int64_t n = 0;

        /* a duplicate key at any depth is refused, with jansson's words */
        cr_assert(eq(int, parse_text("{\"a\":{\"b\":1,\"b\":2}}", &root, &jerr), -1));
        cr_assert(strstr(jerr.text, "duplicate") != NULL, "%s", jerr.text);
        /* keys alike in their first bytes are not duplicates */
        cr_assert(eq(int, parse_text("{\"app\":1,\"appid\":2,\"ap\":3}", &root, &jerr), 0));
        cJSON_Delete(root);
        /* an integer beyond 2^53 keeps its digits (jansson's path) */
        cr_assert(eq(int, parse_text("{\"n\":9007199254740993}", &root, &jerr), 0));
        cr_assert(jsonfast_integer(cJSON_GetObjectItemCaseSensitive(root, "n"), &n));
        cr_assert(eq(i64, n, 9007199254740993LL));
        cJSON_Delete(root);
        /* a control character inside a string is malformed */
        cr_assert(eq(int, parse_text("{\"a\":\"x\x01y\"}", &root, &jerr), -1));
}
