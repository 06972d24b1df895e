/* support_stack.c: processes of the stack under test, signed requests, records on topics. */
#include "support_stack.h"

#include "support.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ processes */

void support_proc_launch(struct support_proc *p, const char *prefix, const char *role,
                         const char *mysql_url, const char *group, const char *const topics[],
                         const char *const env[])
{
        snprintf(p->log, sizeof(p->log), "/tmp/%s.%s.log", prefix, role ? role : "receiver");
        if (group && topics)
                support_group_at_end(group, topics);
        p->pid = support_spawn_worker(role ? "liveflow-consumer" : "liveflow-receiver", role,
                                      mysql_url, group, env, p->log, &p->admin_port);
}

void support_procs_ready(struct support_proc *const procs[], int n)
{
        for (int i = 0; i < n; i++)
                cr_assert(support_wait_ready(procs[i]->admin_port, 30000) == 0, "not ready; see %s",
                          procs[i]->log);
}

void support_proc_stop(struct support_proc *p)
{
        if (p->pid > 0 && support_wait_exit(p->pid, 0) == -1) {
                kill(p->pid, SIGKILL);
                support_wait_exit(p->pid, 5000);
        }
        p->pid = 0;
}

void support_stream_stack_start(struct support_stream_stack *s, const char *name,
                                const char *group_before, const char *group_after,
                                const char *const env[])
{
        static const char *const stream_topics[] = {"live.stream", NULL};
        struct support_proc *all[] = {&s->receiver, &s->consumer};
        char e_http[64], group[160];
        const char *all_env[16] = {e_http};
        int n = 1;

        for (int i = 0; env && env[i]; i++) {
                cr_assert(n < 15, "too many variables for the stack");
                all_env[n++] = env[i];
        }
        support_unique_name(name, s->prefix, sizeof(s->prefix));
        support_create_database(s->mysql_url, sizeof(s->mysql_url));
        s->mysql = support_mysql_connect(s->mysql_url);
        s->redis = support_redis_connect(0, false, NULL, 0);
        s->http_port = support_free_port();
        snprintf(e_http, sizeof(e_http), "LIVEFLOW_HTTP_PORT=%d", s->http_port);
        support_proc_launch(&s->receiver, s->prefix, NULL, s->mysql_url, NULL, NULL, all_env);
        snprintf(group, sizeof(group), "%s%s%s", group_before, s->prefix, group_after);
        support_proc_launch(&s->consumer, s->prefix, "stream", s->mysql_url, group, stream_topics,
                            all_env);
        support_procs_ready(all, 2);
}

void support_stream_stack_stop(struct support_stream_stack *s)
{
        support_proc_stop(&s->receiver);
        support_proc_stop(&s->consumer);
        if (s->mysql)
                mysql_close(s->mysql);
        if (s->redis)
                redisFree(s->redis);
        memset(s, 0, sizeof(*s));
}

long support_stream_stack_tencent(const struct support_stream_stack *s, const char *stream_id,
                                  int event_type, long long t, const char *key)
{
        char body[2048], anchor[64], room[64];

        snprintf(anchor, sizeof(anchor), "a_%s", s->prefix);
        snprintf(room, sizeof(room), "r_%s", s->prefix);
        support_tencent_stream_body(body, sizeof(body), stream_id, event_type == 1,
                                    event_type ? 1703731478LL : 1703735203LL, anchor, room, 3725118,
                                    key, t);
        return support_http(s->http_port, "POST", "/callbacks/tencent", body, NULL).status;
}

/* ------------------------------------------------------------ signing */

void support_webhook_sign(const char *key_b64, const char *id, const char *ts, const char *body,
                          size_t body_len, char out[64])
{
        unsigned char key[96], mac[32];
        unsigned int mac_len = 0;
        int key_len = EVP_DecodeBlock(key, (const unsigned char *)key_b64, (int)strlen(key_b64));
        size_t id_len = strlen(id), ts_len = strlen(ts), n = id_len + ts_len + 2 + body_len;
        char *content = malloc(n + 1);

        cr_assert(key_len > 0 && content != NULL);
        key_len -= (int)(strlen(key_b64) - strcspn(key_b64, "="));
        snprintf(content, n + 1, "%s.%s.", id, ts);
        memcpy(content + id_len + ts_len + 2, body, body_len);
        cr_assert(HMAC(EVP_sha256(), key, key_len, (unsigned char *)content, n, mac, &mac_len) !=
                  NULL);
        memcpy(out, "v1,", 3);
        EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
        free(content);
}

void support_agora_sign(const char *secret, const char *body, char v2[65])
{
        unsigned char mac[32];
        unsigned int mac_len = 0;

        cr_assert(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body,
                       strlen(body), mac, &mac_len) != NULL &&
                  mac_len == sizeof(mac));
        for (size_t i = 0; i < sizeof(mac); i++)
                snprintf(v2 + 2 * i, 3, "%02x", mac[i]);
}

