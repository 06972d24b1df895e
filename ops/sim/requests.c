/* requests.c: liveflow-sim's requests, each signed as its sender signs it (see sim.h). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "crypto.h"
#include "sim.h"

static atomic_llong sent, failed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[512];

long long sim_sent(void)
{
        return atomic_load(&sent);
}

long long sim_failed(void)
{
        return atomic_load(&failed);
}

const char *sim_first_error(void)
{
        return first_error;
}

static size_t on_reply(char *p, size_t size, size_t n, void *arg)
{
        struct sim_conn *c = arg;
        size_t room = sizeof(c->reply) - 1 - c->reply_len, len = size * n < room ? size * n : room;

        memcpy(c->reply + c->reply_len, p, len);
        c->reply_len += len;
        c->reply[c->reply_len] = '\0';
        return size * n;
}

int sim_conn_open(struct sim_conn *c, const struct sim_config *cfg)
{
        memset(c, 0, sizeof(*c));
        c->cfg = cfg;
        if (!(c->curl = curl_easy_init()))
                return -1;
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_reply);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 15L);
        curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        return 0;
}

void sim_conn_close(struct sim_conn *c)
{
        if (c->curl)
                curl_easy_cleanup(c->curl);
        c->curl = NULL;
}

void sim_note_error(const char *fmt, ...)
{
        va_list ap;

        atomic_fetch_add(&failed, 1);
        pthread_mutex_lock(&lock);
        if (!first_error[0]) {
                va_start(ap, fmt);
                vsnprintf(first_error, sizeof(first_error), fmt, ap);
                va_end(ap);
        }
        pthread_mutex_unlock(&lock);
}

/* POSTs (or GETs) and retries a 5xx or no answer a few times, as a vendor would. */
static void send_req(struct sim_conn *c, const char *path, const char *body, struct curl_slist *h)
{
        char url[1024];
        long status = 0;

        snprintf(url, sizeof(url), "%s%s", c->cfg->url, path);
        for (int attempt = 0; attempt < 6; attempt++) {
                CURLcode rc;

                c->reply_len = 0;
                c->reply[0] = '\0';
                curl_easy_setopt(c->curl, CURLOPT_URL, url);
                if (body) {
                        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
                        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
                } else {
                        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
                }
                curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
                rc = curl_easy_perform(c->curl);
                atomic_fetch_add(&sent, 1);
                if (rc == CURLE_OK)
                        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
                if (rc == CURLE_OK && status == 200)
                        return;
                if (rc == CURLE_OK && status < 500) {
                        sim_note_error("%s %s: %ld %s", body ? "POST" : "GET", path, status,
                                       c->reply);
                        return;
                }
                usleep(200000u << (attempt < 3 ? attempt : 3));
        }
        sim_note_error("%s %s: no success after 6 attempts (last %ld)", body ? "POST" : "GET", path,
                       status);
}

static void post_json(struct sim_conn *c, const char *path, const char *body)
{
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

        send_req(c, path, body, h);
        curl_slist_free_all(h);
}

/* Standard Webhooks: webhook-id stays the same on a retry, the signature covers the body. */
void sim_post_signed(struct sim_conn *c, const char *path, const char *msg_id, const char *body)
{
        long long ts = clock_wall_ms() / 1000;
        char hdr[3][256], sig[128];
        unsigned char mac[32];
        char head[96];
        int n = snprintf(head, sizeof(head), "%s.%lld.", msg_id, ts);
        /* HMAC over id.ts.body without copying the body. */
        const void *parts[] = {head, body};
        const size_t lens[] = {(size_t)n, strlen(body)};

        if (crypto_hmac_sha256(c->cfg->hmac_key, c->cfg->hmac_key_len, parts, lens, 2, mac) == -1) {
                sim_note_error("HMAC failed");
                return;
        }
        crypto_base64_encode(mac, sizeof(mac), sig, sizeof(sig));
        snprintf(hdr[0], sizeof(hdr[0]), "webhook-id: %s", msg_id);
        snprintf(hdr[1], sizeof(hdr[1]), "webhook-timestamp: %lld", ts);
        snprintf(hdr[2], sizeof(hdr[2]), "webhook-signature: v1,%s", sig);
        {
                struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

                for (int i = 0; i < 3; i++)
                        h = curl_slist_append(h, hdr[i]);
                send_req(c, path, body, h);
                curl_slist_free_all(h);
        }
}

/* A Tencent callback: t ten minutes ahead, sign = md5(key + t). */
void sim_post_tencent(struct sim_conn *c, const struct sim_anchor *a, int type, const char *seq,
                      const char *extra)
{
        long long t = clock_wall_ms() / 1000 + 600;
        char msg[512], sign[33], body[2048];

        snprintf(msg, sizeof(msg), "%s%lld", c->cfg->tencent_key, t);
        crypto_md5_hex(msg, strlen(msg), sign);
        snprintf(body, sizeof(body),
                 "{\"app\":\"sim.example\",\"appid\":1,\"appname\":\"live\",\"channel_id\":\"%s\","
                 "\"errcode\":0,\"errmsg\":\"ok\",\"event_time\":%lld,\"event_type\":%d,"
                 "\"node\":\"127.0.0.1\",\"sequence\":\"%s\",\"stream_id\":\"%s\","
                 "\"stream_param\":\"anchor_id=%s&room_id=%s\",\"user_ip\":\"127.0.0.1\"%s,"
                 "\"t\":%lld,\"sign\":\"%s\"}",
                 a->stream, t - 600, type, seq, a->stream, a->id, a->room, extra, t, sign);
        post_json(c, "/callbacks/tencent", body);
}

