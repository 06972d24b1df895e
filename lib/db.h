/* db.h: a MySQL/MariaDB connection with prepared statements that survive reconnects. */
#ifndef LIVEFLOW_DB_H
#define LIVEFLOW_DB_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the caller should do about a result. */
enum db_result {
        DB_OK = 0,
        DB_DUPLICATE, /* ER_DUP_ENTRY: an idempotent insert already happened */
        DB_RETRY,     /* transient: connection lost, deadlock, lock wait timeout; try again */
        DB_FATAL,     /* anything else: the statement or the data is wrong */
};

enum db_param_type { DB_PARAM_NULL, DB_PARAM_I64, DB_PARAM_STR };

struct db_param {
        enum db_param_type type;
        long long i;
        const char *s; /* borrowed */
        size_t len;
};

#define DB_I64(v) ((struct db_param){.type = DB_PARAM_I64, .i = (long long)(v)})
#define DB_STR(v) db_param_str(v)
#define DB_NULL   ((struct db_param){.type = DB_PARAM_NULL})

/** @brief A string parameter, or NULL when s is NULL. */
static inline struct db_param db_param_str(const char *s)
{
        struct db_param p = {.type = s ? DB_PARAM_STR : DB_PARAM_NULL, .s = s, .len = 0};

        if (s)
                for (const char *q = s; *q; q++)
                        p.len++;
        return p;
}

/* One output column of a query: integers and strings (a NULL leaves is_null set). */
struct db_col {
        enum db_param_type type; /* DB_PARAM_I64 or DB_PARAM_STR */
        long long i;
        char *s; /* caller's buffer for strings */
        size_t s_size;
        bool is_null;
};

struct db;
struct db_stmt;

/**
 * @brief Connects to the mysql:// URL (utf8mb4, UTC session time zone, autocommit on).
 * @returns NULL with errstr naming the host or socket and MySQL's reason.
 */
struct db *db_new(const char *url, int timeout_s, char *errstr, size_t errstr_size);

/**
 * @brief A second connection to like's database, as db_new() made like (for another thread:
 * a db is used by one thread at a time). @returns NULL with errstr as db_new().
 */
struct db *db_new_like(const struct db *like, char *errstr, size_t errstr_size);

/** @brief Closes the connection and frees every statement; NULL is fine. */
void db_destroy(struct db *db);

/**
 * @brief A statement prepared lazily and again after each reconnect; owned by db.
 * @returns NULL only when out of memory.
 */
struct db_stmt *db_stmt(struct db *db, const char *sql);

/** @brief One statement of a table db_stmts() prepares: where its handle goes, and its text. */
struct db_stmt_def {
        size_t offset; /* offsetof() the struct db_stmt * in the caller's struct */
        const char *sql;
};

/**
 * @brief db_stmt() for each of defs[0..n), storing each handle at base + its offset.
 * @returns 0, or -1 when out of memory (the handles made so far stay owned by db).
 */
int db_stmts(struct db *db, void *base, const struct db_stmt_def *defs, size_t n);

/**
 * @brief Executes a statement with n parameters. affected (may be NULL) receives the
 * affected-row count; last_id (may be NULL) the auto-increment id.
 */
enum db_result db_exec(struct db *db, struct db_stmt *st, const struct db_param *params, size_t n,
                       unsigned long long *affected, unsigned long long *last_id, char *errstr,
                       size_t errstr_size);

/**
 * @brief Runs a query and copies the first row into cols. *found says whether a row was there.
 */
enum db_result db_query_row(struct db *db, struct db_stmt *st, const struct db_param *params,
                            size_t n, struct db_col *cols, size_t ncols, bool *found, char *errstr,
                            size_t errstr_size);

/**
 * @brief Runs a query and calls on_row(cols, arg) once per row, cols filled as by
 * db_query_row() (the same array each time: copy what must outlive the call). The whole
 * result is read before the first call; on_row must not use db.
 */
enum db_result db_query_each(struct db *db, struct db_stmt *st, const struct db_param *params,
                             size_t n, struct db_col *cols, size_t ncols,
                             void (*on_row)(const struct db_col *cols, void *arg), void *arg,
                             char *errstr, size_t errstr_size);

/** @brief Runs a text statement (no result set), e.g. "BEGIN", "COMMIT" or a multi-row insert. */
enum db_result db_sql(struct db *db, const char *sql, unsigned long long *affected, char *errstr,
                      size_t errstr_size);

