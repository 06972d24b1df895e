/*
 * jobs.c: liveflow-sim's jobs as requests: each body as its sender writes it (Tencent,
 * SRS, Agora and Alibaba callbacks, app events, tips, withdrawals, admin commands), sent
 * through requests.c, which signs it.
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "sim.h"

static void do_visit(const struct sim *s, struct sim_conn *c, const struct sim_job *j,
                     const char *msg_id)
{
        const struct sim_anchor *a = &s->anchors[j->anchor];
        const struct sim_audience *u = &s->audiences[j->audience];
        long long t = clock_wall_ms() - 20000;
        char body[8192];
        int n = 0, e = 0;

#define EV(type, fmt, ...)                                                                         \
        n += snprintf(body + n, sizeof(body) - (size_t)n,                                          \
                      "%s{\"event_id\":\"%s_%d\",\"type\":\"" type "\",\"ts\":%lld,"               \
                      "\"audience_id\":\"%s\",\"room_id\":\"%s\",\"stream_id\":\"%s\"" fmt "}",    \
                      e ? "," : "", msg_id, e, t + e * 1000, u->id, a->room, a->stream,            \
                      __VA_ARGS__),                                                                \
                e++
        n += snprintf(body, sizeof(body), "{\"events\":[");
        EV("enter", ",\"audience_type\":\"%s\"", u->guest ? "guest" : "registered");
        for (int i = 0; i < j->beats; i++)
                EV("heartbeat", "%s", "");
        for (int i = 0; i < j->chats; i++)
                EV("chat", "%s", "");
        if (j->likes)
                EV("like", ",\"count\":%d", j->likes);
        EV("exit", "%s", "");
#undef EV
        snprintf(body + n, sizeof(body) - (size_t)n, "]}");
        sim_post_signed(c, "/v1/events", msg_id, body);
}

/* An operator's command: POST /v1/admin/<what>/<target>/<action> naming the action and target. */
static void post_admin(struct sim_conn *c, const char *id, const char *what, const char *target,
                       const char *action, const char *target_field)
{
        char path[256], body[512];

        snprintf(path, sizeof(path), "/v1/admin/%s/%s/%s", what, target, action);
        snprintf(body, sizeof(body),
                 "{\"action\":\"%s\",\"%s\":\"%s\",\"reason\":\"simulated operator\"}", action,
                 target_field, target);
        sim_post_signed(c, path, id, body);
}

/* A moderation verdict as its vendor sends it: Tencent 317 (Review, Pass or Block) or an
 * Alibaba image moderation POST (a Block). */
static void do_verdict(const struct sim *s, struct sim_conn *c, const struct sim_job *j,
                       const struct sim_anchor *a, const char *id, size_t index)
{
        static const char *const suggestion[] = {"", "Review", "Pass", "Block"};
        static const char *const label[] = {"", "Ad", "Normal", "Porn"};
        static const int score[] = {0, 60, 0, 97};
        long long t = j->at_ms / 1000;
        char body[1024];

        if (a->vendor == SIM_ALIBABA) {
                snprintf(body, sizeof(body),
                         "{\"domain\":\"%s\",\"app\":\"live\",\"stream\":\"%s\","
                         "\"timestamp\":%lld,\"result\":[{\"scene\":\"porn\",\"label\":\"porn\","
                         "\"suggestion\":\"block\",\"rate\":%d.5}]}",
                         s->cfg.alibaba_domain, a->stream, t, score[a->verdict]);
                sim_post_alibaba(c, body);
                return;
        }
        snprintf(body, sizeof(body),
                 ",\"streamId\":\"%s\",\"suggestion\":\"%s\",\"label\":\"%s\","
                 "\"score\":[%d],\"type\":[1],\"img\":\"http://p.example/%s/%zu.jpg\","
                 "\"screenshotTime\":%lld,\"sendTime\":%lld",
                 a->stream, suggestion[a->verdict], label[a->verdict], score[a->verdict], a->stream,
                 index, t, t);
        sim_post_tencent(c, a, 317, id, body);
}

void sim_job_send(struct sim_conn *c, const struct sim *s, const struct sim_job *j, size_t index,
                  int phase)
{
        const struct sim_anchor *a = j->anchor >= 0 ? &s->anchors[j->anchor] : NULL;
        char id[96], body[1024], seq[96];

        snprintf(id, sizeof(id), "sim%s_%d_%zu", s->cfg.run, phase, index);
        switch (j->kind) {
        case J_PROFILES:
                sim_post_signed(c, "/v1/events", id, j->body);
                break;
        case J_BEGIN:
        case J_END:
                snprintf(seq, sizeof(seq), "%s_%d", a->stream, j->kind == J_BEGIN);
                switch (a->vendor) {
                case SIM_TENCENT:
                        sim_post_tencent(c, a, j->kind == J_BEGIN ? 1 : 0, seq, "");
                        break;
                case SIM_SRS:
                        sim_post_srs(c, a, j->anchor,
                                     j->kind == J_BEGIN ? "on_publish" : "on_unpublish");
                        break;
                case SIM_AGORA:
                        sim_post_agora(c, a, j->kind == J_BEGIN ? 1 : 2, seq);
                        break;
                case SIM_ALIBABA:
                case SIM_VENDORS:
                        sim_get_alibaba(c, a, j->kind == J_BEGIN ? "publish" : "publish_done");
                        break;
                }
                break;
        case J_SHOT: {
                long long t = clock_wall_ms() / 1000;
                char extra[512];

                snprintf(
                        extra, sizeof(extra),
                        ",\"pic_url\":\"/%s/%zu.jpg\",\"pic_full_url\":\"http://p.example/%s/%zu.jpg\","
                        "\"create_time\":%lld",
                        a->stream, index, a->stream, index, t);
                sim_post_tencent(c, a, 200, id, extra);
                break;
        }
        case J_RECORD: {
                long long t = clock_wall_ms() / 1000;
                char extra[512];

                snprintf(
                        extra, sizeof(extra),
                        ",\"file_id\":\"%s\",\"video_url\":\"http://v.example/%s.mp4\","
                        "\"duration\":60,\"file_size\":1048576,\"start_time\":%lld,\"end_time\":%lld",
                        id, id, t - 60, t);
                sim_post_tencent(c, a, 100, id, extra);
                break;
        }
        case J_VISIT:
                do_visit(s, c, j, id);
                break;
        case J_TIP: {
                const struct sim_audience *u = &s->audiences[j->audience];

                snprintf(body, sizeof(body),
                         "{\"trace_id\":\"%s\",\"audience_id\":\"%s\",\"anchor_id\":\"%s\","
                         "\"room_id\":\"%s\",\"amount\":%lld,\"gift_id\":\"g%d\",\"gift_count\":1,"
                         "\"ts\":%lld,\"audience_type\":\"%s\"}",
                         id, u->id, a->id, a->room, j->amount, u->spend, clock_wall_ms(),
                         u->guest ? "guest" : "registered");
                sim_post_signed(c, "/v1/rewards", id, body);
                break;
        }
        case J_CLOSE:
                post_admin(c, id, "streams", a->stream, "close", "stream_id");
                break;
        case J_BAN:
                post_admin(c, id, "anchors", a->id, "ban", "anchor_id");
                break;
        case J_VERDICT:
                do_verdict(s, c, j, a, id, index);
                break;
        case J_WITHDRAW:
                snprintf(body, sizeof(body),
                         "{\"request_id\":\"%s\",\"anchor_id\":\"%s\",\"amount\":%lld}", id, a->id,
                         j->amount);
                sim_post_signed(c, "/v1/withdrawals", id, body);
                break;
        }
}
