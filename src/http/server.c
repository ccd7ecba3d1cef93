#include "http/server.h"
#include "http/peer.h"
#include "core/timer.h"
#include "http/ratelimit.h"
#include "http/reply.h"
#include "http/web.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "core/waiter.h"
#include "ops/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define HTTP_TICK_MS        100
#define HTTP_CLOSE_GRACE_MS 2000 /* after in-flight requests: how long closing connections may take */
#define HTTP_ACCEPT_BATCH   64

typedef struct http_conn {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    http_thread_t *thread;
} http_conn_t;

typedef enum { HTTP_SERVING, HTTP_DRAINING, HTTP_CLOSING, HTTP_DONE } http_phase_t;

static const http_route_t *http_routes;
static size_t http_nroutes;
static const http_server_hooks_t *http_hooks;
static h2o_globalconf_t http_globalconf;
static http_thread_t *http_threads;
static volatile sig_atomic_t http_stop_flag;
static uint32_t http_id_prefix;

/* Per-thread shutdown progress, read only by the owning thread. */
static __thread http_phase_t http_phase;
static __thread uint64_t http_phase_deadline;

const http_route_t *http_server_route(int index)
{
    return index >= 0 && (size_t)index < http_nroutes ? &http_routes[index] : NULL;
}

void http_server_stop(void)
{
    http_stop_flag = 1;
}

int http_server_stopping(void)
{
    return http_stop_flag != 0;
}

/* ---- requests ---- */

static http_thread_t *http_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(http_thread_t, ctx, req->conn->ctx);
}

/* A client may bring its own request id (from a proxy) when it is short and plain. */
static void http_request_id(http_thread_t *t, h2o_req_t *req, char *out, size_t cap)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        int ok = v.len > 0 && v.len < cap && v.len <= 36;
        for (size_t k = 0; ok && k != v.len; ++k) {
            char c = v.base[k];
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
                 c == '.';
        }
        if (ok) {
            memcpy(out, v.base, v.len);
            out[v.len] = '\0';
            return;
        }
    }
    util_fmt_t f = util_fmt_on(out, cap); /* "%08x-%x-%llx": prefix, thread, count */
    util_fmt_hex(&f, http_id_prefix, 8);
    util_fmt_lit(&f, "-");
    util_fmt_hex(&f, (uint64_t)t->index, 0);
    util_fmt_lit(&f, "-");
    util_fmt_hex(&f, ++t->next_request, 0);
}

static void http_request_dispose(void *p)
{
    http_request_t *r = p;
    http_thread_t *t = r->thread;
    waiter_cancel_all(&r->waiters);
    uint64_t ns = util_now_ns() - r->start_ns;
    /* 499: the client went away before we answered (nginx's convention). */
    int status = r->replied || r->req->res.status != 0 ? r->req->res.status : 499;
    const http_route_t *route = http_server_route(r->route);
    metrics_observe_http(t->metrics, r->route, r->method, status, ns);
    log_access(r->req->input.method.base, r->req->input.method.len, route != NULL ? route->path : "-", status,
               (double)ns / 1e6, (unsigned long long)r->req->bytes_sent, r->id);
    --t->inflight;
    metrics_gauge_add(t->metrics, METRICS_HTTP_INFLIGHT, -1);
}

static http_request_t *http_request_new(http_thread_t *t, h2o_req_t *req)
{
    http_request_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), http_request_dispose);
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->thread = t;
    r->route = -1;
    r->method = metrics_method_id(req->input.method.base, req->input.method.len);
    r->start_ns = util_now_ns();
    h2o_linklist_init_anchor(&r->waiters);
    http_request_id(t, req, r->id, sizeof(r->id));
    ++t->inflight;
    metrics_gauge_add(t->metrics, METRICS_HTTP_INFLIGHT, 1);
    return r;
}

/* Called by the error filter for errors h2o produced before any handler ran. */
void http_server_note_h2o_error(h2o_req_t *req, char *id, size_t id_cap)
{
    http_request_t *r = http_request_new(http_thread_of(req), req);
    r->replied = 1;
    snprintf(id, id_cap, "%s", r->id);
}

const char *http_request_client(http_request_t *r)
{
    if (!r->client_known) {
        http_peer_of(r->req, &r->client);
        cidr_addr_format(&r->client, r->client_ip, sizeof(r->client_ip));
        r->client_known = 1;
    }
    return r->client_ip;
}

/* ---- rate limits: a request passes its gate before its handler runs ---- */

