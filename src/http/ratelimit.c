#include "http/ratelimit.h"
#include "core/config.h"
#include "core/log.h"
#include "core/throttle.h"
#include "core/timer.h"
#include "core/util.h"
#include "ops/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATELIMIT_BLOCKED_SLOTS 4096 /* per thread; a collision only costs a Redis call */

/*
 * KEYS[i]: a counter; ARGV[1..12]: points, window ms and block ms of each group;
 * ARGV[11 + 2i], ARGV[12 + 2i]: the group (0-3) of KEYS[i] and how many requests of
 * the turn it counts. Each key is counted once with all of its turn's requests, which
 * the caller numbers in arrival order: the r-th of them has count n - m + r, exactly
 * what one call each would have given it. Returns per key the count after the turn,
 * the ms until the key resets as its window stood, and as it stands after a block this
 * turn started (the same when none did).
 */
static const char ratelimit_source[] = "local limits = {}\n"
                                       "for g = 0, 3 do\n"
                                       "  limits[g] = {tonumber(ARGV[3 * g + 1]), tonumber(ARGV[3 * g + 2]),\n"
                                       "               tonumber(ARGV[3 * g + 3])}\n"
                                       "end\n"
                                       "local out = {}\n"
                                       "for i = 1, #KEYS do\n"
                                       "  local l = limits[tonumber(ARGV[11 + 2 * i])]\n"
                                       "  local m = tonumber(ARGV[12 + 2 * i])\n"
                                       "  local points, window, block = l[1], l[2], l[3]\n"
                                       "  local n = redis.call('INCRBY', KEYS[i], m)\n"
                                       "  local ttl = window\n"
                                       "  if n == m then\n"
                                       "    redis.call('PEXPIRE', KEYS[i], window)\n"
                                       "  else\n"
                                       "    ttl = redis.call('PTTL', KEYS[i])\n"
                                       "    if ttl < 0 then redis.call('PEXPIRE', KEYS[i], window); ttl = window end\n"
                                       "  end\n"
                                       "  local after = ttl\n"
                                       "  if block > 0 and n > points and n - m <= points then\n"
                                       "    redis.call('PEXPIRE', KEYS[i], block)\n"
                                       "    after = block\n"
                                       "  end\n"
                                       "  out[3 * i - 2] = n\n"
                                       "  out[3 * i - 1] = ttl\n"
                                       "  out[3 * i] = after\n"
                                       "end\n"
                                       "return out\n";

static redis_script_t ratelimit_script = REDIS_SCRIPT_INIT(ratelimit_source);

static const char *const ratelimit_names[RATELIMIT_GROUP_MAX] = {"default", "webhooks", "token", "ip"};

typedef struct ratelimit_blocked {
    uint64_t hash;
    uint64_t until_ns;
} ratelimit_blocked_t;

/* A turn's distinct keys: 1 + 12 + 3 per key arguments must fit a script call. */
#define RATELIMIT_BATCH_KEYS  ((REDIS_EVAL_MAX_ARGS - 13) / 3)
#define RATELIMIT_BATCH_CALLS 256

/* One call of the script for the checks of one loop turn. Owns copies of its keys (a
 * NOSCRIPT answer sends them again); a check cancelled meanwhile leaves a NULL. */
typedef struct ratelimit_batch {
    ratelimit_t *rl;
    size_t ncalls, nkeys;
    ratelimit_call_t *calls[RATELIMIT_BATCH_CALLS];
    uint8_t key_of[RATELIMIT_BATCH_CALLS][RATELIMIT_KEYS];   /* a call's keys among the distinct ones */
    uint32_t ordinal[RATELIMIT_BATCH_CALLS][RATELIMIT_KEYS]; /* and its place among their requests, from 1 */
    uint64_t hashes[RATELIMIT_BATCH_KEYS];
    uint32_t times[RATELIMIT_BATCH_KEYS]; /* requests counted against each key */
    char keys[RATELIMIT_BATCH_KEYS][RATELIMIT_KEY_MAX + 16];
    char groups[RATELIMIT_BATCH_KEYS][2];
    char counts[RATELIMIT_BATCH_KEYS][12];
    char limits[12][24];
    char numkeys[8];
    const char *argv[REDIS_EVAL_MAX_ARGS];
    size_t argvlen[REDIS_EVAL_MAX_ARGS];
    redis_eval_t eval;
} ratelimit_batch_t;

