/*
 * test_batch_oracle.c: a role's set-based path (apply_many) against its per-record path
 * (apply), which stays the oracle. The same shuffled input with duplicates goes through each
 * path into a database of its own, and every table the role writes must end up the same.
 * Each path runs as the runtime runs it: the per-record path a transaction per record (a
 * permanent failure rolls back its own record), the batch path one transaction for the batch,
 * and when apply_many() declines, a rollback and the per-record path. This file holds the
 * record and other roles; its parts in batch_oracle/: stream_snapshot.c (the stream and snapshot
 * roles) and audit.c (the audit role); fixture.h is what they share.
 */
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
#include "batch_oracle/fixture.h"

struct codec *codec;
struct settings settings;

static void setup(void)
{
        char err[256];

        cr_assert((codec = codec_new(err, sizeof(err))) != NULL, "%s", err);
        setenv("LIVEFLOW_KAFKA_BOOTSTRAP", support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), 1);
        setenv("LIVEFLOW_MYSQL_URL", support_fixture("LIVEFLOW_TEST_MYSQL_URL"), 1);
        setenv("LIVEFLOW_REDIS_URL", support_fixture("LIVEFLOW_TEST_REDIS_URL"), 1);
        cr_assert(settings_load(&settings, SETTINGS_CONSUMER, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
        settings_fini(&settings);
        codec_destroy(codec);
}

TestSuite(batch_oracle, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ input */

void decode_into(struct consumer_record *rec, const struct input *in, long long offset)
{
        char event_id[65], err[256];
        struct envelope env = {
                .event_id = event_id,
                .vendor = "tencent",
                .event_type = in->event_type,
                .stream_id = in->stream_id,
                .anchor_id = in->anchor_id,
                .room_id = in->room_id,
                .event_time_ms = in->event_time_ms ? in->event_time_ms : T0_MS + 60000,
                .receive_time_ms = T0_MS + 60005,
                .trace_id = "0123456789abcdef0123456789abcdef",
                .raw = in->raw ? in->raw : "{}",
                .raw_len = strlen(in->raw ? in->raw : "{}"),
        };
        void *buf;
        size_t len;

        crypto_sha256_hex(in->event_key, strlen(in->event_key), event_id);
        cr_assert(codec_encode(codec, &env, in->payload_name, in->payload, &buf, &len, err,
                               sizeof(err)) == 0,
                  "%s", err);
        memset(rec, 0, sizeof(*rec));
        cr_assert(codec_decode(codec, buf, len, &rec->ev, err, sizeof(err)) == 0, "%s", err);
        free(buf);
        rec->topic = "live.test";
        rec->partition = (int)(offset % 3);
        rec->offset = offset;
        rec->timestamp_ms = T0_MS + offset;
        rec->trace_id = rec->ev.trace_id;
}

/*
 * The batch: every input once, some twice (a redelivery with a later offset), in an order
 * shuffled by seed.
 */
void make_batch(struct batch *b, const struct input *in, size_t n, unsigned seed)
{
        size_t order[MAX_RECS], cnt = 0;

        for (size_t i = 0; i < n; i++) {
                order[cnt++] = i;
                if (i % 3 == 0 && cnt < MAX_RECS)
                        order[cnt++] = i; /* a duplicate */
        }
        for (size_t i = cnt; i > 1; i--) { /* Fisher-Yates with a fixed seed */
                size_t j = (size_t)rand_r(&seed) % i, t = order[i - 1];

                order[i - 1] = order[j];
                order[j] = t;
        }
        memset(b, 0, sizeof(*b));
        for (size_t i = 0; i < cnt; i++) {
                decode_into(&b->recs[i], &in[order[i]], 100 + (long long)i);
                b->slots[i] = (struct apply_slot){&b->recs[i], APPLY_DONE, b->errors[i],
                                                  sizeof(b->errors[i])};
        }
        b->n = cnt;
}

void free_batch(struct batch *b)
{
        for (size_t i = 0; i < b->n; i++)
                event_fini(&b->recs[i].ev);
}

/* ------------------------------------------------------------------ the two paths */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        (void)rk;
        produce_ack_report(opaque, rkm);
}

/*
 * A side on a fresh database seeded with the seed statements (NULL-terminated, may be NULL),
 * and Redis database redis_db, emptied first (0: the fixture's, left alone: the role does not
 * use Redis). Tests run in parallel: each that uses Redis names databases of its own.
 */
void open_side(struct side *s, const struct consumer_role *role, const char *const *seed,
               int redis_db)
{
        struct role_env env = {0};
        char err[512], redis_url[256];
        const char *base = support_fixture("LIVEFLOW_TEST_REDIS_URL");
        const char *slash = strrchr(base, '/');
        redisReply *reply;

        memset(s, 0, sizeof(*s));
        support_create_database(s->url, sizeof(s->url));
        s->mysql = support_mysql_connect(s->url);
        for (size_t i = 0; seed && seed[i]; i++)
                cr_assert(mysql_query(s->mysql, seed[i]) == 0, "%s", mysql_error(s->mysql));
        cr_assert((s->db = db_new(s->url, 5, err, sizeof(err))) != NULL, "%s", err);
        cr_assert((s->metrics = metrics_new()) != NULL);
        snprintf(redis_url, sizeof(redis_url), "%.*s/%d", (int)(slash - base), base, redis_db);
        cr_assert((s->redis = redis_conn_new(redis_url, 2000, err, sizeof(err))) != NULL, "%s",
                  err);
        if (redis_db) {
                cr_assert((reply = redis_conn_cmd(s->redis, 1, (const char *[]){"FLUSHDB"}, NULL,
                                                  err, sizeof(err))) != NULL,
                          "%s", err);
                freeReplyObject(reply);
        }
        cr_assert((s->producer = kafka_producer_new(&settings, "oracle", on_delivery, &s->ack, err,
                                                    sizeof(err))) != NULL,
                  "%s", err);
        env.settings = &settings;
        env.db = s->db;
        env.redis = s->redis;
        env.metrics = s->metrics;
        env.producer = s->producer;
        env.ack = &s->ack;
        env.role = role->name;
        cr_assert(role->open(&env, &s->state, err, sizeof(err)) == 0, "%s", err);
}

void close_side(struct side *s, const struct consumer_role *role)
{
        role->close(s->state);
        rd_kafka_flush(s->producer, 5000);
        rd_kafka_destroy(s->producer);
        redis_conn_destroy(s->redis);
        db_destroy(s->db);
        metrics_destroy(s->metrics);
        mysql_close(s->mysql);
}

/* The per-record path: a transaction per record, as the runtime's one-at-a-time path. */
void apply_each(struct side *s, const struct consumer_role *role, struct batch *b,
                enum apply_result *results)
{
        char err[512];

        for (size_t i = 0; i < b->n; i++) {
                cr_assert(db_begin(s->db, err, sizeof(err)) == DB_OK, "%s", err);
                results[i] = role->apply(s->state, &b->recs[i], err, sizeof(err));
                cr_assert(results[i] != APPLY_RETRY, "record %zu: %s", i, err);
                if (results[i] == APPLY_PERMANENT)
                        db_rollback(s->db);
                else
                        cr_assert(db_commit(s->db, err, sizeof(err)) == DB_OK, "%s", err);
        }
}

/* The batch path: one transaction; when apply_many() declines, a rollback and apply_each(). */
void apply_batch(struct side *s, const struct consumer_role *role, struct batch *b,
                 enum apply_result *results)
{
        char err[512] = "";

        cr_assert(db_begin(s->db, err, sizeof(err)) == DB_OK, "%s", err);
        if (role->apply_many(s->state, b->slots, b->n, err, sizeof(err)) == APPLY_DONE) {
                cr_assert(db_commit(s->db, err, sizeof(err)) == DB_OK, "%s", err);
                s->took_fast_path = true;
                for (size_t i = 0; i < b->n; i++)
                        results[i] = b->slots[i].result;
                return;
        }
        db_rollback(s->db);
        fprintf(stderr, "%s: the batch went one record at a time: %s\n", role->name, err);
        apply_each(s, role, b, results);
}

/* publish() of every applied record that asked for it, in batch order. */
void publish_each(struct side *s, const struct consumer_role *role, struct batch *b,
                  const enum apply_result *results)
{
        char err[512];

        for (size_t i = 0; i < b->n; i++)
                if (results[i] == APPLY_DONE && b->recs[i].publish)
                        cr_assert(role->publish(s->state, &b->recs[i], err, sizeof(err)) == 0,
                                  "record %zu: %s", i, err);
}

/* publish_many() of the same records, as the runtime calls it (publish() each when it fails). */
void publish_batch(struct side *s, const struct consumer_role *role, struct batch *b,
                   const enum apply_result *results)
{
        struct consumer_record *recs[MAX_RECS];
        size_t n = 0;
        char err[512];

        for (size_t i = 0; i < b->n; i++)
                if (results[i] == APPLY_DONE && b->recs[i].publish)
                        recs[n++] = &b->recs[i];
        if (!role->publish_many) {
                publish_each(s, role, b, results);
                return;
        }
        if (role->publish_many(s->state, recs, n, err, sizeof(err)) == -1)
                publish_each(s, role, b, results); /* as the runtime falls back */
}

static int cmp_strp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_line(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key of a side's Redis database with its value (sets and hashes sorted), one a line. */
static char *dump_redis(struct side *s)
{
        char err[256], *out = calloc(1, 1 << 16);
        size_t len = 0;
        redisReply *keys =
                redis_conn_cmd(s->redis, 2, (const char *[]){"KEYS", "*"}, NULL, err, sizeof(err));

        cr_assert(keys && out, "%s", err);
        for (size_t i = 0; i < keys->elements; i++) {
                const char *k = keys->element[i]->str;
                redisReply *type = redis_conn_cmd(s->redis, 2, (const char *[]){"TYPE", k}, NULL,
                                                  err, sizeof(err));
                const char *cmd = strcmp(type->str, "set") == 0    ? "SMEMBERS"
                                  : strcmp(type->str, "hash") == 0 ? "HGETALL"
                                                                   : "GET";
                redisReply *v = redis_conn_cmd(s->redis, 2, (const char *[]){cmd, k}, NULL, err,
                                               sizeof(err));
                char *items[256];
                size_t cnt = 0;

                cr_assert(v, "%s", err);
                if (v->type == REDIS_REPLY_ARRAY) {
                        for (size_t j = 0; j < v->elements && cnt < 256;
                             j += cmd[0] == 'H' ? 2 : 1) {
                                char *item = NULL;

                                const char *field = v->element[j]->str;
                                /*
                                 * session ids are taken from a clock, anchor_status_version is
                                 * anchors.updated_at: each side has its own
                                 */
                                const char *val =
                                        cmd[0] != 'H' ? ""
                                        : strcmp(field, "session_id") == 0 ||
                                                        strcmp(field, "anchor_status_version") == 0
                                                ? "*"
                                                : v->element[j + 1]->str;

                                cr_assert(asprintf(&item, "%s=%s", field, val) > 0);
                                items[cnt++] = item;
                        }
                        qsort(items, cnt, sizeof(*items), cmp_strp);
                }
                len += (size_t)snprintf(out + len, (1 << 16) - len, "%s:", k);
                for (size_t j = 0; j < cnt; j++) {
                        len += (size_t)snprintf(out + len, (1 << 16) - len, " %s", items[j]);
                        free(items[j]);
                }
                if (v->type == REDIS_REPLY_STRING)
                        len += (size_t)snprintf(out + len, (1 << 16) - len, " %s", v->str);
                len += (size_t)snprintf(out + len, (1 << 16) - len, "\n");
                freeReplyObject(v);
                freeReplyObject(type);
        }
        freeReplyObject(keys);
        return out;
}

/* The dump's lines sorted (KEYS answers in no order). */
static char *sorted_lines(char *text)
{
        char *lines[1024], *save = NULL, *out = calloc(1, strlen(text) + 2);
        size_t n = 0;

        for (char *l = strtok_r(text, "\n", &save); l && n < 1024; l = strtok_r(NULL, "\n", &save))
                lines[n++] = l;
        qsort(lines, n, sizeof(*lines), cmp_line);
        for (size_t i = 0; i < n; i++) {
                strcat(out, lines[i]);
                strcat(out, "\n");
        }
        free(text);
        return out;
}

void expect_same_redis(struct side *a, struct side *b)
{
        char *x = sorted_lines(dump_redis(a)), *y = sorted_lines(dump_redis(b));

        cr_expect_str_eq(x, y, "Redis\nper record:\n%s\nbatch:\n%s", x, y);
        free(x);
        free(y);
}

/* Every row of a query, "|"-joined columns and one line per row. */
char *dump(MYSQL *mysql, const char *sql)
{
        size_t cap = 4096, len = 0;
        char *out = calloc(1, cap);
        MYSQL_RES *res;
        MYSQL_ROW row;

        cr_assert(mysql_query(mysql, sql) == 0, "%s: %s", sql, mysql_error(mysql));
        cr_assert((res = mysql_store_result(mysql)) != NULL);
        while ((row = mysql_fetch_row(res))) {
                for (unsigned i = 0; i < mysql_num_fields(res); i++) {
                        const char *v = row[i] ? row[i] : "NULL";
                        size_t need = len + strlen(v) + 2;

                        if (need >= cap) {
                                cap = need * 2;
                                cr_assert((out = realloc(out, cap)) != NULL);
                        }
                        len += (size_t)sprintf(out + len, "%s%c", v,
                                               i + 1 < mysql_num_fields(res) ? '|' : '\n');
                }
        }
        mysql_free_result(res);
        return out;
}

void expect_same_tables(struct side *a, struct side *b, const char *const *queries)
{
        for (size_t i = 0; queries[i]; i++) {
                char *x = dump(a->mysql, queries[i]), *y = dump(b->mysql, queries[i]);

                cr_expect_str_eq(x, y, "%s\nper record:\n%s\nbatch:\n%s", queries[i], x, y);
                free(x);
                free(y);
        }
}

/*
 * Runs in through both paths (shuffled by seed, with duplicates) and compares the results of
 * every record and the tables. @returns whether the batch path took its fast path.
 */
bool run_oracle(const struct consumer_role *role, const struct input *in, size_t n, unsigned seed,
                const char *const *seed_sql, const char *const *queries, int redis_db)
{
        struct side each, many;
        struct batch b1, b2;
        enum apply_result r1[MAX_RECS], r2[MAX_RECS];
        bool fast;

        make_batch(&b1, in, n, seed);
        make_batch(&b2, in, n, seed);
        open_side(&each, role, seed_sql, redis_db);
        open_side(&many, role, seed_sql, redis_db ? redis_db + 1 : 0);
        apply_each(&each, role, &b1, r1);
        apply_batch(&many, role, &b2, r2);
        for (size_t i = 0; i < b1.n; i++) {
                cr_expect_eq(r1[i], r2[i], "record %zu: %d per record, %d in the batch", i, r1[i],
                             r2[i]);
                if (r1[i] != APPLY_DONE)
                        continue;
                cr_expect_eq(b1.recs[i].note, b2.recs[i].note, "record %zu: note %lld, %lld", i,
                             b1.recs[i].note, b2.recs[i].note);
                cr_expect_eq(b1.recs[i].publish, b2.recs[i].publish, "record %zu: publish", i);
        }
        if (role->publish && redis_db) {
                publish_each(&each, role, &b1, r1);
                publish_batch(&many, role, &b2, r2);
                expect_same_redis(&each, &many);
        }
        expect_same_tables(&each, &many, queries);
        fast = many.took_fast_path;
        close_side(&each, role);
        close_side(&many, role);
        free_batch(&b1);
        free_batch(&b2);
        return fast;
}

/* The batch side's counter of batches that went this way (role_gate: unread, read_first, ...). */
long long gate_count(struct side *s, const char *role_name, const char *way)
{
        char series[128], *text = metrics_render(s->metrics, NULL), *at;
        long long v = 0;

        snprintf(series, sizeof(series), "liveflow_%s_batches_total{way=\"%s\"} ", role_name, way);
        cr_assert(text);
        if ((at = strstr(text, series)))
                v = strtoll(at + strlen(series), NULL, 10);
        free(text);
        return v;
}

void run_turns(const struct consumer_role *role, const struct input *in, const struct turn *turns,
               size_t turn_cnt, const char *const *seed_sql, const char *const *queries)
{
        struct side each, many;

        open_side(&each, role, seed_sql, 0);
        open_side(&many, role, seed_sql, 0);
        for (size_t t = 0; t < turn_cnt; t++) {
                struct input part[MAX_RECS];
                struct batch b1, b2;
                enum apply_result r1[MAX_RECS], r2[MAX_RECS];
                static const char *const ways[] = {"unread", "read_first", "conflict"};

                for (size_t i = 0; i < turns[t].n; i++)
                        part[i] = in[turns[t].idx[i]];
                make_batch(&b1, part, turns[t].n, (unsigned)t + 1);
                make_batch(&b2, part, turns[t].n, (unsigned)t + 1);
                apply_each(&each, role, &b1, r1);
                many.took_fast_path = false;
                apply_batch(&many, role, &b2, r2);
                cr_expect(many.took_fast_path, "turn %zu went one record at a time", t);
                for (size_t i = 0; i < b1.n; i++) {
                        cr_expect_eq(r1[i], r2[i], "turn %zu record %zu: %d, %d", t, i, r1[i],
                                     r2[i]);
                        cr_expect_eq(b1.recs[i].note, b2.recs[i].note, "turn %zu record %zu: note",
                                     t, i);
                        cr_expect_eq(b1.recs[i].publish, b2.recs[i].publish,
                                     "turn %zu record %zu: publish", t, i);
                }
                for (size_t w = 0; w < 3; w++)
                        cr_expect_eq(gate_count(&many, role->name, ways[w]), turns[t].ways[w],
                                     "turn %zu: %s batches %lld, not %lld", t, ways[w],
                                     gate_count(&many, role->name, ways[w]), turns[t].ways[w]);
                expect_same_tables(&each, &many, queries);
                free_batch(&b1);
                free_batch(&b2);
        }
        close_side(&each, role);
        close_side(&many, role);
}

void free_inputs(struct input *in, size_t n)
{
        for (size_t i = 0; i < n; i++)
                json_decref(in[i].payload);
}

/* ------------------------------------------------------------------ record */

static const char *const record_tables[] = {
        "SELECT consumer, event_id, vendor, event_type, stream_id, trace_id, event_time, "
        "received_at, kafka_topic, kafka_partition, kafka_offset, outcome FROM live_events "
        "ORDER BY consumer, event_id",
        "SELECT file_id, stream_id, session_id, session_key, vendor, video_url, file_format, "
        "duration_s, file_size, start_time, end_time, trace_id FROM live_records ORDER BY file_id",
        "SELECT event_id, kind, anchor_id, room_id, stream_id, payload FROM notify_messages "
        "ORDER BY event_id",
        NULL};

/* s1 live since T0 (session 11); s2 from T0 to T0 + 1000 s (session 12); s3 has no row. */
static const char *const record_seed[] = {
        "INSERT INTO live_streams (stream_id, anchor_id, room_id, session_id, vendor, status, "
        "started_at, ended_at, last_event_at) VALUES "
        "('s1', 'a1', 'r1', 11, 'tencent', 'live', FROM_UNIXTIME(1700000000), NULL, NOW()), "
        "('s2', 'a2', 'r2', 12, 'tencent', 'ended', FROM_UNIXTIME(1700000000), "
        "FROM_UNIXTIME(1700001000), NOW()), "
        "('Room-A', 'a3', 'r3', 13, 'tencent', 'live', FROM_UNIXTIME(1700000000), NULL, NOW())",
        NULL};

static json_t *file_payload(const char *file_id, long long start_ms)
{
        json_t *p = json_pack("{s:s,s:s,s:s,s:i,s:I}", "file_id", file_id, "video_url",
                              "https://vod.example/x.m3u8", "file_format", "hls", "duration_s", 60,
                              "file_size", (json_int_t)12345);

        if (start_ms >= 0)
                json_object_set_new(p, "start_time_ms", json_integer(start_ms));
        return p;
}

static size_t record_inputs(struct input *in, bool with_collation_pair)
{
        size_t n = 0;
        static const struct {
                const char *key, *stream, *file;
                long long start_ms;
        } files[] = {
                {"f-in-s1", "s1", "F1", T0_MS + 10000},      /* inside s1's session */
                {"f-before-s1", "s1", "F2", T0_MS - 60000},  /* before it: no session */
                {"f-in-s2", "s2", "F3", T0_MS + 999000},     /* inside s2's span */
                {"f-late-s2", "s2", "F4", T0_MS + 1050000},  /* in the 60 s slack */
                {"f-after-s2", "s2", "F5", T0_MS + 1100000}, /* after: no session */
                {"f-no-row", "s3", "F6", T0_MS},             /* no stream row */
                {"f-no-time", "s1", "F7", -1},               /* the event time decides */
                {"f-again", "s1", "F1", T0_MS + 20000},      /* a known file, a new event */
                {"f-other-stream", "s2", "F2", T0_MS},       /* a known file of s1 from s2 */
                {"f-fill", "s1", "F6", T0_MS},               /* F6 as s3's: s1 cannot fill it */
                {"f-fill-s1", "s1", "F2", T0_MS + 30000},    /* F2 gets s1's session */
        };

        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
                in[n++] = (struct input){files[i].key,
                                         "record.file",
                                         "RecordFile",
                                         files[i].stream,
                                         NULL,
                                         file_payload(files[i].file, files[i].start_ms),
                                         0,
                                         NULL,
                                         NULL};
        in[n++] = (struct input){
                "status-1",
                "record.status",
                "RecordStatus",
                "s1",
                NULL,
                json_pack("{s:s,s:s,s:s}", "record_event", "start", "session_key", "k", "seq", "1"),
                0,
                NULL,
                NULL};
        /* An empty file_id: permanent, on both paths. */
        in[n++] = (struct input){"bad-file", "record.file", "RecordFile",
                                 "s1",       NULL,          file_payload("", T0_MS),
                                 0,          NULL,          NULL};
        if (with_collation_pair) {
                in[n++] = (struct input){"room-a-upper",
                                         "record.file",
                                         "RecordFile",
                                         "Room-A",
                                         NULL,
                                         file_payload("G-1", T0_MS + 5000),
                                         0,
                                         NULL,
                                         NULL};
                in[n++] = (struct input){"room-a-lower",
                                         "record.file",
                                         "RecordFile",
                                         "room-a",
                                         NULL,
                                         file_payload("g-1", T0_MS + 6000),
                                         0,
                                         NULL,
                                         NULL};
        }
        return n;
}

Test(batch_oracle, record_batch_matches_per_record)
{
        struct input in[MAX_RECS];
        size_t n = record_inputs(in, false);

        for (unsigned seed = 1; seed <= 3; seed++)
                cr_expect(run_oracle(&record_role, in, n, seed, record_seed, record_tables, 0),
                          "seed %u: the batch did not take the set-based path", seed);
        free_inputs(in, n);
}

Test(batch_oracle, record_collation_equal_ids_end_as_per_record)
{
        struct input in[MAX_RECS];
        size_t n = record_inputs(in, true);

        /* Either path is fine here; what counts is the end state. */
        run_oracle(&record_role, in, n, 7, record_seed, record_tables, 0);
        free_inputs(in, n);
}

Test(batch_oracle, record_replayed_batch_changes_nothing)
{
        struct input in[MAX_RECS];
        size_t n = record_inputs(in, false);
        struct side s;
        struct batch b;
        enum apply_result r[MAX_RECS];
        char *before, *after, *notes;

        open_side(&s, &record_role, record_seed, 0);
        make_batch(&b, in, n, 5);
        apply_batch(&s, &record_role, &b, r);
        before = dump(s.mysql, record_tables[1]);
        notes = dump(s.mysql, record_tables[2]);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_batch"), 1,
                     "one row for the batch's record.ready notifications");
        free_batch(&b);
        make_batch(&b, in, n, 6);
        s.took_fast_path = false;
        apply_batch(&s, &record_role, &b, r);
        cr_expect(s.took_fast_path);
        after = dump(s.mysql, record_tables[1]);
        cr_expect_str_eq(before, after);
        free(after);
        after = dump(s.mysql, record_tables[2]);
        cr_expect_str_eq(notes, after, "a replayed batch told a change again");
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM notify_batch"), 1,
                     "a replayed batch wrote a second bundle");
        free(notes);
        cr_expect_eq(support_query_int(s.mysql, "SELECT COUNT(*) FROM live_events"),
                     (long long)n - 1, "every valid event once");
        free(before);
        free(after);
        free_batch(&b);
        close_side(&s, &record_role);
        free_inputs(in, n);
}

