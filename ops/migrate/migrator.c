/*
 * migrator.c: applies numbered migrations to one MariaDB database, once each, in order,
 * recording each in schema_migrations with the SHA-256 of its file.
 *
 * A file is sent whole with CLIENT_MULTI_STATEMENTS, so the server splits it: plain SQL with
 * ';' between statements; no client-side DELIMITER lines. MariaDB DDL commits implicitly, so
 * a file that fails halfway leaves its earlier statements applied and is not recorded: write
 * migrations that can run again (IF NOT EXISTS) or undo them by hand. The checksum is
 * computed by the server (SHA2()) so that the tool needs only libmariadb.
 */
#include "migrator.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>
#include <mysqld_error.h>

#include "clock.h"
#include "log.h"

#define LOCK_NAME "liveflow.migrate"

struct applied {
        int version;
        char name[256];
        char checksum[65];
        char applied_at[32];
};

struct migrator {
        MYSQL *mysql;
        char where[512]; /* "host:port/db" or "socket/db", for messages */
        char database[64];
        bool has_lock;
        int applied_cnt;
        struct applied *applied; /* rows of schema_migrations, by version */
};

static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version INT NOT NULL PRIMARY KEY,"
                                       " name VARCHAR(255) NOT NULL,"
                                       " checksum CHAR(64) NOT NULL,"
                                       " applied_at DATETIME(3) NOT NULL"
                                       ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/* ------------------------------------------------------------------ helpers */

static int fail_mysql(const struct migrator *mg, const char *what, char *errstr, size_t errstr_size)
{
        snprintf(errstr, errstr_size, "mysql %s: %s: %s", mg->where, what,
                 mg->mysql ? mysql_error(mg->mysql) : "out of memory");
        return -1;
}

/* Runs one statement whose rows, if any, do not matter. */
static int exec(struct migrator *mg, const char *sql, const char *what, char *errstr,
                size_t errstr_size)
{
        MYSQL_RES *res;

        if (mysql_query(mg->mysql, sql) != 0)
                return fail_mysql(mg, what, errstr, errstr_size);
        if ((res = mysql_store_result(mg->mysql)))
                mysql_free_result(res);
        return 0;
}

/* Runs a one-row, one-column query and copies the value to out ("" and *is_null on NULL). */
static int query_scalar(struct migrator *mg, const char *sql, size_t sql_len, const char *what,
                        char *out, size_t out_size, bool *is_null, char *errstr, size_t errstr_size)
{
        MYSQL_RES *res;
        MYSQL_ROW row;

        if (mysql_real_query(mg->mysql, sql, sql_len) != 0 ||
            !(res = mysql_store_result(mg->mysql)))
                return fail_mysql(mg, what, errstr, errstr_size);
        if (!(row = mysql_fetch_row(res))) {
                mysql_free_result(res);
                snprintf(errstr, errstr_size, "mysql %s: %s: no row", mg->where, what);
                return -1;
        }
        *is_null = row[0] == NULL;
        snprintf(out, out_size, "%s", row[0] ? row[0] : "");
        mysql_free_result(res);
        return 0;
}

/* The lowercase hex SHA-256 of buf, computed by the server; _binary keeps the bytes as-is. */
static int checksum(struct migrator *mg, const char *buf, size_t len, char hex[65], char *errstr,
                    size_t errstr_size)
{
        static const char head[] = "SELECT SHA2(_binary'", tail[] = "', 256)";
        char *sql = malloc(sizeof(head) + 2 * len + sizeof(tail));
        size_t n = sizeof(head) - 1;
        unsigned long escaped;
        bool is_null;
        int rc;

        if (!sql) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        memcpy(sql, head, n);
        escaped = mysql_real_escape_string(mg->mysql, sql + n, buf, (unsigned long)len);
        if (escaped == (unsigned long)-1) { /* only under sql_mode NO_BACKSLASH_ESCAPES */
                free(sql);
                return fail_mysql(mg, "escaping a migration", errstr, errstr_size);
        }
        n += escaped;
        memcpy(sql + n, tail, sizeof(tail));
        n += sizeof(tail) - 1;
        rc = query_scalar(mg, sql, n, "SHA2()", hex, 65, &is_null, errstr, errstr_size);
        free(sql);
        if (rc == 0 && (is_null || strlen(hex) != 64)) {
                snprintf(errstr, errstr_size, "mysql %s: SHA2() returned no checksum", mg->where);
                rc = -1;
        }
        return rc;
}

