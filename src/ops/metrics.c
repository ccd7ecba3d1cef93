#include "ops/metrics.h"
#include "ops/proc.h"
#include "core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_SHARDS 512
#define METRICS_HTTP_SLOTS 256 /* per shard; (route, method, status) triples seen */

/*
 * The plan's buckets, in seconds, with 0.5, 1 and 2.5 ms added: with the plan's alone,
 * everything between 0.1 and 5 ms is one bucket, where nearly every request of this
 * server falls, so neither a dashboard nor the p95 alert (interpolated inside a
 * bucket) could tell a 1 ms request from a 4 ms one.
 */
const double metrics_http_bounds[METRICS_HTTP_BUCKETS] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.015,
                                                          0.05,   0.1,    0.5,   1,      2.5,   5};
#define metrics_http_buckets metrics_http_bounds
#define METRICS_HTTP_NB      METRICS_HTTP_BUCKETS

static const double metrics_rtt_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1};
#define METRICS_RTT_NB (sizeof(metrics_rtt_buckets) / sizeof(metrics_rtt_buckets[0]))

static const char *const metrics_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"};
#define METRICS_METHOD_OTHER 7

typedef struct metrics_hist_slot {
    uint64_t key; /* 0 = free; written last by the owner, read first by scrapes */
    uint64_t buckets[METRICS_HTTP_NB];
    uint64_t count;
    uint64_t sum_ns;
} metrics_hist_slot_t;

typedef struct metrics_rtt_hist {
    uint64_t buckets[METRICS_RTT_NB];
    uint64_t count;
    uint64_t sum_ns;
} metrics_rtt_hist_t;

/* Sends per connection, with a per-second ring for the current rate (single writer). */
#define METRICS_RATE_SLOTS   16
#define METRICS_RATE_SECONDS 10
typedef struct metrics_conn {
    int64_t id; /* 0 = free; -1 = "other" */
    uint64_t sent, failed;
    uint64_t second[METRICS_RATE_SLOTS]; /* which second each slot counts */
    uint64_t count[METRICS_RATE_SLOTS];
} metrics_conn_t;

