/* audit.c: moderation verdicts and operator bans into live_audit_logs, anchors, Redis and closes.
 */
#include "audit.h"
#include "audit_role.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "contract.h"
#include "db.h"
#include "log.h"
#include "notify.h"
#include "role_kit.h"
#include "settings.h"
#include "stream_close.h"

#define MAX_SUSPEND_S (10LL * 365 * 86400)

#define EPOCH_MS(col) "CAST(UNIX_TIMESTAMP(" col ") * 1000 AS SIGNED)"

static const char *const audit_topics[] = {LF_TOPIC_AUDIT, NULL};

/* ------------------------------------------------------------------ grading */

const char *audit_grade_name(enum audit_grade g)
{
        static const char *const names[] = {"none", "warn", "suspend", "ban", "unban"};

        return (unsigned)g < sizeof(names) / sizeof(names[0]) ? names[g] : "none";
}

static bool label_is_listed(const char *list, const char *label)
{
        size_t n = label ? strlen(label) : 0;

        for (const char *p = list; n && p && *p;) {
                const char *end = strchr(p, ','), *b = p, *e = end ? end : p + strlen(p);

                while (b < e && (*b == ' ' || *b == '\t'))
                        b++;
                while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                if ((size_t)(e - b) == n && strncasecmp(b, label, n) == 0)
                        return true;
                p = end ? end + 1 : NULL;
        }
        return false;
}

enum audit_grade audit_grade_verdict(const struct audit_policy *p, const char *suggestion,
                                     const char *label, long long score)
{
        bool is_block = suggestion && strcasecmp(suggestion, "Block") == 0;

        if ((suggestion && strcasecmp(suggestion, "Pass") == 0) || (!suggestion && score < 0) ||
            (score >= 0 && score < p->warn_score))
                return AUDIT_NONE;
        if (is_block && label_is_listed(p->ban_labels, label))
                return AUDIT_BAN;
        if (is_block && (score < 0 || score >= p->suspend_score))
                return AUDIT_SUSPEND;
        return AUDIT_WARN;
}

/* ------------------------------------------------------------------ reading the record */

/* Characters of a UTF-8 string (the codec has checked it is UTF-8), as VARCHAR(n) counts them. */
static size_t utf8_chars(const char *s)
{
        size_t n = 0;

        for (; s && *s; s++)
                n += ((unsigned char)*s & 0xc0) != 0x80;
        return n;
}

/* The column limits of live_audit_logs and anchors: longer values are malformed, not cut. */
static int check_lengths(const struct verdict *v, char *errstr, size_t errstr_size)
{
        const struct {
                const char *name, *value;
                size_t max;
        } f[] = {
                {"anchor_id", v->ev->anchor_id, 64},
                {"stream_id", v->ev->stream_id, 255},
                {"source", v->source, 32},
                {"suggestion", v->suggestion, 32},
                {"label", v->label, 64},
                {"reason", v->reason, 255},
        };

        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
                if (utf8_chars(f[i].value) > f[i].max) {
                        snprintf(errstr, errstr_size, "%s is longer than %zu characters", f[i].name,
                                 f[i].max);
                        return -1;
                }
        }
        return 0;
}

static int read_admin(struct verdict *v, char *errstr, size_t errstr_size)
{
        if (!v->ev->anchor_id || !*v->ev->anchor_id) {
                snprintf(errstr, errstr_size, "audit.admin without anchor_id");
                return -1;
        }
        if (!v->action || (strcmp(v->action, "ban") != 0 && strcmp(v->action, "unban") != 0)) {
                snprintf(errstr, errstr_size, "audit.admin action \"%s\" is not ban or unban",
                         v->action ? v->action : "(null)");
                return -1;
        }
        if (json_is_integer(json_object_get(v->ev->payload, "suspend_s")) &&
            (v->suspend_s < 1 || v->suspend_s > MAX_SUSPEND_S)) {
                snprintf(errstr, errstr_size, "suspend_s %lld is outside 1..%lld", v->suspend_s,
                         MAX_SUSPEND_S);
                return -1;
        }
        if (strcmp(v->action, "unban") == 0)
                v->severity = AUDIT_UNBAN;
        else
                v->severity = v->suspend_s > 0 ? AUDIT_SUSPEND : AUDIT_BAN;
        return 0;
}

