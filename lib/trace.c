/* trace.c: random trace ids from OpenSSL's CSPRNG, and validation of incoming ones. */
#include "trace.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"

/*
 * Each thread draws random bytes from OpenSSL in blocks and hands them out 16 at a time:
 * one RAND_bytes() call per 32 trace ids instead of one per request.
 */
#define POOL_BYTES 512
static _Thread_local unsigned char pool[POOL_BYTES];
static _Thread_local size_t pool_used = POOL_BYTES;

static int random_16(unsigned char b[16])
{
        if (pool_used + 16 > POOL_BYTES) {
                if (RAND_bytes(pool, POOL_BYTES) != 1)
                        return -1;
                pool_used = 0;
        }
        memcpy(b, pool + pool_used, 16);
        memset(pool + pool_used, 0, 16); /* handed out: not kept */
        pool_used += 16;
        return 0;
}

void trace_id_new(char *out)
{
        unsigned char b[16];

        if (random_16(b) == -1) {
                /* The CSPRNG never fails on Linux in practice; still, a unique id beats none. */
                struct timespec ts;
                uint64_t x;

                clock_gettime(CLOCK_REALTIME, &ts);
                x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
                memcpy(b, &x, 8);
                memcpy(b + 8, &ts.tv_nsec, 8);
        }
        crypto_hex(b, sizeof(b), out);
}

bool trace_id_is_valid(const char *s)
{
        size_t n = 0;

        if (!s)
                return false;
        for (; s[n]; n++) {
                char c = s[n];

                if (n >= TRACE_ID_MAX)
                        return false;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.'))
                        return false;
        }
        return n >= 8;
}
