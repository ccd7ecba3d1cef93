#include "cache/redis.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"
#include "core/waiter.h"
#include "ops/metrics.h"

#include <hiredis/async.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REDIS_BACKOFF_MIN_MS     100
#define REDIS_BACKOFF_MAX_MS     5000
#define REDIS_CONNECT_TIMEOUT_MS 2000
#define REDIS_STUCK_FACTOR       8 /* no answer for this many timeouts: the connection is dropped */

typedef struct redis_cmd {
    waiter_t waiter;
    h2o_linklist_t link; /* in the client's FIFO of commands awaiting an answer */
    redis_client_t *client;
    redis_cb cb; /* NULL once answered (timeout) or cancelled */
    void *data;
    uint64_t sent_ns;
} redis_cmd_t;

struct redis_client {
    h2o_loop_t *loop;
    config_redis_addr_t addr;
    unsigned timeout_ms;
    metrics_shard_t *metrics;
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    int connected;
    uint64_t epoch; /* connections established so far */
    int want_write;
    int write_armed; /* h2o watches the socket for writability */
    int flushing;    /* redis_on_flush is writing */
    int closing;
    unsigned backoff_ms;
    loop_timer_t retry; /* reconnect backoff or connect deadline */
    loop_timer_t clock; /* command deadlines */
    loop_defer_t flush; /* the write of this pass's commands */
    h2o_linklist_t pending;
};

static void redis_connect(redis_client_t *c);

/* ---- commands ---- */

static void redis_cmd_answer(redis_cmd_t *cmd, redisReply *reply, const char *error)
{
    redis_client_t *c = cmd->client;
    redis_cb cb = cmd->cb;
    cmd->cb = NULL;
    waiter_detach(&cmd->waiter);
    uint64_t rtt = util_now_ns() - cmd->sent_ns;
    if (error == NULL && reply != NULL && reply->type == REDIS_REPLY_ERROR)
        error = reply->str;
    if (error != NULL) {
        metrics_add(c->metrics, METRICS_REDIS_ERRORS, 1);
    } else {
        metrics_add(c->metrics, METRICS_REDIS_COMMANDS, 1);
        metrics_observe_rtt(c->metrics, METRICS_RTT_REDIS, rtt);
    }
    if (cb != NULL)
        cb(cmd->data, reply, error, rtt);
}

/* hiredis's callback: the answer, or NULL when the context is going away. */
static void redis_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    redis_cmd_t *cmd = privdata;
    h2o_linklist_unlink(&cmd->link);
    if (cmd->cb != NULL)
        redis_cmd_answer(cmd, r, r == NULL ? (cmd->client->closing ? "shutting down" : "redis disconnected") : NULL);
    free(cmd);
}

static void redis_cmd_cancel(waiter_t *w)
{
    redis_cmd_t *cmd = H2O_STRUCT_FROM_MEMBER(redis_cmd_t, waiter, w);
    cmd->cb = NULL; /* hiredis still holds it; freed when its answer (or the disconnect) comes */
    cmd->data = NULL;
}

void redis_command(redis_client_t *c, redis_cb cb, void *data, h2o_linklist_t *waiters, int argc,
                   const char *const *argv, const size_t *argvlen)
{
    if (!c->connected || c->ac == NULL) {
        metrics_add(c->metrics, METRICS_REDIS_ERRORS, 1);
        cb(data, NULL, "redis unavailable", 0);
        return;
    }
    redis_cmd_t *cmd = util_calloc(1, sizeof(*cmd));
    cmd->client = c;
    cmd->cb = cb;
    cmd->data = data;
    cmd->sent_ns = util_now_ns();
    cmd->waiter.cancel = redis_cmd_cancel;
    if (redisAsyncCommandArgv(c->ac, redis_on_reply, cmd, argc, (const char **)argv, argvlen) != REDIS_OK) {
        free(cmd);
        metrics_add(c->metrics, METRICS_REDIS_ERRORS, 1);
        cb(data, NULL, "redis command rejected", 0);
        return;
    }
    h2o_linklist_insert(&c->pending, &cmd->link);
    waiter_attach(&cmd->waiter, waiters);
    if (!loop_timer_armed(&c->clock))
        loop_timer_start(&c->clock, c->timeout_ms);
}