typedef struct http_gate {
    ratelimit_call_t call;
    http_request_t *r;
    http_next_fn next;
} http_gate_t;

static void http_gate_on_verdict(void *data, const ratelimit_verdict_t *v)
{
    http_gate_t *g = data;
    http_request_t *r = g->r;
    http_hold_t hold = r->hold;
    r->hold = HTTP_HOLD_NONE;
    if (!v->allowed && hold >= HTTP_HOLD_RUNNING)
        r->req->res.headers.size = 0; /* the handler's headers went with its answer */
    char policy[160], state[160];
    ratelimit_headers(v, policy, sizeof(policy), state, sizeof(state));
    http_reply_header(r, "ratelimit-policy", policy);
    http_reply_header(r, "ratelimit", state);
    if (v->allowed) {
        if (hold == HTTP_HOLD_HELD)
            http_reply_iovec(r, r->held.status, r->held.content_type, r->held.body);
        else if (hold < HTTP_HOLD_RUNNING)
            g->next(r);
        return; /* RUNNING: its answer goes out when it comes */
    }
    char secs[16];
    snprintf(secs, sizeof(secs), "%u", v->retry_after_s);
    http_reply_header(r, "retry-after", secs);
    http_reply_error(r, 429, "rate_limited", "too many requests; try again in %u seconds", v->retry_after_s);
    /* Still waiting on something: its answer is dropped when it comes, or never comes
     * (the request is disposed once the 429 is out, which cancels its waiters). */
    if (hold == HTTP_HOLD_RUNNING)
        r->hold = HTTP_HOLD_DROPPED;
}

/* Counts r against n (group, key) limits, then next(r) or 429; next(r) at once when limits are off. */
static void http_gate(http_request_t *r, size_t n, const ratelimit_group_t *groups, const char *const *keys,
                      http_next_fn next)
{
    if (!config.rate_limit || r->thread->ratelimit == NULL) {
        r->hold = HTTP_HOLD_NONE;
        next(r);
        return;
    }
    http_gate_t *g = h2o_mem_alloc_pool(&r->req->pool, sizeof(*g));
    g->r = r;
    g->next = next;
    ratelimit_check(r->thread->ratelimit, &g->call, n, groups, keys, http_gate_on_verdict, g, &r->waiters);
}

static void http_run_handler(http_request_t *r)
{
    const http_route_t *route = &http_routes[r->route];
    if (route->access == HTTP_ADMIN && !r->auth.admin) {
        http_reply_error(r, 403, "forbidden", "this needs an admin of the company");
        return;
    }
    route->handler(r);
}

void http_request_run(http_request_t *r)
{
    static const char hex[] = "0123456789abcdef";
    char token[33];
    for (int i = 0; i != 16; ++i) {
        token[2 * i] = hex[r->auth.token_hash[i] >> 4];
        token[2 * i + 1] = hex[r->auth.token_hash[i] & 15];
    }
    token[32] = '\0';
    const ratelimit_group_t groups[] = {RATELIMIT_TOKEN, RATELIMIT_IP};
    const char *keys[] = {token, http_request_client(r)};
    if (strcmp(http_routes[r->route].method, "GET") == 0) /* a read: GET, or HEAD (the router serves it with GET) */
        r->hold = HTTP_HOLD_GATED;
    http_gate(r, 2, groups, keys, http_run_handler);
    if (r->hold == HTTP_HOLD_GATED) { /* no verdict yet: run it meanwhile */
        r->hold = HTTP_HOLD_RUNNING;
        http_run_handler(r);
    }
}

void http_request_anonymous(http_request_t *r, http_next_fn reply)
{
    const ratelimit_group_t group = RATELIMIT_PUBLIC;
    const char *key = http_request_client(r);
    http_gate(r, 1, &group, &key, reply);
}

/* A route without authentication: its own group, unless the client is an exempt scraper. */
static void http_run_public(http_request_t *r)
{
    const http_route_t *route = &http_routes[r->route];
    const char *key = http_request_client(r);
    if (route->limit == HTTP_LIMIT_SCRAPE && cidr_list_match(&config.limit_exempt, &r->client)) {
        route->handler(r);
        return;
    }
    const ratelimit_group_t group = route->limit == HTTP_LIMIT_WEBHOOK ? RATELIMIT_WEBHOOK : RATELIMIT_PUBLIC;
    http_gate(r, 1, &group, &key, route->handler);
}

