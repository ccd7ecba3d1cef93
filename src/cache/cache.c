#include "cache/cache.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"
#include "core/waiter.h"
#include "ops/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_GEN_TTL_S     "86400" /* far above any value's TTL (at most 3600 s) */
#define CACHE_RETRY_MS      200
#define CACHE_KEY_MAX       384
#define CACHE_GEN_KEY_MAX   96
#define CACHE_GEN_MAX       24
#define CACHE_VARIANT_MAX   192
#define CACHE_HINT_SETS     512 /* generations remembered per thread: sets of CACHE_HINT_WAYS */
#define CACHE_HINT_WAYS     8
#define CACHE_BUMP_MAX_GENS CACHE_BUMP_MAX

/*
 * The Redis functions. Versioned by name: a changed library gets a new name, so
 * processes of two versions sharing a Redis never call each other's code.
 */
#define CACHE_LIB "conversa_cache_2"
/* one line of Lua per line: */
/* clang-format off */
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
    "redis.register_function('conversa_get_2', function(keys, args)\n"
    "  local g = generation(keys[1])\n"
    "  return {g, redis.call('GET', args[1] .. ':g' .. g .. ':' .. args[2])}\n"
    "end)\n"
    "redis.register_function('conversa_bump_2', function(keys, args)\n"
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
/* clang-format on */

const char *const cache_kind_names[CACHE_KIND_MAX] = {
    [CACHE_STATUS] = "conversation_status",  [CACHE_CONVERSATIONS] = "conversations",
    [CACHE_MESSAGES] = "messages",           [CACHE_NOTIFICATIONS] = "notifications",
    [CACHE_UNREAD] = "notifications_unread", [CACHE_CONNECTIONS] = "connections",
};

static const char *const cache_scope_names[CACHE_SCOPE_MAX] = {
    [CACHE_SCOPE_COUNTS] = "counts",           [CACHE_SCOPE_CONVERSATIONS] = "conversations",
    [CACHE_SCOPE_MESSAGES] = "messages",       [CACHE_SCOPE_NOTIFICATIONS] = "notifications",
    [CACHE_SCOPE_CONNECTIONS] = "connections",
};

