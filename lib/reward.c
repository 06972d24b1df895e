/* reward.c: the shared validator of a tip (see reward.h). */
#include "reward.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "field_limits.h"

struct id_rule {
        const char *name;
        size_t max_chars;
        bool is_required;
};

static const struct id_rule id_rules[] = {
        {"tip_id", FIELD_MAX_TIP_ID, true},       {"audience_id", FIELD_MAX_AUDIENCE_ID, true},
        {"anchor_id", FIELD_MAX_ANCHOR_ID, true}, {"room_id", FIELD_MAX_ROOM_ID, true},
        {"gift_id", FIELD_MAX_GIFT_ID, false},
};

struct word_rule {
        const char *name;
        const char *const *allowed;
};

static const char *const genders[] = {"male", "female", "unknown", NULL};
static const char *const audience_types[] = {"registered", "guest", NULL};

static const struct word_rule word_rules[] = {
        {"audience_gender", genders},
        {"anchor_gender", genders},
        {"audience_type", audience_types},
};

static const json_t *field(const struct event *ev, const char *name)
{
        const json_t *v = json_object_get(ev->payload, name);

        return json_is_null(v) ? NULL : v;
}

static int check_ids(const struct event *ev, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < sizeof(id_rules) / sizeof(id_rules[0]); i++) {
                const struct id_rule *r = &id_rules[i];
                const json_t *v = field(ev, r->name);

                if (!v && !r->is_required)
                        continue;
                if (!json_is_string(v) || json_string_length(v) == 0 ||
                    !field_fits(json_string_value(v), json_string_length(v), r->max_chars)) {
                        snprintf(errstr, errstr_size,
                                 "tip: %s must be a string of 1 to %zu characters", r->name,
                                 r->max_chars);
                        return -1;
                }
        }
        return 0;
}

static bool is_between(const json_t *v, long long min, long long max)
{
        return json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max;
}

static int check_numbers(const struct event *ev, char *errstr, size_t errstr_size)
{
        if (!is_between(field(ev, "amount"), 1, INT64_MAX))
                snprintf(errstr, errstr_size, "tip: amount must be an integer > 0 (minor units)");
        else if (!is_between(field(ev, "gift_count"), 1, REWARD_GIFT_COUNT_MAX))
                snprintf(errstr, errstr_size, "tip: gift_count must be an integer from 1 to %lld",
                         REWARD_GIFT_COUNT_MAX);
        else if (!is_between(field(ev, "ts_ms"), 1, INT64_MAX))
                snprintf(errstr, errstr_size, "tip: ts_ms must be an integer > 0");
        else
                return 0;
        return -1;
}

static int check_words(const struct event *ev, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < sizeof(word_rules) / sizeof(word_rules[0]); i++) {
                const json_t *v = field(ev, word_rules[i].name);
                bool is_known = false;

                if (!v)
                        continue;
                for (size_t j = 0; json_is_string(v) && word_rules[i].allowed[j]; j++)
                        is_known |= strcmp(json_string_value(v), word_rules[i].allowed[j]) == 0;
                if (!is_known) {
                        snprintf(errstr, errstr_size, "tip: %s is not one of the known values",
                                 word_rules[i].name);
                        return -1;
                }
        }
        return 0;
}

int reward_check(const struct event *ev, char *errstr, size_t errstr_size)
{
        if (!ev->event_type || strcmp(ev->event_type, "reward") != 0 || !ev->payload_name ||
            strcmp(ev->payload_name, "Reward") != 0 || !json_is_object(ev->payload)) {
                snprintf(errstr, errstr_size, "event_type %s with payload %s is not a tip",
                         ev->event_type ? ev->event_type : "null",
                         ev->payload_name ? ev->payload_name : "null");
                return -1;
        }
        if (check_ids(ev, errstr, errstr_size) == -1 ||
            check_numbers(ev, errstr, errstr_size) == -1 ||
            check_words(ev, errstr, errstr_size) == -1)
                return -1;
        return 0;
}