static int read_moderation(struct verdict *v, const struct audit_policy *p, char *errstr,
                           size_t errstr_size)
{
        const char *sg = v->suggestion;

        if ((!v->ev->stream_id || !*v->ev->stream_id) &&
            (!v->ev->anchor_id || !*v->ev->anchor_id)) {
                snprintf(errstr, errstr_size, "%s has neither stream_id nor anchor_id",
                         v->ev->event_type);
                return -1;
        }
        if (json_is_integer(json_object_get(v->ev->payload, "score")) &&
            (v->score < 0 || v->score > 100)) {
                snprintf(errstr, errstr_size, "score %lld is outside 0..100", v->score);
                return -1;
        }
        if (sg && strcasecmp(sg, "Pass") != 0 && strcasecmp(sg, "Review") != 0 &&
            strcasecmp(sg, "Block") != 0) {
                snprintf(errstr, errstr_size, "suggestion \"%s\" is not Pass, Review or Block", sg);
                return -1;
        }
        v->severity = audit_grade_verdict(p, sg, v->label, v->score);
        return 0;
}

int audit_read_verdict(const struct event *ev, const struct audit_policy *p, struct verdict *v,
                       char *errstr, size_t errstr_size)
{
        memset(v, 0, sizeof(*v));
        v->ev = ev;
        if (!ev->payload_name || strcmp(ev->payload_name, "AuditVerdict") != 0) {
                snprintf(errstr, errstr_size, "event_type %s with payload %s is not a verdict",
                         ev->event_type, ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        v->is_admin = strcmp(ev->event_type, "audit.admin") == 0;
        if (!v->is_admin && strcmp(ev->event_type, "audit.image") != 0 &&
            strcmp(ev->event_type, "audit.audio") != 0) {
                snprintf(errstr, errstr_size,
                         "event_type %s is not audit.image, audit.audio or audit.admin",
                         ev->event_type);
                return -1;
        }
        v->source = payload_str(ev, "source");
        v->action = payload_str(ev, "action");
        v->suggestion = payload_str(ev, "suggestion");
        v->label = payload_str(ev, "label");
        v->reason = payload_str(ev, "reason");
        v->score = payload_int_or(ev, "score", -1);
        v->suspend_s = payload_int_or(ev, "suspend_s", -1);
        if (!v->source || check_lengths(v, errstr, errstr_size) == -1) {
                if (!v->source)
                        snprintf(errstr, errstr_size, "AuditVerdict without source");
                return -1;
        }
        return v->is_admin ? read_admin(v, errstr, errstr_size)
                           : read_moderation(v, p, errstr, errstr_size);
}

/* ------------------------------------------------------------------ statements */

/* Every column of struct projection, after the verdict's event id; a WHERE on l follows. */
#define PROJECTION_SQL                                                                                  \
        "SELECT l.event_id, l.anchor_id, l.close_stream_id, l.close_method, "                           \
        "COALESCE(l.label, l.reason), " EPOCH_MS("l.created_at") ", l.punishment, a.status, " EPOCH_MS( \
                "a.suspended_until") ", " EPOCH_MS("a.updated_at") ", l.close_vendor "                  \
                                                                   "FROM live_audit_logs l LEFT JOIN anchors a ON a.anchor_id = l.anchor_id "

const char audit_projection_select[] = PROJECTION_SQL;

static int prepare(struct audit_state *st)
{
        struct db *db = st->db;

        st->insert_log = db_stmt(
                db,
                "INSERT INTO live_audit_logs (event_id, event_type, event_time, trace_id, stream_id, anchor_id, "
                "source, suggestion, label, score, reason, punishment, severity, outcome) VALUES "
                "(?, ?, FROM_UNIXTIME(? / 1000), ?, ?, ?, ?, ?, ?, ?, ?, 'none', ?, 'pending')");
        /* A stream id is unique per vendor: the verdict's vendor names whose stream it is. */
        st->stream_anchor = db_stmt(
                db, "SELECT anchor_id FROM live_streams WHERE vendor = ? AND stream_id = ?");
        /* Takes the row's exclusive lock at once (INSERT IGNORE would take a shared one first). */
        st->upsert_anchor = db_stmt(
                db,
                "INSERT INTO anchors (anchor_id) VALUES (?) ON DUPLICATE KEY UPDATE anchor_id = anchor_id");
        st->lock_anchor =
                db_stmt(db, "SELECT status, " EPOCH_MS("suspended_until") ", " EPOCH_MS(
                                    "admin_at") " FROM anchors WHERE anchor_id = ? FOR UPDATE");
        /*
         * The fullest window of warnings that holds the verdict at t: every window of length W
         * holding t can start at its earliest warning a, with t - W < a <= t. A locking read, so
         * that what another instance committed for the anchor is seen whatever our snapshot.
         */
        st->window = db_stmt(
                db,
                "SELECT COUNT(*), " EPOCH_MS(
                        "MAX(b.event_time)") " FROM live_audit_logs a "
                                             "JOIN live_audit_logs b ON b.anchor_id = a.anchor_id AND b.severity = 'warn' "
                                             "AND b.event_time >= a.event_time AND b.event_time < a.event_time + INTERVAL ? SECOND "
                                             "WHERE a.anchor_id = ? AND a.severity = 'warn' "
                                             "AND a.event_time > FROM_UNIXTIME(? / 1000) - INTERVAL ? SECOND "
                                             "AND a.event_time <= FROM_UNIXTIME(? / 1000) "
                                             "AND a.event_time > COALESCE(FROM_UNIXTIME(? / 1000), '1000-01-01') "
                                             "GROUP BY a.id ORDER BY 1 DESC, 2 DESC LIMIT 1 LOCK IN SHARE MODE");
        st->set_log = db_stmt(
                db,
                "UPDATE live_audit_logs SET punishment = ?, outcome = ?, suspended_until = FROM_UNIXTIME(? / 1000), "
                "close_stream_id = ?, close_vendor = ?, close_method = ? WHERE event_id = ?");
        st->set_anchor = db_stmt(
                db,
                "UPDATE anchors SET status = COALESCE(?, status), "
                "suspended_until = IF(? IS NULL, suspended_until, FROM_UNIXTIME(? / 1000)), "
                "admin_at = COALESCE(FROM_UNIXTIME(? / 1000), admin_at), warning_count = warning_count + ? "
                "WHERE anchor_id = ?");
        st->live_stream = db_stmt(
                db,
                "SELECT stream_id, vendor FROM live_streams WHERE status = 'live' AND (stream_id = ? OR anchor_id = ?) "
                "ORDER BY stream_id = ? AND vendor = ? DESC, stream_id = ? DESC, started_at DESC LIMIT 1");
        st->project = db_stmt(db, PROJECTION_SQL "WHERE l.event_id = ?");
        return st->insert_log && st->stream_anchor && st->upsert_anchor && st->lock_anchor &&
                               st->window && st->set_log && st->set_anchor && st->live_stream &&
                               st->project
                       ? 0
                       : -1;
}

/* ------------------------------------------------------------------ life cycle */

static void audit_close(void *state)
{
        struct audit_state *st = state;

        if (!st)
                return;
        audit_handoff_clear(st);
        notify_destroy(st->notify);
        stream_close_destroy(st->closer);
        free(st);
}

static int audit_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        const struct settings *s = env->settings;
        struct audit_state *st = calloc(1, sizeof(*st));

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = env->db;
        st->redis = env->redis;
        st->policy = (struct audit_policy){s->audit_warn_score, s->audit_suspend_score,
                                           s->audit_ban_labels};
        st->suspend_s = s->audit_suspend_s;
        st->warn_escalate = s->audit_warn_escalate;
        st->warn_window_s = s->audit_warn_window_s;
        role_gate_init(&st->gate, env->metrics, "liveflow_audit_batches_total",
                       "Batches of verdicts written set-based, by way: unread (written without "
                       "looking live_audit_logs up first), read_first (looked up first, after "
                       "verdicts held before were met), conflict (written unread, met a verdict "
                       "held before, looked up)");
        if (prepare(st) == -1) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (!(st->closer = stream_close_new(env, errstr, errstr_size)) ||
            !(st->notify = notify_new(env, errstr, errstr_size)))
                goto fail;
        *state = st;
        return 0;
fail:
        audit_close(st);
        return -1;
}

/* ------------------------------------------------------------------ applying */

static struct db_param opt_ms(long long ms)
{
        return ms >= 0 ? DB_I64(ms) : DB_NULL;
}

/* The anchor of the verdict: the envelope's, else the one live_streams knows for its stream. */
enum db_result audit_resolve_anchor(struct audit_state *st, const struct verdict *v, char *anchor,
                                    size_t anchor_size, char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(v->ev->vendor), DB_STR(v->ev->stream_id)};
        struct db_col col = {.type = DB_PARAM_STR, .s = anchor, .s_size = anchor_size};
        bool found = false;
        enum db_result r;

        anchor[0] = '\0';
        if (v->ev->anchor_id && *v->ev->anchor_id) {
                snprintf(anchor, anchor_size, "%s", v->ev->anchor_id);
                return DB_OK;
        }
        r = db_query_row(st->db, st->stream_anchor, p, 2, &col, 1, &found, errstr, errstr_size);
        if (r != DB_OK || !found || col.is_null)
                anchor[0] = '\0';
        return r;
}

