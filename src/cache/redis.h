/*
 * redis.h - an asynchronous Redis client on an h2o event loop (hiredis underneath).
 *
 * One client per loop thread, one connection, commands pipelined in order; the commands
 * sent during one pass of the loop leave in one write at the end of that pass. hiredis
 * owns its socket; we watch a dup() of it through an h2o socket, so closing ours never
 * closes theirs. The connection is re-opened with exponential backoff (100 ms to 5 s)
 * whenever it drops or fails to open.
 *
 * Every command gets exactly one callback (unless cancelled through its waiter):
 * with the reply, or with an error when Redis is not connected, the connection drops,
 * or no answer came within REDIS_TIMEOUT_MS (a late answer is then dropped). Callers
 * treat an error as "Redis unavailable" and carry on without it. The reply is owned
 * by hiredis and valid only during the callback.
 */
#ifndef CONVERSA_CACHE_REDIS_H
#define CONVERSA_CACHE_REDIS_H

#include <h2o.h>
#include <hiredis/hiredis.h>
#include <stdint.h>

#include "core/config.h"

struct metrics_shard;

typedef struct redis_client redis_client_t;

typedef void (*redis_cb)(void *data, redisReply *reply, const char *error, uint64_t rtt_ns);

/** Creates a client and starts connecting; it never blocks. */
redis_client_t *redis_client_new(h2o_loop_t *loop, const config_redis_addr_t *addr, unsigned timeout_ms,
                                 struct metrics_shard *metrics);

/** Fails pending commands (error "shutting down"), disconnects and frees. On the loop thread. */
void redis_client_free(redis_client_t *c);

/** Whether the connection is up. */
int redis_client_ready(const redis_client_t *c);

/** Counts the connections established so far: a new value means a new connection (state set on the old one is gone). */
uint64_t redis_client_epoch(const redis_client_t *c);

/**
 * Sends one command (argv with lengths). When waiters is given the command links itself
 * there and can be cancelled through it. The callback may run before this returns
 * when the client is not connected.
 */
void redis_command(redis_client_t *c, redis_cb cb, void *data, h2o_linklist_t *waiters, int argc,
                   const char *const *argv, const size_t *argvlen);

/*
 * Lua scripts called by SHA. The first call after Redis started (or flushed its
 * scripts) answers NOSCRIPT; redis_eval() then sends the whole script once with EVAL,
 * which loads it for every later EVALSHA, and the caller sees one answer as usual.
 */
typedef struct redis_script {
    const char *source;
    char sha[41]; /* filled on first use */
    int ready;
} redis_script_t;

#define REDIS_SCRIPT_INIT(src)                                                                                         \
    {                                                                                                                  \
        (src), "", 0                                                                                                   \
    }
#define REDIS_EVAL_MAX_ARGS 128

/** One script call; its storage is the caller's and must live until cb (or cancellation). */
typedef struct redis_eval {
    redis_client_t *client;
    redis_script_t *script;
    redis_cb cb;
    void *data;
    h2o_linklist_t *waiters;
    int evaled;
    int argc;
    const char *argv[REDIS_EVAL_MAX_ARGS + 2];
    size_t argvlen[REDIS_EVAL_MAX_ARGS + 2];
} redis_eval_t;

/**
 * Calls script with argv = numkeys, keys..., args... (at most REDIS_EVAL_MAX_ARGS);
 * the strings must stay valid until cb, since a NOSCRIPT answer sends them again.
 * Callback and cancellation as redis_command().
 */
void redis_eval(redis_client_t *c, redis_eval_t *e, redis_script_t *script, int argc, const char *const *argv,
                const size_t *argvlen, redis_cb cb, void *data, h2o_linklist_t *waiters);

#endif
