/*
 * audit_publish.c: the audit role after the commit. publish() makes Redis say what the
 * verdict's anchors row says (hash:anchor:status:{anchor_id}, versioned by anchors.updated_at)
 * and sends the stream.close its punishment decided, acknowledged; publish_many() does the
 * same for a batch: the outbox flushed once, the projections read in one query (or taken
 * from what apply_many()'s writes returned), the Redis hashes written by one script call per
 * 128 anchors in one pipeline, then the stream.closes produced together and acknowledged
 * together. Both project the committed rows (read back, or as the writes returned them), not
 * what a verdict alone decided, so a replay or another instance's verdict projects the same
 * truth, and a version keeps an older projection from overwriting a newer one.
 */
#include "audit_role.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "crypto.h"
#include "db.h"
#include "keyset.h"
#include "log.h"
#include "notify.h"
#include "redis_conn.h"
#include "stream_close.h"

/* ------------------------------------------------------------------ one verdict */

static void projection_cols(struct projection *pj, struct db_col *cols)
{
        struct db_col c[AUDIT_PROJECTION_COLS] = {
                {.type = DB_PARAM_STR, .s = pj->anchor, .s_size = sizeof(pj->anchor)},
                {.type = DB_PARAM_STR, .s = pj->close_stream, .s_size = sizeof(pj->close_stream)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = pj->reason, .s_size = sizeof(pj->reason)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = pj->punishment, .s_size = sizeof(pj->punishment)},
                {.type = DB_PARAM_STR, .s = pj->status, .s_size = sizeof(pj->status)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_STR, .s = pj->close_vendor, .s_size = sizeof(pj->close_vendor)},
        };

        memcpy(cols, c, sizeof(c));
}

static void projection_read(struct projection *pj, const struct db_col *cols)
{
        if (cols[9].is_null)
                pj->close_vendor[0] = '\0';
        if (cols[0].is_null)
                pj->anchor[0] = '\0';
        if (cols[1].is_null || cols[2].is_null)
                pj->close_stream[0] = '\0';
        if (cols[3].is_null)
                pj->reason[0] = '\0';
        if (cols[5].is_null)
                pj->punishment[0] = '\0';
        if (cols[6].is_null)
                pj->status[0] = '\0';
        pj->close_method = pj->close_stream[0] ? (int)cols[2].i : 0;
        pj->decided_ms = cols[4].is_null ? 0 : cols[4].i;
        pj->has_anchor_row = !cols[6].is_null && pj->anchor[0];
        pj->until_ms = cols[7].is_null ? 0 : cols[7].i;
        pj->version_ms = cols[8].is_null ? 0 : cols[8].i;
}

static enum db_result read_projection(struct audit_state *st, const char *event_id,
                                      struct projection *pj, bool *found, char *errstr,
                                      size_t errstr_size)
{
        char id[65];
        struct db_param p[] = {DB_STR(event_id)};
        struct db_col cols[1 + AUDIT_PROJECTION_COLS] = {
                {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)}};
        enum db_result r;

        memset(pj, 0, sizeof(*pj));
        projection_cols(pj, cols + 1);
        r = db_query_row(st->db, st->project, p, 1, cols, 1 + AUDIT_PROJECTION_COLS, found, errstr,
                         errstr_size);
        projection_read(pj, cols + 1);
        return r;
}

/*
 * Only the anchor_status and suspended_until fields: status, stream_id, session_id and
 * started_at belong to the stream role. The version (anchors.updated_at) keeps an older
 * projection from another instance from overwriting a newer one.
 */
static const char project_script[] =
        "local v = redis.call('HGET', KEYS[1], 'anchor_status_version')\n"
        "if v and tonumber(v) > tonumber(ARGV[3]) then return 0 end\n"
        "redis.call('HSET', KEYS[1], 'anchor_status', ARGV[1], 'suspended_until', ARGV[2], "
        "'anchor_status_version', ARGV[3])\n"
        "return 1\n";

static int project_anchor(struct audit_state *st, const struct projection *pj, char *errstr,
                          size_t errstr_size)
{
        char key[96], until[24], version[24];
        const char *keys[] = {key};
        const char *args[] = {pj->status, until, version};
        redisReply *reply;

        snprintf(key, sizeof(key), LF_KEY_ANCHOR_STATUS "%s", pj->anchor);
        snprintf(until, sizeof(until), "%lld", pj->until_ms);
        snprintf(version, sizeof(version), "%lld", pj->version_ms);
        if (!(reply = redis_conn_eval(st->redis, project_script, 1, keys, 3, args, errstr,
                                      errstr_size)))
                return -1;
        freeReplyObject(reply);
        return 0;
}

