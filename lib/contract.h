/*
 * contract.h: the names other systems rely on (CONTRACT.md §3 Kafka, §5 Redis), once.
 *
 * Every macro is a string literal, so a name joins others at compile time:
 * LF_TOPIC_STREAM LF_DLQ_SUFFIX is "live.stream.dlq", LF_GROUP_PREFIX "audit" is
 * "liveflow.audit", and LF_KEY_ANCHOR_STATUS "%s" is a format for snprintf. A key prefix ends
 * where its {id} begins.
 */
#ifndef LIVEFLOW_CONTRACT_H
#define LIVEFLOW_CONTRACT_H

/* Kafka topics (CONTRACT.md §3). */
#define LF_TOPIC_STREAM      "live.stream"      /* key stream_id: begin, end, forced close */
#define LF_TOPIC_RECORD      "live.record"      /* key stream_id: recording files */
#define LF_TOPIC_SNAPSHOT    "live.snapshot"    /* key stream_id: screenshots */
#define LF_TOPIC_AUDIT       "live.audit"       /* key stream_id: verdicts, admin ban/unban */
#define LF_TOPIC_REWARD      "live.reward"      /* key anchor_id: tips */
#define LF_TOPIC_WITHDRAWAL  "live.withdrawal"  /* key anchor_id: withdrawal requests */
#define LF_TOPIC_VIEWER      "live.viewer"      /* key stream_id: viewers joining and leaving */
#define LF_TOPIC_OTHER       "live.other"       /* key stream_id: kept, not acted on yet */
#define LF_TOPIC_INTERACTION "live.interaction" /* key stream_id (room_id when none) */
#define LF_TOPIC_NOTIFY      "live.notify"      /* key anchor_id: liveflow's outgoing events */
/* liveflow's own hand-off: sessions the stream role closed, for settlement and stats. */
#define LF_TOPIC_SESSION "live.session"

/* "<topic>.dlq": where a record goes after its last attempt, with the original key. */
#define LF_DLQ_SUFFIX ".dlq"

/* Consumer groups are "liveflow.<role>"; a role's own producers use the same prefix. */
#define LF_GROUP_PREFIX "liveflow."

/* Redis keys (CONTRACT.md §5). */
#define LF_KEY_ONLINE              "set:live:online"           /* set: stream_ids live now */
#define LF_KEY_ANCHOR_STATUS       "hash:anchor:status:"       /* + anchor_id: hash */
#define LF_KEY_CALLBACK_LOCK       "lock:callback:"            /* + event key: SET NX, TTL */
#define LF_KEY_STREAM_TEMP         "temp:live:"                /* + stream_id: hash, TTL */
#define LF_KEY_ROOM_EARNINGS       "live:room:earnings:"       /* + room_id: running gross */
#define LF_KEY_ROOM_RECHARGE_COUNT "live:room:recharge_count:" /* + room_id: running count */
#define LF_KEY_ROOM_TOP            "live:room:top:"            /* + room_id: zset by amount */
#define LF_KEY_SESSION_STATS       "live:stats:"               /* + session_id: hash */
#define LF_KEY_ROOM_ONLINE         "live:room:online:"         /* + room_id: viewers now */
#define LF_KEY_RANK_HOT            "live:rank:hot"             /* zset: room_id by heat */

/* liveflow's own keys beside them (not in the contract; rebuild and dedupe bookkeeping). */
#define LF_KEY_ROOM_REBUILT    "live:room:rebuilt:"  /* + room_id: rebuild mark */
#define LF_KEY_SESSION_PAYERS  "live:stats:payers:"  /* + session_id: paying users */
#define LF_KEY_SESSION_REBUILT "live:stats:rebuilt:" /* + session_id: rebuild mark */

#endif