/* Creates the anchors row if needed and locks it: one anchor's verdicts apply one at a time. */
static enum db_result lock_anchor(struct audit_state *st, const char *anchor, struct anchor_row *a,
                                  char *errstr, size_t errstr_size)
{
        struct db_param p[] = {DB_STR(anchor)};
        struct db_col cols[] = {{.type = DB_PARAM_STR, .s = a->status, .s_size = sizeof(a->status)},
                                {.type = DB_PARAM_I64},
                                {.type = DB_PARAM_I64}};
        bool found = false;
        enum db_result r =
                db_exec(st->db, st->upsert_anchor, p, 1, NULL, NULL, errstr, errstr_size);

        if (r != DB_OK)
                return r;
        if ((r = db_query_row(st->db, st->lock_anchor, p, 1, cols, 3, &found, errstr,
                              errstr_size)) != DB_OK)
                return r;
        if (!found) {
                snprintf(errstr, errstr_size, "anchors row %s vanished under its lock", anchor);
                return DB_RETRY;
        }
        a->until_ms = cols[1].is_null ? -1 : cols[1].i;
        a->admin_at_ms = cols[2].is_null ? -1 : cols[2].i;
        return DB_OK;
}

/* The log row first: its unique event_id makes a duplicate or a replay a no-op. */
static enum db_result insert_log(struct audit_state *st, const struct consumer_record *rec,
                                 const struct verdict *v, const char *anchor, bool *first,
                                 char *errstr, size_t errstr_size)
{
        const struct event *ev = &rec->ev;
        struct db_param p[] = {
                DB_STR(ev->event_id),      DB_STR(ev->event_type),
                DB_I64(ev->event_time_ms), DB_STR(rec->trace_id),
                DB_STR(ev->stream_id),     DB_STR(anchor[0] ? anchor : NULL),
                DB_STR(v->source),         DB_STR(v->suggestion),
                DB_STR(v->label),          v->score >= 0 ? DB_I64(v->score) : DB_NULL,
                DB_STR(v->reason),         DB_STR(audit_grade_name(v->severity))};
        enum db_result r = db_exec(st->db, st->insert_log, p, 12, NULL, NULL, errstr, errstr_size);

        *first = r == DB_OK;
        return r == DB_DUPLICATE ? DB_OK : r;
}