struct ratelimit {
    h2o_loop_t *loop;
    redis_client_t *redis;
    metrics_shard_t *metrics;
    int fallback;            /* the last decision was made in process */
    ratelimit_batch_t *open; /* gathering this turn's checks */
    loop_defer_t flush;      /* sends the open batch after this turn's I/O */
    ratelimit_blocked_t blocked[RATELIMIT_BLOCKED_SLOTS];
};

static const config_limit_t *ratelimit_limit(ratelimit_group_t g)
{
    switch (g) {
    case RATELIMIT_PUBLIC:
        return &config.limit_public;
    case RATELIMIT_WEBHOOK:
        return &config.limit_webhook;
    case RATELIMIT_TOKEN:
        return &config.limit_token;
    default:
        return &config.limit_ip;
    }
}

static void ratelimit_init_metrics(void)
{
    metrics_ratelimit_init(ratelimit_names, RATELIMIT_GROUP_MAX);
}

static void ratelimit_on_flush(loop_defer_t *d);

ratelimit_t *ratelimit_new(h2o_loop_t *loop, redis_client_t *redis, metrics_shard_t *metrics)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ratelimit_init_metrics);
    ratelimit_t *rl = util_calloc(1, sizeof(*rl));
    rl->loop = loop;
    rl->redis = redis;
    rl->metrics = metrics;
    loop_defer_init(&rl->flush, loop, ratelimit_on_flush);
    return rl;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    loop_defer_dispose(&rl->flush);
    free(rl->open); /* its checks were cancelled with their requests */
    free(rl);
}

static ratelimit_blocked_t *ratelimit_slot(ratelimit_t *rl, uint64_t hash)
{
    return &rl->blocked[hash % RATELIMIT_BLOCKED_SLOTS];
}

static void ratelimit_set_fallback(ratelimit_t *rl, int on)
{
    if (rl->fallback == on)
        return;
    rl->fallback = on;
    metrics_gauge_set(rl->metrics, METRICS_RATELIMIT_FALLBACK, on);
    if (on)
        log_warn("ratelimit", "Redis unavailable: limiting in process");
    else
        log_info("ratelimit", "Redis is back: limits are shared again");
}

/* Turns (count, ms left) per key into a verdict, remembers blocked keys, counts. */
static void ratelimit_decide(ratelimit_call_t *c, const uint64_t *counts, const uint64_t *ms_left)
{
    ratelimit_t *rl = c->rl;
    ratelimit_verdict_t v = {.allowed = 1, .n = c->n};
    uint64_t now = util_now_ns(), wait_ms = 0;
    for (size_t i = 0; i != c->n; ++i) {
        const config_limit_t *lim = ratelimit_limit(c->groups[i]);
        v.items[i].group = c->groups[i];
        v.items[i].remaining = counts[i] >= lim->points ? 0 : lim->points - counts[i];
        v.items[i].reset_s = (ms_left[i] + 999) / 1000;
        if (counts[i] > lim->points) {
            v.allowed = 0;
            if (ms_left[i] > wait_ms)
                wait_ms = ms_left[i];
            ratelimit_blocked_t *b = ratelimit_slot(rl, c->hashes[i]);
            b->hash = c->hashes[i];
            b->until_ns = now + ms_left[i] * 1000000u;
        }
    }
    v.retry_after_s = (unsigned)((wait_ms + 999) / 1000);
    for (size_t i = 0; i != c->n; ++i)
        metrics_ratelimit_add(rl->metrics, c->groups[i],
                              v.allowed ? METRICS_RATELIMIT_ALLOWED : METRICS_RATELIMIT_LIMITED);
    c->cb(c->data, &v);
}

static void ratelimit_local(ratelimit_call_t *c)
{
    uint64_t counts[RATELIMIT_KEYS], ms_left[RATELIMIT_KEYS];
    for (size_t i = 0; i != c->n; ++i) {
        const config_limit_t *lim = ratelimit_limit(c->groups[i]);
        counts[i] = throttle_hit(c->keys[i], strlen(c->keys[i]), lim->points, (uint64_t)lim->duration_s * 1000,
                                 (uint64_t)lim->block_s * 1000, &ms_left[i]);
    }
    metrics_add(c->rl->metrics, METRICS_RATELIMIT_FALLBACKS, 1);
    ratelimit_set_fallback(c->rl, 1);
    ratelimit_decide(c, counts, ms_left);
}

