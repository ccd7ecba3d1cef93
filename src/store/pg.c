#include "store/pg.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"
#include "ops/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PG_MAX_STMTS          512
#define PG_BACKOFF_MIN_MS     100
#define PG_BACKOFF_MAX_MS     5000
#define PG_CONNECT_TIMEOUT_MS 5000
#define PG_WATCHDOG_MS        1000

typedef enum { PG_DOWN, PG_CONNECTING, PG_READY } pg_state_t;

typedef struct pg_query {
    waiter_t waiter;
    h2o_linklist_t link; /* in the pool's wait queue or a connection's in-flight FIFO */
    pg_stmt_t *stmt;
    pg_cb cb; /* NULL once cancelled */
    void *data;
    int nparams;
    const char **values;
    int *lengths;
    int *formats;
    int prepare_pending; /* a Prepare was pipelined ahead of this query; its result comes first */
    uint64_t queued_ns;  /* submitted */
    uint64_t sent_ns;
    PGresult *result;
    PGresult *error; /* first error result seen, if any */
} pg_query_t;

typedef struct pg_conn {
    pg_pool_t *pool;
    unsigned index;
    PGconn *pq;
    h2o_socket_t *sock; /* watches a dup() of PQsocket(pq) */
    int watched_fd;     /* PQsocket() value the dup was made from */
    pg_state_t state;
    int write_armed;
    h2o_linklist_t inflight;
    size_t ninflight;
    unsigned backoff_ms;
    unsigned failures;  /* consecutive failed attempts, for quieter logs */
    loop_timer_t timer; /* reconnect backoff, or connect deadline */
    uint64_t prepared[PG_MAX_STMTS / 64];
} pg_conn_t;

struct pg_pool {
    h2o_loop_t *loop;
    pg_pool_config_t cfg;
    char *conninfo;
    char options[128];
    metrics_shard_t *metrics;
    pg_conn_t *conns;
    size_t nconns;
    h2o_linklist_t waiting;
    size_t nwaiting;
    loop_timer_t watchdog;
    int closing;
};

static unsigned pg_next_stmt_id;
static uint64_t pg_prepared_count;

uint64_t pg_prepared_total(void)
{
    return __atomic_load_n(&pg_prepared_count, __ATOMIC_RELAXED);
}