/* The stream to close: the verdict's own if it is live, else the anchor's newest live one. */
static enum db_result find_live_stream(void *ctx, const struct verdict *v, const char *anchor,
                                       struct decision *d, char *errstr, size_t errstr_size)
{
        struct audit_state *st = ctx;
        struct db_param p[] = {DB_STR(v->ev->stream_id), DB_STR(anchor), DB_STR(v->ev->stream_id),
                               DB_STR(v->ev->vendor), DB_STR(v->ev->stream_id)};
        struct db_col cols[] = {
                {.type = DB_PARAM_STR, .s = d->close_stream, .s_size = sizeof(d->close_stream)},
                {.type = DB_PARAM_STR, .s = d->close_vendor, .s_size = sizeof(d->close_vendor)}};
        bool found = false;
        enum db_result r =
                db_query_row(st->db, st->live_stream, p, 5, cols, 2, &found, errstr, errstr_size);

        if (r != DB_OK || !found || cols[0].is_null)
                d->close_stream[0] = '\0';
        if (r != DB_OK || !found || cols[1].is_null)
                d->close_vendor[0] = '\0';
        return r;
}

/* A suspension until until_ms, extending (never shortening) one in force; a ban stays a ban. */
static void suspend(const struct anchor_row *a, struct decision *d, long long until_ms)
{
        if (strcmp(a->status, "banned") == 0) {
                d->outcome = "already_banned";
                return;
        }
        if (strcmp(a->status, "suspended") == 0 && a->until_ms > until_ms)
                until_ms = a->until_ms;
        d->punishment = AUDIT_SUSPEND;
        d->status = "suspended";
        d->until_ms = until_ms;
}

