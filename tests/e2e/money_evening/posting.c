/* posting.c: test_money_evening's sender threads: tips and withdrawals, signed, posted in the
 * planned order at the planned rate, duplicated and retried as senders do. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evening.h"
#include "support.h"

/* ------------------------------------------------------------------ posting (threads) */

/* Records a failure seen by a thread (the test asserts on it once the threads are joined). */
static void thread_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void thread_fail(const char *fmt, ...)
{
        va_list ap;

        pthread_mutex_lock(&run.lock);
        if (atomic_fetch_add(&run.failures, 1) == 0) {
                va_start(ap, fmt);
                vsnprintf(run.failure, sizeof(run.failure), fmt, ap);
                va_end(ap);
        }
        pthread_mutex_unlock(&run.lock);
}

static bool is_stopping(void)
{
        bool stop;

        pthread_mutex_lock(&run.lock);
        stop = run.is_stopping;
        pthread_mutex_unlock(&run.lock);
        return stop;
}

static size_t keep_reply(char *p, size_t size, size_t n, void *arg)
{
        char *reply = arg;
        size_t have = strlen(reply), room = 255 - have, len = size * n < room ? size * n : room;

        memcpy(reply + have, p, len);
        reply[have + len] = '\0';
        return size * n;
}

/* The Standard Webhooks signature, with OpenSSL directly: base64 HMAC-SHA256 of id.ts.body. */
static void sign(const char *msg_id, long long ts_s, const char *body, char *out, size_t out_size)
{
        char text[2048];
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        int n = snprintf(text, sizeof(text), "%s.%lld.%s", msg_id, ts_s, body);

        HMAC(EVP_sha256(), KEY_RAW, (int)strlen(KEY_RAW), (const unsigned char *)text, (size_t)n,
             mac, &mac_len);
        base64(mac, mac_len, out, out_size);
}

/* One signed POST. @returns the HTTP status, or -1 when no answer came. */
static long post_signed(CURL *curl, const char *path, const char *msg_id, long long ts_s,
                        const char *body, char *reply)
{
        char url[96], h_id[128], h_ts[64], h_sig[128], sig[64];
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        long status = -1;

        sign(msg_id, ts_s, body, sig, sizeof(sig));
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx.http_port, path);
        snprintf(h_id, sizeof(h_id), "webhook-id: %s", msg_id);
        snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", ts_s);
        snprintf(h_sig, sizeof(h_sig), "webhook-signature: v1,%s", sig);
        h = curl_slist_append(h, h_id);
        h = curl_slist_append(h, h_ts);
        h = curl_slist_append(h, h_sig);
        reply[0] = '\0';
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_reply);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(curl) == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(h);
        return status;
}

/*
 * Posts until a 200, as the platform would: a 503 (Kafka did not acknowledge in time) or no
 * answer is retried with the same webhook-id and a fresh timestamp; anything else fails.
 */
static void deliver(CURL *curl, const char *path, const char *msg_id, long long ts_s,
                    const char *body)
{
        char reply[256];
        long status = -1;

        for (int attempt = 0; attempt < 10 && !is_stopping(); attempt++) {
                if (attempt) {
                        atomic_fetch_add(&run.retries, 1);
                        support_sleep_ms(200 * attempt);
                        ts_s = (long long)time(NULL);
                }
                status = post_signed(curl, path, msg_id, ts_s, body, reply);
                if (status == 200)
                        return;
                if (status != 503 && status != -1)
                        break;
        }
        thread_fail("POST %s webhook-id %s: status %ld %s", path, msg_id, status, reply);
}

static void tip_body(const struct tip *t, char *out, size_t out_size)
{
        char gender[48] = "", type[48] = "";

        if (t->audience % 3 != 2 || !t->is_gender_absent)
                snprintf(gender, sizeof(gender), ",\"audience_gender\":\"%s\"",
                         genders[t->audience % 3]);
        if (t->audience_type)
                snprintf(type, sizeof(type), ",\"audience_type\":\"%s\"", t->audience_type);
        snprintf(
                out, out_size,
                "{\"trace_id\":\"%s\",\"audience_id\":\"%s\",\"anchor_id\":\"%s\",\"room_id\":\"%s\",\"amount\":%lld,"
                "\"gift_id\":\"gift%lld\",\"gift_count\":%lld,\"ts\":%lld,\"anchor_gender\":\"%s\"%s%s}",
                t->id, ids.audiences[t->audience], ids.anchors[t->anchor], ids.rooms[t->anchor],
                t->amount, t->amount % 13, t->gift_count, t->ts_ms, genders[t->anchor % 3], gender,
                type);
}

static void post_tip(CURL *curl, const struct post *p)
{
        const struct tip *t = &fx.tips[p->tip];
        char body[1024], msg_id[80];
        long long ts_s = (long long)time(NULL);

        tip_body(t, body, sizeof(body));
        snprintf(msg_id, sizeof(msg_id), "msg_%s_%d", t->id, p->kind == POST_AGAIN);
        deliver(curl, "/v1/rewards", msg_id, ts_s, body);
        if (p->kind == POST_THEN_REPLAY)
                deliver(curl, "/v1/rewards", msg_id, ts_s, body);
        else if (p->kind == POST_THEN_RETRY)
                deliver(curl, "/v1/rewards", msg_id, ts_s + 1, body);
}

