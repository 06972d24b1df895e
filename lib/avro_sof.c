/*
 * avro_sof.c: Avro single-object encoding framing and schema fingerprints: the Parsing
 * Canonical Form of a schema and its CRC-64-AVRO (Rabin) fingerprint, both as the Avro
 * specification defines them. Hand-written on purpose, because no Debian library offers it
 * (avro-c 1.11.1 has neither a canonical form nor a fingerprint, and its avro_schema_to_json()
 * is not canonical); it is kept small and tested against the specification's own test data
 * (apache/avro share/test/data/schema-tests.txt) and against python3-avro.
 */
#include "avro_sof.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fingerprint of the empty string; also the polynomial of the reference algorithm. */
#define CRC64_AVRO_EMPTY UINT64_C(0xc15d213aa4d7a795)

/* Schemas nest a few levels; anything deeper is a mistake or an attack on the stack. */
#define CANON_MAX_DEPTH 64

static const unsigned char sof_marker[2] = {0xc3, 0x01};

static json_t *canon_schema(const json_t *schema, const char *ns, int depth, char *errstr,
                            size_t errstr_size);

/* ------------------------------------------------------------ canonical form */

static int is_primitive(const char *type)
{
        static const char *const names[] = {"null",  "boolean", "int",   "long",
                                            "float", "double",  "bytes", "string"};

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(type, names[i]) == 0)
                        return 1;
        return 0;
}

/* [FULLNAMES]: a dotted name is already full; otherwise the namespace in force qualifies it. */
static json_t *full_name(const char *name, const char *ns)
{
        if (strchr(name, '.') || !ns || !*ns)
                return json_string(name);
        return json_sprintf("%s.%s", ns, name);
}

/* The namespace a full name establishes for the types defined inside it. */
static char *namespace_of(const char *fullname)
{
        const char *dot = strrchr(fullname, '.');

        return dot ? strndup(fullname, (size_t)(dot - fullname)) : strdup("");
}

/* The full name of a named schema (record, enum, fixed), from name, namespace and context. */
static json_t *named_full_name(const json_t *schema, const char *ns, char *errstr,
                               size_t errstr_size)
{
        const char *name = json_string_value(json_object_get(schema, "name"));
        const json_t *own_ns = json_object_get(schema, "namespace");

        if (!name || !*name) {
                snprintf(errstr, errstr_size, "named schema without a \"name\" string");
                return NULL;
        }
        if (own_ns && !json_is_null(own_ns)) {
                if (!json_is_string(own_ns)) {
                        snprintf(errstr, errstr_size, "%s: \"namespace\" is not a string", name);
                        return NULL;
                }
                ns = json_string_value(own_ns);
        }
        return full_name(name, ns);
}

/* The fields of a record; the record's full name sets the namespace of what it defines. */
static json_t *canon_fields(const json_t *record, const char *fullname, int depth, char *errstr,
                            size_t errstr_size)
{
        const json_t *fields = json_object_get(record, "fields");
        char *ns = namespace_of(fullname);
        json_t *out = json_array();
        const json_t *field;
        size_t i;

        if (!ns || !out) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (!json_is_array(fields)) {
                snprintf(errstr, errstr_size, "%s: record without a \"fields\" array", fullname);
                goto fail;
        }
        json_array_foreach(fields, i, field)
        {
                const json_t *name = json_object_get(field, "name");
                json_t *type;

                if (!json_is_string(name)) {
                        snprintf(errstr, errstr_size, "%s: field %zu without a \"name\" string",
                                 fullname, i);
                        goto fail;
                }
                if (!(type = canon_schema(json_object_get(field, "type"), ns, depth + 1, errstr,
                                          errstr_size)))
                        goto fail;
                if (json_array_append_new(out, json_pack("{sOso}", "name", name, "type", type))) {
                        snprintf(errstr, errstr_size, "out of memory");
                        goto fail;
                }
        }
        free(ns);
        return out;

fail:
        free(ns);
        json_decref(out);
        return NULL;
}

