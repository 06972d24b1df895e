/* test_reward.c: lib/reward.c, the one definition of a valid tip every money role applies. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <string.h>

#include "reward.h"

static struct event ev;
static char errstr[256];

/* A valid tip with field set to the JSON text value (NULL: removed). */
static int check_with(const char *field, const char *value)
{
        json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "tip_id", "t1",
                              "audience_id", "u1", "anchor_id", "a1", "room_id", "r1", "gift_id",
                              "rocket", "amount", (json_int_t)29700, "gift_count", (json_int_t)3,
                              "ts_ms", (json_int_t)1714564800123LL, "audience_gender", "female",
                              "anchor_gender", "male", "audience_type", "registered");
        int rc;

        if (field && value)
                json_object_set_new(p, field, json_loads(value, JSON_DECODE_ANY, NULL));
        else if (field)
                json_object_del(p, field);
        ev = (struct event){
                .event_type = (char *)"reward", .payload_name = (char *)"Reward", .payload = p};
        errstr[0] = '\0';
        rc = reward_check(&ev, errstr, sizeof(errstr));
        json_decref(p);
        return rc;
}

Test(reward, a_complete_tip_and_one_without_its_optional_fields_are_valid)
{
        cr_assert(eq(int, check_with(NULL, NULL), 0), "%s", errstr);
        cr_assert(eq(int, check_with("gift_id", NULL), 0), "%s", errstr);
        cr_assert(eq(int, check_with("audience_gender", "null"), 0), "%s", errstr);
        cr_assert(eq(int, check_with("gift_count", "2147483647"), 0), "%s", errstr);
}

Test(reward, what_one_role_would_refuse_every_role_refuses)
{
        static const struct {
                const char *field, *value, *why;
        } cases[] = {
                {"gift_count", "-1", "gift_count"},
                {"gift_count", "0", "gift_count"},
                {"gift_count", "2147483648", "gift_count"},
                {"gift_count", NULL, "gift_count"},
                {"amount", "0", "amount"},
                {"amount", "-5", "amount"},
                {"amount", "\"5\"", "amount"},
                {"ts_ms", "0", "ts_ms"},
                {"tip_id", NULL, "tip_id"},
                {"tip_id", "\"\"", "tip_id"},
                {"anchor_id",
                 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                 "anchor_id"},
                {"room_id", "7", "room_id"},
                {"anchor_gender", "\"MALE\"", "anchor_gender"},
                {"audience_type", "\"vip\"", "audience_type"},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_assert(eq(int, check_with(cases[i].field, cases[i].value), -1), "%s = %s",
                          cases[i].field, cases[i].value ? cases[i].value : "(removed)");
                cr_assert(strstr(errstr, cases[i].why) != NULL, "%s", errstr);
        }
}

Test(reward, only_a_reward_event_is_a_tip)
{
        json_t *p = json_object();

        ev = (struct event){.event_type = (char *)"withdrawal",
                            .payload_name = (char *)"Withdrawal",
                            .payload = p};
        cr_assert(eq(int, reward_check(&ev, errstr, sizeof(errstr)), -1));
        cr_assert(strstr(errstr, "not a tip") != NULL, "%s", errstr);
        json_decref(p);
}