/* ---- scripts ---- */

static pthread_mutex_t redis_script_lock = PTHREAD_MUTEX_INITIALIZER;

static void redis_script_sha(redis_script_t *s)
{
    if (__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&redis_script_lock);
    if (!s->ready) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_Digest(s->source, strlen(s->source), md, &len, EVP_sha1(), NULL) != 1 || len != 20)
            util_fatal("redis: SHA-1 unavailable");
        for (unsigned i = 0; i < 20; ++i)
            snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
        __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&redis_script_lock);
}

static void redis_eval_send(redis_eval_t *e);

static void redis_eval_on_reply(void *data, redisReply *reply, const char *error, uint64_t rtt_ns)
{
    redis_eval_t *e = data;
    const char *why = error != NULL ? error : reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
    if (why != NULL && strncmp(why, "NOSCRIPT", 8) == 0 && !e->evaled) {
        e->evaled = 1;
        e->argv[0] = "EVAL";
        e->argvlen[0] = 4;
        e->argv[1] = e->script->source;
        e->argvlen[1] = strlen(e->script->source);
        redis_eval_send(e);
        return;
    }
    e->cb(e->data, reply, error, rtt_ns);
}

static void redis_eval_send(redis_eval_t *e)
{
    redis_command(e->client, redis_eval_on_reply, e, e->waiters, e->argc, e->argv, e->argvlen);
}

void redis_eval(redis_client_t *c, redis_eval_t *e, redis_script_t *script, int argc, const char *const *argv,
                const size_t *argvlen, redis_cb cb, void *data, h2o_linklist_t *waiters)
{
    if (argc < 1 || argc > REDIS_EVAL_MAX_ARGS)
        util_fatal("redis_eval: %d arguments", argc);
    redis_script_sha(script);
    *e = (redis_eval_t){.client = c, .script = script, .cb = cb, .data = data, .waiters = waiters, .argc = argc + 2};
    e->argv[0] = "EVALSHA";
    e->argvlen[0] = 7;
    e->argv[1] = script->sha;
    e->argvlen[1] = 40;
    for (int i = 0; i != argc; ++i) {
        e->argv[i + 2] = argv[i];
        e->argvlen[i + 2] = argvlen[i];
    }
    redis_eval_send(e);
}

/* Answers overdue commands with a timeout; drops a connection that stopped answering. */
static void redis_on_clock(loop_timer_t *t)
{
    redis_client_t *c = util_container_of(t, redis_client_t, clock);
    uint64_t now = util_now_ns(), limit = (uint64_t)c->timeout_ms * 1000000u;
    for (h2o_linklist_t *l = c->pending.next; l != &c->pending; l = l->next) {
        redis_cmd_t *cmd = H2O_STRUCT_FROM_MEMBER(redis_cmd_t, link, l);
        if (now - cmd->sent_ns < limit)
            break;
        if (cmd->cb != NULL)
            redis_cmd_answer(cmd, NULL, "redis timeout");
    }
    if (h2o_linklist_is_empty(&c->pending))
        return;
    redis_cmd_t *oldest = H2O_STRUCT_FROM_MEMBER(redis_cmd_t, link, c->pending.next);
    if (now - oldest->sent_ns > limit * REDIS_STUCK_FACTOR && c->ac != NULL) {
        log_warn("redis", "no answer for %u ms: reconnecting", c->timeout_ms * REDIS_STUCK_FACTOR);
        /* not a graceful disconnect, which would wait for the answers: the free answers
         * every pending command, and the disconnect callback schedules the reconnect */
        redisAsyncFree(c->ac);
        return;
    }
    loop_timer_start(&c->clock, c->timeout_ms / 4 + 1);
}

