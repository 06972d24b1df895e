/* db.c: MySQL access with retry classification; statements re-prepared after reconnects. */
#include "db.h"

#include <ctype.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "text.h"
#include "url.h"

struct db_stmt {
        struct db_stmt *next;
        char *sql;
        MYSQL_STMT *stmt; /* NULL until prepared on the current connection */
};

#define DB_TXN_KEPT 64

struct db {
        MYSQL *mysql;
        struct mysql_url url;
        int timeout_s;
        struct db_stmt *stmts;
        bool connected;
        unsigned int outage_errno; /* the last failure that was the store's, until cleared */
        char outage_why[256];
        /* db_txn(): the open transaction's serial (0: none), the last serial given, whether a
           statement inside it failed or rolled back to a savepoint, and the serials of the
           last DB_TXN_KEPT transactions that committed whole (by serial % DB_TXN_KEPT) */
        uint64_t txn, txn_serial;
        bool is_txn_partial;
        uint64_t committed[DB_TXN_KEPT];
};

enum db_result db_classify(unsigned int e)
{
        switch (e) {
        case 0:
                return DB_OK;
        case ER_DUP_ENTRY:
        case ER_DUP_KEY:
                return DB_DUPLICATE;
        case CR_SERVER_GONE_ERROR:
        case CR_SERVER_LOST:
        case CR_CONNECTION_ERROR:
        case CR_CONN_HOST_ERROR:
        case CR_SERVER_LOST_EXTENDED:
        case ER_LOCK_DEADLOCK:
        case ER_LOCK_WAIT_TIMEOUT:
        case ER_SERVER_SHUTDOWN:
        case ER_CON_COUNT_ERROR:
        case ER_QUERY_INTERRUPTED:
        case CR_COMMANDS_OUT_OF_SYNC:
                return DB_RETRY;
        default:
                return DB_FATAL;
        }
}

bool db_is_outage_errno(unsigned int e)
{
        switch (e) {
        /* the server is not there, or went away */
        case CR_SERVER_GONE_ERROR:
        case CR_SERVER_LOST:
        case CR_CONNECTION_ERROR:
        case CR_CONN_HOST_ERROR:
        case CR_SERVER_LOST_EXTENDED:
        case CR_UNKNOWN_HOST:
        case CR_SERVER_HANDSHAKE_ERR:
        case CR_COMMANDS_OUT_OF_SYNC:
        case ER_SERVER_SHUTDOWN:
        case ER_CONNECTION_KILLED:
        case ER_CON_COUNT_ERROR:
        case ER_TOO_MANY_USER_CONNECTIONS:
        /* it is there but will not take writes: read-only, full disk */
        case ER_OPTION_PREVENTS_STATEMENT:
        case ER_READ_ONLY_MODE:
        case ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION:
        case ER_RECORD_FILE_FULL:
        case ER_DISK_FULL:
        case ER_OUT_OF_RESOURCES:
        /* the schema or the grants are not what the code expects (a bad deploy) */
        case ER_NO_SUCH_TABLE:
        case ER_NO_SUCH_TABLE_IN_ENGINE:
        case ER_BAD_DB_ERROR:
        case ER_BAD_FIELD_ERROR:
        case ER_ACCESS_DENIED_ERROR:
        case ER_DBACCESS_DENIED_ERROR:
        case ER_TABLEACCESS_DENIED_ERROR:
                return true;
        default:
                return false;
        }
}

const char *db_result_name(enum db_result r)
{
        static const char *const names[] = {"ok", "duplicate", "retry", "fatal"};

        return r <= DB_FATAL ? names[r] : "?";
}

static void where(const struct db *db, char *out, size_t n)
{
        if (db->url.socket[0])
                snprintf(out, n, "mysql %s", db->url.socket);
        else
                snprintf(out, n, "mysql %s:%u", db->url.host, db->url.port);
}