/* The sender that reaches the gate writes the midway ratios; the later posts wait for them. */
static void pass_gate(int p)
{
        pthread_mutex_lock(&run.lock);
        if (p == fx.gate) {
                for (int i = 0; i < fx.ratio_cnt; i++) {
                        if (fx.ratios[i].is_midway &&
                            insert_ratio(run.gate_mysql, &fx.ratios[i]) != 0) {
                                pthread_mutex_unlock(&run.lock);
                                thread_fail("midway ratio of %s: %s",
                                            ids.anchors[fx.ratios[i].anchor],
                                            mysql_error(run.gate_mysql));
                                pthread_mutex_lock(&run.lock);
                        }
                }
                run.is_gate_open = true;
                pthread_cond_broadcast(&run.cond);
        }
        while (!run.is_gate_open && !run.is_stopping)
                pthread_cond_wait(&run.cond, &run.lock);
        pthread_mutex_unlock(&run.lock);
}

static void *sender_main(void *arg)
{
        CURL *curl = curl_easy_init();

        (void)arg;
        if (!curl) {
                thread_fail("curl_easy_init failed");
                return NULL;
        }
        for (;;) {
                int p = atomic_fetch_add(&run.next_post, 1);
                long long due = run.t0_ms + (long long)p * 1000 / fx.rate, now = support_now_ms();

                if (p >= fx.post_cnt || is_stopping())
                        break;
                if (due > now)
                        support_sleep_ms((int)(due - now));
                if (p >= fx.gate)
                        pass_gate(p);
                while (p >= fx.last_posts && atomic_load(&run.posts_done) < fx.last_posts &&
                       !is_stopping())
                        support_sleep_ms(5);
                while (p >= atomic_load(&run.post_limit) && !is_stopping())
                        support_sleep_ms(5);
                post_tip(curl, &fx.posts[p]);
                atomic_fetch_add(&run.posts_done, 1);
        }
        curl_easy_cleanup(curl);
        return NULL;
}

static void post_ask(CURL *curl, const struct ask *w, int copy, long long ts_s)
{
        char body[256], msg_id[80];

        snprintf(body, sizeof(body), "{\"request_id\":\"%s\",\"anchor_id\":\"%s\",\"amount\":%lld}",
                 w->id, ids.anchors[w->anchor], w->amount);
        snprintf(msg_id, sizeof(msg_id), "msg_%s_%d", w->id, copy);
        deliver(curl, "/v1/withdrawals", msg_id, ts_s, body);
}

/* Posts asks [from, to), each with its immediate copy when it has one. */
static void post_asks(CURL *curl, int from, int to, long long spacing_ms)
{
        for (int k = from; k < to && !is_stopping(); k++) {
                const struct ask *w = &fx.asks[k];
                long long ts_s = (long long)time(NULL);

                support_sleep_ms((int)spacing_ms);
                post_ask(curl, w, 0, ts_s);
                if (w->dup == DUP_AGAIN)
                        post_ask(curl, w, 1, ts_s);
                else if (w->dup == DUP_REPLAY)
                        post_ask(curl, w, 0, ts_s);
                atomic_fetch_add(&run.asks_done, 1);
        }
}

/*
 * One thread, so each anchor's withdrawals reach its partition in the order of fx.asks (the
 * receiver keys them by anchor_id and answers after the ack); the late copies, then the
 * closing withdrawals, after all the others.
 */
static void *asker_main(void *arg)
{
        CURL *curl = curl_easy_init();

        (void)arg;
        if (!curl) {
                thread_fail("curl_easy_init failed");
                return NULL;
        }
        pthread_mutex_lock(&run.lock);
        while (!run.is_asking && !run.is_stopping)
                pthread_cond_wait(&run.cond, &run.lock);
        pthread_mutex_unlock(&run.lock);
        post_asks(curl, 0, fx.last_asks, run.ask_spacing_ms);
        for (int k = 0; k < fx.last_asks && !is_stopping(); k++)
                if (fx.asks[k].dup == DUP_LATE)
                        post_ask(curl, &fx.asks[k], 1, (long long)time(NULL));
        post_asks(curl, fx.last_asks, fx.ask_cnt, 0);
        curl_easy_cleanup(curl);
        atomic_store(&run.is_asker_done, true);
        return NULL;
}

void start_posting(void)
{
        run.gate_mysql = support_mysql_connect(fx.mysql_url);
        run.t0_ms = support_now_ms();
        for (int i = 0; i < SENDERS; i++) {
                cr_assert(pthread_create(&run.senders[i], NULL, sender_main, NULL) == 0);
                run.sender_cnt++;
        }
        cr_assert(pthread_create(&run.asker, NULL, asker_main, NULL) == 0);
        run.has_asker = true;
}

/* Phase A is settled: the withdrawals start, spread over most of what remains of the posting. */
void start_asking(void)
{
        long long left_ms =
                (long long)(fx.post_cnt - atomic_load(&run.posts_done)) * 1000 / fx.rate;

        pthread_mutex_lock(&run.lock);
        run.ask_spacing_ms = left_ms * 6 / 10 / (fx.ask_cnt + fx.ask_cnt / 5);
        run.is_asking = true;
        pthread_cond_broadcast(&run.cond);
        pthread_mutex_unlock(&run.lock);
        cr_log_info("phase A (%d tips) settled after %lld ms: withdrawals start, one every %lld ms",
                    fx.phase_a, support_now_ms() - run.t0_ms, run.ask_spacing_ms);
}