void support_alibaba_headers(const char *host, const char *key, char h_ts[64], char h_sig[64])
{
        long long ts = (long long)time(NULL);
        unsigned char md[16];
        unsigned int md_len = 0;
        char text[256], hex[33];

        snprintf(text, sizeof(text), "%s|%lld|%s", host, ts, key);
        cr_assert(EVP_Digest(text, strlen(text), md, &md_len, EVP_md5(), NULL) == 1 &&
                  md_len == sizeof(md));
        for (size_t i = 0; i < sizeof(md); i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
        snprintf(h_ts, 64, "ALI-LIVE-TIMESTAMP: %lld", ts);
        snprintf(h_sig, 64, "ALI-LIVE-SIGNATURE: %s", hex);
}

/* ------------------------------------------------------------ stores */

bool support_stream_online(redisContext *redis, const char *stream_id)
{
        redisReply *r = redisCommand(redis, "SISMEMBER set:live:online %s", stream_id);
        bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

        freeReplyObject(r);
        return yes;
}

void support_wait_stream_state(MYSQL *mysql, redisContext *redis, const char *stream_id,
                               const char *status, bool in_set,
                               const struct support_proc *const procs[], int n)
{
        char got[16] = "", logs[1024] = "";
        long long deadline = support_now_ms() + 5000;
        size_t len = 0;

        while (support_now_ms() < deadline) {
                support_query1(mysql, got, sizeof(got),
                               "SELECT status FROM live_streams WHERE stream_id = '%s'", stream_id);
                if (strcmp(got, status) == 0 && support_stream_online(redis, stream_id) == in_set)
                        return;
                support_sleep_ms(20);
        }
        for (int i = 0; i < n && len < sizeof(logs); i++)
                len += (size_t)snprintf(logs + len, sizeof(logs) - len, " %s", procs[i]->log);
        cr_assert_fail("stream %s: status \"%s\" online=%d, want \"%s\" online=%d (logs%s)",
                       stream_id, got, support_stream_online(redis, stream_id), status, in_set,
                       logs);
}

/* ------------------------------------------------------------ topics */

#define MAX_PARTITIONS 64

int support_count_records_now(const char *topic, const char *key, const char *header_name,
                              char *header_out, size_t header_size)
{
        char errstr[512], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;
        int64_t end[MAX_PARTITIONS];
        long long deadline = support_now_ms() + 30000;
        int cnt, left = 0, count = 0;
        rd_kafka_t *rk;

        cr_assert(rd_kafka_conf_set(conf, "bootstrap.servers",
                                    support_fixture("LIVEFLOW_TEST_KAFKA_BOOTSTRAP"), errstr,
                                    sizeof(errstr)) == RD_KAFKA_CONF_OK,
                  "%s", errstr);
        /* assigned, never subscribed: the group only names the reader, it joins nothing */
        support_unique_name("count_now", group, sizeof(group));
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        cr_assert_not_null(rk, "%s", errstr);
        cnt = support_partition_count(rk, topic);
        cr_assert(cnt <= MAX_PARTITIONS, "%s has %d partitions", topic, cnt);
        parts = rd_kafka_topic_partition_list_new(cnt);
        for (int p = 0; p < cnt; p++) {
                int64_t low;
                rd_kafka_resp_err_t err =
                        rd_kafka_query_watermark_offsets(rk, topic, p, &low, &end[p], 10000);

                cr_assert(err == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks %s[%d]: %s", topic, p,
                          rd_kafka_err2str(err));
                if (end[p] > low) {
                        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = low;
                        left++;
                } else {
                        end[p] = -1; /* nothing to read */
                }
        }
        if (header_out && header_size)
                header_out[0] = '\0';
        if (left > 0)
                cr_assert(rd_kafka_assign(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_destroy(parts);
        while (left > 0 && support_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                rd_kafka_headers_t *h = NULL;
                const void *val;
                size_t len;
                int p;

                if (!m)
                        continue;
                p = m->partition;
                if (p >= 0 && p < cnt && end[p] >= 0 &&
                    (m->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
                     m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
                        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset < end[p] &&
                            m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0) {
                                count++;
                                if (header_name && rd_kafka_message_headers(m, &h) == 0 &&
                                    rd_kafka_header_get_last(h, header_name, &val, &len) == 0)
                                        snprintf(header_out, header_size, "%.*s", (int)len,
                                                 (const char *)val);
                        }
                        /* at an EOF, m->offset is where the next record will be */
                        if (m->offset + (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) >= end[p]) {
                                end[p] = -1;
                                left--;
                        }
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        cr_assert(left == 0, "%s: %d partition(s) not read to their end in 30 s", topic, left);
        return count;
}