struct metrics_shard {
    uint64_t counters[METRICS_COUNTER_MAX];
    int64_t gauges[METRICS_GAUGE_MAX];
    metrics_rtt_hist_t rtt[METRICS_RTT_MAX];
    uint64_t cache[METRICS_CACHE_MAX][METRICS_CACHE_EVENT_MAX];
    uint64_t ratelimit[METRICS_RATELIMIT_GROUPS][METRICS_RATELIMIT_RESULT_MAX];
    metrics_conn_t conns[METRICS_CONNECTIONS_MAX + 1]; /* the last is "other" */
    uint64_t http_overflow;                            /* observations dropped because every slot was taken */
    metrics_hist_slot_t http[METRICS_HTTP_SLOTS];
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_shard_t *metrics_shards[METRICS_MAX_SHARDS];
static size_t metrics_nshards;
static const char *const *metrics_routes;
static size_t metrics_nroutes;
static const char *const *metrics_caches;
static size_t metrics_ncaches;
static const char *const *metrics_rl_groups;
static size_t metrics_rl_ngroups;
static void (*metrics_renderers[4])(strbuf_t *out);
static size_t metrics_nrenderers;
static metrics_shard_t metrics_fallback;
static pthread_mutex_t metrics_fallback_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread metrics_shard_t *metrics_current;

/* Single-writer increment: a relaxed load and store, no locked instruction. */
#define METRICS_BUMP(p, n) __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define METRICS_READ(p)    __atomic_load_n((p), __ATOMIC_RELAXED)

void metrics_init(const char *const *route_names, size_t nroutes)
{
    metrics_routes = route_names;
    metrics_nroutes = nroutes;
    pthread_mutex_lock(&metrics_lock);
    if (metrics_nshards == 0)
        metrics_shards[metrics_nshards++] = &metrics_fallback;
    pthread_mutex_unlock(&metrics_lock);
}

metrics_shard_t *metrics_shard_new(void)
{
    metrics_shard_t *s = util_calloc(1, sizeof(*s));
    pthread_mutex_lock(&metrics_lock);
    if (metrics_nshards == 0)
        metrics_shards[metrics_nshards++] = &metrics_fallback;
    if (metrics_nshards == METRICS_MAX_SHARDS)
        util_fatal("too many metrics shards");
    metrics_shards[metrics_nshards++] = s;
    pthread_mutex_unlock(&metrics_lock);
    metrics_current = s;
    return s;
}

void metrics_shard_bind(metrics_shard_t *shard)
{
    metrics_current = shard;
}

metrics_shard_t *metrics_shard(void)
{
    return metrics_current != NULL ? metrics_current : &metrics_fallback;
}

/*
 * The fallback shard may be written by several threads at once (start-up code,
 * background threads without a shard), so its writes take a lock.
 */
#define METRICS_WRITE(s, stmt)                                                                                         \
    do {                                                                                                               \
        if ((s) == &metrics_fallback) {                                                                                \
            pthread_mutex_lock(&metrics_fallback_lock);                                                                \
            stmt;                                                                                                      \
            pthread_mutex_unlock(&metrics_fallback_lock);                                                              \
        } else {                                                                                                       \
            stmt;                                                                                                      \
        }                                                                                                              \
    } while (0)

void metrics_add(metrics_shard_t *s, metrics_counter_t c, uint64_t n)
{
    METRICS_WRITE(s, METRICS_BUMP(&s->counters[c], n));
}

void metrics_cache_init(const char *const *names, size_t n)
{
    metrics_caches = names;
    metrics_ncaches = n < METRICS_CACHE_MAX ? n : METRICS_CACHE_MAX;
}

void metrics_cache_add(metrics_shard_t *s, unsigned cache, metrics_cache_event_t e)
{
    if (cache < METRICS_CACHE_MAX)
        METRICS_BUMP(&s->cache[cache][e], 1);
}

void metrics_ratelimit_init(const char *const *names, size_t n)
{
    metrics_rl_groups = names;
    metrics_rl_ngroups = n < METRICS_RATELIMIT_GROUPS ? n : METRICS_RATELIMIT_GROUPS;
}

void metrics_ratelimit_add(metrics_shard_t *s, unsigned group, metrics_ratelimit_result_t r)
{
    if (group < METRICS_RATELIMIT_GROUPS)
        METRICS_WRITE(s, METRICS_BUMP(&s->ratelimit[group][r], 1));
}

static void metrics_outbound_record(metrics_shard_t *s, int64_t conn, int sent)
{
    metrics_conn_t *c = &s->conns[METRICS_CONNECTIONS_MAX];
    for (size_t i = 0; i != METRICS_CONNECTIONS_MAX; ++i) {
        int64_t id = METRICS_READ(&s->conns[i].id);
        if (id == 0) {
            __atomic_store_n(&s->conns[i].id, conn, __ATOMIC_RELEASE);
            id = conn;
        }
        if (id == conn) {
            c = &s->conns[i];
            break;
        }
    }
    if (c == &s->conns[METRICS_CONNECTIONS_MAX])
        __atomic_store_n(&c->id, -1, __ATOMIC_RELEASE);
    if (!sent) {
        METRICS_BUMP(&c->failed, 1);
        return;
    }
    METRICS_BUMP(&c->sent, 1);
    uint64_t sec = util_now_ns() / 1000000000u;
    size_t k = sec % METRICS_RATE_SLOTS;
    if (METRICS_READ(&c->second[k]) != sec) {
        __atomic_store_n(&c->count[k], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&c->second[k], sec, __ATOMIC_RELAXED);
    }
    METRICS_BUMP(&c->count[k], 1);
}

void metrics_outbound(metrics_shard_t *s, int64_t conn, int sent)
{
    if (conn > 0)
        METRICS_WRITE(s, metrics_outbound_record(s, conn, sent));
}

void metrics_add_renderer(void (*render)(strbuf_t *out))
{
    pthread_mutex_lock(&metrics_lock);
    if (metrics_nrenderers == UTIL_ARRAY_SIZE(metrics_renderers))
        util_fatal("too many metrics renderers");
    metrics_renderers[metrics_nrenderers++] = render;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_gauge_add(metrics_shard_t *s, metrics_gauge_t g, int64_t delta)
{
    METRICS_WRITE(s, METRICS_BUMP(&s->gauges[g], delta));
}

void metrics_gauge_set(metrics_shard_t *s, metrics_gauge_t g, int64_t value)
{
    METRICS_WRITE(s, __atomic_store_n(&s->gauges[g], value, __ATOMIC_RELAXED));
}

static void metrics_rtt_record(metrics_rtt_hist_t *h, uint64_t ns)
{
    double secs = (double)ns / 1e9;
    for (size_t i = 0; i != METRICS_RTT_NB; ++i)
        if (secs <= metrics_rtt_buckets[i]) {
            METRICS_BUMP(&h->buckets[i], 1);
            break;
        }
    METRICS_BUMP(&h->count, 1);
    METRICS_BUMP(&h->sum_ns, ns);
}

void metrics_observe_rtt(metrics_shard_t *s, metrics_rtt_t which, uint64_t ns)
{
    METRICS_WRITE(s, metrics_rtt_record(&s->rtt[which], ns));
}

int metrics_method_id(const char *method, size_t len)
{
    for (int i = 0; i != METRICS_METHOD_OTHER; ++i)
        if (strlen(metrics_methods[i]) == len && memcmp(metrics_methods[i], method, len) == 0)
            return i;
    return METRICS_METHOD_OTHER;
}

static void metrics_http_record(metrics_shard_t *s, uint64_t key, uint64_t ns)
{
    size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 56) % METRICS_HTTP_SLOTS;
    for (size_t probe = 0; probe != METRICS_HTTP_SLOTS; ++probe) {
        metrics_hist_slot_t *slot = &s->http[(h + probe) % METRICS_HTTP_SLOTS];
        uint64_t k = METRICS_READ(&slot->key);
        if (k == 0) {
            /* Claim: the slot's figures are zero; publish the key with release so a
             * scrape that sees it sees zeroed figures at worst. */
            __atomic_store_n(&slot->key, key, __ATOMIC_RELEASE);
            k = key;
        }
        if (k != key)
            continue;
        double secs = (double)ns / 1e9;
        for (size_t i = 0; i != METRICS_HTTP_NB; ++i)
            if (secs <= metrics_http_buckets[i]) {
                METRICS_BUMP(&slot->buckets[i], 1);
                break;
            }
        METRICS_BUMP(&slot->count, 1);
        METRICS_BUMP(&slot->sum_ns, ns);
        return;
    }
    METRICS_BUMP(&s->http_overflow, 1);
}

void metrics_observe_http(metrics_shard_t *s, int route, int method, int status, uint64_t ns)
{
    if (status < 100 || status > 999)
        status = 999;
    uint64_t key = ((uint64_t)(route + 2) << 24) | ((uint64_t)method << 16) | (uint64_t)status;
    METRICS_WRITE(s, metrics_http_record(s, key, ns));
}

uint64_t metrics_counter_total(metrics_counter_t c)
{
    uint64_t sum = 0;
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i != metrics_nshards; ++i)
        sum += METRICS_READ(&metrics_shards[i]->counters[c]);
    pthread_mutex_unlock(&metrics_lock);
    return sum;
}

