/* support.h: helpers shared by the test suites (fixture lookup, temp names, child processes). */
#ifndef LIVEFLOW_TEST_SUPPORT_H
#define LIVEFLOW_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/**
 * @brief Returns the value of a fixture variable (e.g. "LIVEFLOW_TEST_MYSQL_URL"). When it is
 * unset the current test is skipped, or failed when FIXTURES_REQUIRED is set (CI), so a
 * missing service never passes unnoticed.
 */
const char *support_fixture(const char *name);

/** @brief A name unique to this test process: prefix + pid + counter, e.g. "t_4711_3". */
void support_unique_name(const char *prefix, char *out, size_t out_size);

/** @brief Path of a built binary: $LIVEFLOW_TEST_BUILD/bin/<name> (default build/bin/<name>). */
void support_bin_path(const char *name, char *out, size_t out_size);

/**
 * @brief Starts argv[0] with the current environment plus the NULL-terminated "K=V"
 * list in env_add; stdout and stderr go to log_path (appended). @returns the child pid.
 */
pid_t support_spawn(char *const argv[], char *const env_add[], const char *log_path);

/**
 * @brief Waits up to timeout_ms for pid to exit. @returns its exit status (0..255),
 * 128+signal when killed, or -1 on timeout (the child is then left running).
 */
int support_wait_exit(pid_t pid, int timeout_ms);

/** @brief Reads a whole file into a NUL-terminated malloc'd buffer; NULL on error. */
char *support_read_file(const char *path, size_t *len);

/** @brief Where support_curl_body() collects a response body: a fixed buffer of cap bytes. */
struct support_body {
        char *buf;
        size_t cap;
};

/** @brief A support_body over a char array (e.g. a reply struct's body[]), which must start "". */
#define SUPPORT_BODY(array) ((struct support_body){.buf = (array), .cap = sizeof(array)})

/**
 * @brief curl's CURLOPT_WRITEFUNCTION with a struct support_body as CURLOPT_WRITEDATA: appends
 * what fits (always NUL-terminated) and reads the rest without keeping it.
 */
size_t support_curl_body(char *p, size_t size, size_t n, void *arg);

/** @brief What support_http() got back: the status and what fits of the body. */
struct support_reply {
        long status;
        char body[1024];
};

/**
 * @brief Sends method to path (with its query) on 127.0.0.1:port, body (NULL: none) as
 * application/json plus the header lines of headers (NULL-terminated; NULL: none), with a
 * 10 s timeout; fails the test when the request cannot be made.
 */
struct support_reply support_http(int port, const char *method, const char *path, const char *body,
                                  const char *const headers[]);

/** @brief One request of support_request(); what is left 0 takes the default. */
struct support_request {
        int port;                   /**< on 127.0.0.1 */
        const char *method;         /**< "GET", "POST", ... */
        const char *path;           /**< with its query */
        const char *body;           /**< sent as application/json; NULL: none */
        const char *const *headers; /**< more header lines, NULL-terminated; NULL: none */
        int timeout_ms;             /**< 0: 10 s */
        const char *log_path;       /**< the server's log, named when there is no answer */
};

/**
 * @brief Sends rq as support_http() does (without "Expect: 100-continue"), the reply's body into
 * into (what fits); fails the test when the request cannot be made. @returns the status.
 */
long support_request(const struct support_request *rq, struct support_body into);

/** @brief Tencent's sign of a callback: the hex MD5 of key followed by t in decimal. */
void support_tencent_sign(const char *key, long long t, char sign[33]);

/**
 * @brief A Tencent push (is_begin, event_type 1) or interrupt (event_type 0, pushed for
 * push_duration ms) callback for stream_id as Tencent sends it (the fields of the sample in
 * the payloads), at event_time, from anchor and room (stream_param), signed with key at t.
 */
void support_tencent_stream_body(char *out, size_t out_size, const char *stream_id, bool is_begin,
                                 long long event_time, const char *anchor, const char *room,
                                 long long push_duration, const char *key, long long t);

/** A liveflow-receiver a test started: its HTTP port, admin port (the probes) and log. */
struct support_receiver {
        pid_t pid;
        int port, admin_port;
        char log_path[512];
};

/**
 * @brief Starts liveflow-receiver on free HTTP and admin ports against bootstrap (NULL: the
 * fixture broker) with env ("K=V", NULL-terminated; NULL: none), its log
 * /tmp/liveflow_e2e_<prefix>_<unique>.log, and waits up to 30 s for it to be ready, failing the
 * test naming the log. When a port is taken before the receiver binds it, it starts again on
 * others.
 */
void support_receiver_start(struct support_receiver *r, const char *prefix, const char *bootstrap,
                            const char *const env[]);

/**
 * @brief SIGTERM, then the drain must end with exit 0 within 15 s (else the test fails naming
 * the log); the log is removed unless keep_log.
 */
