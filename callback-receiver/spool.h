/*
 * spool.h: the receiver's durable local spool. When Kafka cannot take an event from a caller
 * that never retries (SRS), the event is appended here and fsync'ed instead, the caller is
 * answered as accepted, and the spool is replayed to Kafka once the broker is back. A
 * replayed record may reach Kafka twice after a crash mid-replay; its event id makes that
 * harmless downstream.
 */
#ifndef LIVEFLOW_RECEIVER_SPOOL_H
#define LIVEFLOW_RECEIVER_SPOOL_H

#include <stddef.h>

#include "webhook.h"

struct spool;

/**
 * @brief Opens (creating) dir/receiver.spool and counts what it holds; a torn record at the
 * end (a crash mid-append) is cut off. max_bytes bounds the file (appends beyond fail).
 * @returns NULL with errstr set (dir missing or not writable, file corrupt before its end).
 */
struct spool *spool_open(const char *dir, long long max_bytes, char *errstr, size_t errstr_size);

/** @brief Closes the spool; NULL is fine. The file stays. */
void spool_close(struct spool *sp);

/**
 * @brief Appends rec (its topic, key, trace_id, event_type, vendor, event_id and value;
 * NULL strings are kept as NULL) and fsyncs it: on 0 the record survives a crash. Thread-safe.
 * @returns 0, or -1 with errstr (full, I/O error).
 */
int spool_append(struct spool *sp, const struct webhook_event *rec, char *errstr,
                 size_t errstr_size);

/** @brief Records in the spool now. Thread-safe. */
size_t spool_pending(struct spool *sp);

/**
 * Sends recs[0..n) (events that borrow everything from the spool, for the call) and returns how
 * many of the leading ones are durable elsewhere (0..n). Called with the spool locked: appends wait
 * until it returns.
 */
typedef size_t (*spool_send_fn)(void *arg, const struct webhook_event *recs, size_t n);

/**
 * @brief Hands every spooled record to send, oldest first, and removes durably the ones it
 * reports sent. Thread-safe. @returns how many were removed, or -1 with errstr on an I/O error.
 */
long spool_replay(struct spool *sp, spool_send_fn send, void *arg, char *errstr,
                  size_t errstr_size);

#endif