/* Whether the header line at p (up to end) is named `name` (lower case, with its colon). */
static int http_head_is(const char *p, const char *end, const char *name, size_t len)
{
    if ((size_t)(end - p) < len)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]) != name[i])
            return 0;
    return 1;
}

/*
 * Refuses an HTTP/1 request head that is too big, or whose framing h2o accepts but a
 * proxy in front might read otherwise (request smuggling): Content-Length with
 * Transfer-Encoding, or more than one of either. h2o keeps neither header in
 * req->headers, so the head is read where h2o leaves it until the request is answered:
 * at the start of the socket's input buffer. Returns 0, or the status to answer (the
 * connection is then closed, so nothing after this request is read).
 */
static int http_head_check(h2o_req_t *req, const char **why)
{
    if (req->input.path.len > config.max_url_bytes) {
        *why = "the URL is longer than MAX_URL_BYTES";
        return 414;
    }
    h2o_socket_t *sock = req->version < 0x200 && req->conn->callbacks->get_socket != NULL
                             ? req->conn->callbacks->get_socket(req->conn)
                             : NULL;
    if (sock == NULL || sock->input == NULL)
        return 0;
    const char *head = sock->input->bytes, *stop = head + sock->input->size, *end = NULL;
    for (const char *p = head; p + 3 < stop; ++p)
        if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            end = p + 2;
            break;
        }
    if (end == NULL)
        return 0;
    if ((size_t)(end - head) > config.max_header_bytes) {
        *why = "the request's headers are larger than MAX_HEADER_BYTES";
        return 431;
    }
    unsigned lengths = 0, encodings = 0;
    for (const char *line = memchr(head, '\n', (size_t)(end - head)); line != NULL && line + 1 < end;
         line = memchr(line + 1, '\n', (size_t)(end - line - 1))) {
        lengths += http_head_is(line + 1, end, "content-length:", 15);
        encodings += http_head_is(line + 1, end, "transfer-encoding:", 18);
    }
    if (lengths > 1 || encodings > 1 || (lengths != 0 && encodings != 0)) {
        *why = "Content-Length and Transfer-Encoding together, or either twice: the body's length is ambiguous";
        return 400;
    }
    return 0;
}

static int http_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    http_thread_t *t = http_thread_of(req);
    http_request_t *r = http_request_new(t, req);
    if (http_phase == HTTP_CLOSING || http_phase == HTTP_DONE) {
        /* thread_stop has freed what handlers use; a request h2o still had buffered is refused */
        req->http1_is_persistent = 0;
        http_reply_error(r, 503, "unavailable", "the server is stopping");
        return 0;
    }
    const char *why = NULL;
    int refuse = http_head_check(req, &why);
    if (refuse != 0) {
        req->http1_is_persistent = 0;
        http_reply_error(r, refuse, http_reply_code_for(refuse), "%s", why);
        return 0;
    }
    char allow[128];
    h2o_iovec_t path = req->path_normalized;
    int route = http_router_match(http_routes, http_nroutes, req->input.method, path, &r->params, allow, sizeof(allow));
    if (route == HTTP_ROUTE_NOT_FOUND) {
        if (http_web_wants(req)) {
            http_web_index(r);
            return 0;
        }
        http_reply_error(r, 404, "not_found", "no route for %.*s %.*s", (int)UTIL_MIN(req->input.method.len, 16),
                         req->input.method.base, (int)UTIL_MIN(path.len, 200), path.base);
        return 0;
    }
    if (route == HTTP_ROUTE_BAD_METHOD) {
        http_reply_header(r, "allow", allow);
        http_reply_error(r, 405, "method_not_allowed", "%.*s is not allowed here; allowed: %s",
                         (int)UTIL_MIN(req->input.method.len, 16), req->input.method.base, allow);
        return 0;
    }
    r->route = route;
    if (http_phase != HTTP_SERVING)
        req->http1_is_persistent = 0;
    if (http_routes[route].access != HTTP_PUBLIC && http_hooks->authenticate != NULL)
        http_hooks->authenticate(r);
    else
        http_run_public(r);
    return 0;
}

/* ---- connections ---- */

static void http_conn_on_close(void *data)
{
    http_conn_t *c = data;
    http_thread_t *t = c->thread;
    h2o_linklist_unlink(&c->link);
    free(c);
    --t->nconns;
    metrics_gauge_add(t->metrics, METRICS_HTTP_OPEN, -1);
}

