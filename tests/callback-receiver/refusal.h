/*
 * refusal.h: how a vendor suite of the receiver (test_srs.c, test_tencent.c, test_internal.c)
 * checks that a mapping was refused: the return value and the verdict, in one place. What the
 * refused event must not carry stays with each suite.
 */
#ifndef LIVEFLOW_TEST_CALLBACK_RECEIVER_REFUSAL_H
#define LIVEFLOW_TEST_CALLBACK_RECEIVER_REFUSAL_H

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "webhook.h"

/*
 * rc is -1 and v has status, auth_failure (NULL: none) and a message naming in_message.
 */
static inline void assert_verdict_refused(const struct webhook_verdict *v, int rc,
                                          unsigned int status, const char *auth_failure,
                                          const char *in_message)
{
        cr_assert(eq(int, rc, -1));
        cr_assert(eq(u32, v->status, status), "status %u: %s", v->status, v->message);
        if (auth_failure)
                cr_assert_str_eq(v->auth_failure, auth_failure);
        else
                cr_assert_null(v->auth_failure);
        cr_assert(strstr(v->message, in_message) != NULL, "message \"%s\" should name \"%s\"",
                  v->message, in_message);
}

#endif
