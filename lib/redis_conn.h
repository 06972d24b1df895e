/* redis_conn.h: a hiredis connection that reconnects after errors instead of dying. */
#ifndef LIVEFLOW_REDIS_CONN_H
#define LIVEFLOW_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

struct redis_conn;

/**
 * @brief Connects to the redis:// URL (AUTH and SELECT as the URL says). A server that is
 * down at start is an error here; later outages are handled by reconnecting.
 * @returns NULL with errstr naming host:port and the reason.
 */
struct redis_conn *redis_conn_new(const char *url, int timeout_ms, char *errstr,
                                  size_t errstr_size);

/**
 * @brief Writes the command argv (NUL-terminated words) in RESP, as hiredis's
 * redisFormatCommandArgv() does, into buf: hiredis formats through sdscatfmt() and copies twice,
 * ~4 k instructions for a six-word command; this is a few hundred. For
 * redisAppendFormattedCommand() and redisAsyncFormattedCommand().
 * @returns the length written, or 0 when the command does not fit in size bytes.
 */
size_t redis_resp_format(char *buf, size_t size, int argc, const char **argv);

/** @brief Closes and frees; NULL is fine. */
void redis_conn_destroy(struct redis_conn *rc);

/**
 * @brief Runs one command (argv form, binary-safe). Reconnects first if the last command
 * broke the context (a hiredis context with err set is dead). @returns the reply, which the
 * caller frees with freeReplyObject(), or NULL with errstr set (connection problem or a Redis
 * error reply, which is also freed).
 */
redisReply *redis_conn_cmd(struct redis_conn *rc, int argc, const char **argv, const size_t *lens,
                           char *errstr, size_t errstr_size);

/**
 * @brief One page of a SCAN-family command (argv: SCAN, SSCAN, ... naming cursor): each string
 * of the reply goes to each(arg, s, len, ...) until one returns -1; cursor (in/out) moves on to
 * the reply's only when none did. @returns 0, or -1 with errstr.
 */
int redis_conn_scan_page(struct redis_conn *rc, int argc, const char **argv, char cursor[32],
                         int (*each)(void *arg, const char *s, size_t len, char *errstr,
                                     size_t errstr_size),
                         void *arg, char *errstr, size_t errstr_size);

/**
 * @brief Sends `n` commands in one round trip (pipelining) and checks every reply.
 * cmds[i] is an argv array of argcs[i] NUL-terminated strings. @returns 0, or -1 with errstr
 * when the connection failed or any reply was an error.
 */
int redis_conn_pipeline(struct redis_conn *rc, size_t n, const int *argcs, const char **const *cmds,
                        char *errstr, size_t errstr_size);

/**
 * @brief redis_conn_pipeline() that hands the replies over: replies[0..n) are the caller's to
 * free, error replies included (they are not checked). @returns 0, or -1 with errstr when the
 * connection failed (no reply is then left in replies).
 */
int redis_conn_pipeline_replies(struct redis_conn *rc, size_t n, const int *argcs,
                                const char **const *cmds, redisReply **replies, char *errstr,
                                size_t errstr_size);

/**
 * @brief The n commands as one transaction (MULTI, the commands, EXEC) in one round trip:
 * readers see all of their effects or none. @returns 0, or -1 with errstr when the connection
 * failed, a command was refused (nothing ran) or any command's reply in EXEC's was an error
 * (the others ran: Redis does not roll back). An outage reply is remembered as
 * redis_conn_cmd()'s are (redis_conn_unavailable()).
 */
int redis_conn_multi_exec(struct redis_conn *rc, size_t n, const int *argcs,
                          const char **const *cmds, char *errstr, size_t errstr_size);

/**
 * @brief EVALSHA of a script loaded once per connection (loaded again after a reconnect or a
 * NOSCRIPT). keys and args are NUL-terminated strings. Same return rules as redis_conn_cmd.
 */
redisReply *redis_conn_eval(struct redis_conn *rc, const char *script, int nkeys, const char **keys,
                            int nargs, const char **args, char *errstr, size_t errstr_size);

/**
 * @brief True for an error reply that is Redis's state and not the command's (LOADING,
 * READONLY, MASTERDOWN, OOM, MISCONF, BUSY, NOAUTH, a full client table, ...).
 */
bool redis_conn_is_outage_reply(const char *msg);

/**
 * @brief Whether a call since the last redis_conn_clear_unavailable() failed because Redis was
 * unreachable, went away or could not serve (see redis_conn_is_outage_reply); why (may be NULL)
 * receives that failure's message.
 */
bool redis_conn_unavailable(const struct redis_conn *rc, char *why, size_t why_size);

/** @brief Forgets what redis_conn_unavailable() reports; NULL is fine. */
void redis_conn_clear_unavailable(struct redis_conn *rc);

/** @brief Ensures a live connection (PING). @returns 0 or -1. */
int redis_conn_ping(struct redis_conn *rc, char *errstr, size_t errstr_size);

#endif
