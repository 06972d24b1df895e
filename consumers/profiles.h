/* profiles.h: the "profiles" role: profile events into anchors, audiences and their tags. */
#ifndef LIVEFLOW_PROFILES_H
#define LIVEFLOW_PROFILES_H

#include "consumer.h"

/*
 * Reads live.interaction (group liveflow.profiles) and acts on profile.update only (the
 * audience role reads the same topic for chats and likes, and passes profiles over). A
 * profile of subject anchor updates anchors (gender, age_band, region), of subject
 * audience updates audiences (gender, age_band, region, audience_type); the row is created
 * when missing, and a field the profile leaves out keeps its value. A profile that names
 * tags (even an empty list) replaces the person's tags (anchor_tags / audience_tags), each
 * tag created in tags on first use.
 *
 * Ordered by the app's ts: the row keeps the ts of the newest profile applied
 * (profile_ts_ms) and a profile older than it changes nothing (counted in
 * liveflow_profiles_stale_total), so a retry that arrives late cannot undo a newer profile
 * and a copy of the same profile writes the same values again: applying is idempotent.
 * A profile that can not be stored (a bad subject or gender, a field over its column, tags
 * that are not a list of short strings) is permanent (to live.interaction.dlq).
 */
extern const struct consumer_role profiles_role;

#endif
