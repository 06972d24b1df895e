/* signals.c: the only process-wide state is this flag; the handler does nothing else. */
#include "signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
        (void)sig;
        /* exit() is not async-signal-safe: a second signal means "now", so _exit. */
        if (stop_requested)
                _exit(1);
        stop_requested = 1;
}

void signals_install(void)
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
}

bool signals_stop_requested(void)
{
        return stop_requested != 0;
}

void signals_request_stop(void)
{
        stop_requested = 1;
}
