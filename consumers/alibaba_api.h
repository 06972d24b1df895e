/*
 * alibaba_api.h: the forced close of an Alibaba ApsaraVideo Live stream: ForbidLiveStream
 * (Oneshot: cut, not blacklisted), an RPC call signed with HMAC-SHA1 (signature version 1.0).
 */
#ifndef LIVEFLOW_ALIBABA_API_H
#define LIVEFLOW_ALIBABA_API_H

#include <stdbool.h>
#include <stddef.h>

#include "vendor_api.h"

struct settings;

/** @brief True when LIVEFLOW_ALIBABA_ACCESS_KEY_ID, _ACCESS_KEY_SECRET and _PUSH_DOMAIN are set. */
bool alibaba_api_is_configured(const struct settings *s);

/* One parameter of an RPC request; both strings borrowed. */
struct alibaba_param {
        const char *name;
        const char *value;
};

/**
 * @brief The signed query of an RPC request: params (any order, at most 32) sorted by name,
 * each name and value percent-encoded as RFC 3986 says (unreserved A-Z a-z 0-9 - _ . ~ kept),
 * joined "k=v&...", then "&Signature=" + the encoded base64 HMAC-SHA1, keyed with
 * secret + "&", of method + "&%2F&" + the encoded query.
 * @returns 0, or -1 when out (out_size bytes) is too small or too many params.
 */
__attribute__((warn_unused_result)) int alibaba_api_signed_query(const char *method,
                                                                 const struct alibaba_param *params,
                                                                 size_t n, const char *secret,
                                                                 char *out, size_t out_size);

/**
 * @brief GET <LIVEFLOW_ALIBABA_API_ENDPOINT>/?Action=ForbidLiveStream&DomainName=<push
 * domain>&AppName=<LIVEFLOW_ALIBABA_APP>&StreamName=stream&LiveStreamType=publisher&
 * Oneshot=yes, with the common parameters (Format JSON, Version 2016-11-01, AccessKeyId,
 * SignatureMethod HMAC-SHA1, SignatureVersion 1.0, a random SignatureNonce, Timestamp) signed.
 * @returns _DONE on a 200 with a RequestId, _NOT_LIVE when Alibaba says the stream does not
 * exist, _RETRY on a transport failure, throttling or 5xx, _FAILED on another refusal.
 */
__attribute__((warn_unused_result)) enum vendor_drop
alibaba_api_forbid(struct vendor_api *va, const char *stream, char *errstr, size_t errstr_size);

/**
 * @brief DescribeLiveStreamsOnlineList for the stream (DomainName, AppName, StreamName), signed
 * as alibaba_api_forbid() is: live when Alibaba lists it online, not live when it does not.
 * @returns VENDOR_STATE_UNKNOWN with errstr on a failure or an unreadable reply.
 */
__attribute__((warn_unused_result)) enum vendor_state
alibaba_api_state(struct vendor_api *va, const char *stream, char *errstr, size_t errstr_size);

#endif