int64_t metrics_gauge_total(metrics_gauge_t g)
{
    int64_t sum = 0;
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i != metrics_nshards; ++i)
        sum += METRICS_READ(&metrics_shards[i]->gauges[g]);
    pthread_mutex_unlock(&metrics_lock);
    return sum;
}

void metrics_http_summary(metrics_http_summary_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i != metrics_nshards; ++i)
        for (size_t j = 0; j != METRICS_HTTP_SLOTS; ++j) {
            metrics_hist_slot_t *slot = &metrics_shards[i]->http[j];
            uint64_t key = __atomic_load_n(&slot->key, __ATOMIC_ACQUIRE);
            if (key == 0)
                continue;
            uint64_t count = METRICS_READ(&slot->count);
            out->count += count;
            out->sum_ns += METRICS_READ(&slot->sum_ns);
            for (size_t b = 0; b != METRICS_HTTP_NB; ++b)
                out->buckets[b] += METRICS_READ(&slot->buckets[b]);
            int status = (int)(key & 0xffff);
            if (status >= 500 && status <= 599)
                out->errors += count;
        }
    pthread_mutex_unlock(&metrics_lock);
}

uint64_t metrics_cache_total(metrics_cache_event_t e)
{
    uint64_t sum = 0;
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i != metrics_nshards; ++i)
        for (size_t c = 0; c != METRICS_CACHE_MAX; ++c)
            sum += METRICS_READ(&metrics_shards[i]->cache[c][e]);
    pthread_mutex_unlock(&metrics_lock);
    return sum;
}