static void http_on_accept(h2o_socket_t *listener, const char *err)
{
    http_thread_t *t = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i != HTTP_ACCEPT_BATCH; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        if (t->nconns >= t->max_conns) {
            metrics_add(t->metrics, METRICS_HTTP_REFUSED, 1);
            h2o_socket_close(sock);
            continue;
        }
        http_conn_t *c = util_calloc(1, sizeof(*c));
        c->sock = sock;
        c->thread = t;
        h2o_linklist_insert(&t->conns, &c->link);
        sock->on_close.cb = http_conn_on_close;
        sock->on_close.data = c;
        ++t->nconns;
        metrics_add(t->metrics, METRICS_HTTP_ACCEPTED, 1);
        metrics_gauge_add(t->metrics, METRICS_HTTP_OPEN, 1);
        h2o_accept(&t->accept_ctx, sock);
    }
}

static int http_listen(const char *host, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        len = sizeof(*sin6);
    } else {
        log_error("http", "HOST %s is not an IP address", host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        listen(fd, 4096) != 0) {
        log_error("http", "cannot listen on %s:%u: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- the loop and its shutdown ---- */

static void http_begin_close(http_thread_t *t)
{
    /* Let the application fail whatever is still pending (their requests answer 503),
     * then close every client connection; h2o frees each when it sees the EOF. */
    if (http_hooks->thread_stop != NULL)
        http_hooks->thread_stop(t);
    for (h2o_linklist_t *l = t->conns.next; l != &t->conns; l = l->next) {
        http_conn_t *c = H2O_STRUCT_FROM_MEMBER(http_conn_t, link, l);
        shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
    }
    http_phase = HTTP_CLOSING;
    http_phase_deadline = util_now_ns() + (uint64_t)HTTP_CLOSE_GRACE_MS * 1000000u;
}

static void http_on_tick(loop_timer_t *timer)
{
    http_thread_t *t = util_container_of(timer, http_thread_t, tick);
    log_flush();
    uint64_t now = util_now_ns();
    __atomic_store_n(&t->heartbeat_ns, now, __ATOMIC_RELAXED);
    switch (http_phase) {
    case HTTP_SERVING:
        if (!http_stop_flag)
            break;
        t->stopping = 1;
        h2o_socket_read_stop(t->listener);
        h2o_socket_close(t->listener);
        t->listener = NULL;
        h2o_context_request_shutdown(&t->ctx);
        http_phase = HTTP_DRAINING;
        http_phase_deadline = now + (uint64_t)config.shutdown_timeout_ms * 1000000u;
        /* fall through */
    case HTTP_DRAINING:
        if (t->inflight == 0 || now >= http_phase_deadline) {
            if (t->inflight != 0)
                log_warn("http", "thread %u: %zu requests still running at the shutdown deadline", t->index,
                         t->inflight);
            http_begin_close(t);
        }
        break;
    case HTTP_CLOSING:
        if (t->nconns == 0 || now >= http_phase_deadline)
            http_phase = HTTP_DONE;
        break;
    case HTTP_DONE:
        break;
    }
    if (http_phase != HTTP_DONE)
        loop_timer_start(&t->tick, HTTP_TICK_MS);
}

static void *http_thread_main(void *arg)
{
    http_thread_t *t = arg;
    util_thread_name("http-%u", t->index);
    http_phase = HTTP_SERVING;
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, &http_globalconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = http_globalconf.hosts;
    h2o_linklist_init_anchor(&t->conns);
    t->metrics = metrics_shard_new();
    if (http_hooks->thread_start != NULL)
        http_hooks->thread_start(t);
    t->listener = h2o_evloop_socket_create(t->loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, http_on_accept);
    loop_timer_init(&t->tick, t->loop, http_on_tick);
    loop_timer_start(&t->tick, HTTP_TICK_MS);

    while (http_phase != HTTP_DONE)
        h2o_evloop_run(t->loop, INT32_MAX);

    if (t->nconns != 0)
        log_warn("http", "thread %u: %zu connections did not close in time", t->index, t->nconns);
    loop_timer_dispose(&t->tick);
    /* A few more turns so sockets closed above are released by the loop. */
    for (int i = 0; i != 4; ++i)
        h2o_evloop_run(t->loop, 0);
    /* h2o's HTTP/2 shutdown leaves its GOAWAY re-send timer armed; dispose asserts it is not */
    if (h2o_timeout_is_linked(&t->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&t->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&t->ctx);
    /* h2o 2.2.5's dispose closes the context's message queue but does not free it */
    free(t->ctx.queue);
    loop_thread_release();
    if (t->nconns == 0)
        h2o_evloop_destroy(t->loop);
    log_thread_done();
    return NULL;
}

/*
 * Feeds systemd's watchdog (at a quarter of its period) only while every loop thread
 * ticked within half of it: a loop stuck in a handler gets the process restarted.
 * Returns when it last fed.
 */
static uint64_t http_feed_watchdog(uint64_t watchdog_us, uint64_t fed_ns)
{
    uint64_t now = util_now_ns(), period_ns = watchdog_us * 1000u;
    if (now - fed_ns < period_ns / 4)
        return fed_ns;
    for (unsigned i = 0; i != config.threads; ++i) {
        uint64_t beat = __atomic_load_n(&http_threads[i].heartbeat_ns, __ATOMIC_RELAXED);
        if (beat != 0 && now - beat > period_ns / 2) {
            log_warn("http", "thread %u has not turned for %.1f s: not feeding the watchdog", i,
                     (double)(now - beat) / 1e9);
            return fed_ns;
        }
    }
    sd_notify(0, "WATCHDOG=1");
    return now;
}

int http_server_run(const http_route_t *routes, size_t nroutes, const http_server_hooks_t *hooks)
{
    if (http_router_validate(routes, nroutes) != 0)
        return -1;
    http_routes = routes;
    http_nroutes = nroutes;
    http_hooks = hooks;
    const char **names = util_calloc(nroutes, sizeof(*names));
    for (size_t i = 0; i != nroutes; ++i)
        names[i] = routes[i].path;
    metrics_init(names, nroutes);
    if (getrandom(&http_id_prefix, sizeof(http_id_prefix), 0) != sizeof(http_id_prefix))
        http_id_prefix = (uint32_t)util_wall_ns();

    h2o_config_init(&http_globalconf);
    http_globalconf.server_name = h2o_iovec_init(H2O_STRLIT("conversa"));
    http_globalconf.max_request_entity_size = config.max_body_bytes;
    http_globalconf.http1.req_timeout = config.http_timeout_ms;
    http_globalconf.http2.idle_timeout = config.http_timeout_ms;
    h2o_hostconf_t *host = h2o_config_register_host(&http_globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /* h2o takes the first path that matches: the app's assets before the catch-all "/" */
    int rc = 0;
    if (http_web_install(host, config.web_root) != 0) {
        rc = -1;
        goto Exit;
    }
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = http_on_req;
    http_reply_install_filter(pathconf);
    /* errors h2o raises before routing (a body over the limit) are sent on the fallback path */
    http_reply_install_filter(&host->fallback_path);

    http_threads = util_calloc(config.threads, sizeof(*http_threads));
    unsigned i;
    for (i = 0; i != config.threads; ++i) {
        http_threads[i].index = i;
        http_threads[i].max_conns = (config.max_connections + config.threads - 1) / config.threads;
        if ((http_threads[i].listen_fd = http_listen(config.host, config.port)) < 0) {
            rc = -1;
            break;
        }
    }
    if (rc != 0) {
        while (i-- > 0)
            close(http_threads[i].listen_fd);
        goto Exit;
    }

    /* Signals are taken by this thread alone, with sigtimedwait; loops never see them. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN);
    http_stop_flag = 0;
    for (i = 0; i != config.threads; ++i) {
        if (pthread_create(&http_threads[i].tid, NULL, http_thread_main, &http_threads[i]) != 0)
            util_fatal("pthread_create failed");
        http_threads[i].started = 1;
    }
    log_info("http", "listening on %s:%u with %u threads", config.host, config.port, config.threads);
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s:%u\nMAINPID=%lu", config.host, config.port, (unsigned long)getpid());
    uint64_t watchdog_us = 0, fed_ns = 0;
    if (sd_watchdog_enabled(0, &watchdog_us) <= 0)
        watchdog_us = 0;

    while (!http_stop_flag) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("http", "received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            http_stop_flag = 1;
        }
        if (watchdog_us != 0)
            fed_ns = http_feed_watchdog(watchdog_us, fed_ns);
    }
    sd_notify(0, "STOPPING=1\nSTATUS=finishing requests");
    for (i = 0; i != config.threads; ++i)
        pthread_join(http_threads[i].tid, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    log_info("http", "stopped");

Exit:
    http_web_dispose();
    free(http_threads);
    http_threads = NULL;
    h2o_config_dispose(&http_globalconf);
    free(names);
    return rc;
}
