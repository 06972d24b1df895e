/*
 * spool.c: the durable local spool (see spool.h). The file is a sequence of records:
 *
 *     "LFS1" | body length (u32 LE) | first 8 bytes of SHA-256(body) | body
 *
 * and a body is seven fields (topic, key, trace_id, event_type, vendor, event_id, value),
 * each a u32 LE length (0xffffffff for NULL) and its bytes. A record whose header or checksum
 * does not hold at the end of the file is a torn append and is cut off at open.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define MAGIC       "LFS1"
#define HEADER_SIZE 16 /* magic, length, checksum */
#define FIELDS      7
#define NULL_LEN    0xffffffffu

struct spool {
        pthread_mutex_t lock;
        char path[4096], tmp_path[4096];
        int fd;
        long long max_bytes;
        long long size; /* bytes in the file */
        size_t pending;
};

static void put_u32(unsigned char *p, uint32_t v)
{
        p[0] = (unsigned char)v;
        p[1] = (unsigned char)(v >> 8);
        p[2] = (unsigned char)(v >> 16);
        p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void checksum(const unsigned char *body, size_t len, unsigned char out[8])
{
        unsigned char digest[SHA256_DIGEST_LENGTH];

        SHA256(body, len, digest);
        memcpy(out, digest, 8);
}

/* The record's fields in file order. */
static void fields_of(const struct webhook_event *rec, const void *ptrs[FIELDS],
                      size_t lens[FIELDS])
{
        const char *strs[FIELDS - 1] = {rec->topic,      rec->key,    rec->trace_id,
                                        rec->event_type, rec->vendor, rec->event_id};

        for (int i = 0; i < FIELDS - 1; i++) {
                ptrs[i] = strs[i];
                lens[i] = strs[i] ? strlen(strs[i]) : 0;
        }
        ptrs[FIELDS - 1] = rec->value ? rec->value : "";
        lens[FIELDS - 1] = rec->value_len;
}

/* Encodes rec as one whole record; *out is malloc'd. */
static int encode(const struct webhook_event *rec, unsigned char **out, size_t *out_len)
{
        const void *ptrs[FIELDS];
        size_t lens[FIELDS], body_len = 0, off = HEADER_SIZE;
        unsigned char *buf;

        fields_of(rec, ptrs, lens);
        for (int i = 0; i < FIELDS; i++) {
                if (lens[i] >= NULL_LEN)
                        return -1;
                body_len += 4 + lens[i];
        }
        if (body_len > UINT32_MAX || !(buf = malloc(HEADER_SIZE + body_len)))
                return -1;
        for (int i = 0; i < FIELDS; i++) {
                put_u32(buf + off, ptrs[i] ? (uint32_t)lens[i] : NULL_LEN);
                memcpy(buf + off + 4, ptrs[i] ? ptrs[i] : "", lens[i]);
                off += 4 + lens[i];
        }
        memcpy(buf, MAGIC, 4);
        put_u32(buf + 4, (uint32_t)body_len);
        checksum(buf + HEADER_SIZE, body_len, buf + 8);
        *out = buf;
        *out_len = HEADER_SIZE + body_len;
        return 0;
}

/*
 * Decodes the record at data[0..len) into rec (its strings are copied into strs, one
 * allocation). @returns the record's size, 0 when the bytes are not a whole valid record.
 */
static size_t decode(const unsigned char *data, size_t len, struct webhook_event *rec, char **strs)
{
        const char *ptrs[FIELDS];
        size_t lens[FIELDS], body_len, off = HEADER_SIZE, text_len = 0;
        unsigned char sum[8];
        char *text;

        if (len < HEADER_SIZE || memcmp(data, MAGIC, 4) != 0)
                return 0;
        body_len = get_u32(data + 4);
        if (body_len > len - HEADER_SIZE)
                return 0;
        checksum(data + HEADER_SIZE, body_len, sum);
        if (memcmp(sum, data + 8, 8) != 0)
                return 0;
        for (int i = 0; i < FIELDS; i++) {
                uint32_t n;

                if (off + 4 > HEADER_SIZE + body_len)
                        return 0;
                n = get_u32(data + off);
                off += 4;
                ptrs[i] = n == NULL_LEN ? NULL : (const char *)data + off;
                lens[i] = n == NULL_LEN ? 0 : n;
                if (lens[i] > HEADER_SIZE + body_len - off)
                        return 0;
                off += lens[i];
                text_len += lens[i] + 1;
        }
        if (off != HEADER_SIZE + body_len || !(text = malloc(text_len)))
                return 0;
        /* The event id is the event's own array; NULL stands for it in the file order. */
        const char **dst[FIELDS - 1] = {&rec->topic,      &rec->key,    &rec->trace_id,
                                        &rec->event_type, &rec->vendor, NULL};
        size_t at = 0;

        memset(rec, 0, sizeof(*rec));
        for (int i = 0; i < FIELDS; i++) {
                memcpy(text + at, ptrs[i] ? ptrs[i] : "", lens[i]);
                text[at + lens[i]] = '\0';
                if (i == FIELDS - 1)
                        rec->value = text + at;
                else if (dst[i])
                        *dst[i] = ptrs[i] ? text + at : NULL;
                else
                        snprintf(rec->event_id, sizeof(rec->event_id), "%s", text + at);
                at += lens[i] + 1;
        }
        rec->value_len = lens[FIELDS - 1];
        *strs = text;
        return HEADER_SIZE + body_len;
}

static unsigned char *read_all(int fd, size_t *len)
{
        struct stat st;
        unsigned char *buf;
        size_t got = 0;

        if (fstat(fd, &st) == -1 || !(buf = malloc((size_t)st.st_size + 1)))
                return NULL;
        while (got < (size_t)st.st_size) {
                ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);

                if (n <= 0) {
                        free(buf);
                        return NULL;
                }
                got += (size_t)n;
        }
        *len = got;
        return buf;
}

