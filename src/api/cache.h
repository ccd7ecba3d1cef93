/*
 * api/cache.h - how endpoints use the response cache (src/cache/cache.h).
 *
 * A cacheable read names its kind, the scope id (conversation or user, else 0) and a
 * variant string made of every parameter that shapes its body, and gives the query
 * that builds the body, as it would to api_db_reply(). The answer is, in order:
 *
 *   HIT     the body stored in Redis, with "cached" turned true;
 *   MISS    the body from PostgreSQL, by this request's query or by the one fill
 *           under way for the same key in this process (then stored in Redis);
 *   BYPASS  the body from PostgreSQL when the cache is disabled, Redis is down, or it
 *           did not answer within REDIS_TIMEOUT_MS.
 *
 * Every such response carries `X-Cache`, is counted per kind (cache_hits_total,
 * cache_misses_total, cache_bypass_total …), and logs "cache hit <key>" or "cache miss
 * <key>" at debug level. Only 200 bodies are stored; errors are answered, never cached.
 *
 * A write whose change a cached body would show replies through
 * api_cache_bump_reply(), which answers only after the generations it names were
 * bumped (or, if Redis is unreachable, queued for retry).
 */
#ifndef CONVERSA_API_CACHE_H
#define CONVERSA_API_CACHE_H

#include "api/db.h"
#include "cache/cache.h"

/** Serves r from the cache, or runs stmt as api_db_reply(r, stmt, params, n, 200, what) would and caches its body. */
void api_cache_reply(http_request_t *r, cache_kind_t kind, int64_t scope_id, const char *variant, pg_stmt_t *stmt,
                     const pg_param_t *params, size_t n, const char *what);

/** Bumps gens of the caller's company, then replies status with the JSON body (copied now). */
void api_cache_bump_reply(http_request_t *r, const cache_gen_t *gens, size_t n, int status, const char *body,
                          size_t len);

/**
 * For a write that may have changed nothing (marking read what was read): res has one
 * row of the JSON body and a boolean "something changed", or no row (404 naming
 * `what`). Replies 200 with the body, bumping gens first only when something changed.
 */
void api_cache_bump_reply_if_changed(http_request_t *r, PGresult *res, const cache_gen_t *gen, const char *what);

#endif