static unsigned pg_stmt_id(pg_stmt_t *stmt)
{
    unsigned id = __atomic_load_n(&stmt->id, __ATOMIC_ACQUIRE);
    if (id != 0)
        return id;
    unsigned fresh = __atomic_add_fetch(&pg_next_stmt_id, 1, __ATOMIC_RELAXED);
    if (fresh >= PG_MAX_STMTS)
        util_fatal("more than %d prepared statements", PG_MAX_STMTS - 1);
    unsigned expected = 0;
    if (__atomic_compare_exchange_n(&stmt->id, &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    return expected; /* another thread won; its id stands, ours is simply unused */
}

static void pg_conn_connect(pg_conn_t *c);
static void pg_conn_on_io(h2o_socket_t *sock, const char *err);
static void pg_conn_on_writable(h2o_socket_t *sock, const char *err);
static void pg_pool_dispatch(pg_pool_t *pool);

/* ---- queries ---- */

static void pg_query_free(pg_query_t *q)
{
    if (q->result != NULL)
        PQclear(q->result);
    if (q->error != NULL)
        PQclear(q->error);
    free(q);
}

/* Delivers the outcome to the caller (unless cancelled) and frees the query. */
static void pg_query_finish(pg_pool_t *pool, pg_query_t *q, const char *error)
{
    waiter_detach(&q->waiter);
    pg_reply_t reply = {0};
    if (q->sent_ns != 0) {
        reply.rtt_ns = util_now_ns() - q->sent_ns;
        metrics_observe_rtt(pool->metrics, METRICS_RTT_PG, reply.rtt_ns);
    }
    if (error == NULL && q->error != NULL) {
        error = PQresultErrorMessage(q->error);
        reply.sqlstate = PQresultErrorField(q->error, PG_DIAG_SQLSTATE);
    }
    if (error == NULL && q->result == NULL)
        error = "no result";
    metrics_add(pool->metrics, METRICS_PG_QUERIES, 1);
    if (error != NULL) {
        metrics_add(pool->metrics, METRICS_PG_ERRORS, 1);
        reply.error = error;
    } else {
        reply.res = q->result;
    }
    if (q->cb != NULL)
        q->cb(q->data, &reply);
    pg_query_free(q);
}

static void pg_query_cancel(waiter_t *w)
{
    pg_query_t *q = H2O_STRUCT_FROM_MEMBER(pg_query_t, waiter, w);
    q->cb = NULL;
    q->data = NULL;
    if (q->sent_ns == 0 && h2o_linklist_is_linked(&q->link)) {
        /* still waiting for a connection: nobody else holds it */
        pg_pool_t *pool = *(pg_pool_t **)(q + 1);
        h2o_linklist_unlink(&q->link);
        --pool->nwaiting;
        metrics_gauge_add(pool->metrics, METRICS_PG_WAITING, -1);
        pg_query_free(q);
    }
}

/* ---- connections ---- */

static void pg_conn_unwatch(pg_conn_t *c)
{
    if (c->sock != NULL) {
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock); /* closes our dup only; libpq keeps its descriptor */
        c->sock = NULL;
    }
    c->write_armed = 0;
    c->watched_fd = -1;
}

/* Makes sure the h2o socket watches libpq's current descriptor (it changes while connecting). */
static int pg_conn_watch(pg_conn_t *c)
{
    int fd = PQsocket(c->pq);
    if (fd < 0)
        return -1;
    if (c->sock != NULL && fd == c->watched_fd)
        return 0;
    pg_conn_unwatch(c);
    int dupfd = dup(fd);
    if (dupfd < 0)
        return -1;
    c->sock = h2o_evloop_socket_create(c->pool->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->watched_fd = fd;
    return 0;
}

static void pg_conn_arm_write(pg_conn_t *c)
{
    if (!c->write_armed && c->sock != NULL) {
        c->write_armed = 1;
        h2o_socket_notify_write(c->sock, pg_conn_on_writable);
    }
}

/* Tears a connection down: fails what it carried and schedules a reconnect. */
static void pg_conn_fail(pg_conn_t *c, const char *why)
{
    pg_pool_t *pool = c->pool;
    int was_ready = c->state == PG_READY;
    if (!pool->closing) {
        /* The first failure and every tenth after it are warnings; the rest is noise. */
        if (c->failures++ % 10 == 0)
            log_warn("pg", "connection %u: %.*s (retrying with backoff)", c->index, (int)strcspn(why, "\n"), why);
        else
            log_debug("pg", "connection %u: %.*s", c->index, (int)strcspn(why, "\n"), why);
        metrics_add(pool->metrics, METRICS_PG_CONNECT_ERRORS, 1);
    }
    if (was_ready)
        metrics_gauge_add(pool->metrics, METRICS_PG_UP, -1);
    pg_conn_unwatch(c);
    if (c->pq != NULL) {
        PQfinish(c->pq);
        c->pq = NULL;
    }
    c->state = PG_DOWN;
    memset(c->prepared, 0, sizeof(c->prepared));
    while (!h2o_linklist_is_empty(&c->inflight)) {
        pg_query_t *q = H2O_STRUCT_FROM_MEMBER(pg_query_t, link, c->inflight.next);
        h2o_linklist_unlink(&q->link);
        --c->ninflight;
        metrics_gauge_add(pool->metrics, METRICS_PG_INFLIGHT, -1);
        pg_query_finish(pool, q, pool->closing ? "shutting down" : "database connection lost");
    }
    if (!pool->closing) {
        c->backoff_ms = c->backoff_ms == 0 ? PG_BACKOFF_MIN_MS : UTIL_MIN(c->backoff_ms * 2, PG_BACKOFF_MAX_MS);
        loop_timer_start(&c->timer, c->backoff_ms);
        /* queries waiting for a connection go elsewhere, or fail now if none is left */
        pg_pool_dispatch(pool);
    }
}

static void pg_conn_on_timer(loop_timer_t *t)
{
    pg_conn_t *c = util_container_of(t, pg_conn_t, timer);
    if (c->state == PG_CONNECTING)
        pg_conn_fail(c, "connect timed out");
    else if (c->state == PG_DOWN)
        pg_conn_connect(c);
}

static void pg_conn_flush(pg_conn_t *c)
{
    int r = PQflush(c->pq);
    if (r < 0)
        pg_conn_fail(c, PQerrorMessage(c->pq));
    else if (r > 0)
        pg_conn_arm_write(c);
}

/* Server notices (e.g. from migrations run elsewhere) go to the debug log, not stderr. */
static void pg_on_notice(void *arg, const char *message)
{
    pg_conn_t *c = arg;
    log_debug("pg", "connection %u notice: %.*s", c->index, (int)strcspn(message, "\n"), message);
}

static void pg_conn_ready(pg_conn_t *c)
{
    pg_pool_t *pool = c->pool;
    loop_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pq, 1) != 0 || PQenterPipelineMode(c->pq) != 1) {
        pg_conn_fail(c, "cannot enter pipeline mode");
        return;
    }
    PQsetNoticeProcessor(c->pq, pg_on_notice, c);
    c->state = PG_READY;
    c->backoff_ms = 0;
    if (c->failures != 0)
        log_info("pg", "connection %u ready after %u failed attempts", c->index, c->failures);
    c->failures = 0;
    metrics_add(pool->metrics, METRICS_PG_CONNECTS, 1);
    metrics_gauge_add(pool->metrics, METRICS_PG_UP, 1);
    log_debug("pg", "connection %u ready", c->index);
    h2o_socket_read_start(c->sock, pg_conn_on_io);
    pg_pool_dispatch(pool);
}