/* Counts the whole records of the file; cuts a torn tail. */
static int scan(struct spool *sp, char *errstr, size_t errstr_size)
{
        size_t len = 0, off = 0;
        unsigned char *data = read_all(sp->fd, &len);

        if (!data) {
                snprintf(errstr, errstr_size, "%s: cannot read: %s", sp->path, strerror(errno));
                return -1;
        }
        sp->pending = 0;
        while (off < len) {
                struct webhook_event rec;
                char *strs = NULL;
                size_t n = decode(data + off, len - off, &rec, &strs);

                free(strs);
                if (n == 0)
                        break;
                off += n;
                sp->pending++;
        }
        free(data);
        if (off < len) {
                log_warn(NULL, "spool %s: cutting %zu bytes of a torn record at offset %zu",
                         sp->path, len - off, off);
                if (ftruncate(sp->fd, (off_t)off) == -1 || fsync(sp->fd) == -1) {
                        snprintf(errstr, errstr_size, "%s: cannot cut the torn tail: %s", sp->path,
                                 strerror(errno));
                        return -1;
                }
        }
        sp->size = (long long)off;
        return 0;
}

struct spool *spool_open(const char *dir, long long max_bytes, char *errstr, size_t errstr_size)
{
        struct spool *sp = calloc(1, sizeof(*sp));