/* ---- rendering ---- */

typedef struct metrics_family {
    const char *name;
    const char *type;
    const char *help;
} metrics_family_t;

static const metrics_family_t metrics_counter_families[METRICS_COUNTER_MAX] = {
    [METRICS_HTTP_ACCEPTED] = {"http_connections_accepted_total", "counter", "Client connections accepted."},
    [METRICS_HTTP_REFUSED] = {"http_connections_refused_total", "counter",
                              "Client connections closed at once because MAX_CONNECTIONS was reached."},
    [METRICS_PG_QUERIES] = {"db_queries_total", "counter", "PostgreSQL queries completed."},
    [METRICS_PG_ERRORS] = {"db_query_errors_total", "counter", "PostgreSQL queries that failed."},
    [METRICS_PG_REJECTED] = {"db_queries_rejected_total", "counter",
                             "PostgreSQL queries refused because the wait queue was full."},
    [METRICS_PG_PREPARES] = {"db_prepared_statements_total", "counter",
                             "Statements prepared on PostgreSQL connections; flat once every connection is warm."},
    [METRICS_PG_CONNECTS] = {"db_connections_opened_total", "counter", "PostgreSQL connections established."},
    [METRICS_PG_CONNECT_ERRORS] = {"db_connection_errors_total", "counter",
                                   "PostgreSQL connection attempts that failed or connections lost."},
    [METRICS_REDIS_COMMANDS] = {"redis_commands_total", "counter", "Redis commands answered."},
    [METRICS_REDIS_ERRORS] = {"redis_command_errors_total", "counter",
                              "Redis commands that failed, timed out or were cut by a disconnection."},
    [METRICS_REDIS_CONNECTS] = {"redis_connections_opened_total", "counter", "Redis connections established."},
    [METRICS_REDIS_CONNECT_ERRORS] = {"redis_connection_errors_total", "counter",
                                      "Redis connection attempts that failed or connections lost."},
    [METRICS_CACHE_BUMPS] = {"cache_generation_bumps_total", "counter",
                             "Cache generations advanced by writes (each makes older cached responses unreachable)."},
    [METRICS_CACHE_BUMP_FAILURES] = {"cache_generation_bump_failures_total", "counter",
                                     "Generation bumps that failed because Redis was unavailable; each is retried."},
    [METRICS_WEBHOOKS_QUEUED] = {"webhooks_queued_total", "counter",
                                 "Webhook deliveries stored in the job queue and acknowledged."},
    [METRICS_WEBHOOKS_REJECTED] = {"webhooks_rejected_total", "counter",
                                   "Webhook deliveries refused because their signature did not verify."},
    [METRICS_JOBS_COMPLETED] = {"queue_jobs_completed_total", "counter", "Jobs this process ran to completion."},
    [METRICS_JOBS_RETRIED] = {"queue_job_retries_total", "counter",
                              "Job attempts that failed and were scheduled again with backoff."},
    [METRICS_JOBS_FAILED] = {"queue_jobs_failed_total", "counter",
                             "Jobs left as failed (dead letter) after their last attempt."},
    [METRICS_JOBS_RECOVERED] = {"queue_jobs_recovered_total", "counter",
                                "Running jobs taken back because their worker's lease expired."},
    [METRICS_GRAPH_ACCEPTED] = {"graph_messages_accepted_total", "counter",
                                "Messages the WhatsApp Cloud API accepted (answered with a wamid)."},
    [METRICS_GRAPH_THROTTLED] = {"graph_messages_throttled_total", "counter",
                                 "Sends refused for throughput or pair rate (130429, 131056, ...), retried later."},
    [METRICS_GRAPH_RETRIED] = {"graph_messages_retried_total", "counter",
                               "Sends that failed for a passing reason (5xx, network, maintenance), retried."},
    [METRICS_GRAPH_REJECTED] = {"graph_messages_rejected_total", "counter",
                                "Sends refused for good (outside the 24 h window, invalid number, other 4xx)."},
    [METRICS_RATELIMIT_FALLBACKS] = {"ratelimit_fallback_decisions_total", "counter",
                                     "Rate-limit decisions made in process because Redis was unavailable."},
};

