/*
 * metrics.h - the metrics registry and its Prometheus text rendering.
 *
 * Each event-loop thread owns a shard and is the only writer of it, so the request
 * path takes no lock and no atomic read-modify-write: counters are bumped with relaxed
 * loads and stores. A scrape (any thread) reads every shard with relaxed loads and
 * sums them; a figure may be a few events behind, never torn. Shards live as long as
 * the process (metrics_shard_new() registers, nothing unregisters until
 * metrics_shutdown()), so a scrape never reads freed memory.
 */
#ifndef CONVERSA_OPS_METRICS_H
#define CONVERSA_OPS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

typedef enum metrics_counter {
    METRICS_HTTP_ACCEPTED,     /* connections accepted */
    METRICS_HTTP_REFUSED,      /* connections refused over MAX_CONNECTIONS */
    METRICS_PG_QUERIES,        /* queries completed (any outcome) */
    METRICS_PG_ERRORS,         /* queries that failed */
    METRICS_PG_REJECTED,       /* queries refused because the wait queue was full */
    METRICS_PG_PREPARES,       /* statements prepared (flat after warm-up) */
    METRICS_PG_CONNECTS,       /* successful connection set-ups */
    METRICS_PG_CONNECT_ERRORS, /* failed connection attempts */
    METRICS_REDIS_COMMANDS,    /* commands answered */
    METRICS_REDIS_ERRORS,      /* commands failed, disconnected or timed out */
    METRICS_REDIS_CONNECTS,    /* successful connection set-ups */
    METRICS_REDIS_CONNECT_ERRORS,
    METRICS_CACHE_BUMPS,         /* generation bumps applied */
    METRICS_CACHE_BUMP_FAILURES, /* bump attempts that failed (each is retried) */
    METRICS_WEBHOOKS_QUEUED,     /* webhook POSTs stored and acknowledged */
    METRICS_WEBHOOKS_REJECTED,   /* webhook POSTs refused for their signature */
    METRICS_JOBS_COMPLETED,      /* jobs that ran to completion */
    METRICS_JOBS_RETRIED,        /* attempts that failed and were scheduled again */
    METRICS_JOBS_FAILED,         /* jobs left as failed after their last attempt */
    METRICS_JOBS_RECOVERED,      /* running jobs taken back after their lease expired */
    METRICS_GRAPH_ACCEPTED,      /* messages Meta accepted (a wamid came back) */
    METRICS_GRAPH_THROTTLED,     /* sends refused for throughput or pair rate, retried later */
    METRICS_GRAPH_RETRIED,       /* sends that failed for a passing reason (5xx, network), retried */
    METRICS_GRAPH_REJECTED,      /* sends refused for good (4xx, 24 h window, invalid number) */
    METRICS_RATELIMIT_FALLBACKS, /* limit decisions made in process because Redis was away */
    METRICS_COUNTER_MAX
} metrics_counter_t;

typedef enum metrics_gauge {
    METRICS_HTTP_OPEN,     /* open client connections */
    METRICS_HTTP_INFLIGHT, /* requests being handled */
    METRICS_PG_UP,         /* PostgreSQL connections ready */
    METRICS_PG_POOL,       /* PostgreSQL connections configured */
    METRICS_PG_WAITING,    /* queries waiting for a connection */
    METRICS_PG_INFLIGHT,   /* queries sent, not yet answered */
    METRICS_REDIS_UP,      /* Redis connections ready */
    METRICS_QUEUE_QUEUED,  /* jobs waiting (sampled by the queue worker) */
    METRICS_QUEUE_RUNNING, /* jobs running */
    METRICS_QUEUE_DEAD,    /* jobs left as failed */
    METRICS_QUEUE_OLDEST_S,
    METRICS_RATELIMIT_FALLBACK, /* loop threads limiting in process (Redis away) */
    METRICS_GAUGE_MAX
} metrics_gauge_t;

typedef enum metrics_rtt {
    METRICS_RTT_PG,
    METRICS_RTT_REDIS,
    METRICS_RTT_JOB,
    METRICS_RTT_GRAPH,
    METRICS_RTT_PG_WAIT, /* from a query's submission to its sending: time waiting for a connection */
    METRICS_RTT_MAX
} metrics_rtt_t;

/* Cache events, counted per cached resource (the `cache` label). */
typedef enum metrics_cache_event {
    METRICS_CACHE_HIT,       /* served from Redis */
    METRICS_CACHE_MISS,      /* not in Redis: filled from PostgreSQL, or waited for a fill */
    METRICS_CACHE_BYPASS,    /* Redis unavailable, slow or the cache disabled: served from PostgreSQL */
    METRICS_CACHE_FILL,      /* queries made to fill a miss */
    METRICS_CACHE_COALESCED, /* misses answered by another request's fill */
    METRICS_CACHE_EVENT_MAX
} metrics_cache_event_t;

