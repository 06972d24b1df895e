/* avro_sof.h: Avro single-object encoding framing, schema Parsing Canonical Form, CRC-64-AVRO. */
#ifndef LIVEFLOW_AVRO_SOF_H
#define LIVEFLOW_AVRO_SOF_H

#include <stddef.h>
#include <stdint.h>

/* C3 01, then the schema fingerprint as 8 little-endian bytes. */
#define AVRO_SOF_HEADER_SIZE 10

/**
 * @brief Computes the Parsing Canonical Form (Avro specification) of a schema.
 * @param schema_json the schema's JSON text, NUL-terminated.
 * @param out receives a malloc'd NUL-terminated string; the caller frees it.
 * @returns 0 on success, -1 with the reason in errstr (invalid JSON or schema shape).
 */
__attribute__((warn_unused_result)) int avro_sof_canonical_form(const char *schema_json, char **out,
                                                                char *errstr, size_t errstr_size);

/**
 * @brief CRC-64-AVRO (the 64-bit Rabin fingerprint of the Avro specification) of len bytes.
 * data may be NULL when len is 0.
 */
uint64_t avro_sof_crc64(const void *data, size_t len);

/**
 * @brief The CRC-64-AVRO fingerprint of the Parsing Canonical Form of schema_json.
 * @returns 0 and *fp on success, -1 with the reason in errstr.
 */
__attribute__((warn_unused_result)) int avro_sof_fingerprint(const char *schema_json, uint64_t *fp,
                                                             char *errstr, size_t errstr_size);

/** @brief Writes the 10-byte single-object header (marker and fingerprint) to out. */
void avro_sof_write_header(unsigned char out[AVRO_SOF_HEADER_SIZE], uint64_t fp);

/**
 * @brief Checks the single-object header at the start of data and extracts the fingerprint.
 * @returns 0 and *fp when len >= 10 and the marker is C3 01; -1 with the reason in errstr.
 */
__attribute__((warn_unused_result)) int
avro_sof_read_header(const void *data, size_t len, uint64_t *fp, char *errstr, size_t errstr_size);

#endif
