/* migration_dir.c: finds, orders and reads the numbered migration files of a directory. */
#include "migration_dir.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* "<1..9 digits>_<[A-Za-z0-9_.-]+>.sql"; fills *version. */
static bool parse_name(const char *name, int *version)
{
        size_t digits = strspn(name, "0123456789");
        size_t len = strlen(name);
        const char *rest = name + digits;

        if (digits == 0 || digits > 9 || rest[0] != '_' || len < digits + 6 ||
            strcmp(name + len - 4, ".sql") != 0)
                return false;
        for (const char *p = rest + 1; p < name + len - 4; p++)
                if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
                        return false;
        *version = atoi(name);
        return true;
}

static bool has_sql_suffix(const char *name)
{
        size_t len = strlen(name);

        return len >= 4 && strcmp(name + len - 4, ".sql") == 0;
}

static int by_version(const void *a, const void *b)
{
        const struct migration *x = a, *y = b;

        return (x->version > y->version) - (x->version < y->version);
}

static int append(struct migration_dir *md, int version, const char *name, char *errstr,
                  size_t errstr_size)
{
        struct migration *grown;

        if (strlen(name) >= sizeof(md->migrations[0].name)) {
                snprintf(errstr, errstr_size, "%s/%s: file name too long", md->path, name);
                return -1;
        }
        if (!(grown = realloc(md->migrations, (size_t)(md->cnt + 1) * sizeof(*grown)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        md->migrations = grown;
        md->migrations[md->cnt].version = version;
        snprintf(md->migrations[md->cnt].name, sizeof(md->migrations[0].name), "%s", name);
        md->cnt++;
        return 0;
}

static int scan(struct migration_dir *md, DIR *dir, char *errstr, size_t errstr_size)
{
        struct dirent *de;
        int version;

        while ((de = readdir(dir))) {
                if (parse_name(de->d_name, &version)) {
                        if (append(md, version, de->d_name, errstr, errstr_size) == -1)
                                return -1;
                } else if (has_sql_suffix(de->d_name)) {
                        log_warn(NULL, "%s/%s: ignored, not named NNN_name.sql", md->path,
                                 de->d_name);
                }
        }
        return 0;
}

static int check_unique(const struct migration_dir *md, char *errstr, size_t errstr_size)
{
        for (int i = 1; i < md->cnt; i++) {
                if (md->migrations[i].version == md->migrations[i - 1].version) {
                        snprintf(errstr, errstr_size, "%s: %s and %s share version %d", md->path,
                                 md->migrations[i - 1].name, md->migrations[i].name,
                                 md->migrations[i].version);
                        return -1;
                }
        }
        return 0;
}

int migration_dir_init(struct migration_dir *md, const char *dir, char *errstr, size_t errstr_size)
{
        DIR *d;
        int rc;

        memset(md, 0, sizeof(*md));
        md->path = dir;
        if (!(d = opendir(dir))) {
                snprintf(errstr, errstr_size, "%s: %s", dir, strerror(errno));
                return -1;
        }
        rc = scan(md, d, errstr, errstr_size);
        closedir(d);
        if (rc == 0 && md->cnt > 1) {
                qsort(md->migrations, (size_t)md->cnt, sizeof(md->migrations[0]), by_version);
                rc = check_unique(md, errstr, errstr_size);
        }
        if (rc == -1)
                migration_dir_fini(md);
        return rc;
}

char *migration_dir_read(const struct migration_dir *md, const struct migration *m, size_t *len,
                         char *errstr, size_t errstr_size)
{
        char path[4096];
        char *buf = NULL;
        FILE *fp;
        long size;

        snprintf(path, sizeof(path), "%s/%s", md->path, m->name);
        errno = 0;
        if (!(fp = fopen(path, "rb")))
                goto fail;
        if (fseek(fp, 0, SEEK_END) == -1 || (size = ftell(fp)) == -1 ||
            fseek(fp, 0, SEEK_SET) == -1)
                goto fail;
        if (!(buf = malloc((size_t)size + 1)))
                goto fail;
        if (fread(buf, 1, (size_t)size, fp) != (size_t)size)
                goto fail;
        buf[size] = '\0';
        *len = (size_t)size;
        fclose(fp);
        return buf;

fail:
        snprintf(errstr, errstr_size, "%s: %s", path, errno ? strerror(errno) : "short read");
        free(buf);
        if (fp)
                fclose(fp);
        return NULL;
}

void migration_dir_fini(struct migration_dir *md)
{
        free(md->migrations);
        md->migrations = NULL;
        md->cnt = 0;
}
