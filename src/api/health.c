/*
 * GET /api/health and GET /api/health/live.
 *
 * /api/health reports a live round trip to PostgreSQL and to Redis, memory and uptime,
 * in the shape the plan's clients read. Monitors poll it hard, so requests on one loop
 * share a probe: a request that arrives while a probe is in flight waits for that
 * probe instead of starting its own. Every answer is therefore at most one round trip
 * old, and the database sees at most one probe per loop at a time.
 *
 * /api/health/live does no I/O at all: it says the process is serving.
 */
#include "api/routes.h"
#include "cache/redis.h"
#include "core/util.h"
#include "core/waiter.h"
#include "http/reply.h"
#include "ops/proc.h"
#include "store/pg.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

typedef struct health_probe {
    int running;
    int pending; /* answers still expected (database, Redis) */
    h2o_linklist_t waiters;
    int db_up;
    double db_ms;
    int redis_up;
    double redis_ms;
} health_probe_t;

typedef struct health_wait {
    waiter_t waiter;     /* in the request's list: cancelled if the request goes first */
    h2o_linklist_t link; /* in the probe's list: answered when the probe completes */
    http_request_t *r;
} health_wait_t;

static __thread health_probe_t health_probe;

static pg_stmt_t health_ping_stmt = {"SELECT 1", 0, 0};

static void health_wait_cancel(waiter_t *w)
{
    health_wait_t *hw = H2O_STRUCT_FROM_MEMBER(health_wait_t, waiter, w);
    h2o_linklist_unlink(&hw->link);
}

static void health_finish(health_probe_t *p)
{
    uint64_t rss = proc_rss_bytes(), limit = proc_memory_limit();
    const char *status = !p->db_up ? "error" : p->redis_up ? "ok" : "degraded";
    char db_time[32], redis_time[32];
    snprintf(db_time, sizeof(db_time), "%.3f", p->db_ms);
    snprintf(redis_time, sizeof(redis_time), "%.3f", p->redis_ms);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"database\":{\"status\":\"%s\",\"responseTime\":%s},"
                     "\"redis\":{\"status\":\"%s\",\"responseTime\":%s},"
                     "\"memory\":{\"used\":%.1f,\"total\":%.0f,\"percentage\":%.2f},"
                     "\"uptime\":%.3f,\"version\":\"%s\"}",
                     status, p->db_up ? "up" : "down", p->db_up ? db_time : "null", p->redis_up ? "up" : "down",
                     p->redis_up ? redis_time : "null", (double)rss / 1048576.0, (double)limit / 1048576.0,
                     limit != 0 ? 100.0 * (double)rss / (double)limit : 0.0, proc_uptime_s(), CONVERSA_VERSION);
    int code = p->db_up ? 200 : 503;
    p->running = 0;
    /* Answer everyone who joined this probe; requests arriving from now on start a new one. */
    h2o_linklist_t waiters;
    h2o_linklist_init_anchor(&waiters);
    h2o_linklist_insert_list(&waiters, &p->waiters);
    while (!h2o_linklist_is_empty(&waiters)) {
        health_wait_t *w = H2O_STRUCT_FROM_MEMBER(health_wait_t, link, waiters.next);
        h2o_linklist_unlink(&w->link);
        waiter_detach(&w->waiter);
        http_reply_header(w->r, "cache-control", "no-store");
        http_reply_json(w->r, code, body, (size_t)n);
    }
}

static void health_on_db(void *data, const pg_reply_t *reply)
{
    health_probe_t *p = data;
    p->db_up = reply->error == NULL;
    p->db_ms = (double)reply->rtt_ns / 1e6;
    if (--p->pending == 0)
        health_finish(p);
}

static void health_on_redis(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    health_probe_t *p = data;
    p->redis_up = error == NULL && reply != NULL;
    p->redis_ms = (double)rtt_ns / 1e6;
    if (--p->pending == 0)
        health_finish(p);
}

void api_health_get(http_request_t *r)
{
    health_probe_t *p = &health_probe;
    if (p->waiters.next == NULL)
        h2o_linklist_init_anchor(&p->waiters);
    health_wait_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    memset(w, 0, sizeof(*w));
    w->r = r;
    w->waiter.cancel = health_wait_cancel;
    h2o_linklist_insert(&r->waiters, &w->waiter.link);
    h2o_linklist_insert(&p->waiters, &w->link);
    if (p->running)
        return;
    p->running = 1;
    p->pending = 2;
    p->db_up = p->redis_up = 0;
    static const char *const ping[] = {"PING"};
    static const size_t ping_len[] = {4};
    pg_exec(r->thread->pg, &health_ping_stmt, NULL, 0, health_on_db, p, NULL);
    redis_command(r->thread->redis, health_on_redis, p, NULL, 1, ping, ping_len);
}

void api_health_live(http_request_t *r)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_reply_iovec(r, 200, "application/json", h2o_iovec_init(body, sizeof(body) - 1));
}