static const metrics_family_t metrics_gauge_families[METRICS_GAUGE_MAX] = {
    [METRICS_HTTP_OPEN] = {"http_connections_open", "gauge", "Client connections open."},
    [METRICS_HTTP_INFLIGHT] = {"http_requests_in_flight", "gauge", "Requests being handled."},
    [METRICS_PG_UP] = {"db_connections_ready", "gauge", "PostgreSQL connections ready for queries."},
    [METRICS_PG_POOL] = {"db_connections_max", "gauge", "PostgreSQL connections configured."},
    [METRICS_PG_WAITING] = {"db_queries_waiting", "gauge", "Queries waiting for a PostgreSQL connection."},
    [METRICS_PG_INFLIGHT] = {"db_queries_in_flight", "gauge", "Queries sent to PostgreSQL and not yet answered."},
    [METRICS_REDIS_UP] = {"redis_connections_ready", "gauge", "Redis connections ready for commands."},
    [METRICS_QUEUE_QUEUED] = {"queue_jobs_queued", "gauge", "Jobs waiting to run (database-wide, sampled)."},
    [METRICS_QUEUE_RUNNING] = {"queue_jobs_running", "gauge", "Jobs running (database-wide, sampled)."},
    [METRICS_QUEUE_DEAD] = {"queue_jobs_dead", "gauge", "Jobs left as failed (database-wide, sampled)."},
    [METRICS_QUEUE_OLDEST_S] = {"queue_oldest_waiting_seconds", "gauge",
                                "How long the oldest job due to run has been waiting (database-wide, sampled)."},
    [METRICS_RATELIMIT_FALLBACK] =
        {"ratelimit_fallback_active", "gauge",
         "Loop threads limiting in process because Redis is unavailable (0: shared limits)."},
};

static const metrics_family_t metrics_rtt_families[METRICS_RTT_MAX] = {
    [METRICS_RTT_PG] = {"db_query_duration_seconds", "histogram", "PostgreSQL round trip per query, in seconds."},
    [METRICS_RTT_REDIS] = {"redis_command_duration_seconds", "histogram", "Redis round trip per command, in seconds."},
    [METRICS_RTT_JOB] = {"queue_job_duration_seconds", "histogram", "Time to run one job attempt, in seconds."},
    [METRICS_RTT_GRAPH] = {"graph_request_duration_seconds", "histogram",
                           "Round trip of one request to the WhatsApp Cloud API, in seconds."},
    [METRICS_RTT_PG_WAIT] = {"db_pool_wait_seconds", "histogram",
                             "Time a query waited for a PostgreSQL connection with room, in seconds."},
};

static void metrics_label_escape(strbuf_t *out, const char *s)
{
    for (; *s; ++s) {
        if (*s == '\\' || *s == '"')
            strbuf_append(out, "\\", 1);
        if (*s == '\n') {
            strbuf_puts(out, "\\n");
            continue;
        }
        strbuf_append(out, s, 1);
    }
}

