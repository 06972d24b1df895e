/*
 * reward_sync_batch_publish.c: publish_many(), the reward-sync role's batch projected to Redis
 * (reward_publish() in reward_sync.c stays the fallback and the oracle); apply_many() is in
 * reward_sync_batch.c.
 */
#include "reward_sync_role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"
#include "role_kit.h"

/* ------------------------------------------------------------------ publishing a batch */

/*
 * reward_publish() for a batch: the tips apply_many() wrote are projected as it wrote them (its
 * rows in st->known); one SELECT reads the others back from recharge (duplicates, a batch applied
 * one record at a time), and one Redis round trip runs reward_batch_script over all of them
 * (SCRIPT LOAD first, so the EVALSHA finds it even after a Redis restart). A Redis failure marks
 * every tip's room for the rebuild, as reward_publish() does once Redis failed. A row MySQL matched
 * to another spelling of a tip_id returns -1, and the runtime publishes one tip at a time.
 */
/* A record's tip_id and its place in the batch: the records sorted for matching rows. */
struct keyed_rec {
        const char *tip_id;
        size_t index;
};

struct publish_batch {
        struct reward_state *st;
        struct consumer_record *const *recs;
        size_t n, keyed_cnt;
        struct keyed_rec *keyed; /* the records with a tip_id, by tip_id */
        struct tip_row *rows;    /* per record */
        bool *found;             /* per record */
        bool is_mismatch;
        struct db_text sql;
};

/* The row apply_many() wrote for rec in this generation, or NULL (read it back). */
static const struct tip_row *known_row(const struct reward_state *st,
                                       const struct consumer_record *rec)
{
        unsigned long long note = (unsigned long long)rec->note;
        size_t index = (size_t)(note & 0xffffffffULL);

        if (note >> 32 != st->known.gen || index == 0 || index > st->known.n)
                return NULL;
        return &st->known.rows[index - 1];
}

static int cmp_keyed(const void *a, const void *b)
{
        return strcmp(((const struct keyed_rec *)a)->tip_id, ((const struct keyed_rec *)b)->tip_id);
}

/* The rows apply_many() wrote are taken as written; the other records are sorted to be read. */
static void sort_records(struct publish_batch *pb)
{
        for (size_t i = 0; i < pb->n; i++) {
                const char *tip_id = payload_str(&pb->recs[i]->ev, "tip_id");
                const struct tip_row *row = known_row(pb->st, pb->recs[i]);

                if (tip_id && row) {
                        pb->rows[i] = *row;
                        pb->found[i] = true;
                } else if (tip_id)
                        pb->keyed[pb->keyed_cnt++] = (struct keyed_rec){tip_id, i};
        }
        qsort(pb->keyed, pb->keyed_cnt, sizeof(*pb->keyed), cmp_keyed);
        metric_add(pb->st->m_read_back, (long long)pb->keyed_cnt);
}

struct row_sink {
        struct publish_batch *pb;
        char trace_id[ID_MAX + 1];
        struct tip_row row;
};

/* Gives a recharge row to every record of its tip_id (a tip may come twice in a batch). */
static void on_tip_row(const struct db_col *cols, void *arg)
{
        struct row_sink *rs = arg;
        struct publish_batch *pb = rs->pb;
        size_t lo = 0, hi = pb->keyed_cnt;
        bool is_matched = false;

        rs->row.session_id = cols[3].is_null ? 0 : cols[3].i;
        rs->row.amount = cols[4].i;
        rs->row.gift_count = cols[5].i;
        rs->row.room_seq = cols[6].i;
        while (lo < hi) { /* the first record with this tip_id */
                size_t mid = lo + (hi - lo) / 2;

                if (strcmp(pb->keyed[mid].tip_id, rs->trace_id) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (; lo < pb->keyed_cnt && strcmp(pb->keyed[lo].tip_id, rs->trace_id) == 0; lo++) {
                pb->rows[pb->keyed[lo].index] = rs->row;
                pb->found[pb->keyed[lo].index] = true;
                is_matched = true;
        }
        pb->is_mismatch |= !is_matched;
}

/* read_tip_row() for every record apply_many() did not write, at once. */
static enum db_result read_tip_rows(struct publish_batch *pb, char *errstr, size_t errstr_size)
{
        struct row_sink rs = {.pb = pb};
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = rs.trace_id, .s_size = sizeof(rs.trace_id)},
                {.type = DB_PARAM_STR,
                 .s = rs.row.audience_id,
                 .s_size = sizeof(rs.row.audience_id)},
                {.type = DB_PARAM_STR, .s = rs.row.room_id, .s_size = sizeof(rs.row.room_id)},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
                {.type = DB_PARAM_I64},
        };

        sort_records(pb);
        if (!pb->keyed_cnt)
                return DB_OK;
        db_text_reset(&pb->sql);
        db_text_add(&pb->sql, "SELECT trace_id, audience_id, room_id, session_id, amount, "
                              "gift_count, room_seq FROM recharge WHERE trace_id IN (");
        for (size_t i = 0; i < pb->keyed_cnt; i++) {
                if (i)
                        db_text_add(&pb->sql, ", ");
                db_text_str(pb->st->db, &pb->sql, pb->keyed[i].tip_id);
        }
        db_text_add(&pb->sql, ")");
        return db_text_query(pb->st->db, &pb->sql, cols, 7, on_tip_row, &rs, errstr, errstr_size);
}