/*
 * The gate: a first batch goes unread; one holding a replay of an earlier batch's event meets
 * it in the ledger insert (conflict), writes nothing and goes read first; the next batch reads
 * first and finds nothing held, so the one after goes unread again. Every turn ends as the
 * per-record path ends.
 */
Test(batch_oracle, record_replay_goes_read_first_then_unread_again)
{
        struct input in[MAX_RECS];
        size_t n = record_inputs(in, false);
        static const size_t first[] = {0, 1, 2, 11}, replay[] = {3, 4, 0, 5}, fresh[] = {6, 7},
                            more[] = {8, 9, 10};
        const struct turn turns[] = {{first, 4, {1, 0, 0}},
                                     {replay, 4, {1, 0, 1}},
                                     {fresh, 2, {1, 1, 1}},
                                     {more, 3, {2, 1, 1}}};

        run_turns(&record_role, in, turns, 4, record_seed, record_tables);
        free_inputs(in, n);
}

/* ------------------------------------------------------------------ other */

static const char *const other_tables[] = {
        "SELECT consumer, event_id, vendor, event_type, stream_id, trace_id, event_time, "
        "received_at, kafka_topic, kafka_partition, kafka_offset, outcome FROM live_events "
        "ORDER BY consumer, event_id",
        NULL};

Test(batch_oracle, other_batch_matches_per_record)
{
        struct input in[MAX_RECS];
        size_t n = 0;

        in[n++] = (struct input){"o1", "other", NULL, "s1", "{\"event_type\":100}",
                                 NULL, 0,       NULL, NULL};
        in[n++] = (struct input){"o2", "other", NULL, "s2", "{\"action\":\"on_dvr\"}",
                                 NULL, 0,       NULL, NULL};
        in[n++] = (struct input){"o3", "other", NULL, NULL, "not json", NULL, 0, NULL, NULL};
        in[n++] = (struct input){"o4", "other", NULL, "s1", "{\"event_type\":\"a b\"}",
                                 NULL, 0,       NULL, NULL};
        /* After 2038: permanent on both paths. */
        in[n++] =
                (struct input){"o5", "other", NULL, "s1", "{}", NULL, 4102444800000LL, NULL, NULL};
        for (unsigned seed = 1; seed <= 3; seed++)
                cr_expect(run_oracle(&other_role, in, n, seed, NULL, other_tables, 0),
                          "seed %u: the batch did not take the set-based path", seed);
}