static const metrics_family_t metrics_cache_families[METRICS_CACHE_EVENT_MAX] = {
    [METRICS_CACHE_HIT] = {"cache_hits_total", "counter", "Responses served from the Redis cache."},
    [METRICS_CACHE_MISS] = {"cache_misses_total", "counter",
                            "Cacheable responses not found in Redis (filled from PostgreSQL or by a concurrent fill)."},
    [METRICS_CACHE_BYPASS] = {"cache_bypass_total", "counter",
                              "Cacheable responses served from PostgreSQL without the cache: Redis unavailable or "
                              "slow, or the cache disabled."},
    [METRICS_CACHE_FILL] = {"cache_fills_total", "counter", "PostgreSQL queries made to fill cache misses."},
    [METRICS_CACHE_COALESCED] =
        {"cache_coalesced_total", "counter",
         "Cache misses answered by a fill another request had started (no query of their own)."},
};

static void metrics_header(strbuf_t *out, const metrics_family_t *f)
{
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
}

static void metrics_render_cache(strbuf_t *out)
{
    for (int e = 0; e != METRICS_CACHE_EVENT_MAX; ++e) {
        metrics_header(out, &metrics_cache_families[e]);
        for (size_t c = 0; c != metrics_ncaches; ++c) {
            uint64_t sum = 0;
            for (size_t i = 0; i != metrics_nshards; ++i)
                sum += METRICS_READ(&metrics_shards[i]->cache[c][e]);
            strbuf_printf(out, "%s{cache=\"", metrics_cache_families[e].name);
            metrics_label_escape(out, metrics_caches[c]);
            strbuf_printf(out, "\"} %llu\n", (unsigned long long)sum);
        }
    }
}

static void metrics_render_ratelimit(strbuf_t *out)
{
    static const metrics_family_t fam = {"ratelimit_requests_total", "counter",
                                         "Requests counted by the rate limiter, by group and outcome: allowed, "
                                         "limited (over the limit) or blocked (refused from memory of a block)."};
    static const char *const results[METRICS_RATELIMIT_RESULT_MAX] = {"allowed", "limited", "blocked"};
    metrics_header(out, &fam);
    for (size_t g = 0; g != metrics_rl_ngroups; ++g)
        for (int r = 0; r != METRICS_RATELIMIT_RESULT_MAX; ++r) {
            uint64_t sum = 0;
            for (size_t i = 0; i != metrics_nshards; ++i)
                sum += METRICS_READ(&metrics_shards[i]->ratelimit[g][r]);
            strbuf_printf(out, "%s{group=\"%s\",result=\"%s\"} %llu\n", fam.name, metrics_rl_groups[g], results[r],
                          (unsigned long long)sum);
        }
}

static int metrics_i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void metrics_render_outbound(strbuf_t *out)
{
    int64_t *ids = util_malloc(sizeof(int64_t) * (METRICS_CONNECTIONS_MAX + 1) * metrics_nshards + 1);
    size_t n = 0;
    for (size_t i = 0; i != metrics_nshards; ++i)
        for (size_t j = 0; j != METRICS_CONNECTIONS_MAX + 1; ++j) {
            int64_t id = __atomic_load_n(&metrics_shards[i]->conns[j].id, __ATOMIC_ACQUIRE);
            if (id != 0)
                ids[n++] = id;
        }
    qsort(ids, n, sizeof(*ids), metrics_i64_cmp);
    static const metrics_family_t total = {"outbound_messages_total", "counter",
                                           "Campaign and reply messages per WhatsApp connection whose outcome is "
                                           "final: sent (Meta accepted it) or failed."};
    static const metrics_family_t rate = {"outbound_send_rate", "gauge",
                                          "Messages Meta accepted per second per connection, over the last 10 s."};
    strbuf_t rates;
    strbuf_init(&rates);
    metrics_header(out, &total);
    metrics_header(&rates, &rate);
    uint64_t now = util_now_ns() / 1000000000u;
    for (size_t k = 0; k != n; ++k) {
        if (k != 0 && ids[k] == ids[k - 1])
            continue;
        uint64_t sent = 0, failed = 0, recent = 0;
        for (size_t i = 0; i != metrics_nshards; ++i)
            for (size_t j = 0; j != METRICS_CONNECTIONS_MAX + 1; ++j) {
                metrics_conn_t *c = &metrics_shards[i]->conns[j];
                if (__atomic_load_n(&c->id, __ATOMIC_ACQUIRE) != ids[k])
                    continue;
                sent += METRICS_READ(&c->sent);
                failed += METRICS_READ(&c->failed);
                for (size_t r = 0; r != METRICS_RATE_SLOTS; ++r) {
                    uint64_t sec = METRICS_READ(&c->second[r]);
                    if (sec < now && sec + METRICS_RATE_SECONDS >= now) /* the last 10 whole seconds */
                        recent += METRICS_READ(&c->count[r]);
                }
            }
        char label[32];
        if (ids[k] < 0)
            snprintf(label, sizeof(label), "other");
        else
            snprintf(label, sizeof(label), "%lld", (long long)ids[k]);
        strbuf_printf(out, "%s{connection=\"%s\",result=\"sent\"} %llu\n", total.name, label, (unsigned long long)sent);
        strbuf_printf(out, "%s{connection=\"%s\",result=\"failed\"} %llu\n", total.name, label,
                      (unsigned long long)failed);
        strbuf_printf(&rates, "%s{connection=\"%s\"} %.1f\n", rate.name, label, (double)recent / METRICS_RATE_SECONDS);
    }
    strbuf_append(out, rates.data, rates.len);
    strbuf_free(&rates);
    free(ids);
}

