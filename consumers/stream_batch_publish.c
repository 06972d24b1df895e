/*
 * stream_batch_publish.c: the stream role's publish step for a batch at once (publish_many(),
 * after the commit; see stream_role.h for which step runs where): the batch's streams projected
 * to Redis, its session.end records, the vendor drops and cut-offs, the live.notify relay.
 */
#include "stream_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyset.h"
#include "notify.h"
#include "rebuild.h"
#include "role_kit.h"
#include "session_handoff.h"

/* ------------------------------------------------------------------ publishing a batch */

/*
 * The batch's distinct streams (sorted into ids, n of them at most) projected at once; then
 * the batch's session.end records at once; then the rest of publish() for the records that
 * have a note.
 */
static int publish_batch(struct stream_state *st, struct consumer_record *const *recs, size_t n,
                         const char **ids, struct rebuild_stream *rows, struct keyset *events,
                         char *errstr, size_t errstr_size)
{
        const char **folded = ids + n; /* keys_may_collide() reorders its copy */
        const char **hand_ids = ids + n, **hand_traces = ids + 2 * n; /* folded is done then */
        size_t cnt = 0, hand_cnt = 0;

        for (size_t i = 0; i < n; i++)
                ids[cnt++] = recs[i]->ev.stream_id;
        qsort(ids, cnt, sizeof(*ids), role_cmp_str);
        cnt = 0;
        for (size_t i = 0; i < n; i++)
                if (i == 0 || strcmp(ids[i], ids[cnt - 1]) != 0)
                        ids[cnt++] = ids[i];
        memcpy(folded, ids, cnt * sizeof(*ids));
        for (size_t i = 0; i < n; i++) /* apply() knows the first copies that ended no session */
                if (!(recs[i]->note & NOTE_NO_HANDOFF))
                        keyset_add(events, recs[i]->ev.event_id, i);
        keyset_sort(events);
        if (keys_may_collide(folded, cnt) || keyset_may_collide(events)) {
                snprintf(errstr, errstr_size, "ids MySQL may match other than byte for byte");
                return -1;
        }
        if (rebuild_project_streams(st->rebuild, ids, cnt, rows, errstr, errstr_size) == -1)
                return -1;
        /*
         * The session.end records of the events the outbox may hold, in batch order: read in
         * one query, produced together and waited for together.
         */
        for (size_t i = 0; i < n; i++) {
                const char **hit =
                        bsearch(&recs[i]->ev.stream_id, ids, cnt, sizeof(*ids), role_cmp_str);

                if (rows[hit - ids].found && !(recs[i]->note & NOTE_NO_HANDOFF)) {
                        hand_ids[hand_cnt] = recs[i]->ev.event_id;
                        hand_traces[hand_cnt++] = recs[i]->trace_id;
                }
        }
        if (hand_cnt && session_handoff_send_many(st->handoff, hand_ids, hand_traces, hand_cnt,
                                                  errstr, errstr_size) == -1)
                return -1;
        /* Then the vendor drops and cut-offs of the few that have them, in batch order */
        for (size_t i = 0; i < n; i++) {
                struct consumer_record *rec = recs[i];
                const char **hit =
                        bsearch(&rec->ev.stream_id, ids, cnt, sizeof(*ids), role_cmp_str);
                const struct rebuild_stream *row = &rows[hit - ids];

                if (!row->found || !NOTE_KIND(rec->note))
                        continue;
                if (stream_publish_rest(st, rec, row->status, row->vendor, false, errstr,
                                        errstr_size) == -1)
                        return -1;
        }
        /* The batch's stream.live / stream.ended: relayed now, not waited for (notify.h). */
        return notify_flush(st->notify, false, errstr, errstr_size);
}

int stream_publish_many(void *state, struct consumer_record *const *recs, size_t n, char *errstr,
                        size_t errstr_size)
{
        const char **ids = calloc(3 * n + 1, sizeof(*ids));
        struct rebuild_stream *rows = calloc(n + 1, sizeof(*rows));
        struct keyset events = {0};
        int rc = -1;

        if (ids && rows && keyset_init(&events, n) == 0)
                rc = publish_batch(state, recs, n, ids, rows, &events, errstr, errstr_size);
        else
                snprintf(errstr, errstr_size, "out of memory");
        keyset_free(&events);
        free(ids);
        free(rows);
        return rc;
}
