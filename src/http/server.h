/*
 * server.h - the HTTP server: one h2o event loop per thread, each with its own
 * listening socket (SO_REUSEPORT), its own PostgreSQL pool and Redis client, and its
 * own metrics shard.
 *
 * Contract with endpoint code: a handler is called on the loop thread with an
 * http_request_t that lives until the response is finished or the client is gone.
 * The handler must reply exactly once (http_reply*), now or later from a callback.
 * Anything that will call back later is linked to r->waiters (see core/waiter.h);
 * the server cancels those when the request is disposed, so no callback ever sees a
 * freed request.
 */
#ifndef CONVERSA_HTTP_SERVER_H
#define CONVERSA_HTTP_SERVER_H

#include <h2o.h>
#include <pthread.h>
#include <stdint.h>

#include "core/cidr.h"
#include "core/timer.h"
#include "http/router.h"

struct pg_pool;
struct redis_client;
struct cache_thread;
struct workq_inbox;
struct queue_pusher;
struct metrics_shard;
struct ratelimit;

typedef struct http_thread {
    unsigned index;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    h2o_linklist_t conns; /* http_conn_t, for closing idle keep-alives at shutdown */
    size_t nconns;
    size_t max_conns;
    size_t inflight;
    uint64_t next_request;
    struct metrics_shard *metrics;
    struct pg_pool *pg;
    struct redis_client *redis;
    struct cache_thread *cache;
    struct workq_inbox *workq;
    struct queue_pusher *webhooks; /* durable enqueueing of received webhooks */
    struct ratelimit *ratelimit;   /* set by thread_start; NULL: no limits */
    loop_timer_t tick;
    uint64_t heartbeat_ns; /* the loop's last tick: the systemd watchdog is fed only while every loop turns */
    pthread_t tid;
    int stopping;
    int started;
} http_thread_t;

/* The caller, once authenticated: the company always comes from here. */
typedef struct http_auth {
    int64_t company_id;
    int64_t user_id;
    int admin;
    uint8_t token_hash[32];
} http_auth_t;

/*
 * A read (GET, HEAD) that is authenticated runs its handler while its rate limit is
 * still being counted in Redis, so that the count and the handler's own round trip
 * (a cache look-up, most often) travel together: one round trip instead of two in a
 * row. Its answer waits for the verdict: sent when allowed, replaced by the 429 when
 * refused (and an answer still to come is then dropped). Writes never run before
 * their verdict.
 */
typedef enum http_hold {
    HTTP_HOLD_NONE,    /* replies go out as they are made */
    HTTP_HOLD_GATED,   /* a read waiting for its verdict, handler not started */
    HTTP_HOLD_RUNNING, /* handler started, no verdict, no answer yet */
    HTTP_HOLD_HELD,    /* the answer is kept in `held` until the verdict */
    HTTP_HOLD_DROPPED  /* refused while its handler ran: a 429 went out, the handler's answer is dropped */
} http_hold_t;

typedef struct http_request {
    h2o_req_t *req;
    http_thread_t *thread;
    int route;  /* index into the route table, or -1 */
    int method; /* metrics_method_id() */
    http_params_t params;
    uint64_t start_ns;
    h2o_linklist_t waiters;
    int replied;
    http_auth_t auth;
    void *state; /* a multi-step handler's own state, in the request's pool */
    char id[40];
    int client_known;
    cidr_addr_t client; /* see http_request_client() */
    char client_ip[46];
    http_hold_t hold;
    struct {
        int status;
        const char *content_type;
        h2o_iovec_t body;
    } held; /* HTTP_HOLD_HELD: the answer, as http_reply_iovec() got it */
} http_request_t;

typedef void (*http_next_fn)(http_request_t *r);

typedef struct http_server_hooks {
    /** Called on each loop thread before it serves; sets up t->pg and t->redis. */
    void (*thread_start)(http_thread_t *t);
    /** Called on each loop thread after it stopped serving and every request is done. */
    void (*thread_stop)(http_thread_t *t);
    /**
     * Called instead of the handler for routes that are not HTTP_PUBLIC: must fill
     * r->auth and call http_request_run(r), or reply (401/403/503) itself.
     */
    void (*authenticate)(http_request_t *r);
} http_server_hooks_t;

/**
 * Binds the listeners, starts config.threads loops, and serves `routes` until SIGTERM
 * or SIGINT. Under systemd (Type=notify) it reports READY=1 once listening, feeds the
 * watchdog while every loop thread is turning, and reports STOPPING=1. Then it stops accepting, lets in-flight requests
 * finish (bounded by SHUTDOWN_TIMEOUT_MS), closes every connection and returns 0. Returns -1 when it could not start
 * (the reason is logged).
 */
int http_server_run(const http_route_t *routes, size_t nroutes, const http_server_hooks_t *hooks);

/**
 * For the authenticate hook once r->auth is set: counts the request against its
 * token's and address's rate limits, then runs the route's handler (403 when the
 * route is admin-only), or answers 429. A read's handler runs while the count is
 * under way, its answer held until the verdict (http_hold_t).
 */
void http_request_run(http_request_t *r);

/**
 * For the authenticate hook when there is no valid token: counts the request in the
 * public group by address, then calls reply (which answers 401), or answers 429.
 */
void http_request_anonymous(http_request_t *r, http_next_fn reply);

/** The client's address as text (the peer, or X-Forwarded-For from a trusted proxy; see http/peer.h). */
const char *http_request_client(http_request_t *r);

/** The route table being served (for labels and logs). */
const http_route_t *http_server_route(int index);

/** Asks a running server to stop, as SIGTERM does. Safe from any thread. */
void http_server_stop(void);

/** Whether shutdown has begun. */
int http_server_stopping(void);

#endif
