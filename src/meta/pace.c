#include "meta/pace.h"
#include "core/log.h"
#include "core/util.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * ARGV[1] 'take': KEYS[1] the connection's bucket, KEYS[2..] one pair bucket per send;
 *   ARGV[2] ms per token, ARGV[3] burst, ARGV[4] pair ms per token, ARGV[5] pair burst.
 *   Returns per send 0 (granted: both tokens taken) or the ms to wait. Once the
 *   connection's bucket is empty, the k-th send refused for it waits until the k-th
 *   token to come, and its pair bucket is not looked at: a batch asked at an empty
 *   bucket comes back spread over the next tokens, instead of every send retrying at
 *   the next token and one of them getting it (each retry costing a pair lookup per
 *   send of the batch; that was most of Redis's work during a campaign).
 * ARGV[1] 'penalize': KEYS[1] a bucket; ARGV[2] ms per token, ARGV[3] burst, ARGV[4]
 *   penalty ms: the bucket owes that many ms of sends, at most once per penalty window.
 */
static const char pace_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local function load(key, per, burst)\n"
    "  local b = redis.call('HMGET', key, 'tokens', 'ts', 'pen')\n"
    "  local tokens = tonumber(b[1]) or burst\n"
    "  local ts = tonumber(b[2]) or now\n"
    "  if now > ts then tokens = math.min(burst, tokens + (now - ts) / per) end\n"
    "  return tokens, tonumber(b[3]) or 0\n"
    "end\n"
    "local function wait_for(tokens, per)\n"
    "  if tokens >= 1 then return 0 end\n"
    "  return math.ceil((1 - tokens) * per)\n"
    "end\n"
    "local per, burst = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local tokens, pen = load(KEYS[1], per, burst)\n"
    "if ARGV[1] == 'penalize' then\n"
    "  if now >= pen then\n"
    "    tokens = math.min(tokens, 0) - tonumber(ARGV[4]) / per\n"
    "    pen = now + tonumber(ARGV[4])\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'pen', pen)\n"
    "  redis.call('PEXPIRE', KEYS[1], 3600000)\n"
    "  return 0\n"
    "end\n"
    "local pper, pburst = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local out = {}\n"
    "local short = 0\n"
    "for i = 2, #KEYS do\n"
    "  if tokens >= 1 then\n"
    "    local pt, ppen = load(KEYS[i], pper, pburst)\n"
    "    local pw = wait_for(pt, pper)\n"
    "    if pw == 0 then\n"
    "      tokens = tokens - 1\n"
    "      redis.call('HSET', KEYS[i], 'tokens', tostring(pt - 1), 'ts', now, 'pen', ppen)\n"
    "      redis.call('PEXPIRE', KEYS[i], pper * pburst + 60000)\n"
    "    end\n"
    "    out[#out + 1] = pw\n"
    "  else\n"
    "    short = short + 1\n"
    "    out[#out + 1] = math.ceil((short - tokens) * per)\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'pen', pen)\n"
    "redis.call('PEXPIRE', KEYS[1], 3600000)\n"
    "return out\n";

static redis_script_t pace_script_ref = REDIS_SCRIPT_INIT(pace_script);

struct meta_pace {
    redis_client_t *redis;
};

/* ---- this process's buckets, while Redis is away ---- */

#define PACE_LOCAL_MAX 256

static struct {
    pthread_mutex_t lock;
    size_t n;
    struct {
        int64_t conn;
        double tokens;
        uint64_t ts_ms;
    } b[PACE_LOCAL_MAX];
} pace_local = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double pace_burst(unsigned rate)
{
    double b = rate / 20.0;
    return b < 1 ? 1 : b;
}

static void pace_take_local(int64_t conn, unsigned rate, int64_t *waits, size_t n)
{
    double per = 1000.0 / (rate ? rate : 1);
    uint64_t now = util_now_ns() / 1000000;
    pthread_mutex_lock(&pace_local.lock);
    size_t i = 0;
    while (i < pace_local.n && pace_local.b[i].conn != conn)
        ++i;
    if (i == pace_local.n) {
        if (pace_local.n == PACE_LOCAL_MAX)
            i = (size_t)(conn % PACE_LOCAL_MAX); /* reuse a slot: a fresh bucket is at worst one burst */
        else
            pace_local.n++;
        pace_local.b[i].conn = conn;
        pace_local.b[i].tokens = pace_burst(rate);
        pace_local.b[i].ts_ms = now;
    }
    double tokens = pace_local.b[i].tokens + (double)(now - pace_local.b[i].ts_ms) / per;
    if (tokens > pace_burst(rate))
        tokens = pace_burst(rate);
    for (size_t k = 0; k < n; ++k) {
        if (tokens >= 1) {
            tokens -= 1;
            waits[k] = 0;
        } else {
            waits[k] = (int64_t)ceil((1 - tokens) * per);
        }
    }
    pace_local.b[i].tokens = tokens;
    pace_local.b[i].ts_ms = now;
    pthread_mutex_unlock(&pace_local.lock);
}

/* ---- Redis ---- */

typedef struct pace_req {
    redis_client_t *redis;
    int64_t conn;
    unsigned rate;
    size_t n;
    redis_eval_t eval;
    int argc;
    char **argv;
    size_t *argvlen;
    meta_pace_cb cb;
    void *data;
} pace_req_t;

static void pace_req_free(pace_req_t *q)
{
    for (int i = 0; i < q->argc; ++i)
        free(q->argv[i]);
    free(q->argv);
    free(q->argvlen);
    free(q);
}

static void pace_on_reply(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    pace_req_t *q = data;
    (void)rtt_ns;
    const char *why = error != NULL ? error : reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
    if (q->cb == NULL) { /* a penalty */
        if (why != NULL)
            log_debug("pace", "penalty not recorded: %s", why);
        pace_req_free(q);
        return;
    }
    int64_t *waits = util_calloc(q->n ? q->n : 1, sizeof(int64_t));
    if (why == NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == q->n) {
        for (size_t i = 0; i < q->n; ++i)
            waits[i] = reply->element[i]->type == REDIS_REPLY_INTEGER ? reply->element[i]->integer : 1000;
    } else {
        log_debug("pace", "Redis unavailable (%s): pacing in process", why != NULL ? why : "unexpected reply");
        pace_take_local(q->conn, q->rate, waits, q->n);
    }
    q->cb(q->data, waits, q->n);
    free(waits);
    pace_req_free(q);
}

static void pace_send(pace_req_t *q)
{
    redis_eval(q->redis, &q->eval, &pace_script_ref, q->argc, (const char *const *)q->argv, q->argvlen, pace_on_reply,
               q, NULL);
}

static pace_req_t *pace_req_new(meta_pace_t *p, int argc)
{
    pace_req_t *q = util_calloc(1, sizeof(*q));
    q->redis = p->redis;
    q->argc = argc;
    q->argv = util_calloc((size_t)argc, sizeof(char *));
    q->argvlen = util_calloc((size_t)argc, sizeof(size_t));
    return q;
}

static void pace_arg(pace_req_t *q, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void pace_arg(pace_req_t *q, int i, const char *fmt, ...)
{
    strbuf_t b;
    strbuf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    q->argv[i] = b.data != NULL ? b.data : util_strdup("");
    q->argvlen[i] = b.len;
}

meta_pace_t *meta_pace_new(redis_client_t *redis)
{
    meta_pace_t *p = util_calloc(1, sizeof(*p));
    p->redis = redis;
    return p;
}

void meta_pace_free(meta_pace_t *p)
{
    free(p);
}

void meta_pace_take(meta_pace_t *p, int64_t conn, unsigned rate, const char *const *to, size_t n, meta_pace_cb cb,
                    void *data)
{
    if (rate == 0)
        rate = 1;
    pace_req_t *q = pace_req_new(p, 1 + 1 + (int)n + 5);
    q->conn = conn;
    q->rate = rate;
    q->n = n;
    q->cb = cb;
    q->data = data;
    int k = 0;
    pace_arg(q, k++, "%zu", n + 1);
    pace_arg(q, k++, "{p:%" PRId64 "}:rate", conn);
    for (size_t i = 0; i < n; ++i)
        pace_arg(q, k++, "{p:%" PRId64 "}:pair:%s", conn, to[i]);
    pace_arg(q, k++, "take");
    pace_arg(q, k++, "%.6f", 1000.0 / rate);
    pace_arg(q, k++, "%.3f", pace_burst(rate));
    pace_arg(q, k++, "%d", META_PAIR_INTERVAL_MS);
    pace_arg(q, k++, "%d", META_PAIR_BURST);
    pace_send(q);
}

void meta_pace_penalize(meta_pace_t *p, int64_t conn, unsigned rate, const char *to)
{
    if (rate == 0)
        rate = 1;
    pace_req_t *q = pace_req_new(p, 6);
    q->conn = conn;
    q->rate = rate;
    int k = 0;
    pace_arg(q, k++, "1");
    if (to != NULL)
        pace_arg(q, k++, "{p:%" PRId64 "}:pair:%s", conn, to);
    else
        pace_arg(q, k++, "{p:%" PRId64 "}:rate", conn);
    pace_arg(q, k++, "penalize");
    pace_arg(q, k++, "%.6f", to != NULL ? (double)META_PAIR_INTERVAL_MS : 1000.0 / rate);
    pace_arg(q, k++, "%.3f", to != NULL ? (double)META_PAIR_BURST : pace_burst(rate));
    pace_arg(q, k++, "%d", to != NULL ? META_PAIR_INTERVAL_MS : META_PENALTY_MS);
    pace_send(q);
}