static void ban(struct decision *d)
{
        d->punishment = AUDIT_BAN;
        d->status = "banned";
        d->until_ms = -1;
}

/* An operator's decision applies as given, and becomes the anchor's admin_at. */
static void decide_admin(const struct verdict *v, struct decision *d)
{
        long long t = v->ev->event_time_ms;

        d->admin_at_ms = t;
        d->close_method = 2;
        if (v->severity == AUDIT_UNBAN) {
                d->punishment = AUDIT_UNBAN;
                d->status = "active";
                d->until_ms = -1;
        } else if (v->severity == AUDIT_SUSPEND) {
                d->punishment = AUDIT_SUSPEND;
                d->status = "suspended";
                d->until_ms = t + v->suspend_s * 1000;
        } else {
                ban(d);
        }
}

/* The window statement: the fullest window of warnings in live_audit_logs. */
static enum db_result db_window(void *ctx, const struct verdict *v, const char *anchor,
                                const struct anchor_row *a, bool *found, long long *count,
                                long long *latest_ms, char *errstr, size_t errstr_size)
{
        struct audit_state *st = ctx;
        long long t = v->ev->event_time_ms;
        struct db_param p[] = {DB_I64(st->warn_window_s), DB_STR(anchor), DB_I64(t),
                               DB_I64(st->warn_window_s), DB_I64(t),      opt_ms(a->admin_at_ms)};
        struct db_col cols[] = {{.type = DB_PARAM_I64}, {.type = DB_PARAM_I64}};
        enum db_result r =
                db_query_row(st->db, st->window, p, 6, cols, 2, found, errstr, errstr_size);

        *count = cols[0].is_null ? 0 : cols[0].i;
        *latest_ms = cols[1].is_null ? -1 : cols[1].i;
        return r;
}

/* A warning, counted; enough of them within the window suspend from the latest of them. */
static enum db_result decide_warning(struct audit_state *st, const struct verdict *v,
                                     const char *anchor, const struct anchor_row *a,
                                     audit_window_fn window, void *ctx, struct decision *d,
                                     char *errstr, size_t errstr_size)
{
        long long t = v->ev->event_time_ms, count = 0, latest = -1;
        bool found = false;
        enum db_result r = window(ctx, v, anchor, a, &found, &count, &latest, errstr, errstr_size);

        if (r != DB_OK)
                return r;
        d->punishment = AUDIT_WARN;
        d->warnings = 1;
        if (found && count >= st->warn_escalate) {
                /* From the window's latest warning: the same until whatever order they came in. */
                suspend(a, d, (latest < 0 ? t : latest) + st->suspend_s * 1000);
                if (d->punishment == AUDIT_SUSPEND)
                        d->outcome = "escalated";
        }
        return DB_OK;
}

