/*
 * cache.h - response bodies cached in Redis, invalidated by generation numbers.
 *
 * A cached value is the exact body of a response, stored under a key that names its
 * company (a Redis Cluster hash tag, so a company lives on one slot), its resource,
 * the current generation of the data it was built from, and the request's variant:
 *
 *     {c:42}:conversations:g1764449551000017:a=all:s=:p=1:l=20:u=0
 *
 * A generation is a counter per company and scope (below). Every write that changes
 * what a cached response says bumps the scopes it touches after its transaction
 * committed and before its own response is sent; from then on every reader, in any
 * thread or process, computes keys with the new generation, so an old body is never
 * found again (it expires by its TTL). A reader that read the old generation before
 * the bump may store what it queried under the old key: nobody asks for that key any
 * more. This is why nothing is ever deleted and no stale read is possible after a
 * write returned, as long as its bump reached Redis.
 *
 * A generation that does not exist yet (or was evicted) starts at Redis's clock in
 * microseconds, which is above any number the scope had before, so an old key never
 * comes back. Reading the generation and the value is one round trip and atomic: an
 * MGET of the generation and of the key at the generation this thread saw last (the
 * value counts only if that generation is still the current one), or, the first time,
 * one Redis function call (FCALL, loaded on first use) that also creates it.
 *
 * When a bump cannot reach Redis it is kept and retried, in order, until it lands; the
 * failure is counted (cache_generation_bump_failures_total) and logged. Redis that
 * is down or slow (REDIS_TIMEOUT_MS) makes reads bypass the cache: the caller serves
 * from PostgreSQL.
 */
#ifndef CONVERSA_CACHE_CACHE_H
#define CONVERSA_CACHE_CACHE_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/flight.h"
#include "cache/redis.h"

struct metrics_shard;

/* What is cached; each has its TTL (CACHE_TTL_*) and its `cache` metric label. */
typedef enum cache_kind {
    CACHE_STATUS,        /* GET /api/v1/conversations/status          scope counts */
    CACHE_CONVERSATIONS, /* GET /api/v1/conversations                 scope conversations */
    CACHE_MESSAGES,      /* GET /api/v1/conversations/:id/messages    scope messages of :id */
    CACHE_NOTIFICATIONS, /* GET /api/v1/notifications                 scope notifications of the user */
    CACHE_UNREAD,        /* GET /api/v1/notifications/unread_count    scope notifications of the user */
    CACHE_CONNECTIONS,   /* GET /api/v1/connections[/:id]             scope connections */
    CACHE_KIND_MAX
} cache_kind_t;

/* What a write invalidates. */
typedef enum cache_scope {
    CACHE_SCOPE_COUNTS,        /* per-status counts: a conversation's status or assignee, a new conversation */
    CACHE_SCOPE_CONVERSATIONS, /* conversation lists: any change to a conversation or its contact */
    CACHE_SCOPE_MESSAGES,      /* one conversation's messages (id = the conversation) */
    CACHE_SCOPE_NOTIFICATIONS, /* one user's notifications (id = the user) */
    CACHE_SCOPE_CONNECTIONS,   /* the company's connections */
    CACHE_SCOPE_MAX
} cache_scope_t;

/* Most generations one cache_bump() call takes. */
#define CACHE_BUMP_MAX 8

typedef struct cache_gen {
    cache_scope_t scope;
    int64_t id; /* the conversation or user, for scopes that need one; else 0 */
} cache_gen_t;

/* Per loop thread: its Redis client, its flights, and its bumps waiting to be retried. */
typedef struct cache_thread cache_thread_t;

/** What a lookup found. */
typedef enum cache_outcome { CACHE_HIT, CACHE_MISS, CACHE_UNAVAILABLE } cache_outcome_t;

/**
 * A lookup's answer: on HIT and MISS key is the full key (with the generation); on
 * HIT value is the body. Both are valid only during the callback.
 */
typedef void (*cache_get_cb)(void *data, cache_outcome_t outcome, const char *key, size_t keylen, const char *value,
                             size_t len);

/** Whether a write's bump reached Redis (0) or was queued for retry (-1). */
typedef void (*cache_bump_cb)(void *data, int ok);

/** Names of the kinds, as metric labels. */
extern const char *const cache_kind_names[CACHE_KIND_MAX];

/** Sets up the cache for a loop thread. */
cache_thread_t *cache_thread_new(h2o_loop_t *loop, h2o_multithread_queue_t *queue, redis_client_t *redis,
                                 struct metrics_shard *metrics);

/**
 * Waits for fills still travelling to this thread, logs the bumps that never reached
 * Redis, and frees. Call after every request is gone and after redis_client_free().
 */
void cache_thread_free(cache_thread_t *t);

/** The thread's single-flight state (see flight.h). */
flight_thread_t *cache_flights(cache_thread_t *t);

/** The TTL of a kind, in seconds. */
unsigned cache_ttl(cache_kind_t kind);

/**
 * Looks up kind for company; scope_id is the conversation (messages) or user
 * (notifications); variant names the request's parameters (printable, no spaces).
 * The callback runs once (maybe before this returns), unless cancelled through waiters.
 */
void cache_get(cache_thread_t *t, cache_kind_t kind, int64_t company, int64_t scope_id, const char *variant,
               cache_get_cb cb, void *data, h2o_linklist_t *waiters);

/** Stores value under key (from a MISS) for kind's TTL; fire and forget. */
void cache_put(cache_thread_t *t, cache_kind_t kind, const char *key, size_t keylen, const char *value, size_t len);

/**
 * Bumps the generations of gens (n at most CACHE_BUMP_MAX) for company. cb (optional) runs once the bump
 * landed or was queued for retry, unless cancelled through waiters; the bump itself
 * is never cancelled.
 */
void cache_bump(cache_thread_t *t, int64_t company, const cache_gen_t *gens, size_t n, cache_bump_cb cb, void *data,
                h2o_linklist_t *waiters);

#endif