/* The close's event id: derived from the verdict's, so a replayed verdict sends the same close. */
static void close_event_id(const char *verdict_event_id, char out[65])
{
        char key[160];
        int n = snprintf(key, sizeof(key), "audit.close|%s", verdict_event_id);

        crypto_sha256_hex(key, (size_t)n < sizeof(key) ? (size_t)n : sizeof(key) - 1, out);
}

/*
 * The stream.close of the verdict rec into m: its strings point into rec, pj, event_id and
 * *raw_text, which the caller frees. @returns 0, or -1 with errstr (out of memory).
 */
static int close_msg(const struct consumer_record *rec, const struct projection *pj,
                     char event_id[65], char **raw_text, struct stream_close_msg *m, char *errstr,
                     size_t errstr_size)
{
        json_t *raw = json_pack("{s:s,s:s}", "verdict_event_id", rec->ev.event_id, "punishment",
                                pj->punishment);

        /* The stream's own vendor, so the stream role closes exactly that stream. */
        if (raw && pj->close_vendor[0])
                json_object_set_new(raw, "vendor", json_string(pj->close_vendor));
        *raw_text = raw ? json_dumps(raw, JSON_COMPACT) : NULL;
        json_decref(raw);
        close_event_id(rec->ev.event_id, event_id);
        *m = (struct stream_close_msg){
                .event_id = event_id,
                .stream_id = pj->close_stream,
                .anchor_id = pj->anchor,
                .trace_id = rec->trace_id,
                .event_time_ms = pj->decided_ms,
                .close_method = pj->close_method,
                .reason = pj->reason[0] ? pj->reason : NULL,
                .vendor = "internal",
                .raw = *raw_text,
        };
        if (!*raw_text) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

static void log_close(const struct stream_close_msg *m, const struct projection *pj)
{
        log_info(m->trace_id, "stream.close sent stream=%s anchor=%s close_method=%d event_id=%s",
                 pj->close_stream, pj->anchor, pj->close_method, m->event_id);
}

/* Sends the stream.close and waits for its acknowledgement. @returns 0, or -1 (retried). */
static int produce_close(struct audit_state *st, const struct consumer_record *rec,
                         const struct projection *pj, char *errstr, size_t errstr_size)
{
        char event_id[65], *raw_text = NULL;
        struct stream_close_msg m;
        int rc = -1;

        if (close_msg(rec, pj, event_id, &raw_text, &m, errstr, errstr_size) == 0 &&
            (rc = stream_close_send(st->closer, &m, errstr, errstr_size)) == 0)
                log_close(&m, pj);
        free(raw_text);
        return rc;
}

/* Makes Redis say what the anchors row says, then closes the stream the verdict closes. */
int audit_publish(void *state, struct consumer_record *rec, char *errstr, size_t errstr_size)
{
        struct audit_state *st = state;
        struct projection pj;
        bool found = false;

        if (notify_flush(st->notify, false, errstr, errstr_size) == -1)
                return -1;
        if (read_projection(st, rec->ev.event_id, &pj, &found, errstr, errstr_size) != DB_OK)
                return -1;
        if (!found)
                return 0;
        if (pj.has_anchor_row && project_anchor(st, &pj, errstr, errstr_size) == -1)
                return -1;
        if (pj.close_method && produce_close(st, rec, &pj, errstr, errstr_size) == -1)
                return -1;
        return 0;
}

/* ------------------------------------------------------------------ a batch at once */

struct publish_batch {
        struct keyset ids;
        struct projection *pj; /* by position in ids */
        bool *found;
        bool is_mismatch;
        struct audit_steps steps;
};

static void on_projection(const struct db_col *cols, void *arg)
{
        struct publish_batch *pb = arg;
        size_t at = keyset_find(&pb->ids, cols[0].s);

        if (at == pb->ids.n) {
                pb->is_mismatch = true;
                return;
        }
        pb->found[at] = true;
        pb->pj[at] = pb->pj[pb->ids.n]; /* the row's columns were read into the spare one */
        projection_read(&pb->pj[at], cols + 1);
}

/*
 * project_script for many anchors at once: KEYS[i] with ARGV[3i-2..3i] (status, until,
 * version), each skipped when its hash holds a newer version.
 */
static const char project_many_script[] =
        "for i = 1, #KEYS do\n"
        "  local b = (i - 1) * 3\n"
        "  local v = redis.call('HGET', KEYS[i], 'anchor_status_version')\n"
        "  if not (v and tonumber(v) > tonumber(ARGV[b + 3])) then\n"
        "    redis.call('HSET', KEYS[i], 'anchor_status', ARGV[b + 1], 'suspended_until', "
        "ARGV[b + 2], 'anchor_status_version', ARGV[b + 3])\n"
        "  end\n"
        "end\n"
        "return #KEYS\n";

#define PROJECT_PER_CALL 128 /* anchors per script call: Redis serves others between calls */

/*
 * The anchors' hashes of a batch in one pipeline: the script loaded (a no-op when Redis has
 * it), then a call per PROJECT_PER_CALL anchors by its SHA-1.
 */
static int project_all(struct audit_state *st, struct publish_batch *pb,
                       struct consumer_record *const *recs, char *errstr, size_t errstr_size)
{
        static const char *load[] = {"SCRIPT", "LOAD", project_many_script};
        size_t n = pb->ids.n, calls = n / PROJECT_PER_CALL + 2, cnt = 0, ncmd = 1;
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int digest_len = 0;
        char sha[41] = "", (*keys)[96] = calloc(n + 1, sizeof(*keys));
        char(*nums)[2][24] = calloc(n + 1, sizeof(*nums));
        char(*numkeys)[8] = calloc(calls, sizeof(*numkeys));
        const struct projection **pjs = calloc(n + 1, sizeof(*pjs));
        int *argcs = calloc(calls, sizeof(*argcs));
        const char **argv = calloc(4 * n + 3 * calls, sizeof(*argv)), **a = argv;
        const char ***cmds = calloc(calls, sizeof(*cmds));
        int rc = -1;

        (void)recs;
        if (!keys || !nums || !numkeys || !pjs || !argcs || !argv || !cmds) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const struct projection *pj = &pb->pj[i];

                if (!keyset_is_first(&pb->ids, i) || !pb->found[i] || !pj->has_anchor_row)
                        continue;
                snprintf(keys[cnt], sizeof(keys[cnt]), LF_KEY_ANCHOR_STATUS "%s", pj->anchor);
                snprintf(nums[cnt][0], sizeof(nums[cnt][0]), "%lld", pj->until_ms);
                snprintf(nums[cnt][1], sizeof(nums[cnt][1]), "%lld", pj->version_ms);
                pjs[cnt++] = pj;
        }
        if (!cnt) {
                rc = 0;
                goto out;
        }
        EVP_Digest(project_many_script, strlen(project_many_script), digest, &digest_len,
                   EVP_sha1(), NULL);
        for (unsigned i = 0; i < digest_len && i < 20; i++)
                snprintf(sha + 2 * i, 3, "%02x", digest[i]);
        argcs[0] = 3;
        cmds[0] = load;
        for (size_t from = 0; from < cnt; from += PROJECT_PER_CALL, ncmd++) {
                size_t k = cnt - from < PROJECT_PER_CALL ? cnt - from : PROJECT_PER_CALL;

                snprintf(numkeys[ncmd], sizeof(numkeys[ncmd]), "%zu", k);
                cmds[ncmd] = a;
                argcs[ncmd] = (int)(3 + 4 * k);
                *a++ = "EVALSHA";
                *a++ = sha;
                *a++ = numkeys[ncmd];
                for (size_t i = from; i < from + k; i++)
                        *a++ = keys[i];
                for (size_t i = from; i < from + k; i++) {
                        *a++ = pjs[i]->status;
                        *a++ = nums[i][0];
                        *a++ = nums[i][1];
                }
        }
        rc = redis_conn_pipeline(st->redis, ncmd, argcs, cmds, errstr, errstr_size);
out:
        free(keys);
        free(nums);
        free(numkeys);
        free(pjs);
        free(argcs);
        free(argv);
        free(cmds);
        return rc;
}