static const cache_scope_t cache_kind_scopes[CACHE_KIND_MAX] = {
    [CACHE_STATUS] = CACHE_SCOPE_COUNTS,        [CACHE_CONVERSATIONS] = CACHE_SCOPE_CONVERSATIONS,
    [CACHE_MESSAGES] = CACHE_SCOPE_MESSAGES,    [CACHE_NOTIFICATIONS] = CACHE_SCOPE_NOTIFICATIONS,
    [CACHE_UNREAD] = CACHE_SCOPE_NOTIFICATIONS, [CACHE_CONNECTIONS] = CACHE_SCOPE_CONNECTIONS,
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

/* The last generation a thread saw for one scope (see the reads, below). */
typedef struct cache_hint {
    uint64_t hash; /* of the generation key; 0: empty */
    uint64_t used; /* the thread's hint clock when last used: the oldest of a set goes first */
    uint32_t genlen;
    char gen[CACHE_GEN_MAX];
    char key[CACHE_GEN_KEY_MAX];
} cache_hint_t;

struct cache_thread {
    h2o_loop_t *loop;
    redis_client_t *redis;
    flight_thread_t *flights;
    uint64_t loaded_epoch; /* the connection the library was last sent on */
    h2o_linklist_t retries;
    size_t nretries;
    loop_timer_t retry_timer;
    metrics_shard_t *metrics;
    cache_hint_t *hints; /* CACHE_HINT_SETS sets of CACHE_HINT_WAYS, the set chosen by hash */
    uint64_t hint_clock;
};

/* ---- keys ---- */

static int cache_scope_has_id(cache_scope_t s)
{
    return s == CACHE_SCOPE_MESSAGES || s == CACHE_SCOPE_NOTIFICATIONS;
}

/* "{c:<company>}:<infix><name>[:<id>]" in buf; its length, or 0 when it does not fit. */
static size_t cache_company_key(char *buf, size_t size, int64_t company, const char *infix, const char *name,
                                int has_id, int64_t id)
{
    util_fmt_t f = util_fmt_on(buf, size);
    util_fmt_lit(&f, "{c:");
    util_fmt_i64(&f, company);
    util_fmt_lit(&f, "}:");
    util_fmt_str(&f, infix);
    util_fmt_str(&f, name);
    if (has_id) {
        util_fmt_lit(&f, ":");
        util_fmt_i64(&f, id);
    }
    return f.full ? 0 : f.len;
}

static size_t cache_gen_key(char *buf, size_t size, int64_t company, cache_scope_t scope, int64_t id)
{
    return cache_company_key(buf, size, company, "gen:", cache_scope_names[scope], cache_scope_has_id(scope), id);
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
    t->hints = util_calloc(CACHE_HINT_SETS * CACHE_HINT_WAYS, sizeof(*t->hints));
    return t;
}

void cache_thread_free(cache_thread_t *t)
{
    if (t == NULL)
        return;
    flight_thread_free(t->flights, 10000);
    if (t->nretries != 0)
        log_error("cache",
                  "%zu generation bumps never reached Redis; other processes may serve older bodies "
                  "until their TTL",
                  t->nretries);
    while (!h2o_linklist_is_empty(&t->retries)) {
        cache_bump_req_t *b = H2O_STRUCT_FROM_MEMBER(cache_bump_req_t, retry, t->retries.next);
        h2o_linklist_unlink(&b->retry);
        waiter_detach(&b->waiter);
        free(b);
    }
    loop_timer_dispose(&t->retry_timer);
    free(t->hints);
    free(t);
}

flight_thread_t *cache_flights(cache_thread_t *t)
{
    return t->flights;
}

/* Whether reads should try the cache now: enabled and Redis connected. */
static int cache_usable(const cache_thread_t *t)
{
    return config.cache_enabled && t != NULL && redis_client_ready(t->redis);
}

/* ---- reads ---- */

/*
 * The hints: a set-associative table, so a scope's hint stays until CACHE_HINT_WAYS
 * other scopes of its set were used more recently. (Mapped to one slot each, two scopes
 * sharing a slot pushed each other out at every read, and each such read paid for the
 * function call: 13 % of the reads of 640 scopes. Eight ways, as with four, five scopes
 * of one set read in turn would push out each other's hint at every read.)
 */
static cache_hint_t *cache_hint_set(cache_thread_t *t, uint64_t hash)
{
    return &t->hints[((hash >> 32) % CACHE_HINT_SETS) * CACHE_HINT_WAYS]; /* bit 0 is always set */
}

/* The hint for genkey (whose hash is hash), or NULL. */
static cache_hint_t *cache_hint_find(cache_thread_t *t, uint64_t hash, const char *genkey)
{
    cache_hint_t *set = cache_hint_set(t, hash);
    for (size_t i = 0; i != CACHE_HINT_WAYS; ++i)
        if (set[i].hash == hash && strcmp(set[i].key, genkey) == 0) {
            set[i].used = ++t->hint_clock;
            return &set[i];
        }
    return NULL;
}

/* Remembers gen as genkey's generation, in its hint or in the least recently used of its set. */
static void cache_hint_store(cache_thread_t *t, uint64_t hash, const char *genkey, size_t genkeylen, const char *gen,
                             size_t genlen)
{
    cache_hint_t *set = cache_hint_set(t, hash), *h = cache_hint_find(t, hash, genkey);
    if (h == NULL) {
        h = &set[0]; /* an empty way (used 0) or else the least recently used one */
        for (size_t i = 1; i != CACHE_HINT_WAYS; ++i)
            if (set[i].used < h->used)
                h = &set[i];
    }
    h->hash = hash;
    h->used = ++t->hint_clock;
    memcpy(h->key, genkey, genkeylen + 1);
    memcpy(h->gen, gen, genlen);
    h->genlen = (uint32_t)genlen;
}

/*
 * Reads. The generation and the value must be read together, atomically. The function
 * call (FCALL conversa_get_2) does that in one round trip but runs Lua, which costs
 * Redis more than the read itself. So each thread remembers the last generation it saw
 * per scope (a hint, never trusted) and asks MGET <generation key> <key at the hinted
 * generation>: one round trip, one atomic command. When the generation read is the
 * hinted one, the value is the current generation's; when it moved, a second GET reads
 * the key at the generation just read; when it does not exist yet, the function call
 * creates it.
 */
typedef struct cache_get_req {
    cache_thread_t *thread;
    waiter_t waiter;
    cache_get_cb cb;
    void *data;
    uint64_t hash; /* of genkey, never 0 */
    size_t genkeylen, prefixlen, variantlen, keylen, askedlen;
    char asked[CACHE_GEN_MAX]; /* the generation g->key was built with (the hint may change meanwhile) */
    char genkey[CACHE_GEN_KEY_MAX];
    char prefix[64];
    char variant[CACHE_VARIANT_MAX];
    char key[CACHE_KEY_MAX]; /* the key asked for by MGET or GET */
} cache_get_req_t;

static void cache_get_cancel(waiter_t *w)
{
    cache_get_req_t *g = H2O_STRUCT_FROM_MEMBER(cache_get_req_t, waiter, w);
    g->cb = NULL; /* the record is freed by its last Redis callback */
}

/* Answers the caller (unless it went away) and frees g. */
static void cache_get_done(cache_get_req_t *g, cache_outcome_t outcome, const char *value, size_t len)
{
    cache_get_cb cb = g->cb;
    waiter_detach(&g->waiter);
    if (cb != NULL)
        cb(g->data, outcome, g->key, g->keylen, value, len);
    free(g);
}

static void cache_get_fail(cache_get_req_t *g, const char *error)
{
    cache_check_error(g->thread, error);
    if (error != NULL)
        log_debug("cache", "cache unavailable: %s", error);
    g->keylen = 0;
    cache_get_done(g, CACHE_UNAVAILABLE, NULL, 0);
}

/* Makes g->key "<prefix>:g<gen>:<variant>"; -1 when it does not fit. */
static int cache_get_key(cache_get_req_t *g, const char *gen, size_t genlen)
{
    util_fmt_t f = util_fmt_on(g->key, sizeof(g->key));
    util_fmt_mem(&f, g->prefix, g->prefixlen);
    util_fmt_lit(&f, ":g");
    util_fmt_mem(&f, gen, genlen);
    util_fmt_lit(&f, ":");
    util_fmt_mem(&f, g->variant, g->variantlen);
    g->keylen = f.full ? 0 : f.len;
    return f.full ? -1 : 0;
}

/* Remembers gen as the latest generation of g's scope, and makes g->key its key. */
static int cache_get_use_gen(cache_get_req_t *g, const char *gen, size_t genlen)
{
    if (genlen == 0 || genlen >= CACHE_GEN_MAX)
        return -1;
    if (cache_get_key(g, gen, genlen) != 0)
        return -1;
    cache_hint_store(g->thread, g->hash, g->genkey, g->genkeylen, gen, genlen);
    return 0;
}

/* The value read for g->key: a hit, or a miss (nil). */
static void cache_get_answer(cache_get_req_t *g, const redisReply *val)
{
    if (val->type == REDIS_REPLY_STRING)
        cache_get_done(g, CACHE_HIT, val->str, val->len);
    else
        cache_get_done(g, CACHE_MISS, NULL, 0);
}

static void cache_on_value(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    cache_get_req_t *g = data;
    (void)rtt_ns;
    if (error != NULL || reply == NULL)
        cache_get_fail(g, error);
    else
        cache_get_answer(g, reply);
}

/* conversa_get_2 answers {generation, value at that generation}. */
static void cache_on_function(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    cache_get_req_t *g = data;
    (void)rtt_ns;
    if (error != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        cache_get_fail(g, error);
        return;
    }
    redisReply *gen = reply->element[0];
    if (cache_get_use_gen(g, gen->str, gen->len) != 0) {
        cache_get_fail(g, "unusable generation");
        return;
    }
    cache_get_answer(g, reply->element[1]);
}

static void cache_get_by_function(cache_get_req_t *g)
{
    cache_thread_t *t = g->thread;
    cache_ensure_library(t);
    const char *argv[] = {"FCALL", "conversa_get_2", "1", g->genkey, g->prefix, g->variant};
    size_t len[] = {5, 14, 1, g->genkeylen, g->prefixlen, g->variantlen};
    redis_command(t->redis, cache_on_function, g, NULL, 6, argv, len);
}

static void cache_on_mget(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    cache_get_req_t *g = data;
    (void)rtt_ns;
    if (error != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        cache_get_fail(g, error);
        return;
    }
    redisReply *gen = reply->element[0], *val = reply->element[1];
    if (gen->type != REDIS_REPLY_STRING) {
        cache_get_by_function(g); /* no generation yet: the function creates it */
        return;
    }
    if (gen->len == g->askedlen && memcmp(gen->str, g->asked, gen->len) == 0) {
        /* the generation g->key was built with is the current one: the value is current */
        cache_get_answer(g, val);
        return;
    }
    if (cache_get_use_gen(g, gen->str, gen->len) != 0) {
        cache_get_fail(g, "unusable generation");
        return;
    }
    const char *argv[] = {"GET", g->key};
    size_t len[] = {3, g->keylen};
    redis_command(g->thread->redis, cache_on_value, g, NULL, 2, argv, len);
}

void cache_get(cache_thread_t *t, cache_kind_t kind, int64_t company, int64_t scope_id, const char *variant,
               cache_get_cb cb, void *data, h2o_linklist_t *waiters)
{
    size_t vlen = strlen(variant);
    if (!cache_usable(t) || vlen >= CACHE_VARIANT_MAX) {
        cb(data, CACHE_UNAVAILABLE, NULL, 0, NULL, 0);
        return;
    }
    cache_get_req_t *g = util_malloc(sizeof(*g));
    g->thread = t;
    g->cb = cb;
    g->data = data;
    g->waiter = (waiter_t){.cancel = cache_get_cancel};
    g->keylen = 0;
    cache_scope_t scope = cache_kind_scopes[kind];
    g->genkeylen = cache_gen_key(g->genkey, sizeof(g->genkey), company, scope, scope_id);
    g->prefixlen = cache_company_key(g->prefix, sizeof(g->prefix), company, "", cache_kind_names[kind],
                                     cache_scope_has_id(scope), scope_id);
    if (g->genkeylen == 0 || g->prefixlen == 0) {
        free(g);
        cb(data, CACHE_UNAVAILABLE, NULL, 0, NULL, 0);
        return;
    }
    memcpy(g->variant, variant, vlen + 1);
    g->variantlen = vlen;
    g->hash = util_hash(g->genkey, g->genkeylen) | 1;
    waiter_attach(&g->waiter, waiters);
    const cache_hint_t *h = cache_hint_find(t, g->hash, g->genkey);
    if (h == NULL) {
        cache_get_by_function(g);
        return;
    }
    if (cache_get_key(g, h->gen, h->genlen) != 0) {
        cache_get_fail(g, "key too long");
        return;
    }
    memcpy(g->asked, h->gen, h->genlen);
    g->askedlen = h->genlen;
    const char *argv[] = {"MGET", g->genkey, g->key};
    size_t len[] = {4, g->genkeylen, g->keylen};
    redis_command(t->redis, cache_on_mget, g, NULL, 3, argv, len);
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
        /* one line per outage, not one per write */
        if (t->nretries == 0)
            log_warn("cache", "generation bumps fail (%s); keeping them until Redis takes them", error);
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
        if (--b->thread->nretries == 0)
            log_info("cache", "every queued generation bump has landed");
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
    const char *argv[3 + CACHE_BUMP_MAX_GENS] = {"FCALL", "conversa_bump_2", nkeys};
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