/* ---- the event adapter: hiredis asks, h2o watches ---- */

static void redis_on_read(h2o_socket_t *sock, const char *err)
{
    redis_client_t *c = sock->data;
    (void)err;
    if (c->ac != NULL)
        redisAsyncHandleRead(c->ac);
}

static void redis_on_write(h2o_socket_t *sock, const char *err)
{
    redis_client_t *c = sock->data;
    (void)err;
    c->write_armed = 0;
    if (c->ac != NULL && c->want_write)
        redisAsyncHandleWrite(c->ac);
    if (c->sock == sock && c->want_write && !c->write_armed) {
        c->write_armed = 1;
        h2o_socket_notify_write(sock, redis_on_write);
    }
}

static void redis_ev_add_read(void *p)
{
    redis_client_t *c = p;
    if (c->sock != NULL)
        h2o_socket_read_start(c->sock, redis_on_read);
}

static void redis_ev_del_read(void *p)
{
    redis_client_t *c = p;
    if (c->sock != NULL)
        h2o_socket_read_stop(c->sock);
}

/*
 * Commands are written once per loop pass, after every handler of the pass has queued
 * its own (a deferred call, core/timer.h), and the socket is watched for writability
 * only when that write could not take everything, or while connecting, when
 * writability is how the connect completes. Watching for writability first, as a
 * plain adapter does, costs two epoll_ctl calls and a pass through epoll_wait for
 * every batch, and every system call is a switch to the hypervisor on a
 * paravirtualised guest.
 */
static void redis_on_flush(loop_defer_t *d)
{
    redis_client_t *c = util_container_of(d, redis_client_t, flush);
    if (c->ac == NULL || !c->want_write)
        return;
    c->flushing = 1;
    redisAsyncHandleWrite(c->ac); /* a short write asks for writability again (redis_ev_add_write) */
    c->flushing = 0;
}

static void redis_ev_add_write(void *p)
{
    redis_client_t *c = p;
    c->want_write = 1;
    if (c->sock == NULL)
        return;
    if (c->connected && !c->flushing) {
        loop_defer_arm(&c->flush);
        return;
    }
    if (!c->write_armed) {
        c->write_armed = 1;
        h2o_socket_notify_write(c->sock, redis_on_write);
    }
}

static void redis_ev_del_write(void *p)
{
    redis_client_t *c = p;
    c->want_write = 0; /* an armed notification fires once more and is ignored */
}