/*
 * The stream.close of every verdict that closes one, in batch order, produced together and
 * acknowledged together: a batch waits for the broker once, not once per punishment.
 */
static int send_closes(struct audit_state *st, struct publish_batch *pb,
                       struct consumer_record *const *recs, size_t n, char *errstr,
                       size_t errstr_size)
{
        struct stream_close_msg *ms = calloc(n ? n : 1, sizeof(*ms));
        const struct projection **pjs = calloc(n ? n : 1, sizeof(*pjs));
        char(*event_ids)[65] = calloc(n ? n : 1, sizeof(*event_ids));
        char **raw_texts = calloc(n ? n : 1, sizeof(*raw_texts));
        size_t cnt = 0;
        int rc = -1;

        if (!ms || !pjs || !event_ids || !raw_texts) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                size_t at = keyset_find(&pb->ids, recs[i]->ev.event_id);

                if (at == pb->ids.n || pb->ids.items[at].index != i || !pb->found[at] ||
                    !pb->pj[at].close_method)
                        continue;
                pjs[cnt] = &pb->pj[at];
                if (close_msg(recs[i], pjs[cnt], event_ids[cnt], &raw_texts[cnt], &ms[cnt], errstr,
                              errstr_size) == -1) {
                        cnt++;
                        goto out;
                }
                cnt++;
        }
        if ((rc = stream_close_send_many(st->closer, ms, cnt, errstr, errstr_size)) == 0)
                for (size_t i = 0; i < cnt; i++)
                        log_close(&ms[i], pjs[i]);