/* Drives PQconnectPoll: called at start and whenever the socket is ready. */
static void pg_conn_poll_connect(pg_conn_t *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pq);
    if (st == PGRES_POLLING_FAILED) {
        char why[512];
        snprintf(why, sizeof(why), "connect failed: %s", PQerrorMessage(c->pq));
        why[strcspn(why, "\n")] = '\0';
        pg_conn_fail(c, why);
        return;
    }
    if (pg_conn_watch(c) != 0) {
        pg_conn_fail(c, "connect failed: no socket");
        return;
    }
    if (st == PGRES_POLLING_OK) {
        pg_conn_ready(c);
    } else if (st == PGRES_POLLING_READING) {
        h2o_socket_read_start(c->sock, pg_conn_on_io);
    } else {
        h2o_socket_read_stop(c->sock);
        pg_conn_arm_write(c);
    }
}

static void pg_conn_connect(pg_conn_t *c)
{
    pg_pool_t *pool = c->pool;
    const char *keys[] = {"dbname", "options", "application_name", NULL};
    const char *vals[] = {pool->conninfo, pool->options, pool->cfg.application_name, NULL};
    c->pq = PQconnectStartParams(keys, vals, 1);
    c->state = PG_CONNECTING;
    if (c->pq == NULL || PQstatus(c->pq) == CONNECTION_BAD) {
        pg_conn_fail(c, c->pq != NULL ? PQerrorMessage(c->pq) : "out of memory");
        return;
    }
    loop_timer_start(&c->timer, PG_CONNECT_TIMEOUT_MS);
    pg_conn_poll_connect(c);
}

/* Reads every result available and completes the queries they finish. */
static void pg_conn_read(pg_conn_t *c)
{
    pg_pool_t *pool = c->pool;
    if (PQconsumeInput(c->pq) != 1) {
        pg_conn_fail(c, PQerrorMessage(c->pq));
        return;
    }
    int nulls = 0;
    while (c->state == PG_READY && c->ninflight != 0 && !PQisBusy(c->pq)) {
        PGresult *res = PQgetResult(c->pq);
        if (res == NULL) {
            /* end of one statement's results; two in a row means nothing more is buffered */
            if (++nulls == 2)
                break;
            continue;
        }
        nulls = 0;
        pg_query_t *q = H2O_STRUCT_FROM_MEMBER(pg_query_t, link, c->inflight.next);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            h2o_linklist_unlink(&q->link);
            --c->ninflight;
            metrics_gauge_add(pool->metrics, METRICS_PG_INFLIGHT, -1);
            pg_query_finish(pool, q, NULL);
            continue;
        }
        if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED || st == PGRES_BAD_RESPONSE) {
            if (q->prepare_pending) {
                /* the statement did not prepare here; prepare again next time */
                c->prepared[q->stmt->id / 64] &= ~(1ull << (q->stmt->id % 64));
            }
            if (q->error == NULL && st != PGRES_PIPELINE_ABORTED)
                q->error = res;
            else
                PQclear(res);
            q->prepare_pending = 0;
            continue;
        }
        if (q->prepare_pending) {
            q->prepare_pending = 0;
            PQclear(res);
            continue;
        }
        if (q->result == NULL)
            q->result = res;
        else
            PQclear(res);
    }
    /* A result may have errored out the whole connection. */
    if (c->state == PG_READY && PQstatus(c->pq) == CONNECTION_BAD)
        pg_conn_fail(c, "connection closed by the server");
}

