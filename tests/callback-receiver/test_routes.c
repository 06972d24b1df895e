/* test_routes.c: the receiver's URL table (callback-receiver/routes.c). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "../../callback-receiver/routes.h" /* the Makefile gives tests no -I<program dir> */

Test(routes, exact_path_matches_with_an_empty_token)
{
        const char *token = "unset";
        const struct route *r = routes_match("/callbacks/tencent", &token);

        cr_assert(r != NULL);
        cr_assert(eq(int, r->id, ROUTE_VENDOR));
        cr_assert_str_eq(token, "");
        cr_assert_str_eq(r->endpoint, "tencent");
}

Test(routes, token_after_the_path_is_returned)
{
        const char *token = NULL;
        const struct route *r = routes_match("/callbacks/tencent/abc123", &token);

        cr_assert(r != NULL);
        cr_assert_str_eq(token, "abc123");
}

Test(routes, longer_name_is_not_a_token)
{
        cr_assert_null(routes_match("/callbacks/tencentx", NULL));
        cr_assert_null(routes_match("/callbacks/tencen", NULL));
}

Test(routes, probe_paths_take_no_token)
{
        cr_assert(eq(int, routes_match("/healthz", NULL)->id, ROUTE_HEALTHZ));
        cr_assert(eq(int, routes_match("/readyz", NULL)->id, ROUTE_READYZ));
        cr_assert(eq(int, routes_match("/metrics", NULL)->id, ROUTE_METRICS));
        cr_assert_null(routes_match("/metrics/x", NULL));
}

Test(routes, admin_commands_hand_the_rest_of_the_path_over)
{
        const char *rest = NULL;
        const struct route *r = routes_match("/v1/admin/streams/s1/close", &rest);

        cr_assert_not_null(r);
        cr_assert_str_eq(r->endpoint, "admin");
        cr_assert_str_eq(rest, "streams/s1/close");
        cr_assert_null(routes_match("/v1/adminx", NULL));
}

Test(routes, internal_and_srs_paths_are_exact)
{
        cr_assert_str_eq(routes_match("/v1/rewards", NULL)->endpoint, "rewards");
        cr_assert_str_eq(routes_match("/v1/withdrawals", NULL)->endpoint, "withdrawals");
        cr_assert_str_eq(routes_match("/callbacks/srs", NULL)->endpoint, "srs");
        cr_assert_null(routes_match("/v1/rewards/x", NULL));
        cr_assert_null(routes_match("/callbacks/srs/x", NULL));
}

Test(routes, unknown_path_has_no_route)
{
        cr_assert_null(routes_match("/", NULL));
        cr_assert_null(routes_match("/callbacks/srs-x", NULL));
}

Test(routes, methods_follow_the_allow_list)
{
        const struct route *cb = routes_match("/callbacks/tencent", NULL);
        const struct route *probe = routes_match("/healthz", NULL);

        cr_assert(route_allows(cb, "POST"));
        cr_assert(not(route_allows(cb, "GET")));
        cr_assert(not(route_allows(cb, "POS")));
        cr_assert(route_allows(probe, "GET"));
        cr_assert(route_allows(probe, "HEAD"));
        cr_assert(not(route_allows(probe, "POST")));
        cr_assert_str_eq(cb->allow, "POST");
}

Test(routes, agora_is_post_only_and_alibaba_takes_get_for_ingest)
{
        const struct route *agora = routes_match("/callbacks/agora", NULL);
        const struct route *alibaba = routes_match("/callbacks/alibaba", NULL);

        cr_assert_not_null(agora);
        cr_assert_not_null(alibaba);
        cr_assert_str_eq(agora->vendor, "agora");
        cr_assert_str_eq(alibaba->vendor, "alibaba");
        cr_assert(route_allows(agora, "POST"));
        cr_assert(not(route_allows(agora, "GET")));
        cr_assert(route_allows(alibaba, "GET"));
        cr_assert(route_allows(alibaba, "POST"));
        cr_assert_null(routes_match("/callbacks/agora/x", NULL));
}