static void ratelimit_call_cancel(waiter_t *w)
{
    ratelimit_call_t *c = util_container_of(w, ratelimit_call_t, waiter);
    c->batch->calls[c->slot] = NULL;
}

static void ratelimit_batch_on_reply(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    ratelimit_batch_t *b = data;
    (void)rtt_ns;
    int usable = error == NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 * b->nkeys;
    for (size_t i = 0; usable && i != reply->elements; ++i)
        usable = reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer >= 0;
    if (!usable)
        log_debug("ratelimit", "Redis answer unusable (%s)", error != NULL ? error : "unexpected reply");
    else
        ratelimit_set_fallback(b->rl, 0);
    for (size_t k = 0; k != b->ncalls; ++k) {
        ratelimit_call_t *c = b->calls[k];
        if (c == NULL)
            continue; /* its request is gone */
        waiter_detach(&c->waiter);
        if (!usable) {
            ratelimit_local(c);
            continue;
        }
        uint64_t counts[RATELIMIT_KEYS], ms_left[RATELIMIT_KEYS];
        for (size_t i = 0; i != c->n; ++i) {
            size_t d = b->key_of[k][i];
            uint64_t n = (uint64_t)reply->element[3 * d]->integer,
                     before = (uint64_t)reply->element[3 * d + 1]->integer,
                     after = (uint64_t)reply->element[3 * d + 2]->integer;
            /* the key's count before the turn, then this request's place in it */
            counts[i] = (n >= b->times[d] ? n - b->times[d] : 0) + b->ordinal[k][i];
            ms_left[i] = counts[i] > ratelimit_limit(c->groups[i])->points ? after : before;
        }
        ratelimit_decide(c, counts, ms_left);
    }
    free(b);
}

/* Sends the gathered checks as one call of the script. */
static void ratelimit_send(ratelimit_t *rl)
{
    ratelimit_batch_t *b = rl->open;
    rl->open = NULL;
    loop_defer_cancel(&rl->flush);
    if (b == NULL)
        return;
    int k = 0;
    snprintf(b->numkeys, sizeof(b->numkeys), "%zu", b->nkeys);
    b->argv[k] = b->numkeys;
    b->argvlen[k++] = strlen(b->numkeys);
    for (size_t i = 0; i != b->nkeys; ++i) {
        b->argv[k] = b->keys[i];
        b->argvlen[k++] = strlen(b->keys[i]);
    }
    for (int g = 0; g != RATELIMIT_GROUP_MAX; ++g) {
        const config_limit_t *lim = ratelimit_limit((ratelimit_group_t)g);
        snprintf(b->limits[3 * g], 24, "%u", lim->points);
        snprintf(b->limits[3 * g + 1], 24, "%llu", (unsigned long long)lim->duration_s * 1000);
        snprintf(b->limits[3 * g + 2], 24, "%llu", (unsigned long long)lim->block_s * 1000);
        for (int j = 0; j != 3; ++j) {
            b->argv[k] = b->limits[3 * g + j];
            b->argvlen[k++] = strlen(b->limits[3 * g + j]);
        }
    }
    for (size_t i = 0; i != b->nkeys; ++i) {
        b->argv[k] = b->groups[i];
        b->argvlen[k++] = 1;
        b->argv[k] = b->counts[i];
        b->argvlen[k++] = (size_t)snprintf(b->counts[i], sizeof(b->counts[i]), "%" PRIu32, b->times[i]);
    }
    redis_eval(rl->redis, &b->eval, &ratelimit_script, k, b->argv, b->argvlen, ratelimit_batch_on_reply, b, NULL);
}

static void ratelimit_on_flush(loop_defer_t *d)
{
    ratelimit_send(util_container_of(d, ratelimit_t, flush));
}