static void pg_conn_on_io(h2o_socket_t *sock, const char *err)
{
    pg_conn_t *c = sock->data;
    if (err != NULL) {
        pg_conn_fail(c, err);
        return;
    }
    if (c->state == PG_CONNECTING) {
        pg_conn_poll_connect(c);
        return;
    }
    pg_conn_read(c);
    if (c->state == PG_READY)
        pg_pool_dispatch(c->pool);
}

static void pg_conn_on_writable(h2o_socket_t *sock, const char *err)
{
    pg_conn_t *c = sock->data;
    c->write_armed = 0;
    if (err != NULL) {
        pg_conn_fail(c, err);
        return;
    }
    if (c->state == PG_CONNECTING)
        pg_conn_poll_connect(c);
    else if (c->state == PG_READY)
        pg_conn_flush(c);
}

/* Puts one query on the wire of a ready connection. Returns 0, or -1 when the connection broke. */
static int pg_conn_send(pg_conn_t *c, pg_query_t *q)
{
    pg_pool_t *pool = c->pool;
    if (q->stmt->replan) {
        if (PQsendQueryParams(c->pq, q->stmt->sql, q->nparams, NULL, q->values, q->lengths, q->formats, 0) != 1)
            goto Broken;
    } else {
        unsigned id = pg_stmt_id(q->stmt);
        char name[16];
        snprintf(name, sizeof(name), "s%u", id);
        uint64_t bit = 1ull << (id % 64);
        if ((c->prepared[id / 64] & bit) == 0) {
            if (PQsendPrepare(c->pq, name, q->stmt->sql, q->stmt->nparams, NULL) != 1)
                goto Broken;
            c->prepared[id / 64] |= bit;
            q->prepare_pending = 1;
            metrics_add(pool->metrics, METRICS_PG_PREPARES, 1);
            __atomic_add_fetch(&pg_prepared_count, 1, __ATOMIC_RELAXED);
        }
        if (PQsendQueryPrepared(c->pq, name, q->nparams, q->values, q->lengths, q->formats, 0) != 1)
            goto Broken;
    }
    if (PQpipelineSync(c->pq) != 1)
        goto Broken;
    q->sent_ns = util_now_ns();
    metrics_observe_rtt(pool->metrics, METRICS_RTT_PG_WAIT, q->sent_ns - q->queued_ns);
    h2o_linklist_insert(&c->inflight, &q->link);
    ++c->ninflight;
    metrics_gauge_add(pool->metrics, METRICS_PG_INFLIGHT, 1);
    return 0;
Broken:
    /* the query was not queued anywhere: put it back at the head of the wait queue */
    h2o_linklist_insert(pool->waiting.next, &q->link);
    ++pool->nwaiting;
    metrics_gauge_add(pool->metrics, METRICS_PG_WAITING, 1);
    pg_conn_fail(c, PQerrorMessage(c->pq));
    return -1;
}

/* The ready connection with the most room; *usable says whether any is ready or about to be. */
static pg_conn_t *pg_pool_pick(pg_pool_t *pool, int *usable)
{
    pg_conn_t *best = NULL;
    *usable = 0;
    for (size_t i = 0; i != pool->nconns; ++i) {
        pg_conn_t *c = &pool->conns[i];
        if (c->state == PG_CONNECTING)
            *usable = 1;
        if (c->state != PG_READY)
            continue;
        *usable = 1;
        if (c->ninflight < pool->cfg.pipeline_depth && (best == NULL || c->ninflight < best->ninflight))
            best = c;
    }
    return best;
}