static void forget_statements(struct db *db)
{
        for (struct db_stmt *st = db->stmts; st; st = st->next) {
                if (st->stmt)
                        mysql_stmt_close(st->stmt);
                st->stmt = NULL;
        }
}

static void disconnect(struct db *db)
{
        forget_statements(db);
        if (db->mysql)
                mysql_close(db->mysql);
        db->mysql = NULL;
        db->connected = false;
        db->txn = 0; /* the server rolled it back */
}

static int connect_db(struct db *db, char *errstr, size_t errstr_size)
{
        unsigned int t = (unsigned int)db->timeout_s;
        char w[300];
        my_bool off = 0;

        disconnect(db);
        if (!(db->mysql = mysql_init(NULL))) {
                snprintf(errstr, errstr_size, "mysql: out of memory");
                return -1;
        }
        mysql_options(db->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &t);
        mysql_options(db->mysql, MYSQL_OPT_READ_TIMEOUT, &t);
        mysql_options(db->mysql, MYSQL_OPT_WRITE_TIMEOUT, &t);
        mysql_options(db->mysql, MYSQL_OPT_RECONNECT,
                      &off); /* we reconnect and re-prepare ourselves */
        mysql_options(db->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        mysql_options(db->mysql, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
        if (!mysql_real_connect(db->mysql, db->url.socket[0] ? NULL : db->url.host, db->url.user,
                                db->url.password, db->url.database, db->url.port,
                                db->url.socket[0] ? db->url.socket : NULL, 0)) {
                where(db, w, sizeof(w));
                snprintf(errstr, errstr_size, "%s: %s", w, mysql_error(db->mysql));
                return -1;
        }
        db->connected = true;
        return 0;
}

struct db *db_new(const char *url, int timeout_s, char *errstr, size_t errstr_size)
{
        struct db *db = calloc(1, sizeof(*db));

        if (!db) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        db->timeout_s = timeout_s;
        if (url_parse_mysql(url, &db->url, errstr, errstr_size) == -1 ||
            connect_db(db, errstr, errstr_size) == -1) {
                db_destroy(db);
                return NULL;
        }
        return db;
}

struct db *db_new_like(const struct db *like, char *errstr, size_t errstr_size)
{
        struct db *db = calloc(1, sizeof(*db));

        if (!db) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        db->timeout_s = like->timeout_s;
        db->url = like->url;
        if (connect_db(db, errstr, errstr_size) == -1) {
                db_destroy(db);
                return NULL;
        }
        return db;
}

void db_destroy(struct db *db)
{
        struct db_stmt *st, *next;

        if (!db)
                return;
        disconnect(db);
        for (st = db->stmts; st; st = next) {
                next = st->next;
                free(st->sql);
                free(st);
        }
        free(db);
}

struct db_stmt *db_stmt(struct db *db, const char *sql)
{
        struct db_stmt *st = calloc(1, sizeof(*st));

        if (!st || !(st->sql = strdup(sql))) {
                free(st);
                return NULL;
        }
        st->next = db->stmts;
        db->stmts = st;
        return st;
}

int db_stmts(struct db *db, void *base, const struct db_stmt_def *defs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                struct db_stmt **slot = (struct db_stmt **)((char *)base + defs[i].offset);

                if (!(*slot = db_stmt(db, defs[i].sql)))
                        return -1;
        }
        return 0;
}

/* Records the error and, when the connection is gone, drops it so the next call reconnects. */
static enum db_result fail(struct db *db, unsigned int e, const char *msg, char *errstr,
                           size_t errstr_size)
{
        enum db_result r = db_classify(e);
        char w[300];

        if (r != DB_DUPLICATE) /* a deadlock rolls the whole transaction back */
                db->is_txn_partial = true;
        where(db, w, sizeof(w));
        snprintf(errstr, errstr_size, "%s: %s (%u)", w, msg, e);
        if (db_is_outage_errno(e)) {
                db->outage_errno = e;
                snprintf(db->outage_why, sizeof(db->outage_why), "%s", errstr);
        }
        if (r == DB_RETRY &&
            (e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
             e == CR_CONN_HOST_ERROR || e == CR_SERVER_LOST_EXTENDED || e == ER_SERVER_SHUTDOWN ||
             e == CR_COMMANDS_OUT_OF_SYNC))
                disconnect(db);
        return r;
}

static enum db_result ensure_connected(struct db *db, char *errstr, size_t errstr_size)
{
        if (db->connected)
                return DB_OK;
        if (connect_db(db, errstr, errstr_size) == 0)
                return DB_OK;
        /* Not reachable, or refusing us: either way the store's fault, not a statement's. */
        db->outage_errno =
                db->mysql && mysql_errno(db->mysql) ? mysql_errno(db->mysql) : CR_CONNECTION_ERROR;
        snprintf(db->outage_why, sizeof(db->outage_why), "%s", errstr);
        return DB_RETRY;
}

bool db_store_unavailable(const struct db *db, char *why, size_t why_size)
{
        if (!db || !db->outage_errno)
                return false;
        if (why)
                snprintf(why, why_size, "%s", db->outage_why);
        return true;
}

void db_clear_unavailable(struct db *db)
{
        if (db)
                db->outage_errno = 0;
}

static enum db_result prepare(struct db *db, struct db_stmt *st, char *errstr, size_t errstr_size)
{
        enum db_result r = ensure_connected(db, errstr, errstr_size);

        if (r != DB_OK || st->stmt)
                return r;
        if (!(st->stmt = mysql_stmt_init(db->mysql)))
                return fail(db, mysql_errno(db->mysql), mysql_error(db->mysql), errstr,
                            errstr_size);
        if (mysql_stmt_prepare(st->stmt, st->sql, strlen(st->sql)) != 0) {
                unsigned int e = mysql_stmt_errno(st->stmt);
                char msg[512];

                snprintf(msg, sizeof(msg), "prepare \"%.80s\": %s", st->sql,
                         mysql_stmt_error(st->stmt));
                mysql_stmt_close(st->stmt);
                st->stmt = NULL;
                return fail(db, e, msg, errstr, errstr_size);
        }
        return DB_OK;
}

static void bind_params(MYSQL_BIND *b, const struct db_param *p, size_t n, my_bool *nulls)
{
        for (size_t i = 0; i < n; i++) {
                memset(&b[i], 0, sizeof(b[i]));
                nulls[i] = p[i].type == DB_PARAM_NULL;
                b[i].is_null = &nulls[i];
                if (p[i].type == DB_PARAM_I64) {
                        b[i].buffer_type = MYSQL_TYPE_LONGLONG;
                        b[i].buffer = (void *)&p[i].i;
                } else if (p[i].type == DB_PARAM_STR) {
                        b[i].buffer_type = MYSQL_TYPE_STRING;
                        b[i].buffer = (void *)p[i].s;
                        b[i].buffer_length = p[i].len;
                } else {
                        b[i].buffer_type = MYSQL_TYPE_NULL;
                }
        }
}

static enum db_result stmt_fail(struct db *db, struct db_stmt *st, char *errstr, size_t errstr_size)
{
        return fail(db, mysql_stmt_errno(st->stmt), mysql_stmt_error(st->stmt), errstr,
                    errstr_size);
}

#define DB_MAX_PARAMS 64

static enum db_result execute(struct db *db, struct db_stmt *st, const struct db_param *params,
                              size_t n, char *errstr, size_t errstr_size)
{
        MYSQL_BIND b[DB_MAX_PARAMS];
        my_bool nulls[DB_MAX_PARAMS];
        enum db_result r;

        if (n > DB_MAX_PARAMS) {
                snprintf(errstr, errstr_size, "too many parameters (%zu)", n);
                return DB_FATAL;
        }
        if ((r = prepare(db, st, errstr, errstr_size)) != DB_OK)
                return r;
        if (mysql_stmt_param_count(st->stmt) != n) {
                snprintf(errstr, errstr_size, "\"%.80s\" takes %lu parameters, got %zu", st->sql,
                         mysql_stmt_param_count(st->stmt), n);
                return DB_FATAL;
        }
        bind_params(b, params, n, nulls);
        if ((n && mysql_stmt_bind_param(st->stmt, b)) || mysql_stmt_execute(st->stmt))
                return stmt_fail(db, st, errstr, errstr_size);
        return DB_OK;
}

enum db_result db_exec(struct db *db, struct db_stmt *st, const struct db_param *params, size_t n,
                       unsigned long long *affected, unsigned long long *last_id, char *errstr,
                       size_t errstr_size)
{
        enum db_result r = execute(db, st, params, n, errstr, errstr_size);

        if (r != DB_OK)
                return r;
        if (affected)
                *affected = (unsigned long long)mysql_stmt_affected_rows(st->stmt);
        if (last_id)
                *last_id = (unsigned long long)mysql_stmt_insert_id(st->stmt);
        return DB_OK;
}

static void bind_results(MYSQL_BIND *b, struct db_col *cols, size_t ncols, my_bool *nulls,
                         unsigned long *lens)
{
        for (size_t i = 0; i < ncols; i++) {
                memset(&b[i], 0, sizeof(b[i]));
                b[i].is_null = &nulls[i];
                b[i].length = &lens[i];
                if (cols[i].type == DB_PARAM_I64) {
                        b[i].buffer_type = MYSQL_TYPE_LONGLONG;
                        b[i].buffer = &cols[i].i;
                } else {
                        b[i].buffer_type = MYSQL_TYPE_STRING;
                        b[i].buffer = cols[i].s;
                        b[i].buffer_length = cols[i].s_size ? cols[i].s_size - 1 : 0;
                }
        }
}

/* Copies the null flags of a fetched row and NUL-terminates its strings. */
static void finish_row(struct db_col *cols, size_t ncols, const my_bool *nulls,
                       const unsigned long *lens)
{
        for (size_t i = 0; i < ncols; i++) {
                cols[i].is_null = nulls[i];
                if (cols[i].type == DB_PARAM_STR && cols[i].s_size) {
                        size_t l = lens[i] < cols[i].s_size - 1 ? lens[i] : cols[i].s_size - 1;

                        cols[i].s[nulls[i] ? 0 : l] = '\0';
                }
        }
}

enum db_result db_query_row(struct db *db, struct db_stmt *st, const struct db_param *params,
                            size_t n, struct db_col *cols, size_t ncols, bool *found, char *errstr,
                            size_t errstr_size)
{
        MYSQL_BIND b[DB_MAX_PARAMS];
        my_bool nulls[DB_MAX_PARAMS];
        unsigned long lens[DB_MAX_PARAMS];
        enum db_result r;
        int fr;

        *found = false;
        if (ncols > DB_MAX_PARAMS || (r = execute(db, st, params, n, errstr, errstr_size)) != DB_OK)
                return ncols > DB_MAX_PARAMS ? DB_FATAL : r;
        bind_results(b, cols, ncols, nulls, lens);
        if (mysql_stmt_bind_result(st->stmt, b))
                return stmt_fail(db, st, errstr, errstr_size);
        fr = mysql_stmt_fetch(st->stmt);
        if (fr == 1) {
                r = stmt_fail(db, st, errstr, errstr_size);
                if (st->stmt) /* a lost connection has closed it already */
                        mysql_stmt_free_result(st->stmt);
                return r;
        }
        if (fr != MYSQL_NO_DATA) {
                *found = true; /* MYSQL_DATA_TRUNCATED keeps the prefix that fits */
                finish_row(cols, ncols, nulls, lens);
        }
        mysql_stmt_free_result(st->stmt);
        return DB_OK;
}

enum db_result db_query_each(struct db *db, struct db_stmt *st, const struct db_param *params,
                             size_t n, struct db_col *cols, size_t ncols,
                             void (*on_row)(const struct db_col *cols, void *arg), void *arg,
                             char *errstr, size_t errstr_size)
{
        MYSQL_BIND b[DB_MAX_PARAMS];
        my_bool nulls[DB_MAX_PARAMS];
        unsigned long lens[DB_MAX_PARAMS];
        enum db_result r;
        int fr;

        if (ncols > DB_MAX_PARAMS) {
                snprintf(errstr, errstr_size, "too many columns (%zu)", ncols);
                return DB_FATAL;
        }
        if ((r = execute(db, st, params, n, errstr, errstr_size)) != DB_OK)
                return r;
        bind_results(b, cols, ncols, nulls, lens);
        /* Stored client-side: the server is free while on_row works. */
        if (mysql_stmt_bind_result(st->stmt, b) || mysql_stmt_store_result(st->stmt))
                return stmt_fail(db, st, errstr, errstr_size);
        while ((fr = mysql_stmt_fetch(st->stmt)) == 0 || fr == MYSQL_DATA_TRUNCATED) {
                finish_row(cols, ncols, nulls, lens);
                on_row(cols, arg);
        }
        if (fr == 1)
                r = stmt_fail(db, st, errstr, errstr_size);
        if (st->stmt) /* a lost connection has closed it already */
                mysql_stmt_free_result(st->stmt);
        return r;
}

/* Whether sql begins with verb (a whole word, any case). */
static bool is_verb(const char *sql, const char *verb)
{
        size_t len = strlen(verb);

        return strncasecmp(sql, verb, len) == 0 && !isalpha((unsigned char)sql[len]);
}

/* Follows the transaction control db_sql() ran (see db_txn()). */
static void track_txn(struct db *db, const char *sql)
{
        if (is_verb(sql, "START") || is_verb(sql, "BEGIN")) {
                /* an open one was committed implicitly: left unknown */
                db->txn = ++db->txn_serial;
                db->is_txn_partial = false;
                db->committed[db->txn % DB_TXN_KEPT] = 0;
        } else if (is_verb(sql, "COMMIT")) {
                if (db->txn && !db->is_txn_partial)
                        db->committed[db->txn % DB_TXN_KEPT] = db->txn;
                db->txn = 0;
        } else if (is_verb(sql, "ROLLBACK")) {
                const char *rest = sql + strlen("ROLLBACK");

                if (is_verb(rest + strspn(rest, " "), "TO"))
                        db->is_txn_partial = true; /* to a savepoint: the rest goes on */
                else
                        db->txn = 0;
        }
}

uint64_t db_txn(const struct db *db)
{
        return db->txn;
}

bool db_txn_committed(const struct db *db, uint64_t txn)
{
        return txn && db->committed[txn % DB_TXN_KEPT] == txn;
}

enum db_result db_sql(struct db *db, const char *sql, unsigned long long *affected, char *errstr,
                      size_t errstr_size)
{
        enum db_result r = ensure_connected(db, errstr, errstr_size);

        if (r != DB_OK)
                return r;
        if (mysql_real_query(db->mysql, sql, strlen(sql)) != 0) {
                if (is_verb(sql, "COMMIT") || is_verb(sql, "ROLLBACK"))
                        db->txn = 0; /* its outcome is not known */
                return fail(db, mysql_errno(db->mysql), mysql_error(db->mysql), errstr,
                            errstr_size);
        }
        track_txn(db, sql);
        MYSQL_RES *res = mysql_store_result(db->mysql);

        if (res)
                mysql_free_result(res);
        if (affected)
                *affected = (unsigned long long)mysql_affected_rows(db->mysql);
        return DB_OK;
}

/* ------------------------------------------------------------------ text statements */

void db_text_reset(struct db_text *t)
{
        t->len = 0;
        t->is_oom = false;
        if (t->s)
                t->s[0] = '\0';
}

void db_text_free(struct db_text *t)
{
        free(t->s);
        *t = (struct db_text){0};
}

/* Makes room for `more` bytes and the NUL; false (and is_oom) when out of memory. */
static bool text_grow(struct db_text *t, size_t more)
{
        size_t cap = t->cap ? t->cap : 1024;
        char *s;

        if (t->is_oom)
                return false;
        if (t->len + more + 1 <= t->cap)
                return true;
        while (cap < t->len + more + 1)
                cap *= 2;
        if (!(s = realloc(t->s, cap))) {
                t->is_oom = true;
                return false;
        }
        t->s = s;
        t->cap = cap;
        return true;
}

/* Formats straight into the room left, a second pass only when the piece did not fit; a
 * piece without '%' is copied (a set-based statement adds thousands of ", " per batch). */
void db_text_add(struct db_text *t, const char *fmt, ...)
{
        va_list ap;
        size_t room;
        int n;

        if (!strchr(fmt, '%')) {
                size_t len = strlen(fmt);

                if (!text_grow(t, len))
                        return;
                memcpy(t->s + t->len, fmt, len + 1);
                t->len += len;
                return;
        }
        if (!text_grow(t, 64))
                return;
        room = t->cap - t->len;
        va_start(ap, fmt);
        n = vsnprintf(t->s + t->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
                t->is_oom = true;
                return;
        }
        if ((size_t)n >= room) {
                if (!text_grow(t, (size_t)n))
                        return;
                va_start(ap, fmt);
                vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
                va_end(ap);
        }
        t->len += (size_t)n;
}

/* Printable ASCII without quotes or a backslash: what every escape leaves as it is. */
static bool needs_no_escape(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 || c > 0x7e || c == '\'' || c == '"' || c == '\\')
                        return false;
        }
        return true;
}

