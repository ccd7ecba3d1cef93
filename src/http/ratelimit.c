#include "http/ratelimit.h"
#include "core/config.h"
#include "core/log.h"
#include "core/throttle.h"
#include "core/util.h"
#include "ops/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATELIMIT_BLOCKED_SLOTS 4096 /* per thread; a collision only costs a Redis call */

/*
 * KEYS[i]: a counter; ARGV[3i-2..3i]: its points, window ms and block ms.
 * Returns, per key, the count so far and the ms until the key resets.
 */
static const char ratelimit_source[] = "local out = {}\n"
                                       "for i = 1, #KEYS do\n"
                                       "  local points = tonumber(ARGV[3 * i - 2])\n"
                                       "  local window = tonumber(ARGV[3 * i - 1])\n"
                                       "  local block = tonumber(ARGV[3 * i])\n"
                                       "  local n = redis.call('INCR', KEYS[i])\n"
                                       "  local ttl = window\n"
                                       "  if n == 1 then\n"
                                       "    redis.call('PEXPIRE', KEYS[i], window)\n"
                                       "  else\n"
                                       "    ttl = redis.call('PTTL', KEYS[i])\n"
                                       "    if ttl < 0 then redis.call('PEXPIRE', KEYS[i], window); ttl = window end\n"
                                       "  end\n"
                                       "  if n == points + 1 and block > 0 then\n"
                                       "    redis.call('PEXPIRE', KEYS[i], block)\n"
                                       "    ttl = block\n"
                                       "  end\n"
                                       "  out[2 * i - 1] = n\n"
                                       "  out[2 * i] = ttl\n"
                                       "end\n"
                                       "return out\n";

static redis_script_t ratelimit_script = REDIS_SCRIPT_INIT(ratelimit_source);

static const char *const ratelimit_names[RATELIMIT_GROUP_MAX] = {"default", "webhooks", "token", "ip"};

typedef struct ratelimit_blocked {
    uint64_t hash;
    uint64_t until_ns;
} ratelimit_blocked_t;

struct ratelimit {
    redis_client_t *redis;
    metrics_shard_t *metrics;
    int fallback; /* the last decision was made in process */
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

ratelimit_t *ratelimit_new(redis_client_t *redis, metrics_shard_t *metrics)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ratelimit_init_metrics);
    ratelimit_t *rl = util_calloc(1, sizeof(*rl));
    rl->redis = redis;
    rl->metrics = metrics;
    return rl;
}

void ratelimit_free(ratelimit_t *rl)
{
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
            ratelimit_blocked_t *b = ratelimit_slot(rl, util_hash(c->keys[i], strlen(c->keys[i])));
            b->hash = util_hash(c->keys[i], strlen(c->keys[i]));
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

static void ratelimit_on_reply(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    ratelimit_call_t *c = data;
    (void)rtt_ns;
    if (error != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 * c->n) {
        log_debug("ratelimit", "Redis answer unusable (%s)", error != NULL ? error : "unexpected reply");
        ratelimit_local(c);
        return;
    }
    uint64_t counts[RATELIMIT_KEYS], ms_left[RATELIMIT_KEYS];
    for (size_t i = 0; i != c->n; ++i) {
        redisReply *n = reply->element[2 * i], *t = reply->element[2 * i + 1];
        if (n->type != REDIS_REPLY_INTEGER || t->type != REDIS_REPLY_INTEGER) {
            ratelimit_local(c);
            return;
        }
        counts[i] = n->integer > 0 ? (uint64_t)n->integer : 0;
        ms_left[i] = t->integer > 0 ? (uint64_t)t->integer : 0;
    }
    ratelimit_set_fallback(c->rl, 0);
    ratelimit_decide(c, counts, ms_left);
}

void ratelimit_check(ratelimit_t *rl, ratelimit_call_t *c, size_t n, const ratelimit_group_t *groups,
                     const char *const *keys, ratelimit_cb cb, void *data, h2o_linklist_t *waiters)
{
    if (n < 1 || n > RATELIMIT_KEYS)
        util_fatal("ratelimit_check: %zu keys", n);
    c->rl = rl;
    c->cb = cb;
    c->data = data;
    c->n = n;
    uint64_t now = util_now_ns(), blocked_ns = 0;
    for (size_t i = 0; i != n; ++i) {
        c->groups[i] = groups[i];
        snprintf(c->keys[i], sizeof(c->keys[i]), "rl:%s:%.*s", ratelimit_names[groups[i]], RATELIMIT_KEY_MAX, keys[i]);
        uint64_t h = util_hash(c->keys[i], strlen(c->keys[i]));
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
    if (rl->redis == NULL) {
        ratelimit_local(c);
        return;
    }
    int k = 0;
    snprintf(c->nums[0], sizeof(c->nums[0]), "%zu", n);
    c->argv[k] = c->nums[0];
    c->argvlen[k++] = strlen(c->nums[0]);
    for (size_t i = 0; i != n; ++i) {
        c->argv[k] = c->keys[i];
        c->argvlen[k++] = strlen(c->keys[i]);
    }
    for (size_t i = 0; i != n; ++i) {
        const config_limit_t *lim = ratelimit_limit(groups[i]);
        char *p = c->nums[1 + 3 * i], *d = c->nums[2 + 3 * i], *b = c->nums[3 + 3 * i];
        snprintf(p, 24, "%u", lim->points);
        snprintf(d, 24, "%llu", (unsigned long long)lim->duration_s * 1000);
        snprintf(b, 24, "%llu", (unsigned long long)lim->block_s * 1000);
        c->argv[k] = p;
        c->argvlen[k++] = strlen(p);
        c->argv[k] = d;
        c->argvlen[k++] = strlen(d);
        c->argv[k] = b;
        c->argvlen[k++] = strlen(b);
    }
    redis_eval(rl->redis, &c->eval, &ratelimit_script, k, c->argv, c->argvlen, ratelimit_on_reply, c, waiters);
}

void ratelimit_headers(const ratelimit_verdict_t *v, char *policy, size_t policy_cap, char *state, size_t state_cap)
{
    size_t pl = 0, sl = 0;
    policy[0] = state[0] = '\0';
    for (size_t i = 0; i != v->n; ++i) {
        const config_limit_t *lim = ratelimit_limit(v->items[i].group);
        const char *name = ratelimit_names[v->items[i].group];
        if (pl < policy_cap)
            pl += (size_t)snprintf(policy + pl, policy_cap - pl, "%s\"%s\";q=%u;w=%u", i ? ", " : "", name, lim->points,
                                   lim->duration_s);
        if (sl < state_cap)
            sl += (size_t)snprintf(state + sl, state_cap - sl, "%s\"%s\";r=%llu;t=%llu", i ? ", " : "", name,
                                   (unsigned long long)v->items[i].remaining, (unsigned long long)v->items[i].reset_s);
    }
}