static int metrics_key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void metrics_render_http(strbuf_t *out)
{
    /* Gather the distinct keys across shards, then sum each one. */
    uint64_t *keys = util_malloc(sizeof(uint64_t) * METRICS_HTTP_SLOTS * metrics_nshards);
    size_t nkeys = 0;
    for (size_t i = 0; i != metrics_nshards; ++i)
        for (size_t j = 0; j != METRICS_HTTP_SLOTS; ++j) {
            uint64_t k = __atomic_load_n(&metrics_shards[i]->http[j].key, __ATOMIC_ACQUIRE);
            if (k != 0)
                keys[nkeys++] = k;
        }
    qsort(keys, nkeys, sizeof(*keys), metrics_key_cmp);

    static const metrics_family_t fam = {"http_request_duration_seconds", "histogram",
                                         "Time from request received to response finished, in seconds."};
    metrics_header(out, &fam);
    for (size_t n = 0; n != nkeys; ++n) {
        if (n != 0 && keys[n] == keys[n - 1])
            continue;
        uint64_t key = keys[n];
        uint64_t buckets[METRICS_HTTP_NB] = {0}, count = 0, sum_ns = 0;
        for (size_t i = 0; i != metrics_nshards; ++i)
            for (size_t j = 0; j != METRICS_HTTP_SLOTS; ++j) {
                metrics_hist_slot_t *slot = &metrics_shards[i]->http[j];
                if (__atomic_load_n(&slot->key, __ATOMIC_ACQUIRE) != key)
                    continue;
                for (size_t b = 0; b != METRICS_HTTP_NB; ++b)
                    buckets[b] += METRICS_READ(&slot->buckets[b]);
                count += METRICS_READ(&slot->count);
                sum_ns += METRICS_READ(&slot->sum_ns);
            }
        int route = (int)(key >> 24) - 2;
        int method = (int)((key >> 16) & 0xff);
        int status = (int)(key & 0xffff);
        strbuf_t labels;
        strbuf_init(&labels);
        strbuf_printf(&labels, "method=\"%s\",route=\"", metrics_methods[method]);
        metrics_label_escape(&labels, route >= 0 && (size_t)route < metrics_nroutes ? metrics_routes[route] : "none");
        strbuf_printf(&labels, "\",status=\"%d\"", status);
        uint64_t cum = 0;
        for (size_t b = 0; b != METRICS_HTTP_NB; ++b) {
            cum += buckets[b];
            strbuf_printf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", fam.name, labels.data, metrics_http_buckets[b],
                          (unsigned long long)cum);
        }
        /* count is bumped after the bucket, so a racing scrape may see cum > count. */
        if (count < cum)
            count = cum;
        strbuf_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", fam.name, labels.data, (unsigned long long)count);
        strbuf_printf(out, "%s_sum{%s} %.9f\n", fam.name, labels.data, (double)sum_ns / 1e9);
        strbuf_printf(out, "%s_count{%s} %llu\n", fam.name, labels.data, (unsigned long long)count);
        strbuf_free(&labels);
    }
    free(keys);
}