void support_receiver_stop(struct support_receiver *r, bool keep_log);

/** @brief Kills r when it still runs (SIGKILL) and reaps it: a failed test's teardown. */
void support_receiver_kill(struct support_receiver *r);

/**
 * @brief Runs liveflow-receiver --check-config with env ("K=V", NULL-terminated) and waits up to
 * 10 s for it. out (may be NULL) receives what it printed (malloc'd, "" when nothing; the
 * caller frees it). @returns its exit code, -1 when it did not exit in time.
 */
int support_receiver_check_config(char *const env[], char **out);

typedef struct json_t json_t;

/**
 * @brief The JSON object text json with field set to value (json_null(): removed), compact;
 * takes value's reference. The caller frees the text.
 */
char *support_json_edit(const char *json, const char *field, json_t *value);

/** @brief Milliseconds of a monotonic clock. */
long long support_now_ms(void);

/** @brief Sleeps for ms milliseconds. */
void support_sleep_ms(int ms);

#ifndef LIVEFLOW_TEST_SUPPORT_DB
#define LIVEFLOW_TEST_SUPPORT_DB
/**
 * @brief Creates a fresh database named after the test process on the fixture MariaDB and
 * applies sql/ with liveflow-migrate. url receives its mysql:// URL.
 */
void support_create_database(char *url, size_t url_size);

/** @brief A TCP port on 127.0.0.1 that was free a moment ago. */
int support_free_port(void);

/**
 * @brief A server that never answers (a frozen MariaDB or Redis): a socket listening on
 * 127.0.0.1, its port in *port; the kernel completes the handshakes, nobody reads or writes.
 * @returns the listening socket (close() it).
 */
int support_silent_listener(int *port);

/**
 * @brief Polls GET http://127.0.0.1:port/readyz until 200 or timeout_ms. @returns 0 when ready.
 */
int support_wait_ready(int port, int timeout_ms);

/** @brief Runs a shell command; @returns its exit status. */
int support_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif

/* ------------------------------------------------------------ stores and Kafka */

typedef struct st_mysql MYSQL;
typedef struct rd_kafka_s rd_kafka_t;

/** @brief Connects to a mysql:// URL (session time zone UTC); fails the test otherwise. */
MYSQL *support_mysql_connect(const char *url);

/**
 * @brief Runs a query and writes the first column of its first row into out ("" when there
 * is no row or it is NULL); fails the test on a SQL error.
 */