void db_text_str(struct db *db, struct db_text *t, const char *s)
{
        size_t len;

        if (!s) {
                db_text_add(t, "NULL");
                return;
        }
        len = strlen(s);
        if (!text_grow(t, 2 * len + 2))
                return;
        t->s[t->len++] = '\'';
        if (needs_no_escape(s, len)) { /* ids, genders, hex: copied, not scanned by charset */
                memcpy(t->s + t->len, s, len);
                t->len += len;
        } else {
                db_escape(db, t->s + t->len, s, len);
                t->len += strlen(t->s + t->len);
        }
        t->s[t->len++] = '\'';
        t->s[t->len] = '\0';
}

/* Printed without vsnprintf: a batch statement carries several numbers per record. */
void db_text_i64(struct db_text *t, long long v)
{
        if (text_grow(t, TEXT_LL_MAX))
                t->len += text_int(t->s + t->len, TEXT_LL_MAX, v);
}

void db_text_from_ms(struct db_text *t, long long ms)
{
        db_text_add(t, "FROM_UNIXTIME(");
        db_text_i64(t, ms);
        db_text_add(t, " / 1000)");
}

/* Sends t; the caller reads (or frees) the result, if any. */
static enum db_result text_send(struct db *db, const struct db_text *t, char *errstr,
                                size_t errstr_size)
{
        enum db_result r;

        if (t->is_oom || !t->s) {
                snprintf(errstr, errstr_size, "out of memory building a statement");
                return DB_FATAL;
        }
        if ((r = ensure_connected(db, errstr, errstr_size)) != DB_OK)
                return r;
        if (mysql_real_query(db->mysql, t->s, t->len) != 0)
                return fail(db, mysql_errno(db->mysql), mysql_error(db->mysql), errstr,
                            errstr_size);
        return DB_OK;
}

