/*
 * fuzz_jsonfast.c: libFuzzer target comparing the receiver's fast parse (cJSON behind a
 * byte check, callback-receiver/jsonfast.c) with jansson's json_loadb(JSON_REJECT_DUPLICATES):
 * both must accept and refuse the same inputs, and an accepted input must read alike
 * (same types, texts, integers, keys and order of array items). Any difference aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void differ(const char *what)
{
        fprintf(stderr, "jsonfast and jansson differ: %s\n", what);
        abort();
}

static void compare(const json_t *j, const cJSON *c)
{
        int64_t n;

        switch (json_typeof(j)) {
        case JSON_OBJECT: {
                const char *key;
                json_t *v;

                if (!cJSON_IsObject(c) || (int)json_object_size(j) != cJSON_GetArraySize(c))
                        differ("object");
                json_object_foreach((json_t *)j, key, v)
                {
                        compare(v, cJSON_GetObjectItemCaseSensitive(c, key));
                }
                return;
        }
        case JSON_ARRAY: {
                const cJSON *item = c ? c->child : NULL;
                size_t i;
                json_t *v;

                if (!cJSON_IsArray(c) || (int)json_array_size(j) != cJSON_GetArraySize(c))
                        differ("array");
                json_array_foreach(j, i, v)
                {
                        compare(v, item);
                        item = item->next;
                }
                return;
        }
        case JSON_STRING:
                if (!cJSON_IsString(c) || strcmp(json_string_value(j), c->valuestring) != 0)
                        differ("string");
                return;
        case JSON_INTEGER:
                if (!jsonfast_integer(c, &n) || n != json_integer_value(j))
                        differ("integer");
                return;
        case JSON_REAL:
                if (!c || cJSON_IsString(c) || jsonfast_integer(c, &n))
                        differ("real");
                return;
        case JSON_TRUE:
                if (!cJSON_IsTrue(c))
                        differ("true");
                return;
        case JSON_FALSE:
                if (!cJSON_IsFalse(c))
                        differ("false");
                return;
        case JSON_NULL:
                if (!cJSON_IsNull(c))
                        differ("null");
                return;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_error_t jerr;
        json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
        cJSON *c = NULL;
        int rc = jsonfast_parse((const char *)data, size, &c, &jerr);

        if (rc == -2) { /* out of memory: no verdict */
                json_decref(j);
                return 0;
        }
        if ((rc == 0) != (j != NULL))
                differ(j ? "jansson accepts, jsonfast refuses"
                         : "jsonfast accepts, jansson refuses");
        if (j)
                compare(j, c);
        json_decref(j);
        cJSON_Delete(c);
        return 0;
}
