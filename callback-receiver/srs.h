/*
 * srs.h: SRS http_hooks callbacks: on_publish authorization (anti-leech signature, anchor
 * status) and the mapping of every hook to a liveflow event. The ?token= of the hook URL is
 * checked by the receiver before srs_map() is called.
 */
#ifndef LIVEFLOW_RECEIVER_SRS_H
#define LIVEFLOW_RECEIVER_SRS_H

#include <stddef.h>
#include <stdint.h>

#include "anchor_store.h"
#include "webhook.h"

struct settings;
struct metrics;

#define SRS_KEY_MAX 256 /* longest accepted LIVEFLOW_SRS_PUBLISH_KEY key, in bytes */

/* Every topic srs_map() may choose, NULL-terminated. */
extern const char *const srs_topics[];

/* The SRS endpoint: the anti-leech keys, the anchor lookup and its connections, the metrics. */
struct srs;

/**
 * @brief Checks the SRS settings of s without connecting anything (--check-config):
 * LIVEFLOW_SRS_PUBLISH_KEY and, when set, LIVEFLOW_REDIS_URL and LIVEFLOW_MYSQL_URL.
 * @returns 0, or -1 with errstr naming the key.
 */
__attribute__((warn_unused_result)) int srs_check_config(const struct settings *s, char *errstr,
                                                         size_t errstr_size);

/**
 * @brief Makes the SRS endpoint from s: LIVEFLOW_SRS_PUBLISH_KEY (comma-separated, blanks
 * around a key ignored, all valid at once during a rotation; unset: no anti-leech check),
 * LIVEFLOW_SRS_FAIL_OPEN, LIVEFLOW_SRS_REQUIRE_ANCHOR, and the anchor status stores
 * (anchor_store_new()). Neither store set: anchor checks are off (logged). Connects
 * nothing. Registers liveflow_receiver_srs_publish_decisions_total in metrics. s and metrics are
 * borrowed and must outlive it.
 * @returns the endpoint (srs_destroy() frees it), or NULL with errstr set on a bad setting.
 */
struct srs *srs_new(const struct settings *s, struct metrics *metrics, char *errstr,
                    size_t errstr_size);

/**
 * @brief Frees the endpoint and every thread's connections, so call it once no thread
 * uses it any more (after MHD_stop_daemon()). NULL is fine.
 */
void srs_destroy(struct srs *srs);

/**
 * @brief Replaces the store lookup (tests, another store); lookup is copied, NULL turns
 * anchor checks off. Call before the first srs_map(). The connections made so far stay
 * until srs_destroy().
 */
void srs_set_lookup(struct srs *srs, const struct anchor_lookup *lookup);

/**
 * @brief Reads one SRS hook body (req->body, the exact bytes received) and fills ev.
 *
 * on_publish → stream.begin (StreamBegin) and on_unpublish → stream.end (StreamEnd,
 * close_method 1) on live.stream; on_play → viewer.join and on_stop → viewer.leave (Viewer)
 * on live.viewer; on_dvr → record.file (RecordFile) on live.record; every other action
 * (on_hls, on_connect, on_close, on_forward, unknown) → "other" with a null payload on
 * live.other. The stream id and the Kafka key are SRS's `stream`; vhost and app are not
 * part of it (liveflow stream names are unique across apps: see srs.c). StreamBegin and
 * StreamEnd carry client_id as their `sequence`, the key that pairs a session's begin and
 * end. anchor_id and room_id come from the publisher's `param` (on_publish, on_unpublish,
 * on_dvr, on_hls, on_forward); the room defaults to the anchor. Integers may come as
 * numbers or text (SRS 3 sends client_id as a number); unknown fields are ignored.
 *
 * event_id: lowercase hex SHA-256 of "srs|<action>|" + a compact JSON array of the texts
 * of the action's natural key, absent fields as "":
 *   on_publish, on_unpublish, on_play, on_stop, on_forward, on_connect:
 *       [server_id, service_id, client_id, vhost, app, stream]
 *   on_dvr: the same + [file];  on_hls: the same + [file, seq_no];
 *   on_close: [server_id, service_id, client_id, vhost, app];
 *   an unknown action: not an array but the body itself, keys sorted, compact.
 * client_id names one connection and service_id one SRS process run, so a replayed body
 * keeps its id and two sessions do not share one (except on SRS 3, whose numeric
 * client_ids restart with the process and which sends no service_id). The event time is
 * req->now_ms: SRS sends no time.
 *
 * on_publish is authorized before anything is produced. The publisher's identity is what
 * the platform signed into its push URL: txSecret = lowercase hex MD5(key + stream +
 * anchor_id + txTime), anchor_id decoded ("" when absent), txTime = hex Unix expiry, against
 * every key; without a key every on_publish is refused (403) unless
 * LIVEFLOW_SRS_PUBLISH_UNSIGNED=1. A repeated or empty anchor_id or room_id is a 400; a
 * missing anchor_id is refused (400) unless LIVEFLOW_SRS_REQUIRE_ANCHOR=0. Then the anchor's
 * status (banned, or suspended with suspended_until 0 or in the future: refused).
 *
 * @param ev zeroed by the caller; on success owns what it points to (webhook_event_fini()),
 *        on failure is left zeroed.
 * @param v on failure: 400 (malformed JSON, a missing, malformed or too long field, named),
 *        403 (publish refused: signature, with auth_failure "missing", "mismatch" or
 *        "expired"; or the anchor's status, auth_failure NULL), 503 (no anchor status store
 *        answered and LIVEFLOW_SRS_FAIL_OPEN=0) or 500 (out of memory). Untouched on success.
 * @returns 0 or -1. Thread-safe.
 */
/**
 * @brief Whether srs_map() of req would look an anchor up (a signed on_publish naming one,
 * with the stores configured): copies the anchor id into anchor_id (size bytes).
 * @returns 1 when it would, else 0 (srs_map() then needs no lookup, or refuses before one).
 */
int srs_lookup_wanted(struct srs *srs, const struct webhook_request *req, char *anchor_id,
                      size_t size);

/**
 * @brief Starts that lookup on the lookup threads and returns at once: done(arg) is called
 * once, from another thread, when ans is filled (the answer, or unavailable at the deadline
 * LIVEFLOW_SRS_LOOKUP_TIMEOUT_MS, counted). Pass ans as req->anchor_answer to srs_map() then.
 * Only after srs_lookup_wanted() said 1.
 */
void srs_lookup_start(struct srs *srs, const char *anchor_id, const char *trace_id,
                      struct anchor_answer *ans, void (*done)(void *arg), void *arg);

__attribute__((warn_unused_result)) int srs_map(struct srs *srs, const struct webhook_request *req,
                                                struct webhook_event *ev,
                                                struct webhook_verdict *v);

#endif
