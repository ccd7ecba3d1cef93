#include "cache/cache.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"
#include "core/waiter.h"
#include "ops/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_GEN_TTL_S     "86400" /* far above any value's TTL (at most 3600 s) */
#define CACHE_RETRY_MS      200
#define CACHE_KEY_MAX       384
#define CACHE_BUMP_MAX_GENS 8

/*
 * The Redis functions. Versioned by name: a changed library gets a new name, so
 * processes of two versions sharing a Redis never call each other's code.
 */
#define CACHE_LIB "conversa_cache_1"
static const char cache_library[] =
    "#!lua name=" CACHE_LIB "\n"
    "local function generation(key)\n"
    "  local g = redis.call('GET', key)\n"
    "  if not g then\n"
    "    local t = redis.call('TIME')\n"
    "    g = t[1] .. string.format('%06d', tonumber(t[2]))\n"
    "    redis.call('SET', key, g, 'EX', " CACHE_GEN_TTL_S ")\n"
    "  end\n"
    "  return g\n"
    "end\n"
    "redis.register_function('conversa_get_1', function(keys, args)\n"
    "  local key = args[1] .. ':g' .. generation(keys[1]) .. ':' .. args[2]\n"
    "  return {key, redis.call('GET', key)}\n"
    "end)\n"
    "redis.register_function('conversa_bump_1', function(keys, args)\n"
    "  for _, k in ipairs(keys) do\n"
    "    if redis.call('EXISTS', k) == 1 then\n"
    "      redis.call('INCR', k)\n"
    "      redis.call('EXPIRE', k, " CACHE_GEN_TTL_S ")\n"
    "    else\n"
    "      generation(k)\n"
    "    end\n"
    "  end\n"
    "  return #keys\n"
    "end)\n";

const char *const cache_kind_names[CACHE_KIND_MAX] = {
    [CACHE_STATUS] = "conversation_status", [CACHE_CONVERSATIONS] = "conversations",
    [CACHE_MESSAGES] = "messages",          [CACHE_NOTIFICATIONS] = "notifications",
    [CACHE_UNREAD] = "notifications_unread", [CACHE_CONNECTIONS] = "connections",
};

static const char *const cache_scope_names[CACHE_SCOPE_MAX] = {
    [CACHE_SCOPE_COUNTS] = "counts",
    [CACHE_SCOPE_CONVERSATIONS] = "conversations",
    [CACHE_SCOPE_MESSAGES] = "messages",
    [CACHE_SCOPE_NOTIFICATIONS] = "notifications",
    [CACHE_SCOPE_CONNECTIONS] = "connections",
};

static const cache_scope_t cache_kind_scopes[CACHE_KIND_MAX] = {
    [CACHE_STATUS] = CACHE_SCOPE_COUNTS,
    [CACHE_CONVERSATIONS] = CACHE_SCOPE_CONVERSATIONS,
    [CACHE_MESSAGES] = CACHE_SCOPE_MESSAGES,
    [CACHE_NOTIFICATIONS] = CACHE_SCOPE_NOTIFICATIONS,
    [CACHE_UNREAD] = CACHE_SCOPE_NOTIFICATIONS,
    [CACHE_CONNECTIONS] = CACHE_SCOPE_CONNECTIONS,
};

/* A write's bump: in flight, or waiting in the thread's retry list. */
typedef struct cache_bump_req {
    cache_thread_t *thread;
    waiter_t waiter; /* the caller's interest in cb only */
    h2o_linklist_t retry;
    cache_bump_cb cb;
    void *data;
    int64_t company;
    int inflight;
    size_t n;
    cache_gen_t gens[CACHE_BUMP_MAX_GENS];
} cache_bump_req_t;

struct cache_thread {
    h2o_loop_t *loop;
    redis_client_t *redis;
    flight_thread_t *flights;
    uint64_t loaded_epoch; /* the connection the library was last sent on */
    h2o_linklist_t retries;
    size_t nretries;
    loop_timer_t retry_timer;
    metrics_shard_t *metrics;
};

/* ---- keys ---- */

