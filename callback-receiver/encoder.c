/*
 * encoder.c: a codec per thread, found through a thread-local pointer and owned by the
 * encoder's list, so it is made once per HTTP thread and freed once, at encoder_destroy().
 * Events are written by the codec's own Avro writer (codec_encode_direct()), into a buffer
 * the thread's codec reuses, from the payload's fields or JSON as the vendor module made it.
 */
#include "encoder.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct codec_node {
        struct codec *codec;
        struct codec_node *next;
};

struct encoder {
        unsigned long long id; /* tells this encoder's thread-local codec from another's */
        pthread_mutex_t lock;  /* guards codecs; taken once per thread, not per request */
        struct codec_node *codecs;
};

/* Ids are never reused, so a codec cached for a destroyed encoder is never taken for a new one. */
static atomic_ullong next_encoder_id = 1;

static _Thread_local struct {
        unsigned long long encoder_id;
        struct codec *codec;
} thread_codec;

static struct codec *codec_for_thread(struct encoder *enc, char *errstr, size_t errstr_size)
{
        struct codec_node *node;

        if (thread_codec.encoder_id == enc->id)
                return thread_codec.codec;
        if (!(node = calloc(1, sizeof(*node)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (!(node->codec = codec_new(errstr, errstr_size))) {
                free(node);
                return NULL;
        }
        pthread_mutex_lock(&enc->lock);
        node->next = enc->codecs;
        enc->codecs = node;
        pthread_mutex_unlock(&enc->lock);
        thread_codec.encoder_id = enc->id;
        thread_codec.codec = node->codec;
        return node->codec;
}

struct encoder *encoder_new(char *errstr, size_t errstr_size)
{
        struct encoder *enc = calloc(1, sizeof(*enc));

        if (!enc) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        enc->id = atomic_fetch_add(&next_encoder_id, 1);
        pthread_mutex_init(&enc->lock, NULL);
        if (!codec_for_thread(enc, errstr, errstr_size)) {
                encoder_destroy(enc);
                return NULL;
        }
        return enc;
}

void encoder_destroy(struct encoder *enc)
{
        struct codec_node *node, *next;

        if (!enc)
                return;
        for (node = enc->codecs; node; node = next) {
                next = node->next;
                codec_destroy(node->codec);
                free(node);
        }
        if (thread_codec.encoder_id == enc->id)
                thread_codec.encoder_id = 0;
        pthread_mutex_destroy(&enc->lock);
        free(enc);
}

int encoder_encode(struct encoder *enc, const struct envelope *env, const char *payload_name,
                   const struct payload *fields, const json_t *payload, void **out, size_t *out_len,
                   char *errstr, size_t errstr_size)
{
        struct codec *c = codec_for_thread(enc, errstr, errstr_size);

        if (!c)
                return -1;
        return codec_encode_direct(c, env, payload_name, fields, payload, out, out_len, errstr,
                                   errstr_size);
}