enum db_result db_text_exec(struct db *db, const struct db_text *t, unsigned long long *affected,
                            char *errstr, size_t errstr_size)
{
        enum db_result r = text_send(db, t, errstr, errstr_size);
        MYSQL_RES *res;

        if (r != DB_OK)
                return r;
        if ((res = mysql_store_result(db->mysql)))
                mysql_free_result(res);
        if (affected)
                *affected = (unsigned long long)mysql_affected_rows(db->mysql);
        return DB_OK;
}

/* Copies one text-protocol row into cols (strings truncated to their buffers). */
static void text_row(struct db_col *cols, size_t ncols, MYSQL_ROW row, const unsigned long *lens)
{
        for (size_t i = 0; i < ncols; i++) {
                cols[i].is_null = row[i] == NULL;
                if (cols[i].type == DB_PARAM_I64) {
                        cols[i].i = row[i] ? strtoll(row[i], NULL, 10) : 0;
                } else if (cols[i].s_size) {
                        size_t l = row[i] && lens[i] < cols[i].s_size - 1 ? lens[i]
                                   : row[i]                               ? cols[i].s_size - 1
                                                                          : 0;

                        if (l)
                                memcpy(cols[i].s, row[i], l);
                        cols[i].s[l] = '\0';
                }
        }
}