/* SRS: ?token= on every hook; on_publish signed with txSecret = md5(key+stream+anchor+txTime). */
void sim_post_srs(struct sim_conn *c, const struct sim_anchor *a, int index, const char *action)
{
        char path[512], param[256] = "", body[1024];

        snprintf(path, sizeof(path), "/callbacks/srs?token=%s", c->cfg->srs_token);
        if (c->cfg->srs_publish_key && strcmp(action, "on_publish") == 0) {
                char tx_time[24], msg[512], secret[33];

                snprintf(tx_time, sizeof(tx_time), "%llx",
                         (unsigned long long)(clock_wall_ms() / 1000 + 3600));
                snprintf(msg, sizeof(msg), "%s%s%s%s", c->cfg->srs_publish_key, a->stream, a->id,
                         tx_time);
                crypto_md5_hex(msg, strlen(msg), secret);
                snprintf(param, sizeof(param), "&txSecret=%s&txTime=%s", secret, tx_time);
        }
        snprintf(body, sizeof(body),
                 "{\"action\":\"%s\",\"client_id\":\"sim%s_c%d\",\"ip\":\"127.0.0.1\","
                 "\"vhost\":\"__defaultVhost__\",\"app\":\"live\",\"stream\":\"%s\","
                 "\"param\":\"?anchor_id=%s&room_id=%s%s\"}",
                 action, c->cfg->run, index, a->stream, a->id, a->room, param);
        post_json(c, path, body);
}

/* Agora NCS, Broadcast Streaming (product 7): publish_start 1, publish_end 2, signed with
 * Agora-Signature-V2 = hex HMAC-SHA256(secret, body). A retry keeps the noticeId. */
void sim_post_agora(struct sim_conn *c, const struct sim_anchor *a, int type, const char *notice)
{
        char body[1024], hdr[128], hex[65];
        unsigned char mac[32];
        int n = snprintf(
                body, sizeof(body),
                "{\"noticeId\":\"%s\",\"productId\":7,\"eventType\":%d,\"notifyMs\":%lld,"
                "\"payload\":{\"eventName\":\"%s\",\"domain\":\"sim.agora.io\","
                "\"entryPoint\":\"live\",\"streamName\":\"%s\",\"clientIp\":\"127.0.0.1\"}}",
                notice, type, clock_wall_ms(), type == 1 ? "publish_start" : "publish_end",
                a->stream);
        const void *parts[] = {body};
        const size_t lens[] = {(size_t)n};
        struct curl_slist *h;

        if (crypto_hmac_sha256(c->cfg->agora_secret, strlen(c->cfg->agora_secret), parts, lens, 1,
                               mac) == -1) {
                sim_note_error("HMAC failed");
                return;
        }
        for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        snprintf(hdr, sizeof(hdr), "Agora-Signature-V2: %s", hex);
        h = curl_slist_append(NULL, "Content-Type: application/json");
        h = curl_slist_append(h, hdr);
        send_req(c, "/callbacks/agora", body, h);
        curl_slist_free_all(h);
}

/* Alibaba ingest: GET with ALI-LIVE-SIGNATURE = md5(domain|timestamp|key); usrargs names the
 * anchor and room as Tencent's stream_param does. */
void sim_get_alibaba(struct sim_conn *c, const struct sim_anchor *a, const char *action)
{
        long long ts = clock_wall_ms() / 1000;
        char path[1024], text[512], sig[33], h_ts[64], h_sig[64];
        struct curl_slist *h;

        snprintf(path, sizeof(path),
                 "/callbacks/alibaba?action=%s&ip=127.0.0.1&id=%s&app=%s&appname=live&time=%lld"
                 "&usrargs=anchor_id%%3D%s%%26room_id%%3D%s",
                 action, a->stream, c->cfg->alibaba_domain, ts, a->id, a->room);
        snprintf(text, sizeof(text), "%s|%lld|%s", c->cfg->alibaba_domain, ts, c->cfg->alibaba_key);
        crypto_md5_hex(text, strlen(text), sig);
        snprintf(h_ts, sizeof(h_ts), "ALI-LIVE-TIMESTAMP: %lld", ts);
        snprintf(h_sig, sizeof(h_sig), "ALI-LIVE-SIGNATURE: %s", sig);
        h = curl_slist_append(NULL, h_ts);
        h = curl_slist_append(h, h_sig);
        send_req(c, path, NULL, h);
        curl_slist_free_all(h);
}

/* The host of the receiver's URL (the callback URL Alibaba was given), port left out. */
static void url_host(const char *url, char *out, size_t size)
{
        const char *h = strstr(url, "://");
        size_t n;

        h = h ? h + 3 : url;
        n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/");
        snprintf(out, size, "%.*s", (int)n, h);
}

/* Alibaba's POSTs: ALI-LIVE-SIGNATURE = md5(host|timestamp|key), where host is the callback
 * URL's; a retry is signed anew, the body (and so the event) stays the same. */
void sim_post_alibaba(struct sim_conn *c, const char *body)
{
        long long ts = clock_wall_ms() / 1000;
        char host[256], text[512], sig[33], h_ts[64], h_sig[64];
        struct curl_slist *h;

        url_host(c->cfg->url, host, sizeof(host));
        snprintf(text, sizeof(text), "%s|%lld|%s", host, ts, c->cfg->alibaba_key);
        crypto_md5_hex(text, strlen(text), sig);
        snprintf(h_ts, sizeof(h_ts), "ALI-LIVE-TIMESTAMP: %lld", ts);
        snprintf(h_sig, sizeof(h_sig), "ALI-LIVE-SIGNATURE: %s", sig);
        h = curl_slist_append(NULL, "Content-Type: application/json");
        h = curl_slist_append(h, h_ts);
        h = curl_slist_append(h, h_sig);
        send_req(c, "/callbacks/alibaba", body, h);
        curl_slist_free_all(h);
}
