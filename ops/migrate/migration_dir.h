/* migration_dir.h: the numbered migration files of a directory (sql/NNN_name.sql). */
#ifndef LIVEFLOW_MIGRATION_DIR_H
#define LIVEFLOW_MIGRATION_DIR_H

#include <stddef.h>

struct migration {
        int version;    /* the leading number of the file name */
        char name[256]; /* the file name, e.g. "001_init.sql" */
};

struct migration_dir {
        const char *path;              /* borrowed from the caller */
        int cnt;
        struct migration *migrations;  /* sorted by version, owned */
};

/**
 * @brief Lists dir's files named <digits>_<name>.sql, sorted by number. Other .sql files
 *        are warned about and ignored; two files with one number are an error.
 * @returns 0 with md filled (migration_dir_fini() frees it), or -1 with errstr set.
 * dir must outlive md.
 */
__attribute__((warn_unused_result)) int migration_dir_init(struct migration_dir *md,
                                                           const char *dir, char *errstr,
                                                           size_t errstr_size);

/**
 * @brief Reads one migration file whole.
 * @returns a NUL-terminated malloc'd buffer (caller frees) with its length in *len, or
 *          NULL with errstr set.
 */
char *migration_dir_read(const struct migration_dir *md, const struct migration *m,
                         size_t *len, char *errstr, size_t errstr_size);

/** @brief Frees what migration_dir_init() allocated; safe on a zeroed struct. */
void migration_dir_fini(struct migration_dir *md);

#endif
