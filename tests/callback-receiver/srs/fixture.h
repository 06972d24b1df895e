/*
 * fixture.h: what test_srs.c shares with its parts (malformed.c, identity.c, e2e.c): the SRS
 * samples, the unit fixture (an srs endpoint made from cfg with a fake anchor lookup) and the
 * steps that map a body and look at the verdict.
 */
#ifndef LIVEFLOW_TEST_SRS_FIXTURE_H
#define LIVEFLOW_TEST_SRS_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "settings.h"
#include "srs.h"

#define NOW_MS 1700000000000LL /* the receive time of every unit test */
#define NOW_S  (NOW_MS / 1000)
#define SAMPLE_ID_KEY                                                                              \
        "[\"vid-0xk989d\",\"kd8q2ml1\",\"341w361a\",\"__defaultVhost__\",\"live\",\"livestream\"]"
#define KEY_A "srs-publish-key"
#define KEY_B "srs-publish-key-2026"

/* The samples of shared/payloads/srs (test_srs.c). */
extern const char publish_json[];
extern const char unpublish_json[];
extern const char play_json[];
extern const char stop_json[];
extern const char dvr_json[];
extern const char hls_json[];

/* The fake anchor lookup: answers `result` with `anchor`, remembers what it was asked. */
struct fake_anchors {
        enum anchor_lookup_result result;
        struct anchor_record anchor;
        int calls;
        char asked[256];
};

extern struct fake_anchors fake;
extern struct settings cfg;
extern struct metrics *metrics;
extern struct srs *srs;
extern struct webhook_event ev;
extern struct webhook_verdict verdict;

void make_srs(bool with_fake);
int map_len(const char *body, size_t len);
int map(const char *body);
void assert_mapped(int rc);
char *with_param(const char *sample, const char *param);
char *signed_param(const char *key, const char *stream, const char *tx_time, const char *extra);
char *hex_time(long long t);
char *signed_publish(const char *key, long long expiry_s, const char *extra);
void assert_refused(int rc, unsigned int status, const char *auth_failure, const char *in_message);
long long decisions(const char *decision, const char *reason);
char *repeat(const char *unit, size_t n);

#endif