enum db_result audit_decide(struct audit_state *st, const struct verdict *v, const char *anchor,
                            const struct anchor_row *a, audit_window_fn window,
                            audit_stream_fn live_stream, void *ctx, struct decision *d,
                            char *errstr, size_t errstr_size)
{
        long long t = v->ev->event_time_ms;
        enum db_result r = DB_OK;

        memset(d, 0, sizeof(*d));
        d->punishment = AUDIT_NONE;
        d->outcome = "applied";
        d->until_ms = -1;
        d->admin_at_ms = -1;
        if (!anchor[0]) {
                d->outcome = "no_anchor";
                return DB_OK;
        }
        if (v->severity == AUDIT_NONE)
                return DB_OK;
        if (a->admin_at_ms >= 0 && t < a->admin_at_ms) {
                /* An operator decided later than this verdict: it stands. */
                d->outcome = v->is_admin ? "stale" : "superseded";
                return DB_OK;
        }
        if (v->is_admin)
                decide_admin(v, d);
        else if (v->severity == AUDIT_WARN)
                r = decide_warning(st, v, anchor, a, window, ctx, d, errstr, errstr_size);
        else if (v->severity == AUDIT_SUSPEND)
                suspend(a, d, t + st->suspend_s * 1000);
        else
                ban(d);
        if (r != DB_OK)
                return r;
        /* Close only what a punishment in force forbids: an expired suspension is no suspension. */
        if (d->punishment == AUDIT_BAN || strcmp(d->outcome, "already_banned") == 0 ||
            (d->punishment == AUDIT_SUSPEND && d->until_ms > clock_wall_ms())) {
                if (!d->close_method)
                        d->close_method = 3;
                r = live_stream(ctx, v, anchor, d, errstr, errstr_size);
        }
        if (!d->close_stream[0])
                d->close_method = 0;
        return r;
}

static enum db_result record_decision(struct audit_state *st, const struct consumer_record *rec,
                                      const char *anchor, const struct decision *d, char *errstr,
                                      size_t errstr_size)
{
        bool sets_until = d->status != NULL;
        struct db_param lp[] = {
                DB_STR(audit_grade_name(d->punishment)),
                DB_STR(d->outcome),
                d->status && strcmp(d->status, "suspended") == 0 ? DB_I64(d->until_ms) : DB_NULL,
                DB_STR(d->close_stream[0] ? d->close_stream : NULL),
                DB_STR(d->close_stream[0] && d->close_vendor[0] ? d->close_vendor : NULL),
                d->close_method ? DB_I64(d->close_method) : DB_NULL,
                DB_STR(rec->ev.event_id)};
        /* suspended_until: untouched (NULL flag), set to a time, or cleared (flag set, time NULL).
         */
        struct db_param ap[] = {DB_STR(d->status),   sets_until ? DB_I64(1) : DB_NULL,
                                opt_ms(d->until_ms), opt_ms(d->admin_at_ms),
                                DB_I64(d->warnings), DB_STR(anchor)};
        enum db_result r = db_exec(st->db, st->set_log, lp, 7, NULL, NULL, errstr, errstr_size);

        if (r != DB_OK || !anchor[0] || (!d->status && !d->warnings && d->admin_at_ms < 0))
                return r;
        return db_exec(st->db, st->set_anchor, ap, 6, NULL, NULL, errstr, errstr_size);
}

bool audit_notify_msg(const struct consumer_record *rec, const char *anchor,
                      const struct decision *d, struct notify_msg *m)
{
        const char *kind = d->punishment == AUDIT_WARN      ? "anchor.warned"
                           : d->punishment == AUDIT_SUSPEND ? "anchor.suspended"
                           : d->punishment == AUDIT_BAN     ? "anchor.banned"
                                                            : NULL;
        const json_t *p = rec->ev.payload;
        const char *label = json_string_value(json_object_get(p, "label"));
        const char *reason = json_string_value(json_object_get(p, "reason"));

        if (!kind || !anchor[0])
                return false;
        *m = notify_msg_init(kind, rec->ev.event_id, rec->ev.event_time_ms);
        m->anchor_id = anchor;
        m->room_id = rec->ev.room_id;
        m->stream_id = rec->ev.stream_id;
        m->reason = label ? label : reason;
        m->until_ms = d->punishment == AUDIT_SUSPEND ? d->until_ms : -1;
        return true;
}

