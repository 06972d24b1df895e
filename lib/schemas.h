/* schemas.h: the Avro schema texts from schemas/, embedded at build time. */
#ifndef LIVEFLOW_SCHEMAS_H
#define LIVEFLOW_SCHEMAS_H

struct embedded_schema {
        const char *name; /* path under schemas/ without .avsc: "event", "history/event-v1" */
        const char *json; /* NUL-terminated schema text */
};

/** @brief Every schema under schemas/, ending with a { NULL, NULL } entry. */
extern const struct embedded_schema embedded_schemas[];

#endif