static void metrics_render_rtt(strbuf_t *out, metrics_rtt_t which)
{
    const metrics_family_t *f = &metrics_rtt_families[which];
    uint64_t buckets[METRICS_RTT_NB] = {0}, count = 0, sum_ns = 0;
    for (size_t i = 0; i != metrics_nshards; ++i) {
        metrics_rtt_hist_t *h = &metrics_shards[i]->rtt[which];
        for (size_t b = 0; b != METRICS_RTT_NB; ++b)
            buckets[b] += METRICS_READ(&h->buckets[b]);
        count += METRICS_READ(&h->count);
        sum_ns += METRICS_READ(&h->sum_ns);
    }
    metrics_header(out, f);
    uint64_t cum = 0;
    for (size_t b = 0; b != METRICS_RTT_NB; ++b) {
        cum += buckets[b];
        strbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", f->name, metrics_rtt_buckets[b], (unsigned long long)cum);
    }
    if (count < cum)
        count = cum;
    strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", f->name, (unsigned long long)count);
    strbuf_printf(out, "%s_sum %.9f\n%s_count %llu\n", f->name, (double)sum_ns / 1e9, f->name,
                  (unsigned long long)count);
}

void metrics_render(strbuf_t *out)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_render_http(out);
    for (int c = 0; c != METRICS_COUNTER_MAX; ++c) {
        uint64_t sum = 0;
        for (size_t i = 0; i != metrics_nshards; ++i)
            sum += METRICS_READ(&metrics_shards[i]->counters[c]);
        metrics_header(out, &metrics_counter_families[c]);
        strbuf_printf(out, "%s %llu\n", metrics_counter_families[c].name, (unsigned long long)sum);
    }
    for (int g = 0; g != METRICS_GAUGE_MAX; ++g) {
        int64_t sum = 0;
        for (size_t i = 0; i != metrics_nshards; ++i)
            sum += METRICS_READ(&metrics_shards[i]->gauges[g]);
        metrics_header(out, &metrics_gauge_families[g]);
        strbuf_printf(out, "%s %lld\n", metrics_gauge_families[g].name, (long long)sum);
    }
    for (int r = 0; r != METRICS_RTT_MAX; ++r)
        metrics_render_rtt(out, (metrics_rtt_t)r);
    metrics_render_cache(out);
    metrics_render_ratelimit(out);
    metrics_render_outbound(out);
    size_t nrenderers = metrics_nrenderers;
    pthread_mutex_unlock(&metrics_lock);
    for (size_t i = 0; i != nrenderers; ++i)
        metrics_renderers[i](out);

    proc_stats_t ps;
    proc_stats(&ps);
    static const metrics_family_t fams[] = {
        {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes."},
        {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."},
        {"process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds."},
        {"process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds."},
        {"process_open_fds", "gauge", "Open file descriptors."},
        {"process_max_fds", "gauge", "Limit on open file descriptors."},
        {"process_memory_limit_bytes", "gauge",
         "Memory the process may use: the cgroup limit, MEMORY_LIMIT_MB, or physical memory."},
    };
    const double vals[] = {
        (double)ps.rss_bytes, (double)ps.vsize_bytes,       ps.start_time_s, ps.cpu_seconds, (double)ps.open_fds,
        (double)ps.max_fds,   (double)ps.memory_limit_bytes};
    for (size_t i = 0; i != UTIL_ARRAY_SIZE(fams); ++i) {
        metrics_header(out, &fams[i]);
        strbuf_printf(out, "%s %.17g\n", fams[i].name, vals[i]);
    }
}

void metrics_shutdown(void)
{
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i != metrics_nshards; ++i)
        if (metrics_shards[i] != &metrics_fallback)
            free(metrics_shards[i]);
    metrics_nshards = 0;
    metrics_nrenderers = 0;
    pthread_mutex_unlock(&metrics_lock);
    metrics_current = NULL;
}
