/* encoder.h: Avro encoding from many HTTP threads, each with its own codec (codecs are not
 * thread-safe). */
#ifndef LIVEFLOW_RECEIVER_ENCODER_H
#define LIVEFLOW_RECEIVER_ENCODER_H

#include <stddef.h>

#include "codec.h"
#include "payload.h"

struct encoder;

/**
 * @brief Makes an encoder and one codec for the calling thread, which checks the embedded
 * schema at startup. @returns the encoder (encoder_destroy() frees it), or NULL with errstr.
 */
struct encoder *encoder_new(char *errstr, size_t errstr_size);

/**
 * @brief Frees every codec the encoder made, on whichever thread. Call it after the threads
 * that encoded have stopped using it (after MHD_stop_daemon()). NULL is fine.
 */
void encoder_destroy(struct encoder *enc);

/**
 * @brief codec_encode_direct() on the calling thread's codec, made on the thread's first call:
 * the payload as fields (webhook_event.fields) or as JSON (webhook_event.payload), at most one
 * of them non-NULL. Thread-safe. Ownership of *out as for codec_encode().
 * @returns 0, or -1 with errstr.
 */
__attribute__((warn_unused_result)) int
encoder_encode(struct encoder *enc, const struct envelope *env, const char *payload_name,
               const struct payload *fields, const json_t *payload, void **out, size_t *out_len,
               char *errstr, size_t errstr_size);

#endif
