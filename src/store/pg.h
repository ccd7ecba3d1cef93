/*
 * pg.h - asynchronous PostgreSQL on an h2o event loop.
 *
 * A pg_pool_t belongs to one loop thread and holds a few libpq connections in
 * non-blocking pipeline mode. Each connection has a FIFO of queries in flight (at most
 * PG_PIPELINE_DEPTH); when every ready connection is full, queries wait in the pool's
 * queue (at most PG_QUEUE_MAX, then they are refused). When no connection is ready or
 * being opened, a query fails at once: callers answer 503 rather than hang while the
 * database is away.
 *
 * Statements are declared once as static pg_stmt_t and prepared lazily, once per
 * connection, the first time they run there (pipelined ahead of the query itself);
 * after warm-up nothing is prepared again (metric db_prepared_statements_total). Those
 * marked replan are sent unprepared and planned at each execution (see pg_stmt_t).
 *
 * Ownership: parameters are copied at submission, so the caller's buffers may go
 * away at once. The callback is called exactly once, on the loop thread, unless the
 * query was cancelled through its waiter first (see core/waiter.h); the PGresult it
 * receives is freed by the pool when the callback returns. Connections that break are
 * re-opened with exponential backoff (100 ms to 5 s); their queries fail.
 */
#ifndef CONVERSA_STORE_PG_H
#define CONVERSA_STORE_PG_H

#include <h2o.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/waiter.h"

struct metrics_shard;

typedef struct pg_pool pg_pool_t;

/**
 * A statement: declare as a static (non-const) object; `id` is assigned on first use.
 *
 * replan: sent unprepared, so PostgreSQL plans it at each execution for the table as
 * it is then. For statements over a table whose size swings by orders of magnitude
 * (the job queue: empty when idle, 200,000 rows in a flood), where a plan cached while
 * the table was empty keeps scanning it whole, row after row, once it is full (until
 * an ANALYZE happens to invalidate it). Planning costs a fraction of a millisecond.
 * The plan is still generic (plan_cache_mode), made without the parameters' values:
 * a value that decides the plan still belongs in the text.
 */
typedef struct pg_stmt {
    const char *sql;
    int nparams;
    unsigned id;
    int replan;
} pg_stmt_t;

/** One parameter. value NULL is SQL NULL; len SIZE_MAX means strlen(value); binary sends raw bytes. */
typedef struct pg_param {
    const char *value;
    size_t len;
    int binary;
} pg_param_t;

#define PG_TEXT(s) ((pg_param_t){(s), SIZE_MAX, 0})

/** What a callback receives: res on success (TUPLES_OK or COMMAND_OK), else error (and sqlstate when known). */
typedef struct pg_reply {
    PGresult *res;
    const char *error;
    const char *sqlstate;
    uint64_t rtt_ns;
} pg_reply_t;

typedef void (*pg_cb)(void *data, const pg_reply_t *reply);

typedef struct pg_pool_config {
    const char *conninfo;
    unsigned size;
    unsigned pipeline_depth;
    unsigned queue_max;
    unsigned statement_timeout_ms;
    const char *application_name;
} pg_pool_config_t;

/** Creates a pool on loop and starts connecting; it never blocks. */
pg_pool_t *pg_pool_new(h2o_loop_t *loop, const pg_pool_config_t *cfg, struct metrics_shard *metrics);

/**
 * Fails every pending query (callbacks get error "shutting down"), closes the
 * connections and frees the pool. Call on the loop thread.
 */
void pg_pool_free(pg_pool_t *pool);

/** The loop the pool belongs to. */
h2o_loop_t *pg_pool_loop(const pg_pool_t *pool);

/** Number of connections ready for queries. */
size_t pg_pool_ready(const pg_pool_t *pool);

/**
 * Submits a query. When waiters is given the query links itself there and can be
 * cancelled through it. The callback may run before pg_exec() returns when the query
 * is refused at once (no connection, queue full).
 */
void pg_exec(pg_pool_t *pool, pg_stmt_t *stmt, const pg_param_t *params, size_t nparams, pg_cb cb, void *data,
             h2o_linklist_t *waiters);

/** Total statements prepared by every pool in the process. */
uint64_t pg_prepared_total(void);

#endif