out:
        for (size_t i = 0; raw_texts && i < cnt; i++)
                free(raw_texts[i]);
        free(ms);
        free(pjs);
        free(event_ids);
        free(raw_texts);
        return rc;
}

/*
 * Between batches (outside any transaction): the live.notify relay marks sent what the broker
 * acknowledged since the last batch, and sweeps what nobody sent when a sweep is due.
 */
void audit_tick(void *state, long long now_ms)
{
        struct audit_state *st = state;
        char errstr[512];

        (void)now_ms;
        if (notify_flush(st->notify, false, errstr, sizeof(errstr)) == -1)
                log_warn(NULL, "live.notify: %s (tried again)", errstr);
}

void audit_handoff_clear(struct audit_state *st)
{
        for (size_t i = 0; i < st->handoff_n; i++)
                free(st->handoff[i].event_id);
        free(st->handoff);
        st->handoff = NULL;
        st->handoff_n = 0;
}

static int cmp_handoff(const void *key, const void *elem)
{
        return strcmp(key, ((const struct audit_handoff_row *)elem)->event_id);
}

/*
 * The projections apply_many() handed over, when they cover every record (the records it
 * applied and committed just now): MySQL need not be asked again.
 */
static bool take_handoff(struct audit_state *st, struct publish_batch *pb)
{
        if (!st->handoff_n)
                return false;
        for (size_t i = 0; i < pb->ids.n; i++) {
                const struct audit_handoff_row *row =
                        bsearch(pb->ids.items[i].id, st->handoff, st->handoff_n,
                                sizeof(*st->handoff), cmp_handoff);

                if (!row)
                        return false;
                pb->pj[i] = row->pj;
                pb->found[i] = true;
        }
        return true;
}

static int publish_batch(struct audit_state *st, struct publish_batch *pb,
                         struct consumer_record *const *recs, size_t n, char *errstr,
                         size_t errstr_size)
{
        char id[65];
        struct db_col cols[1 + AUDIT_PROJECTION_COLS] = {
                {.type = DB_PARAM_STR, .s = id, .s_size = sizeof(id)}};
        struct db_text sql = {0};
        enum db_result r;

        for (size_t i = 0; i < n; i++)
                keyset_add(&pb->ids, recs[i]->ev.event_id, i);
        keyset_sort(&pb->ids);
        if (notify_flush(st->notify, false, errstr, errstr_size) == -1)
                return -1;
        audit_steps_mark(&pb->steps, "notify_flush");
        if (!pb->ids.n)
                return 0;
        if (take_handoff(st, pb)) {
                audit_steps_mark(&pb->steps, "handed_over");
                goto project;
        }
        memset(pb->found, 0, (pb->ids.n + 1) * sizeof(*pb->found));
        projection_cols(&pb->pj[pb->ids.n], cols + 1);
        db_text_add(&sql, "%sWHERE l.event_id IN ", audit_projection_select);
        keyset_add_list(&pb->ids, st->db, &sql);
        r = db_text_query(st->db, &sql, cols, 1 + AUDIT_PROJECTION_COLS, on_projection, pb, errstr,
                          errstr_size);
        db_text_free(&sql);
        if (r != DB_OK)
                return -1;
        if (pb->is_mismatch) {
                snprintf(errstr, errstr_size,
                         "an event id that MySQL matches other than byte for byte");
                return -1;
        }
        audit_steps_mark(&pb->steps, "projections");
project:
        if (project_all(st, pb, recs, errstr, errstr_size) == -1)
                return -1;
        audit_steps_mark(&pb->steps, "redis");
        return send_closes(st, pb, recs, n, errstr, errstr_size);
}

int audit_publish_many(void *state, struct consumer_record *const *recs, size_t n, char *errstr,
                       size_t errstr_size)
{
        struct publish_batch pb = {0};
        int rc = -1;

        pb.pj = calloc(n + 1, sizeof(*pb.pj));
        pb.found = calloc(n + 1, sizeof(*pb.found));
        if (pb.pj && pb.found && keyset_init(&pb.ids, n) == 0) {
                audit_steps_start(&pb.steps);
                rc = publish_batch(state, &pb, recs, n, errstr, errstr_size);
                if (rc == 0) /* kept when it failed: a retry of this batch may use it */
                        audit_handoff_clear(state);
                audit_steps_mark(&pb.steps, "closes");
                audit_steps_log(&pb.steps, "audit publish_many");
        } else {
                snprintf(errstr, errstr_size, "out of memory");
        }
        keyset_free(&pb.ids);
        free(pb.pj);
        free(pb.found);
        return rc;
}
