/* audit.h: the "audit" role: moderation verdicts and operator bans into graded punishments. */
#ifndef LIVEFLOW_AUDIT_H
#define LIVEFLOW_AUDIT_H

#include "consumer.h"

/* A verdict's grade, and the punishment applied (the names of live_audit_logs.punishment). */
enum audit_grade {
        AUDIT_NONE,
        AUDIT_WARN,
        AUDIT_SUSPEND,
        AUDIT_BAN,
        AUDIT_UNBAN, /* operators only */
};

/* The thresholds of LIVEFLOW_AUDIT_*; ban_labels is borrowed. */
struct audit_policy {
        long long warn_score;    /* 0..100 */
        long long suspend_score; /* warn_score..100 */
        const char *ban_labels;  /* comma-separated, compared without case; may be NULL */
};

/**
 * @brief Grades one moderation verdict. suggestion ("Pass", "Review" or "Block", any case),
 * label and score (0..100, or -1 when absent) may each be missing (NULL / -1):
 * Pass, a score below warn_score, or neither suggestion nor score is AUDIT_NONE; a Block with
 * a label of ban_labels is AUDIT_BAN; a Block scoring at least suspend_score (or without a
 * score) is AUDIT_SUSPEND; anything else (Review, a weaker Block, a bare score at or above
 * warn_score) is AUDIT_WARN.
 */
enum audit_grade audit_grade_verdict(const struct audit_policy *p, const char *suggestion,
                                     const char *label, long long score);

/** @brief "none", "warn", "suspend", "ban" or "unban". */
const char *audit_grade_name(enum audit_grade g);

/*
 * live.audit in group liveflow.audit. Every verdict (unique event_id) becomes one
 * live_audit_logs row, so a duplicate or a replay changes nothing. The anchor comes from the
 * envelope, else from the stream's live_streams row; without one the verdict is only logged.
 * Under a lock on the anchors row: a warning counts towards LIVEFLOW_AUDIT_WARN_ESCALATE
 * warnings within LIVEFLOW_AUDIT_WARN_WINDOW_S (by the verdicts' own times, so the order of
 * arrival does not matter) and then suspends; a suspension runs LIVEFLOW_AUDIT_SUSPEND_S from
 * the verdict's time (extending, never shortening, one in force); a ban is for good. An
 * operator's ban or unban (audit.admin) is a decision in time: verdicts older than it do not
 * override it. After the commit Redis hash:anchor:status:{anchor_id} gets anchor_status and
 * suspended_until (ms, 0 when none) from the anchors row, and a suspension or ban in force
 * closes the anchor's live stream with a stream.close record on live.stream (close_method 3,
 * or 2 for an operator) whose event id derives from the verdict's, so a replay repeats it.
 */
extern const struct consumer_role audit_role;

#endif