/* live.notify for a warning, suspension or ban in force from this verdict (once per verdict). */
static enum db_result notify_punishment(struct audit_state *st, const struct consumer_record *rec,
                                        const char *anchor, const struct decision *d, char *errstr,
                                        size_t errstr_size)
{
        struct notify_msg m;

        if (!audit_notify_msg(rec, anchor, d, &m))
                return DB_OK;
        return notify_record(st->notify, &m, errstr, errstr_size);
}

void audit_log_decision(const struct consumer_record *rec, const struct verdict *v,
                        const char *anchor, const struct decision *d)
{
        consumer_log_applied(
                rec, (const char *const[]){
                             "stream", rec->ev.stream_id, "anchor", anchor[0] ? anchor : NULL,
                             "severity", audit_grade_name(v->severity), "punishment",
                             audit_grade_name(d->punishment), "outcome", d->outcome, "close",
                             d->close_stream[0] ? d->close_stream : NULL, NULL});
}

static enum apply_result audit_apply(void *state, struct consumer_record *rec, char *errstr,
                                     size_t errstr_size)
{
        struct audit_state *st = state;
        struct anchor_row a = {.status = "active", .until_ms = -1, .admin_at_ms = -1};
        struct verdict v;
        struct decision d;
        char anchor[65];
        enum db_result r;
        bool first;

        audit_handoff_clear(st); /* what apply_many() handed publish_many() is not this */
        if (audit_read_verdict(&rec->ev, &st->policy, &v, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        if ((r = audit_resolve_anchor(st, &v, anchor, sizeof(anchor), errstr, errstr_size)) !=
                    DB_OK ||
            (anchor[0] && (r = lock_anchor(st, anchor, &a, errstr, errstr_size)) != DB_OK) ||
            (r = insert_log(st, rec, &v, anchor, &first, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        rec->publish =
                true; /* a replay re-projects Redis and re-sends the same close: both idempotent */
        if (!first) {
                log_debug(rec->trace_id, "duplicate verdict %s stream=%s", rec->ev.event_id,
                          rec->ev.stream_id ? rec->ev.stream_id : "-");
                return APPLY_DONE;
        }
        if ((r = audit_decide(st, &v, anchor, &a, db_window, find_live_stream, st, &d, errstr,
                              errstr_size)) != DB_OK ||
            (r = record_decision(st, rec, anchor, &d, errstr, errstr_size)) != DB_OK ||
            (r = notify_punishment(st, rec, anchor, &d, errstr, errstr_size)) != DB_OK)
                return apply_from_db(r);
        audit_log_decision(rec, &v, anchor, &d);
        return APPLY_DONE;
}

/* ------------------------------------------------------------------ timing */

static long long thread_cpu_us(void)
{
        struct timespec ts;

        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
                return 0;
        return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void audit_steps_start(struct audit_steps *s)
{
        s->n = 0;
        s->last_us = clock_mono_us();
        s->last_cpu_us = thread_cpu_us();
}

void audit_steps_mark(struct audit_steps *s, const char *name)
{
        long long now = clock_mono_us(), cpu = thread_cpu_us();

        if (s->n < sizeof(s->us) / sizeof(s->us[0])) {
                s->name[s->n] = name;
                s->cpu_us[s->n] = cpu - s->last_cpu_us;
                s->us[s->n++] = now - s->last_us;
        }
        s->last_us = now;
        s->last_cpu_us = cpu;
}

void audit_steps_log(const struct audit_steps *s, const char *what)
{
        char line[768];
        size_t len = 0;

        if (LOG_LEVEL_DEBUG > log_current_level)
                return;
        line[0] = '\0';
        for (size_t i = 0; i < s->n && len < sizeof(line); i++)
                len += (size_t)snprintf(line + len, sizeof(line) - len, " %s=%.1f/%.1f", s->name[i],
                                        (double)s->us[i] / 1000.0, (double)s->cpu_us[i] / 1000.0);
        log_debug(NULL, "%s ms:%s", what, line);
}

const struct consumer_role audit_role = {
        .name = "audit",
        .topics = audit_topics,
        .open = audit_open,
        .apply = audit_apply,
        .publish = audit_publish,
        .apply_many = audit_apply_many,
        .publish_many = audit_publish_many,
        .tick = audit_tick,
        .close = audit_close,
};
