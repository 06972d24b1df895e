/*
 * audit_role.h: what the audit role's files share: audit.c (open, apply() one verdict at a
 * time, the decision itself), audit_batch*.c (apply_many(), a batch at once, with audit_apply()
 * as its fallback and oracle) and audit_publish.c (publish() and publish_many(), after the
 * commit). Private to the role.
 */
#ifndef LIVEFLOW_AUDIT_ROLE_H
#define LIVEFLOW_AUDIT_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include "audit.h"
#include "consumer.h"
#include "db.h"
#include "notify.h"
#include "role_kit.h"

#define AUDIT_TIME_MAX_MS 2147483647999LL /* FROM_UNIXTIME on MariaDB 10.11 stops in 2038 */

/* What publish() needs, read back from MySQL: the committed truth, whatever order came first. */
struct projection {
        char anchor[65], close_stream[256], reason[256], punishment[16], status[16];
        char close_vendor[17]; /* "" when unknown (decided before the column existed) */
        int close_method;      /* 0: nothing to close */
        long long decided_ms;  /* the log row's created_at: when the punishment was decided */
        long long until_ms;    /* 0 when NULL */
        long long version_ms;  /* anchors.updated_at */
        bool has_anchor_row;
};

/* The projection of a verdict the last apply_many() wrote, as its rows were committed. */
struct audit_handoff_row {
        char *event_id;
        struct projection pj;
};

struct audit_state {
        struct db *db;
        struct redis_conn *redis;
        struct stream_close *closer; /* stream.close records, acknowledged before publish() ends */
        struct notify *notify;       /* live.notify: anchor warned, suspended, banned */
        struct audit_policy policy;
        struct role_gate gate; /* a batch unread, or live_audit_logs looked up first (role_kit.h) */
        long long suspend_s, warn_escalate, warn_window_s;
        /*
         * apply_many()'s projections for the publish_many() after its commit, sorted by
         * event id (what the rows it wrote returned); dropped by any other apply.
         */
        struct audit_handoff_row *handoff;
        size_t handoff_n;
        struct db_stmt *insert_log, *stream_anchor, *upsert_anchor, *lock_anchor, *window, *set_log,
                *set_anchor, *live_stream, *project;
};

/* One record's verdict, read from the envelope and its AuditVerdict payload. */
struct verdict {
        const struct event *ev;
        const char *source, *action, *suggestion, *label, *reason;
        long long score;     /* -1 when absent */
        long long suspend_s; /* -1 when absent */
        bool is_admin;
        enum audit_grade severity;
};

/* The anchors row under FOR UPDATE. */
struct anchor_row {
        char status[16];
        long long until_ms;    /* -1 when NULL */
        long long admin_at_ms; /* -1 when NULL */
};

/* What applying a verdict decided: written to its log row and to the anchors row. */
struct decision {
        enum audit_grade punishment;
        const char *outcome;
        const char *status;    /* the anchor's new status; NULL leaves it */
        long long until_ms;    /* the new suspended_until when status is set; -1 for NULL */
        long long admin_at_ms; /* -1 leaves admin_at */
        int warnings;          /* added to warning_count */
        int close_method;      /* 0: nothing to close */
        char close_stream[256];
        char close_vendor[17]; /* the vendor of close_stream */
};

/*
 * The fullest window of the anchor's warnings holding the verdict (see audit.c's window
 * statement): *found, its warning count and its latest warning's time.
 */
typedef enum db_result (*audit_window_fn)(void *ctx, const struct verdict *v, const char *anchor,
                                          const struct anchor_row *a, bool *found, long long *count,
                                          long long *latest_ms, char *errstr, size_t errstr_size);

/* The live stream a punishment closes: the verdict's own if live, else the anchor's newest. */
typedef enum db_result (*audit_stream_fn)(void *ctx, const struct verdict *v, const char *anchor,
                                          struct decision *d, char *errstr, size_t errstr_size);

/* The projection's columns, after the verdict's l.event_id (audit_projection_select). */
#define AUDIT_PROJECTION_COLS 10
extern const char audit_projection_select[];

/** @brief Reads and checks a verdict; -1 with errstr when it is malformed (nothing written). */
int audit_read_verdict(const struct event *ev, const struct audit_policy *p, struct verdict *v,
                       char *errstr, size_t errstr_size);

/** @brief The verdict's anchor: the envelope's, else the one live_streams knows ("" if none). */
enum db_result audit_resolve_anchor(struct audit_state *st, const struct verdict *v, char *anchor,
                                    size_t anchor_size, char *errstr, size_t errstr_size);

/**
 * @brief Decides the verdict against the anchor's row a; window answers for a warning,
 * live_stream for a punishment that closes (both with ctx).
 */
enum db_result audit_decide(struct audit_state *st, const struct verdict *v, const char *anchor,
                            const struct anchor_row *a, audit_window_fn window,
                            audit_stream_fn live_stream, void *ctx, struct decision *d,
                            char *errstr, size_t errstr_size);

/** @brief The live.notify message of a decision; false when it notifies nothing. */
bool audit_notify_msg(const struct consumer_record *rec, const char *anchor,
                      const struct decision *d, struct notify_msg *m);

/** @brief The log line of one applied verdict. */
void audit_log_decision(const struct consumer_record *rec, const struct verdict *v,
                        const char *anchor, const struct decision *d);

/*
 * Where a batch's time went, for the debug log: each step's microseconds on the monotonic
 * clock, and of those the ones this thread spent on the CPU (the rest it waited: MySQL, Redis,
 * the broker).
 */
struct audit_steps {
        const char *name[12];
        long long us[12], cpu_us[12];
        size_t n;
        long long last_us, last_cpu_us;
};

/** @brief Starts timing steps at now. */
void audit_steps_start(struct audit_steps *s);

/** @brief Ends the step name now (the time since the last mark). */
void audit_steps_mark(struct audit_steps *s, const char *name);

/** @brief One debug line: what, then "name=ms/cpu ms" per step. */
void audit_steps_log(const struct audit_steps *s, const char *what);

/** @brief Drops apply_many()'s projections (a per-record apply, or they were used). */
void audit_handoff_clear(struct audit_state *st);

enum apply_result audit_apply_many(void *state, struct apply_slot *slots, size_t n, char *errstr,
                                   size_t errstr_size);
void audit_tick(void *state, long long now_ms);
int audit_publish(void *state, struct consumer_record *rec, char *errstr, size_t errstr_size);
int audit_publish_many(void *state, struct consumer_record *const *recs, size_t n, char *errstr,
                       size_t errstr_size);

#endif
