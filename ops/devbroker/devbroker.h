/* devbroker.h: the dev Kafka broker: configuration from LIVEFLOW_DEVBROKER_* and the mock cluster. */
#ifndef LIVEFLOW_DEVBROKER_H
#define LIVEFLOW_DEVBROKER_H

#include <stdbool.h>
#include <stddef.h>

#define DEVBROKER_TOPIC_NAME_MAX 249 /* Kafka's own limit */
#define DEVBROKER_MAX_TOPICS     128

struct devbroker_topic {
        char name[DEVBROKER_TOPIC_NAME_MAX + 1];
        int partitions;
};

struct devbroker_config {
        int brokers;                 /* LIVEFLOW_DEVBROKER_BROKERS, 1..5 */
        int partitions;              /* LIVEFLOW_DEVBROKER_PARTITIONS, 1..64 */
        const char *bootstrap_file;  /* LIVEFLOW_DEVBROKER_BOOTSTRAP_FILE; NULL when unset */
        int log_level;               /* LIVEFLOW_LOG_LEVEL, an enum log_level */
        int topic_cnt;
        struct devbroker_topic topics[DEVBROKER_MAX_TOPICS];
};

struct devbroker;

/**
 * @brief Fills cfg from the environment: the contract topics and their .dlq twins, then
 *        the extra topics of LIVEFLOW_DEVBROKER_TOPICS ("name[:partitions],...").
 * @returns 0, or -1 with errstr naming the variable and its value.
 * cfg->bootstrap_file points into the environment; it lives as long as the process.
 */
__attribute__((warn_unused_result)) int devbroker_config_load(struct devbroker_config *cfg,
                                                              char *errstr, size_t errstr_size);

/**
 * @brief Starts a mock cluster of cfg->brokers brokers and creates every topic of cfg.
 * @returns the broker (caller owns it, devbroker_destroy()), or NULL with errstr set.
 */
struct devbroker *devbroker_new(const struct devbroker_config *cfg, char *errstr,
                                size_t errstr_size);

/** @brief The bootstrap address ("127.0.0.1:port,..."), owned by db. */
const char *devbroker_bootstraps(const struct devbroker *db);

/**
 * @brief Takes every broker down (is_up false) or brings every broker up (is_up true).
 * @returns 0, or -1 with errstr naming the broker that refused.
 */
__attribute__((warn_unused_result)) int devbroker_set_up(struct devbroker *db, bool is_up,
                                                         char *errstr, size_t errstr_size);

/** @brief Serves the client handle's callbacks (its log lines) for up to timeout_ms. */
void devbroker_poll(struct devbroker *db, int timeout_ms);

/**
 * @brief Writes the bootstrap address and a newline to path atomically (a temporary file
 *        beside it, then rename), so a reader never sees a half-written address.
 * @returns 0, or -1 with errstr set.
 */
__attribute__((warn_unused_result)) int devbroker_write_bootstrap(const char *path,
                                                                  const char *bootstraps,
                                                                  char *errstr,
                                                                  size_t errstr_size);

/** @brief Stops the mock cluster and frees db; NULL does nothing. */
void devbroker_destroy(struct devbroker *db);

#endif