void ratelimit_check(ratelimit_t *rl, ratelimit_call_t *c, size_t n, const ratelimit_group_t *groups,
                     const char *const *keys, ratelimit_cb cb, void *data, h2o_linklist_t *waiters)
{
    if (n < 1 || n > RATELIMIT_KEYS)
        util_fatal("ratelimit_check: %zu keys", n);
    memset(&c->waiter, 0, sizeof(c->waiter));
    c->rl = rl;
    c->cb = cb;
    c->data = data;
    c->n = n;
    c->batch = NULL;
    uint64_t now = util_now_ns(), blocked_ns = 0;
    for (size_t i = 0; i != n; ++i) {
        c->groups[i] = groups[i];
        util_fmt_t f = util_fmt_on(c->keys[i], sizeof(c->keys[i])); /* "rl:<group>:<key, cut>" */
        util_fmt_lit(&f, "rl:");
        util_fmt_str(&f, ratelimit_names[groups[i]]);
        util_fmt_lit(&f, ":");
        util_fmt_mem(&f, keys[i], strnlen(keys[i], RATELIMIT_KEY_MAX));
        uint64_t h = c->hashes[i] = util_hash(c->keys[i], f.len);
        ratelimit_blocked_t *b = ratelimit_slot(rl, h);
        if (b->hash == h && b->until_ns > now && b->until_ns - now > blocked_ns)
            blocked_ns = b->until_ns - now;
    }
    if (blocked_ns != 0) {
        /* remembered from Redis's answer: refused without asking again */
        ratelimit_verdict_t v = {.allowed = 0, .n = n};
        for (size_t i = 0; i != n; ++i) {
            v.items[i].group = groups[i];
            v.items[i].remaining = 0;
            v.items[i].reset_s = (blocked_ns + 999999999u) / 1000000000u;
            metrics_ratelimit_add(rl->metrics, groups[i], METRICS_RATELIMIT_BLOCKED);
        }
        v.retry_after_s = (unsigned)v.items[0].reset_s;
        cb(data, &v);
        return;
    }
    if (rl->redis == NULL || !redis_client_ready(rl->redis)) {
        ratelimit_local(c);
        return;
    }
    ratelimit_batch_t *b = rl->open;
    if (b != NULL && (b->ncalls == RATELIMIT_BATCH_CALLS || b->nkeys + n > RATELIMIT_BATCH_KEYS)) {
        ratelimit_send(rl);
        b = NULL;
    }
    if (b == NULL) {
        b = rl->open = util_malloc(sizeof(*b));
        b->rl = rl;
        b->ncalls = b->nkeys = 0;
        loop_defer_arm(&rl->flush);
    }
    c->batch = b;
    c->slot = b->ncalls;
    b->calls[b->ncalls] = c;
    for (size_t i = 0; i != n; ++i) {
        size_t d = 0;
        while (d != b->nkeys && (b->hashes[d] != c->hashes[i] || strcmp(b->keys[d], c->keys[i]) != 0))
            ++d;
        if (d == b->nkeys) {
            memcpy(b->keys[d], c->keys[i], sizeof(c->keys[i]));
            b->hashes[d] = c->hashes[i];
            b->times[d] = 0;
            b->groups[d][0] = (char)('0' + groups[i]);
            b->groups[d][1] = '\0';
            ++b->nkeys;
        }
        b->key_of[b->ncalls][i] = (uint8_t)d;
        b->ordinal[b->ncalls][i] = ++b->times[d];
    }
    ++b->ncalls;
    c->waiter.cancel = ratelimit_call_cancel;
    waiter_attach(&c->waiter, waiters);
}

void ratelimit_headers(const ratelimit_verdict_t *v, char *policy, size_t policy_cap, char *state, size_t state_cap)
{
    /* per key: "<name>";q=<points>;w=<window s> and "<name>";r=<remaining>;t=<reset s> */
    util_fmt_t p = util_fmt_on(policy, policy_cap), s = util_fmt_on(state, state_cap);
    for (size_t i = 0; i != v->n; ++i) {
        const config_limit_t *lim = ratelimit_limit(v->items[i].group);
        const char *name = ratelimit_names[v->items[i].group];
        if (i != 0) {
            util_fmt_lit(&p, ", ");
            util_fmt_lit(&s, ", ");
        }
        util_fmt_lit(&p, "\"");
        util_fmt_str(&p, name);
        util_fmt_lit(&p, "\";q=");
        util_fmt_u64(&p, lim->points);
        util_fmt_lit(&p, ";w=");
        util_fmt_u64(&p, lim->duration_s);
        util_fmt_lit(&s, "\"");
        util_fmt_str(&s, name);
        util_fmt_lit(&s, "\";r=");
        util_fmt_u64(&s, v->items[i].remaining);
        util_fmt_lit(&s, ";t=");
        util_fmt_u64(&s, v->items[i].reset_s);
    }
}
