/* trace.c: random trace ids from OpenSSL's CSPRNG, and validation of incoming ones. */
#include "trace.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void trace_id_new(char *out)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char b[16];

        if (RAND_bytes(b, sizeof(b)) != 1) {
                /* The CSPRNG never fails on Linux in practice; still, a unique id beats none. */
                struct timespec ts;
                uint64_t x;

                clock_gettime(CLOCK_REALTIME, &ts);
                x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
                memcpy(b, &x, 8);
                memcpy(b + 8, &ts.tv_nsec, 8);
        }
        for (int i = 0; i < 16; i++) {
                out[2 * i] = hex[b[i] >> 4];
                out[2 * i + 1] = hex[b[i] & 15];
        }
        out[32] = '\0';
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
