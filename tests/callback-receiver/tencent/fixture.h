/*
 * fixture.h: what test_tencent.c shares with its parts (payloads.c, columns.c): the signed
 * samples and their times, the endpoint under test and the steps that map a body.
 */
#ifndef LIVEFLOW_TEST_TENCENT_FIXTURE_H
#define LIVEFLOW_TEST_TENCENT_FIXTURE_H

#include <jansson.h>

#include "tencent.h"
#include "support.h"

/* The probe key the samples of shared/payloads/tencent-css are signed with, and their t. */
#define PROBE_KEY "tencent-probe-callback-key"
#define PUSH_T    1703732078LL
#define GRACE_S   900
/* The t of each signed sample (shared/payloads/tencent-css/README.md). */
#define RECORD_T 1642090198LL
#define STATUS_T 1700208529LL
#define SNAP_T   1622600525LL
#define IMAGE_T  1615860427LL
#define AUDIO_T  1700000600LL

extern const char push_json[];
extern const char interrupt_json[];
extern const char record_json[];
extern const char record_status_json[];
extern const char screenshot_json[];
extern const char image_json[];
extern const char audio_json[];
extern const char push_abnormal_json[];
extern const char relay_json[];
extern struct tencent *tc;
extern struct webhook_event ev;
extern struct webhook_verdict verdict;

int map_at(const char *body, long long now_s);
char *signed_body(const char *sample, const char *key, json_t *t);
const char *payload_str(const char *name);
long long payload_int(const char *name);
void expected_id(const char *key, char out[65]);
void assert_refused(int rc, unsigned int status, const char *auth_failure, const char *in_message);
int map_edited(const char *sample, long long t, const char *field, json_t *value);
void assert_refused_edit(const char *sample, long long t, const char *field, json_t *value,
                         const char *in_message);

#endif
