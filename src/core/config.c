#include "core/config.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

config_t config;

static int config_bad(const char *name, const char *value, const char *why)
{
    fprintf(stderr, "conversa: invalid %s=\"%s\": %s\n", name, value, why);
    return -1;
}

/* Reads an unsigned integer in [min, max]; an unset or empty variable keeps the default. */
static int config_uint(const char *name, unsigned long long min, unsigned long long max, unsigned long long *out)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    char *end;
    errno = 0;
    if (*v == '-' || *v == '+')
        goto Bad;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
        goto Bad;
    *out = n;
    return 0;
Bad : {
    char why[128];
    snprintf(why, sizeof(why), "must be an integer from %llu to %llu", min, max);
    return config_bad(name, v, why);
}
}

static int config_unsigned(const char *name, unsigned long long min, unsigned long long max, unsigned *field)
{
    unsigned long long v = *field;
    if (config_uint(name, min, max, &v) != 0)
        return -1;
    *field = (unsigned)v;
    return 0;
}

static int config_bool(const char *name, int *field)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (strcmp(v, "1") == 0 || strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
        *field = 1;
    else if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
        *field = 0;
    else
        return config_bad(name, v, "must be on or off");
    return 0;
}

static const char *config_string(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : dflt;
}

/* QUEUE_LEASE_MS must be at least min (named `what`); 0, or -1 after saying why. */
static int config_lease_at_least(unsigned long long min, const char *what, const char *when)
{
    if ((unsigned long long)config.queue_lease_ms >= min)
        return 0;
    char v[32], why[160];
    snprintf(v, sizeof(v), "%u", config.queue_lease_ms);
    snprintf(why, sizeof(why), "must be at least %s (%llu)%s", what, min, when);
    return config_bad("QUEUE_LEASE_MS", v, why);
}

/* A limit as POINTS/SECONDS[/BLOCK_SECONDS], e.g. 100/60/60. */
static int config_limit(const char *name, config_limit_t *out)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    unsigned p, d, b = 0;
    int used = 0, n = sscanf(v, "%u/%u%n/%u%n", &p, &d, &used, &b, &used);
    if (strspn(v, "0123456789/") != strlen(v) || n < 2 || v[used] != '\0' || p < 1 || p > 100000000 || d < 1 ||
        d > 86400 || b > 86400)
        return config_bad(name, v, "must be POINTS/SECONDS[/BLOCK_SECONDS], e.g. 100/60/60");
    *out = (config_limit_t){p, d, n == 3 ? b : 0};
    return 0;
}

static int config_cidrs(const char *name, cidr_list_t *out)
{
    const char *v = config_string(name, ""), *bad = NULL;
    if (cidr_list_parse(v, out, &bad) == 0)
        return 0;
    char why[160];
    snprintf(why, sizeof(why), "at \"%.40s\": must be addresses or networks (10.0.0.0/8, ::1), at most %d",
             bad != NULL ? bad : "", CIDR_MAX);
    return config_bad(name, v, why);
}

int config_parse_redis_url(const char *url, config_redis_addr_t *out)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof(out->password))
            return -1;
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    size_t hn = strcspn(p, ":/");
    if (hn == 0 || hn >= sizeof(out->host))
        return -1;
    memcpy(out->host, p, hn);
    p += hn;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            return -1;
        out->port = (int)port;
        p = end;
    }
    if (*p == '/') {
        ++p;
        if (*p != '\0') {
            char *end;
            long db = strtol(p, &end, 10);
            if (end == p || *end != '\0' || db < 0 || db > 1000000)
                return -1;
            out->db = (int)db;
            p = end;
        }
    }
    return *p == '\0' ? 0 : -1;
}