        if (!sp) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        pthread_mutex_init(&sp->lock, NULL);
        sp->max_bytes = max_bytes;
        snprintf(sp->path, sizeof(sp->path), "%s/receiver.spool", dir);
        snprintf(sp->tmp_path, sizeof(sp->tmp_path), "%s/receiver.spool.tmp", dir);
        if ((sp->fd = open(sp->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) == -1) {
                snprintf(errstr, errstr_size, "%s: %s", sp->path, strerror(errno));
                pthread_mutex_destroy(&sp->lock);
                free(sp);
                return NULL;
        }
        if (scan(sp, errstr, errstr_size) == -1) {
                spool_close(sp);
                return NULL;
        }
        return sp;
}

void spool_close(struct spool *sp)
{
        if (!sp)
                return;
        close(sp->fd);
        pthread_mutex_destroy(&sp->lock);
        free(sp);
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n == -1 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int spool_append(struct spool *sp, const struct webhook_event *rec, char *errstr,
                 size_t errstr_size)
{
        unsigned char *buf;
        size_t len;
        int rc = -1;

        if (encode(rec, &buf, &len) == -1) {
                snprintf(errstr, errstr_size, "record too large or out of memory");
                return -1;
        }
        pthread_mutex_lock(&sp->lock);
        if (sp->size + (long long)len > sp->max_bytes) {
                snprintf(errstr, errstr_size, "spool full (%lld bytes)", sp->size);
        } else if (write_all(sp->fd, buf, len) == -1 || fdatasync(sp->fd) == -1) {
                snprintf(errstr, errstr_size, "%s: %s", sp->path, strerror(errno));
                /* A partial write is a torn tail: cut it so the next append starts clean. */
                if (ftruncate(sp->fd, (off_t)sp->size) == -1)
                        log_error(NULL, "spool %s: cannot cut a failed append: %s", sp->path,
                                  strerror(errno));
        } else {
                sp->size += (long long)len;
                sp->pending++;
                rc = 0;
        }
        pthread_mutex_unlock(&sp->lock);
        free(buf);
        return rc;
}

size_t spool_pending(struct spool *sp)
{
        size_t n;

        pthread_mutex_lock(&sp->lock);
        n = sp->pending;
        pthread_mutex_unlock(&sp->lock);
        return n;
}

/* Replaces the file by data[from..len): a new file, fsync'ed, renamed over the old one. */
static int keep_tail(struct spool *sp, const unsigned char *data, size_t from, size_t len)
{
        int fd = open(sp->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd == -1)
                return -1;
        if (write_all(fd, data + from, len - from) == -1 || fsync(fd) == -1 ||
            rename(sp->tmp_path, sp->path) == -1) {
                close(fd);
                unlink(sp->tmp_path);
                return -1;
        }
        close(fd);
        close(sp->fd);
        if ((sp->fd = open(sp->path, O_RDWR | O_APPEND | O_CLOEXEC)) == -1)
                return -1;
        sp->size = (long long)(len - from);
        return 0;
}

long spool_replay(struct spool *sp, spool_send_fn send, void *arg, char *errstr, size_t errstr_size)
{
        struct webhook_event *recs = NULL;
        char **strs = NULL;
        size_t *ends = NULL, len = 0, off = 0, n = 0, sent = 0;
        unsigned char *data = NULL;
        long rc = -1;

        pthread_mutex_lock(&sp->lock);
        if (sp->pending == 0) {
                pthread_mutex_unlock(&sp->lock);
                return 0;
        }
        if (!(data = read_all(sp->fd, &len)) || !(recs = calloc(sp->pending, sizeof(*recs))) ||
            !(strs = calloc(sp->pending, sizeof(*strs))) ||
            !(ends = calloc(sp->pending, sizeof(*ends)))) {
                snprintf(errstr, errstr_size, "%s: cannot read or out of memory", sp->path);
                goto out;
        }
        while (n < sp->pending && off < len) {
                size_t used = decode(data + off, len - off, &recs[n], &strs[n]);

                if (used == 0)
                        break;
                off += used;
                ends[n++] = off;
        }
        sent = n ? send(arg, recs, n) : 0;
        if (sent > n)
                sent = n;
        if (sent == 0) {
                rc = 0;
        } else if (ends[sent - 1] == len ? ftruncate(sp->fd, 0) == -1 || fsync(sp->fd) == -1
                                         : keep_tail(sp, data, ends[sent - 1], len) == -1) {
                snprintf(errstr, errstr_size, "%s: cannot remove replayed records: %s", sp->path,
                         strerror(errno));
        } else {
                if (ends[sent - 1] == len)
                        sp->size = 0;
                sp->pending -= sent;
                rc = (long)sent;
        }
out:
        pthread_mutex_unlock(&sp->lock);
        for (size_t i = 0; strs && i < n; i++)
                free(strs[i]);
        free(strs);
        free(recs);
        free(ends);
        free(data);
        return rc;
}
