#!/bin/sh
# Turns schemas/*.avsc into a C table so every process carries the exact schema
# text it was built with (no schema files to deploy beside the binaries).
set -eu
printf '/* Generated from schemas/ by ops/embed-schemas.sh; do not edit. */\n'
printf '#include <stddef.h>\n#include "schemas.h"\n\n'
n=0
for f in "$@"; do
        printf 'static const char schema_%d[] = {\n' "$n"
        xxd -i < "$f"
        printf ', 0x00 };\n\n'
        n=$((n + 1))
done
printf 'const struct embedded_schema embedded_schemas[] = {\n'
n=0
for f in "$@"; do
        printf '        { "%s", schema_%d },\n' "$(basename "$f" .avsc)" "$n"
        n=$((n + 1))
done
printf '        { NULL, NULL },\n};\n'