static int file_checksum(struct migrator *mg, const struct migration_dir *md,
                         const struct migration *m, char hex[65], char *errstr, size_t errstr_size)
{
        size_t len;
        char *buf = migration_dir_read(md, m, &len, errstr, errstr_size);
        int rc;

        if (!buf)
                return -1;
        rc = checksum(mg, buf, len, hex, errstr, errstr_size);
        free(buf);
        return rc;
}

/* ------------------------------------------------------------------ schema_migrations */

static int load_applied(struct migrator *mg, char *errstr, size_t errstr_size)
{
        MYSQL_RES *res;
        MYSQL_ROW row;

        free(mg->applied);
        mg->applied = NULL;
        mg->applied_cnt = 0;
        if (mysql_query(mg->mysql, "SELECT version, name, checksum, applied_at"
                                   " FROM schema_migrations ORDER BY version") != 0) {
                if (mysql_errno(mg->mysql) == ER_NO_SUCH_TABLE)
                        return 0; /* --status on a fresh database: nothing applied */
                return fail_mysql(mg, "reading schema_migrations", errstr, errstr_size);
        }
        if (!(res = mysql_store_result(mg->mysql)))
                return fail_mysql(mg, "reading schema_migrations", errstr, errstr_size);
        mg->applied = calloc(mysql_num_rows(res) + 1, sizeof(*mg->applied));
        while (mg->applied && (row = mysql_fetch_row(res))) {
                struct applied *a = &mg->applied[mg->applied_cnt++];

                a->version = atoi(row[0]);
                snprintf(a->name, sizeof(a->name), "%s", row[1] ? row[1] : "");
                snprintf(a->checksum, sizeof(a->checksum), "%s", row[2] ? row[2] : "");
                snprintf(a->applied_at, sizeof(a->applied_at), "%s", row[3] ? row[3] : "");
        }
        mysql_free_result(res);
        if (!mg->applied) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        return 0;
}

static const struct applied *find_applied(const struct migrator *mg, int version)
{
        for (int i = 0; i < mg->applied_cnt; i++)
                if (mg->applied[i].version == version)
                        return &mg->applied[i];
        return NULL;
}

static bool has_file(const struct migration_dir *md, int version)
{
        for (int i = 0; i < md->cnt; i++)
                if (md->migrations[i].version == version)
                        return true;
        return false;
}

/* The name is safe to quote as it is: migration_dir accepts only [A-Za-z0-9_.-]. */
static int record(struct migrator *mg, const struct migration *m, const char *hex, char *errstr,
                  size_t errstr_size)
{
        char sql[512];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                 " VALUES (%d, '%s', '%s', NOW(3))",
                 m->version, m->name, hex);
        return exec(mg, sql, "recording the migration", errstr, errstr_size);
}

/* ------------------------------------------------------------------ applying */

/*
 * Sends a whole file and reads every result, because the connection takes no other query
 * until all are read; counts statements so that an error names the one that failed.
 */
static int exec_file(struct migrator *mg, const struct migration_dir *md, const struct migration *m,
                     const char *sql, size_t len, char *errstr, size_t errstr_size)
{
        int stmt_no = 1;
        int rc = mysql_real_query(mg->mysql, sql, (unsigned long)len);

        while (rc == 0) {
                MYSQL_RES *res = mysql_store_result(mg->mysql);

                if (res) {
                        mysql_free_result(res);
                } else if (mysql_field_count(mg->mysql) != 0) {
                        rc = 1;
                        break;
                }
                if ((rc = mysql_next_result(mg->mysql)) == -1)
                        return 0;
                stmt_no++;
        }
        /* Only a file of nothing but comments and blanks makes the first "statement" empty;
         * an empty statement later (";;") is a syntax error. */
        if (stmt_no == 1 && mysql_errno(mg->mysql) == ER_EMPTY_QUERY) {
                log_warn(NULL, "%s/%s: holds no statement", md->path, m->name);
                return 0;
        }
        snprintf(errstr, errstr_size,
                 "%s/%s: statement %d failed: %s (error %u); it is not recorded, and any "
                 "statements before it stay applied (DDL is not transactional)",
                 md->path, m->name, stmt_no, mysql_error(mg->mysql), mysql_errno(mg->mysql));
        return -1;
}