enum db_result db_text_query(struct db *db, const struct db_text *t, struct db_col *cols,
                             size_t ncols, void (*on_row)(const struct db_col *cols, void *arg),
                             void *arg, char *errstr, size_t errstr_size)
{
        enum db_result r = text_send(db, t, errstr, errstr_size);
        MYSQL_RES *res;
        MYSQL_ROW row;

        if (r != DB_OK)
                return r;
        /* Stored client-side, as db_query_each(): the server is free while on_row works. */
        if (!(res = mysql_store_result(db->mysql))) {
                if (mysql_errno(db->mysql))
                        return fail(db, mysql_errno(db->mysql), mysql_error(db->mysql), errstr,
                                    errstr_size);
                snprintf(errstr, errstr_size, "\"%.80s\" returned no result set", t->s);
                return DB_FATAL;
        }
        if (mysql_num_fields(res) < ncols) {
                snprintf(errstr, errstr_size, "\"%.80s\" returned %u columns, %zu expected", t->s,
                         mysql_num_fields(res), ncols);
                mysql_free_result(res);
                return DB_FATAL;
        }
        while ((row = mysql_fetch_row(res))) {
                text_row(cols, ncols, row, mysql_fetch_lengths(res));
                on_row(cols, arg);
        }
        mysql_free_result(res);
        return DB_OK;
}

