/* signals.h: SIGTERM/SIGINT request a drain; a second one exits at once. */
#ifndef LIVEFLOW_SIGNALS_H
#define LIVEFLOW_SIGNALS_H

#include <stdbool.h>

/** @brief Installs the handlers (sigaction) and ignores SIGPIPE. */
void signals_install(void);

/** @brief True once SIGTERM or SIGINT arrived (or signals_request_stop() was called). */
bool signals_stop_requested(void);

/** @brief Requests the same drain as SIGTERM, e.g. on a fatal library error. */
void signals_request_stop(void);

#endif
