/*
 * notify.h: liveflow's outgoing events on live.notify (schemas/event.avsc Notify), through a
 * MySQL outbox: a role records a notification in the transaction that makes the state change
 * (notify_outbox, keyed by an id derived from the change, so a replayed change records
 * nothing new), and after the commit notify_flush() relays it.
 *
 * The relay does not wait: notify_flush() produces the rows this instance recorded since the
 * last flush on the runtime's producer and returns. A batch's rows (notify_text_*) go as they
 * were written when the statement inserted every one of them in a transaction that then
 * committed whole (db_txn_committed()); the others are read back (one query by event id: a
 * rolled-back row is not there, a sent one is left out); their acknowledgements come with
 * the producer's next poll, and about once a second a flush hands them to the relay's mark
 * thread (lib/notify_mark.h), which marks them sent in one statement on a connection of its
 * own: the batch's thread never runs that UPDATE (a failed one is produced again). So a batch's offsets are stored after its MySQL commit
 * without waiting for the broker, and what the outbox holds is still sent at least once: a row
 * nobody sent (an earlier life's, after a crash between the commit and the relay or before the
 * mark; one whose send failed) is found by the sweep, which claims unsent rows FOR UPDATE SKIP
 * LOCKED, sends them and waits for their acknowledgements — every unsent row at the first
 * flush of a life, then every 10 s the rows older than any send in flight (60 s). A row is sent
 * again only after a crash or a failed mark, always with the same event id (the Kafka header
 * and the envelope), by which the platform de-duplicates.
 *
 * One relay per producer (the runtime's): a second outbox on the same producer falls back to
 * waiting for its acknowledgements in each flush.
 */
#ifndef LIVEFLOW_NOTIFY_H
#define LIVEFLOW_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

struct role_env;

/* One change. Strings are borrowed for the call; NULL (or -1 for numbers) leaves a field out. */
struct notify_msg {
        const char *kind; /* stream.live, stream.ended, anchor.warned, anchor.suspended,
                             anchor.banned, withdrawal.succeeded, withdrawal.rejected,
                             record.ready */
        const char *key;  /* what makes the change unique within its kind (a session, a verdict's
                             event id, a request id, a file id) */
        const char *anchor_id, *room_id, *stream_id;
        long long session_id; /* 0: none */
        long long at_ms;
        const char *title, *cover_url, *reason, *request_id, *file_id, *playback_url;
        long long duration_s, close_method, until_ms, amount; /* -1: none */
};

/** @brief A msg with every optional number at -1. */
struct notify_msg notify_msg_init(const char *kind, const char *key, long long at_ms);

struct notify;

/**
 * @brief Prepares the outbox on env's database and producer (borrowed from the runtime).
 * @returns NULL with errstr when out of memory.
 */
struct notify *notify_new(const struct role_env *env, char *errstr, size_t errstr_size);

/** @brief Frees it; NULL is fine. */
void notify_destroy(struct notify *n);

/**
 * @brief In the caller's transaction: records m once (its event id is the hex SHA-256 of
 * "notify|<kind>|<key>"). @returns what MySQL said (a repeat is DB_OK).
 */
__attribute__((warn_unused_result)) enum db_result
notify_record(struct notify *n, const struct notify_msg *m, char *errstr, size_t errstr_size);

/**
 * @brief In the caller's transaction: records stream.live or stream.ended for the session
 * live_streams holds for stream_id now (anchor, room, session, cover, duration, close method
 * and reason from the row); keyed by the session. @returns what MySQL said.
 */
__attribute__((warn_unused_result)) enum db_result
notify_record_stream(struct notify *n, const char *kind, const char *stream_id, long long at_ms,
                     char *errstr, size_t errstr_size);

/*
 * A batch's notifications in one statement: notify_text_begin(), a notify_text_row() per
 * message (as notify_record() would record it), notify_text_exec() with the row count.
 */
void notify_text_begin(struct db_text *t);
void notify_text_row(struct notify *n, struct db_text *t, const struct notify_msg *m,
                     bool is_first_row);
__attribute__((warn_unused_result)) enum db_result notify_text_exec(struct notify *n,
                                                                    const struct db_text *t,
                                                                    size_t rows, char *errstr,
                                                                    size_t errstr_size);

/**
 * @brief After the commit (never inside a transaction): marks sent what was acknowledged
 * (about once a second, or `always`), relays what this instance recorded since the last flush,
 * and sweeps when one is due (or `always`). Without a relay (see above), sends and waits
 * instead. @returns 0, or -1 with errstr (transient: what was not sent stays for the next
 * flush).
 */
__attribute__((warn_unused_result)) int notify_flush(struct notify *n, bool always, char *errstr,
                                                     size_t errstr_size);

/** @brief How many rows the relay has produced and not yet marked sent. */
size_t notify_in_flight(const struct notify *n);

#endif
