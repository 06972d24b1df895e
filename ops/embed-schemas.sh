#!/bin/sh
# Turns schemas/*.avsc and schemas/history/*.avsc into a C table so every process carries the
# exact schema texts it was built with (no schema files to deploy beside the binaries). An
# entry is named by its path under schemas/ without .avsc: "event", "history/event-v1".
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
        name=${f#*schemas/}
        printf '        { "%s", schema_%d },\n' "${name%.avsc}" "$n"
        n=$((n + 1))
done
printf '        { NULL, NULL },\n};\n'