static void redis_ev_cleanup(void *p)
{
    redis_client_t *c = p;
    if (c->sock != NULL) {
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    loop_defer_cancel(&c->flush);
    c->want_write = 0;
    c->write_armed = 0;
}

/* ---- connection life ---- */

static void redis_schedule_retry(redis_client_t *c)
{
    if (c->closing)
        return;
    c->backoff_ms = c->backoff_ms == 0 ? REDIS_BACKOFF_MIN_MS : UTIL_MIN(c->backoff_ms * 2, REDIS_BACKOFF_MAX_MS);
    loop_timer_start(&c->retry, c->backoff_ms);
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    redis_client_t *c = ac->data;
    loop_timer_stop(&c->retry);
    if (status != REDIS_OK) {
        log_debug("redis", "connect to %s:%d failed: %s", c->addr.host, c->addr.port, ac->errstr);
        metrics_add(c->metrics, METRICS_REDIS_CONNECT_ERRORS, 1);
        c->ac = NULL; /* hiredis frees the context after this callback */
        redis_schedule_retry(c);
        return;
    }
    c->connected = 1;
    ++c->epoch;
    c->backoff_ms = 0;
    metrics_add(c->metrics, METRICS_REDIS_CONNECTS, 1);
    metrics_gauge_add(c->metrics, METRICS_REDIS_UP, 1);
    log_info("redis", "connected to %s:%d", c->addr.host, c->addr.port);
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_client_t *c = ac->data;
    (void)status;
    if (c->connected) {
        c->connected = 0;
        metrics_gauge_add(c->metrics, METRICS_REDIS_UP, -1);
        if (!c->closing) {
            log_warn("redis", "connection to %s:%d lost", c->addr.host, c->addr.port);
            metrics_add(c->metrics, METRICS_REDIS_CONNECT_ERRORS, 1);
        }
    }
    c->ac = NULL;
    redis_schedule_retry(c);
}

static void redis_on_retry(loop_timer_t *t)
{
    redis_client_t *c = util_container_of(t, redis_client_t, retry);
    if (c->ac != NULL && !c->connected) {
        /* the connect deadline passed */
        log_debug("redis", "connect to %s:%d timed out", c->addr.host, c->addr.port);
        metrics_add(c->metrics, METRICS_REDIS_CONNECT_ERRORS, 1);
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->onDisconnect = NULL;
        redisAsyncFree(ac);
        redis_schedule_retry(c);
        return;
    }
    if (c->ac == NULL)
        redis_connect(c);
}

static void redis_connect(redis_client_t *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->addr.host, c->addr.port);
    if (ac == NULL || ac->err) {
        log_debug("redis", "connect to %s:%d failed: %s", c->addr.host, c->addr.port,
                  ac != NULL ? ac->errstr : "out of memory");
        metrics_add(c->metrics, METRICS_REDIS_CONNECT_ERRORS, 1);
        if (ac != NULL)
            redisAsyncFree(ac);
        redis_schedule_retry(c);
        return;
    }
    int fd = dup(ac->c.fd);
    if (fd < 0) {
        redisAsyncFree(ac);
        redis_schedule_retry(c);
        return;
    }
    c->ac = ac;
    ac->data = c;
    c->sock = h2o_evloop_socket_create(c->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    ac->ev.data = c;
    ac->ev.addRead = redis_ev_add_read;
    ac->ev.delRead = redis_ev_del_read;
    ac->ev.addWrite = redis_ev_add_write;
    ac->ev.delWrite = redis_ev_del_write;
    ac->ev.cleanup = redis_ev_cleanup;
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    /* Sent as soon as the connection opens; hiredis keeps them first in line. */
    if (c->addr.password[0] != '\0')
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", c->addr.password);
    if (c->addr.db != 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", c->addr.db);
    loop_timer_start(&c->retry, REDIS_CONNECT_TIMEOUT_MS);
}

redis_client_t *redis_client_new(h2o_loop_t *loop, const config_redis_addr_t *addr, unsigned timeout_ms,
                                 metrics_shard_t *metrics)
{
    redis_client_t *c = util_calloc(1, sizeof(*c));
    c->loop = loop;
    c->addr = *addr;
    c->timeout_ms = timeout_ms;
    c->metrics = metrics;
    h2o_linklist_init_anchor(&c->pending);
    loop_timer_init(&c->retry, loop, redis_on_retry);
    loop_timer_init(&c->clock, loop, redis_on_clock);
    loop_defer_init(&c->flush, loop, redis_on_flush);
    redis_connect(c);
    return c;
}

int redis_client_ready(const redis_client_t *c)
{
    return c->connected;
}

uint64_t redis_client_epoch(const redis_client_t *c)
{
    return c->epoch;
}

void redis_client_free(redis_client_t *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    loop_timer_dispose(&c->retry);
    loop_timer_dispose(&c->clock);
    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac); /* answers every pending command with NULL, then calls cleanup */
    }
    loop_defer_dispose(&c->flush);
    if (c->connected) {
        c->connected = 0;
        metrics_gauge_add(c->metrics, METRICS_REDIS_UP, -1);
    }
    free(c);
}
