/*
 * payload.h: a payload record's fields by name (text, integers, booleans), built without a
 * JSON library: what a vendor module fills while it reads a request and the codec writes as
 * Avro (codec_encode_direct()). An absent name is a null field.
 */
#ifndef LIVEFLOW_PAYLOAD_H
#define LIVEFLOW_PAYLOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* More fields than any payload record of schemas/event.avsc has. */
#define PAYLOAD_MAX_FIELDS 16
/* Text up to this many bytes (all fields together) lives in the payload itself. */
#define PAYLOAD_INLINE_TEXT 512

enum payload_kind {
        PAYLOAD_TEXT,
        PAYLOAD_INT,
        PAYLOAD_BOOL,
};

struct payload_field {
        const char *name; /* borrowed: see payload_set_text() */
        enum payload_kind kind;
        int64_t n;       /* PAYLOAD_INT; PAYLOAD_BOOL as 0 or 1 */
        size_t off, len; /* PAYLOAD_TEXT: len bytes at payload_field_text() (NUL after them) */
};

/*
 * Fields in the order they were first set (as a JSON object keeps them). The text lives
 * inline, or in heap_text once it outgrows that, so a struct copy is safe until the next set.
 */
struct payload {
        size_t n;
        struct payload_field f[PAYLOAD_MAX_FIELDS];
        char *heap_text; /* NULL while the text fits in inline_text */
        size_t text_len, text_cap;
        bool has_failed; /* a set failed (out of memory, too many names): see payload_set_text() */
        char inline_text[PAYLOAD_INLINE_TEXT];
};

/** @brief Makes an empty payload. @returns it (payload_destroy() frees it), or NULL. */
struct payload *payload_new(void);

/** @brief Frees p and its text; NULL is fine. */
void payload_destroy(struct payload *p);

/**
 * @brief Sets p[name] to a copy of len bytes of s (the caller keeps s). A name set before
 * keeps its place and takes the new value. name is borrowed for p's life: a string literal,
 * or a field name of the schema. The bytes are not checked here; the encoder refuses text
 * that is not UTF-8 or holds a NUL.
 * @returns 0, or -1 when out of memory or when p holds PAYLOAD_MAX_FIELDS other names; a
 * failure also sets p->has_failed, so a builder may set many fields and look once at the end.
 */
int payload_set_text(struct payload *p, const char *name, const char *s, size_t len);

/** @brief payload_set_text() for an integer. @returns as payload_set_text(). */
int payload_set_int(struct payload *p, const char *name, int64_t n);

/** @brief payload_set_text() for true or false. @returns as payload_set_text(). */
int payload_set_bool(struct payload *p, const char *name, bool b);

/** @brief The field called name, or NULL when p (which may be NULL) has none. */
const struct payload_field *payload_get(const struct payload *p, const char *name);

/** @brief The NUL-terminated text of a PAYLOAD_TEXT field of p; valid until p's next set. */
const char *payload_field_text(const struct payload *p, const struct payload_field *f);

/** @brief p[name]'s text, or NULL when absent or not text. p may be NULL. */
const char *payload_get_text(const struct payload *p, const char *name);

/**
 * @brief The same fields as a JSON object in the same order (text as strings without a
 * UTF-8 check, integers, booleans), for codec_encode() and for tests. p may be NULL (an empty
 * object). @returns a new reference, or NULL when out of memory.
 */
json_t *payload_to_json(const struct payload *p);

#endif