#define METRICS_CACHE_MAX 8

/* Rate limiter outcomes, counted per group (the `group` label). */
typedef enum metrics_ratelimit_result {
    METRICS_RATELIMIT_ALLOWED, /* within the limit */
    METRICS_RATELIMIT_LIMITED, /* over the limit, decided by Redis (or in process while it is away) */
    METRICS_RATELIMIT_BLOCKED, /* refused from this thread's memory of a block, without asking Redis */
    METRICS_RATELIMIT_RESULT_MAX
} metrics_ratelimit_result_t;

#define METRICS_RATELIMIT_GROUPS 4

typedef struct metrics_shard metrics_shard_t;

/** Names the route templates (indexed by route id) used as the `route` label. Call once before serving. */
void metrics_init(const char *const *route_names, size_t nroutes);

/** Names the cached resources (at most METRICS_CACHE_MAX), used as the `cache` label. Call once before serving. */
void metrics_cache_init(const char *const *names, size_t n);

/** Counts one cache event for resource `cache` (an index given to metrics_cache_init()). */
void metrics_cache_add(metrics_shard_t *s, unsigned cache, metrics_cache_event_t e);

/** Names the rate-limit groups (at most METRICS_RATELIMIT_GROUPS), used as the `group` label. */
void metrics_ratelimit_init(const char *const *names, size_t n);

/** Counts one rate-limit outcome for group (an index given to metrics_ratelimit_init()). */
void metrics_ratelimit_add(metrics_shard_t *s, unsigned group, metrics_ratelimit_result_t r);

/**
 * Counts one outbound message (a campaign's or a reply) whose outcome is final, for
 * connection conn: sent (Meta accepted it) or failed. Feeds outbound_messages_total
 * and outbound_send_rate per connection; past METRICS_CONNECTIONS_MAX connections in a
 * shard the rest share the label "other", so cardinality stays bounded.
 */
void metrics_outbound(metrics_shard_t *s, int64_t conn, int sent);

#define METRICS_CONNECTIONS_MAX 64

/**
 * Adds a function that appends families of its own to every scrape (a module with
 * state the registry does not hold, e.g. alerts). At most a few; call before serving.
 */
void metrics_add_renderer(void (*render)(strbuf_t *out));

/** Creates and registers a shard for the calling thread. */
metrics_shard_t *metrics_shard_new(void);

/** The calling thread's shard, or a shared fallback shard for threads that made none. */
metrics_shard_t *metrics_shard(void);

/** Makes `shard` the calling thread's shard. */
void metrics_shard_bind(metrics_shard_t *shard);

void metrics_add(metrics_shard_t *s, metrics_counter_t c, uint64_t n);
void metrics_gauge_add(metrics_shard_t *s, metrics_gauge_t g, int64_t delta);
void metrics_gauge_set(metrics_shard_t *s, metrics_gauge_t g, int64_t value);

/** Records a round trip to PostgreSQL or Redis. */
void metrics_observe_rtt(metrics_shard_t *s, metrics_rtt_t which, uint64_t ns);

/** Maps an HTTP method to the small id used as a label ("OTHER" for the unusual). */
int metrics_method_id(const char *method, size_t len);

/** Records one finished HTTP request. route is an index given to metrics_init(), or -1 for none. */
void metrics_observe_http(metrics_shard_t *s, int route, int method, int status, uint64_t ns);

/* Every HTTP request so far, all routes together (for alert rules). */
#define METRICS_HTTP_BUCKETS 12
typedef struct metrics_http_summary {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t errors;                        /* status 500-599 */
    uint64_t buckets[METRICS_HTTP_BUCKETS]; /* per bucket, not cumulative; the rest are above the last bound */
} metrics_http_summary_t;

/** Upper bounds of the HTTP duration buckets, in seconds (METRICS_HTTP_BUCKETS of them). */
extern const double metrics_http_bounds[METRICS_HTTP_BUCKETS];

/** Sums every HTTP observation across shards. */
void metrics_http_summary(metrics_http_summary_t *out);

/** Sums one cache event across every cached resource and shard. */
uint64_t metrics_cache_total(metrics_cache_event_t e);

/** Sum of a counter or gauge across shards. */
uint64_t metrics_counter_total(metrics_counter_t c);
int64_t metrics_gauge_total(metrics_gauge_t g);

/** Appends the whole exposition (text format 0.0.4) to out. */
void metrics_render(strbuf_t *out);

/** Frees every shard; only after all threads that used them have ended. */
void metrics_shutdown(void);

#endif
