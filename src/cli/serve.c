/* conversa serve - the HTTP API on N event-loop threads. */
#include "api/routes.h"
#include "auth/secrets.h"
#include "cache/cache.h"
#include "cache/redis.h"
#include "cli/cli.h"
#include "core/workq.h"
#include "core/config.h"
#include "core/log.h"
#include "http/ratelimit.h"
#include "http/server.h"
#include "ops/alerts.h"
#include "ops/metrics.h"
#include "meta/apply.h"
#include "meta/send.h"
#include "ops/proc.h"
#include "queue/push.h"
#include "queue/worker.h"
#include "store/pg.h"
#include "version.h"

#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static config_redis_addr_t serve_redis_addr;

static void serve_thread_start(http_thread_t *t)
{
    pg_pool_config_t pc = {
        .conninfo = config.database_url,
        .size = config.pg_pool_size,
        .pipeline_depth = config.pg_pipeline_depth,
        .queue_max = config.pg_queue_max,
        .statement_timeout_ms = config.statement_timeout_ms,
        .application_name = "conversa-serve",
    };
    t->pg = pg_pool_new(t->loop, &pc, t->metrics);
    t->redis = redis_client_new(t->loop, &serve_redis_addr, config.redis_timeout_ms, t->metrics);
    t->ratelimit = ratelimit_new(t->loop, t->redis, t->metrics);
    t->workq = workq_inbox_new(t->ctx.queue);
    t->cache = cache_thread_new(t->loop, t->ctx.queue, t->redis, t->metrics);
    t->webhooks = queue_pusher_new(t->pg, META_QUEUE, config.queue_attempts);
}

static void serve_thread_stop(http_thread_t *t)
{
    workq_inbox_close(t->workq, t->loop, 10000);
    t->workq = NULL;
    queue_pusher_free(t->webhooks);
    t->webhooks = NULL;
    pg_pool_free(t->pg);
    t->pg = NULL;
    redis_client_free(t->redis);
    t->redis = NULL;
    ratelimit_free(t->ratelimit);
    t->ratelimit = NULL;
    cache_thread_free(t->cache);
    t->cache = NULL;
}

int cli_serve(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: conversa serve\n\n"
               "Serves the HTTP API on HOST:PORT with THREADS event loops, each with its own\n"
               "PostgreSQL connections (PG_POOL_SIZE) and Redis connection. The database and\n"
               "Redis may be down at start: connections are retried with backoff and\n"
               "/api/health reports them. SIGTERM or SIGINT stop it gracefully.\n"
               "ENCRYPTION_KEY must be set: it encrypts the connections' secrets.\n"
               "It also runs QUEUE_CONCURRENCY workers of the webhooks queue and SEND_CONCURRENCY\n"
               "of each sending queue (agents' replies, campaigns) through META_GRAPH_URL; 0 runs none.\n"
               "Requests are rate limited through Redis (RATE_LIMIT_PUBLIC, _WEBHOOKS, _TOKEN, _IP;\n"
               "RATE_LIMIT=off turns it off; TRUSTED_PROXIES for X-Forwarded-For). Alert rules run every\n"
               "ALERT_INTERVAL_MS and are logged as [ALERT][LEVEL] and POSTed to ALERT_WEBHOOK_URL.\n"
               "Under systemd (Type=notify) it reports READY=1, feeds the watchdog and reports STOPPING=1.\n"
               "The README's configuration table lists every variable.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "conversa serve: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    if (config_load() != 0)
        return 2;
    if (config.encryption_key == NULL) {
        fprintf(stderr, "conversa: ENCRYPTION_KEY is not set: serve needs it to encrypt connection secrets"
                        " (64 hex characters or base64 of 32 bytes; conversa keys generate makes one)\n");
        return 2;
    }
    config_parse_redis_url(config.redis_url, &serve_redis_addr);
    proc_init(config.memory_limit_mb);
    log_info("serve", "conversa %s starting", CONVERSA_VERSION);
    if (sodium_init() < 0) {
        log_error("serve", "libsodium failed to initialise");
        return 1;
    }
    if (secrets_init(config.encryption_key, config.encryption_key_previous) != 0) {
        log_error("serve", "the encryption key could not be set up");
        return 1;
    }
    static const http_server_hooks_t hooks = {serve_thread_start, serve_thread_stop, api_auth_authenticate};
    metrics_cache_init(cache_kind_names, CACHE_KIND_MAX);
    /* Before any thread starts, so every thread inherits it: SIGTERM and SIGINT are
     * taken by the main thread alone (http_server_run waits for them); a thread that
     * did not block them could take one and end the process at once. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    workq_start(2);
    queue_worker_t *worker = NULL, *replies = NULL, *campaigns = NULL;
    if (config.queue_concurrency > 0)
        worker = queue_worker_start(&meta_webhooks_queue, config.queue_concurrency);
    if (config.send_concurrency > 0) {
        replies = queue_worker_start(&meta_outbound_queue, config.send_concurrency);
        campaigns = queue_worker_start(&meta_campaigns_queue, config.send_concurrency);
    }
    alerts_start();
    int rc = http_server_run(api_routes, api_nroutes, &hooks);
    alerts_stop();
    queue_worker_stop(campaigns);
    queue_worker_stop(replies);
    queue_worker_stop(worker);
    workq_stop();
    metrics_shutdown();
    secrets_shutdown();
    return rc == 0 ? 0 : 1;
}