#define TIP_KEYS 8 /* keys and arguments of one tip in reward_batch_script */
#define TIP_ARGS 6

/*
 * reward_batch_script for every tip found, in one call (after a SCRIPT LOAD, in the same round
 * trip): one command for Redis to parse and one Lua call instead of one per tip.
 * @returns 0, or -1 when Redis failed (the tips it counted before keep their markers, so
 * reward_publish() one tip at a time counts the rest once).
 */
static int project_tips(struct publish_batch *pb, size_t found, char *errstr, size_t errstr_size)
{
        static const char *load[] = {"SCRIPT", "LOAD", reward_batch_script};
        struct tip_call *calls = calloc(found, sizeof(*calls));
        const char **eval = calloc(3 + found * (TIP_KEYS + TIP_ARGS), sizeof(*eval));
        char numkeys[24];
        size_t k = 0;
        int rc = -1;

        if (!calls || !eval) {
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        snprintf(numkeys, sizeof(numkeys), "%zu", found * TIP_KEYS);
        eval[0] = "EVALSHA";
        eval[1] = pb->st->batch_sha;
        eval[2] = numkeys;
        for (size_t i = 0; i < pb->n; i++) {
                struct tip_call *c = &calls[k];

                if (!pb->found[i])
                        continue;
                /* found: the record has a tip_id, and recharge a row under it */
                reward_tip_call_fill(pb->st, payload_str(&pb->recs[i]->ev, "tip_id"), &pb->rows[i],
                                     c);
                memcpy(&eval[3 + k * TIP_KEYS], c->keys, sizeof(c->keys));
                memcpy(&eval[3 + found * TIP_KEYS + k * TIP_ARGS], c->args, sizeof(c->args));
                k++;
        }
        const int argcs[] = {3, (int)(3 + found * (TIP_KEYS + TIP_ARGS))};
        const char **const cmds[] = {load, eval};

        rc = redis_conn_pipeline(pb->st->redis, 2, argcs, cmds, errstr, errstr_size);
out:
        free(calls);
        free(eval);
        return rc;
}

/* mark_for_rebuild() for every tip found, in one statement. */
static int mark_all_for_rebuild(struct publish_batch *pb, char *errstr, size_t errstr_size)
{
        bool is_first = true;

        db_text_reset(&pb->sql);
        db_text_add(&pb->sql, "INSERT IGNORE INTO live_room_rebuild (room_id, session_id) VALUES ");
        for (size_t i = 0; i < pb->n; i++) {
                if (!pb->found[i])
                        continue;
                db_text_add(&pb->sql, is_first ? "(" : ", (");
                db_text_str(pb->st->db, &pb->sql, pb->rows[i].room_id);
                db_text_add(&pb->sql, ", %lld)", pb->rows[i].session_id);
                is_first = false;
        }
        return db_text_exec(pb->st->db, &pb->sql, NULL, errstr, errstr_size) == DB_OK ? 0 : -1;
}

static int publish_found(struct publish_batch *pb, char *errstr, size_t errstr_size)
{
        char err[512];
        size_t found = 0;

        if (read_tip_rows(pb, errstr, errstr_size) != DB_OK)
                return -1;
        if (pb->is_mismatch) {
                snprintf(errstr, errstr_size,
                         "tip ids that MySQL matches other than byte for byte");
                return -1;
        }
        for (size_t i = 0; i < pb->n; i++)
                found += pb->found[i];
        if (!found) /* apply() committed them; nothing else deletes tips */
                return 0;
        if (!pb->st->is_degraded) {
                if (project_tips(pb, found, err, sizeof(err)) == 0) {
                        log_debug(NULL, "%zu tip(s) projected to Redis", found);
                        return 0;
                }
                reward_redis_failed(pb->st, err);
        }
        /* Redis is out: the tips are in MySQL, and the rebuild will bring Redis to them. */
        metric_add(pb->st->m_degraded, (long long)found);
        log_debug(NULL, "%zu tip(s) left for the rebuild of their rooms", found);
        return mark_all_for_rebuild(pb, errstr, errstr_size);
}

int reward_publish_many(void *state, struct consumer_record *const *recs, size_t n, char *errstr,
                        size_t errstr_size)
{
        struct publish_batch pb = {.st = state, .recs = recs, .n = n};
        int rc = -1;

        pb.keyed = calloc(n, sizeof(*pb.keyed));
        pb.rows = calloc(n, sizeof(*pb.rows));
        pb.found = calloc(n, sizeof(*pb.found));
        if (pb.keyed && pb.rows && pb.found)
                rc = publish_found(&pb, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        db_text_free(&pb.sql);
        free(pb.keyed);
        free(pb.rows);
        free(pb.found);
        return rc;
}