int config_load(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    config = (config_t){
        .host = config_string("HOST", "0.0.0.0"),
        .port = 5000,
        .threads = ncpu > 0 ? (unsigned)ncpu : 1,
        .database_url = config_string("DATABASE_URL", "postgresql://conversa@127.0.0.1:5433/conversa"),
        .redis_url = config_string("REDIS_URL", "redis://127.0.0.1:6380"),
        .log_level = LOG_INFO,
        .access_log = 1,
        .pg_pool_size = 2,
        .pg_pipeline_depth = 32,
        .pg_queue_max = 4096,
        .statement_timeout_ms = 5000,
        .redis_timeout_ms = 250,
        .cache_enabled = 1,
        .cache_wait_ms = 1000,
        .cache_ttl_status = 60,
        .cache_ttl_conversations = 20,
        .cache_ttl_messages = 20,
        .cache_ttl_notifications = 30,
        .cache_ttl_connections = 120,
        .queue_concurrency = 2,
        .queue_attempts = 3,
        .queue_backoff_ms = 2000,
        .queue_lease_ms = 30000,
        .queue_retention_s = 86400,
        .send_concurrency = 4,
        .send_attempts = 6,
        .meta_graph_url = config_string("META_GRAPH_URL", "https://graph.facebook.com"),
        .meta_graph_version = config_string("META_GRAPH_VERSION", "v21.0"),
        .meta_timeout_ms = 10000,
        .meta_connect_timeout_ms = 3000,
        .max_body_bytes = 3 * 1024 * 1024,
        .max_header_bytes = 16384,
        .max_url_bytes = 8192,
        .max_connections = 10000,
        .http_timeout_ms = 10000,
        .web_root = config_string("WEB_ROOT", NULL),
        .shutdown_timeout_ms = 10000,
        .memory_limit_mb = 0,
        .db_wait_s = 30,
        .rate_limit = 1,
        .limit_public = {100, 60, 60},
        .limit_webhook = {6000, 60, 60},
        .limit_token = {1200, 60, 60},
        .limit_ip = {6000, 60, 60},
        .alert_interval_ms = 5000,
        .alert_window_s = 60,
        .alert_for_s = 10,
        .alert_repeat_s = 300,
        .alert_response_ms = 5000,
        .alert_memory_percent = 85,
        .alert_errors_per_min = 10,
        .alert_cache_hit_percent = 30,
        .alert_cache_min_lookups = 100,
        .alert_queue_age_s = 120,
        .alert_webhook_url = config_string("ALERT_WEBHOOK_URL", NULL),
        .encryption_key = config_string("ENCRYPTION_KEY", NULL),
        .encryption_key_previous = config_string("ENCRYPTION_KEY_PREVIOUS", NULL),
    };

    const char *lv = config_string("LOG_LEVEL", "info");
    if ((config.log_level = log_parse_level(lv)) < 0)
        return config_bad("LOG_LEVEL", lv, "must be one of debug, info, warn, error, off");

    unsigned long long body = config.max_body_bytes;
    if (config_unsigned("PORT", 1, 65535, &config.port) != 0 ||
        config_unsigned("THREADS", 1, 256, &config.threads) != 0 ||
        config_bool("ACCESS_LOG", &config.access_log) != 0 ||
        config_unsigned("PG_POOL_SIZE", 1, 64, &config.pg_pool_size) != 0 ||
        config_unsigned("PG_PIPELINE_DEPTH", 1, 1024, &config.pg_pipeline_depth) != 0 ||
        config_unsigned("PG_QUEUE_MAX", 1, 1000000, &config.pg_queue_max) != 0 ||
        config_unsigned("STATEMENT_TIMEOUT_MS", 1, 3600000, &config.statement_timeout_ms) != 0 ||
        config_unsigned("REDIS_TIMEOUT_MS", 1, 60000, &config.redis_timeout_ms) != 0 ||
        config_bool("CACHE_ENABLED", &config.cache_enabled) != 0 ||
        config_unsigned("CACHE_WAIT_MS", 1, 60000, &config.cache_wait_ms) != 0 ||
        config_unsigned("CACHE_TTL_STATUS", 1, 3600, &config.cache_ttl_status) != 0 ||
        config_unsigned("CACHE_TTL_CONVERSATIONS", 1, 3600, &config.cache_ttl_conversations) != 0 ||
        config_unsigned("CACHE_TTL_MESSAGES", 1, 3600, &config.cache_ttl_messages) != 0 ||
        config_unsigned("CACHE_TTL_NOTIFICATIONS", 1, 3600, &config.cache_ttl_notifications) != 0 ||
        config_unsigned("CACHE_TTL_CONNECTIONS", 1, 3600, &config.cache_ttl_connections) != 0 ||
        config_unsigned("QUEUE_CONCURRENCY", 0, 64, &config.queue_concurrency) != 0 ||
        config_unsigned("QUEUE_ATTEMPTS", 1, 100, &config.queue_attempts) != 0 ||
        config_unsigned("QUEUE_BACKOFF_MS", 1, 3600000, &config.queue_backoff_ms) != 0 ||
        config_unsigned("QUEUE_LEASE_MS", 100, 86400000, &config.queue_lease_ms) != 0 ||
        config_unsigned("QUEUE_RETENTION_SECONDS", 1, 365u * 86400, &config.queue_retention_s) != 0 ||
        config_unsigned("SEND_CONCURRENCY", 0, 64, &config.send_concurrency) != 0 ||
        config_unsigned("SEND_ATTEMPTS", 1, 100, &config.send_attempts) != 0 ||
        config_unsigned("META_TIMEOUT_MS", 100, 600000, &config.meta_timeout_ms) != 0 ||
        config_unsigned("META_CONNECT_TIMEOUT_MS", 100, 600000, &config.meta_connect_timeout_ms) != 0 ||
        config_uint("MAX_BODY_BYTES", 1024, 1024ull * 1024 * 1024, &body) != 0 ||
        config_unsigned("MAX_CONNECTIONS", 1, 1000000, &config.max_connections) != 0 ||
        config_unsigned("MAX_HEADER_BYTES", 1024, 409600, &config.max_header_bytes) != 0 ||
        config_unsigned("MAX_URL_BYTES", 256, 409600, &config.max_url_bytes) != 0 ||
        config_unsigned("HTTP_TIMEOUT_MS", 100, 3600000, &config.http_timeout_ms) != 0 ||
        config_unsigned("SHUTDOWN_TIMEOUT_MS", 0, 3600000, &config.shutdown_timeout_ms) != 0 ||
        config_unsigned("MEMORY_LIMIT_MB", 0, 1u << 30, &config.memory_limit_mb) != 0 ||
        config_unsigned("DB_WAIT_SECONDS", 0, 3600, &config.db_wait_s) != 0 ||
        config_bool("RATE_LIMIT", &config.rate_limit) != 0 ||
        config_limit("RATE_LIMIT_PUBLIC", &config.limit_public) != 0 ||
        config_limit("RATE_LIMIT_WEBHOOKS", &config.limit_webhook) != 0 ||
        config_limit("RATE_LIMIT_TOKEN", &config.limit_token) != 0 ||
        config_limit("RATE_LIMIT_IP", &config.limit_ip) != 0 ||
        config_cidrs("RATE_LIMIT_EXEMPT", &config.limit_exempt) != 0 ||
        config_cidrs("TRUSTED_PROXIES", &config.trusted_proxies) != 0 ||
        config_unsigned("ALERT_INTERVAL_MS", 100, 600000, &config.alert_interval_ms) != 0 ||
        config_unsigned("ALERT_WINDOW_SECONDS", 5, 3600, &config.alert_window_s) != 0 ||
        config_unsigned("ALERT_FOR_SECONDS", 0, 3600, &config.alert_for_s) != 0 ||
        config_unsigned("ALERT_REPEAT_SECONDS", 1, 86400, &config.alert_repeat_s) != 0 ||
        config_unsigned("ALERT_RESPONSE_MS", 1, 3600000, &config.alert_response_ms) != 0 ||
        config_unsigned("ALERT_MEMORY_PERCENT", 1, 100, &config.alert_memory_percent) != 0 ||
        config_unsigned("ALERT_ERRORS_PER_MINUTE", 0, 100000000, &config.alert_errors_per_min) != 0 ||
        config_unsigned("ALERT_CACHE_HIT_PERCENT", 0, 100, &config.alert_cache_hit_percent) != 0 ||
        config_unsigned("ALERT_CACHE_MIN_LOOKUPS", 1, 100000000, &config.alert_cache_min_lookups) != 0 ||
        config_unsigned("ALERT_QUEUE_AGE_SECONDS", 1, 86400 * 7, &config.alert_queue_age_s) != 0)
        return -1;
    config.max_body_bytes = (size_t)body;
    /* A batch of jobs may run as long as a statement may; a lease shorter than that
     * would hand a job still running to another worker. */
    if (config_lease_at_least((unsigned long long)config.statement_timeout_ms + 1000, "STATEMENT_TIMEOUT_MS + 1000",
                              "") != 0)
        return -1;

    /* a send holds its job while it waits for the rate limit (at most 2 s) and for Meta */
    if (config.send_concurrency > 0 &&
        config_lease_at_least((unsigned long long)config.meta_timeout_ms + 5000, "META_TIMEOUT_MS + 5000",
                              " when SEND_CONCURRENCY > 0") != 0)
        return -1;
    if (strncmp(config.meta_graph_url, "http://", 7) != 0 && strncmp(config.meta_graph_url, "https://", 8) != 0)
        return config_bad("META_GRAPH_URL", config.meta_graph_url, "must start with http:// or https://");
    if (strlen(config.meta_graph_url) > 512 || config.meta_graph_url[strlen(config.meta_graph_url) - 1] == '/')
        return config_bad("META_GRAPH_URL", config.meta_graph_url, "must be at most 512 bytes, without a trailing /");
    if (strspn(config.meta_graph_version, "abcdefghijklmnopqrstuvwxyz0123456789.") !=
            strlen(config.meta_graph_version) ||
        strlen(config.meta_graph_version) > 16)
        return config_bad("META_GRAPH_VERSION", config.meta_graph_version, "must look like v21.0");

    if (config.alert_webhook_url != NULL && strncmp(config.alert_webhook_url, "http://", 7) != 0 &&
        strncmp(config.alert_webhook_url, "https://", 8) != 0)
        return config_bad("ALERT_WEBHOOK_URL", config.alert_webhook_url, "must start with http:// or https://");

    config_redis_addr_t addr;
    if (config_parse_redis_url(config.redis_url, &addr) != 0)
        return config_bad("REDIS_URL", config.redis_url, "must look like redis://[:password@]host[:port][/db]");
    unsigned char ip[16];
    if (inet_pton(AF_INET, config.host, ip) != 1 && inet_pton(AF_INET6, config.host, ip) != 1)
        return config_bad("HOST", config.host, "must be an IPv4 or IPv6 address");
    char *pqerr = NULL;
    PQconninfoOption *opts = PQconninfoParse(config.database_url, &pqerr);
    if (opts == NULL) {
        char why[512];
        snprintf(why, sizeof(why), "not a valid libpq connection string (%s)", pqerr != NULL ? pqerr : "out of memory");
        PQfreemem(pqerr);
        for (char *p = why; *p; ++p)
            if (*p == '\n')
                *p = ' ';
        return config_bad("DATABASE_URL", config.database_url, why);
    }
    PQconninfoFree(opts);

    log_set_level((log_level_t)config.log_level);
    log_set_access(config.access_log);
    return 0;
}