static int apply_one(struct migrator *mg, const struct migration_dir *md, const struct migration *m,
                     char *errstr, size_t errstr_size)
{
        char hex[65];
        size_t len;
        long long started_ms = clock_mono_ms();
        char *buf = migration_dir_read(md, m, &len, errstr, errstr_size);
        int rc;

        if (!buf)
                return -1;
        rc = checksum(mg, buf, len, hex, errstr, errstr_size);
        if (rc == 0)
                rc = exec_file(mg, md, m, buf, len, errstr, errstr_size);
        free(buf);
        /* A migration may USE another database; schema_migrations lives in ours. */
        if (rc == 0 && mysql_select_db(mg->mysql, mg->database) != 0)
                rc = fail_mysql(mg, "selecting the database again", errstr, errstr_size);
        if (rc == 0)
                rc = record(mg, m, hex, errstr, errstr_size);
        if (rc == 0)
                log_info(NULL, "applied %s/%s in %lld ms", md->path, m->name,
                         clock_mono_ms() - started_ms);
        return rc;
}

/* Refuses to go on when a file that was applied has been edited since. */
static int verify_applied(struct migrator *mg, const struct migration_dir *md, char *errstr,
                          size_t errstr_size)
{
        char hex[65];

        for (int i = 0; i < md->cnt; i++) {
                const struct migration *m = &md->migrations[i];
                const struct applied *a = find_applied(mg, m->version);

                if (!a)
                        continue;
                if (file_checksum(mg, md, m, hex, errstr, errstr_size) == -1)
                        return -1;
                if (strcmp(hex, a->checksum) != 0) {
                        snprintf(errstr, errstr_size,
                                 "%s/%s: changed after it was applied on %s (checksum %.12s... "
                                 "recorded, %.12s... now); add a new migration instead",
                                 md->path, m->name, a->applied_at, a->checksum, hex);
                        return -1;
                }
        }
        return 0;
}

int migrator_apply(struct migrator *mg, const struct migration_dir *md, char *errstr,
                   size_t errstr_size)
{
        int done = 0;

        if (exec(mg, create_table_sql, "creating schema_migrations", errstr, errstr_size) == -1 ||
            load_applied(mg, errstr, errstr_size) == -1 ||
            verify_applied(mg, md, errstr, errstr_size) == -1)
                return -1;
        for (int i = 0; i < md->cnt; i++) {
                if (find_applied(mg, md->migrations[i].version))
                        continue;
                if (apply_one(mg, md, &md->migrations[i], errstr, errstr_size) == -1)
                        return -1;
                done++;
        }
        for (int i = 0; i < mg->applied_cnt; i++)
                if (!has_file(md, mg->applied[i].version))
                        log_warn(NULL, "%s (version %d) was applied but its file is gone",
                                 mg->applied[i].name, mg->applied[i].version);
        log_info(NULL, "%s: %d applied now, %d already applied, %d files in %s", mg->where, done,
                 mg->applied_cnt, md->cnt, md->path);
        return 0;
}

/* ------------------------------------------------------------------ status */

static int status_line(struct migrator *mg, const struct migration_dir *md,
                       const struct migration *m, FILE *out, bool *is_changed, char *errstr,
                       size_t errstr_size)
{
        const struct applied *a = find_applied(mg, m->version);
        char hex[65];

        *is_changed = false;
        if (!a) {
                fprintf(out, "%-8d %-8s %s\n", m->version, "pending", m->name);
                return 0;
        }
        if (file_checksum(mg, md, m, hex, errstr, errstr_size) == -1)
                return -1;
        *is_changed = strcmp(hex, a->checksum) != 0;
        fprintf(out, "%-8d %-8s %-40s %s\n", m->version, *is_changed ? "CHANGED" : "applied",
                m->name, a->applied_at);
        return 0;
}

