/*
 * ratelimit.h - request rate limits shared by every serve process through Redis.
 *
 * The semantics of rate-limiter-flexible's Redis limiter: a key's window opens at its
 * first request and lasts the group's duration; the request that goes over the
 * group's points blocks the key for the block duration (its counter keeps the block's
 * expiry, so the block lifts by itself). One Lua script counts every key of a
 * request atomically in one round trip, so any number of processes share one count.
 *
 * Groups (config.h has their settings): PUBLIC per client address for anything
 * without a valid token, WEBHOOK per address for Meta's deliveries, and for
 * authenticated traffic TOKEN per bearer token under the IP ceiling per address.
 *
 * The server counts an authenticated read while its handler runs (http_hold_t in
 * server.h), so the script's call and the read's own Redis commands share a write.
 *
 * Checks made during one turn of the event loop go to Redis together, as one call of
 * the script at the end of the turn, which counts each distinct key once for all of
 * the turn's requests against it (one client's address under all of its requests, say);
 * each request is then given its own place in that count, in arrival order, so every
 * verdict is exactly what one call each would have given. Under load the script's
 * fixed cost is paid once per turn, not once per request. A key Redis reported over its limit is remembered on
 * the loop thread until its block ends, so a flood costs no Redis call per request. Redis away (error, timeout,
 * not connected): this process's own counters (core/throttle.h) decide with the same
 * settings, and ratelimit_fallback_active says so.
 *
 * One ratelimit_t per loop thread, used only there.
 */
#ifndef CONVERSA_HTTP_RATELIMIT_H
#define CONVERSA_HTTP_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "cache/redis.h"
#include "core/waiter.h"

typedef enum ratelimit_group {
    RATELIMIT_PUBLIC,
    RATELIMIT_WEBHOOK,
    RATELIMIT_TOKEN,
    RATELIMIT_IP,
    RATELIMIT_GROUP_MAX
} ratelimit_group_t;

#define RATELIMIT_KEYS    2
#define RATELIMIT_KEY_MAX 64

typedef struct ratelimit ratelimit_t;

typedef struct ratelimit_verdict {
    int allowed;
    unsigned retry_after_s; /* when refused */
    size_t n;
    struct {
        ratelimit_group_t group;
        uint64_t remaining;
        uint64_t reset_s; /* until the key's window or block ends */
    } items[RATELIMIT_KEYS];
} ratelimit_verdict_t;

typedef void (*ratelimit_cb)(void *data, const ratelimit_verdict_t *v);

struct ratelimit_batch;

/** One check in progress; the caller's storage, alive until the callback or cancellation. */
typedef struct ratelimit_call {
    ratelimit_t *rl;
    ratelimit_cb cb;
    void *data;
    size_t n;
    ratelimit_group_t groups[RATELIMIT_KEYS];
    char keys[RATELIMIT_KEYS][RATELIMIT_KEY_MAX + 16];
    uint64_t hashes[RATELIMIT_KEYS]; /* of keys, for this thread's memory of blocks */
    waiter_t waiter;
    struct ratelimit_batch *batch; /* the Redis call it is part of */
    size_t slot;                   /* its place there */
} ratelimit_call_t;

/**
 * A limiter for one loop thread, talking to Redis through redis (may be NULL: in
 * process only). Checks are sent at the end of the loop's turn.
 */
ratelimit_t *ratelimit_new(h2o_loop_t *loop, redis_client_t *redis, struct metrics_shard *metrics);

/** Sends what is gathered, then frees; answers still to come are dropped (call after the requests are gone). */
void ratelimit_free(ratelimit_t *rl);

/**
 * Counts one request against n keys (group, key text), 1 <= n <= RATELIMIT_KEYS, and
 * calls cb with the verdict; allowed only when every key is within its limit. The
 * callback may run before this returns. waiters as redis_command().
 */
void ratelimit_check(ratelimit_t *rl, ratelimit_call_t *c, size_t n, const ratelimit_group_t *groups,
                     const char *const *keys, ratelimit_cb cb, void *data, h2o_linklist_t *waiters);

/** The RateLimit-Policy and RateLimit header values for a verdict. */
void ratelimit_headers(const ratelimit_verdict_t *v, char *policy, size_t policy_cap, char *state, size_t state_cap);

#endif