enum db_result db_begin(struct db *db, char *errstr, size_t errstr_size)
{
        return db_sql(db, "START TRANSACTION", NULL, errstr, errstr_size);
}

enum db_result db_commit(struct db *db, char *errstr, size_t errstr_size)
{
        return db_sql(db, "COMMIT", NULL, errstr, errstr_size);
}

void db_rollback(struct db *db)
{
        char err[256];

        if (db->connected && db_sql(db, "ROLLBACK", NULL, err, sizeof(err)) != DB_OK)
                log_warn(NULL, "rollback: %s", err);
}

unsigned long long db_last_insert_id(const struct db *db)
{
        return db->mysql && db->connected ? (unsigned long long)mysql_insert_id(db->mysql) : 0;
}

void db_escape(struct db *db, char *out, const char *s, size_t len)
{
        if (db->mysql)
                mysql_real_escape_string(db->mysql, out, s, (unsigned long)len);
        else
                mysql_escape_string(out, s, (unsigned long)len);
}

enum db_result db_ping(struct db *db, char *errstr, size_t errstr_size)
{
        if (ensure_connected(db, errstr, errstr_size) != DB_OK)
                return DB_RETRY;
        if (mysql_ping(db->mysql) != 0) {
                fail(db, mysql_errno(db->mysql), mysql_error(db->mysql), errstr, errstr_size);
                disconnect(db);
                return DB_RETRY;
        }
        return DB_OK;
}