int migrator_status(struct migrator *mg, const struct migration_dir *md, FILE *out, char *errstr,
                    size_t errstr_size)
{
        int changed = 0;
        bool is_changed;

        if (load_applied(mg, errstr, errstr_size) == -1)
                return -1;
        fprintf(out, "%-8s %-8s %-40s %s\n", "version", "state", "file", "applied_at");
        for (int i = 0; i < md->cnt; i++) {
                if (status_line(mg, md, &md->migrations[i], out, &is_changed, errstr,
                                errstr_size) == -1)
                        return -1;
                changed += is_changed;
        }
        for (int i = 0; i < mg->applied_cnt; i++)
                if (!has_file(md, mg->applied[i].version))
                        fprintf(out, "%-8d %-8s %-40s %s\n", mg->applied[i].version, "missing",
                                mg->applied[i].name, mg->applied[i].applied_at);
        if (changed) {
                snprintf(errstr, errstr_size,
                         "%d applied migration(s) changed since; add new migrations instead",
                         changed);
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------ connection */

/* `name` with backquotes doubled, as MariaDB quotes identifiers. */
static void quote_identifier(char *out, size_t out_size, const char *name)
{
        size_t o = 0;

        if (out_size < 3)
                return;
        out[o++] = '`';
        for (; *name && o + 3 < out_size; name++) {
                if (*name == '`')
                        out[o++] = '`';
                out[o++] = *name;
        }
        out[o++] = '`';
        out[o] = '\0';
}

static int ensure_database(struct migrator *mg, char *errstr, size_t errstr_size)
{
        char quoted[160], sql[256];

        quote_identifier(quoted, sizeof(quoted), mg->database);
        snprintf(sql, sizeof(sql),
                 "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4 COLLATE "
                 "utf8mb4_unicode_ci",
                 quoted);
        if (exec(mg, sql, "CREATE DATABASE", errstr, errstr_size) == -1)
                return -1;
        if (mysql_select_db(mg->mysql, mg->database) != 0)
                return fail_mysql(mg, "selecting the database", errstr, errstr_size);
        return 0;
}

static void describe(struct migrator *mg, const struct mysql_url *url)
{
        if (url->socket[0])
                snprintf(mg->where, sizeof(mg->where), "%s/%s", url->socket, url->database);
        else
                snprintf(mg->where, sizeof(mg->where), "%s:%u/%s", url->host, url->port,
                         url->database);
        snprintf(mg->database, sizeof(mg->database), "%s", url->database);
}

static int connect_server(struct migrator *mg, const struct mysql_url *url, bool create_database,
                          char *errstr, size_t errstr_size)
{
        unsigned int timeout_s = 10;
        bool has_socket = url->socket[0] != '\0';

        if (!(mg->mysql = mysql_init(NULL)))
                return fail_mysql(mg, "mysql_init", errstr, errstr_size);
        mysql_options(mg->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        mysql_options(mg->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
        if (mysql_real_connect(mg->mysql, has_socket ? NULL : url->host, url->user, url->password,
                               create_database ? NULL : url->database, url->port,
                               has_socket ? url->socket : NULL, CLIENT_MULTI_STATEMENTS))
                return 0;
        fail_mysql(mg, "connect", errstr, errstr_size);
        if (mysql_errno(mg->mysql) == ER_BAD_DB_ERROR) {
                size_t n = strlen(errstr);

                snprintf(errstr + n, errstr_size - n, " (--create-database creates it)");
        }
        return -1;
}

struct migrator *migrator_new(const struct mysql_url *url, bool create_database, char *errstr,
                              size_t errstr_size)
{
        struct migrator *mg = calloc(1, sizeof(*mg));

        if (!mg) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        describe(mg, url);
        if (connect_server(mg, url, create_database, errstr, errstr_size) == -1)
                goto fail;
        if (create_database && ensure_database(mg, errstr, errstr_size) == -1)
                goto fail;
        return mg;

fail:
        migrator_destroy(mg);
        return NULL;
}

int migrator_lock(struct migrator *mg, int timeout_s, char *errstr, size_t errstr_size)
{
        char sql[128], got[8];
        bool is_null;
        int n = snprintf(sql, sizeof(sql), "SELECT GET_LOCK('" LOCK_NAME "', %d)", timeout_s);

        if (query_scalar(mg, sql, (size_t)n, "GET_LOCK", got, sizeof(got), &is_null, errstr,
                         errstr_size) == -1)
                return -1;
        if (is_null || strcmp(got, "1") != 0) {
                snprintf(errstr, errstr_size,
                         "mysql %s: another liveflow-migrate held lock '" LOCK_NAME "' for %d s",
                         mg->where, timeout_s);
                return -1;
        }
        mg->has_lock = true;
        return 0;
}

void migrator_destroy(struct migrator *mg)
{
        char errstr[1024];

        if (!mg)
                return;
        /* Closing the connection would release it too; releasing says we are done. */
        if (mg->has_lock && exec(mg, "SELECT RELEASE_LOCK('" LOCK_NAME "')", "RELEASE_LOCK", errstr,
                                 sizeof(errstr)) == -1)
                log_warn(NULL, "%s", errstr);
        if (mg->mysql)
                mysql_close(mg->mysql);
        free(mg->applied);
        free(mg);
}