static int cache_scope_has_id(cache_scope_t s)
{
    return s == CACHE_SCOPE_MESSAGES || s == CACHE_SCOPE_NOTIFICATIONS;
}

static size_t cache_gen_key(char *buf, size_t size, int64_t company, cache_scope_t scope, int64_t id)
{
    int n = cache_scope_has_id(scope)
                ? snprintf(buf, size, "{c:%" PRId64 "}:gen:%s:%" PRId64, company, cache_scope_names[scope], id)
                : snprintf(buf, size, "{c:%" PRId64 "}:gen:%s", company, cache_scope_names[scope]);
    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

unsigned cache_ttl(cache_kind_t kind)
{
    switch (kind) {
    case CACHE_STATUS:
        return config.cache_ttl_status;
    case CACHE_CONVERSATIONS:
        return config.cache_ttl_conversations;
    case CACHE_MESSAGES:
        return config.cache_ttl_messages;
    case CACHE_NOTIFICATIONS:
    case CACHE_UNREAD:
        return config.cache_ttl_notifications;
    case CACHE_CONNECTIONS:
        return config.cache_ttl_connections;
    default:
        util_fatal("unknown cache kind %d", (int)kind);
    }
}

cache_scope_t cache_kind_scope(cache_kind_t kind)
{
    return cache_kind_scopes[kind];
}

/* ---- the library ---- */

static void cache_on_loaded(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    cache_thread_t *t = data;
    (void)reply, (void)rtt_ns;
    if (error != NULL) {
        log_warn("cache", "loading the Redis functions failed: %s", error);
        t->loaded_epoch = 0;
    }
}

/* Sends the library ahead of the first call on each new connection (pipelined, in order). */
static void cache_ensure_library(cache_thread_t *t)
{
    uint64_t epoch = redis_client_epoch(t->redis);
    if (t->loaded_epoch == epoch)
        return;
    t->loaded_epoch = epoch;
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", cache_library};
    size_t len[] = {8, 4, 7, sizeof(cache_library) - 1};
    redis_command(t->redis, cache_on_loaded, t, NULL, 4, argv, len);
}

/* A function that is gone (FUNCTION FLUSH, a Redis without our library): load again next time. */
static void cache_check_error(cache_thread_t *t, const char *error)
{
    if (error != NULL && strstr(error, "Function not found") != NULL)
        t->loaded_epoch = 0;
}

/* ---- threads ---- */

static void cache_retry_bumps(loop_timer_t *timer);

cache_thread_t *cache_thread_new(h2o_loop_t *loop, h2o_multithread_queue_t *queue, redis_client_t *redis,
                                 metrics_shard_t *metrics)
{
    cache_thread_t *t = util_calloc(1, sizeof(*t));
    t->loop = loop;
    t->redis = redis;
    t->flights = flight_thread_new(loop, queue, config.cache_wait_ms);
    t->metrics = metrics;
    h2o_linklist_init_anchor(&t->retries);
    loop_timer_init(&t->retry_timer, loop, cache_retry_bumps);
    return t;
}

void cache_thread_free(cache_thread_t *t)
{
    if (t == NULL)
        return;
    flight_thread_free(t->flights, 10000);
    if (t->nretries != 0)
        log_error("cache", "%zu generation bumps never reached Redis; other processes may serve older bodies "
                           "until their TTL",
                  t->nretries);
    while (!h2o_linklist_is_empty(&t->retries)) {
        cache_bump_req_t *b = H2O_STRUCT_FROM_MEMBER(cache_bump_req_t, retry, t->retries.next);
        h2o_linklist_unlink(&b->retry);
        waiter_detach(&b->waiter);
        free(b);
    }
    loop_timer_dispose(&t->retry_timer);
    free(t);
}

flight_thread_t *cache_flights(cache_thread_t *t)
{
    return t->flights;
}

int cache_usable(const cache_thread_t *t)
{
    return config.cache_enabled && t != NULL && redis_client_ready(t->redis);
}

size_t cache_pending_bumps(const cache_thread_t *t)
{
    return t->nretries;
}

/* ---- reads ---- */

/*
 * A lookup's record is freed in its Redis callback only (which always comes, if only
 * with an error at shutdown); the caller's cancellation just silences it.
 */
typedef struct cache_get_req {
    cache_thread_t *thread;
    waiter_t waiter;
    cache_get_cb cb;
    void *data;
} cache_get_req_t;

static void cache_get_cancel(waiter_t *w)
{
    cache_get_req_t *g = H2O_STRUCT_FROM_MEMBER(cache_get_req_t, waiter, w);
    g->cb = NULL;
}

static void cache_on_get(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    cache_get_req_t *g = data;
    (void)rtt_ns;
    cache_get_cb cb = g->cb;
    void *cb_data = g->data;
    cache_thread_t *t = g->thread;
    waiter_detach(&g->waiter);
    free(g);
    if (cb == NULL)
        return;
    if (error != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        cache_check_error(t, error);
        if (error != NULL)
            log_debug("cache", "cache unavailable: %s", error);
        cb(cb_data, CACHE_UNAVAILABLE, NULL, 0, NULL, 0);
        return;
    }
    redisReply *key = reply->element[0], *val = reply->element[1];
    if (val->type == REDIS_REPLY_STRING)
        cb(cb_data, CACHE_HIT, key->str, key->len, val->str, val->len);
    else
        cb(cb_data, CACHE_MISS, key->str, key->len, NULL, 0);
}

void cache_get(cache_thread_t *t, cache_kind_t kind, int64_t company, int64_t scope_id, const char *variant,
               cache_get_cb cb, void *data, h2o_linklist_t *waiters)
{
    char gen[CACHE_KEY_MAX], prefix[64];
    cache_scope_t scope = cache_kind_scopes[kind];
    size_t genlen = cache_gen_key(gen, sizeof(gen), company, scope, scope_id);
    int plen = cache_scope_has_id(scope)
                   ? snprintf(prefix, sizeof(prefix), "{c:%" PRId64 "}:%s:%" PRId64, company, cache_kind_names[kind],
                              scope_id)
                   : snprintf(prefix, sizeof(prefix), "{c:%" PRId64 "}:%s", company, cache_kind_names[kind]);
    if (genlen == 0 || plen < 0 || (size_t)plen >= sizeof(prefix) || !cache_usable(t)) {
        cb(data, CACHE_UNAVAILABLE, NULL, 0, NULL, 0);
        return;
    }
    cache_ensure_library(t);
    cache_get_req_t *g = util_calloc(1, sizeof(*g));
    g->thread = t;
    g->cb = cb;
    g->data = data;
    g->waiter.cancel = cache_get_cancel;
    waiter_attach(&g->waiter, waiters);
    const char *argv[] = {"FCALL", "conversa_get_1", "1", gen, prefix, variant};
    size_t len[] = {5, 14, 1, genlen, (size_t)plen, strlen(variant)};
    redis_command(t->redis, cache_on_get, g, NULL, 6, argv, len);
}

static void cache_on_put(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    (void)data, (void)reply, (void)rtt_ns;
    if (error != NULL)
        log_debug("cache", "cache store failed: %s", error);
}

void cache_put(cache_thread_t *t, cache_kind_t kind, const char *key, size_t keylen, const char *value, size_t len)
{
    if (!cache_usable(t))
        return;
    char ttl[16];
    int tl = snprintf(ttl, sizeof(ttl), "%u", cache_ttl(kind));
    const char *argv[] = {"SET", key, value, "EX", ttl};
    size_t lens[] = {3, keylen, len, 2, (size_t)tl};
    redis_command(t->redis, cache_on_put, NULL, NULL, 5, argv, lens);
}

/* ---- writes ---- */

static void cache_bump_send(cache_bump_req_t *b);

static void cache_bump_cancel(waiter_t *w)
{
    cache_bump_req_t *b = H2O_STRUCT_FROM_MEMBER(cache_bump_req_t, waiter, w);
    b->cb = NULL; /* the bump itself goes on */
}

static void cache_bump_notify(cache_bump_req_t *b, int ok)
{
    cache_bump_cb cb = b->cb;
    b->cb = NULL;
    waiter_detach(&b->waiter);
    if (cb != NULL)
        cb(b->data, ok);
}

static void cache_bump_queue(cache_bump_req_t *b, const char *error)
{
    cache_thread_t *t = b->thread;
    metrics_add(t->metrics, METRICS_CACHE_BUMP_FAILURES, 1);
    if (!h2o_linklist_is_linked(&b->retry)) {
        log_warn("cache", "generation bump for company %" PRId64 " failed (%s); retrying until Redis takes it",
                 b->company, error);
        h2o_linklist_insert(&t->retries, &b->retry);
        ++t->nretries;
    }
    if (!loop_timer_armed(&t->retry_timer))
        loop_timer_start(&t->retry_timer, CACHE_RETRY_MS);
    cache_bump_notify(b, -1);
}

static void cache_on_bumped(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    cache_bump_req_t *b = data;
    (void)reply, (void)rtt_ns;
    b->inflight = 0;
    if (error != NULL) {
        cache_check_error(b->thread, error);
        cache_bump_queue(b, error);
        return;
    }
    metrics_add(b->thread->metrics, METRICS_CACHE_BUMPS, b->n);
    if (h2o_linklist_is_linked(&b->retry)) {
        h2o_linklist_unlink(&b->retry);
        --b->thread->nretries;
        log_info("cache", "generation bump for company %" PRId64 " landed after a retry", b->company);
    }
    cache_bump_notify(b, 0);
    free(b);
}

static void cache_bump_send(cache_bump_req_t *b)
{
    cache_thread_t *t = b->thread;
    if (!redis_client_ready(t->redis)) {
        cache_bump_queue(b, "redis unavailable");
        return;
    }
    cache_ensure_library(t);
    b->inflight = 1;
    char keys[CACHE_BUMP_MAX_GENS][CACHE_KEY_MAX], nkeys[8];
    const char *argv[3 + CACHE_BUMP_MAX_GENS] = {"FCALL", "conversa_bump_1", nkeys};
    size_t len[3 + CACHE_BUMP_MAX_GENS] = {5, 15, (size_t)snprintf(nkeys, sizeof(nkeys), "%zu", b->n)};
    for (size_t i = 0; i != b->n; ++i) {
        argv[3 + i] = keys[i];
        len[3 + i] = cache_gen_key(keys[i], sizeof(keys[i]), b->company, b->gens[i].scope, b->gens[i].id);
    }
    redis_command(t->redis, cache_on_bumped, b, NULL, (int)(3 + b->n), argv, len);
}

static void cache_retry_bumps(loop_timer_t *timer)
{
    cache_thread_t *t = util_container_of(timer, cache_thread_t, retry_timer);
    if (!redis_client_ready(t->redis)) {
        loop_timer_start(&t->retry_timer, CACHE_RETRY_MS);
        return;
    }
    /* Each goes back on the list only if it fails again (it stays linked meanwhile). */
    for (h2o_linklist_t *l = t->retries.next, *next; l != &t->retries; l = next) {
        next = l->next;
        cache_bump_req_t *b = H2O_STRUCT_FROM_MEMBER(cache_bump_req_t, retry, l);
        if (!b->inflight)
            cache_bump_send(b);
    }
}

void cache_bump(cache_thread_t *t, int64_t company, const cache_gen_t *gens, size_t n, cache_bump_cb cb, void *data,
                h2o_linklist_t *waiters)
{
    if (n == 0 || n > CACHE_BUMP_MAX_GENS)
        util_fatal("cache_bump: %zu generations", n);
    cache_bump_req_t *b = util_calloc(1, sizeof(*b));
    b->thread = t;
    b->cb = cb;
    b->data = data;
    b->company = company;
    b->n = n;
    memcpy(b->gens, gens, n * sizeof(*gens));
    b->waiter.cancel = cache_bump_cancel;
    waiter_attach(&b->waiter, waiters);
    cache_bump_send(b);
}
