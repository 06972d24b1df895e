/*
 * notify.h: liveflow's outgoing events on live.notify (schemas/event.avsc Notify), through a
 * MySQL outbox written in the transaction that makes the state change, relayed after the
 * commit by notify_flush().
 *
 * Two shapes of outbox row. A batch's notifications (notify_text_*) are ONE notify_batch row
 * (sql/070): a JSON array of messages, each with its event id (derived from the change). One
 * record per change holds because the batch writers record a change only in the transaction
 * that makes it (its event new in the ledger, live_events, in that same transaction; a file
 * new in live_records; a session opened or ended under its row lock), and notify_text_exec()
 * keeps the first of equal event ids within a batch; a batch does not look at earlier
 * batches. One change at a time (notify_record(), the per-record path and settlement) is a
 * notify_outbox row (sql/042) whose UNIQUE event id makes a repeat record nothing. The view
 * notify_messages lists both, one row per message.
 *
 * The relay does not wait: notify_flush() produces what this instance recorded since the last
 * flush on the runtime's producer and returns. A bundle goes as it was written when its
 * transaction committed whole (db_txn_committed()), else it is read back by id (a rolled-back
 * one is not there); notify_outbox rows are read back by event id. Each message is its own
 * record (the key, headers, envelope and event id of one change). Acknowledgements come with
 * the producer's next poll, and about once a second a flush hands what is acknowledged to the
 * relay's mark thread (lib/notify_mark.h), which marks it sent on a connection of its own: a
 * bundle once every message of it is acknowledged (one row, one UPDATE per second); a message
 * whose send failed is produced again by the next flush, and its bundle stays unsent until it
 * went. So a batch's offsets are stored after its MySQL commit without waiting for the
 * broker, and what the outbox holds is still sent at least once: a row nobody sent (an earlier
 * life's, after a crash between the commit and the relay or before the mark) is found by the
 * sweep, which claims unsent rows and bundles FOR UPDATE SKIP LOCKED, sends every message and
 * waits for their acknowledgements — everything unsent at the first flush of a life, then
 * every 10 s what is older than any send in flight (60 s). A message is sent again only after
 * a crash, a failed mark or a bundle's partly failed send, always with the same event id (the
 * Kafka header and the envelope), by which the platform de-duplicates.
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
 * A batch's notifications as one notify_batch row, in the caller's transaction:
 * notify_text_begin(), a notify_text_row() per message (as notify_record() would record it),
 * notify_text_exec() with the row count. The first of equal event ids is kept; a batch of more
 * than 1 000 messages is a row per 1 000. t is the caller's statement buffer (reused).
 */
void notify_text_begin(struct db_text *t);
void notify_text_row(struct notify *n, struct db_text *t, const struct notify_msg *m,
                     bool is_first_row);
/** @returns what MySQL said; DB_RETRY when out of memory (nothing written). */
__attribute__((warn_unused_result)) enum db_result notify_text_exec(struct notify *n,
                                                                    struct db_text *t, size_t rows,
                                                                    char *errstr,
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

/** @brief How many rows and bundles the relay holds: recorded, produced or being marked, not
 * yet marked sent. */
size_t notify_in_flight(const struct notify *n);

#endif