void support_query1(MYSQL *mysql, char *out, size_t out_size, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/**
 * @brief Polls support_query1() of the formatted query every 50 ms until it reads want; after
 * timeout_ms fails the test with the query, what it read, and the logs /tmp/<log_prefix>.*.log.
 */
void support_wait_value(MYSQL *mysql, int timeout_ms, const char *log_prefix, const char *want,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** @brief support_query1() read as an integer (0 for "" ). */
long long support_query_int(MYSQL *mysql, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

typedef struct redisContext redisContext;

/**
 * @brief A connection to database db of the fixture Redis, emptied first when is_flushed;
 * its redis:// URL into url[url_size] unless url is NULL. Fails the test otherwise.
 */
redisContext *support_redis_connect(int db, bool is_flushed, char *url, size_t url_size);

/** @brief Runs a command on c and fails the test when it cannot or Redis answers an error. */
void support_redis_do(redisContext *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** @brief One record of a dead-letter topic as the tests read it. */
struct support_dead_letter {
        char error_class[32]; /* dlq.error.class */
        char message[512];    /* dlq.error.message */
        bool has_headers;     /* every header the contract gives a dead letter: dlq.topic (the
                                 source topic), dlq.partition, dlq.offset, dlq.attempts,
                                 dlq.timestamp, dlq.error.class, dlq.error.message, trace_id */
};

typedef struct rd_kafka_message_s rd_kafka_message_t;

/**
 * @brief Reads topic from its start until each() counted want of its records keyed key (it says
 * whether a record counts), or timeout_ms passed. @returns how many counted.
 */
int support_scan_topic(const char *topic, const char *key, int want, int timeout_ms,
                       bool (*each)(const rd_kafka_message_t *m, void *arg), void *arg);

/**
 * @brief Reads topic's dead-letter topic (topic ".dlq") from its start until want records keyed
 * key and dead-lettered by group (its dlq.group header) arrived, or timeout_ms passed: every
 * group reads the whole source topic, so the consumers of tests beside this one dead-letter
 * the same records under their own groups. @returns how many were read into out.
 */
size_t support_dead_letters(const char *topic, const char *key, const char *group,
                            struct support_dead_letter *out, size_t want, int timeout_ms);

/** @brief A producer on the fixture broker (acks=all). */
rd_kafka_t *support_producer(void);

/** @brief Produces one record with headers trace_id and event_type; waits for its ack. */
void support_produce(rd_kafka_t *producer, const char *topic, const char *key, const void *value,
                     size_t len, const char *event_type);

/**
 * @brief Reads `topic` from the beginning for up to timeout_ms and returns how many records
 * have `key`; with header_name set, also copies that header of the last of them into
 * header_out.
 */
int support_count_records(const char *topic, const char *key, const char *header_name,
                          char *header_out, size_t header_size, int timeout_ms, int want);

/**
 * @brief Starts $LIVEFLOW_TEST_BUILD/bin/<binary> [role] against the fixtures: the fixture
 * broker and Redis, mysql_url, LIVEFLOW_GROUP_ID=group (unless NULL: tests run in parallel and
 * each needs every partition), a free admin port (written to *admin_port), a 3 s session
 * timeout and a 50 ms retry backoff, then extra_env (NULL-terminated "K=V", may be NULL; later
 * entries win). Output goes to log_path. Waits for /readyz; fails the test otherwise.
 * @returns the child's pid.
 */
pid_t support_start_worker(const char *binary, const char *role, const char *mysql_url,
                           const char *group, const char *const extra_env[], const char *log_path,
                           int *admin_port);

/**
 * @brief support_start_worker() without the wait, so that several workers start together:
 * wait for each with support_wait_ready(*admin_port, ...). @returns the child's pid.
 */
pid_t support_spawn_worker(const char *binary, const char *role, const char *mysql_url,
                           const char *group, const char *const extra_env[], const char *log_path,
                           int *admin_port);

/*
 * A reader of one topic of the fixture broker from where every partition ends at
 * support_reader_open(): it sees exactly what is produced after that moment.
 */
struct support_reader;
typedef struct rd_kafka_message_s rd_kafka_message_t;

/** @brief Opens a reader of topic (all its partitions) from their current ends. */
struct support_reader *support_reader_open(const char *topic);

/**
 * @brief Polls until the record whose trace_id header is trace_id (returned: the caller
 * destroys it) or timeout_ms (NULL). On the way, counts in *count (when not NULL) the records
 * whose header count_header equals count_value.
 */
rd_kafka_message_t *support_reader_until(struct support_reader *r, const char *trace_id,
                                         const char *count_header, const char *count_value,
                                         int *count, int timeout_ms);

/**
 * @brief Polls for timeout_ms and counts the records whose header `header` starts with prefix;
 * first (may be NULL) receives a description of the first of them ("" when none).
 */
int support_reader_count(struct support_reader *r, const char *header, const char *prefix,
                         char *first, size_t first_size, int timeout_ms);

/** @brief Closes the reader; NULL is fine. */
void support_reader_close(struct support_reader *r);

/** @brief Copies header name of m into out. @returns 0, or -1 when m has no such header. */
int support_header(const rd_kafka_message_t *m, const char *name, char *out, size_t size);

struct event;

/** @brief Decodes m's Avro value into out (event_fini() frees it); fails the test when it cannot.
 */
void support_decode(const rd_kafka_message_t *m, struct event *out);

/*
 * A TCP relay in front of a real server, to take the server away from one client without
 * stopping it for the other tests: support_proxy_cut() closes every relayed connection and
 * stops listening (new connections are refused); support_proxy_restore() listens again on
 * the same port.
 */
struct support_proxy;

/** @brief Starts relaying 127.0.0.1:<returned port> to 127.0.0.1:upstream_port. */
struct support_proxy *support_proxy_start(int upstream_port);

/** @brief The port the relay listens on. */
int support_proxy_port(const struct support_proxy *p);

/** @brief Closes every relayed connection and the listener. */
void support_proxy_cut(struct support_proxy *p);

/** @brief Listens again on the same port. */
void support_proxy_restore(struct support_proxy *p);

/** @brief Stops the relay and frees it; NULL is fine. */
void support_proxy_stop(struct support_proxy *p);

/*
 * Every suite shares one dev broker, so a topic holds what earlier suites wrote; a worker's new
 * group starts at the earliest record. support_group_at_end() commits, for group, the current
 * end of every partition of topics (NULL-terminated) and reads the commit back, so the group
 * starts there: call it before the worker joins, and produce only after.
 */
void support_group_at_end(const char *group, const char *const topics[]);

/** @brief A consumer of the fixture broker in group, without auto commit, subscribed to nothing. */
rd_kafka_t *support_group_client(const char *group);

/** @brief How many partitions topic has; fails the test without its metadata. */
int support_partition_count(rd_kafka_t *rk, const char *topic);

/*
 * A fixture server (mariadbd, redis-server) is restarted by a test with its own command line:
 * same port, socket, data directory and options.
 */

/** @brief The running process's command line, each argument single-quoted for sh. */
void support_command_line(pid_t pid, char *out, size_t size);

#endif
