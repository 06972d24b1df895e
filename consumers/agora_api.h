/*
 * agora_api.h: the forced close of an Agora room: a kicking rule on the channel (RESTful
 * channel management API, HTTP Basic auth with the customer ID and secret).
 */
#ifndef LIVEFLOW_AGORA_API_H
#define LIVEFLOW_AGORA_API_H

#include <stdbool.h>
#include <stddef.h>

#include "vendor_api.h"

struct settings;

/** @brief True when LIVEFLOW_AGORA_CUSTOMER_ID, _CUSTOMER_SECRET and _APP_ID are all set. */
bool agora_api_is_configured(const struct settings *s);

/**
 * @brief POST <LIVEFLOW_AGORA_API_ENDPOINT>/dev/v1/kicking-rule with
 * {"appid", "cname": channel, "time_in_seconds": LIVEFLOW_AGORA_KICK_S, "privileges":
 * ["join_channel"]}: every user is put offline; with a time of 0 they may join again at once
 * (a cut, as Tencent's DropLiveStream), else the channel stays closed that long.
 * Authorization: Basic base64(customer_id:customer_secret).
 * @returns _DONE on {"status":"success"}, _RETRY on a transport failure, 408/429/5xx or a
 * garbled reply, _FAILED on any other refusal (credentials, parameters); errstr says why.
 */
__attribute__((warn_unused_result)) enum vendor_drop
agora_api_kick(struct vendor_api *va, const char *channel, char *errstr, size_t errstr_size);

/**
 * @brief GET <LIVEFLOW_AGORA_API_ENDPOINT>/dev/v1/channel/user/<appid>/<channel>?hosts_only
 * (query user list): live when the channel exists with a broadcaster (or, in the
 * communication profile, any user), not live when it does not exist or has none.
 * @returns VENDOR_STATE_UNKNOWN with errstr on a transport failure or an unreadable reply.
 */
__attribute__((warn_unused_result)) enum vendor_state
agora_api_state(struct vendor_api *va, const char *channel, char *errstr, size_t errstr_size);

#endif
