/* test_allowlist.c: CIDR allowlists (callback-receiver/allowlist.c). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <netinet/in.h>
#include <string.h>

#include "../../callback-receiver/allowlist.h" /* the Makefile gives tests no -I<program dir> */

static struct sockaddr_storage addr(const char *text)
{
        struct sockaddr_storage ss;

        memset(&ss, 0, sizeof(ss));
        if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
                ss.ss_family = AF_INET;
        else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
                ss.ss_family = AF_INET6;
        else
                cr_assert(false, "bad test address %s", text);
        return ss;
}

static bool allows(const struct allowlist *al, const char *text)
{
        struct sockaddr_storage ss = addr(text);

        return allowlist_allows(al, (struct sockaddr *)&ss);
}

Test(allowlist, empty_list_allows_everyone)
{
        char errstr[128];
        struct allowlist *al = allowlist_new("K", NULL, errstr, sizeof(errstr));

        cr_assert(al != NULL);
        cr_assert(allows(al, "203.0.113.9"));
        allowlist_destroy(al);
        al = allowlist_new("K", " , ", errstr, sizeof(errstr));
        cr_assert(al != NULL);
        cr_assert(allows(al, "::1"));
        allowlist_destroy(al);
}

Test(allowlist, cidr_blocks_and_single_addresses_match)
{
        char errstr[128];
        struct allowlist *al =
                allowlist_new("K", "10.1.0.0/16, 192.0.2.7 ,2001:db8::/32", errstr, sizeof(errstr));

        cr_assert(al != NULL, "%s", errstr);
        cr_assert(allows(al, "10.1.255.3"));
        cr_assert(not(allows(al, "10.2.0.1")));
        cr_assert(allows(al, "192.0.2.7"));
        cr_assert(not(allows(al, "192.0.2.8")));
        cr_assert(allows(al, "2001:db8:1::5"));
        cr_assert(not(allows(al, "2001:db9::5")));
        cr_assert(allows(al, "::ffff:10.1.2.3"), "IPv4-mapped peers of a dual-stack socket");
        allowlist_destroy(al);
}

Test(allowlist, odd_prefix_lengths_match_bitwise)
{
        char errstr[128];
        struct allowlist *al = allowlist_new("K", "192.0.2.64/27", errstr, sizeof(errstr));

        cr_assert(al != NULL, "%s", errstr);
        cr_assert(allows(al, "192.0.2.95"));
        cr_assert(not(allows(al, "192.0.2.96")));
        cr_assert(not(allows(al, "192.0.2.63")));
        allowlist_destroy(al);
}

Test(allowlist, bad_entry_is_named)
{
        char errstr[128];

        cr_assert_null(allowlist_new("LIVEFLOW_TENCENT_ALLOW_IPS", "10.0.0.0/8,10.0.0.300", errstr,
                                     sizeof(errstr)));
        cr_assert(strstr(errstr, "LIVEFLOW_TENCENT_ALLOW_IPS") != NULL, "%s", errstr);
        cr_assert(strstr(errstr, "10.0.0.300") != NULL, "%s", errstr);
        cr_assert_null(allowlist_new("K", "10.0.0.0/33", errstr, sizeof(errstr)));
        cr_assert_null(allowlist_new("K", "10.0.0.0/", errstr, sizeof(errstr)));
}
