/*
 * config.h - the process configuration, read once from environment variables.
 *
 * config_load() fills the global `config` or returns -1 after printing one line that
 * names the offending variable; the caller exits with status 2. Nothing else in the
 * program reads the environment. The README's configuration table documents every
 * field here; keep them in step.
 */
#ifndef CONVERSA_CORE_CONFIG_H
#define CONVERSA_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/cidr.h"

/* One rate limit: `points` requests per `duration_s` from a key's first; the request
 * that goes over blocks the key for `block_s` (0: until the window ends). */
typedef struct config_limit {
    unsigned points, duration_s, block_s;
} config_limit_t;

typedef struct config {
    const char *host;              /* HOST: listen address */
    unsigned port;                 /* PORT */
    unsigned threads;              /* THREADS: event-loop threads */
    const char *database_url;      /* DATABASE_URL: libpq connection string or URI */
    const char *redis_url;         /* REDIS_URL: redis://[:password@]host:port[/db] */
    int log_level;                 /* LOG_LEVEL */
    int access_log;                /* ACCESS_LOG */
    unsigned pg_pool_size;         /* PG_POOL_SIZE: connections per thread */
    unsigned pg_pipeline_depth;    /* PG_PIPELINE_DEPTH: queries in flight per connection */
    unsigned pg_queue_max;         /* PG_QUEUE_MAX: queries waiting per thread before 503 */
    unsigned statement_timeout_ms; /* STATEMENT_TIMEOUT_MS */
    unsigned redis_timeout_ms;     /* REDIS_TIMEOUT_MS */
    int cache_enabled;             /* CACHE_ENABLED: serve the read path through Redis */
    unsigned cache_wait_ms;        /* CACHE_WAIT_MS: how long a miss waits for another request's fill */
    /* Time to live of cached responses, in seconds (CACHE_TTL_<NAME>); see cache/cache.h. */
    unsigned cache_ttl_status, cache_ttl_conversations, cache_ttl_messages, cache_ttl_notifications,
        cache_ttl_connections;
    unsigned queue_concurrency; /* QUEUE_CONCURRENCY: jobs this process runs at once; 0 runs no worker */
    unsigned queue_attempts;    /* QUEUE_ATTEMPTS: tries before a job is left as failed */
    unsigned queue_backoff_ms;  /* QUEUE_BACKOFF_MS: wait before the 2nd try; doubles each time */
    unsigned queue_lease_ms;    /* QUEUE_LEASE_MS: a running job whose worker is silent this long is taken again */
    unsigned queue_retention_s; /* QUEUE_RETENTION_SECONDS: completed jobs are kept this long */
    unsigned send_concurrency;  /* SEND_CONCURRENCY: batches of sends this process runs at once per queue; 0 = none */
    unsigned send_attempts;     /* SEND_ATTEMPTS: tries of a send that fails for a passing reason */
    const char *meta_graph_url; /* META_GRAPH_URL: base URL of the Graph API (no trailing slash) */
    const char *meta_graph_version;   /* META_GRAPH_VERSION: e.g. v21.0 */
    unsigned meta_timeout_ms;         /* META_TIMEOUT_MS: a whole Graph API request */
    unsigned meta_connect_timeout_ms; /* META_CONNECT_TIMEOUT_MS */
    size_t max_body_bytes;            /* MAX_BODY_BYTES */
    unsigned max_header_bytes;        /* MAX_HEADER_BYTES: request line and headers */
    unsigned max_url_bytes;           /* MAX_URL_BYTES: path and query */
    unsigned max_connections;         /* MAX_CONNECTIONS: whole process */
    unsigned http_timeout_ms;         /* HTTP_TIMEOUT_MS: header read and keep-alive idle */
    const char *web_root;             /* WEB_ROOT: the built browser app; NULL = "web" beside the executable */
    unsigned shutdown_timeout_ms;     /* SHUTDOWN_TIMEOUT_MS */
    unsigned memory_limit_mb;         /* MEMORY_LIMIT_MB: 0 = cgroup limit or physical memory */
    unsigned db_wait_s;               /* DB_WAIT_SECONDS: how long one-shot commands wait for the database */
    /*
     * ENCRYPTION_KEY: the key of secrets at rest (src/auth/secrets.h): 64 hex characters
     * or base64 of 32 bytes, used as is; other text is hashed with SHA-256 (and a warning
     * is logged once). NULL when unset: optional here, but `serve` and `keys` refuse to
     * run without it and `seed` leaves the demo secrets empty.
     */
    const char *encryption_key;
    int rate_limit;               /* RATE_LIMIT: on/off */
    config_limit_t limit_public;  /* RATE_LIMIT_PUBLIC: per address, requests without a valid token */
    config_limit_t limit_webhook; /* RATE_LIMIT_WEBHOOKS: per address, Meta's webhook deliveries */
    config_limit_t limit_token;   /* RATE_LIMIT_TOKEN: per bearer token */
    config_limit_t limit_ip;      /* RATE_LIMIT_IP: per address, the ceiling over authenticated traffic */
    cidr_list_t limit_exempt; /* RATE_LIMIT_EXEMPT: monitors whose /api/metrics and /api/health/live are not limited */
    cidr_list_t trusted_proxies; /* TRUSTED_PROXIES: peers whose X-Forwarded-For is believed */
    /* Alerts (src/ops/alerts.h) */
    unsigned alert_interval_ms;       /* ALERT_INTERVAL_MS: evaluation period */
    unsigned alert_window_s;          /* ALERT_WINDOW_SECONDS: the sliding window rates are taken over */
    unsigned alert_for_s;             /* ALERT_FOR_SECONDS: a condition fires after holding this long */
    unsigned alert_repeat_s;          /* ALERT_REPEAT_SECONDS: least time between notices of one firing alert */
    unsigned alert_response_ms;       /* ALERT_RESPONSE_MS: mean and p95 response time */
    unsigned alert_memory_percent;    /* ALERT_MEMORY_PERCENT: of the memory limit */
    unsigned alert_errors_per_min;    /* ALERT_ERRORS_PER_MINUTE: 5xx responses */
    unsigned alert_cache_hit_percent; /* ALERT_CACHE_HIT_PERCENT: the least acceptable hit rate */
    unsigned alert_cache_min_lookups; /* ALERT_CACHE_MIN_LOOKUPS: lookups in the window before judging */
    unsigned alert_queue_age_s;       /* ALERT_QUEUE_AGE_SECONDS: oldest job waiting */
    const char *alert_webhook_url;    /* ALERT_WEBHOOK_URL: Slack-compatible incoming webhook; NULL = log only */
    /* ENCRYPTION_KEY_PREVIOUS: the key being rotated away from, also accepted for reading; NULL when unset */
    const char *encryption_key_previous;
} config_t;

/** The configuration in force; valid after config_load() returned 0. */
extern config_t config;

/** Reads the environment into `config`. Returns 0, or -1 after printing the reason. */
int config_load(void);

/** The parsed form of REDIS_URL. */
typedef struct config_redis_addr {
    char host[256];
    int port;
    char password[256];
    int db;
} config_redis_addr_t;

/** Parses a redis:// URL. Returns 0 or -1 when it is malformed. */
int config_parse_redis_url(const char *url, config_redis_addr_t *out);

#endif
