/* test_http_reply.c: the JSON bodies of the receiver's responses (callback-receiver/http_reply.c).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <string.h>

#include "../../callback-receiver/http_reply.h" /* the Makefile gives tests no -I<program dir> */

Test(http_reply, ok_is_code_zero)
{
        char body[64];

        cr_assert(eq(sz, http_reply_body(body, sizeof(body), 200, "ignored"), 10));
        cr_assert_str_eq(body, "{\"code\":0}");
}

Test(http_reply, error_carries_code_and_message)
{
        char body[128];

        http_reply_body(body, sizeof(body), 401, "sign does not match");
        cr_assert_str_eq(body, "{\"code\":401,\"message\":\"sign does not match\"}");
}

Test(http_reply, null_message_is_the_reason_phrase)
{
        char body[128];

        http_reply_body(body, sizeof(body), 404, NULL);
        cr_assert_str_eq(body, "{\"code\":404,\"message\":\"Not Found\"}");
}

Test(http_reply, message_is_escaped_into_valid_json)
{
        char body[256];
        json_t *root;

        http_reply_body(body, sizeof(body), 400, "body: \"x\\\" near '\xff\x01'\n");
        root = json_loads(body, 0, NULL);
        cr_assert(root != NULL, "not JSON: %s", body);
        cr_assert(eq(int, (int)json_integer_value(json_object_get(root, "code")), 400));
        cr_assert_str_eq(json_string_value(json_object_get(root, "message")),
                         "body: \"x\\\" near '?\?'?");
        json_decref(root);
}

Test(http_reply, long_message_is_cut_but_stays_json)
{
        char message[2000], body[128];
        json_t *root;

        memset(message, 'm', sizeof(message) - 1);
        message[sizeof(message) - 1] = '\0';
        http_reply_body(body, sizeof(body), 503, message);
        root = json_loads(body, 0, NULL);
        cr_assert(root != NULL, "not JSON: %s", body);
        json_decref(root);
}