/*
 * Sends waiting queries while a connection has room. When no connection is ready and
 * none is even connecting (all are waiting out a backoff), waiting queries fail now:
 * the database is down and callers should say so rather than hang. A query that
 * arrives while a connection is being opened waits for it (bounded by the connect
 * timeout).
 */
static void pg_pool_dispatch(pg_pool_t *pool)
{
    pg_conn_t *flush[64];
    size_t nflush = 0;
    while (!h2o_linklist_is_empty(&pool->waiting)) {
        int usable;
        pg_conn_t *c = pg_pool_pick(pool, &usable);
        if (!usable) {
            while (!h2o_linklist_is_empty(&pool->waiting)) {
                pg_query_t *q = H2O_STRUCT_FROM_MEMBER(pg_query_t, link, pool->waiting.next);
                h2o_linklist_unlink(&q->link);
                --pool->nwaiting;
                metrics_gauge_add(pool->metrics, METRICS_PG_WAITING, -1);
                pg_query_finish(pool, q, "database unavailable");
            }
            break;
        }
        if (c == NULL)
            break;
        pg_query_t *q = H2O_STRUCT_FROM_MEMBER(pg_query_t, link, pool->waiting.next);
        h2o_linklist_unlink(&q->link);
        --pool->nwaiting;
        metrics_gauge_add(pool->metrics, METRICS_PG_WAITING, -1);
        if (pg_conn_send(c, q) != 0)
            continue;
        size_t k;
        for (k = 0; k != nflush && flush[k] != c; ++k)
            ;
        if (k == nflush && nflush < UTIL_ARRAY_SIZE(flush))
            flush[nflush++] = c;
    }
    /* One flush per connection per dispatch: queries submitted together share a write. */
    for (size_t k = 0; k != nflush; ++k)
        if (flush[k]->state == PG_READY)
            pg_conn_flush(flush[k]);
}

void pg_exec(pg_pool_t *pool, pg_stmt_t *stmt, const pg_param_t *params, size_t nparams, pg_cb cb, void *data,
             h2o_linklist_t *waiters)
{
    /* One allocation: the query, a back pointer to the pool, then the parameter arrays and bytes. */
    size_t bytes = 0;
    for (size_t i = 0; i != nparams; ++i)
        if (params[i].value != NULL)
            bytes += (params[i].len == SIZE_MAX ? strlen(params[i].value) : params[i].len) + 1;
    size_t head = sizeof(pg_query_t) + sizeof(pg_pool_t *);
    size_t arrays = nparams * (sizeof(char *) + 2 * sizeof(int));
    pg_query_t *q = util_malloc(head + arrays + bytes);
    memset(q, 0, sizeof(*q));
    *(pg_pool_t **)(q + 1) = pool;
    q->stmt = stmt;
    q->queued_ns = util_now_ns();
    q->cb = cb;
    q->data = data;
    q->nparams = (int)nparams;
    q->waiter.cancel = pg_query_cancel;
    h2o_linklist_init_anchor(&q->link);
    q->link.next = q->link.prev = NULL;
    char *p = (char *)q + head;
    q->values = (const char **)p;
    p += nparams * sizeof(char *);
    q->lengths = (int *)p;
    p += nparams * sizeof(int);
    q->formats = (int *)p;
    p += nparams * sizeof(int);
    for (size_t i = 0; i != nparams; ++i) {
        if (params[i].value == NULL) {
            q->values[i] = NULL;
            q->lengths[i] = 0;
            q->formats[i] = 0;
            continue;
        }
        size_t n = params[i].len == SIZE_MAX ? strlen(params[i].value) : params[i].len;
        memcpy(p, params[i].value, n);
        p[n] = '\0';
        q->values[i] = p;
        q->lengths[i] = (int)n;
        q->formats[i] = params[i].binary ? 1 : 0;
        p += n + 1;
    }
    h2o_linklist_init_anchor(&q->waiter.link);
    q->waiter.link.next = q->waiter.link.prev = NULL;
    waiter_attach(&q->waiter, waiters);

    if (pool->nwaiting >= pool->cfg.queue_max) {
        metrics_add(pool->metrics, METRICS_PG_REJECTED, 1);
        pg_query_finish(pool, q, "database busy: too many queries waiting");
        return;
    }
    h2o_linklist_insert(&pool->waiting, &q->link);
    ++pool->nwaiting;
    metrics_gauge_add(pool->metrics, METRICS_PG_WAITING, 1);
    pg_pool_dispatch(pool);
}

