/* profiles.c: the "profiles" role (see profiles.h). */
#include "profiles.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "db.h"
#include "field_limits.h"
#include "log.h"
#include "metrics.h"

/* In characters, as the columns count (lib/field_limits.h: the receiver's limits too). */
#define ID_MAX     FIELD_MAX_ANCHOR_ID /* anchors.anchor_id, audiences.audience_id */
#define BAND_MAX   FIELD_MAX_AGE_BAND
#define REGION_MAX FIELD_MAX_REGION
#define TAG_MAX    FIELD_MAX_TAG /* tags.name */
#define TAGS_MAX   64

static const char *const profiles_topics[] = {LF_TOPIC_INTERACTION, NULL};

struct profiles_state {
        struct db *db;
        struct db_stmt *anchor_row, *anchor_ts, *anchor_set;
        struct db_stmt *audience_row, *audience_ts, *audience_set;
        struct metric *m_anchor, *m_audience, *m_stale;
        struct db_text text;
};

/* One profile, its strings borrowed from the record's payload. */
struct profile {
        bool is_anchor;
        const char *id, *gender, *age_band, *region, *audience_type;
        long long ts_ms;
        json_t *tags; /* a list of strings, owned; NULL when the profile names no tags */
};

static int profiles_open(const struct role_env *env, void **state, char *errstr, size_t errstr_size)
{
        struct profiles_state *st = calloc(1, sizeof(*st));
        struct db *db = env->db;

        if (!st) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->db = db;
        st->anchor_row = db_stmt(db, "INSERT IGNORE INTO anchors (anchor_id) VALUES (?)");
        st->anchor_ts =
                db_stmt(db, "SELECT profile_ts_ms FROM anchors WHERE anchor_id = ? FOR UPDATE");
        st->anchor_set =
                db_stmt(db, "UPDATE anchors SET gender = COALESCE(?, gender), "
                            "age_band = COALESCE(?, age_band), region = COALESCE(?, region), "
                            "profile_ts_ms = ? WHERE anchor_id = ?");
        st->audience_row = db_stmt(db, "INSERT IGNORE INTO audiences (audience_id) VALUES (?)");
        st->audience_ts =
                db_stmt(db, "SELECT profile_ts_ms FROM audiences WHERE audience_id = ? FOR UPDATE");
        st->audience_set =
                db_stmt(db, "UPDATE audiences SET gender = COALESCE(?, gender), "
                            "age_band = COALESCE(?, age_band), region = COALESCE(?, region), "
                            "audience_type = COALESCE(?, audience_type), profile_ts_ms = ? "
                            "WHERE audience_id = ?");
        if (!st->anchor_row || !st->anchor_ts || !st->anchor_set || !st->audience_row ||
            !st->audience_ts || !st->audience_set) {
                free(st);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->m_anchor = metrics_counter(env->metrics, "liveflow_profiles_applied_total",
                                       "Profiles applied, by subject", "subject=\"anchor\"");
        st->m_audience = metrics_counter(env->metrics, "liveflow_profiles_applied_total",
                                         "Profiles applied, by subject", "subject=\"audience\"");
        st->m_stale =
                metrics_counter(env->metrics, "liveflow_profiles_stale_total",
                                "Profiles older than the one on file (changed nothing)", NULL);
        *state = st;
        return 0;
}

static void profiles_close(void *state)
{
        struct profiles_state *st = state;

        if (!st)
                return;
        db_text_free(&st->text);
        free(st);
}

/* ------------------------------------------------------------------ reading */

static const char *field(const struct event *ev, const char *key)
{
        return json_string_value(json_object_get(ev->payload, key));
}

static bool is_one_of(const char *s, const char *const *set)
{
        if (!s)
                return true; /* absent: keeps the value on file */
        for (; *set; set++)
                if (strcmp(s, *set) == 0)
                        return true;
        return false;
}

static bool fits(const char *s, size_t max)
{
        return !s || field_fits(s, strlen(s), max);
}

/* @returns 0, or -1 with errstr naming the field that can not be stored. */
static int read_profile(const struct event *ev, struct profile *p, char *errstr, size_t errstr_size)
{
        static const char *const genders[] = {"male", "female", "unknown", NULL};
        static const char *const types[] = {"registered", "guest", NULL};
        const char *subject = field(ev, "subject"), *tags = field(ev, "tags");
        json_t *ts = json_object_get(ev->payload, "ts_ms");

        memset(p, 0, sizeof(*p));
        if (!subject || (strcmp(subject, "anchor") != 0 && strcmp(subject, "audience") != 0)) {
                snprintf(errstr, errstr_size, "profile: subject is not anchor or audience");
                return -1;
        }
        p->is_anchor = strcmp(subject, "anchor") == 0;
        p->id = field(ev, "subject_id");
        p->gender = field(ev, "gender");
        p->age_band = field(ev, "age_band");
        p->region = field(ev, "region");
        p->audience_type = field(ev, "audience_type");
        p->ts_ms = json_is_integer(ts) ? (long long)json_integer_value(ts) : ev->event_time_ms;
        if (!p->id || !*p->id || !fits(p->id, ID_MAX)) {
                snprintf(errstr, errstr_size, "profile: subject_id empty or over %d characters",
                         ID_MAX);
                return -1;
        }
        if (!is_one_of(p->gender, genders) || !is_one_of(p->audience_type, types) ||
            !fits(p->age_band, BAND_MAX) || !fits(p->region, REGION_MAX)) {
                snprintf(errstr, errstr_size,
                         "profile %s: gender, audience_type, age_band or region can not be stored",
                         p->id);
                return -1;
        }
        if (!tags)
                return 0;
        p->tags = json_loads(tags, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_array(p->tags) || json_array_size(p->tags) > TAGS_MAX)
                goto bad_tags;
        for (size_t i = 0; i < json_array_size(p->tags); i++) {
                const json_t *t = json_array_get(p->tags, i);

                if (!json_is_string(t) || json_string_length(t) == 0 ||
                    !field_fits(json_string_value(t), json_string_length(t), TAG_MAX) ||
                    strlen(json_string_value(t)) != json_string_length(t))
                        goto bad_tags;
        }
        return 0;
bad_tags:
        json_decref(p->tags);
        p->tags = NULL;
        snprintf(errstr, errstr_size,
                 "profile %s: tags are not a list of up to %d strings of 1..%d bytes", p->id,
                 TAGS_MAX, TAG_MAX);
        return -1;
}

/* ------------------------------------------------------------------ writing */

/* Replaces the person's tags with p->tags, creating the tags that are new. */
static enum db_result write_tags(struct profiles_state *st, const struct profile *p, char *errstr,
                                 size_t errstr_size)
{
        const char *link = p->is_anchor ? "anchor_tags" : "audience_tags";
        const char *key = p->is_anchor ? "anchor_id" : "audience_id";
        size_t n = json_array_size(p->tags);
        struct db_text *t = &st->text;
        enum db_result r;

        if (n > 0) {
                db_text_reset(t);
                db_text_add(t, "INSERT IGNORE INTO tags (name) VALUES ");
                for (size_t i = 0; i < n; i++) {
                        db_text_add(t, i ? ",(" : "(");
                        db_text_str(st->db, t, json_string_value(json_array_get(p->tags, i)));
                        db_text_add(t, ")");
                }
                if ((r = db_text_exec(st->db, t, NULL, errstr, errstr_size)) != DB_OK)
                        return r;
        }
        db_text_reset(t);
        db_text_add(t, "DELETE FROM %s WHERE %s = ", link, key);
        db_text_str(st->db, t, p->id);
        if ((r = db_text_exec(st->db, t, NULL, errstr, errstr_size)) != DB_OK || n == 0)
                return r;
        db_text_reset(t);
        db_text_add(t, "INSERT IGNORE INTO %s (%s, tag_id) SELECT ", link, key);
        db_text_str(st->db, t, p->id);
        db_text_add(t, ", tag_id FROM tags WHERE name IN (");
        for (size_t i = 0; i < n; i++) {
                if (i)
                        db_text_add(t, ",");
                db_text_str(st->db, t, json_string_value(json_array_get(p->tags, i)));
        }
        db_text_add(t, ")");
        return db_text_exec(st->db, t, NULL, errstr, errstr_size);
}

/* Writes p unless a newer profile is on file (*stale). */
static enum db_result write_profile(struct profiles_state *st, const struct profile *p, bool *stale,
                                    char *errstr, size_t errstr_size)
{
        const struct db_param id[] = {DB_STR(p->id)};
        struct db_col ts = {.type = DB_PARAM_I64};
        enum db_result r;
        bool found;

        *stale = false;
        r = db_exec(st->db, p->is_anchor ? st->anchor_row : st->audience_row, id, 1, NULL, NULL,
                    errstr, errstr_size);
        if (r == DB_OK || r == DB_DUPLICATE)
                r = db_query_row(st->db, p->is_anchor ? st->anchor_ts : st->audience_ts, id, 1, &ts,
                                 1, &found, errstr, errstr_size);
        if (r != DB_OK)
                return r;
        if (found && !ts.is_null && ts.i > p->ts_ms) {
                *stale = true;
                return DB_OK;
        }
        if (p->is_anchor) {
                const struct db_param set[] = {DB_STR(p->gender), DB_STR(p->age_band),
                                               DB_STR(p->region), DB_I64(p->ts_ms), DB_STR(p->id)};

                r = db_exec(st->db, st->anchor_set, set, 5, NULL, NULL, errstr, errstr_size);
        } else {
                const struct db_param set[] = {DB_STR(p->gender), DB_STR(p->age_band),
                                               DB_STR(p->region), DB_STR(p->audience_type),
                                               DB_I64(p->ts_ms),  DB_STR(p->id)};

                r = db_exec(st->db, st->audience_set, set, 6, NULL, NULL, errstr, errstr_size);
        }
        if (r == DB_OK && p->tags)
                r = write_tags(st, p, errstr, errstr_size);
        return r;
}

static enum apply_result profiles_apply(void *state, struct consumer_record *rec, char *errstr,
                                        size_t errstr_size)
{
        struct profiles_state *st = state;
        const struct event *ev = &rec->ev;
        struct profile p;
        enum db_result r;
        bool stale;

        if (strcmp(ev->event_type, "profile.update") != 0 || !ev->payload_name ||
            strcmp(ev->payload_name, "Profile") != 0)
                return APPLY_DONE; /* chats, likes, ...: the audience role's */
        if (read_profile(ev, &p, errstr, errstr_size) == -1)
                return APPLY_PERMANENT;
        r = write_profile(st, &p, &stale, errstr, errstr_size);
        json_decref(p.tags);
        if (r == DB_RETRY)
                return APPLY_RETRY;
        if (r != DB_OK)
                return APPLY_PERMANENT;
        if (stale) {
                metric_add(st->m_stale, 1);
                log_debug(rec->trace_id, "profile %s %s: older than the one on file",
                          p.is_anchor ? "anchor" : "audience", p.id);
                return APPLY_DONE;
        }
        metric_add(p.is_anchor ? st->m_anchor : st->m_audience, 1);
        return APPLY_DONE;
}

const struct consumer_role profiles_role = {
        .name = "profiles",
        .topics = profiles_topics,
        .open = profiles_open,
        .apply = profiles_apply,
        .close = profiles_close,
};