static json_t *canon_symbols(const json_t *symbols, char *errstr, size_t errstr_size)
{
        const json_t *symbol;
        size_t i;

        if (!json_is_array(symbols)) {
                snprintf(errstr, errstr_size, "enum without a \"symbols\" array");
                return NULL;
        }
        json_array_foreach(symbols, i, symbol)
        {
                if (!json_is_string(symbol)) {
                        snprintf(errstr, errstr_size, "enum symbol %zu is not a string", i);
                        return NULL;
                }
        }
        return json_deep_copy(symbols);
}

/* [INTEGERS]: a size may come quoted; it leaves as a bare integer. */
static json_t *canon_size(const json_t *size, char *errstr, size_t errstr_size)
{
        const char *s = json_string_value(size);
        char *end;
        long long n;

        if (json_is_integer(size) && json_integer_value(size) >= 0)
                return json_integer(json_integer_value(size));
        if (s && *s >= '0' && *s <= '9') {
                n = strtoll(s, &end, 10);
                if (!*end)
                        return json_integer(n);
        }
        snprintf(errstr, errstr_size, "fixed without a valid \"size\"");
        return NULL;
}

/* Record, enum or fixed: the name first, then the type, then what the type needs. */
static json_t *canon_named(const json_t *schema, const char *type, const char *ns, int depth,
                           char *errstr, size_t errstr_size)
{
        json_t *name = named_full_name(schema, ns, errstr, errstr_size);
        json_t *detail = NULL, *out = NULL;
        const char *key;

        if (!name)
                return NULL;
        if (strcmp(type, "enum") == 0) {
                key = "symbols";
                detail = canon_symbols(json_object_get(schema, "symbols"), errstr, errstr_size);
        } else if (strcmp(type, "fixed") == 0) {
                key = "size";
                detail = canon_size(json_object_get(schema, "size"), errstr, errstr_size);
        } else {
                type = "record"; /* a protocol's "error" is a record to the parser */
                key = "fields";
                detail = canon_fields(schema, json_string_value(name), depth, errstr, errstr_size);
        }
        if (detail && !(out = json_pack("{sOsssO}", "name", name, "type", type, key, detail)))
                snprintf(errstr, errstr_size, "out of memory");
        json_decref(detail);
        json_decref(name);
        return out;
}

/* Array or map: the type, then the schema of the items or values. */
static json_t *canon_container(const json_t *schema, const char *type, const char *key,
                               const char *ns, int depth, char *errstr, size_t errstr_size)
{
        json_t *inner =
                canon_schema(json_object_get(schema, key), ns, depth + 1, errstr, errstr_size);

        if (!inner)
                return NULL;
        return json_pack("{ssso}", "type", type, key, inner);
}

static json_t *canon_object(const json_t *schema, const char *ns, int depth, char *errstr,
                            size_t errstr_size)
{
        const char *type = json_string_value(json_object_get(schema, "type"));

        if (!type) {
                snprintf(errstr, errstr_size, "schema object without a \"type\" string");
                return NULL;
        }
        /* [PRIMITIVES] and [STRIP]: {"type":"long","logicalType":...} is just "long". */
        if (is_primitive(type))
                return json_string(type);
        if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0 ||
            strcmp(type, "enum") == 0 || strcmp(type, "fixed") == 0)
                return canon_named(schema, type, ns, depth, errstr, errstr_size);
        if (strcmp(type, "array") == 0)
                return canon_container(schema, type, "items", ns, depth, errstr, errstr_size);
        if (strcmp(type, "map") == 0)
                return canon_container(schema, type, "values", ns, depth, errstr, errstr_size);
        return full_name(type, ns); /* {"type":"SomeRecord"} refers to a named type */
}

static json_t *canon_union(const json_t *branches, const char *ns, int depth, char *errstr,
                           size_t errstr_size)
{
        json_t *out = json_array();
        const json_t *branch;
        size_t i;

        json_array_foreach(branches, i, branch)
        {
                json_t *b = canon_schema(branch, ns, depth + 1, errstr, errstr_size);

                if (!b || json_array_append_new(out, b)) {
                        json_decref(out);
                        return NULL;
                }
        }
        return out;
}

