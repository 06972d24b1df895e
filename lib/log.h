/* log.h: one structured line per event on stderr, carrying the trace id. */
#ifndef LIVEFLOW_LOG_H
#define LIVEFLOW_LOG_H

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

extern enum log_level log_current_level;

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/**
 * @brief Text (the default): `time process[pid] LEVEL trace=<id> message`. JSON: one object per
 * line with the same fields, {"time","process","pid","level","trace","msg"}, for log shippers.
 */
void log_set_format(enum log_format format);

/** @brief Parses "text" or "json"; -1 on anything else. */
int log_format_parse(const char *s);

/**
 * @brief Names the process in every line; safe to call again. From the first call on,
 * info and debug lines are written in batches at most about 50 ms late (warnings and
 * errors at once, with everything before them); see log_flush().
 */
void log_init(const char *process, enum log_level level);

/**
 * @brief Names the calling thread's part of the process in each of its lines, e.g. "lane=2"
 * (a consumer process running several group members): text lines carry it before the message,
 * JSON lines as the field "thread". NULL or "" removes it. The string is copied.
 */
void log_set_thread_tag(const char *tag);

/** @brief Writes the lines still gathered (also run at exit). Thread-safe. */
void log_flush(void);

/** @brief Parses "error", "warn", "info" or "debug"; -1 on anything else. */
int log_level_parse(const char *s);

/**
 * @brief Formats and writes one line: time, process[pid], level, trace=<id or ->, message.
 * trace_id may be NULL. Newlines and control bytes in the message are escaped so a
 * line is always one line. Thread-safe; lines are never interleaved.
 */
void log_write(enum log_level level, const char *trace_id, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/** @brief log_write() of a message already formatted (written as is, control bytes escaped). */
void log_write_msg(enum log_level level, const char *trace_id, const char *msg);

#define LOG_AT(lvl, trace, ...)                                                                    \
        do {                                                                                       \
                if ((lvl) <= log_current_level)                                                    \
                        log_write((lvl), (trace), __VA_ARGS__);                                    \
        } while (0)
#define log_error(trace, ...) LOG_AT(LOG_LEVEL_ERROR, trace, __VA_ARGS__)
#define log_warn(trace, ...)  LOG_AT(LOG_LEVEL_WARN, trace, __VA_ARGS__)
#define log_info(trace, ...)  LOG_AT(LOG_LEVEL_INFO, trace, __VA_ARGS__)
#define log_debug(trace, ...) LOG_AT(LOG_LEVEL_DEBUG, trace, __VA_ARGS__)

#endif