enum db_result db_begin(struct db *db, char *errstr, size_t errstr_size);
enum db_result db_commit(struct db *db, char *errstr, size_t errstr_size);
/** @brief Rolls back; errors are logged, since a lost connection has rolled back already. */
void db_rollback(struct db *db);

/**
 * @brief The transaction open on db: a serial that never repeats, given when db_sql() (or
 * db_begin()) runs START TRANSACTION or BEGIN; 0 outside one, and after its COMMIT, its
 * ROLLBACK or the loss of its connection.
 */
uint64_t db_txn(const struct db *db);

/**
 * @brief Whether transaction txn (a db_txn()) ended with a COMMIT MySQL confirmed on the
 * connection it began on, no statement inside it having failed (but for a duplicate) or rolled
 * back to a savepoint: then everything it wrote is there. False when it is still open, did
 * not, or is too old to tell (the last 64 are known).
 */
bool db_txn_committed(const struct db *db, uint64_t txn);

/*
 * A text statement built piece by piece: the set-based statements of a batch, whose number of
 * rows (and so of values) changes from one batch to the next, go as one text query each (one
 * round trip, no prepared statement per row count). Strings are escaped for the connection's
 * character set. An allocation failure is remembered and reported by db_text_exec() /
 * db_text_query(), so a caller appends without checking each step.
 */
struct db_text {
        char *s;
        size_t len, cap;
        bool is_oom;
};

/** @brief Empties t for a new statement (keeps its buffer). */
void db_text_reset(struct db_text *t);

/** @brief Frees t's buffer; t may be reused after db_text_reset(). */
void db_text_free(struct db_text *t);

/** @brief Appends SQL text (printf format; never user data: use db_text_str for that). */
void db_text_add(struct db_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** @brief Appends s as a quoted, escaped string literal, or NULL when s is NULL. */
void db_text_str(struct db *db, struct db_text *t, const char *s);

/** @brief Appends an integer literal. */
void db_text_i64(struct db_text *t, long long v);

/** @brief Appends "FROM_UNIXTIME(ms / 1000)": the DATETIME(3) of Unix milliseconds ms. */
void db_text_from_ms(struct db_text *t, long long ms);

/** @brief Runs t as a statement without a result set (as db_sql()). */
enum db_result db_text_exec(struct db *db, const struct db_text *t, unsigned long long *affected,
                            char *errstr, size_t errstr_size);

/**
 * @brief Runs t as a query and calls on_row(cols, arg) once per row, cols typed and filled as
 * by db_query_each() (integers parsed from the text protocol, NULL leaves is_null set).
 */
enum db_result db_text_query(struct db *db, const struct db_text *t, struct db_col *cols,
                             size_t ncols, void (*on_row)(const struct db_col *cols, void *arg),
                             void *arg, char *errstr, size_t errstr_size);

/**
 * @brief The AUTO_INCREMENT id the last statement generated (a multi-row INSERT: its first
 * row's), as mysql_insert_id(); 0 when none or not connected.
 */
unsigned long long db_last_insert_id(const struct db *db);

/** @brief Escapes s (len bytes) for a quoted SQL literal into out (>= 2*len+1). */
void db_escape(struct db *db, char *out, const char *s, size_t len);

/** @brief Pings and reconnects if needed. @returns DB_OK or DB_RETRY. */
enum db_result db_ping(struct db *db, char *errstr, size_t errstr_size);

/** @brief Maps a MySQL error number to what the caller should do. */
enum db_result db_classify(unsigned int mysql_errno);

/**
 * @brief True for the errors that are the store's and not a statement's: the server is
 * unreachable or went away, will not take writes (read-only, disk full), or its schema or grants
 * are not what the code expects (a table that does not exist). Retrying a record cannot help
 * with these; waiting for the store can.
 */
bool db_is_outage_errno(unsigned int mysql_errno);

/**
 * @brief Whether a call since the last db_clear_unavailable() failed with an outage error (see
 * db_is_outage_errno) or could not connect; why (may be NULL) receives that failure's message.
 */
bool db_store_unavailable(const struct db *db, char *why, size_t why_size);

/** @brief Forgets the outage db_store_unavailable() reports; NULL is fine. */
void db_clear_unavailable(struct db *db);

/** @brief A readable name of a result ("ok", "duplicate", "retry", "fatal"). */
const char *db_result_name(enum db_result r);

#endif