/*
 * A query in flight longer than the statement timeout plus a margin means the server
 * or the network stalled (the server would have cancelled it by now): the connection
 * is dropped so its queries fail instead of hanging.
 */
static void pg_pool_on_watchdog(loop_timer_t *t)
{
    pg_pool_t *pool = util_container_of(t, pg_pool_t, watchdog);
    uint64_t now = util_now_ns(), limit = ((uint64_t)pool->cfg.statement_timeout_ms + 2000) * 1000000u;
    for (size_t i = 0; i != pool->nconns; ++i) {
        pg_conn_t *c = &pool->conns[i];
        if (c->state != PG_READY || c->ninflight == 0)
            continue;
        pg_query_t *oldest = H2O_STRUCT_FROM_MEMBER(pg_query_t, link, c->inflight.next);
        if (now - oldest->sent_ns > limit)
            pg_conn_fail(c, "query stalled past the statement timeout");
    }
    loop_timer_start(&pool->watchdog, PG_WATCHDOG_MS);
}

h2o_loop_t *pg_pool_loop(const pg_pool_t *pool)
{
    return pool->loop;
}

pg_pool_t *pg_pool_new(h2o_loop_t *loop, const pg_pool_config_t *cfg, metrics_shard_t *metrics)
{
    pg_pool_t *pool = util_calloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->cfg = *cfg;
    pool->conninfo = util_strdup(cfg->conninfo);
    /* Generic plans: our statements are shaped per filter, so one plan fits every call,
     * and PostgreSQL does not re-plan each execution (planning costs more than running).
     * Statements marked replan are not prepared, so this does not apply to them. */
    snprintf(pool->options, sizeof(pool->options), "-c statement_timeout=%u -c plan_cache_mode=force_generic_plan",
             cfg->statement_timeout_ms);
    pool->metrics = metrics;
    pool->nconns = cfg->size;
    pool->conns = util_calloc(pool->nconns, sizeof(pg_conn_t));
    h2o_linklist_init_anchor(&pool->waiting);
    metrics_gauge_add(metrics, METRICS_PG_POOL, (int64_t)pool->nconns);
    loop_timer_init(&pool->watchdog, loop, pg_pool_on_watchdog);
    loop_timer_start(&pool->watchdog, PG_WATCHDOG_MS);
    for (size_t i = 0; i != pool->nconns; ++i) {
        pg_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->index = (unsigned)i;
        c->watched_fd = -1;
        h2o_linklist_init_anchor(&c->inflight);
        loop_timer_init(&c->timer, loop, pg_conn_on_timer);
        pg_conn_connect(c);
    }
    return pool;
}

size_t pg_pool_ready(const pg_pool_t *pool)
{
    size_t n = 0;
    for (size_t i = 0; i != pool->nconns; ++i)
        n += pool->conns[i].state == PG_READY;
    return n;
}

void pg_pool_free(pg_pool_t *pool)
{
    if (pool == NULL)
        return;
    pool->closing = 1;
    for (size_t i = 0; i != pool->nconns; ++i) {
        pg_conn_t *c = &pool->conns[i];
        loop_timer_dispose(&c->timer);
        if (c->state != PG_DOWN)
            pg_conn_fail(c, "shutting down");
    }
    while (!h2o_linklist_is_empty(&pool->waiting)) {
        pg_query_t *q = H2O_STRUCT_FROM_MEMBER(pg_query_t, link, pool->waiting.next);
        h2o_linklist_unlink(&q->link);
        --pool->nwaiting;
        metrics_gauge_add(pool->metrics, METRICS_PG_WAITING, -1);
        pg_query_finish(pool, q, "shutting down");
    }
    metrics_gauge_add(pool->metrics, METRICS_PG_POOL, -(int64_t)pool->nconns);
    loop_timer_dispose(&pool->watchdog);
    free(pool->conns);
    free(pool->conninfo);
    free(pool);
}