/* Returns the canonical JSON tree of one schema, with ns the namespace in force. */
static json_t *canon_schema(const json_t *schema, const char *ns, int depth, char *errstr,
                            size_t errstr_size)
{
        if (depth > CANON_MAX_DEPTH) {
                snprintf(errstr, errstr_size, "schema nested deeper than %d", CANON_MAX_DEPTH);
                return NULL;
        }
        if (json_is_string(schema)) {
                const char *type = json_string_value(schema);

                return is_primitive(type) ? json_string(type) : full_name(type, ns);
        }
        if (json_is_array(schema))
                return canon_union(schema, ns, depth, errstr, errstr_size);
        if (json_is_object(schema))
                return canon_object(schema, ns, depth, errstr, errstr_size);
        snprintf(errstr, errstr_size, "a schema must be a string, an array or an object");
        return NULL;
}

int avro_sof_canonical_form(const char *schema_json, char **out, char *errstr, size_t errstr_size)
{
        json_error_t jerr;
        json_t *schema, *canon = NULL;

        *out = NULL;
        if (!(schema = json_loads(schema_json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr))) {
                snprintf(errstr, errstr_size, "schema JSON line %d: %s", jerr.line, jerr.text);
                return -1;
        }
        /*
         * [ORDER] comes from building every object in canonical key order (jansson keeps
         * insertion order); [STRINGS], [INTEGERS] and [WHITESPACE] from jansson's compact
         * output, which writes UTF-8 as is and escapes only what JSON requires.
         */
        if ((canon = canon_schema(schema, "", 0, errstr, errstr_size)) &&
            !(*out = json_dumps(canon, JSON_COMPACT | JSON_ENCODE_ANY)))
                snprintf(errstr, errstr_size, "out of memory");
        json_decref(canon);
        json_decref(schema);
        return *out ? 0 : -1;
}

/* ------------------------------------------------------------ CRC-64-AVRO */

/* The reference algorithm's table, built as the specification builds it. */
static void crc64_table(uint64_t table[256])
{
        for (uint64_t i = 0; i < 256; i++) {
                uint64_t fp = i;

                for (int j = 0; j < 8; j++)
                        fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & -(fp & 1));
                table[i] = fp;
        }
}

uint64_t avro_sof_crc64(const void *data, size_t len)
{
        const unsigned char *p = data;
        uint64_t table[256];
        uint64_t fp = CRC64_AVRO_EMPTY;

        /*
         * Building the 2 KiB table on the stack each call costs about 2000 shifts and keeps
         * this free of shared state; fingerprints are computed once per schema, not per event.
         */
        crc64_table(table);
        for (size_t i = 0; i < len; i++)
                fp = (fp >> 8) ^ table[(fp ^ p[i]) & 0xff];
        return fp;
}

int avro_sof_fingerprint(const char *schema_json, uint64_t *fp, char *errstr, size_t errstr_size)
{
        char *canon;

        if (avro_sof_canonical_form(schema_json, &canon, errstr, errstr_size) == -1)
                return -1;
        *fp = avro_sof_crc64(canon, strlen(canon));
        free(canon);
        return 0;
}

/* ------------------------------------------------------------ framing */

void avro_sof_write_header(unsigned char out[AVRO_SOF_HEADER_SIZE], uint64_t fp)
{
        out[0] = sof_marker[0];
        out[1] = sof_marker[1];
        for (int i = 0; i < 8; i++)
                out[2 + i] = (unsigned char)(fp >> (8 * i));
}

int avro_sof_read_header(const void *data, size_t len, uint64_t *fp, char *errstr,
                         size_t errstr_size)
{
        const unsigned char *p = data;

        if (len < AVRO_SOF_HEADER_SIZE) {
                snprintf(errstr, errstr_size,
                         "too short: %zu bytes, an Avro single-object encoding has at least %d",
                         len, AVRO_SOF_HEADER_SIZE);
                return -1;
        }
        if (p[0] != sof_marker[0] || p[1] != sof_marker[1]) {
                snprintf(errstr, errstr_size,
                         "bad magic %02X %02X: not an Avro single-object encoding (C3 01)", p[0],
                         p[1]);
                return -1;
        }
        *fp = 0;
        for (int i = 0; i < 8; i++)
                *fp |= (uint64_t)p[2 + i] << (8 * i);
        return 0;
}
